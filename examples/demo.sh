#!/usr/bin/env bash
# The whole GitOps loop on one machine: merge a version bump, watch the cluster upgrade,
# read what happened in Git.
#
# It starts, all on 127.0.0.1 and all stopped again when it exits:
#   - the real control plane of tests/harness/ (etcd, kube-apiserver, controller manager,
#     scheduler, kwok) with 1 control-plane node (and its kube-apiserver-, kube-controller-
#     manager-, kube-scheduler- static pods) and N workers, all kwok nodes at v1.33.4, plus a
#     Deployment of 3 pods with a PodDisruptionBudget (maxUnavailable 1) in namespace demo;
#   - a fleet repo served over smart HTTP (lighttpd + git http-backend, Basic auth with a
#     token), or a plain bare repository path when lighttpd is not installed;
#   - `cupcake run --repo … --cluster demo --poll 5s --webhook-secret-file …` (the GitOps loop
#     and the rollout controller) and `cupcake-agent simulate --all-nodes` (one simulated
#     agent per node);
# then pushes `kubernetesVersion: 1.33.4 -> 1.34.2`, sends the signed GitHub push webhook
# (curl + openssl HMAC-SHA256), follows the DirectUpdate to Succeeded and prints the status
# file the loop committed to the branch cupcake/status.
#
# Usage: examples/demo.sh [--keep] [--step-duration D] [--workers N] [--no-build]
#                         [--bin-dir DIR] [--timeout SECONDS]
#   --keep             leave everything running at the end (prints how to stop it)
#   --step-duration D  how long each simulated host step takes (default 1s; 100ms is quick)
#   --workers N        worker nodes (default 3)
#   --no-build         do not run cargo; use the binaries in --bin-dir
#   --bin-dir DIR      where cupcake and cupcake-agent are (default ${CARGO_TARGET_DIR:-target}/debug)
#   --timeout SECONDS  give up waiting for the rollout after this long (default 300)
#   --local-repo       serve no HTTP: cupcake follows the bare repository by its path (what
#                      happens anyway when lighttpd is not installed)
# Needs: the harness binaries (tests/harness/build.sh builds and caches them on first use;
# that first build takes 10-25 minutes), git, curl, openssl; lighttpd for the HTTP server.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

keep=0 step=1s workers=3 build=1 bin_dir="" timeout=300 http=1
while (($#)); do
  case "$1" in
    --keep) keep=1; shift ;;
    --step-duration|--steps-duration) step="${2:?$1 needs a duration}"; shift 2 ;;
    --workers) workers="${2:?--workers needs a number}"; shift 2 ;;
    --no-build) build=0; shift ;;
    --bin-dir) bin_dir="${2:?--bin-dir needs a path}"; shift 2 ;;
    --timeout) timeout="${2:?--timeout needs seconds}"; shift 2 ;;
    --local-repo) http=0; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument $1 (see --help)" >&2; exit 1 ;;
  esac
done
[[ "$workers" =~ ^[0-9]+$ ]] || { echo "demo.sh: --workers wants a number" >&2; exit 1; }
[[ "$timeout" =~ ^[0-9]+$ ]] || { echo "demo.sh: --timeout wants seconds" >&2; exit 1; }

exec 4>&2 # die() reports on the original stderr, also from inside wait_for's redirections
say() { printf '[demo] %s\n' "$*"; }
die() { printf '[demo] ERROR: %s\n' "$*" >&4; exit 1; }
for c in git curl openssl; do command -v "$c" >/dev/null || die "$c is needed (apt-get install $c)"; done

# ---- binaries ---------------------------------------------------------------------------------
target="${CARGO_TARGET_DIR:-$ROOT/target}"
bin_dir="${bin_dir:-$target/debug}"
if ((build)); then
  say "building cupcake and cupcake-agent (cargo build, into $target)"
  cargo build -q --bin cupcake --bin cupcake-agent
fi
for b in cupcake cupcake-agent; do
  [[ -x "$bin_dir/$b" ]] || die "$bin_dir/$b not found (drop --no-build, or give --bin-dir)"
done
CUPCAKE="$bin_dir/cupcake"
AGENT="$bin_dir/cupcake-agent"

