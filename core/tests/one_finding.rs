//! One problem gives one finding: conditions the default policy pack reports
//! (NotReady nodes, PDBs that allow no disruption) come from the pack alone,
//! never also from the planner.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::BTreeMap;

use common::{mk_cluster, mk_spec, run};
use cupcake_api::plan::Verdict;
use cupcake_api::snapshot::ClusterSnapshot;
use cupcake_core::gate::FORCE_ALIASES;
use cupcake_core::plan::rules;

#[test]
fn each_problem_is_reported_once_by_the_pack() {
    type Case = (
        &'static str,
        fn(&mut ClusterSnapshot),
        Verdict,
        &'static [&'static str],
    );
    let cases: &[Case] = &[
        ("healthy", |_| {}, Verdict::Allow, &[]),
        (
            "control-plane node NotReady",
            |s| s.nodes[0].ready = false,
            Verdict::Deny,
            &["controlplane.not-ready"],
        ),
        (
            "workers NotReady",
            |s| {
                s.nodes[2].ready = false;
                s.nodes[3].ready = false;
            },
            Verdict::Defer,
            &["readiness.nodes-not-ready"],
        ),
        (
            "PDB allowing no disruption",
            |s| {
                if let Some(st) = &mut s.pdbs[0].status {
                    st.disruptions_allowed = 0;
                }
            },
            Verdict::Defer,
            &["pdb.zero-disruptions"],
        ),
        (
            "PDB without status whose spec allows no disruption (hand-written snapshot)",
            |s| {
                s.pdbs[0].status = None;
                s.pdbs[0].min_available =
                    Some(cupcake_api::snapshot::IntOrString::String("90%".into()));
            },
            Verdict::Defer,
            &["pdb.zero-disruptions"],
        ),
    ];
    let spec = mk_spec("kubernetesVersion: 1.34.2\nbackup: {etcd: true, store: file:///backups}");
    for (name, mutate, verdict, want) in cases {
        let mut snap = mk_cluster(1, 3, "1.33.4");
        mutate(&mut snap);
        let out = run(&spec, &snap).unwrap();
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for f in &out.decision.findings {
            *count.entry(f.rule.as_str()).or_default() += 1;
        }
        let want: BTreeMap<&str, usize> = want.iter().map(|r| (*r, 1)).collect();
        assert_eq!(count, want, "{name}: {:?}", out.decision.findings);
        assert_eq!(out.decision.verdict, *verdict, "{name}");
        assert!(
            out.outcome.findings.is_empty(),
            "{name}: planner findings {:?}",
            out.outcome.findings
        );
    }
}

#[test]
fn planner_rule_ids_are_unique_and_forcing_aliases_name_forceable_rules() {
    let mut seen = std::collections::BTreeSet::new();
    for r in rules::ALL {
        assert!(r.id.starts_with("planner."), "{}", r.id);
        assert!(seen.insert(r.id), "{} twice", r.id);
    }
    // An alias pairs a planner rule with the pack rule reporting the same condition:
    // it must name a planner rule that exists and can be forced.
    for (a, b) in FORCE_ALIASES {
        for id in [a, b].into_iter().filter(|id| id.starts_with("planner.")) {
            let r = rules::by_id(id).unwrap_or_else(|| panic!("FORCE_ALIASES names unknown {id}"));
            assert!(
                r.forceable,
                "FORCE_ALIASES names {id}, which cannot be forced"
            );
        }
    }
    // The conditions the pack reports have no planner rule left to alias.
    for gone in [
        "planner.control-plane-not-ready",
        "planner.node-not-ready",
        "planner.pdb-blocked",
    ] {
        assert!(rules::by_id(gone).is_none(), "{gone}");
    }
}

/// Finishing a half-done control-plane hop (cp-1 already at the target by its static pods
/// and kubelet) is allowed, and the plan skips the node that is done.
#[test]
fn finishing_a_half_done_control_plane_hop_is_allowed() {
    let spec = mk_spec("kubernetesVersion: 1.34.2\nbackup: {etcd: true, store: file:///backups}");
    let mut snap = mk_cluster(3, 3, "1.33.4");
    snap.nodes[0] = common::mk_node("cp-1", cupcake_api::snapshot::Role::ControlPlane, "1.34.2");
    let out = run(&spec, &snap).unwrap();
    assert_eq!(
        out.decision.verdict,
        Verdict::Allow,
        "{:?}",
        out.decision.findings
    );
    let cp_nodes: Vec<&String> = out
        .outcome
        .plan
        .stages
        .iter()
        .filter(|s| s.kind == cupcake_api::plan::StageKind::ControlPlane)
        .flat_map(|s| s.nodes())
        .collect();
    assert_eq!(cp_nodes, ["cp-2", "cp-3"], "{:?}", out.outcome.plan.stages);
}
