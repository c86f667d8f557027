//! Hostile snapshot files (issue 13): every file of `tests/corpus/snapshot/` is given to
//! `cupcake plan examples/fleet --cluster demo --snapshot FILE -o json`, as a user
//! would, and must either fail with exit 1, nothing on stdout (no plan, no
//! DirectUpdate) and the error its `EXPECTATIONS` line gives — starting with the
//! file, and its line and column where the format has them — or, for the lines that
//! say `OK`, be planned (exit 0, 2 or 3: a verdict). A panic, a hang (the watchdog) or
//! an error that names no file fails the test.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

mod common;
use common::expectations;

/// Not a timing assertion: a guard so that a reader stuck in a loop fails the test
/// instead of hanging CI.
const WATCHDOG: Duration = Duration::from_secs(120);

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/snapshot")
}

/// `cupcake plan` on the example fleet with `file` as the snapshot: exit code, stdout, stderr.
fn plan(file: &Path) -> (Option<i32>, String, String) {
    let fleet = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fleet");
    let mut c = Command::new(env!("CARGO_BIN_EXE_cupcake"));
    c.args(["plan", fleet.to_str().unwrap(), "--cluster", "demo"])
        .args(["--snapshot", file.to_str().unwrap()])
        .args(["--now", "2026-11-28T03:00:00Z", "-o", "json"])
        .current_dir(corpus());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(c.output().unwrap()));
    let out = rx
        .recv_timeout(WATCHDOG)
        .unwrap_or_else(|_| panic!("{}: no answer in {WATCHDOG:?}", file.display()));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_hostile_snapshot_is_refused_naming_the_file_or_planned() {
    let dir = corpus();
    let cases = expectations(&dir);
    assert!(cases.len() >= 50, "the corpus shrank to {}", cases.len());
    let mut failures = Vec::new();
    for (file, want) in &cases {
        let (code, stdout, stderr) = plan(Path::new(file));
        if want == "OK" {
            if !matches!(code, Some(0 | 2 | 3)) || stdout.is_empty() {
                failures.push(format!(
                    "{file}: expected a plan, got exit {code:?}:\n{stderr}"
                ));
            }
            continue;
        }
        let first = stderr.lines().next().unwrap_or("");
        let named = first.starts_with(&format!("error: {file}:"));
        if code != Some(1) || !stdout.is_empty() || !stderr.contains(want.as_str()) || !named {
            failures.push(format!(
                "{file}:\n  exit: {code:?}, stdout {} bytes\n  got:  {}\n  want: error: {file}: … {want}",
                stdout.len(),
                stderr.trim_end()
            ));
        }
        assert!(
            !stderr.contains("panicked"),
            "{file}: the reader panicked:\n{stderr}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
