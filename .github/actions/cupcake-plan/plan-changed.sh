#!/usr/bin/env bash
# Runs `cupcake plan` on every cluster a pull request changes and posts each plan as
# the cluster's one PR comment (updated on every push, never duplicated).
#
# Which clusters: those with a file changed under FLEET/clusters/<name>/ between BASE
# and HEAD (git diff BASE...HEAD, the PR's own changes). A change to FLEET/versions.yaml
# or FLEET/policies/ can change every plan, so it plans every cluster. A cluster whose
# folder is gone at HEAD is reported and skipped.
#
# Usage: plan-changed.sh FLEET BASE HEAD
# Environment:
#   CUPCAKE            the cupcake binary (default: cupcake on PATH)
#   CUPCAKE_COMMENT    1 (default): --github-comment; 0: print the markdown only
#   GITHUB_REPOSITORY, CUPCAKE_PR, GITHUB_TOKEN   where the comments go (CUPCAKE_COMMENT=1)
#   CUPCAKE_FAIL_ON    denied (default): exit 1 if a plan is denied or fails;
#                      never: exit 0 whatever the verdicts
#   GITHUB_STEP_SUMMARY  when set, every plan's markdown is appended to it
#   GITHUB_OUTPUT        when set, gets clusters=<space-separated names>
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: plan-changed.sh FLEET BASE HEAD" >&2; exit 1; }
fleet=${1%/}
base=$2
head=$3
cupcake=${CUPCAKE:-cupcake}
comment=${CUPCAKE_COMMENT:-1}
fail_on=${CUPCAKE_FAIL_ON:-denied}
case "$fail_on" in denied|never) ;; *) echo "CUPCAKE_FAIL_ON must be denied or never, got '$fail_on'" >&2; exit 1 ;; esac
prefix=""
[ "$fleet" = "." ] || prefix="$fleet/"

changed=$(git diff --name-only "$base...$head" -- "${prefix:-.}")
if grep -qE "^${prefix}(versions\.yaml|policies/)" <<<"$changed"; then
  echo "versions.yaml or policies/ changed: planning every cluster"
  clusters=$(git ls-tree -d --name-only "$head" "${prefix}clusters/" | sed "s#^${prefix}clusters/##")
else
  clusters=$(sed -nE "s#^${prefix}clusters/([^/]+)/.*#\1#p" <<<"$changed" | sort -u)
fi
clusters=$(echo $clusters)
[ -n "${GITHUB_OUTPUT:-}" ] && echo "clusters=$clusters" >> "$GITHUB_OUTPUT"
if [ -z "$clusters" ]; then
  echo "no cluster changed between $base and $head under ${prefix}clusters/"
  exit 0
fi
echo "clusters changed: $clusters"

bad=0
for c in $clusters; do
  if [ ! -d "$fleet/clusters/$c" ]; then
    echo "::notice::cluster $c was removed; nothing to plan"
    continue
  fi
  args=(plan "$fleet" --cluster "$c")
  if [ "$comment" = 1 ]; then
    : "${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is not set}" "${CUPCAKE_PR:?CUPCAKE_PR (the pull request number) is not set}"
    args+=(--github-comment --github-repo "$GITHUB_REPOSITORY" --pr "$CUPCAKE_PR")
  fi
  set +e
  md=$("$cupcake" "${args[@]}" -o markdown)
  rc=$?
  set -e
  printf '%s\n' "$md"
  [ -n "${GITHUB_STEP_SUMMARY:-}" ] && printf '%s\n\n' "$md" >> "$GITHUB_STEP_SUMMARY"
  case $rc in
    0) echo "$c: allowed or up to date" ;;
    3) echo "$c: deferred" ;;
    2) echo "::error::$c: the plan is denied"; bad=1 ;;
    *) echo "::error::$c: cupcake plan failed (exit $rc)"; bad=1 ;;
  esac
done
if [ "$bad" = 1 ] && [ "$fail_on" = denied ]; then
  exit 1
fi
