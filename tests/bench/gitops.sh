#!/usr/bin/env bash
# GitOps loop latency: a push to the fleet repo -> the DirectUpdate it asks for exists in the
# cluster, with the GitHub push webhook and with polling alone.
#
# Set-up (all on 127.0.0.1, release builds): the real control plane of tests/harness/ with
# kwok nodes (1 control-plane node with its static pods + W workers, at v1.33.4), a fleet repo
# served over smart HTTP by lighttpd + git http-backend (Basic auth, token from a file),
# `cupcake-agent simulate --all-nodes` with short steps, and `cupcake run --repo …`.
#
# Each push is a real version change that produces a new DirectUpdate: the catalogue lists
# 1.33.4 … 1.33.(4+2N), and push k bumps cluster.yaml to the next patch. After each push the
# bench waits until that DirectUpdate is Succeeded and the loop has written it to the status
# file (so no push meets a DirectUpdate still running, which would make it wait), then waits a
# random 0..poll seconds (so pushes land at random points of the poll cycle), then pushes again.
#   latency = the DirectUpdate's ADDED event reaches a `kubectl get du --watch` started before
#             the run  -  `git push` returned (the server had the new ref).
# Mode "webhook": `cupcake run --poll 60s --webhook-secret-file F`, and right after each push
# the bench POSTs the signed push event (as GitHub would; GitHub's own delivery delay is not in
# the figure). Mode "poll": `cupcake run --poll P` (default 5s), no webhook.
#
# Usage: tests/bench/gitops.sh [--pushes N] [--poll D] [--workers W] [--step-duration D] [--no-build]
#        tests/bench/gitops.sh --report DIR     (the figures of a finished run again)
# Builds cupcake and cupcake-agent with `cargo build --release` into ${CARGO_TARGET_DIR:-target}
# unless --no-build. Takes about 5 minutes with the defaults (20 pushes per mode).
set -euo pipefail
cd "$(dirname "$0")/../.."
pushes=20 poll=5 workers=1 step=50ms build=1 report_dir=
while [ $# -gt 0 ]; do
  case "$1" in
    --pushes) pushes=$2; shift 2 ;;
    --poll) poll=${2%s}; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --step-duration) step=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --report) report_dir=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 1 ;;
  esac
done
[[ "$pushes" =~ ^[0-9]+$ && "$poll" =~ ^[0-9]+$ && "$workers" =~ ^[0-9]+$ ]] \
  || { echo "--pushes, --poll (whole seconds) and --workers want numbers" >&2; exit 1; }

# The figures, from a finished run's directory (pushes.tsv, metrics-*.txt, run.txt).
report() {
  python3 - "$1" <<'PY'
import math, os, sys
d = sys.argv[1]
run = dict(l.split("=", 1) for l in open(os.path.join(d, "run.txt")).read().split())
rows = [l.split("\t") for l in open(os.path.join(d, "pushes.tsv")).read().splitlines() if l]
def rank(xs, p):  # nearest rank
    return xs[max(0, math.ceil(p * len(xs)) - 1)]
print(f"set-up                {run['nodes']} kwok nodes (1 control plane), agent steps of {run['step']}, poll {run['poll']}s in mode poll, 60s in mode webhook")
print(f"{'mode':8} {'pushes':>6} {'p50':>8} {'p95':>8} {'min':>8} {'max':>8} {'mean':>8}   (push -> DirectUpdate, ms)")
for mode in ("webhook", "poll"):
    xs = sorted((float(r[5]) - float(r[4])) * 1000 for r in rows if r[0] == mode)
    if not xs:
        continue
    print(f"{mode:8} {len(xs):>6} {rank(xs, .5):>8.0f} {rank(xs, .95):>8.0f} {xs[0]:>8.0f} {xs[-1]:>8.0f} {sum(xs) / len(xs):>8.0f}")
for mode in ("webhook", "poll"):
    p = os.path.join(d, f"metrics-{mode}.txt")
    if not os.path.exists(p):
        continue
    m = {}
    for l in open(p):
        if l.startswith("cupcake_") and " " in l:
            k, v = l.rsplit(" ", 1)
            m[k] = float(v)
    n = m.get("cupcake_git_fetch_duration_seconds_count", 0)
    s = m.get("cupcake_git_fetch_duration_seconds_sum", 0)
    applies = m.get("cupcake_gitops_applies_total", 0)
    commits = m.get('cupcake_status_file_pushes_total{result="committed"}', 0)
    hooks = m.get('cupcake_webhook_requests_total{result="accepted"}', 0)
    mean = 1000 * s / n if n else float("nan")
    print(f"{mode:8} loop: {n:.0f} fetches, mean fetch {mean:.1f} ms; "
          f"{applies:.0f} applies; {commits:.0f} status commits; {hooks:.0f} webhooks accepted")
PY
}
if [ -n "$report_dir" ]; then report "$report_dir"; exit 0; fi

