#!/usr/bin/env bash
# Rollout benchmark on the real control plane: a kwok cluster of N nodes (default 1,000:
# 3 control-plane + N-3 workers at v1.33.4), a hand-written DirectUpdate to 1.34.2 with
# `concurrency: C` (default 50), `cupcake run --rollout-only` and `cupcake-agent simulate
# --all-nodes` with S-second steps (default 1s). Prints:
#   makespan against the lower bound (control-plane nodes + ceil(workers / C)) x the agent's
#   own work per node (its steps x S); the controller's reaction time (the agent reports
#   completed -> the node is verified and released, p50/p95); controller CPU and peak RSS.
#
# Usage: tests/bench/rollout.sh [--nodes N] [--concurrency C] [--step-seconds S]
#        tests/bench/rollout.sh --report DIR     (the figures of a finished run again)
# Needs: the harness (tests/harness/build.sh), release builds of cupcake and cupcake-agent
# (`cargo build --release --bin cupcake --bin cupcake-agent`).
set -euo pipefail
cd "$(dirname "$0")/../.."
nodes=1000 conc=50 step=1
report_dir=
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --concurrency) conc=$2; shift 2 ;;
    --step-seconds) step=$2; shift 2 ;;
    --report) report_dir=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 1 ;;
  esac
done
# The figures, from a finished run's directory (du.json, agents.log, agents/, run.txt).
report() {
  python3 - "$1" <<'PY'
import glob, json, math, os, re, sys
from datetime import datetime
d = sys.argv[1]
nodes, cps, conc, step, t0, t1, peak_kib, cpu, phase = open(os.path.join(d, "run.txt")).read().split()
nodes, cps, conc, step = int(nodes), int(cps), int(conc), float(step)
t0, t1, peak_kib, cpu = float(t0), float(t1), int(peak_kib), float(cpu)
def ts(s): return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
st = json.load(open(os.path.join(d, "du.json")))["status"]
ns = st["nodes"]
# The agent's own work per node: its steps x the step duration (the simulated executor waits exactly that).
ops = glob.glob(os.path.join(d, "agents", "*", "operation-*"))
steps = len(glob.glob(os.path.join(ops[0], "step-*.done"))) if ops else 0
work = steps * step
workers = nodes - cps
bound = (cps + math.ceil(workers / conc)) * work
makespan = t1 - t0
node_times = sorted(ts(n["completedAt"]) - ts(n["startedAt"]) for n in ns.values() if "completedAt" in n and "startedAt" in n)
node_time = node_times[len(node_times) // 2] if node_times else float("nan")
# Reaction: the agent reports `completed` (its log) -> the controller has verified and released the node (status completedAt).
done = {}
for line in open(os.path.join(d, "agents.log")):
    m = re.match(r"(\S+Z)\s+INFO (\S+): operation completed", line)
    if m:
        done[m.group(2)] = ts(m.group(1))
reactions = sorted(ts(n["completedAt"]) - done[name] for name, n in ns.items() if name in done and "completedAt" in n)
def pct(p): return reactions[min(len(reactions) - 1, int(p * len(reactions)))] * 1000 if reactions else float("nan")
print(f"phase                 {phase} ({st.get('progress')})")
print(f"nodes                 {nodes} ({cps} control plane), concurrency {conc}, {steps} steps of {step}s")
print(f"makespan              {makespan:.1f} s")
print(f"lower bound           {bound:.1f} s  = ({cps} + ceil({workers}/{conc})) x {steps} x {step}s")
print(f"makespan / bound      {makespan / bound if bound else float('nan'):.2f}")
print(f"node time (median)    {node_time:.2f} s  (cordon to completed; the agent's steps are {work:.1f} s)")
print(f"reaction p50 / p95    {pct(0.5):.0f} ms / {pct(0.95):.0f} ms  (agent completed -> node verified and released, {len(reactions)} nodes)")
print(f"controller CPU        {cpu:.1f} s")
print(f"controller peak RSS   {peak_kib / 1024:.1f} MiB")
PY
}

if [ -n "$report_dir" ]; then report "$report_dir"; exit 0; fi

target=${CARGO_TARGET_DIR:-target}
bin=$target/release
[ -x "$bin/cupcake" ] && [ -x "$bin/cupcake-agent" ] || { echo "build first: cargo build --release --bin cupcake --bin cupcake-agent" >&2; exit 1; }
export PATH="$(tests/harness/build.sh --print-bin-dir):$PATH"
state=$(mktemp -d "${TMPDIR:-/tmp}/cupcake-bench.XXXXXX")
cleanup() { kill "${pids[@]}" 2>/dev/null || true; tests/harness/down.sh --dir "$state/h" >/dev/null 2>&1 || true; }
pids=()
trap cleanup EXIT
eval "$(tests/harness/up.sh --dir "$state/h" --nodes "$nodes" --kubelet-version v1.33.4)"
kubectl apply --server-side -f crds/ >/dev/null
# kubeadm's static pods on the control-plane nodes (kwok does not make them).
for n in $(kubectl get nodes -l node-role.kubernetes.io/control-plane -o name | cut -d/ -f2); do
  for c in kube-apiserver kube-controller-manager kube-scheduler; do
    cat <<Y
{"apiVersion":"v1","kind":"Pod","metadata":{"name":"$c-$n","namespace":"kube-system","labels":{"component":"$c"},"annotations":{"kubernetes.io/config.mirror":"bench"}},"spec":{"nodeName":"$n","tolerations":[{"operator":"Exists"}],"containers":[{"name":"$c","image":"registry.k8s.io/$c:v1.33.4"}]}}
Y
  done
done | kubectl apply -f - >/dev/null
cps=$(kubectl get nodes -l node-role.kubernetes.io/control-plane -o name | wc -l)
"$bin/cupcake-agent" simulate --all-nodes --state-dir "$state/agents" --step-duration "${step}s" >"$state/agents.log" 2>&1 &
pids+=($!)
"$bin/cupcake" run --rollout-only --listen 127.0.0.1:0 --lease-namespace default --identity bench >"$state/controller.log" 2>&1 &
ctl=$!
pids+=($ctl)
sleep 2
kubectl apply -f - >/dev/null <<Y
apiVersion: cupcake.ricardomolendijk.com/v1
kind: DirectUpdate
metadata: {name: bench}
spec: {targetVersion: "1.34.2", concurrency: $conc, nodeTimeout: 30m}
Y
t0=$(date +%s.%N)
peak=0
while :; do
  phase=$(kubectl get du bench -o jsonpath='{.status.phase}' 2>/dev/null || true)
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$ctl/status" 2>/dev/null || echo 0)
  [ "${rss:-0}" -gt "$peak" ] && peak=$rss
  case "$phase" in Succeeded|Failed|RequiresAttention) break ;; esac
  sleep 1
done
t1=$(date +%s.%N)
cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$ctl/stat")
kubectl get du bench -o json >"$state/du.json"
printf '%s %s %s %s %s %s %s %s %s\n' "$nodes" "$cps" "$conc" "$step" "$t0" "$t1" "$peak" "$cpu" "$phase" >"$state/run.txt"
report "$state"
echo "data kept in $state (tests/bench/rollout.sh --report $state prints this again)"
