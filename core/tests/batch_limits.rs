//! Each worker batch records what limited it, field by field (the planner side
//! of issue 8's "which PDB or limit shaped each batch"; the CLI output is
//! pinned in reconciler/tests/planner.rs and cli.rs).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{mk_cluster, mk_spec, run};
use cupcake_api::plan::{BatchLimit, StageKind};

fn worker_limits(spec: &str, workers: usize, selector_on: usize) -> Vec<BatchLimit> {
    let mut snap = mk_cluster(1, workers, "1.33.4");
    for n in snap.nodes.iter_mut().skip(1).take(selector_on) {
        n.labels.insert("pool".into(), "a".into());
    }
    let o = run(&mk_spec(spec), &snap).unwrap();
    o.outcome
        .plan
        .stages
        .iter()
        .filter(|s| s.kind == StageKind::Workers)
        .flat_map(|s| s.batch_limits.clone())
        .collect()
}

#[test]
fn batch_limits_carry_their_details() {
    // web (shop) has pods on w-1 and w-2 and allows one disruption.
    let cases: Vec<(&str, usize, usize, Vec<BatchLimit>)> = vec![
        (
            "kubernetesVersion: 1.34.2\nconcurrency: 2",
            5,
            0,
            vec![
                BatchLimit::concurrency(2, "concurrency: 2"),
                BatchLimit::concurrency(2, "concurrency: 2"),
                BatchLimit::remaining(0),
            ],
        ),
        (
            "kubernetesVersion: 1.34.2\nconcurrency: 5",
            4,
            0,
            vec![
                BatchLimit::pdb("shop/web".into(), "minAvailable 1".into(), 1, false),
                BatchLimit::remaining(0),
            ],
        ),
        (
            "kubernetesVersion: 1.34.2\nstrategy: parallel\nnodeSelector: {pool: a}",
            4,
            3,
            vec![
                BatchLimit::pdb("shop/web".into(), "minAvailable 1".into(), 1, false),
                BatchLimit::remaining(1),
            ],
        ),
    ];
    for (spec, workers, pool, want) in cases {
        assert_eq!(worker_limits(spec, workers, pool), want, "{spec}");
    }
}

#[test]
fn batch_limit_text_names_the_limit() {
    let cases = [
        (
            BatchLimit::concurrency(5, "concurrency: 5"),
            "concurrency 5",
        ),
        (
            BatchLimit::concurrency(2, "maxUnavailable: 25%"),
            "batch size 2 (maxUnavailable: 25%)",
        ),
        (BatchLimit::canary(), "canary"),
        (
            BatchLimit::pdb("shop/web".into(), "maxUnavailable 1".into(), 1, false),
            "PDB shop/web (maxUnavailable 1, allows 1 now)",
        ),
        (
            BatchLimit::pdb("db/pg".into(), "minAvailable 100%".into(), 0, true),
            "PDB db/pg (minAvailable 100%, allows 0 now): this node alone exceeds it",
        ),
        (BatchLimit::remaining(0), "remaining nodes"),
        (
            BatchLimit::remaining(3),
            "remaining nodes (3 workers not in scope)",
        ),
    ];
    for (l, want) in cases {
        assert_eq!(l.to_string(), want);
    }
}
