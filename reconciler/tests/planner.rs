//! Table-driven planner tests: hops, skip-level worker passes, canary,
//! batch sizing, PDB batching, nodeSelector, mixed versions, downgrades and
//! pre-releases.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;

use cupcake_api::KubeVersion;
use cupcake_api::common::{AllowPrerelease, CanarySpec, IntOrPercent, Strategy};
use cupcake_api::fleet::{ClusterVersionSpec, VersionCatalogSpec};
use cupcake_api::plan::{Severity, StageKind};
use cupcake_api::snapshot::{
    ClusterSnapshot, ControlPlaneComponents, IntOrString, LabelSelector, Node, Pdb, PdbStatus, Pod,
    Role,
};
use cupcake_reconciler::plan::{PlanInput, PlanOutcome, plan};

fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}

fn mk_cp(name: &str, api: &str, kubelet: &str) -> Node {
    Node {
        name: name.into(),
        labels: BTreeMap::from([(
            "node-role.kubernetes.io/control-plane".into(),
            String::new(),
        )]),
        role: Role::ControlPlane,
        kubelet_version: v(kubelet),
        ready: true,
        unschedulable: false,
        taints: vec![],
        control_plane: Some(ControlPlaneComponents {
            apiserver: Some(v(api)),
            ..Default::default()
        }),
    }
}

fn mk_worker(name: &str, kubelet: &str) -> Node {
    Node {
        name: name.into(),
        labels: BTreeMap::new(),
        role: Role::Worker,
        kubelet_version: v(kubelet),
        ready: true,
        unschedulable: false,
        taints: vec![],
        control_plane: None,
    }
}

fn mk_pod(ns: &str, name: &str, node: &str, app: &str) -> Pod {
    Pod {
        namespace: ns.into(),
        name: name.into(),
        node: node.into(),
        labels: BTreeMap::from([("app".into(), app.into())]).into(),
        owner_kind: Some("ReplicaSet".into()),
        phase: "Running".into(),
    }
}

fn mk_pdb(ns: &str, app: &str, allowed: i64) -> Pdb {
    Pdb {
        namespace: ns.into(),
        name: app.into(),
        selector: Some(LabelSelector {
            match_labels: BTreeMap::from([("app".into(), app.into())]),
            match_expressions: vec![],
        }),
        min_available: Some(IntOrString::Int(1)),
        max_unavailable: None,
        status: Some(PdbStatus {
            disruptions_allowed: allowed,
            ..Default::default()
        }),
    }
}

/// A cluster with `cps` control-plane nodes at `cp` and `workers` workers at `kubelet`.
fn cluster(cps: usize, cp: &str, workers: usize, kubelet: &str) -> ClusterSnapshot {
    let mut nodes: Vec<Node> = (1..=cps)
        .map(|i| mk_cp(&format!("cp-{i}"), cp, cp))
        .collect();
    nodes.extend((1..=workers).map(|i| mk_worker(&format!("w-{i}"), kubelet)));
    ClusterSnapshot {
        nodes,
        pods: vec![],
        pdbs: vec![],
    }
}

fn spec(target: &str) -> ClusterVersionSpec {
    yaml_serde::from_str(&format!("kubernetesVersion: {target}")).unwrap()
}

fn catalog(versions: &[&str]) -> VersionCatalogSpec {
    VersionCatalogSpec {
        versions: versions.iter().map(|s| v(s)).collect(),
    }
}

/// Warnings about the inputs themselves (tested in `input_warnings_table`).
const INPUT_WARNINGS: &[&str] = &[
    "planner.no-pdbs",
    "planner.one-namespace",
    "planner.backup-without-store",
    "planner.selector-matches-no-worker",
];

/// Plan, without the input warnings (the bare test clusters have no PDBs and no store).
fn run(
    spec: &ClusterVersionSpec,
    snap: &ClusterSnapshot,
    cat: Option<&VersionCatalogSpec>,
) -> PlanOutcome {
    let mut o = plan(PlanInput {
        spec,
        catalog: cat,
        snapshot: snap,
    });
    o.findings
        .retain(|f| !INPUT_WARNINGS.contains(&f.rule.as_str()));
    o
}

fn hops(o: &PlanOutcome) -> Vec<String> {
    o.plan
        .hops
        .iter()
        .map(|h| format!("{}>{}", h.from, h.to))
        .collect()
}

