#!/usr/bin/env bash
# Rollout benchmark on the real control plane: a kwok cluster of N nodes (default 1,000:
# 3 control-plane + N-3 workers at v1.33.4), a hand-written DirectUpdate to 1.34.2 with
# `concurrency: C` (default 50), `cupcake run --rollout-only` and `cupcake-agent simulate
# --all-nodes` with S-second steps (default 1s). Prints:
#   makespan (the DirectUpdate applied -> its status.completedAt) against the lower bound
#   (control-plane nodes + ceil(workers / C)) x the agent's own work per node (its steps x S); the controller's reaction time (the agent reports
#   completed -> the node is verified and released, p50/p95) and batch handoff (a batch's
#   last node completed -> the next batch's first node assigned); where a node's time goes
#   (cordon -> assigned, the agent's overhead beyond its steps); the controller's rounds
#   (from its /metrics), CPU and peak RSS; over the run, the machine's busy and idle share,
#   each process's CPU (API server, etcd, kwok, controller manager, controller, agents) and
#   the API server's requests by verb and resource (where the time between batches goes).
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
# The figures, from a finished run's directory (du.json, agents.log, agents/, run.txt,
# metrics.txt when the controller's metrics could be read).
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
# The DirectUpdate applied (t0, taken before `kubectl apply`) -> the controller decided it
# Succeeded (status.completedAt); the script's 1 s poll (t1) is only a fallback.
makespan = (ts(st["completedAt"]) if "completedAt" in st else t1) - t0
node_times = sorted(ts(n["completedAt"]) - ts(n["startedAt"]) for n in ns.values() if "completedAt" in n and "startedAt" in n)
node_time = node_times[len(node_times) // 2] if node_times else float("nan")
# Reaction: the agent reports `completed` (its log) -> the controller has verified and released the node (status completedAt).
done, began = {}, {}
for line in open(os.path.join(d, "agents.log")):
    m = re.match(r"(\S+Z)\s+INFO (\S+): operation (completed|started)", line)
    if m:
        (done if m.group(3) == "completed" else began)[m.group(2)] = ts(m.group(1))
# Handoff (the issue's reaction time): the last node of a batch reports completed -> the
# first node of the next batch has its assignment (the agent's log: operation started).
batches = [b for s in st.get("stages", []) for b in s["batches"]]
handoffs = sorted(
    min(began[n] for n in b2 if n in began) - max(done[n] for n in b1 if n in done)
    for b1, b2 in zip(batches, batches[1:])
    if any(n in done for n in b1) and any(n in began for n in b2))
def pctl(xs, p): return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000 if xs else float("nan")
reactions = sorted(ts(n["completedAt"]) - done[name] for name, n in ns.items() if name in done and "completedAt" in n)
def pct(p): return reactions[min(len(reactions) - 1, int(p * len(reactions)))] * 1000 if reactions else float("nan")
print(f"phase                 {phase} ({st.get('progress')})")
print(f"nodes                 {nodes} ({cps} control plane), concurrency {conc}, {steps} steps of {step}s")
print(f"makespan              {makespan:.1f} s  (DirectUpdate applied -> status.completedAt; seen by the 1 s poll after {t1 - t0:.1f} s)")
print(f"lower bound           {bound:.1f} s  = ({cps} + ceil({workers}/{conc})) x {steps} x {step}s")
print(f"makespan / bound      {makespan / bound if bound else float('nan'):.2f}")
print(f"node time (median)    {node_time:.2f} s  (cordon to completed; the agent's steps are {work:.1f} s)")
print(f"reaction p50 / p95    {pct(0.5):.0f} ms / {pct(0.95):.0f} ms  (agent completed -> node verified and released, {len(reactions)} nodes)")
starts = sorted(began[n] - ts(ns[n]["startedAt"]) for n in ns if n in began and "startedAt" in ns[n])
runs = sorted(done[n] - began[n] - work for n in ns if n in began and n in done)
print(f"cordon -> assigned    {pctl(starts, 0.5):.0f} ms / {pctl(starts, 0.95):.0f} ms  p50 / p95 (cordon, drain, assignment, seen by the agent)")
print(f"agent overhead        {pctl(runs, 0.5):.0f} ms / {pctl(runs, 0.95):.0f} ms  p50 / p95 (assignment seen -> completed, beyond its {work:.1f} s of steps)")
# From the watch: per node, when `completed` was first seen and when the annotation went
# (released); per batch, its last node's `completed` -> the next batch's first `pending`.
wf = os.path.join(d, "watch.log")
if os.path.exists(wf):
    seen_done, seen_assigned, seen_released = {}, {}, {}
    for line in open(wf):
        p = line.split()
        if len(p) < 2:
            continue
        t, name, status = float(p[0]), p[1], (p[2] if len(p) > 2 else "")
        if status == "pending":
            seen_assigned.setdefault(name, t)
        elif status == "completed":
            seen_done.setdefault(name, t)
        elif status == "" and name in seen_done:
            seen_released.setdefault(name, t)
    ctl = sorted(seen_released[n] - seen_done[n] for n in seen_released)
    hand = sorted(
        min(seen_assigned[n] for n in b2 if n in seen_assigned) - max(seen_done[n] for n in b1 if n in seen_done)
        for b1, b2 in zip(batches, batches[1:])
        if any(n in seen_done for n in b1) and any(n in seen_assigned for n in b2))
    if not ctl and not hand:
        err = open(os.path.join(d, "watch.err")).read().strip() if os.path.exists(os.path.join(d, "watch.err")) else ""
        print(f"seen by a watch:      nothing ({err[-200:] or 'the watch printed nothing'})")
    else:
      restarts = sum("started again" in l for l in open(os.path.join(d, "watch.err"))) if os.path.exists(os.path.join(d, "watch.err")) else 0
      print(f"seen by a watch:      (the watch was started again {restarts} times; events in those gaps are missed)")
      print(f"  completed -> released    {pctl(ctl, 0.5):.0f} ms / {pctl(ctl, 0.95):.0f} ms  p50 / p95 ({len(ctl)} nodes)")
      print(f"  completed -> next batch  {pctl(hand, 0.5):.0f} ms / {pctl(hand, 0.95):.0f} ms  p50 / p95 (a batch's last node completed -> the next batch's first assignment; {len(hand)} batches)")
# Per batch (means over the batches): where its time beyond the steps goes.
spans = []
for b in batches:
    if all(n in began and n in done and "completedAt" in ns.get(n, {}) for n in b):
        cordon = min(ts(ns[n]["startedAt"]) for n in b)
        spans.append((max(ts(ns[n]["completedAt"]) for n in b) - cordon,
                      max(began[n] for n in b) - min(began[n] for n in b),
                      max(done[n] - began[n] for n in b) - work,
                      max(ts(ns[n]["completedAt"]) for n in b) - max(done[n] for n in b)))
if spans:
    m = [sum(x[i] for x in spans) / len(spans) * 1000 for i in range(4)]
    print(f"per batch (mean)      {m[0]:.0f} ms first cordon -> last release; its agents start over {m[1]:.0f} ms, the slowest runs {m[2]:.0f} ms beyond its steps, the last completion is released {m[3]:.0f} ms later ({len(spans)} batches)")
print(f"handoff p50 / p95     {pctl(handoffs, 0.5):.0f} ms / {pctl(handoffs, 0.95):.0f} ms  (a batch's last node completed -> the next batch's first node assigned, seen by its agent; {len(handoffs)} batches)")
mf = os.path.join(d, "metrics.txt")
if os.path.exists(mf):
    m = {}
    for line in open(mf):
        p = line.split()
        if len(p) == 2 and not line.startswith("#"):
            m[p[0]] = float(p[1])
    rounds = m.get("cupcake_reconcile_total", 0)
    secs = m.get("cupcake_reconcile_duration_seconds_sum", 0)
    print(f"controller rounds     {rounds:.0f} ({rounds / makespan:.1f}/s, mean {secs / rounds * 1000 if rounds else float('nan'):.1f} ms, {secs / makespan * 100:.0f}% of the time in a round)")
print(f"controller CPU        {cpu:.1f} s")
# Where the machine's time went during the run, and the API server's requests by who/what.
lb, la = os.path.join(d, "load.before"), os.path.join(d, "load.after")
if os.path.exists(lb) and os.path.exists(la):
    def rd(f):
        cpu_, req, lat = {}, {}, {}
        for line in open(f):
            p = line.split()
            if p[0] == "cpu":
                cpu_["machine"] = [float(x) for x in p[1:]]
            elif p[0] in ("req", "lat") and len(p) == 3:
                lab = dict(re.findall(r'(\w+)="([^"]*)"', p[1]))
                k = (lab.get("verb", ""), lab.get("resource", "") + ("/" + lab["subresource"] if lab.get("subresource") else ""))
                d_ = req if p[0] == "req" else lat
                d_[k] = d_.get(k, 0) + float(p[2])
            elif len(p) == 2:
                cpu_[p[0]] = float(p[1]) / os.sysconf("SC_CLK_TCK")
        return cpu_, req, lat
    (cb, rb, tb), (ca, ra, ta) = rd(lb), rd(la)
    if "machine" in ca and "machine" in cb:
        # /proc/stat: user nice system idle iowait irq softirq steal ...
        dm = [x - y for x, y in zip(ca.pop("machine"), cb.pop("machine"))]
        tot = sum(dm[:8]) or 1
        print(f"machine               busy {100 * (tot - dm[3] - dm[4]) / tot:.0f}%, idle {100 * dm[3] / tot:.0f}%, stolen by the host {100 * dm[7] / tot:.1f}% ({os.cpu_count()} CPUs)")
    print("CPU during the run    " + ", ".join(f"{k} {ca[k] - cb.get(k, 0):.1f} s" for k in sorted(ca, key=lambda k: cb.get(k, 0) - ca[k])))
    dr = sorted(((ra[k] - rb.get(k, 0), k) for k in ra), reverse=True)
    print("API requests          " + ", ".join(f"{v} {r} {n:.0f}" for n, (v, r) in dr[:12] if n > 0))
    # The API server's own time per request (apiserver_request_duration_seconds: from
    # receiving it to answering, excluding the network), mean over the run.
    if ta:
        print("  mean server time    " + ", ".join(
            f"{v} {r} {1000 * (ta.get((v, r), 0) - tb.get((v, r), 0)) / n:.0f} ms"
            for n, (v, r) in dr[:8] if n > 0 and v != "WATCH"))
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
# A watch of every node's agent status annotation, each event timestamped as it arrives:
# when the agents' `completed` and the controller's assignment (`pending`) and release
# (annotation gone) became visible to a client of the API server, as they did to the
# controller. kubectl's watch has been seen to end by itself a few seconds into a 1,000-node
# run with nothing on stderr (likely the API server dropping a client that falls behind
# while a thousand nodes change), so it is started again from "now" each time it ends;
# events in the gaps are missed (the report counts the nodes it saw).
python3 -u - "$state/watch.log" "$state/watch.err" kubectl get nodes --watch-only \
  -o jsonpath='{.metadata.name} {.metadata.annotations.cupcake\.ricardomolendijk\.com/status}{"\n"}' <<'PY' &
import subprocess, sys, time
log, err, cmd = open(sys.argv[1], "a"), open(sys.argv[2], "a"), sys.argv[3:]
while True:
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    for line in p.stdout:
        log.write(f"{time.time():.6f} {line}")
        log.flush()
    err.write(f"{time.time():.6f} the watch ended ({p.wait()}); started again\n")
    err.flush()
PY
pids+=($!)
"$bin/cupcake-agent" simulate --all-nodes --state-dir "$state/agents" --step-duration "${step}s" >"$state/agents.log" 2>&1 &
pids+=($!)
"$bin/cupcake" run --rollout-only --listen 127.0.0.1:0 --lease-namespace default --identity bench >"$state/controller.log" 2>&1 &
ctl=$!
pids+=($ctl)
sleep 2
# CPU of every process of the run and the API server's requests, before and after: where
# the machine's time went (the API server is shared by the controller, the agents and kwok).
load() {
  for f in "$state"/h/pids/*.pid; do
    printf '%s %s\n' "$(basename "$f" .pid)" "$(awk '{print $14 + $15}' "/proc/$(cat "$f")/stat" 2>/dev/null || echo 0)"
  done
  printf 'controller %s\n' "$(awk '{print $14 + $15}' "/proc/$ctl/stat" 2>/dev/null || echo 0)"
  printf 'agents %s\n' "$(awk '{print $14 + $15}' "/proc/${pids[1]}/stat" 2>/dev/null || echo 0)"
  kubectl get --raw /metrics 2>/dev/null | awk '
    /^apiserver_request_total\{/ {print "req", $1, $2}
    /^apiserver_request_duration_seconds_sum\{/ {print "lat", $1, $2}'
  head -1 /proc/stat
}
load >"$state/load.before"
t0=$(date +%s.%N)
kubectl apply -f - >/dev/null <<Y
apiVersion: cupcake.ricardomolendijk.com/v1
kind: DirectUpdate
metadata: {name: bench}
spec: {targetVersion: "1.34.2", concurrency: $conc, nodeTimeout: 30m}
Y
peak=0
while :; do
  phase=$(kubectl get du bench -o jsonpath='{.status.phase}' 2>/dev/null || true)
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$ctl/status" 2>/dev/null || echo 0)
  [ "${rss:-0}" -gt "$peak" ] && peak=$rss
  case "$phase" in Succeeded|Failed|RequiresAttention) break ;; esac
  sleep 1
done
t1=$(date +%s.%N)
load >"$state/load.after"
cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$ctl/stat")
# The controller's own metrics (rounds and their durations); it listens on a free port.
port=$(ss -ltnpH 2>/dev/null | awk -v p="pid=$ctl," 'index($0, p) {n = split($4, a, ":"); print a[n]; exit}')
[ -n "$port" ] && curl -fsS "http://127.0.0.1:$port/metrics" >"$state/metrics.txt" 2>/dev/null || true
kubectl get du bench -o json >"$state/du.json"
printf '%s %s %s %s %s %s %s %s %s\n' "$nodes" "$cps" "$conc" "$step" "$t0" "$t1" "$peak" "$cpu" "$phase" >"$state/run.txt"
report "$state"
echo "data kept in $state (tests/bench/rollout.sh --report $state prints this again)"
