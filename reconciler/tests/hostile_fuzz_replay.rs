//! The short run of the fuzz targets in the test command (issue 13): every committed
//! seed of `fuzz/corpus/<target>/` goes through the same function the cargo-fuzz
//! target calls (`fuzz/src/reconciler_targets.rs`, compiled here on stable). A panic
//! or a broken invariant fails the test. The fuzzing proper (libFuzzer on nightly,
//! 600 s per target by default) is `tests/fuzz.sh`; see docs/testing.md, "Fuzzing".
#![allow(clippy::unwrap_used, missing_debug_implementations, dead_code)]

#[path = "../../fuzz/src/reconciler_targets.rs"]
mod targets;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| run(&data));
        assert!(r.is_ok(), "{}: the fuzz target panicked", path.display());
        n += 1;
    }
    assert!(n > 0, "{}: no seeds", dir.display());
    n
}

#[test]
fn fleet_loader_corpus() {
    assert!(replay("fleet_loader", targets::fleet_loader) >= 9);
}

#[test]
fn snapshot_corpus() {
    assert!(replay("snapshot", targets::snapshot) >= 2);
}

#[test]
fn schedule_corpus() {
    assert!(replay("schedule", targets::schedule) >= 4);
}

#[test]
fn policy_input_corpus() {
    assert!(replay("policy_input", targets::policy_input) >= 3);
}

#[test]
fn webhook_corpus() {
    assert!(replay("webhook", targets::webhook) >= 3);
}

/// The hostile fleet corpus through the fleet_loader target too (as `<path>\n<bytes>`).
#[test]
fn hostile_fleet_files_through_the_fleet_loader_target() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/fleet");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let target = match name.split('-').next() {
            Some("cluster") => "clusters/demo/cluster.yaml",
            Some("schedule") => "clusters/demo/schedule.yaml",
            Some("versions") => "versions.yaml",
            Some("config") => "policies/config.yaml",
            _ => continue,
        };
        let mut data = format!("{target}\n").into_bytes();
        data.extend(std::fs::read(&p).unwrap());
        targets::fleet_loader(&data);
        n += 1;
    }
    assert!(n >= 100, "{n}");
}
