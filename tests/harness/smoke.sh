#!/usr/bin/env bash
# Smoke test of the harness itself: up.sh --nodes 5, then checks that the control plane is the
# real thing (server version, Ready kwok nodes, disruption controller, eviction 429, garbage
# collector), then down.sh and a check that nothing is left running.
# Usage: smoke.sh [--keep]   (--keep leaves the harness running for a look around)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION="${CUPCAKE_K8S_VERSION:-v1.35.4}"
keep=0
[[ "${1:-}" == --keep ]] && keep=1

passed=0 failed=0
pass() { passed=$((passed + 1)); printf '[smoke] ok   %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf '[smoke] FAIL %s\n' "$*"; }
check() { # description command...
  local d="$1"; shift
  if "$@"; then pass "$d"; else fail "$d"; fi
}
eventually() { # seconds command... : true once the command succeeds within the deadline
  local secs="$1" t0=$SECONDS
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS - t0 < secs)) || return 1
    sleep 0.5
  done
}

STATE="$(mktemp -d "${TMPDIR:-/tmp}/cupcake-harness-smoke-XXXXXX")"
finish() {
  if ((keep)); then
    echo "[smoke] left running: export KUBECONFIG=$STATE/kubeconfig ; $HERE/down.sh --dir $STATE"
  else
    "$HERE/down.sh" --dir "$STATE" --clean >/dev/null 2>&1 || true
  fi
}
trap finish EXIT

t0=$SECONDS
"$HERE/up.sh" --nodes 5 --dir "$STATE" >"$STATE.up.out"
rm -f "$STATE.up.out"
pass "up.sh --nodes 5 in $((SECONDS - t0))s"
# shellcheck disable=SC1091
source "$STATE/env"
export KUBECONFIG
k() { "$CUPCAKE_HARNESS_BIN/kubectl" "$@"; }
PKI="$STATE/pki"
api() { # METHOD PATH [BODY] -> prints the HTTP status code
  curl -sS -o /dev/null -w '%{http_code}' --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" \
    --key "$PKI/admin.key" -X "$1" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "$CUPCAKE_HARNESS_APISERVER$2"
}

server_version="$(k version -o json | sed -n '/serverVersion/,/}/s/.*"gitVersion": "\([^"]*\)".*/\1/p')"
check "server reports $K8S_VERSION (got '$server_version')" [ "$server_version" == "$K8S_VERSION" ]

ready="$(k get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)"
check "5 kwok nodes Ready (got $ready)" [ "$ready" == 5 ]
cps="$(k get nodes -l node-role.kubernetes.io/control-plane -o name | wc -l)"
check "3 control-plane nodes (got $cps)" [ "$cps" == 3 ]
kv="$(k get node kwok-worker-1 -o jsonpath='{.status.nodeInfo.kubeletVersion}')"
check "kubeletVersion kept as v1.34.2 (got $kv)" [ "$kv" == v1.34.2 ]

k create namespace smoke >/dev/null
k apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata:
  name: guarded
  namespace: smoke
  labels: {app: guarded}
spec:
  nodeName: kwok-worker-1
  containers:
  - name: app
    image: registry.invalid/app:1
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: guarded
  namespace: smoke
spec:
  minAvailable: 1
  selector:
    matchLabels: {app: guarded}
EOF
pod_ready() { [ "$(k -n smoke get pod guarded -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]; }
check "bare pod on kwok-worker-1 becomes Ready (kwok)" eventually 60 pod_ready
pdb_synced() {
  local s
  s="$(k -n smoke get pdb guarded -o jsonpath='{.metadata.generation} {.status.observedGeneration} {.status.expectedPods} {.status.currentHealthy} {.status.disruptionsAllowed}')"
  [[ "$s" == "1 1 1 1 0" ]]
}
check "PDB status computed by the disruption controller (expectedPods=1 healthy=1 disruptionsAllowed=0)" \
  eventually 60 pdb_synced
eviction='{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"guarded","namespace":"smoke"}}'
code="$(api POST /api/v1/namespaces/smoke/pods/guarded/eviction "$eviction")"
check "eviction blocked by the PDB answers 429 (got $code)" [ "$code" == 429 ]
k -n smoke patch pdb guarded --type=merge -p '{"spec":{"minAvailable":0}}' >/dev/null
allowed() { [ "$(k -n smoke get pdb guarded -o jsonpath='{.status.disruptionsAllowed}')" == 1 ]; }
check "PDB with minAvailable 0 allows 1 disruption" eventually 60 allowed
code="$(api POST /api/v1/namespaces/smoke/pods/guarded/eviction "$eviction")"
check "eviction allowed by the PDB answers 201 (got $code)" [ "$code" == 201 ]
pod_gone() { ! k -n smoke get pod guarded >/dev/null 2>&1; }
check "evicted pod is deleted (kwok finalizes it)" eventually 60 pod_gone

uid="$(k -n smoke create configmap owner -o jsonpath='{.metadata.uid}')"
k -n smoke apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: owned
  namespace: smoke
  ownerReferences:
  - {apiVersion: v1, kind: ConfigMap, name: owner, uid: $uid}
EOF
k -n smoke delete configmap owner >/dev/null
owned_gone() { ! k -n smoke get configmap owned >/dev/null 2>&1; }
check "garbage collector deletes a dependent" eventually 60 owned_gone

if ((keep == 0)); then
  pids="$(cat "$STATE"/pids/*.pid)"
  etcd_data="$(cat "$STATE/etcd-data-dir")"
  "$HERE/down.sh" --dir "$STATE" 2>/dev/null
  left=0
  for p in $pids; do # a zombie waiting for init to reap it does not count
    st="$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f1 || true)"
    [[ -n "$st" && "$st" != Z && "$st" != X ]] && left=$((left + 1))
  done
  check "down.sh left no harness process ($left left)" [ "$left" == 0 ]
  check "down.sh removed the etcd data dir" [ ! -e "$etcd_data" ]
fi

echo "smoke: $passed passed, $failed failed"
((failed == 0))