/// Stages as `kind@version:n1,n2|n3` strings, easy to read in a table.
fn stages(o: &PlanOutcome) -> Vec<String> {
    o.plan
        .stages
        .iter()
        .map(|s| {
            let b: Vec<String> = s.batches.iter().map(|b| b.join(",")).collect();
            format!("{}@{}:{}", s.kind.as_str(), s.version, b.join("|"))
        })
        .collect()
}

fn rules(o: &PlanOutcome) -> Vec<String> {
    o.findings.iter().map(|f| f.rule.clone()).collect()
}

const CAT: &[&str] = &[
    "1.30.14",
    "1.31.0",
    "1.31.13",
    "1.32.9",
    "1.33.0",
    "1.33.5",
    "1.34.2",
    "1.35.0-rc.1",
];

#[test]
fn control_plane_hops_one_minor_at_a_time_through_latest_patches() {
    let cat = catalog(CAT);
    let cases: &[(&str, &str, Option<&VersionCatalogSpec>, &[&str])] = &[
        ("1.33.4", "1.33.5", Some(&cat), &["1.33.4>1.33.5"]),
        ("1.33.4", "1.34.2", Some(&cat), &["1.33.4>1.34.2"]),
        (
            "1.30.2",
            "1.33.5",
            Some(&cat),
            &["1.30.2>1.31.13", "1.31.13>1.32.9", "1.32.9>1.33.5"],
        ),
        // Without a catalogue: x.y.0 and a warning.
        (
            "1.30.2",
            "1.32.1",
            None,
            &["1.30.2>1.31.0", "1.31.0>1.32.1"],
        ),
        // Leading v.
        ("1.33.4", "v1.34.2", Some(&cat), &["1.33.4>1.34.2"]),
    ];
    for (cp, target, cat, want) in cases {
        let snap = cluster(1, cp, 2, cp);
        let o = run(&spec(target), &snap, *cat);
        assert_eq!(hops(&o), *want, "{cp} -> {target}");
        let multi_minor = want.len() > 1;
        assert_eq!(
            cat.is_none() && multi_minor,
            rules(&o).contains(&"planner.no-catalog".to_string()),
            "{cp} -> {target}"
        );
    }
}

#[test]
fn workers_move_as_few_times_as_skew_allows() {
    let cat = catalog(CAT);
    // (control plane, kubelets, target, expected worker-stage versions in order)
    let cases: &[(&str, &str, &str, &[&str])] = &[
        // One pass after three hops.
        ("1.30.14", "1.30.14", "1.33.5", &["1.33.5"]),
        // Kubelets at 1.29: they must move to 1.32 before the control plane goes to 1.33.
        ("1.29.3", "1.29.3", "1.33.5", &["1.32.9", "1.33.5"]),
        // Below minor 25 only two minors of skew: 1.22 -> 1.26 needs a pass at 1.24.
        ("1.22.1", "1.22.1", "1.26.0", &["1.24.0", "1.26.0"]),
        // Patch upgrade.
        ("1.33.4", "1.33.4", "1.33.5", &["1.33.5"]),
    ];
    for (cp, kubelet, target, want) in cases {
        let snap = cluster(3, cp, 4, kubelet);
        let o = run(&spec(target), &snap, Some(&cat));
        let got: Vec<String> = o
            .plan
            .stages
            .iter()
            .filter(|s| s.kind == StageKind::Workers)
            .map(|s| s.version.to_string())
            .collect();
        assert_eq!(got, *want, "{cp}/{kubelet} -> {target}: {:?}", stages(&o));
        // Invariant: every worker pass happens while the control plane is at that version or newer.
        let mut cp_now = v(cp);
        for s in &o.plan.stages {
            match s.kind {
                StageKind::ControlPlane => cp_now = s.version.clone(),
                StageKind::Workers | StageKind::Canary => {
                    assert!(s.version <= cp_now, "{:?}", stages(&o))
                }
                StageKind::Backup => {}
            }
        }
    }
}

