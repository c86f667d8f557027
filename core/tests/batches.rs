//! Worker batches, table-driven: how many nodes go down together under
//! `concurrency`/`maxUnavailable`/`strategy`, never more pods of a
//! PodDisruptionBudget than it allows to be disrupted, and what each batch's
//! reason says. Mutation testing (docs/testing.md) found the batch sizes and
//! the PDB boundary only tested through the reconciler's suites.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{mk_node, mk_pdb, mk_pod, mk_spec, run};
use cupcake_api::plan::StageKind;
use cupcake_api::snapshot::{ClusterSnapshot, IntOrString, Role};

/// One control-plane node and `workers` workers at 1.33.4; per PDB
/// `(app, disruptions allowed, workers holding one of its pods)`.
fn cluster(workers: usize, pdbs: &[(&str, i64, &[usize])]) -> ClusterSnapshot {
    let mut nodes = vec![mk_node("cp-1", Role::ControlPlane, "1.33.4")];
    nodes.extend((1..=workers).map(|i| mk_node(&format!("w-{i}"), Role::Worker, "1.33.4")));
    let mut pods = Vec::new();
    let mut budgets = Vec::new();
    for (app, allowed, on) in pdbs {
        for (k, w) in on.iter().enumerate() {
            pods.push(mk_pod(
                "shop",
                &format!("{app}-{k}"),
                &format!("w-{w}"),
                app,
            ));
        }
        budgets.push(mk_pdb("shop", app, *allowed));
    }
    // An unprotected pod elsewhere, so the snapshot is not "one namespace".
    pods.push(mk_pod("kube-system", "coredns-0", "cp-1", "coredns"));
    ClusterSnapshot {
        nodes,
        pods,
        pdbs: budgets,
    }
}

/// The worker stage as `w-1 w-2 | w-3 ...` and each batch's reason.
fn worker_batches(spec: &str, snap: &ClusterSnapshot) -> (String, Vec<String>) {
    let o = run(&mk_spec(spec), snap).unwrap();
    let stages: Vec<_> = o
        .outcome
        .plan
        .stages
        .iter()
        .filter(|s| s.kind == StageKind::Workers)
        .collect();
    assert_eq!(stages.len(), 1, "{spec}: one worker stage");
    let s = stages[0];
    assert_eq!(
        s.batches.len(),
        s.batch_limits.len(),
        "{spec}: a reason per batch"
    );
    (
        s.batches
            .iter()
            .map(|b| b.join(" "))
            .collect::<Vec<_>>()
            .join(" | "),
        s.batch_limits.iter().map(ToString::to_string).collect(),
    )
}

#[test]
fn batch_size_settings_table() {
    // (spec, workers, batches, reasons)
    let cases: Vec<(&str, usize, &str, Vec<&str>)> = vec![
        (
            "kubernetesVersion: 1.34.2",
            3,
            "w-1 | w-2 | w-3",
            vec!["batch size 1 (strategy: rolling)"; 3],
        ),
        (
            "kubernetesVersion: 1.34.2\nconcurrency: 2",
            4,
            "w-1 w-2 | w-3 w-4",
            vec!["concurrency 2", "concurrency 2"],
        ),
        (
            "kubernetesVersion: 1.34.2\nconcurrency: 2",
            5,
            "w-1 w-2 | w-3 w-4 | w-5",
            vec!["concurrency 2", "concurrency 2", "remaining nodes"],
        ),
        (
            "kubernetesVersion: 1.34.2\nmaxUnavailable: 3",
            4,
            "w-1 w-2 w-3 | w-4",
            vec!["batch size 3 (maxUnavailable: 3)", "remaining nodes"],
        ),
        (
            "kubernetesVersion: 1.34.2\nmaxUnavailable: 25%",
            8,
            "w-1 w-2 | w-3 w-4 | w-5 w-6 | w-7 w-8",
            vec!["batch size 2 (maxUnavailable: 25%)"; 4],
        ),
        (
            // 25% of 3 rounds down to 0: never below one node.
            "kubernetesVersion: 1.34.2\nmaxUnavailable: 25%",
            3,
            "w-1 | w-2 | w-3",
            vec!["batch size 1 (maxUnavailable: 25%)"; 3],
        ),
        (
            "kubernetesVersion: 1.34.2\nconcurrency: 50%",
            4,
            "w-1 w-2 | w-3 w-4",
            vec!["batch size 2 (concurrency: 50%)"; 2],
        ),
        (
            // The canary goes first in its own stage; then one at a time.
            "kubernetesVersion: 1.34.2\nstrategy: canary\ncanary: {enabled: true, nodes: [w-2]}",
            3,
            "w-1 | w-3",
            vec!["batch size 1 (strategy: canary)"; 2],
        ),
        (
            "kubernetesVersion: 1.34.2\nstrategy: parallel",
            5,
            "w-1 w-2 w-3 w-4 w-5",
            vec!["remaining nodes"],
        ),
        (
            "kubernetesVersion: 1.34.2\nstrategy: parallel\nmaxUnavailable: 2",
            3,
            "w-1 w-2 | w-3",
            vec!["batch size 2 (maxUnavailable: 2)", "remaining nodes"],
        ),
    ];
    for (spec, workers, batches, reasons) in cases {
        let got = worker_batches(spec, &cluster(workers, &[]));
        assert_eq!(
            got,
            (
                batches.to_string(),
                reasons.iter().map(ToString::to_string).collect()
            ),
            "{spec} over {workers} workers"
        );
    }
}

