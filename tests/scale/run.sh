#!/usr/bin/env bash
# Scale figures on the real control plane (issue 13): a kwok cluster of N nodes (default
# 5,000: 3 control-plane, the rest workers, at v1.33.4) with P pods bound to the workers
# (default 50,000) in apps of 100 pods, one PodDisruptionBudget per app (default 500,
# minAvailable 90 of 100: an integer, as the disruption controller wants for bare pods), then, with release builds:
#   1. `cupcake run --rollout-only` idle: RSS and CPU over --idle seconds once its caches are
#      ready (it watches every Node, Pod, PDB and DirectUpdate of the cluster);
#   2. live plan + gate: `cupcake plan FLEET --cluster scale --live` (list the cluster, build
#      the snapshot, plan, evaluate the policy pack), wall time and peak RSS of each of 5 runs;
#      and `cupcake snapshot -f FILE` once (whole objects printed as a kubectl List);
#   2b. the controller's own live plan + gate: `cupcake run --repo` (the GitOps loop) on a local
#      bare repo of the same fleet under a freeze (verdict defer, nothing rolls out), 5 pushes,
#      each evaluation's time from its log (from the watch caches once ready);
#   2c. that full controller idle (default 60 s poll): RSS and CPU over --idle seconds;
#   3. one agent idle: `cupcake-agent --node-name kwok-worker-1 --executor simulate` (watches
#      only its own Node), RSS over 20 s;
# The rollout at scale (makespan against its lower bound, reaction time, the controller's
# RSS and CPU while it drives 1,000 nodes) is tests/bench/rollout.sh. The pods here are bare
# pods (no controller recreates an evicted one), so this script does not roll out: evictions
# would eat the PDB budgets for good.
#
# Usage: tests/scale/run.sh [--nodes N] [--pods P] [--pdbs B] [--idle SECONDS] [--no-build]
#                           [--keep | --reuse DIR]
#   --keep       leave the cluster running at the end (stop it with
#                tests/harness/down.sh --dir DIR/h) so that --reuse can measure again
#   --reuse DIR  measure on the cluster a --keep run left in DIR (no populating; --nodes,
#                --pods and --pdbs must be the ones it was built with)
# Figures go to stdout and to DIR/figures.txt; the data stays in DIR (printed at the end).
# 5,000 nodes / 50,000 pods take about 15-25 minutes on 2 cores to populate.
set -euo pipefail
cd "$(dirname "$0")/../.."
nodes=5000 pods=50000 pdbs=500 idle=60 conc=50 build=1 keep=0 reuse=""
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --pods) pods=$2; shift 2 ;;
    --pdbs) pdbs=$2; shift 2 ;;
    --idle) idle=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --keep) keep=1; shift ;;
    --reuse) reuse=$2; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 1 ;;
  esac
done
for v in nodes pods pdbs idle; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "--$v wants a whole number, got '${!v}'" >&2; exit 1; }
done
((nodes >= 4)) || { echo "--nodes wants at least 4 (3 control-plane nodes and a worker)" >&2; exit 1; }
((pdbs >= 1 && pods >= pdbs)) || { echo "--pods must be at least --pdbs (>= 1)" >&2; exit 1; }

target=${CARGO_TARGET_DIR:-target}
bin=$target/release
if ((build)); then cargo build -q --release --bin cupcake --bin cupcake-agent; fi
[ -x "$bin/cupcake" ] && [ -x "$bin/cupcake-agent" ] || { echo "build first: cargo build --release --bin cupcake --bin cupcake-agent" >&2; exit 1; }
export PATH="$(tests/harness/build.sh --print-bin-dir):$PATH"
if [ -n "$reuse" ]; then
  state=$reuse
  [ -f "$state/h/kubeconfig" ] || { echo "--reuse $reuse: no cluster there ($reuse/h/kubeconfig missing)" >&2; exit 1; }
else
  state=$(mktemp -d "${TMPDIR:-/tmp}/cupcake-scale.XXXXXX")
fi
mkdir -p "$state/logs"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if ((keep)) || [ -n "$reuse" ]; then
    echo "cluster left running: tests/scale/run.sh --reuse $state ...; stop it with tests/harness/down.sh --dir $state/h" >&2
  else
    tests/harness/down.sh --dir "$state/h" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
