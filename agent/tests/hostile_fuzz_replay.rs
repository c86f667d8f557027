//! The short run of the checkpoint fuzz target in the test command (issue 13): every
//! committed seed of `fuzz/corpus/checkpoint/` goes through the function the cargo-fuzz
//! target calls (`fuzz/src/agent_targets.rs`, compiled here on stable). The fuzzing
//! proper is `tests/fuzz.sh`; see docs/testing.md, "Fuzzing".
#![allow(clippy::unwrap_used, missing_debug_implementations, dead_code)]

#[path = "../../fuzz/src/agent_targets.rs"]
mod targets;

#[test]
fn checkpoint_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/checkpoint");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let r = std::panic::catch_unwind(|| targets::checkpoint(&data));
        assert!(r.is_ok(), "{}: the fuzz target panicked", path.display());
        n += 1;
    }
    assert!(n >= 6, "only {n} seeds");
}
