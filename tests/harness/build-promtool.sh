#!/usr/bin/env bash
# Builds (once) and caches promtool from the Prometheus Go module, for the alert-rule
# and dashboard tests (tests/e2e/tests/observability.rs): no release tarball.
#   ${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}/promtool-<version>/bin/promtool
# plus prometheus-operator's PrometheusRule CRD (from its Go module, next to promtool in
# crds/), so the chart's optional PrometheusRule is checked by a real apiserver too.
# Rebuilt only when missing or when its pinned version changed (a stamp file says
# what the cached binary was built from). Built with Prometheus' own .promu.yml flags
# (`-X` version, `netgo` tag), else `promtool --version` says nothing useful, and with
# Prometheus' `remove_all_sd` tag: no service-discovery plugins (cloud SDKs), which the
# tests never use (`check rules`, `test rules`, `check metrics`). That cuts a cold build
# (module downloads included) from 9 minutes, 6 CPU-minutes and 3.5 GB peak memory to
# 3 minutes, 2.5 CPU-minutes and 0.9 GB on 2 cores; a cached run takes 0.01 s. It runs
# under `nice` so it does not starve the rest of the machine.
#
# Usage: build-promtool.sh [--print-bin] [--print-crd-dir] [--force]
#   --print-bin      print the path of the promtool binary and exit (builds nothing)
#   --print-crd-dir  print the directory of the PrometheusRule CRD and exit
#   --force          rebuild
#
# Environment (all optional):
#   CUPCAKE_HARNESS_CACHE  cache root (default $HOME/.cache/cupcake-harness)
#   CUPCAKE_PROMETHEUS_VERSION  github.com/prometheus/prometheus module version
#                          (default v0.316.0, which is Prometheus 3.16.0)
#   CUPCAKE_PROM_OPERATOR_VERSION  prometheus-operator module version (default v0.85.0)
#   CUPCAKE_HARNESS_GO_P   value for `go build -p` (default: number of cores, at most 2)
# Go's own GOMODCACHE/GOCACHE stay where `go env` says, so rebuilds are warm.
set -euo pipefail

PROM_VERSION="${CUPCAKE_PROMETHEUS_VERSION:-v0.316.0}"
CACHE_ROOT="${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}"
DIR="$CACHE_ROOT/promtool-$PROM_VERSION"
BIN="$DIR/bin"
PROMTOOL="$BIN/promtool"
STAMP_FILE="$BIN/.stamp-promtool"
STAMP="github.com/prometheus/prometheus@$PROM_VERSION cgo=0 tags=netgo,remove_all_sd ldflags=promu"
PROM_OPERATOR_VERSION="${CUPCAKE_PROM_OPERATOR_VERSION:-v0.85.0}"
CRD_DIR="$DIR/crds"
PR_CRD="$CRD_DIR/monitoring.coreos.com_prometheusrules.yaml"
PR_STAMP="github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION"

log() { printf '[build-promtool.sh] %s\n' "$*"; }
die() { printf '[build-promtool.sh] ERROR: %s\n' "$*" >&2; exit 1; }

force=0
for arg in "$@"; do
  case "$arg" in
    --print-bin) printf '%s\n' "$PROMTOOL"; exit 0 ;;
    --print-crd-dir) printf '%s\n' "$CRD_DIR"; exit 0 ;;
    --force) force=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (see --help)" ;;
  esac
done
[[ "$PROM_VERSION" =~ ^v0\.[0-9]+\.[0-9]+$ ]] \
  || die "CUPCAKE_PROMETHEUS_VERSION must look like v0.316.0 (the Go module version), got '$PROM_VERSION'"

