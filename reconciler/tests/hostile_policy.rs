//! Hostile policy files (issue 13): every file of `tests/corpus/policy/` (Rego in
//! another package, network and runtime built-ins, recursion, syntax and type errors,
//! broken CEL files) is added to the example fleet as `policies/<file>` and run through
//! the pipeline `cupcake plan` and the GitOps loop use. Each must deny the upgrade with
//! a finding (or fail the load) that contains its `EXPECTATIONS` text, naming the file:
//! no DirectUpdate is rendered. Without the file the same fleet renders one.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cupcake_api::snapshot::ClusterSnapshot;
use cupcake_reconciler::pipeline;
use cupcake_reconciler::source::FleetTree;

mod common;
use common::repo;

/// Not a timing assertion: a guard so that a policy stuck in a loop fails the test.
const WATCHDOG: Duration = Duration::from_secs(120);

fn now() -> DateTime<Utc> {
    "2026-11-28T02:30:00Z".parse().unwrap()
}

fn example() -> (FleetTree, ClusterSnapshot) {
    let mut tree = cupcake_reconciler::source::dir(&repo().join("examples/fleet")).unwrap();
    tree.origin = PathBuf::from("fleet");
    let snap = cupcake_reconciler::snapshot::read_file(
        &repo().join("examples/fleet/clusters/demo/snapshot.yaml"),
    )
    .unwrap();
    (tree, snap)
}

/// What the pipeline made of the fleet: `Err(load error)` or `Ok((denied, findings,
/// rendered))`.
fn run(tree: FleetTree, snap: ClusterSnapshot) -> Result<(bool, Vec<String>, bool), String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = pipeline::load(&tree, "demo").and_then(|loaded| {
            pipeline::evaluate(&tree, &loaded, &snap, now()).map(|e| {
                let findings = e
                    .pass
                    .decision
                    .findings
                    .iter()
                    .map(|f| format!("{} [{:?}] {}: {}", f.rule, f.severity, f.source, f.message))
                    .collect();
                (
                    e.pass.decision.verdict == cupcake_api::plan::Verdict::Deny,
                    findings,
                    e.pass.direct_update.is_some(),
                )
            })
        });
        let _ = tx.send(r.map_err(|e| format!("{e:#}")));
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("still evaluating after the watchdog"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the pipeline panicked"),
    }
}

#[test]
fn without_a_hostile_policy_the_example_renders_a_direct_update() {
    let (tree, snap) = example();
    let (denied, findings, rendered) = run(tree, snap).unwrap();
    assert!(!denied && rendered, "{findings:#?}");
}

#[test]
fn hostile_policies_deny_with_an_error_naming_the_file() {
    let dir = repo().join("reconciler/tests/corpus/policy");
    let text = std::fs::read_to_string(dir.join("EXPECTATIONS")).unwrap();
    let cases: Vec<(&str, &str)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_once(": ").unwrap())
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "EXPECTATIONS")
        .collect();
    files.sort();
    let mut named: Vec<String> = cases.iter().map(|(f, _)| f.to_string()).collect();
    named.sort();
    assert_eq!(
        files, named,
        "every corpus file needs one EXPECTATIONS line"
    );
    let print = std::env::var_os("CUPCAKE_CORPUS_PRINT").is_some();
    let mut failures = Vec::new();
    for (file, want) in &cases {
        let (mut tree, snap) = example();
        tree.files.insert(
            format!("policies/{file}"),
            std::fs::read(dir.join(file)).unwrap(),
        );
        let path = format!("fleet/policies/{file}");
        match run(tree, snap) {
            Err(e) => {
                if print {
                    println!("{file}: LOAD {e}");
                }
                if !(e.starts_with(&path) && e.contains(want)) {
                    failures.push(format!("{file}: load error\n  got:  {e}\n  want: {want}"));
                }
            }
            Ok((denied, findings, rendered)) => {
                let hit = findings
                    .iter()
                    .find(|f| f.contains(&format!("{path}{want}")));
                if print {
                    println!("{file}: denied={denied} rendered={rendered}");
                    for f in findings.iter().filter(|f| f.contains("fleet/policies")) {
                        println!("    {f}");
                    }
                }
                if !denied || rendered || hit.is_none() {
                    failures.push(format!(
                        "{file}: denied={denied} rendered={rendered}, want a deny naming {path} with {want:?}; findings:\n    {}",
                        findings.join("\n    ")
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(cases.len() >= 40, "only {} policy cases", cases.len());
}
