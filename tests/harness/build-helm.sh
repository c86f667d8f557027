#!/usr/bin/env bash
# Builds (once) and caches helm from its Go module, for the chart tests
# (tests/e2e/tests/chart.rs): no release tarball, no get-helm script.
#   ${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}/helm-<version>/bin/helm
# plus prometheus-operator's ServiceMonitor CRD (from its Go module, next to helm in
# crds/), so the chart's optional ServiceMonitor is checked by a real apiserver too.
# Rebuilt only when missing or when its pinned version changed (a stamp file says
# what the cached binary was built from). Built with helm's own Makefile flags
# (`-X` version and default Kubernetes version), else `helm version` says v3.x-unreleased
# and `helm lint`/`helm template` assume the wrong Kubernetes version.
#
# Usage: build-helm.sh [--print-bin] [--print-crd-dir] [--force]
#   --print-bin      print the path of the helm binary and exit (builds nothing)
#   --print-crd-dir  print the directory of the ServiceMonitor CRD and exit
#   --force      rebuild
#
# Environment (all optional):
#   CUPCAKE_HARNESS_CACHE  cache root (default $HOME/.cache/cupcake-harness)
#   CUPCAKE_HELM_VERSION   helm.sh/helm/v3 version (default v3.22.0)
#   CUPCAKE_PROM_OPERATOR_VERSION  prometheus-operator module version (default v0.85.0)
#   CUPCAKE_HARNESS_GO_P   value for `go build -p` (default: number of cores, at most 2)
# Go's own GOMODCACHE/GOCACHE stay where `go env` says, so rebuilds are warm.
set -euo pipefail

HELM_VERSION="${CUPCAKE_HELM_VERSION:-v3.22.0}"
CACHE_ROOT="${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}"
DIR="$CACHE_ROOT/helm-$HELM_VERSION"
BIN="$DIR/bin"
HELM="$BIN/helm"
STAMP_FILE="$BIN/.stamp-helm"
STAMP="helm.sh/helm/v3@$HELM_VERSION cgo=0 ldflags=makefile"
PROM_OPERATOR_VERSION="${CUPCAKE_PROM_OPERATOR_VERSION:-v0.85.0}"
CRD_DIR="$DIR/crds"
SM_CRD="$CRD_DIR/monitoring.coreos.com_servicemonitors.yaml"
SM_STAMP="github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION"

log() { printf '[build-helm.sh] %s\n' "$*"; }
die() { printf '[build-helm.sh] ERROR: %s\n' "$*" >&2; exit 1; }

force=0
for arg in "$@"; do
  case "$arg" in
    --print-bin) printf '%s\n' "$HELM"; exit 0 ;;
    --print-crd-dir) printf '%s\n' "$CRD_DIR"; exit 0 ;;
    --force) force=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (see --help)" ;;
  esac
done
[[ "$HELM_VERSION" =~ ^v3\.[0-9]+\.[0-9]+$ ]] || die "CUPCAKE_HELM_VERSION must look like v3.22.0, got '$HELM_VERSION'"

helm_fresh() { ((force == 0)) && [[ -x "$HELM" && -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$STAMP" ]]; }
crd_fresh() { ((force == 0)) && [[ -s "$SM_CRD" && "$(cat "$CRD_DIR/.stamp" 2>/dev/null)" == "$SM_STAMP" ]]; }
fresh() { helm_fresh && crd_fresh; }
if fresh; then
  log "helm $HELM_VERSION and the ServiceMonitor CRD are cached: $HELM"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH (helm $HELM_VERSION needs the Go its go.mod names)"
command -v flock >/dev/null || die "flock is missing (apt-get install util-linux)"
mkdir -p "$BIN" "$CRD_DIR"
exec 9>"$DIR/.build.lock"
if ! flock -n 9; then
  log "another build-helm.sh holds $DIR/.build.lock; waiting for it"
  flock 9
fi
if fresh; then
  log "helm $HELM_VERSION and the ServiceMonitor CRD are cached: $HELM"
  exit 0
fi

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"
GO_P="${CUPCAKE_HARNESS_GO_P:-$(( $(nproc) < 2 ? $(nproc) : 2 ))}"
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/cupcake-helm-build.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT

build_helm() {
  # The Makefile derives the default Kubernetes version from the client-go it requires
  # (v0.37.0 -> 1.37); read the same from the module's go.mod.
  local out moddir clientgo ldflags pkg gobin v start=$SECONDS
  out="$(cd "$SCRATCH" && go mod download -json "helm.sh/helm/v3@$HELM_VERSION")" \
    || die "go mod download helm.sh/helm/v3@$HELM_VERSION failed"
  moddir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$out")"
  [[ -f "$moddir/go.mod" ]] || die "no go.mod for helm.sh/helm/v3@$HELM_VERSION"
  clientgo="$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\.[0-9]*.*#\1#p' "$moddir/go.mod" | head -1)"
  [[ -n "$clientgo" ]] || die "found no k8s.io/client-go in $moddir/go.mod"
  log "go: $(go version) ; helm $HELM_VERSION (default Kubernetes 1.$clientgo) ; -p $GO_P"

  ldflags="-w -s"
  ldflags+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ldflags+=" -X helm.sh/helm/v3/internal/version.metadata="
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$clientgo"
  done

  gobin="$BIN/.gobin"
  rm -rf "$gobin"
  mkdir -p "$gobin"
  log "building helm (a cold build takes minutes) ..."
  (cd "$SCRATCH" && GOBIN="$gobin" go install -p "$GO_P" -trimpath -ldflags "$ldflags" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") || die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed"
  v="$("$gobin/helm" version --template '{{.Version}}' 2>&1 || true)"
  [[ "$v" == "$HELM_VERSION" ]] || die "the built helm says version '$v', expected $HELM_VERSION"
  mv -f "$gobin/helm" "$HELM"
  rm -rf "$gobin"
  printf '%s\n' "$STAMP" >"$STAMP_FILE"
  log "built helm $HELM_VERSION in $((SECONDS - start))s: $HELM"
}

copy_servicemonitor_crd() {
  local out moddir
  out="$(cd "$SCRATCH" && go mod download -json "$SM_STAMP")" || die "go mod download $SM_STAMP failed"
  moddir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$out")"
  [[ -s "$moddir/example/prometheus-operator-crd/$(basename "$SM_CRD")" ]] \
    || die "no ServiceMonitor CRD in $moddir/example/prometheus-operator-crd"
  mkdir -p "$CRD_DIR"
  install -m 0644 "$moddir/example/prometheus-operator-crd/$(basename "$SM_CRD")" "$SM_CRD"
  printf '%s\n' "$SM_STAMP" >"$CRD_DIR/.stamp"
  log "ServiceMonitor CRD of prometheus-operator $PROM_OPERATOR_VERSION: $SM_CRD"
}

helm_fresh || build_helm
crd_fresh || copy_servicemonitor_crd
