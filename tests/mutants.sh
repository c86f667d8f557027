#!/usr/bin/env bash
# Mutation testing of the core's safety-critical decisions (issue 8, Deliver 11).
# Not run by CI: on 2 cores it takes about 40 minutes. Results go to
# target/mutants.out/ (outcomes.json, caught.txt, missed.txt, timeout.txt, unviable.txt);
# the counts and every surviving mutant's reason are kept in docs/testing.md.
#
#   tests/mutants.sh            # the scope below, one job
#   tests/mutants.sh --list     # only list the mutants (any extra args go to cargo-mutants)
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

# No debug info: each mutant relinks every core test binary, and this halves it.
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-0}"

exec cargo mutants \
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
    --re 'Decision::from_findings' \
    --re 'in expand_force' \
    --re 'in force_findings' \
    --re 'in kubelet_skew_ok' \
    --re 'in apiservers' \
    --re 'in kubelets' \
    --re 'in size' \
    --re 'in split' \
    --re 'in CompiledWindow::active' \
    --re 'in spec_hash' \
    --re 'in dns_label' \
    --re 'in direct_update' \
    "$@"
