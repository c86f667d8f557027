#!/usr/bin/env bash
# Starts CUPCAKE's test control plane on 127.0.0.1 (free ports, no containers):
#   etcd (data on /dev/shm, --unsafe-no-fsync), kube-apiserver, kube-controller-manager,
#   optionally kube-scheduler, and kwok (fake nodes and pods), then optionally N kwok nodes.
#
# Usage: up.sh [--nodes N] [--dir DIR] [--scheduler] [--control-planes M]
#              [--kubelet-version V] [--lease-seconds S] [--timeout SECONDS]
#   --nodes N            create N fake nodes and wait until all are Ready (default 0)
#   --control-planes M   how many of them are control-plane nodes (default: 3 if N>=4,
#                        else 1 if N>=1); the rest are workers
#   --kubelet-version V  status.nodeInfo.kubeletVersion of the nodes (default v1.34.2)
#   --scheduler          also run kube-scheduler (needed for Deployments/ReplicaSets;
#                        bare pods can set spec.nodeName)
#   --dir DIR            state directory (default: a new ${TMPDIR:-/tmp}/cupcake-harness-XXXXXX)
#   --lease-seconds S    kwok node lease duration (default 40; 120 for N>100; 240 for N>500)
#   --timeout SECONDS    deadline for each wait (default 120, plus N/5 for the nodes)
#   --apiserver-arg ARG  one more kube-apiserver flag (repeatable), e.g.
#                        --apiserver-arg=--feature-gates=WatchList=false
#
# Progress goes to stderr. Stdout gets `export` lines only (CUPCAKE_HARNESS_DIR,
# CUPCAKE_HARNESS_BIN, KUBECONFIG), the last one being
# `export KUBECONFIG=...`, so `eval "$(tests/harness/up.sh)"` works.
# Binaries come from build.sh's cache (build.sh is run first; it is a no-op when warm),
# or from $CUPCAKE_HARNESS_BIN if set. Stop with down.sh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POINTER="${TMPDIR:-/tmp}/cupcake-harness.current"

log() { printf '[up.sh] %s\n' "$*" >&2; }
die() { printf '[up.sh] ERROR: %s\n' "$*" >&2; exit 1; }

nodes=0 dir="" scheduler=0 control_planes="" kubelet_version="v1.34.2" lease="" timeout=120
apiserver_args=()
while (($#)); do
  case "$1" in
    --nodes) nodes="${2:?--nodes needs a number}"; shift 2 ;;
    --nodes=*) nodes="${1#*=}"; shift ;;
    --dir) dir="${2:?--dir needs a path}"; shift 2 ;;
    --dir=*) dir="${1#*=}"; shift ;;
    --scheduler) scheduler=1; shift ;;
    --control-planes) control_planes="${2:?}"; shift 2 ;;
    --control-planes=*) control_planes="${1#*=}"; shift ;;
    --kubelet-version) kubelet_version="${2:?}"; shift 2 ;;
    --kubelet-version=*) kubelet_version="${1#*=}"; shift ;;
    --lease-seconds) lease="${2:?}"; shift 2 ;;
    --lease-seconds=*) lease="${1#*=}"; shift ;;
    --timeout) timeout="${2:?}"; shift 2 ;;
    --timeout=*) timeout="${1#*=}"; shift ;;
    --apiserver-arg) apiserver_args+=("${2:?--apiserver-arg needs a flag}"); shift 2 ;;
    --apiserver-arg=*) apiserver_args+=("${1#*=}"); shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ "$nodes" =~ ^[0-9]+$ ]] || die "--nodes wants a number, got '$nodes'"
[[ "$timeout" =~ ^[0-9]+$ ]] || die "--timeout wants seconds, got '$timeout'"
if [[ -z "$control_planes" ]]; then
  if ((nodes >= 4)); then control_planes=3; elif ((nodes >= 1)); then control_planes=1; else control_planes=0; fi
fi
if ! [[ "$control_planes" =~ ^[0-9]+$ ]] || ((control_planes > nodes)); then
  die "--control-planes must be a number <= --nodes"
fi
if [[ -z "$lease" ]]; then
  if ((nodes > 500)); then lease=240; elif ((nodes > 100)); then lease=120; else lease=40; fi