say() { printf '[scale] %s\n' "$*" >&2; }
fig() { printf '%s\n' "$*" | tee -a "$state/figures.txt"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# wait_log PID LOG PATTERN WHAT: until LOG has PATTERN (10 minutes at most, while PID lives);
# the seconds it took in $waited.
wait_log() {
  local p=$1 log=$2 pat=$3 what=$4 t=$SECONDS
  until grep -q "$pat" "$log" 2>/dev/null; do
    kill -0 "$p" 2>/dev/null || { tail -20 "$log" >&2; exit 1; }
    ((SECONDS - t < 600)) || { echo "$what: not in 10 minutes" >&2; exit 1; }
    sleep 0.5
  done
  waited=$((SECONDS - t))
}
# idle_figures PID: its RSS (mean, max, peak since start) and CPU over --idle seconds, as text.
idle_figures() {
  local p=$1 c0 c1 r sum=0 n=0 max=0 i
  c0=$(cpu_s "$p")
  for ((i = 0; i < idle; i++)); do
    r=$(rss_kib "$p"); sum=$((sum + r)); n=$((n + 1)); ((r > max)) && max=$r
    sleep 1
  done
  c1=$(cpu_s "$p")
  printf 'RSS mean %s MiB, max %s MiB over %s s (peak since start %s MiB); CPU %s of one core' \
    "$(mib $((sum / n)))" "$(mib "$max")" "$idle" "$(mib "$(hwm_kib "$p")")" \
    "$(awk -v a="$c0" -v b="$c1" -v s="$idle" 'BEGIN { printf "%.1f%%", (b - a) / s * 100 }')"
}

# ---- the cluster ---------------------------------------------------------------------------------
if [ -n "$reuse" ]; then
  export KUBECONFIG=$state/h/kubeconfig
  kubectl get --raw /readyz >/dev/null || { echo "--reuse $reuse: its cluster does not answer" >&2; exit 1; }
  : >"$state/figures.txt"
else
t=$SECONDS
eval "$(tests/harness/up.sh --dir "$state/h" --nodes "$nodes" --control-planes 3 --kubelet-version v1.33.4 2>"$state/logs/up.log")"
say "$nodes nodes Ready in $((SECONDS - t)) s"
kubectl apply --server-side -f crds/ >/dev/null
kubectl create namespace scale >/dev/null
# kubeadm's static pods on the control-plane nodes, the apps' pods bound to workers
# round-robin (kwok runs them), and a PDB per app; created in chunks, four at a time
# (kubectl creates a file's objects one request after another).
workers=$((nodes - 3))
per_app=$(( (pods + pdbs - 1) / pdbs ))
python3 - "$state/objects" "$workers" "$pods" "$pdbs" "$per_app" <<'PY'
import json, os, sys
out, workers, pods, pdbs, per_app = sys.argv[1], *map(int, sys.argv[2:])
os.makedirs(out)
chunk, n, items = 0, 0, []
def flush():
    global chunk, items
    if items:
        json.dump({"apiVersion": "v1", "kind": "List", "items": items}, open(f"{out}/chunk-{chunk:04}.json", "w"))
        chunk, items = chunk + 1, []
for cp in (1, 2, 3):
    for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        items.append({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{c}-kwok-cp-{cp}", "namespace": "kube-system", "labels": {"component": c},
                         "annotations": {"kubernetes.io/config.mirror": "scale"}},
            "spec": {"nodeName": f"kwok-cp-{cp}", "tolerations": [{"operator": "Exists"}],
                     "containers": [{"name": c, "image": f"registry.k8s.io/{c}:v1.33.4"}]}})