#[test]
fn stage_order_backup_control_plane_canary_workers() {
    let mut s = spec("1.34.2");
    s.canary = CanarySpec {
        enabled: true,
        nodes: vec!["w-3".into()],
        ..Default::default()
    };
    s.concurrency = Some(IntOrPercent::Int(2));
    let o = run(&s, &cluster(3, "1.33.4", 5, "1.33.4"), None);
    assert_eq!(
        stages(&o),
        [
            "backup@1.34.2:cp-1",
            "control-plane@1.34.2:cp-1|cp-2|cp-3",
            "canary@1.34.2:w-3",
            "workers@1.34.2:w-1,w-2|w-4,w-5"
        ]
    );
    // Estimate: 5m backup + 3 × 10m + 1 × 7m + 2 × 7m.
    assert_eq!(o.plan.estimate.seconds, 300 + 1800 + 420 + 840);
    assert!(!o.up_to_date);
}

#[test]
fn backup_can_be_turned_off_and_canary_by_selector() {
    let mut s = spec("1.34.2");
    s.backup.etcd = false;
    s.strategy = Strategy::Canary;
    s.canary = CanarySpec {
        enabled: true,
        selector: Some(BTreeMap::from([("canary".into(), "yes".into())])),
        count: Some(2),
        ..Default::default()
    };
    let mut snap = cluster(1, "1.33.4", 6, "1.33.4");
    for n in ["w-2", "w-4", "w-5"] {
        snap.nodes
            .iter_mut()
            .find(|x| x.name == n)
            .unwrap()
            .labels
            .insert("canary".into(), "yes".into());
    }
    let o = run(&s, &snap, None);
    assert_eq!(
        stages(&o),
        [
            "control-plane@1.34.2:cp-1",
            "canary@1.34.2:w-2,w-4",
            "workers@1.34.2:w-1|w-3|w-5|w-6"
        ]
    );
}

/// (concurrency, maxUnavailable, strategy, workers, expected batch sizes)
type BatchCase = (
    Option<IntOrPercent>,
    Option<IntOrPercent>,
    Strategy,
    usize,
    &'static [usize],
);

#[test]
fn batch_sizes_from_concurrency_and_percentages() {
    // (concurrency, maxUnavailable, strategy, workers, expected batch sizes)
    let cases: &[BatchCase] = &[
        (None, None, Strategy::Rolling, 3, &[1, 1, 1]),
        (
            Some(IntOrPercent::Int(2)),
            None,
            Strategy::Rolling,
            5,
            &[2, 2, 1],
        ),
        (
            None,
            Some(IntOrPercent::Percent(25)),
            Strategy::Rolling,
            10,
            &[2, 2, 2, 2, 2],
        ),
        // 10% of 5 rounds down to 0 → at least 1.
        (
            None,
            Some(IntOrPercent::Percent(10)),
            Strategy::Rolling,
            5,
            &[1, 1, 1, 1, 1],
        ),
        (
            None,
            Some(IntOrPercent::Percent(50)),
            Strategy::Rolling,
            7,
            &[3, 3, 1],
        ),
        (None, None, Strategy::Parallel, 6, &[6]),
    ];
    for (conc, max_unav, strategy, workers, want) in cases {
        let mut s = spec("1.34.2");
        s.concurrency = *conc;
        s.max_unavailable = *max_unav;
        s.strategy = *strategy;
        let o = run(&s, &cluster(1, "1.33.4", *workers, "1.33.4"), None);
        let w = o
            .plan
            .stages
            .iter()
            .find(|s| s.kind == StageKind::Workers)
            .unwrap();
        let sizes: Vec<usize> = w.batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, *want, "{conc:?} {max_unav:?} {strategy:?} {workers}");
    }
}

#[test]
fn batches_never_hold_more_pods_of_a_pdb_than_it_allows() {
    let mut snap = cluster(1, "1.33.4", 6, "1.33.4");
    // web: 3 pods on w-1..w-3, allows 1 disruption. api: pods on w-4, w-5, allows 2.
    for (i, n) in ["w-1", "w-2", "w-3"].iter().enumerate() {
        snap.pods
            .push(mk_pod("shop", &format!("web-{i}"), n, "web"));
    }
    for (i, n) in ["w-4", "w-5"].iter().enumerate() {
        snap.pods
            .push(mk_pod("shop", &format!("api-{i}"), n, "api"));
    }
    // A DaemonSet pod matching the web selector must not count.
    let mut ds = mk_pod("shop", "web-agent", "w-4", "web");
    ds.owner_kind = Some("DaemonSet".into());
    snap.pods.push(ds);
    snap.pdbs = vec![mk_pdb("shop", "web", 1), mk_pdb("shop", "api", 2)];
    let mut s = spec("1.34.2");
    s.strategy = Strategy::Parallel;
    let o = run(&s, &snap, None);
    let w = o
        .plan
        .stages
        .iter()
        .find(|s| s.kind == StageKind::Workers)
        .unwrap();
    assert_eq!(
        w.batches,
        vec![
            vec!["w-1".to_string(), "w-4".into(), "w-5".into(), "w-6".into()],
            vec!["w-2".to_string()],
            vec!["w-3".to_string()],
        ]
    );
    assert!(o.findings.is_empty(), "{:?}", o.findings);
}