for c in git curl openssl python3; do command -v "$c" >/dev/null || { echo "$c is needed" >&2; exit 1; }; done
LIGHTTPD=$(command -v lighttpd || echo /usr/sbin/lighttpd)
[ -x "$LIGHTTPD" ] && [ -x /usr/lib/git-core/git-http-backend ] \
  || { echo "needs lighttpd and git http-backend (apt-get install lighttpd git)" >&2; exit 1; }
target=${CARGO_TARGET_DIR:-target}
bin=$target/release
if ((build)); then cargo build -q --release --bin cupcake --bin cupcake-agent; fi
[ -x "$bin/cupcake" ] && [ -x "$bin/cupcake-agent" ] || { echo "build first: cargo build --release --bin cupcake --bin cupcake-agent" >&2; exit 1; }
export PATH="$(tests/harness/build.sh --print-bin-dir):$PATH"
state=$(mktemp -d "${TMPDIR:-/tmp}/cupcake-bench-gitops.XXXXXX")
mkdir -p "$state/logs" "$state/tmp" "$state/git"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  tests/harness/down.sh --dir "$state/h" >/dev/null 2>&1 || true
  rm -rf "$state/tmp"   # the loop's mirror of the fleet repo
}
trap cleanup EXIT
say() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port"
}
# until_ok SECONDS WHAT COMMAND...
until_ok() {
  local end=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do ((SECONDS < end)) || die "timed out waiting for $what"; sleep 0.05; done
}

# ---- cluster ---------------------------------------------------------------------------------
nodes=$((workers + 1))
eval "$(tests/harness/up.sh --dir "$state/h" --nodes "$nodes" --control-planes 1 --kubelet-version v1.33.4 2>"$state/logs/up.log")"
kubectl apply --server-side -f crds/ >/dev/null
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  cat <<Y
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"$c-kwok-cp-1","namespace":"kube-system","labels":{"component":"$c"},"annotations":{"kubernetes.io/config.mirror":"bench"}},"spec":{"nodeName":"kwok-cp-1","tolerations":[{"operator":"Exists"}],"containers":[{"name":"$c","image":"registry.k8s.io/$c:v1.33.4"}]}}
Y
done | kubectl apply -f - >/dev/null

