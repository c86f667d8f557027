//! The bodies of the fuzz targets, one function per target. The files are also
//! compiled into the stable test suite (`#[path]` modules of
//! `reconciler/tests/hostile_fuzz_replay.rs` and `agent/tests/hostile_fuzz_replay.rs`),
//! which replays every file of `fuzz/corpus/<target>/` through them.
pub mod agent_targets;
pub mod reconciler_targets;
