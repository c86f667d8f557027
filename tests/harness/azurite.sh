#!/usr/bin/env bash
# Installs (once) Azurite, Microsoft's Azure Storage emulator (npm `azurite`, pinned), for the
# az:// tests of the etcd backup (agent/tests/backup_clouds.rs):
#   ${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}/azurite-<version>/node_modules/.bin/azurite-blob
# Reinstalled only when missing or when the pinned version changed. The tests start the blob
# service themselves, one per test on a free port, in memory (--inMemoryPersistence).
#
# Usage: azurite.sh [--print-bin] [--force]
#   --print-bin  print the azurite-blob path and exit (installs nothing)
#
# Environment (optional):
#   CUPCAKE_HARNESS_CACHE     cache root (default $HOME/.cache/cupcake-harness)
#   CUPCAKE_AZURITE_VERSION   npm azurite version (default 3.37.0)
set -euo pipefail

AZURITE_VERSION="${CUPCAKE_AZURITE_VERSION:-3.37.0}"
CACHE_ROOT="${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}"
DIR="$CACHE_ROOT/azurite-$AZURITE_VERSION"
BIN="$DIR/node_modules/.bin/azurite-blob"
STAMP="azurite@$AZURITE_VERSION"

log() { printf '[azurite.sh] %s\n' "$*" >&2; }
die() { printf '[azurite.sh] ERROR: %s\n' "$*" >&2; exit 1; }

force=0
for arg in "$@"; do
  case "$arg" in
    --print-bin) printf '%s\n' "$BIN"; exit 0 ;;
    --force) force=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (see --help)" ;;
  esac
done

if ((force == 0)) && [[ -x "$BIN" && "$(cat "$DIR/.stamp" 2>/dev/null)" == "$STAMP" ]]; then
  log "azurite $AZURITE_VERSION cached: $BIN"
  exit 0
fi
command -v node >/dev/null || die "node is not on PATH (Debian: apt-get install nodejs npm)"
command -v npm >/dev/null || die "npm is not on PATH (Debian: apt-get install npm)"
start=$SECONDS
rm -rf "$DIR.tmp"
mkdir -p "$DIR.tmp"
printf '{"name":"cupcake-azurite","private":true}\n' >"$DIR.tmp/package.json"
npm install --prefix "$DIR.tmp" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION" >&2 \
  || die "npm install azurite@$AZURITE_VERSION failed"
[[ -x "$DIR.tmp/node_modules/.bin/azurite-blob" ]] || die "no azurite-blob in $DIR.tmp/node_modules/.bin"
# The install works only if the blob service starts and answers.
"$DIR.tmp/node_modules/.bin/azurite-blob" --version >/dev/null || die "azurite-blob --version failed"
printf '%s\n' "$STAMP" >"$DIR.tmp/.stamp"
rm -rf "$DIR"
mv "$DIR.tmp" "$DIR"
log "installed $STAMP in $((SECONDS - start))s: $BIN"
