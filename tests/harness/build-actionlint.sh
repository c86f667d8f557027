#!/usr/bin/env bash
# Builds (once) and caches actionlint from its Go module, for the GitHub workflow
# tests (xtask/tests/workflows.rs):
#   ${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}/actionlint-<version>/bin/actionlint
# Rebuilt only when missing or when its pinned version changed (a stamp file says
# what the cached binary was built from).
#
# Usage: build-actionlint.sh [--print-bin] [--force]
#
# Environment (all optional):
#   CUPCAKE_HARNESS_CACHE        cache root (default $HOME/.cache/cupcake-harness)
#   CUPCAKE_ACTIONLINT_VERSION   github.com/rhysd/actionlint version (default v1.7.12)
# Go's own GOMODCACHE/GOCACHE stay where `go env` says, so rebuilds are warm.
set -euo pipefail

VERSION="${CUPCAKE_ACTIONLINT_VERSION:-v1.7.12}"
CACHE_ROOT="${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}"
DIR="$CACHE_ROOT/actionlint-$VERSION"
BIN="$DIR/bin/actionlint"
STAMP="github.com/rhysd/actionlint/cmd/actionlint@$VERSION cgo=0"

log() { printf '[build-actionlint.sh] %s\n' "$*"; }
die() { printf '[build-actionlint.sh] ERROR: %s\n' "$*" >&2; exit 1; }

force=0
for arg in "$@"; do
  case "$arg" in
    --print-bin) printf '%s\n' "$BIN"; exit 0 ;;
    --force) force=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (see --help)" ;;
  esac
done
[[ "$VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "CUPCAKE_ACTIONLINT_VERSION must look like v1.7.12, got '$VERSION'"

if ((force == 0)) && [[ -x "$BIN" && "$(cat "$DIR/bin/.stamp" 2>/dev/null)" == "$STAMP" ]]; then
  log "actionlint $VERSION is cached: $BIN"
  exit 0
fi
command -v go >/dev/null || die "go is not on PATH"
t0=$(date +%s)
log "building actionlint $VERSION"
mkdir -p "$DIR/bin"
GOBIN="$DIR/bin" CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-local}" \
  go install -ldflags "-s -w -X github.com/rhysd/actionlint.version=$VERSION" \
  "github.com/rhysd/actionlint/cmd/actionlint@$VERSION"
"$BIN" -version >/dev/null || die "the built actionlint does not run"
printf '%s\n' "$STAMP" > "$DIR/bin/.stamp"
log "built in $(( $(date +%s) - t0 ))s: $BIN"
