//! Hostile fleet files (issue 13): every file of `tests/corpus/fleet/` (bytes, not
//! necessarily UTF-8) and of the loader corpus `tests/corpus/load/` goes through
//! `pipeline::load` — the code `cupcake plan` and the GitOps loop run — and must fail
//! with the error its `EXPECTATIONS` line gives, starting with the file and (where
//! the format has one) its line:column. Nothing is evaluated, so no DirectUpdate is
//! rendered. A case that panics fails here; one that hangs trips the watchdog.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use cupcake_reconciler::pipeline;

mod common;
use common::expectations;
use cupcake_reconciler::source::FleetTree;

const VALID_CLUSTER: &str = "apiVersion: cupcake.ricardomolendijk.com/v1\nkind: ClusterVersion\nmetadata:\n  name: demo\nspec:\n  kubernetesVersion: 1.34.2\n";

/// Not a timing assertion: a guard so that a parser stuck in a loop fails the test
/// instead of hanging CI.
pub const WATCHDOG: Duration = Duration::from_secs(120);

fn corpus(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir)
}

/// Where a corpus file goes in the fleet, by its name's prefix.
fn target(file: &str) -> &'static str {
    match file.split('-').next() {
        Some("cluster") => "clusters/demo/cluster.yaml",
        Some("schedule") => "clusters/demo/schedule.yaml",
        Some("versions") => "versions.yaml",
        Some("config") => "policies/config.yaml",
        _ => panic!("{file}: name must start with cluster-, schedule-, versions- or config-"),
    }
}

/// Load the fleet `{cluster.yaml (valid), <file> at its place}` through the pipeline.
fn load(file: &str, body: Vec<u8>) -> Result<String, String> {
    let mut tree = FleetTree {
        origin: PathBuf::from("fleet"),
        ..Default::default()
    };
    tree.files.insert(
        "clusters/demo/cluster.yaml".into(),
        VALID_CLUSTER.as_bytes().to_vec(),
    );
    tree.files.insert(target(file).into(), body);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = pipeline::load(&tree, "demo");
        let _ = tx.send(match r {
            Ok(l) => Ok(format!("loaded {}", l.cluster)),
            Err(e) => Err(format!("{e:#}")),
        });
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{file}: still loading after the watchdog"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{file}: the loader panicked"),
    }
}

fn run(dir: &str) -> usize {
    let dir = corpus(dir);
    let print = std::env::var_os("CUPCAKE_CORPUS_PRINT").is_some();
    let mut failures = Vec::new();
    let list = expectations(&dir);
    for (file, want) in &list {
        let body = std::fs::read(dir.join(file)).unwrap();
        let t0 = std::time::Instant::now();
        let got = match load(file, body) {
            Ok(ok) => format!("NO ERROR: {ok}"),
            Err(e) => e,
        };
        if print {
            println!("{file}: [{:?}] {got}", t0.elapsed());
        }
        let tgt = format!("fleet/{}", target(file));
        if !got.starts_with(&tgt) {
            failures.push(format!("{file}: error does not start with {tgt}: {got}"));
        } else if !got.contains(want.as_str()) {
            failures.push(format!("{file}:\n  got:  {got}\n  want: {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    list.len()
}

#[test]
fn hostile_fleet_files_are_refused_by_the_pipeline() {
    let n = run("fleet");
    assert!(n >= 100, "only {n} hostile fleet files");
}

#[test]
fn loader_corpus_is_refused_by_the_pipeline_too() {
    // The same expectations as tests/loader.rs, through pipeline::load on a tree.
    let dir = corpus("load");
    let list = expectations(&dir);
    for (file, want) in &list {
        let body = std::fs::read(dir.join(file)).unwrap();
        let got = load(file, body).expect_err(file);
        assert!(
            got.starts_with("fleet/") && got.contains(want.as_str()),
            "{file}:\n  got:  {got}\n  want: {want}"
        );
    }
    assert!(list.len() >= 54, "only {} loader corpus files", list.len());
}

/// Regression (issue 13): a valid file saved with a UTF-8 byte-order mark loads (it
/// used to fail with "missing field `kind`" at 1:2).
#[test]
fn a_byte_order_mark_is_not_part_of_the_file() {
    let body = format!("\u{feff}{VALID_CLUSTER}").into_bytes();
    assert_eq!(
        load("cluster-bom.yaml", body),
        Ok("loaded demo".to_string())
    );
}

/// Regression (issue 13): a key given twice in a map is refused, not last-one-wins.
#[test]
fn a_label_given_twice_is_refused() {
    let body = VALID_CLUSTER.replace(
        "  name: demo\n",
        "  name: demo\n  labels: {env: prod, env: dev}\n",
    );
    let err = load("cluster-dup.yaml", body.into_bytes()).unwrap_err();
    assert!(
        err.starts_with("fleet/clusters/demo/cluster.yaml:5:11: metadata.labels: duplicate entry with key \"env\""),
        "{err}"
    );
}