# ---- cleanup ----------------------------------------------------------------------------------
STATE="$(mktemp -d "${TMPDIR:-/tmp}/cupcake-demo.XXXXXX")"
mkdir -p "$STATE/logs"
pids=()
harness_up=0
finished=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((keep && finished)); then return; fi
  if ((rc != 0)); then
    say "failed (exit $rc); the last lines of the logs:"
    for f in "$STATE"/logs/cupcake.log "$STATE"/logs/agents.log; do
      [[ -s "$f" ]] && { echo "--- $f"; tail -n 25 "$f"; }
    done
  fi
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if ((harness_up)); then tests/harness/down.sh --dir "$STATE/harness" >/dev/null 2>&1 || true; fi
  if ((rc == 0)); then rm -rf "$STATE"; else say "logs kept in $STATE/logs and $STATE/harness/logs"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A loopback port nobody listens on.
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "no free port found"
}
# wait_for DESCRIPTION SECONDS COMMAND...: run COMMAND every 0.2s until it succeeds.
wait_for() {
  local what="$1" secs="$2"; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < end)) || die "timed out after ${secs}s waiting for $what"
    sleep 0.2
  done
}

# ---- the control plane and its kwok nodes -----------------------------------------------------
say "starting the control plane (tests/harness/up.sh) with 1 control-plane node and $workers workers at v1.33.4"
harness_up=1
eval "$(tests/harness/up.sh --dir "$STATE/harness" --scheduler --nodes $((workers + 1)) \
  --control-planes 1 --kubelet-version v1.33.4 2>"$STATE/logs/up.log")" \
  || { cat "$STATE/logs/up.log" >&2; die "the control plane did not start"; }
export PATH="$CUPCAKE_HARNESS_BIN:$PATH"
kubectl apply --server-side -f crds/ >/dev/null
# kubeadm's static pods on the control-plane node (the controller verifies their image tags).
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  cat <<Y
---
apiVersion: v1
kind: Pod
metadata:
  name: $c-kwok-cp-1
  namespace: kube-system
  labels: {component: $c, tier: control-plane}
  annotations: {kubernetes.io/config.mirror: demo}
spec:
  nodeName: kwok-cp-1
  tolerations: [{operator: Exists}]
  containers: [{name: $c, image: "registry.k8s.io/$c:v1.33.4"}]
Y
done | kubectl apply -f - >/dev/null
# A workload whose PodDisruptionBudget the drains respect.
kubectl apply -f - >/dev/null <<'Y'
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: registry.k8s.io/pause:3.10}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: demo}
spec:
  maxUnavailable: 1
  selector: {matchLabels: {app: web}}
Y
ready_pods() { [[ "$(kubectl -n demo get deploy web -o jsonpath='{.status.readyReplicas}')" == 3 ]]; }
wait_for "the Deployment's 3 pods Ready" 120 ready_pods

# ---- the fleet repo ---------------------------------------------------------------------------
mkdir -p "$STATE/git" "$STATE/work"
git init -q --bare -b main "$STATE/git/fleet.git"
git -C "$STATE/git/fleet.git" config http.receivepack true
auth_flag=()
LIGHTTPD="$(command -v lighttpd || true)"
[[ -z "$LIGHTTPD" && -x /usr/sbin/lighttpd ]] && LIGHTTPD=/usr/sbin/lighttpd
if ((http)) && [[ -n "$LIGHTTPD" && -x /usr/lib/git-core/git-http-backend ]]; then
  token="demo-$(openssl rand -hex 8)"
  git_port=$(free_port)
  printf 'x-access-token:%s\n' "$token" >"$STATE/git/users"
  printf '%s\n' "$token" >"$STATE/git-token"
  cat >"$STATE/git/lighttpd.conf" <<C
