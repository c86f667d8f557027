#!/usr/bin/env bash
# Fuzz CUPCAKE's parsers with cargo-fuzz (libFuzzer) on the nightly toolchain.
#
#   tests/fuzz.sh [--seconds N] [target...]
#
# Targets (fuzz/fuzz_targets/): fleet_loader snapshot schedule policy_input webhook
# checkpoint; default all, 600 s each (the long run of issue 13). Each target starts
# from its committed corpus fuzz/corpus/<target>/ and writes what it finds to a work
# corpus outside the checkout ($CUPCAKE_FUZZ_WORK, default ~/.cache/cupcake-fuzz-work),
# so the committed seeds stay small. A crash leaves its input in
# fuzz/artifacts/<target>/ and fails the script; replay it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
# Builds go to $HOME/.cache/cupcake-fuzz-target (never inside the clone). Installs
# cargo-fuzz (cargo install --locked) when it is missing; needs `rustup toolchain
# install nightly` done once. The stable test suite replays every corpus file
# through the same functions (reconciler/tests/hostile_fuzz_replay.rs,
# agent/tests/hostile_fuzz_replay.rs); this script is the fuzzing proper.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=600
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "tests/fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all=(fleet_loader snapshot schedule policy_input webhook checkpoint)
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "tests/fuzz.sh: no target $t (targets: ${all[*]})" >&2; exit 2; }
done

rustup toolchain list | grep -q '^nightly' || { echo "tests/fuzz.sh: needs the nightly toolchain: rustup toolchain install nightly" >&2; exit 1; }
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

export CARGO_TARGET_DIR="${CUPCAKE_FUZZ_TARGET_DIR:-$HOME/.cache/cupcake-fuzz-target}"
work="${CUPCAKE_FUZZ_WORK:-$HOME/.cache/cupcake-fuzz-work}"
# -s none: the code under test is safe Rust (AddressSanitizer finds nothing there and
# halves the speed); release build with debug assertions and overflow checks.
flags=(--fuzz-dir fuzz -s none)
start=$(date +%s)
nice cargo +nightly fuzz build "${flags[@]}" || { echo "tests/fuzz.sh: building the fuzz targets failed" >&2; exit 1; }
echo "build: $(( $(date +%s) - start )) s"

failed=()
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  log="$work/$t.log"
  t0=$(date +%s)
  # -rss_limit_mb: a parser that eats memory is a finding; -max_len: fleet files and
  # snapshots of interest are small, bigger inputs only slow the search.
  if nice cargo +nightly fuzz run "${flags[@]}" "$t" "$work/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
      -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=CRASH
    failed+=("$t")
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
  printf '%-13s %-5s %5ss  %10s execs  %s\n' "$t" "$result" "$(( $(date +%s) - t0 ))" "$runs" "$cov"
  [ "$result" = ok ] || tail -n 30 "$log" >&2
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
