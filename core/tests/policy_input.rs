//! The policy input the Rust code builds is what the rules read: a renamed or
//! miscomputed field would make rules stop firing with every Rego test green.
//! These check the computed parts (upgrade kind, timeline, scope) field by field,
//! and that the document validates against the published contract's field names.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{mk_cluster, mk_spec, run};
use cupcake_api::policy::UpgradeKind;

#[test]
fn upgrade_kind_follows_the_target() {
    let snap = mk_cluster(1, 3, "1.33.4");
    for (target, kind) in [
        ("1.34.2", UpgradeKind::Minor),
        ("1.33.5", UpgradeKind::Patch),
        ("1.33.4", UpgradeKind::None),
    ] {
        let out = run(&mk_spec(&format!("kubernetesVersion: {target}")), &snap).unwrap();
        assert_eq!(out.input.cluster.upgrade, kind, "{target}");
        assert_eq!(
            out.input.cluster.up_to_date,
            kind == UpgradeKind::None,
            "{target}"
        );
    }
}

#[test]
fn the_timeline_is_the_state_after_each_stage() {
    let snap = mk_cluster(1, 3, "1.33.4");
    let out = run(
        &mk_spec("kubernetesVersion: 1.34.2\nbackup: {etcd: true, store: file:///b}"),
        &snap,
    )
    .unwrap();
    let kinds: Vec<&str> = out
        .input
        .plan
        .stages
        .iter()
        .map(|s| s.kind.as_str())
        .collect();
    assert_eq!(kinds, ["backup", "control-plane", "workers"]);
    let t = &out.input.cluster.timeline;
    assert_eq!(t.len(), 3);
    let v = |s: &str| s.parse::<cupcake_api::KubeVersion>().unwrap();
    // After the backup nothing moved.
    assert_eq!(t[0].apiserver_min, Some(v("1.33.4")));
    assert_eq!(t[0].kubelet_max, v("1.33.4"));
    // After the control plane: apiservers and the control-plane kubelet at the target.
    assert_eq!(t[1].apiserver_min, Some(v("1.34.2")));
    assert_eq!(t[1].kubelet_max, v("1.34.2"));
    assert_eq!(t[1].kubelet_min, v("1.33.4"));
    assert!(
        t[1].newest_kubelets.contains(&"cp-1".to_string()),
        "{:?}",
        t[1]
    );
    // After the workers: everything at the target.
    assert_eq!(t[2].kubelet_min, v("1.34.2"));
    assert_eq!((t[2].stage, t[2].kind.as_str()), (2, "workers"));
}

#[test]
fn scope_and_planned_nodes_follow_the_node_selector() {
    let mut snap = mk_cluster(1, 3, "1.33.4");
    snap.nodes[1].labels.insert("pool".into(), "a".into()); // w-1
    let out = run(
        &mk_spec("kubernetesVersion: 1.34.2\nnodeSelector: {pool: a}"),
        &snap,
    )
    .unwrap();
    let flags: Vec<(&str, bool, bool)> = out
        .input
        .cluster
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.in_scope, n.planned))
        .collect();
    assert_eq!(
        flags,
        [
            ("cp-1", true, true),
            ("w-1", true, true),
            ("w-2", false, false),
            ("w-3", false, false)
        ]
    );
    assert_eq!(out.input.cluster.nodes[1].labels["pool"], "a");
}

/// The document's top-level and cluster keys are exactly the published schema's.
#[test]
fn the_input_matches_the_published_schema_keys() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../schemas/policy-input.schema.json")).unwrap();
    let out = run(
        &mk_spec("kubernetesVersion: 1.34.2"),
        &mk_cluster(1, 2, "1.33.4"),
    )
    .unwrap();
    let doc = serde_json::to_value(&out.input).unwrap();
    let keys = |v: &serde_json::Value| -> std::collections::BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(keys(&doc), keys(&schema["properties"]));
    let cluster_def = &schema["$defs"]["ClusterInput"]["properties"];
    assert_eq!(keys(&doc["cluster"]), keys(cluster_def));
}