server.document-root = "$STATE/git"
server.port = $git_port
server.bind = "127.0.0.1"
server.modules = ("mod_alias", "mod_auth", "mod_authn_file", "mod_setenv", "mod_cgi")
server.errorlog = "$STATE/logs/lighttpd.log"
alias.url = ("/git/" => "/usr/lib/git-core/git-http-backend/")
\$HTTP["url"] =~ "^/git/" {
  cgi.assign = ("" => "")
  setenv.set-environment = ("GIT_PROJECT_ROOT" => "$STATE/git", "GIT_HTTP_EXPORT_ALL" => "1")
}
auth.backend = "plain"
auth.backend.plain.userfile = "$STATE/git/users"
auth.require = ("/git/" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
C
  "$LIGHTTPD" -D -f "$STATE/git/lighttpd.conf" >"$STATE/logs/lighttpd.out" 2>&1 &
  pids+=($!)
  wait_for "lighttpd on port $git_port" 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$git_port"
  REPO="http://127.0.0.1:$git_port/git/fleet.git"
  push_url="http://x-access-token:$token@127.0.0.1:$git_port/git/fleet.git"
  auth_flag=(--git-token-file "$STATE/git-token")
  say "fleet repo: $REPO (lighttpd + git http-backend, Basic auth; cupcake reads the token from a file)"
else
  REPO="$STATE/git/fleet.git"
  push_url="$REPO"
  if ((http)); then
    say "lighttpd is not installed (apt-get install lighttpd): the fleet repo is the bare repository $REPO, followed by its path"
  else
    say "fleet repo: the bare repository $REPO, followed by its path (--local-repo)"
  fi
fi
W="$STATE/work"
git -C "$W" init -q -b main
git -C "$W" config user.name "Demo User"
git -C "$W" config user.email demo@example.com
git -C "$W" remote add origin "$push_url"
mkdir -p "$W/clusters/demo"
cat >"$W/versions.yaml" <<'Y'
apiVersion: cupcake.ricardomolendijk.com/v1
kind: VersionCatalog
metadata:
  name: kubernetes
spec:
  versions: [1.33.4, 1.34.0, 1.34.2]
Y
cluster_yaml() {
  cat <<Y
apiVersion: cupcake.ricardomolendijk.com/v1
kind: ClusterVersion
metadata:
  name: demo
spec:
  kubernetesVersion: $1
  components: [kubeadm, kubelet, kubectl]
  drain:
    timeout: 2m
  backup:
    etcd: false        # the demo has no object store for etcd snapshots
Y
}
cluster_yaml 1.33.4 >"$W/clusters/demo/cluster.yaml"
git -C "$W" add -A
git -C "$W" commit -q -m "demo cluster at 1.33.4"
git -C "$W" push -q origin main
first=$(git -C "$W" rev-parse HEAD)

# ---- cupcake run and the simulated agents -----------------------------------------------------
secret="demo-$(openssl rand -hex 16)"
printf '%s\n' "$secret" >"$STATE/webhook-secret"
port=$(free_port)
"$AGENT" simulate --all-nodes --state-dir "$STATE/agents" --step-duration "$step" \
  >"$STATE/logs/agents.log" 2>&1 &
pids+=($!)
# TMPDIR: cupcake keeps its mirror of the fleet repo in $TMPDIR/cupcake-git-<hash>; in the
# demo's state dir it goes away with everything else.
mkdir -p "$STATE/tmp"
TMPDIR="$STATE/tmp" "$CUPCAKE" run --kubeconfig "$KUBECONFIG" --listen "127.0.0.1:$port" \
  --lease-namespace default --identity cupcake-demo \
  --repo "$REPO" --branch main --cluster demo --poll 5s "${auth_flag[@]}" \
  --webhook-secret-file "$STATE/webhook-secret" --status-branch cupcake/status \
  >"$STATE/logs/cupcake.log" 2>&1 &
cupcake_pid=$!
pids+=($cupcake_pid)

# The status file as the loop last pushed it ("" while there is none).
status_file() {
  git -C "$W" fetch -q origin '+refs/heads/*:refs/remotes/origin/*' 2>/dev/null || true
  git -C "$W" show origin/cupcake/status:status/demo.yaml 2>/dev/null || true
}
status_shows() { status_file | grep -q -- "$1"; }
alive() { kill -0 "$cupcake_pid" 2>/dev/null || die "cupcake run exited: see $STATE/logs/cupcake.log"; }
first_status() { alive; status_shows "revision: $first"; }
wait_for "the first status file (cupcake run is up and evaluated $first)" 60 first_status
say "cupcake run follows $REPO (branch main) for cluster demo; the cluster is up to date:"
status_file | sed 's/^/    /'

cat <<M

[demo] What to watch, in another terminal:
    export KUBECONFIG=$KUBECONFIG PATH=$CUPCAKE_HARNESS_BIN:\$PATH
    kubectl get du -w                                  # the DirectUpdate, node by node
    kubectl get nodes -w                               # cordons and kubelet versions
    watch -n1 'git -C $W fetch -q origin cupcake/status && git -C $W show FETCH_HEAD:status/demo.yaml'
    curl -s http://127.0.0.1:$port/metrics | grep -E '^cupcake_(git|gitops|status|webhook)'
    tail -f $STATE/logs/cupcake.log
M

# ---- the change ------------------------------------------------------------------------------
say "pushing the bump: kubernetesVersion 1.33.4 -> 1.34.2"
cluster_yaml 1.34.2 >"$W/clusters/demo/cluster.yaml"
git -C "$W" commit -q -am "bump demo to 1.34.2"
git -C "$W" push -q origin main
bump=$(git -C "$W" rev-parse HEAD)
t_push=$(date +%s%N)
body="{\"ref\":\"refs/heads/main\",\"before\":\"$first\",\"after\":\"$bump\"}"
sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" | awk '{print $NF}')
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/hooks/github" \
  -H 'X-GitHub-Event: push' -H 'Content-Type: application/json' -H "X-GitHub-Delivery: demo-$(date +%s%N)" \
  -H "X-Hub-Signature-256: sha256=$sig" --data-binary "$body")
say "sent the signed push webhook: HTTP $code"
[[ "$code" == 202 ]] || die "the webhook answered $code, not 202"
du_name() { kubectl get du -o jsonpath='{range .items[?(@.spec.targetVersion=="1.34.2")]}{.metadata.name}{end}'; }
has_du() { alive; [[ -n "$(du_name)" ]]; }
wait_for "the DirectUpdate for 1.34.2" 30 has_du
name=$(du_name)
say "DirectUpdate $name applied $(( ($(date +%s%N) - t_push) / 1000000 )) ms after the push (commit ${bump:0:7})"

# ---- the rollout -----------------------------------------------------------------------------
end=$((SECONDS + timeout))
t0=$SECONDS
last=""
while :; do
  alive
  line=$(kubectl get du "$name" -o jsonpath='{.status.phase} {.status.progress}' 2>/dev/null || true)
  if [[ "$line" != "$last" ]]; then
    say "  $(printf '%4ss' $((SECONDS - t0)))  $name  ${line:-Pending}"
    last=$line
  fi
  case "${line%% *}" in
    Succeeded) break ;;
    Failed|RequiresAttention|Cancelled)
      kubectl get du "$name" -o yaml >&2
      die "the DirectUpdate ended in ${line%% *}" ;;
  esac
  ((SECONDS < end)) || die "the rollout did not finish within ${timeout}s"
  sleep 0.5
