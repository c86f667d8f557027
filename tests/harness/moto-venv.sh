#!/usr/bin/env bash
# Installs (once) the S3-compatible test server of the backup tests, moto[server] pinned,
# into its own cached virtualenv:
#   ${CUPCAKE_MOTO_VENV:-$HOME/.cache/cupcake-moto/venv}/bin/moto_server
# Reinstalled only when missing or when the pinned version changed.
#
# Usage: moto-venv.sh [--print-bin] [--force]
#   --print-bin  print the moto_server path and exit (installs nothing)
set -euo pipefail

MOTO_VERSION="${CUPCAKE_MOTO_VERSION:-5.2.1}"
VENV="${CUPCAKE_MOTO_VENV:-$HOME/.cache/cupcake-moto/venv}"
STAMP="moto[server]==$MOTO_VERSION"

log() { printf '[moto-venv.sh] %s\n' "$*"; }
die() { printf '[moto-venv.sh] ERROR: %s\n' "$*" >&2; exit 1; }

force=0
for arg in "$@"; do
  case "$arg" in
    --print-bin) printf '%s\n' "$VENV/bin/moto_server"; exit 0 ;;
    --force) force=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (see --help)" ;;
  esac
done

if ((force == 0)) && [[ -x "$VENV/bin/moto_server" && "$(cat "$VENV/.stamp" 2>/dev/null)" == "$STAMP" ]]; then
  log "moto $MOTO_VERSION cached: $VENV/bin/moto_server"
  exit 0
fi
start=$SECONDS
python3 -m venv --help >/dev/null 2>&1 || die "python3 with the venv module is needed (Debian: python3-venv)"
rm -rf "$VENV"
python3 -m venv "$VENV" || die "python3 -m venv $VENV failed (Debian: apt-get install python3-venv)"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "$STAMP" || die "pip install $STAMP failed"
[[ -x "$VENV/bin/moto_server" ]] || die "no moto_server in $VENV/bin"
printf '%s\n' "$STAMP" >"$VENV/.stamp"
log "installed $STAMP in $((SECONDS - start))s: $VENV/bin/moto_server"
