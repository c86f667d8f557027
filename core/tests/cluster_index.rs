//! One cluster index for the planner and the gate input: both see the same
//! scope and the same PDB → pods → nodes matching.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::BTreeMap;

use common::{mk_cluster, mk_pdb, mk_pod, mk_spec, run};
use cupcake_api::plan::StageKind;
use cupcake_api::snapshot::{LabelSelector, SelectorRequirement};
use cupcake_core::plan::{ClusterIndex, PlanInput, plan, plan_indexed};

#[test]
fn planner_batches_and_policy_input_agree_on_pdb_coverage() {
    let mut snap = mk_cluster(1, 4, "1.33.4");
    // A PDB selecting by expression only (no matchLabels), allowing one disruption.
    let mut db = mk_pdb("shop", "db", 1);
    db.selector = Some(LabelSelector {
        match_labels: BTreeMap::new(),
        match_expressions: vec![SelectorRequirement {
            key: "app".into(),
            operator: "In".into(),
            values: vec!["db".into()],
        }],
    });
    snap.pdbs.push(db);
    snap.pods.push(mk_pod("shop", "db-0", "w-3", "db"));
    snap.pods.push(mk_pod("shop", "db-1", "w-4", "db"));
    // Counted as a pod of the PDB, but holding no node: unscheduled.
    snap.pods.push(mk_pod("shop", "db-2", "", "db"));
    // A DaemonSet pod stays on its node: no node to drain for it.
    let mut ds = mk_pod("shop", "db-agent", "w-1", "db");
    ds.owner_kind = Some("DaemonSet".into());
    snap.pods.push(ds);
    // Another namespace: not covered.
    snap.pods.push(mk_pod("other", "db-0", "w-2", "db"));

    let spec = mk_spec("kubernetesVersion: 1.34.2\nstrategy: parallel\nbackup: {etcd: false}");
    let out = run(&spec, &snap).unwrap();
    let workers = out
        .outcome
        .plan
        .stages
        .iter()
        .find(|s| s.kind == StageKind::Workers)
        .unwrap();
    // web splits w-1/w-2 and db splits w-3/w-4 (one disruption each).
    assert_eq!(
        workers.batches,
        [
            vec!["w-1".to_string(), "w-3".into()],
            vec!["w-2".into(), "w-4".into()]
        ]
    );
    let pdbs: BTreeMap<&str, (i64, &[String])> = out
        .input
        .cluster
        .pdbs
        .iter()
        .map(|p| (p.name.as_str(), (p.pods, p.nodes_to_drain.as_slice())))
        .collect();
    assert_eq!(
        pdbs["db"],
        (4, &["w-3".to_string(), "w-4".into()][..]),
        "pods counts every matched pod; nodesToDrain only nodes with evictable pods"
    );
    assert_eq!(pdbs["web"], (2, &["w-1".to_string(), "w-2".into()][..]));
}

#[test]
fn scope_is_shared_and_a_foreign_index_is_not_trusted() {
    let mut snap = mk_cluster(1, 3, "1.33.4");
    snap.nodes[1].labels.insert("pool".into(), "blue".into());
    let spec = mk_spec("kubernetesVersion: 1.34.2\nnodeSelector: {pool: blue}");
    let out = run(&spec, &snap).unwrap();
    let in_scope: Vec<(&str, bool)> = out
        .input
        .cluster
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.in_scope))
        .collect();
    assert_eq!(
        in_scope,
        [
            ("cp-1", true),
            ("w-1", true),
            ("w-2", false),
            ("w-3", false)
        ]
    );
    let input = PlanInput {
        spec: &spec,
        catalog: None,
        snapshot: &snap,
    };
    // An index of other values (here: no nodeSelector) is rebuilt, not used.
    let wide = mk_spec("kubernetesVersion: 1.34.2");
    let other = ClusterIndex::new(&wide, &snap);
    assert!(!other.is_for(&spec, &snap));
    assert_eq!(plan_indexed(input, &other), plan(input));
    assert_eq!(
        plan(input)
            .plan
            .stages
            .last()
            .unwrap()
            .nodes()
            .collect::<Vec<_>>(),
        ["w-1"]
    );
}