#[test]
fn a_pdb_allowing_no_disruption_is_planned_alone_and_left_to_the_pack() {
    let mut snap = cluster(1, "1.33.4", 3, "1.33.4");
    snap.pods.push(mk_pod("shop", "db-0", "w-2", "db"));
    snap.pods.push(mk_pod("other", "db-0", "w-3", "db")); // another namespace: not covered
    snap.pdbs = vec![mk_pdb("shop", "db", 0)];
    let mut s = spec("1.34.2");
    s.strategy = Strategy::Parallel;
    let o = run(&s, &snap, None);
    // The node still appears in the plan, alone in its batch; the drain waits on the PDB.
    assert_eq!(
        stages(&o),
        [
            "backup@1.34.2:cp-1",
            "control-plane@1.34.2:cp-1",
            "workers@1.34.2:w-1,w-3|w-2"
        ]
    );
    // The finding is the policy pack's pdb.zero-disruptions (core/tests/one_finding.rs),
    // not a planner duplicate.
    assert!(o.findings.is_empty(), "{:?}", o.findings);
}

#[test]
fn pdb_budget_is_computed_when_the_snapshot_has_no_status() {
    let mut snap = cluster(1, "1.33.4", 4, "1.33.4");
    for (i, n) in ["w-1", "w-2", "w-3", "w-4"].iter().enumerate() {
        snap.pods
            .push(mk_pod("shop", &format!("web-{i}"), n, "web"));
    }
    let mut pdb = mk_pdb("shop", "web", 0);
    pdb.status = None;
    pdb.min_available = None;
    pdb.max_unavailable = Some(IntOrString::String("50%".into()));
    snap.pdbs = vec![pdb];
    let mut s = spec("1.34.2");
    s.strategy = Strategy::Parallel;
    let o = run(&s, &snap, None);
    let w = o
        .plan
        .stages
        .iter()
        .find(|s| s.kind == StageKind::Workers)
        .unwrap();
    assert_eq!(w.batches.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2]);
}

#[test]
fn node_selector_limits_workers_but_never_the_control_plane() {
    let mut snap = cluster(2, "1.33.4", 4, "1.33.4");
    for n in ["w-1", "w-3"] {
        snap.nodes
            .iter_mut()
            .find(|x| x.name == n)
            .unwrap()
            .labels
            .insert("pool".into(), "blue".into());
    }
    let mut s = spec("1.33.5");
    s.node_selector = BTreeMap::from([("pool".into(), "blue".into())]);
    let o = run(&s, &snap, None);
    assert_eq!(
        stages(&o),
        [
            "backup@1.33.5:cp-1",
            "control-plane@1.33.5:cp-1|cp-2",
            "workers@1.33.5:w-1|w-3"
        ]
    );
    // Out-of-scope kubelets at 1.33 stay within skew of 1.33.5: no finding.
    assert!(!rules(&o).contains(&"planner.out-of-scope-skew".to_string()));
    // …but not of a control plane four minors ahead.
    let cat = catalog(&["1.34.2", "1.35.0", "1.36.0", "1.37.0"]);
    let mut far = s.clone();
    far.kubernetes_version = v("1.37.0");
    let o = run(&far, &snap, Some(&cat));
    let f = o
        .findings
        .iter()
        .find(|f| f.rule == "planner.out-of-scope-skew")
        .expect("finding");
    assert!(f.forceable && f.message.contains("w-2") && f.message.contains("w-4"));
}