for a in range(pdbs):
    items.append({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": f"app-{a}", "namespace": "scale"},
        "spec": {"minAvailable": per_app * 9 // 10, "selector": {"matchLabels": {"app": f"app-{a}"}}}})
flush()
for i in range(pods):
    app = min(i // per_app, pdbs - 1)
    items.append({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"app-{app}-{i}", "namespace": "scale", "labels": {"app": f"app-{app}"}},
        "spec": {"nodeName": f"kwok-worker-{i % workers + 1}", "tolerations": [{"operator": "Exists"}],
                 "containers": [{"name": "app", "image": "registry.example/app:1"}]}})
    if len(items) == 1000:
        flush()
flush()
PY
t=$SECONDS
ls "$state"/objects/chunk-*.json | xargs -P 4 -I{} sh -c 'kubectl create -f "$1" >/dev/null 2>>"$2"' _ {} "$state/logs/create.err" \
  || { tail -5 "$state/logs/create.err" >&2; exit 1; }
say "$pods pods and $pdbs PDBs created in $((SECONDS - t)) s"
# Count the pods not Running yet, from the watch cache (resourceVersion=0): listing every
# pod each time loaded the apiserver kwok needs to mark them Running.
pending() {
  kubectl get --raw "/api/v1/namespaces/scale/pods?resourceVersion=0&fieldSelector=status.phase%21%3DRunning" --request-timeout=60s 2>/dev/null \
    | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["items"]))' 2>/dev/null || echo "$pods"
}
until [ "$(pending)" -eq 0 ]; do
  ((SECONDS - t < 3600)) || { echo "pods did not all run within an hour" >&2; exit 1; }
  sleep 10
done
say "all $pods pods Running $((SECONDS - t)) s after creation"
fi

fig "cluster: $nodes kwok nodes (3 control plane), $pods pods in $pdbs apps with a PDB each (minAvailable 90% as an integer), harness on one 2-core machine"

# ---- 1. the controller idle ----------------------------------------------------------------------
"$bin/cupcake" run --rollout-only --listen 127.0.0.1:0 --lease-namespace default --identity scale \
  >"$state/logs/controller.log" 2>&1 &
ctl=$!
pids+=($ctl)
wait_log "$ctl" "$state/logs/controller.log" 'caches ready' "the controller's caches"
ready_s=$waited
sleep 5   # the initial lists settle
fig "controller idle: caches ready after ${ready_s} s; $(idle_figures "$ctl")"

# ---- 2. live plan + gate -------------------------------------------------------------------------
fleet="$state/fleet"
mkdir -p "$fleet/clusters/scale"
cat >"$fleet/versions.yaml" <<Y
apiVersion: cupcake.ricardomolendijk.com/v1
kind: VersionCatalog
metadata: {name: kubernetes}
spec: {versions: [1.33.4, 1.34.0, 1.34.2]}
Y
cat >"$fleet/clusters/scale/cluster.yaml" <<Y
apiVersion: cupcake.ricardomolendijk.com/v1
kind: ClusterVersion
metadata: {name: scale}
spec:
  kubernetesVersion: 1.34.2
  concurrency: $conc
  backup: {etcd: false}
Y
times=()
for i in 1 2 3 4 5; do
  /usr/bin/time -f '%e %M' -o "$state/plan-time-$i" "$bin/cupcake" plan "$fleet" --cluster scale --live -o json \
    >"$state/plan-$i.json" 2>"$state/logs/plan-$i.err" || [ $? -le 3 ] || { cat "$state/logs/plan-$i.err" >&2; exit 1; }
  times+=("$(tail -1 "$state/plan-time-$i")")   # (after a "Command exited with non-zero status" line)
done
fig "live plan + gate (5 runs, wall s / peak RSS MiB): $(for x in "${times[@]}"; do set -- $x; printf '%s/%s ' "$1" "$(mib "$2")"; done)"
fig "  verdict $(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["decision"]["verdict"], "-", len(r.get("plan", {}).get("stages", [])), "stages")' "$state/plan-1.json" 2>/dev/null || echo '?')"

# `cupcake snapshot` (whole objects printed as kubectl's YAML List: the file a user keeps) once.
/usr/bin/time -f '%e %M' -o "$state/snapshot-time" "$bin/cupcake" snapshot -f "$state/snapshot.yaml" \
  2>"$state/logs/snapshot.err" || { cat "$state/logs/snapshot.err" >&2; exit 1; }
set -- $(tail -1 "$state/snapshot-time")
fig "cupcake snapshot (the kubectl List file, $(du -m "$state/snapshot.yaml" | cut -f1) MB): $1 s, peak RSS $(mib "$2") MiB"
rm -f "$state/snapshot.yaml"

# ---- 2b. the controller's own live plan + gate: the GitOps loop, from its watch caches ----------
# The full controller (`cupcake run --repo`: rollout controller, schedule controllers, GitOps
# loop) follows a local bare repository of the same fleet, with a freeze in force so that the
# verdict is defer and nothing rolls out. Each of 5 pushes is a new revision the loop
# evaluates against the live cluster; the controller logs each evaluation's time
# (`evaluated the desired state`: observe_ms, plan_gate_ms, total_ms, cluster_from).
kill "$ctl" 2>/dev/null || true
wait "$ctl" 2>/dev/null || true
repo="$state/fleet.git" work="$state/fleet-work"
rm -rf "$repo" "$work"
git init -q --bare -b main "$repo"
cp -r "$fleet" "$work"
cat >"$work/clusters/scale/schedule.yaml" <<Y
apiVersion: cupcake.ricardomolendijk.com/v1
kind: UpdateSchedule
metadata: {name: scale}
spec:
  windows:
    - {days: [Mon, Tue, Wed, Thu, Fri, Sat, Sun], startTime: "00:00", endTime: "23:59", timeZone: UTC}
  exclusions:
    - {start: "$(date -u -d '-1 day' +%Y-%m-%dT00:00:00Z)", end: "$(date -u -d '+30 days' +%Y-%m-%dT00:00:00Z)", scope: all, reason: scale measurement}
Y
git -C "$work" init -q -b main
git -C "$work" -c user.name=scale -c user.email=scale@example.invalid add -A
git -C "$work" -c user.name=scale -c user.email=scale@example.invalid commit -qm "scale fleet"
git -C "$work" push -q "$repo" main
"$bin/cupcake" run --listen 127.0.0.1:0 --lease-namespace default --identity scale-gitops \
  --repo "$repo" --cluster scale --poll 1s >"$state/logs/controller-gitops.log" 2>&1 &
full=$!
pids+=($full)
evaluations() { grep -c 'evaluated the desired state' "$state/logs/controller-gitops.log" 2>/dev/null || true; }
wait_evaluations() { # N: until the log has N evaluations (2 minutes at most)
  local t=$SECONDS
  until (($(evaluations) >= $1)); do
    kill -0 "$full" 2>/dev/null || { tail -20 "$state/logs/controller-gitops.log" >&2; exit 1; }
    ((SECONDS - t < 120)) || { echo "no evaluation $1 in 2 minutes" >&2; tail -20 "$state/logs/controller-gitops.log" >&2; exit 1; }
    sleep 0.2
  done
}
wait_evaluations 1
until grep -q 'caches ready' "$state/logs/controller-gitops.log"; do sleep 0.5; done
sleep 2
for i in 1 2 3 4 5; do
  echo "# revision $i" >>"$work/clusters/scale/cluster.yaml"
  git -C "$work" -c user.name=scale -c user.email=scale@example.invalid commit -qam "revision $i"
  git -C "$work" push -q "$repo" main
  wait_evaluations $((i + 1))
done
fig "controller live plan + gate (GitOps loop, 5 revisions; total ms = observe + plan/gate, from): $(grep 'evaluated the desired state' "$state/logs/controller-gitops.log" | tail -5 | sed -E 's/.*cluster_from="?([a-z]+)"? observe_ms=([0-9]+) plan_gate_ms=([0-9]+) total_ms=([0-9]+).*/\4=\2+\3 (\1)/' | tr '\n' ' ')"
fig "  first evaluation (it waits for the caches at start): $(grep 'evaluated the desired state' "$state/logs/controller-gitops.log" | head -1 | sed -E 's/.*cluster_from="?([a-z]+)"? observe_ms=([0-9]+) plan_gate_ms=([0-9]+) total_ms=([0-9]+).*/\4 ms (\1)/')"
fig "  $(grep -o 'verdict: [a-z]*' <(git -C "$repo" show cupcake/status:status/scale.yaml 2>/dev/null) | head -1 || echo 'verdict: ?')"
kill "$full" 2>/dev/null || true
wait "$full" 2>/dev/null || true

# ---- 2c. the full controller idle (GitOps loop at its default 60 s poll) --------------------------
"$bin/cupcake" run --listen 127.0.0.1:0 --lease-namespace default --identity scale-idle \
  --repo "$repo" --cluster scale >"$state/logs/controller-idle.log" 2>&1 &
full=$!
pids+=($full)
wait_log "$full" "$state/logs/controller-idle.log" 'evaluated the desired state' "the full controller's first evaluation"
sleep 5
fig "full controller (GitOps loop every 60 s + schedules + rollout) idle: $(idle_figures "$full"); $(grep -c 'evaluated the desired state' "$state/logs/controller-idle.log") evaluations"
kill "$full" 2>/dev/null || true

# ---- 3. one agent idle ---------------------------------------------------------------------------
"$bin/cupcake-agent" --node-name kwok-worker-1 --executor simulate --state-dir "$state/agent" \
  >"$state/logs/agent.log" 2>&1 &
ag=$!
pids+=($ag)
sleep 5
amax=0
for ((i = 0; i < 20; i++)); do r=$(rss_kib "$ag"); ((r > amax)) && amax=$r; sleep 1; done
fig "one agent idle (its own Node only): RSS max $(mib "$amax") MiB over 20 s"
kill "$ag" 2>/dev/null || true

echo "data kept in $state"
