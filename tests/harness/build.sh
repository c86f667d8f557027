#!/usr/bin/env bash
# Builds (once) and caches the binaries of CUPCAKE's test control plane:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  (one Kubernetes release)
#   etcd (the 3.6.x that release's go.mod requires), kwok (+ its stage files), opa
# from Go modules only: no Docker, no release tarballs. Binaries land in
#   ${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}/<k8s-version>/bin/
# and are rebuilt only when missing (or when their pinned version changed).
#
# Usage: build.sh [--print-bin-dir] [--force]
#   --print-bin-dir  print the bin directory and exit (builds nothing)
#   --force          rebuild everything
#
# Environment (all optional):
#   CUPCAKE_HARNESS_CACHE    cache root (default $HOME/.cache/cupcake-harness)
#   CUPCAKE_K8S_VERSION      k8s.io/kubernetes release (default v1.35.4)
#   CUPCAKE_ETCD_VERSION     go.etcd.io/etcd/server/v3 version (default v3.6.5, what v1.35.4 requires)
#   CUPCAKE_KWOK_VERSION     sigs.k8s.io/kwok version (default v0.7.0)
#   CUPCAKE_OPA_VERSION      github.com/open-policy-agent/opa version (default v1.22.3)
#   CUPCAKE_HARNESS_GO_P     value for `go build -p` (default: number of cores, at most 2)
# Go's own GOMODCACHE/GOCACHE stay where `go env` says, so rebuilds are warm.
set -euo pipefail

K8S_VERSION="${CUPCAKE_K8S_VERSION:-v1.35.4}"
ETCD_VERSION="${CUPCAKE_ETCD_VERSION:-v3.6.5}"
KWOK_VERSION="${CUPCAKE_KWOK_VERSION:-v0.7.0}"
OPA_VERSION="${CUPCAKE_OPA_VERSION:-v1.22.3}"
CACHE_ROOT="${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}"
VDIR="$CACHE_ROOT/$K8S_VERSION"
BIN="$VDIR/bin"
STAGES="$VDIR/kwok-stages"
SRC="$VDIR/src"
GO_TAGS="selinux,notest,grpcnotrace"
KWOK_STAGE_FILES=(
  node/fast/node-initialize.yaml
  node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
  pod/fast/pod-ready.yaml
  pod/fast/pod-complete.yaml
  pod/fast/pod-delete.yaml
)

log() { printf '[build.sh] %s\n' "$*"; }
die() { printf '[build.sh] ERROR: %s\n' "$*" >&2; exit 1; }

force=0
for arg in "$@"; do
  case "$arg" in
    --print-bin-dir) printf '%s\n' "$BIN"; exit 0 ;;
    --force) force=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (see --help)" ;;
  esac
done

[[ "$K8S_VERSION" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] \
  || die "CUPCAKE_K8S_VERSION must look like v1.35.4, got '$K8S_VERSION'"
K8S_MINOR="${BASH_REMATCH[1]}"
STAGING_VERSION="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"

# The stamp says what a cached binary was built from; a different stamp means rebuild.
stamp_of() {
  case "$1" in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl)
      echo "k8s.io/kubernetes@$K8S_VERSION tags=$GO_TAGS cgo=0" ;;
    etcd) echo "go.etcd.io/etcd/server/v3@$ETCD_VERSION cgo=0" ;;
    kwok) echo "sigs.k8s.io/kwok@$KWOK_VERSION cgo=0" ;;
    opa) echo "github.com/open-policy-agent/opa@$OPA_VERSION cgo=0" ;;
    kwok-stages) echo "sigs.k8s.io/kwok@$KWOK_VERSION ${KWOK_STAGE_FILES[*]}" ;;
  esac
}
ALL=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok opa kwok-stages)

is_fresh() {
  local name="$1" stampfile="$BIN/.stamp-$1"
  ((force == 0)) || return 1
  [[ -f "$stampfile" && "$(cat "$stampfile")" == "$(stamp_of "$name")" ]] || return 1
  if [[ "$name" == kwok-stages ]]; then
    local f
    for f in "${KWOK_STAGE_FILES[@]}"; do [[ -s "$STAGES/$(basename "$f")" ]] || return 1; done
  else
    [[ -x "$BIN/$name" ]] || return 1
  fi
}