#[test]
fn mixed_kubelets_only_the_old_ones_move_early() {
    let cat = catalog(CAT);
    let mut snap = cluster(1, "1.32.9", 0, "1.32.9");
    snap.nodes.push(mk_worker("old", "1.29.0"));
    snap.nodes.push(mk_worker("mid", "1.31.0"));
    snap.nodes.push(mk_worker("new", "1.32.9"));
    let o = run(&spec("1.33.5"), &snap, Some(&cat));
    assert_eq!(
        stages(&o),
        [
            "workers@1.32.9:old",
            "backup@1.33.5:cp-1",
            "control-plane@1.33.5:cp-1",
            "workers@1.33.5:mid|new|old"
        ]
    );
}

#[test]
fn a_kubelet_already_out_of_skew_moves_first_with_a_warning() {
    let mut snap = cluster(1, "1.33.5", 1, "1.33.5");
    snap.nodes.push(mk_worker("ancient", "1.29.0"));
    let o = run(&spec("1.34.2"), &snap, None);
    assert_eq!(stages(&o)[0], "workers@1.33.5:ancient");
    let f = o
        .findings
        .iter()
        .find(|f| f.rule == "planner.kubelet-out-of-skew")
        .expect("finding");
    assert_eq!(f.severity, Severity::Warn);
}

#[test]
fn ha_apiservers_at_two_versions_plan_from_the_oldest() {
    let mut snap = cluster(0, "1.33.4", 2, "1.33.4");
    snap.nodes.push(mk_cp("cp-1", "1.34.2", "1.34.2"));
    snap.nodes.push(mk_cp("cp-2", "1.33.4", "1.33.4"));
    snap.nodes.push(mk_cp("cp-3", "1.33.4", "1.33.4"));
    let o = run(&spec("1.34.2"), &snap, None);
    assert_eq!(o.current.control_plane, Some(v("1.33.4")));
    assert_eq!(hops(&o), ["1.33.4>1.34.2"]);
    // cp-1 is done already: only cp-2 and cp-3 move, and cp-2 runs `kubeadm upgrade apply`.
    assert_eq!(stages(&o)[0], "backup@1.34.2:cp-2");
    assert_eq!(stages(&o)[1], "control-plane@1.34.2:cp-2|cp-3");
    assert!(rules(&o).contains(&"planner.mixed-apiservers".to_string()));
}

#[test]
fn downgrades() {
    // Minor downgrade: non-forceable deny and no plan.
    let o = run(&spec("1.32.9"), &cluster(1, "1.33.4", 2, "1.33.4"), None);
    let f = o
        .findings
        .iter()
        .find(|f| f.rule == "planner.minor-downgrade")
        .unwrap();
    assert!(f.severity == Severity::Deny && !f.forceable);
    assert!(o.plan.stages.is_empty() && !o.up_to_date);
    // Patch downgrade: forceable deny, and a plan for when it is forced.
    let o = run(&spec("1.33.2"), &cluster(1, "1.33.4", 2, "1.33.4"), None);
    let f = o
        .findings
        .iter()
        .find(|f| f.rule == "planner.patch-downgrade")
        .unwrap();
    assert!(f.severity == Severity::Deny && f.forceable);
    assert_eq!(hops(&o), ["1.33.4>1.33.2"]);
    assert_eq!(stages(&o).last().unwrap(), "workers@1.33.2:w-1|w-2");
}

#[test]
fn prereleases_need_opt_in() {
    let snap = cluster(1, "1.34.2", 1, "1.34.2");
    // (target, allowPrerelease, denied)
    let cases = [
        ("1.35.0-rc.1", AllowPrerelease::None, true),
        ("1.35.0-rc.1", AllowPrerelease::Rc, false),
        ("1.35.0-beta.0", AllowPrerelease::Rc, true),
        ("1.35.0-beta.0", AllowPrerelease::All, false),
        ("1.35.0", AllowPrerelease::None, false),
    ];
    for (target, allow, denied) in cases {
        let mut s = spec(target);
        s.allow_prerelease = allow;
        let o = run(&s, &snap, None);
        assert_eq!(
            rules(&o).contains(&"planner.prerelease".to_string()),
            denied,
            "{target} {allow:?}"
        );
        assert_eq!(o.plan.hops.is_empty(), denied, "{target} {allow:?}");
    }
    // Intermediate hops never pick a pre-release from the catalogue.
    let cat = catalog(&["1.33.5", "1.34.0-rc.0", "1.34.0-rc.1"]);
    let o = run(
        &spec("1.35.0"),
        &cluster(1, "1.33.5", 1, "1.33.5"),
        Some(&cat),
    );
    assert_eq!(hops(&o), ["1.33.5>1.34.0", "1.34.0>1.35.0"]);
}