promtool_fresh() { ((force == 0)) && [[ -x "$PROMTOOL" && -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$STAMP" ]]; }
crd_fresh() { ((force == 0)) && [[ -s "$PR_CRD" && "$(cat "$CRD_DIR/.stamp" 2>/dev/null)" == "$PR_STAMP" ]]; }
fresh() { promtool_fresh && crd_fresh; }
if fresh; then
  log "promtool $PROM_VERSION and the PrometheusRule CRD are cached: $PROMTOOL"
  exit 0
fi

command -v go >/dev/null || die "go is not on PATH (prometheus $PROM_VERSION needs the Go its go.mod names)"
command -v flock >/dev/null || die "flock is missing (apt-get install util-linux)"
mkdir -p "$BIN" "$CRD_DIR"
exec 9>"$DIR/.build.lock"
if ! flock -n 9; then
  log "another build-promtool.sh holds $DIR/.build.lock; waiting for it"
  flock 9
fi
if fresh; then
  log "promtool $PROM_VERSION and the PrometheusRule CRD are cached: $PROMTOOL"
  exit 0
fi

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"
GO_P="${CUPCAKE_HARNESS_GO_P:-$(( $(nproc) < 2 ? $(nproc) : 2 ))}"
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/cupcake-promtool-build.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT

build_promtool() {
  # The module version v0.X.Y is Prometheus 3.X/100.Y; its VERSION file says which.
  local out moddir version ldflags gobin v start=$SECONDS
  out="$(cd "$SCRATCH" && go mod download -json "github.com/prometheus/prometheus@$PROM_VERSION")" \
    || die "go mod download github.com/prometheus/prometheus@$PROM_VERSION failed"
  moddir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$out")"
  [[ -f "$moddir/VERSION" ]] || die "no VERSION file in github.com/prometheus/prometheus@$PROM_VERSION ($moddir)"
  version="$(tr -d '[:space:]' <"$moddir/VERSION")"
  log "go: $(go version) ; prometheus $PROM_VERSION (Prometheus $version) ; -p $GO_P"

  ldflags="-w -s"
  ldflags+=" -X github.com/prometheus/common/version.Version=$version"
  ldflags+=" -X github.com/prometheus/common/version.Revision=$PROM_VERSION"
  ldflags+=" -X github.com/prometheus/common/version.Branch=HEAD"
  ldflags+=" -X github.com/prometheus/common/version.BuildUser=cupcake-harness"

  gobin="$BIN/.gobin"
  rm -rf "$gobin"
  mkdir -p "$gobin"
  log "building promtool (a cold build takes about 3 minutes and 1 GB on 2 cores) ..."
  (cd "$SCRATCH" && GOBIN="$gobin" nice -n 10 go install -p "$GO_P" -trimpath -tags netgo,remove_all_sd \
    -ldflags "$ldflags" "github.com/prometheus/prometheus/cmd/promtool@$PROM_VERSION") \
    || die "go install github.com/prometheus/prometheus/cmd/promtool@$PROM_VERSION failed"
  v="$("$gobin/promtool" --version 2>&1 | head -1 || true)"
  [[ "$v" == "promtool, version $version "* ]] \
    || die "the built promtool says '$v', expected 'promtool, version $version ...'"
  mv -f "$gobin/promtool" "$PROMTOOL"
  rm -rf "$gobin"
  printf '%s\n' "$STAMP" >"$STAMP_FILE"
  log "built promtool $version in $((SECONDS - start))s: $PROMTOOL"
}

copy_prometheusrule_crd() {
  local out moddir
  out="$(cd "$SCRATCH" && go mod download -json "$PR_STAMP")" || die "go mod download $PR_STAMP failed"
  moddir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$out")"
  [[ -s "$moddir/example/prometheus-operator-crd/$(basename "$PR_CRD")" ]] \
    || die "no PrometheusRule CRD in $moddir/example/prometheus-operator-crd"
  mkdir -p "$CRD_DIR"
  install -m 0644 "$moddir/example/prometheus-operator-crd/$(basename "$PR_CRD")" "$PR_CRD"
  printf '%s\n' "$PR_STAMP" >"$CRD_DIR/.stamp"
  log "PrometheusRule CRD of prometheus-operator $PROM_OPERATOR_VERSION: $PR_CRD"
}

promtool_fresh || build_promtool
crd_fresh || copy_prometheusrule_crd
