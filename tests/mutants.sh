#!/usr/bin/env bash
# Mutation testing of the core's safety-critical decisions (issue 8, Deliver 11).
# Not run by CI: on 2 cores it takes about 40 minutes. Results go to
# target/mutants.out/ (outcomes.json, caught.txt, missed.txt, timeout.txt, unviable.txt);
# the counts and every surviving mutant's reason are kept in docs/testing.md.
#
#   tests/mutants.sh            # the scope below, one job
#   tests/mutants.sh --list     # only list the mutants (any extra args go to cargo-mutants)
#   tests/mutants.sh --only apiservers --only kubelets
#                               # only these functions (name or regex, repeatable;
#                               # replaces the default list below)
#
# Scope: verdict and forcing (Decision::from_findings, expand_force,
# force_findings), skew checks (kubelet_skew_ok, checks::apiservers,
# checks::kubelets), PDB batching (batches::size, batches::split), schedule
# windows (CompiledWindow::active), rendered names (render::spec_hash,
# dns_label, direct_update). Only cupcake-core's own tests judge them.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! cargo mutants --version >/dev/null 2>&1; then
    cargo install cargo-mutants --locked
fi

# --only FN (repeatable) replaces the default function list; the rest goes to cargo-mutants.
fns=()
rest=()
while [ $# -gt 0 ]; do
    case "$1" in
        --only)
            [ $# -ge 2 ] || { echo "tests/mutants.sh: --only needs a function name (e.g. --only split)" >&2; exit 2; }
            fns+=("$2")
            shift 2
            ;;
        --only=*)
            fns+=("${1#--only=}")
            shift
            ;;
        *)
            rest+=("$1")
            shift
            ;;
    esac
done
if [ ${#fns[@]} -eq 0 ]; then
    fns=(
        'Decision::from_findings'
        expand_force
        force_findings
        kubelet_skew_ok
        apiservers
        kubelets
        size
        split
        'CompiledWindow::active'
        spec_hash
        dns_label
        direct_update
    )
fi
# A mutant is named "<op> in FN" or, when it replaces the whole body,
# "replace FN -> T with ...": match both. (cargo-mutants 27 lists the
# "delete field" mutants of the files below whatever --re says.)
only=()
for f in "${fns[@]}"; do
    only+=(--re "(^| )(in|replace) ($f)( |$)")
done

# A mutant can turn a loop endless that also allocates (batches::split keeping the
# nodes it took): cap each process's address space so it dies instead of the
# machine. 8 GiB by default; rustc and the linker need well under that.
ulimit -v "${CUPCAKE_MUTANTS_MEM_KB:-8388608}"

# No debug info: each mutant relinks every core test binary, and this halves it.
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-0}"

exec nice -n 19 cargo mutants \
    --test-package cupcake-core \
    --jobs 1 \
    --timeout 300 \
    --build-timeout 900 \
    --output target \
    --file api/src/plan.rs \
    --file core/src/gate/mod.rs \
    --file core/src/plan/mod.rs \
    --file core/src/plan/checks.rs \
    --file core/src/plan/batches.rs \
    --file core/src/schedule.rs \
    --file core/src/render.rs \
    "${only[@]}" \
    ${rest[@]+"${rest[@]}"}