#[test]
fn up_to_date_and_stragglers() {
    let o = run(&spec("1.34.2"), &cluster(3, "1.34.2", 3, "1.34.2"), None);
    assert!(o.up_to_date && o.plan.stages.is_empty() && o.plan.hops.is_empty());
    // Control plane done, one worker behind: only that worker moves, no backup.
    let mut snap = cluster(1, "1.34.2", 2, "1.34.2");
    snap.nodes.push(mk_worker("late", "1.33.4"));
    let o = run(&spec("1.34.2"), &snap, None);
    assert!(!o.up_to_date);
    assert_eq!(stages(&o), ["workers@1.34.2:late"]);
}

#[test]
fn newer_kubelets_are_findings_and_readiness_is_left_to_the_pack() {
    let mut snap = cluster(3, "1.33.4", 3, "1.33.4");
    snap.nodes[1].ready = false; // cp-2
    snap.nodes[4].ready = false; // w-2
    snap.nodes.push(mk_worker("ahead", "1.35.0"));
    let o = run(&spec("1.34.2"), &snap, None);
    // NotReady nodes are controlplane.not-ready and readiness.nodes-not-ready
    // (core/tests/one_finding.rs), not planner duplicates.
    assert_eq!(rules(&o), ["planner.kubelet-newer-than-target"]);
    assert_eq!(o.findings[0].severity, Severity::Deny);
}

#[test]
fn nodes_are_ordered_naturally() {
    let snap = cluster(1, "1.33.4", 11, "1.33.4");
    let mut s = spec("1.33.5");
    s.strategy = Strategy::Parallel;
    let o = run(&s, &snap, None);
    let w = o
        .plan
        .stages
        .iter()
        .find(|s| s.kind == StageKind::Workers)
        .unwrap();
    assert_eq!(
        w.batches[0][..3],
        ["w-1".to_string(), "w-2".into(), "w-3".into()]
    );
    assert_eq!(w.batches[0].last().unwrap(), "w-11");
}

/// Versions are bounded and checked: absurd targets stop before any hop is computed,
/// with exactly one finding; a target missing from versions.yaml is a forceable deny
/// naming the nearest releases.
#[test]
fn absurd_and_unknown_targets_table() {
    let cat = catalog(&["1.32.9", "1.33.4", "1.34.0", "1.34.2", "1.35.0"]);
    let snap = cluster(1, "1.33.4", 2, "1.33.4");
    // (target, catalogue?, the one deny expected, forceable, message fragment)
    let cases: &[(&str, bool, &str, bool, &str)] = &[
        (
            "2.0.0",
            true,
            "planner.major-change",
            false,
            "changes the major version",
        ),
        (
            "1.99.0",
            true,
            "planner.too-many-minors",
            false,
            "66 minors past",
        ),
        (
            "1.99.0",
            false,
            "planner.too-many-minors",
            false,
            "without versions.yaml a plan spans at most 10",
        ),
        (
            "1.34.7",
            true,
            "planner.target-not-in-catalog",
            true,
            "nearest known: 1.34.0, 1.34.2, 1.35.0",
        ),
        (
            "1.36.0",
            true,
            "planner.target-not-in-catalog",
            true,
            "nearest known: 1.34.2, 1.35.0)",
        ),
        (
            "1.38.0",
            true,
            "planner.too-many-minors",
            false,
            "versions.yaml spans 4 minors (1.32 to 1.35)",
        ),
    ];
    for (target, with_cat, rule, forceable, fragment) in cases {
        let o = run(&spec(target), &snap, with_cat.then_some(&cat));
        let denies: Vec<&cupcake_api::plan::Finding> = o
            .findings
            .iter()
            .filter(|f| f.severity == cupcake_api::plan::Severity::Deny)
            .collect();
        assert_eq!(denies.len(), 1, "{target}: {denies:?}");
        assert_eq!(denies[0].rule, *rule, "{target}");
        assert_eq!(denies[0].forceable, *forceable, "{target}");
        assert!(
            denies[0].message.contains(fragment),
            "{target}: {}",
            denies[0].message
        );
        assert!(
            o.plan.hops.len() <= 3,
            "{target}: {} hops",
            o.plan.hops.len()
        );
    }
    // A target in the catalogue plans normally.
    let o = run(&spec("1.34.2"), &snap, Some(&cat));
    assert!(
        o.findings
            .iter()
            .all(|f| f.severity != cupcake_api::plan::Severity::Deny),
        "{:?}",
        o.findings
    );
    assert_eq!(hops(&o), ["1.33.4>1.34.2"]);
}

