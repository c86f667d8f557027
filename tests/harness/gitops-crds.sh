#!/usr/bin/env bash
# Fetches (once) and caches the CRDs of Argo CD (Application, AppProject) and Flux
# (Kustomization, GitRepository) from their Go modules, so the examples under
# examples/argocd and examples/flux are checked by a real apiserver
# (tests/e2e/tests/gitops_tools.rs). Nothing is built: `go mod download` of each
# module and a copy of its CRD files.
#   ${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}/gitops-crds-<argo>-<flux>/*.yaml
# Flux's helm-controller (HelmRelease) is not served by the Go module proxy, so its CRD
# is not among them; the HelmRelease example is checked by rendering its values with helm.
#
# Usage: gitops-crds.sh [--print-dir] [--force]
#   --print-dir  print the directory of the CRDs and exit (fetches nothing)
#   --force      fetch again
#
# Environment (all optional):
#   CUPCAKE_HARNESS_CACHE        cache root (default $HOME/.cache/cupcake-harness)
#   CUPCAKE_ARGOCD_VERSION       github.com/argoproj/argo-cd/v3 version (default v3.5.7)
#   CUPCAKE_FLUX_KUSTOMIZE_VERSION  github.com/fluxcd/kustomize-controller version (default v1.9.6)
#   CUPCAKE_FLUX_SOURCE_VERSION  github.com/fluxcd/source-controller version (default v1.9.6)
# The versions are the newest whose go.mod the local Go (GOTOOLCHAIN=local) accepts.
set -euo pipefail

ARGO="${CUPCAKE_ARGOCD_VERSION:-v3.5.7}"
KUST="${CUPCAKE_FLUX_KUSTOMIZE_VERSION:-v1.9.6}"
SRC="${CUPCAKE_FLUX_SOURCE_VERSION:-v1.9.6}"
CACHE_ROOT="${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}"
DIR="$CACHE_ROOT/gitops-crds-argocd-$ARGO-flux-$KUST-$SRC"
STAMP="argo-cd/v3@$ARGO kustomize-controller@$KUST source-controller@$SRC"

log() { printf '[gitops-crds.sh] %s\n' "$*"; }
die() { printf '[gitops-crds.sh] ERROR: %s\n' "$*" >&2; exit 1; }

force=0
for arg in "$@"; do
  case "$arg" in
    --print-dir) printf '%s\n' "$DIR"; exit 0 ;;
    --force) force=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (see --help)" ;;
  esac
done
for v in "$ARGO" "$KUST" "$SRC"; do
  [[ "$v" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "a version must look like v1.2.3, got '$v'"
done

fresh() { ((force == 0)) && [[ "$(cat "$DIR/.stamp" 2>/dev/null)" == "$STAMP" ]]; }
if fresh; then
  log "cached: $DIR"
  exit 0
fi
command -v go >/dev/null || die "go is not on PATH"
command -v flock >/dev/null || die "flock is missing (apt-get install util-linux)"
mkdir -p "$DIR"
exec 9>"$DIR/.lock"
flock 9
if fresh; then
  log "cached: $DIR"
  exit 0
fi
export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/cupcake-gitops-crds.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT
start=$SECONDS

# copy MODULE@VERSION FILE...: the files (paths inside the module) into $DIR.
copy() {
  local mod="$1" out moddir f
  shift
  out="$(cd "$SCRATCH" && go mod download -json "$mod")" || die "go mod download $mod failed: $out"
  moddir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$out")"
  for f in "$@"; do
    [[ -s "$moddir/$f" ]] || die "no $f in $mod ($moddir)"
    install -m 0644 "$moddir/$f" "$DIR/$(basename "$f")"
  done
}
copy "github.com/argoproj/argo-cd/v3@$ARGO" manifests/crds/application-crd.yaml manifests/crds/appproject-crd.yaml
copy "github.com/fluxcd/kustomize-controller@$KUST" config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml
copy "github.com/fluxcd/source-controller@$SRC" config/crd/bases/source.toolkit.fluxcd.io_gitrepositories.yaml
printf '%s\n' "$STAMP" >"$DIR/.stamp"
log "Argo CD $ARGO and Flux (kustomize-controller $KUST, source-controller $SRC) CRDs in $((SECONDS - start))s: $DIR"