done
say "every node now runs:"
kubectl get nodes -o custom-columns='NODE:.metadata.name,KUBELET:.status.nodeInfo.kubeletVersion,UNSCHEDULABLE:.spec.unschedulable' | sed 's/^/    /'
succeeded_in_git() { alive; status_shows "phase: Succeeded" && status_shows "revision: $bump"; }
wait_for "the status file to show Succeeded" 60 succeeded_in_git
say "the status file on branch cupcake/status (git show origin/cupcake/status:status/demo.yaml):"
status_file | sed 's/^/    /'
say "Succeeded: $name upgraded cluster demo to 1.34.2 in $((SECONDS - t0))s; Git shows it on cupcake/status"

finished=1
if ((keep)); then
  cat >"$STATE/stop.sh" <<S
#!/usr/bin/env bash
# Stops what examples/demo.sh --keep left running, by PID, and removes its state.
kill ${pids[*]} 2>/dev/null || true
'$ROOT/tests/harness/down.sh' --dir '$STATE/harness' >/dev/null 2>&1 || true
rm -rf '$STATE'
echo "[demo] stopped"
S
  chmod +x "$STATE/stop.sh"
  cat <<M
[demo] still running (--keep). Try another bump:
    cd $W && sed -i 's/1.34.2/1.35.1/' clusters/demo/cluster.yaml && git commit -qam 1.35.1 && git push -q origin main
    (picked up by the next poll, within 5s: 1.35.1 is not in versions.yaml, so the gate denies
    it and the status file names the rule)
[demo] stop everything with: $STATE/stop.sh
M
fi