/// Inputs that change what the plan is are warnings: a snapshot without PDBs or with
/// pods of one namespace only (made with -n instead of -A?), a nodeSelector matching no
/// worker, backup.etcd without a store.
#[test]
fn input_warnings_table() {
    let full = |snap: &ClusterSnapshot, spec_yaml: &str| -> Vec<String> {
        let s: ClusterVersionSpec = yaml_serde::from_str(spec_yaml).unwrap();
        plan(PlanInput {
            spec: &s,
            catalog: None,
            snapshot: snap,
        })
        .findings
        .into_iter()
        .filter(|f| INPUT_WARNINGS.contains(&f.rule.as_str()))
        .map(|f| f.rule)
        .collect()
    };
    let store = "kubernetesVersion: 1.34.2\nbackup: {etcd: true, store: s3://b/c}";
    let mut healthy = cluster(1, "1.33.4", 2, "1.33.4");
    healthy.pods.push(mk_pod("shop", "web-0", "w-1", "web"));
    healthy
        .pods
        .push(mk_pod("kube-system", "dns-0", "w-2", "dns"));
    healthy.pdbs.push(mk_pdb("shop", "web", 1));
    assert!(
        full(&healthy, store).is_empty(),
        "{:?}",
        full(&healthy, store)
    );
    let mut no_pdbs = healthy.clone();
    no_pdbs.pdbs.clear();
    assert_eq!(full(&no_pdbs, store), ["planner.no-pdbs"]);
    let mut one_ns = healthy.clone();
    one_ns.pods.retain(|p| p.namespace == "shop");
    one_ns.pods.push(mk_pod("shop", "web-1", "w-2", "web"));
    assert_eq!(full(&one_ns, store), ["planner.one-namespace"]);
    assert_eq!(
        full(&healthy, &format!("{store}\nnodeSelector: {{pool: gpu}}")),
        ["planner.selector-matches-no-worker"]
    );
    assert_eq!(
        full(&healthy, "kubernetesVersion: 1.34.2"),
        ["planner.backup-without-store"]
    );
}

/// Per worker/canary stage: `kind@version:` then each batch's reason as the
/// plan text shows it.
fn limits(o: &PlanOutcome) -> Vec<String> {
    o.plan
        .stages
        .iter()
        .filter(|s| matches!(s.kind, StageKind::Workers | StageKind::Canary))
        .map(|s| {
            assert_eq!(
                s.batch_limits.len(),
                s.batches.len(),
                "one reason per batch"
            );
            let r: Vec<String> = s.batch_limits.iter().map(ToString::to_string).collect();
            format!("{}: {}", s.kind.as_str(), r.join(" | "))
        })
        .collect()
}