fi
if ! [[ "$lease" =~ ^[0-9]+$ ]] || ((lease < 10)); then die "--lease-seconds wants a number >= 10"; fi
[[ "$kubelet_version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+ ]] || die "--kubelet-version should look like v1.34.2"

# ---- tools -------------------------------------------------------------------------------
need_cmd() { # cmd debian-package
  command -v "$1" >/dev/null && return 0
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    log "$1 is missing; installing Debian package $2"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; } >&2 \
      || die "apt-get install $2 failed"
  else
    die "$1 is missing (apt-get install $2)"
  fi
}
need_cmd openssl openssl
need_cmd curl curl
need_cmd base64 coreutils

if [[ -n "${CUPCAKE_HARNESS_BIN:-}" ]]; then
  BIN="$CUPCAKE_HARNESS_BIN"
else
  "$HERE/build.sh" >&2 || die "build.sh failed"
  BIN="$("$HERE/build.sh" --print-bin-dir)"
fi
STAGES="$(dirname "$BIN")/kwok-stages"
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
  [[ -x "$BIN/$b" ]] || die "$BIN/$b is missing: run tests/harness/build.sh"
done
KUBECTL="$BIN/kubectl"

# ---- state directory ------------------------------------------------------------------------
if [[ -z "$dir" ]]; then
  STATE="$(mktemp -d "${TMPDIR:-/tmp}/cupcake-harness-XXXXXX")"
else
  mkdir -p "$dir"
  STATE="$(cd "$dir" && pwd)"
  for f in "$STATE"/pids/*.pid; do
    [[ -f "$f" ]] || continue
    pid="$(cat "$f")"
    if [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$STATE/"; then
      die "a harness is already running in $STATE (pid $pid); run down.sh --dir $STATE first"
    fi
  done
  # Leftovers of an earlier run whose processes are gone: its etcd data dir, pids, PKI.
  if [[ -f "$STATE/etcd-data-dir" ]]; then
    old_data="$(cat "$STATE/etcd-data-dir")"
    [[ "$(basename "$old_data")" == cupcake-harness-etcd.* ]] && rm -rf "$old_data"
  fi
  rm -rf "$STATE/pids" "$STATE/pki" "$STATE/nodes" "$STATE/etcd-data-dir"
fi
mkdir -p "$STATE/pids" "$STATE/logs" "$STATE/pki" "$STATE/nodes"
SHM_BASE=/dev/shm
[[ -d "$SHM_BASE" && -w "$SHM_BASE" ]] || SHM_BASE="$STATE"
ETCD_DATA="$(mktemp -d "$SHM_BASE/cupcake-harness-etcd.XXXXXX")"
printf '%s\n' "$ETCD_DATA" >"$STATE/etcd-data-dir"
printf '%s\n' "$STATE" >"$POINTER"
PKI="$STATE/pki"
KUBECONFIG_FILE="$STATE/kubeconfig"
START=$SECONDS

# On any failure from here on: show the failing component's log, stop what was started.
ok=0 failing=""
cleanup() {
  local rc=$?
  ((ok)) && return 0
  if [[ -n "$failing" && -f "$STATE/logs/$failing.log" ]]; then
    printf '[up.sh] ---- last 40 lines of %s ----\n' "$STATE/logs/$failing.log" >&2
    tail -n 40 "$STATE/logs/$failing.log" >&2 || true
    printf '[up.sh] ----\n' >&2
  fi
  log "start failed; stopping what was started (logs kept in $STATE/logs)"
  "$HERE/down.sh" --dir "$STATE" >&2 || true
  exit $((rc == 0 ? 1 : rc))
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- free ports ------------------------------------------------------------------------------
declare -A TAKEN=()
listening_ports() { # ports in LISTEN state, from /proc (no ss/netstat needed)
  local f h
  for f in /proc/net/tcp /proc/net/tcp6; do
    [[ -r "$f" ]] || continue
    while read -r h; do echo $((16#$h)); done < <(awk 'NR > 1 && $4 == "0A" { n = split($2, a, ":"); print a[n] }' "$f")
  done
}
# Ports picked by other up.sh runs still starting (picked, not yet bound) are in this file as
# "port pid" lines; an entry counts while its up.sh runs. Without it two control planes started
# at once could pick the same port and one component would fail to bind.
PORTS_FILE="${TMPDIR:-/tmp}/cupcake-harness-ports"
reserve_port() { # port: record it for this up.sh, dropping the entries of finished runs
  (
    flock -w 10 9 || true
    : >"$PORTS_FILE.new"
    if [[ -r "$PORTS_FILE" ]]; then
      while read -r rp pid; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
          printf '%s %s\n' "$rp" "$pid" >>"$PORTS_FILE.new"
        fi
      done <"$PORTS_FILE"
    fi
    printf '%s %s\n' "$1" "$$" >>"$PORTS_FILE.new"
    mv -f "$PORTS_FILE.new" "$PORTS_FILE"
  ) 9>>"$PORTS_FILE.lock"
}
reserved_elsewhere() { # port: picked by another up.sh that still runs
  local rp pid
  [[ -r "$PORTS_FILE" ]] || return 1
  while read -r rp pid; do
    if [[ "$rp" == "$1" && -n "$pid" && "$pid" != "$$" ]] && kill -0 "$pid" 2>/dev/null; then
      return 0
    fi
  done <"$PORTS_FILE"
  return 1
}
free_port() { # prints a port in 20000-32767 (below Linux's ephemeral range) that nobody listens on
  local p i
  if ((${#TAKEN[@]} == 0)); then
    while read -r p; do TAKEN[$p]=1; done < <(listening_ports)
    TAKEN[0]=1
  fi
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 12768))
    if [[ -z "${TAKEN[$p]:-}" ]] && ! (: <"/dev/tcp/127.0.0.1/$p") 2>/dev/null \
      && ! reserved_elsewhere "$p"; then
      TAKEN[$p]=1
      reserve_port "$p"
      echo "$p"
      return 0
    fi
  done
  die "found no free port"
}
ETCD_PORT="$(free_port)"; TAKEN[$ETCD_PORT]=1
ETCD_PEER_PORT="$(free_port)"; TAKEN[$ETCD_PEER_PORT]=1
API_PORT="$(free_port)"; TAKEN[$API_PORT]=1
KCM_PORT="$(free_port)"; TAKEN[$KCM_PORT]=1
SCHED_PORT="$(free_port)"; TAKEN[$SCHED_PORT]=1
KWOK_PORT="$(free_port)"; TAKEN[$KWOK_PORT]=1
SERVICE_CIDR=10.0.0.0/24
FIRST_SERVICE_IP=10.0.0.1
POD_CIDR=10.244.0.0/16

# ---- PKI -------------------------------------------------------------------------------------
log "state dir $STATE ; making PKI"
ossl() { openssl "$@" 2>>"$STATE/logs/openssl.log"; }
failing=openssl
ossl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 \
  -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -subj "/CN=cupcake-harness-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
sign() { # name subject extensions
  ossl req -new -nodes -newkey rsa:2048 -keyout "$PKI/$1.key" -out "$PKI/$1.csr" -subj "$2"
  printf '%s\n' "$3" >"$PKI/$1.ext"
  ossl x509 -req -sha256 -days 3650 -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -out "$PKI/$1.crt" -extfile "$PKI/$1.ext"
}
sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost,IP:$FIRST_SERVICE_IP,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
sign admin "/O=system:masters/CN=cupcake-harness-admin" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
# Front-proxy (request-header) CA and client, as kubeadm makes them: the controller manager and
# scheduler read it from the extension-apiserver-authentication ConfigMap.
ossl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 \
  -keyout "$PKI/front-proxy-ca.key" -out "$PKI/front-proxy-ca.crt" -subj "/CN=cupcake-harness-front-proxy-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
ossl req -new -nodes -newkey rsa:2048 -keyout "$PKI/front-proxy-client.key" -out "$PKI/front-proxy-client.csr" \
  -subj "/CN=front-proxy-client"
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' \
  >"$PKI/front-proxy-client.ext"
ossl x509 -req -sha256 -days 3650 -in "$PKI/front-proxy-client.csr" -CA "$PKI/front-proxy-ca.crt" \
  -CAkey "$PKI/front-proxy-ca.key" -CAcreateserial -out "$PKI/front-proxy-client.crt" -extfile "$PKI/front-proxy-client.ext"
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa.key"
ossl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
chmod 600 "$PKI"/*.key

b64() { base64 -w0 <"$1"; }
cat >"$KUBECONFIG_FILE" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: cupcake-harness
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: cupcake-harness-admin
  user:
    client-certificate-data: $(b64 "$PKI/admin.crt")
    client-key-data: $(b64 "$PKI/admin.key")
contexts:
- name: cupcake-harness
  context:
    cluster: cupcake-harness
    user: cupcake-harness-admin
    namespace: default
current-context: cupcake-harness
EOF
chmod 600 "$KUBECONFIG_FILE"

# ---- process helpers ---------------------------------------------------------------------------
start() { # name binary args... : start in the background, record the pid
  local name="$1" bin="$2"
  shift 2
  failing="$name"
  : >"$STATE/logs/$name.log"
  nohup "$bin" "$@" </dev/null >>"$STATE/logs/$name.log" 2>&1 &
  local pid=$!
  printf '%s\n' "$pid" >"$STATE/pids/$name.pid"
  printf '%s\n' "$name" >>"$STATE/pids/order"
  log "started $name (pid $pid, log $STATE/logs/$name.log)"
}
alive() { kill -0 "$(cat "$STATE/pids/$1.pid")" 2>/dev/null; }
wait_until() { # name description seconds command... : poll every 0.5s
  local name="$1" what="$2" secs="$3" t0=$SECONDS
  shift 3
  failing="$name"
  until "$@" >/dev/null 2>&1; do
    alive "$name" || die "$name exited while waiting for $what"
    ((SECONDS - t0 < secs)) || die "timed out after ${secs}s waiting for $what"
    sleep 0.5
  done
  log "$what after $((SECONDS - START))s"
}
https_ok() { curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$@"; }

# ---- etcd ----------------------------------------------------------------------------------------
start etcd "$BIN/etcd" \
  --name=cupcake-harness \
  --data-dir="$ETCD_DATA" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="cupcake-harness=http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster-state=new \
  --unsafe-no-fsync=true \
  --quota-backend-bytes=$((4 * 1024 * 1024 * 1024)) \
  --log-level=warn
wait_until etcd "etcd healthy" "$timeout" \
  sh -c "curl -fsS --max-time 2 http://127.0.0.1:$ETCD_PORT/health | grep -q '\"health\":\"true\"'"

# ---- kube-apiserver (flags as envtest runs it, plus the controller manager's needs) -------------
start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="$API_PORT" \
  --cert-dir="$STATE/pki/generated" \
  --tls-cert-file="$PKI/apiserver.crt" \
  --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" \
  --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --authorization-mode=Node,RBAC \
  --allow-privileged=true \
  --disable-admission-plugins=ServiceAccount \
  --endpoint-reconciler-type=none \
  --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
  --proxy-client-key-file="$PKI/front-proxy-client.key" \
  --kubelet-preferred-address-types=InternalIP \
  --profiling=false \
  ${apiserver_args[@]+"${apiserver_args[@]}"}
wait_until kube-apiserver "kube-apiserver /readyz" "$timeout" https_ok "https://127.0.0.1:$API_PORT/readyz"

# ---- kube-controller-manager -------------------------------------------------------------------
grace=$((lease + 20))
((grace >= 50)) || grace=50
start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig="$KUBECONFIG_FILE" \
  --authentication-kubeconfig="$KUBECONFIG_FILE" \
  --authorization-kubeconfig="$KUBECONFIG_FILE" \
  --bind-address=127.0.0.1 \
  --secure-port="$KCM_PORT" \
  --cert-dir="$STATE/pki/kcm-generated" \
  --leader-elect=false \
  --controllers='*' \
  --service-account-private-key-file="$PKI/sa.key" \
  --root-ca-file="$PKI/ca.crt" \
  --cluster-signing-cert-file="$PKI/ca.crt" \
  --cluster-signing-key-file="$PKI/ca.key" \
  --use-service-account-credentials=false \
  --cluster-name=cupcake-harness \
  --flex-volume-plugin-dir="$STATE/flexvolume" \
  --node-monitor-grace-period="${grace}s" \
  --kube-api-qps=100 \
  --kube-api-burst=200 \
  --profiling=false

# ---- kube-scheduler (optional) -------------------------------------------------------------------
if ((scheduler)); then
  start kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig="$KUBECONFIG_FILE" \
    --authentication-kubeconfig="$KUBECONFIG_FILE" \
    --authorization-kubeconfig="$KUBECONFIG_FILE" \
    --bind-address=127.0.0.1 \
    --secure-port="$SCHED_PORT" \
    --cert-dir="$STATE/pki/scheduler-generated" \
    --leader-elect=false \
    --profiling=false
fi

# ---- kwok ------------------------------------------------------------------------------------------
# HOME is pointed into the state dir so that a ~/.kwok/kwok.yaml of the user is not merged in.
# Node IP 127.0.0.1 and kwok's own port as the "kubelet" port: should anything ever dial a fake
# node (logs/exec/port-forward), it stays on loopback.
mkdir -p "$STATE/kwok-home"
stage_args=()
for f in node-initialize node-heartbeat-with-lease pod-ready pod-complete pod-delete; do
  [[ -s "$STAGES/$f.yaml" ]] || die "kwok stage file $STAGES/$f.yaml is missing: run build.sh"
  stage_args+=("--config=$STAGES/$f.yaml")
done
start kwok env HOME="$STATE/kwok-home" "$BIN/kwok" \
  --kubeconfig="$KUBECONFIG_FILE" \
  "${stage_args[@]}" \
  --manage-all-nodes=true \
  --node-lease-duration-seconds="$lease" \
  --server-address="127.0.0.1:$KWOK_PORT" \
  --node-ip=127.0.0.1 \
  --node-port="$KWOK_PORT" \
  --cidr="$POD_CIDR"

wait_until kube-controller-manager "kube-controller-manager /healthz" "$timeout" \
  curl -fsS --max-time 2 -k "https://127.0.0.1:$KCM_PORT/healthz"
if ((scheduler)); then
  wait_until kube-scheduler "kube-scheduler /readyz" "$timeout" \
    curl -fsS --max-time 2 -k "https://127.0.0.1:$SCHED_PORT/readyz"
fi
wait_until kwok "kwok /healthz" "$timeout" curl -fsS --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz"

# ---- nodes -------------------------------------------------------------------------------------------
node_yaml() { # name role
  local name="$1" role="$2"
  cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    beta.kubernetes.io/arch: amd64
    beta.kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: $name
EOF
  if [[ "$role" == control-plane ]]; then
    cat <<EOF
    node-role.kubernetes.io/control-plane: ""
    node.kubernetes.io/exclude-from-external-load-balancers: ""
spec:
  taints:
  - key: node-role.kubernetes.io/control-plane
    effect: NoSchedule
EOF
  else
    printf 'spec: {}\n'
  fi
  cat <<EOF
status:
  nodeInfo:
    kubeletVersion: $kubelet_version
    architecture: amd64
    operatingSystem: linux
EOF
}

if ((nodes > 0)); then
  failing=kwok
  chunks=4
  ((nodes < 40)) && chunks=1
  for ((c = 0; c < chunks; c++)); do : >"$STATE/nodes/chunk-$c.yaml"; done
  w=0
  for ((i = 0; i < nodes; i++)); do
    if ((i < control_planes)); then
      name="kwok-cp-$((i + 1))" role=control-plane
    else
      w=$((w + 1)) name="kwok-worker-$w" role=worker
    fi
    node_yaml "$name" "$role" >>"$STATE/nodes/chunk-$((i % chunks)).yaml"
  done
  t_nodes=$SECONDS
  pids=()
  for ((c = 0; c < chunks; c++)); do
    KUBECONFIG="$KUBECONFIG_FILE" "$KUBECTL" create -f "$STATE/nodes/chunk-$c.yaml" \
      >"$STATE/logs/create-nodes-$c.log" 2>&1 &
    pids+=($!)
  done
  for ((c = 0; c < chunks; c++)); do
    wait "${pids[$c]}" || { failing="create-nodes-$c"; die "creating nodes failed"; }
  done
  log "created $nodes nodes ($control_planes control-plane) in $((SECONDS - t_nodes))s; waiting for Ready"
  ready_count() {
    KUBECONFIG="$KUBECONFIG_FILE" "$KUBECTL" get nodes -l type=kwok --request-timeout=20s -o \
      jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{" "}{.spec.taints[*].key}{"\n"}{end}' \
      | awk '$1 == "True" && $0 !~ /node\.kubernetes\.io\// { n++ } END { print n + 0 }'
  }
  all_ready() { [[ "$(ready_count)" == "$nodes" ]]; }
  wait_until kwok "$nodes nodes Ready and untainted" $((timeout + nodes / 5)) all_ready
  log "nodes Ready $((SECONDS - t_nodes))s after creation"
fi

# ---- done ----------------------------------------------------------------------------------------------
cat >"$STATE/env" <<EOF
CUPCAKE_HARNESS_DIR=$STATE
CUPCAKE_HARNESS_BIN=$BIN
KUBECONFIG=$KUBECONFIG_FILE
CUPCAKE_HARNESS_APISERVER=https://127.0.0.1:$API_PORT
CUPCAKE_HARNESS_ETCD=http://127.0.0.1:$ETCD_PORT
CUPCAKE_HARNESS_KWOK=http://127.0.0.1:$KWOK_PORT
CUPCAKE_HARNESS_NODES=$nodes
EOF
ok=1
log "harness up in $((SECONDS - START))s: apiserver https://127.0.0.1:$API_PORT, state $STATE"
log "stop it with: $HERE/down.sh --dir $STATE"
printf 'export CUPCAKE_HARNESS_DIR=%q\n' "$STATE"
printf 'export CUPCAKE_HARNESS_BIN=%q\n' "$BIN"
printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_FILE"