missing=()
for name in "${ALL[@]}"; do is_fresh "$name" || missing+=("$name"); done
if ((${#missing[@]} == 0)); then
  log "all binaries of $K8S_VERSION are cached in $BIN"
  exit 0
fi

# ---- from here on we build: need go, serialize concurrent runs ------------------------
command -v go >/dev/null || die "go is not on PATH (Go >= 1.25 is needed to build the harness)"
command -v flock >/dev/null || die "flock is missing (apt-get install util-linux)"
mkdir -p "$BIN" "$STAGES" "$SRC"
exec 9>"$VDIR/.build.lock"
if ! flock -n 9; then
  log "another build.sh holds $VDIR/.build.lock; waiting for it"
  flock 9
fi
# Somebody else may have built things while we waited.
missing=()
for name in "${ALL[@]}"; do is_fresh "$name" || missing+=("$name"); done
if ((${#missing[@]} == 0)); then
  log "all binaries of $K8S_VERSION are cached in $BIN"
  exit 0
fi

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"
GO_P="${CUPCAKE_HARNESS_GO_P:-$(( $(nproc) < 2 ? $(nproc) : 2 ))}"
log "go: $(go version) ; GOMODCACHE=$(go env GOMODCACHE) GOCACHE=$(go env GOCACHE) ; -p $GO_P"
log "to build: ${missing[*]}"

TOTAL_START=$SECONDS
declare -A TIMES=()

# A scratch directory with no go.mod, for `go mod download` of a module at a version.
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/cupcake-harness-build.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT

mod_dir() { # module@version -> its directory in the module cache (downloading it if needed)
  local out
  out="$(cd "$SCRATCH" && go mod download -json "$1")" || die "go mod download $1 failed"
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$out"
}
mod_info_time() { # module@version -> its commit time (RFC 3339), from the proxy's .info
  local out
  out="$(cd "$SCRATCH" && go mod download -json "$1")" || return 0
  local info
  info="$(sed -n 's/^[[:space:]]*"Info": "\(.*\)",\{0,1\}$/\1/p' <<<"$out")"
  if [[ -n "$info" && -f "$info" ]]; then sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info"; fi
}

install_bin() { # name tmpfile -> move into place and write the stamp
  chmod +x "$2"
  mv -f "$2" "$BIN/$1"
  stamp_of "$1" >"$BIN/.stamp-$1"
}

timed() { # name cmd... -> run, record seconds
  local name="$1" start=$SECONDS
  shift
  log "building $name ..."
  "$@" || die "building $name failed (see the go output above)"
  TIMES[$name]=$((SECONDS - start))
  log "built $name in ${TIMES[$name]}s"
}

need() { local n; for n in "$@"; do [[ " ${missing[*]} " == *" $n "* ]] && return 0; done; return 1; }

# ---- Kubernetes -------------------------------------------------------------------------
prepare_k8s_module() {
  local kdir gomod replaces="" mod
  kdir="$(mod_dir "k8s.io/kubernetes@$K8S_VERSION")"
  [[ -n "$kdir" && -f "$kdir/go.mod" ]] || die "could not download k8s.io/kubernetes@$K8S_VERSION"
  gomod="$kdir/go.mod"
  local godir
  godir="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
  log "k8s.io/kubernetes@$K8S_VERSION wants go $godir"
  local want_etcd
  want_etcd="$(sed -n 's#^[[:space:]]*go.etcd.io/etcd/server/v3 \(v[^ ]*\).*#\1#p' "$gomod" | head -1)"
  if [[ -n "$want_etcd" && "$want_etcd" != "$ETCD_VERSION" ]]; then
    log "NOTE: k8s.io/kubernetes@$K8S_VERSION requires etcd server $want_etcd; building etcd $ETCD_VERSION (set CUPCAKE_ETCD_VERSION to change)"
  fi
  # Every staging module of the release's own replace block -> the published v0.<minor>.<patch> tag.
  local staging
  staging="$(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => \./staging/src/.*#\1#p' "$gomod")"
  [[ -n "$staging" ]] || die "found no staging replace lines in $gomod"
  log "replacing $(wc -l <<<"$staging") staging modules with $STAGING_VERSION"
  while read -r mod; do
    replaces+="	$mod => $mod $STAGING_VERSION"$'\n'
  done <<<"$staging"

  local dir="$SRC/kubernetes-$K8S_VERSION"
  mkdir -p "$dir"
  local godebug
  godebug="$(grep -E '^godebug ' "$gomod" || true)"
  local newmod
  newmod="module cupcake.local/harness/kubernetes

go $godir
${godebug}

require k8s.io/kubernetes $K8S_VERSION

replace (
${replaces})
"
  # Keep go.mod/go.sum when unchanged, so a warm rebuild does not re-resolve anything.
  if [[ ! -f "$dir/go.mod.in" || "$(cat "$dir/go.mod.in")" != "$(printf '%s' "$newmod")" || ! -f "$dir/go.sum" ]]; then
    printf '%s' "$newmod" >"$dir/go.mod.in"
    printf '%s' "$newmod" >"$dir/go.mod"
    rm -f "$dir/go.sum"
    cat >"$dir/tools.go" <<'EOF'
//go:build tools

// Package tools only pins the commands built from k8s.io/kubernetes.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
    log "resolving the kubernetes wrapper module (go mod tidy) ..."
    local start=$SECONDS
    (cd "$dir" && go mod tidy) || { rm -f "$dir/go.mod.in"; die "go mod tidy failed in $dir"; }
    TIMES[k8s-go-mod-tidy]=$((SECONDS - start))
  fi
  K8S_MOD_DIR="$dir"
  local bdate
  bdate="$(mod_info_time "k8s.io/kubernetes@$K8S_VERSION")"
  [[ -n "$bdate" ]] || bdate="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  K8S_LDFLAGS="-s -w"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    K8S_LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
    K8S_LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$bdate"
  done
}

build_k8s_cmd() {
  local name="$1" tmp="$BIN/.tmp-$1"
  (cd "$K8S_MOD_DIR" && go build -p "$GO_P" -trimpath -tags "$GO_TAGS" -ldflags "$K8S_LDFLAGS" \
    -o "$tmp" "k8s.io/kubernetes/cmd/$name") || return 1
  local v
  if [[ "$name" == kubectl ]]; then
    v="$("$tmp" version --client 2>&1 || true)"
  else
    v="$("$tmp" --version 2>&1 || true)"
  fi
  [[ "$v" == *"$K8S_VERSION"* ]] || { echo "$name --version says '$v', expected $K8S_VERSION" >&2; return 1; }
  install_bin "$name" "$tmp"
}

if need kube-apiserver kube-controller-manager kube-scheduler kubectl; then
  prepare_k8s_module
  for name in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    need "$name" && timed "$name" build_k8s_cmd "$name"
  done
fi

# ---- etcd -------------------------------------------------------------------------------
build_etcd() {
  local dir="$SRC/etcd-$ETCD_VERSION" tmp="$BIN/.tmp-etcd"
  mkdir -p "$dir"
  if [[ ! -f "$dir/go.sum" ]] || ! grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION" "$dir/go.mod" 2>/dev/null; then
    cat >"$dir/go.mod" <<EOF
module cupcake.local/harness/etcd

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
    cat >"$dir/main.go" <<'EOF'
// Command etcd is etcd's own server main, built from the published module
// (`go install` of etcd fails on its replace directives; a wrapper does not).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
    rm -f "$dir/go.sum"
    (cd "$dir" && go mod tidy) || return 1
  fi
  (cd "$dir" && go build -p "$GO_P" -trimpath -ldflags "-s -w" -o "$tmp" .) || return 1
  "$tmp" --version | grep -q "etcd Version: ${ETCD_VERSION#v}" || { echo "etcd --version mismatch" >&2; return 1; }
  install_bin etcd "$tmp"
}
need etcd && timed etcd build_etcd

# ---- kwok and opa: plain `go install module/cmd@version` (no replace lines in their go.mod) ---
go_install() { # name package@version
  local name="$1" pkgver="$2" gobin="$BIN/.gobin-$1"
  rm -rf "$gobin"
  mkdir -p "$gobin"
  (cd "$SCRATCH" && GOBIN="$gobin" go install -p "$GO_P" -trimpath -ldflags "-s -w" "$pkgver") || return 1
  [[ -x "$gobin/$name" ]] || { echo "go install did not produce $gobin/$name" >&2; return 1; }
  install_bin "$name" "$gobin/$name"
  rm -rf "$gobin"
}
need kwok && timed kwok go_install kwok "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
need opa && timed opa go_install opa "github.com/open-policy-agent/opa@$OPA_VERSION"

copy_stages() {
  local kdir f
  kdir="$(mod_dir "sigs.k8s.io/kwok@$KWOK_VERSION")"
  [[ -d "$kdir/kustomize/stage" ]] || { echo "no kustomize/stage in $kdir" >&2; return 1; }
  for f in "${KWOK_STAGE_FILES[@]}"; do
    install -m 0644 "$kdir/kustomize/stage/$f" "$STAGES/$(basename "$f")" || return 1
  done
  stamp_of kwok-stages >"$BIN/.stamp-kwok-stages"
}
need kwok-stages && timed kwok-stages copy_stages

cat >"$VDIR/versions.txt" <<EOF
kubernetes $K8S_VERSION (staging modules $STAGING_VERSION)
etcd $ETCD_VERSION
kwok $KWOK_VERSION
opa $OPA_VERSION
built with $(go version | awk '{print $3}') tags=$GO_TAGS CGO_ENABLED=0
EOF

summary=""
for name in k8s-go-mod-tidy "${ALL[@]}"; do
  [[ -n "${TIMES[$name]:-}" ]] && summary+=" $name=${TIMES[$name]}s"
done
log "done in $((SECONDS - TOTAL_START))s:$summary"
log "binaries: $BIN"