/// Issue 8 (Deliver 7): the plan says what limited each worker batch — the
/// batch size and where it comes from, the PDB that turned the next node away,
/// the canary batch, or running out of (in-scope) nodes.
#[test]
fn each_batch_says_what_limited_its_size() {
    type Case = (
        &'static str,
        fn(&mut ClusterVersionSpec, &mut ClusterSnapshot),
        &'static [&'static str],
    );
    // Base: 1 control-plane node, 5 workers; web (shop) pods on w-1, w-2 with a PDB
    // that allows 1 disruption.
    let cases: &[Case] = &[
        (
            "concurrency 2: full batches, then the rest",
            |s, _| s.concurrency = Some(IntOrPercent::Int(2)),
            &["workers: concurrency 2 | concurrency 2 | remaining nodes"],
        ),
        (
            "percentage resolves against in-scope workers",
            |s, _| s.concurrency = Some(IntOrPercent::Percent(40)),
            &[
                "workers: batch size 2 (concurrency: 40%) | batch size 2 (concurrency: 40%) | remaining nodes",
            ],
        ),
        (
            "maxUnavailable names itself",
            |s, _| s.max_unavailable = Some(IntOrPercent::Int(5)),
            &["workers: batch size 5 (maxUnavailable: 5)"],
        ),
        (
            "rolling without a size: one node at a time",
            |_, _| {},
            &[
                "workers: batch size 1 (strategy: rolling) | batch size 1 (strategy: rolling) | batch size 1 (strategy: rolling) | batch size 1 (strategy: rolling) | batch size 1 (strategy: rolling)",
            ],
        ),
        (
            "a PDB turns the next node away",
            |s, snap| {
                s.concurrency = Some(IntOrPercent::Int(5));
                add_web(snap, &["w-1", "w-2"], 1);
            },
            &["workers: PDB shop/web (minAvailable 1, allows 1 now) | remaining nodes"],
        ),
        (
            "a full batch is the batch size even when a PDB also turned a node away",
            |s, snap| {
                s.concurrency = Some(IntOrPercent::Int(3));
                add_web(snap, &["w-1", "w-2"], 1);
            },
            &["workers: concurrency 3 | remaining nodes"],
        ),
        (
            "parallel: only PDBs and the end of the stage limit batches",
            |s, snap| {
                s.strategy = Strategy::Parallel;
                add_web(snap, &["w-1", "w-2"], 1);
            },
            &["workers: PDB shop/web (minAvailable 1, allows 1 now) | remaining nodes"],
        ),
        (
            "a node whose pods alone exceed the PDB goes alone",
            |s, snap| {
                s.strategy = Strategy::Parallel;
                add_web(snap, &["w-3", "w-3"], 1);
            },
            &[
                "workers: PDB shop/web (minAvailable 1, allows 1 now) | PDB shop/web (minAvailable 1, allows 1 now): this node alone exceeds it",
            ],
        ),
        (
            "canary batch, then the rest",
            |s, _| {
                s.strategy = Strategy::Canary;
                s.concurrency = Some(IntOrPercent::Int(4));
            },
            &["canary: canary", "workers: concurrency 4"],
        ),
        (
            "workers outside nodeSelector are named",
            |s, snap| {
                s.strategy = Strategy::Parallel;
                s.node_selector = BTreeMap::from([("pool".into(), "a".into())]);
                for n in &mut snap.nodes[1..4] {
                    n.labels.insert("pool".into(), "a".into());
                }
            },
            &["workers: remaining nodes (2 workers not in scope)"],
        ),
    ];
    for (name, edit, want) in cases {
        let mut s = spec("1.34.2");
        let mut snap = cluster(1, "1.33.4", 5, "1.33.4");
        edit(&mut s, &mut snap);
        let o = run(&s, &snap, None);
        assert_eq!(limits(&o), *want, "{name}: {:?}", stages(&o));
    }
}

/// Pods of app `web` in namespace `shop` on `nodes` (one per entry) and its PDB.
fn add_web(snap: &mut ClusterSnapshot, nodes: &[&str], allowed: i64) {
    for (i, n) in nodes.iter().enumerate() {
        snap.pods
            .push(mk_pod("shop", &format!("web-{i}"), n, "web"));
    }
    snap.pdbs.push(mk_pdb("shop", "web", allowed));
}

#[test]
fn batch_limits_are_camel_case_json_and_absent_for_control_plane_stages() {
    let mut s = spec("1.34.2");
    s.concurrency = Some(IntOrPercent::Int(3));
    let mut snap = cluster(1, "1.33.4", 3, "1.33.4");
    add_web(&mut snap, &["w-1", "w-2"], 1);
    let o = run(&s, &snap, None);
    let json = serde_json::to_value(&o.plan).unwrap();
    let stages = json["stages"].as_array().unwrap();
    assert!(stages[0].get("batchLimits").is_none(), "{}", stages[0]);
    assert_eq!(
        stages.last().unwrap()["batchLimits"],
        serde_json::json!([
            {"kind": "pdb", "pdb": "shop/web", "budget": "minAvailable 1", "allowed": 1},
            {"kind": "remaining"}
        ])
    );
}
