#!/usr/bin/env bash
# Rollout benchmark on the real control plane: a kwok cluster of N nodes (default 1,000:
# 3 control-plane + N-3 workers at v1.33.4), a hand-written DirectUpdate to 1.34.2 with
# `concurrency: C` (default 50), `cupcake run --rollout-only` and `cupcake-agent simulate
# --all-nodes` with S-second steps (default 1s). Prints:
#   makespan, the lower bound ceil(workers / C) x node time + control-plane nodes x node time,
#   their ratio; reaction time (a node's completion → the next node's start, p50/p95, from
#   the DirectUpdate's status timestamps); controller CPU seconds and peak RSS.
#
# Usage: tests/bench/rollout.sh [--nodes N] [--concurrency C] [--step-seconds S]
# Needs: the harness (tests/harness/build.sh), release builds of cupcake and cupcake-agent
# (`cargo build --release --bin cupcake --bin cupcake-agent`).
set -euo pipefail
cd "$(dirname "$0")/../.."
nodes=1000 conc=50 step=1
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --concurrency) conc=$2; shift 2 ;;
    --step-seconds) step=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 1 ;;
  esac
done
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
python3 - "$state/du.json" "$nodes" "$cps" "$conc" "$step" "$t0" "$t1" "$peak" "$cpu" "$phase" <<'PY'
import json, math, sys
from datetime import datetime
du = json.load(open(sys.argv[1]))
nodes, cps, conc, step = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
t0, t1, peak_kib, cpu, phase = float(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8]), float(sys.argv[9]), sys.argv[10]
def ts(s): return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
st = du["status"]
ns = st["nodes"]
# A node's time: the agent's steps (6 simulated steps) is the floor; use the measured median.
node_times = sorted(ts(n["completedAt"]) - ts(n["startedAt"]) for n in ns.values() if "completedAt" in n and "startedAt" in n)
node_time = node_times[len(node_times) // 2] if node_times else 0
workers = nodes - cps
bound = (cps + math.ceil(workers / conc)) * node_time
makespan = t1 - t0
# Reaction: for each node start, the latest completion before it (within its stage).
starts = sorted(ts(n["startedAt"]) for n in ns.values() if "startedAt" in n)
ends = sorted(ts(n["completedAt"]) for n in ns.values() if "completedAt" in n)
reactions = []
for s in starts:
    prev = [e for e in ends if e <= s]
    if prev and s - prev[-1] < 60:
        reactions.append(s - prev[-1])
reactions.sort()
def pct(p): return reactions[min(len(reactions) - 1, int(p * len(reactions)))] * 1000 if reactions else float("nan")
print(f"phase                 {phase} ({st.get('progress')})")
print(f"nodes                 {nodes} ({cps} control plane), concurrency {conc}, step {step}s")
print(f"node time (median)    {node_time:.2f} s")
print(f"makespan              {makespan:.1f} s")
print(f"lower bound           {bound:.1f} s  = ({cps} + ceil({workers}/{conc})) x {node_time:.2f} s")
print(f"makespan / bound      {makespan / bound if bound else float('nan'):.3f}")
print(f"reaction p50 / p95    {pct(0.5):.0f} ms / {pct(0.95):.0f} ms  ({len(reactions)} transitions)")
print(f"controller CPU        {cpu:.1f} s")
print(f"controller peak RSS   {peak_kib / 1024:.1f} MiB")
PY