# ---- git server and fleet repo ----------------------------------------------------------------
token="bench-$(openssl rand -hex 8)"
git_port=$(free_port)
git init -q --bare -b main "$state/git/fleet.git"
git -C "$state/git/fleet.git" config http.receivepack true
printf 'x-access-token:%s\n' "$token" >"$state/git/users"
printf '%s\n' "$token" >"$state/git-token"
cat >"$state/git/lighttpd.conf" <<C
server.document-root = "$state/git"
server.port = $git_port
server.bind = "127.0.0.1"
server.modules = ("mod_alias", "mod_auth", "mod_authn_file", "mod_setenv", "mod_cgi")
server.errorlog = "$state/logs/lighttpd.log"
alias.url = ("/git/" => "/usr/lib/git-core/git-http-backend/")
\$HTTP["url"] =~ "^/git/" {
  cgi.assign = ("" => "")
  setenv.set-environment = ("GIT_PROJECT_ROOT" => "$state/git", "GIT_HTTP_EXPORT_ALL" => "1")
}
auth.backend = "plain"
auth.backend.plain.userfile = "$state/git/users"
auth.require = ("/git/" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
C
"$LIGHTTPD" -D -f "$state/git/lighttpd.conf" >/dev/null 2>&1 &
pids+=($!)
until_ok 20 lighttpd bash -c "exec 3<>/dev/tcp/127.0.0.1/$git_port"
repo_url="http://127.0.0.1:$git_port/git/fleet.git"
W="$state/work"
git init -q -b main "$W"
git -C "$W" config user.name bench
git -C "$W" config user.email bench@example.com
git -C "$W" remote add origin "http://x-access-token:$token@127.0.0.1:$git_port/git/fleet.git"
mkdir -p "$W/clusters/demo"
last_patch=$((4 + 2 * pushes + 1))
{
  printf 'apiVersion: cupcake.ricardomolendijk.com/v1\nkind: VersionCatalog\nmetadata:\n  name: kubernetes\nspec:\n  versions:\n'
  for ((p = 4; p <= last_patch; p++)); do printf '    - 1.33.%d\n' "$p"; done
} >"$W/versions.yaml"
cluster_yaml() {
  printf 'apiVersion: cupcake.ricardomolendijk.com/v1\nkind: ClusterVersion\nmetadata:\n  name: demo\nspec:\n  kubernetesVersion: %s\n  components: [kubeadm, kubelet, kubectl]\n  drain:\n    timeout: 1m\n  backup:\n    etcd: false\n' "$1"
}
cluster_yaml 1.33.4 >"$W/clusters/demo/cluster.yaml"
git -C "$W" add -A
git -C "$W" commit -q -m "demo at 1.33.4"
git -C "$W" push -q origin main

# ---- agents and the DirectUpdate watch --------------------------------------------------------
"$bin/cupcake-agent" simulate --all-nodes --state-dir "$state/agents" --step-duration "$step" \
  >"$state/logs/agents.log" 2>&1 &
pids+=($!)
# Every DirectUpdate event, stamped on arrival (EPOCHREALTIME: no fork per line).
# ($! is kubectl's pid: killing it ends the stamping loop too.)
kubectl get du --watch -o 'custom-columns=NAME:.metadata.name,TARGET:.spec.targetVersion,PHASE:.status.phase' \
  --no-headers 2>"$state/logs/watch.err" \
  > >(while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done >"$state/du-events.log") &
pids+=($!)
secret="bench-$(openssl rand -hex 16)"
printf '%s\n' "$secret" >"$state/webhook-secret"
: >"$state/pushes.tsv"
printf 'nodes=%s step=%s poll=%s pushes=%s\n' "$nodes" "$step" "$poll" "$pushes" >"$state/run.txt"

status_shows() {
  git -C "$W" fetch -q origin '+refs/heads/cupcake/status:refs/remotes/origin/cupcake/status' 2>/dev/null || return 1
  local s
  s=$(git -C "$W" show origin/cupcake/status:status/demo.yaml 2>/dev/null) || return 1
  for want in "$@"; do grep -qF -- "$want" <<<"$s" || return 1; done
}
du_seen() { awk -v v="$1" '$3 == v { print $1 " " $2; exit }' "$state/du-events.log"; }
has_du() { [[ -n "$(du_seen "$1")" ]]; }
phase_of() { kubectl get du "$1" -o jsonpath='{.status.phase}' 2>/dev/null; }
succeeded() { [[ "$(phase_of "$1")" == Succeeded ]]; }
version=1.33.4
patch=4

run_mode() { # mode
  local mode=$1 port args=() ctl
  port=$(free_port)
  if [[ $mode == webhook ]]; then
    args=(--poll 60s --webhook-secret-file "$state/webhook-secret")
  else
    args=(--poll "${poll}s")
  fi
  TMPDIR="$state/tmp" "$bin/cupcake" run --listen "127.0.0.1:$port" --lease-namespace default \
    --identity "bench-$mode" --lease-duration 6s --repo "$repo_url" --cluster demo \
    --git-token-file "$state/git-token" "${args[@]}" >"$state/logs/cupcake-$mode.log" 2>&1 &
  ctl=$!
  pids+=($ctl)
  local head
  head=$(git -C "$W" rev-parse HEAD)
  until_ok 60 "cupcake run ($mode) to report $head" status_shows "revision: $head" "desired: $version"
  say "mode $mode: cupcake run is up; $pushes pushes"
  for ((i = 1; i <= pushes; i++)); do
    # A random point of the poll cycle.
    sleep "$(awk -v r="$RANDOM" -v p="$poll" 'BEGIN { printf "%.3f", r / 32768 * p }')"
    patch=$((patch + 1))
    version=1.33.$patch
    cluster_yaml "$version" >"$W/clusters/demo/cluster.yaml"
    git -C "$W" commit -q -am "bump to $version"
    git -C "$W" push -q origin main
    local t_push=$EPOCHREALTIME rev
    rev=$(git -C "$W" rev-parse HEAD)
    if [[ $mode == webhook ]]; then
      local body sig code
      body="{\"ref\":\"refs/heads/main\",\"after\":\"$rev\"}"
      sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" | awk '{print $NF}')
      code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/hooks/github" \
        -H 'X-GitHub-Event: push' -H "X-GitHub-Delivery: bench-$(date +%s%N)-$RANDOM" -H "X-Hub-Signature-256: sha256=$sig" --data-binary "$body")
      [[ $code == 202 ]] || die "webhook answered $code"
    fi
    until_ok 60 "the DirectUpdate for $version" has_du "$version"
    local seen name t_du
    seen=$(du_seen "$version")
    t_du=${seen%% *}
    name=${seen#* }
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$i" "$version" "$rev" "$t_push" "$t_du" "$name" >>"$state/pushes.tsv"
    say "  $mode #$i $version: $(awk -v a="$t_push" -v b="$t_du" 'BEGIN { printf "%.0f", (b - a) * 1000 }') ms ($name)"
    until_ok 120 "$name Succeeded" succeeded "$name"
    until_ok 60 "the status file to show $name Succeeded" status_shows "revision: $rev" "name: $name" "phase: Succeeded"
  done
  curl -s "http://127.0.0.1:$port/metrics" >"$state/metrics-$mode.txt"
  kill "$ctl"
  wait "$ctl" 2>/dev/null || true
}
run_mode webhook
run_mode poll
report "$state"
echo "data kept in $state (tests/bench/gitops.sh --report $state prints this again)"
