#!/usr/bin/env bash
# Stops a control plane started by up.sh: exactly the processes up.sh recorded (by PID, after
# checking that each PID still runs a command line naming the harness' state or etcd data dir),
# then removes the etcd data dir. Logs and PKI stay unless --clean.
#
# Usage: down.sh [--dir DIR] [--clean]
#   --dir DIR  the state dir up.sh printed (default: $CUPCAKE_HARNESS_DIR if set, else the
#              last one up.sh started, as recorded in ${TMPDIR:-/tmp}/cupcake-harness.current)
#   --clean    also delete the state dir's contents (logs, PKI, kubeconfig)
set -euo pipefail

POINTER="${TMPDIR:-/tmp}/cupcake-harness.current"
log() { printf '[down.sh] %s\n' "$*" >&2; }
die() { printf '[down.sh] ERROR: %s\n' "$*" >&2; exit 1; }

dir="" clean=0
while (($#)); do
  case "$1" in
    --dir) dir="${2:?--dir needs a path}"; shift 2 ;;
    --dir=*) dir="${1#*=}"; shift ;;
    --clean) clean=1; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
# Which harness: --dir, else $CUPCAKE_HARNESS_DIR (set by `eval "$(up.sh)"`), else the pointer
# file of the most recent up.sh (which another user's up.sh may have overwritten: scripts
# should pass --dir).
if [[ -z "$dir" && -n "${CUPCAKE_HARNESS_DIR:-}" ]]; then
  dir="$CUPCAKE_HARNESS_DIR"
  log "using CUPCAKE_HARNESS_DIR=$dir"
fi
if [[ -z "$dir" ]]; then
  [[ -s "$POINTER" ]] || die "no --dir given, no CUPCAKE_HARNESS_DIR and no $POINTER: nothing to stop"
  dir="$(cat "$POINTER")"
  log "using the most recent harness, $dir (from $POINTER)"
fi
[[ -d "$dir" ]] || die "state dir $dir does not exist"
STATE="$(cd "$dir" && pwd)"
[[ -d "$STATE/pids" || -f "$STATE/etcd-data-dir" ]] || die "$STATE does not look like an up.sh state dir"

ETCD_DATA=""
[[ -f "$STATE/etcd-data-dir" ]] && ETCD_DATA="$(cat "$STATE/etcd-data-dir")"

gone() { # pid: no such process, or only a zombie left
  local st
  [[ -r "/proc/$1/stat" ]] || return 0
  st="$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 0
  [[ -z "$st" || "$st" == Z || "$st" == X ]]
}
ours() { # pid: its command line names our state dir or our etcd data dir
  local cmd
  cmd="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
  [[ "$cmd" == *"$STATE/"* ]] && return 0
  [[ -n "$ETCD_DATA" && "$cmd" == *"$ETCD_DATA"* ]]
}

# Stop in reverse start order (kwok and controllers first, etcd last).
order=()
if [[ -f "$STATE/pids/order" ]]; then
  mapfile -t order < <(tac "$STATE/pids/order" | awk '!seen[$0]++')
fi
for n in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  [[ " ${order[*]} " == *" $n "* ]] || order+=("$n")
done

failed=0
for name in "${order[@]}"; do
  pidfile="$STATE/pids/$name.pid"
  [[ -f "$pidfile" ]] || continue
  pid="$(cat "$pidfile")"
  if ! [[ "$pid" =~ ^[0-9]+$ ]] || gone "$pid"; then
    log "$name (pid ${pid:-?}) is not running"
    rm -f "$pidfile"
    continue
  fi
  if ! ours "$pid"; then
    log "pid $pid is no longer $name of this harness (its command line does not name $STATE); leaving it alone"
    rm -f "$pidfile"
    continue
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do gone "$pid" && break; sleep 0.1; done
  if ! gone "$pid"; then
    log "$name (pid $pid) ignored SIGTERM for 10s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do gone "$pid" && break; sleep 0.1; done
  fi
  if gone "$pid"; then
    log "stopped $name (pid $pid)"
    rm -f "$pidfile"
  else
    log "could not stop $name (pid $pid)"
    failed=1
  fi
done
rm -f "$STATE/pids/order"

if [[ -n "$ETCD_DATA" && -d "$ETCD_DATA" ]]; then
  case "$(basename "$ETCD_DATA")" in
    cupcake-harness-etcd.*) rm -rf "$ETCD_DATA"; log "removed etcd data $ETCD_DATA" ;;
    *) log "not removing unexpected etcd data dir $ETCD_DATA" ;;
  esac
fi
rm -f "$STATE/etcd-data-dir"

if [[ -f "$POINTER" && "$(cat "$POINTER" 2>/dev/null)" == "$STATE" ]]; then
  rm -f "$POINTER"
fi

if ((clean)); then
  rm -rf "$STATE/pki" "$STATE/logs" "$STATE/nodes" "$STATE/kwok-home" \
    "$STATE/kubeconfig" "$STATE/env" "$STATE/flexvolume"
  rmdir "$STATE/pids" 2>/dev/null || true
  rmdir "$STATE" 2>/dev/null || log "left $STATE (it holds files up.sh did not make)"
  log "cleaned $STATE"
else
  log "logs kept in $STATE/logs"
fi
exit "$failed"
