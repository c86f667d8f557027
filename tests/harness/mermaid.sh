#!/usr/bin/env bash
# Installs (once) and caches Mermaid's own parser for the plan's Gantt chart
# (reconciler/tests/mermaid.rs), and checks Mermaid files with it.
#   ${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}/mermaid-<version>/
#
# Why not mermaid-cli: @mermaid-js/mermaid-cli 12 needs node >= 22.13 and a browser;
# this machine has node 20. The `mermaid` package itself parses under node 20 once
# a DOM exists (jsdom provides one); npm warns that its @mermaid-js/parser
# dependency asks for node >= 22.12, but that parser only serves the Langium-based
# diagrams (pie, packet, ...), not gantt, which mermaid parses with its own grammar.
# A check is what mermaid.parse() accepts, plus, for Gantt charts, Mermaid's own
# Gantt model compiling every task to a start and an end (a bad date or an unknown
# `after` reference fails there, not in the grammar).
#
# Usage:
#   mermaid.sh                  install if missing (or if the pinned versions changed)
#   mermaid.sh --print-dir      print the install directory and exit
#   mermaid.sh --check FILE...  install if missing, then check each file; prints one
#                               JSON line per file ({"file", "ok", "type", "error",
#                               "tasks": [{"id","task","section","start","end"}]});
#                               exits 1 if any file fails
#
# Environment (all optional):
#   CUPCAKE_HARNESS_CACHE     cache root (default $HOME/.cache/cupcake-harness)
#   CUPCAKE_MERMAID_VERSION   npm mermaid version (default 12.3.0)
#   CUPCAKE_JSDOM_VERSION     npm jsdom version (default 26.1.0)
set -euo pipefail

MERMAID_VERSION="${CUPCAKE_MERMAID_VERSION:-12.3.0}"
JSDOM_VERSION="${CUPCAKE_JSDOM_VERSION:-26.1.0}"
CACHE_ROOT="${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}"
DIR="$CACHE_ROOT/mermaid-$MERMAID_VERSION"
STAMP="mermaid@$MERMAID_VERSION jsdom@$JSDOM_VERSION check.mjs@2"

log() { printf '[mermaid.sh] %s\n' "$*" >&2; }
die() { printf '[mermaid.sh] ERROR: %s\n' "$*" >&2; exit 2; }

mode=install
files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --print-dir) printf '%s\n' "$DIR"; exit 0 ;;
    --check) mode=check; shift; files=("$@"); break ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

fresh() { [[ -f "$DIR/.stamp" && "$(cat "$DIR/.stamp")" == "$STAMP" && -f "$DIR/check.mjs" ]]; }

if ! fresh; then
  command -v node >/dev/null || die "node is not on PATH (Debian: apt-get install nodejs npm)"
  command -v npm >/dev/null || die "npm is not on PATH (Debian: apt-get install npm)"
  t0=$(date +%s)
  log "installing mermaid@$MERMAID_VERSION and jsdom@$JSDOM_VERSION into $DIR"
  rm -rf "$DIR.tmp"
  mkdir -p "$DIR.tmp"
  printf '{"name":"cupcake-mermaid-check","private":true,"type":"module"}\n' > "$DIR.tmp/package.json"
  # npm's EBADENGINE warning about @mermaid-js/parser is expected (see above).
  npm install --prefix "$DIR.tmp" --no-audit --no-fund --loglevel=error \
    "mermaid@$MERMAID_VERSION" "jsdom@$JSDOM_VERSION" >&2
  cat > "$DIR.tmp/check.mjs" <<'JS'
// node check.mjs FILE...: one JSON line per file; exit 1 if any fails.
import { JSDOM } from 'jsdom';
import { readFileSync } from 'node:fs';
const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');
mermaid.initialize({ startOnLoad: false });
let failed = 0;
const iso = (d) => (d instanceof Date && !isNaN(d) ? d.toISOString() : null);
for (const file of process.argv.slice(2)) {
  const out = { file, ok: false };
  try {
    const text = readFileSync(file, 'utf8');
    const parsed = await mermaid.parse(text);
    out.type = parsed.diagramType;
    if (out.type === 'gantt') {
      const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
      out.tasks = diagram.db.getTasks().map((t) => ({
        id: t.id, task: t.task, section: t.section, start: iso(t.startTime), end: iso(t.endTime),
      }));
      const bad = out.tasks.find((t) => !t.start || !t.end || t.end < t.start);
      if (bad) throw new Error(`task ${bad.id} has no valid start/end`);
    }
    out.ok = true;
  } catch (e) {
    failed++;
    out.error = String((e && e.message) || e);
  }
  console.log(JSON.stringify(out));
}
process.exit(failed ? 1 : 0);
JS
  # The install works only if it parses a known-good chart and refuses a broken one.
  printf 'gantt\n  dateFormat YYYY-MM-DD\n  section s\n  a :a1, 2026-01-01, 2026-01-02\n' > "$DIR.tmp/good.mmd"
  printf 'gantt\n  dateFormat YYYY-MM-DD\n  section s\n  a :a1, 2026-13-45, 2026-01-02\n' > "$DIR.tmp/bad.mmd"
  (cd "$DIR.tmp" && node check.mjs good.mmd >/dev/null) || die "the installed mermaid does not parse a valid Gantt chart"
  if (cd "$DIR.tmp" && node check.mjs bad.mmd >/dev/null); then die "the installed mermaid accepts an invalid date"; fi
  rm -f "$DIR.tmp/good.mmd" "$DIR.tmp/bad.mmd"
  printf '%s\n' "$STAMP" > "$DIR.tmp/.stamp"
  rm -rf "$DIR"
  mv "$DIR.tmp" "$DIR"
  log "installed in $(( $(date +%s) - t0 ))s"
fi

if [ "$mode" = check ]; then
  [ ${#files[@]} -gt 0 ] || die "--check needs at least one file"
  abs=()
  for f in "${files[@]}"; do
    [ -f "$f" ] || die "$f: no such file"
    abs+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")")
  done
  cd "$DIR"
  exec node check.mjs "${abs[@]}"
fi
log "mermaid@$MERMAID_VERSION is cached: $DIR"