#[test]
fn pdb_budgets_table() {
    type Pdbs = &'static [(&'static str, i64, &'static [usize])];
    // (what, spec, workers, PDBs, batches, reasons)
    type Case = (
        &'static str,
        &'static str,
        usize,
        Pdbs,
        &'static str,
        Vec<&'static str>,
    );
    let cases: Vec<Case> = vec![
        (
            "a budget of 1: its two pods never down together",
            "kubernetesVersion: 1.34.2\nstrategy: parallel",
            4,
            &[("web", 1, &[1, 2])],
            "w-1 w-3 w-4 | w-2",
            vec![
                "PDB shop/web (minAvailable 1, allows 1 now)",
                "remaining nodes",
            ],
        ),
        (
            "a budget of 2 takes exactly two of its pods at once",
            "kubernetesVersion: 1.34.2\nstrategy: parallel",
            3,
            &[("web", 2, &[1, 2, 3])],
            "w-1 w-2 | w-3",
            vec![
                "PDB shop/web (minAvailable 1, allows 2 now)",
                "remaining nodes",
            ],
        ),
        (
            "two pods of one PDB on one node count twice",
            "kubernetesVersion: 1.34.2\nstrategy: parallel",
            3,
            &[("web", 2, &[1, 1, 2])],
            "w-1 w-3 | w-2",
            vec![
                "PDB shop/web (minAvailable 1, allows 2 now)",
                "remaining nodes",
            ],
        ),
        (
            "a node whose pods alone exceed the budget goes alone",
            "kubernetesVersion: 1.34.2\nstrategy: parallel",
            3,
            &[("db", 0, &[2])],
            "w-1 w-3 | w-2",
            vec![
                "PDB shop/db (minAvailable 1, allows 0 now)",
                "PDB shop/db (minAvailable 1, allows 0 now): this node alone exceeds it",
            ],
        ),
        (
            "the budget is per batch: each batch may take one again",
            "kubernetesVersion: 1.34.2\nstrategy: parallel",
            3,
            &[("web", 1, &[1, 2, 3])],
            "w-1 | w-2 | w-3",
            vec![
                "PDB shop/web (minAvailable 1, allows 1 now)",
                "PDB shop/web (minAvailable 1, allows 1 now)",
                "remaining nodes",
            ],
        ),
        (
            "a full batch says concurrency even when a PDB would also have stopped it",
            "kubernetesVersion: 1.34.2\nconcurrency: 2",
            4,
            &[("web", 1, &[1, 3])],
            "w-1 w-2 | w-3 w-4",
            vec!["concurrency 2", "concurrency 2"],
        ),
        (
            "the batch size and a PDB together",
            "kubernetesVersion: 1.34.2\nconcurrency: 3",
            5,
            &[("web", 1, &[1, 2])],
            "w-1 w-3 w-4 | w-2 w-5",
            vec!["concurrency 3", "remaining nodes"],
        ),
        (
            "two PDBs: the first to turn a node away is named",
            "kubernetesVersion: 1.34.2\nstrategy: parallel",
            4,
            &[("web", 1, &[1, 2]), ("api", 1, &[3, 4])],
            "w-1 w-3 | w-2 w-4",
            vec![
                "PDB shop/web (minAvailable 1, allows 1 now)",
                "remaining nodes",
            ],
        ),
    ];
    for (what, spec, workers, pdbs, batches, reasons) in cases {
        let got = worker_batches(spec, &cluster(workers, pdbs));
        assert_eq!(
            got,
            (
                batches.to_string(),
                reasons.iter().map(ToString::to_string).collect()
            ),
            "{what}"
        );
    }
}

#[test]
fn pdb_budget_as_written_is_named() {
    let mut snap = cluster(2, &[("web", 1, &[1, 2])]);
    snap.pdbs[0].min_available = None;
    snap.pdbs[0].max_unavailable = Some(IntOrString::String("50%".into()));
    assert_eq!(
        worker_batches("kubernetesVersion: 1.34.2\nstrategy: parallel", &snap).1,
        vec![
            "PDB shop/web (maxUnavailable 50%, allows 1 now)".to_string(),
            "remaining nodes".to_string()
        ]
    );
}
