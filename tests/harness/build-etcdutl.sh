#!/usr/bin/env bash
# Builds (once) and caches etcdutl at the harness's etcd version, for the backup tests
# (`etcdutl snapshot status -w json`, `etcdutl snapshot restore` check a snapshot for real).
#
# `go install go.etcd.io/etcd/etcdutl/v3@vX` fails on the replace lines of its go.mod, so,
# like the harness's etcd, it is built from a small wrapper module that requires the
# published module and carries etcdutl's own two `package main` files (main.go, ctl.go)
# copied from the module cache. The binary lands next to the harness's others:
#   ${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}/<k8s-version>/bin/etcdutl
# and is rebuilt only when missing or when the pinned version changed.
#
# Usage: build-etcdutl.sh [--print-path] [--force]
#
# Environment (all optional, the same as build.sh):
#   CUPCAKE_HARNESS_CACHE, CUPCAKE_K8S_VERSION (default v1.35.4),
#   CUPCAKE_ETCD_VERSION (default v3.6.5), CUPCAKE_HARNESS_GO_P
set -euo pipefail

K8S_VERSION="${CUPCAKE_K8S_VERSION:-v1.35.4}"
ETCD_VERSION="${CUPCAKE_ETCD_VERSION:-v3.6.5}"
CACHE_ROOT="${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}"
BIN="$CACHE_ROOT/$K8S_VERSION/bin"
SRC="$CACHE_ROOT/$K8S_VERSION/src/etcdutl-$ETCD_VERSION"
STAMP="go.etcd.io/etcd/etcdutl/v3@$ETCD_VERSION cgo=0"
GO_P="${CUPCAKE_HARNESS_GO_P:-$(($(nproc) < 2 ? $(nproc) : 2))}"
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}" CGO_ENABLED=0

log() { printf '[build-etcdutl.sh] %s\n' "$*"; }
die() { printf '[build-etcdutl.sh] ERROR: %s\n' "$*" >&2; exit 1; }

force=0
for arg in "$@"; do
  case "$arg" in
    --print-path) printf '%s\n' "$BIN/etcdutl"; exit 0 ;;
    --force) force=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (see --help)" ;;
  esac
done

if ((force == 0)) && [[ -x "$BIN/etcdutl" && -f "$BIN/.stamp-etcdutl" && "$(cat "$BIN/.stamp-etcdutl")" == "$STAMP" ]]; then
  log "etcdutl $ETCD_VERSION cached: $BIN/etcdutl"
  exit 0
fi
command -v go >/dev/null || die "go not found"
start=$SECONDS
mkdir -p "$BIN" "$SRC"
if [[ ! -f "$SRC/go.sum" ]] || ! grep -q "go.etcd.io/etcd/etcdutl/v3 $ETCD_VERSION" "$SRC/go.mod" 2>/dev/null; then
  rm -f "$SRC/go.sum" "$SRC"/*.go
  cat >"$SRC/go.mod" <<EOF
module cupcake.local/harness/etcdutl

go 1.24

require go.etcd.io/etcd/etcdutl/v3 $ETCD_VERSION
EOF
  moddir="$(cd "$SRC" && go mod download -json "go.etcd.io/etcd/etcdutl/v3@$ETCD_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -f "$moddir/main.go" && -f "$moddir/ctl.go" ]] || die "no main.go/ctl.go in the module at '$moddir'"
  # etcdutl's own command: its main package, unchanged.
  install -m 0644 "$moddir/main.go" "$moddir/ctl.go" "$SRC/"
  (cd "$SRC" && go mod tidy) || die "go mod tidy failed in $SRC"
fi
tmp="$BIN/.tmp-etcdutl"
(cd "$SRC" && go build -p "$GO_P" -trimpath -ldflags "-s -w" -o "$tmp" .) || die "go build failed in $SRC"
"$tmp" version | grep -q "etcdutl version: ${ETCD_VERSION#v}" || die "etcdutl version mismatch: $("$tmp" version | head -1)"
mv -f "$tmp" "$BIN/etcdutl"
printf '%s\n' "$STAMP" >"$BIN/.stamp-etcdutl"
log "built etcdutl $ETCD_VERSION in $((SECONDS - start))s: $BIN/etcdutl"
