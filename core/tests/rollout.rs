//! `rollout::next`: table-driven decisions, and whole rollouts driven against a
//! simulated cluster, with a crash (a lost status write) injected at every step.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;

use chrono::{DateTime, Duration as CDuration, Utc};
use cupcake_api::KubeVersion;
use cupcake_api::common::GoDuration;
use cupcake_api::crd::{BackupRef, DirectUpdateSpec, DirectUpdateStatus, NodeStatus, Phase};
use cupcake_api::labels;
use cupcake_api::plan::{Stage, StageKind};
use cupcake_api::protocol::{AgentStatus, BackupResult, NodePhase, UpgradeMode};
use cupcake_api::snapshot::{
    ClusterSnapshot, ControlPlaneComponents, LabelSelector, Node, Pdb, PdbStatus, Pod, Role,
};
use cupcake_core::rollout::{Decision, Effect, RolloutInput, next};

fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}

fn t0() -> DateTime<Utc> {
    "2026-11-28T02:30:00Z".parse().unwrap()
}

fn node(name: &str, cp: bool, ver: &str) -> Node {
    Node {
        name: name.into(),
        labels: BTreeMap::from([("app".to_string(), name.to_string())]),
        role: if cp { Role::ControlPlane } else { Role::Worker },
        kubelet_version: v(ver),
        ready: true,
        unschedulable: false,
        taints: vec![],
        control_plane: cp.then(|| ControlPlaneComponents {
            apiserver: Some(v(ver)),
            controller_manager: Some(v(ver)),
            scheduler: Some(v(ver)),
            etcd: None,
        }),
    }
}

fn pod(ns: &str, name: &str, node: &str, app: &str) -> Pod {
    Pod {
        namespace: ns.into(),
        name: name.into(),
        node: node.into(),
        labels: BTreeMap::from([("app".to_string(), app.to_string())]).into(),
        owner_kind: Some("ReplicaSet".into()),
        phase: "Running".into(),
    }
}

fn pdb(ns: &str, name: &str, app: &str, allowed: i64) -> Pdb {
    Pdb {
        namespace: ns.into(),
        name: name.into(),
        selector: Some(LabelSelector {
            match_labels: BTreeMap::from([("app".to_string(), app.to_string())]),
            match_expressions: vec![],
        }),
        min_available: None,
        max_unavailable: None,
        status: Some(PdbStatus {
            disruptions_allowed: allowed,
            ..PdbStatus::default()
        }),
    }
}

fn stage(kind: StageKind, ver: &str, batches: &[&[&str]]) -> Stage {
    Stage {
        kind,
        version: v(ver),
        batches: batches
            .iter()
            .map(|b| b.iter().map(|s| s.to_string()).collect())
            .collect(),
        batch_limits: Vec::new(),
    }
}

fn spec(target: &str) -> DirectUpdateSpec {
    serde_json::from_value(serde_json::json!({"targetVersion": target})).unwrap()
}

/// A small simulated cluster: the controller's effects change it, a simulated
/// agent completes assignments, and every agent run is counted.
#[derive(Debug, Clone)]
struct World {
    cluster: ClusterSnapshot,
    ann: BTreeMap<String, BTreeMap<String, String>>,
    du_ann: BTreeMap<String, String>,
    /// (node, version) → times the agent ran the upgrade.
    runs: BTreeMap<(String, String), u32>,
    /// Agent of these nodes fails.
    failing: Vec<String>,
    backups: u32,
}

impl World {
    fn new(nodes: Vec<Node>, pods: Vec<Pod>, pdbs: Vec<Pdb>) -> Self {
        Self {
            ann: nodes
                .iter()
                .map(|n| (n.name.clone(), BTreeMap::new()))
                .collect(),
            cluster: ClusterSnapshot { nodes, pods, pdbs },
            du_ann: BTreeMap::new(),
            runs: BTreeMap::new(),
            failing: vec![],
            backups: 0,
        }
    }

    fn node_mut(&mut self, n: &str) -> &mut Node {
        self.cluster.nodes.iter_mut().find(|x| x.name == n).unwrap()
    }

    fn apply(&mut self, e: &Effect) {
        match e {
            Effect::Cordon {
                node,
                admin_cordoned,
            } => {
                self.ann
                    .get_mut(node)
                    .unwrap()
                    .entry(labels::ADMIN_CORDONED.to_string())
                    .or_insert_with(|| admin_cordoned.to_string());
                self.node_mut(node).unschedulable = true;
            }
            Effect::Drain { node } => {
                // Evict what the PDBs allow (one pod per PDB with budget), like the eviction API.
                let mut budget: BTreeMap<String, i64> = self
                    .cluster
                    .pdbs
                    .iter()
                    .map(|p| (p.name.clone(), p.status.unwrap().disruptions_allowed))
                    .collect();
                let pdbs = self.cluster.pdbs.clone();
                self.cluster.pods.retain(|p| {
                    if &p.node != node || !p.evictable() {
                        return true;
                    }
                    for b in &pdbs {
                        if b.selector.as_ref().unwrap().matches(&p.labels) {
                            let left = budget.get_mut(&b.name).unwrap();
                            if *left <= 0 {
                                return true;
                            }
                            *left -= 1;
                        }
                    }
                    false
                });
            }
            Effect::Assign {
                node,
                operation_id,
                target,
                only_if_drained,
                ..
            } => {
                // As the controller does: a conditional assignment only when the drain
                // just before it left nothing evictable on the node.
                if *only_if_drained
                    && self
                        .cluster
                        .pods
                        .iter()
                        .any(|p| &p.node == node && p.evictable())
                {
                    return;
                }
                let a = self.ann.get_mut(node).unwrap();
                if a.get(labels::OPERATION_ID) != Some(operation_id)
                    || a.get(labels::TARGET_VERSION) != Some(&target.to_string())
                    || a.get(labels::STATUS).map(String::as_str) == Some("failed")
                {
                    a.insert(labels::OPERATION_ID.into(), operation_id.clone());
                    a.insert(labels::TARGET_VERSION.into(), target.to_string());
                    a.insert(labels::STATUS.into(), AgentStatus::Pending.as_str().into());
                }
            }
            Effect::Release { node, uncordon } => {
                let a = self.ann.get_mut(node).unwrap();
                for k in labels::NODE_ASSIGNMENT {
                    a.remove(k);
                }
                a.remove(labels::ADMIN_CORDONED);
                if *uncordon {
                    self.node_mut(node).unschedulable = false;
                }
            }
            Effect::RequestBackup { node, operation_id } => {
                let a = self.ann.get_mut(node).unwrap();
                if a.get(labels::BACKUP_REQUEST) != Some(operation_id) {
                    a.insert(labels::BACKUP_REQUEST.into(), operation_id.clone());
                    self.backups += 1;
                    let r = BackupResult {
                        operation_id: operation_id.clone(),
                        ok: true,
                        etcd_snapshot: Some("snap.db".into()),
                        location: Some("s3://b/snap.db".into()),
                        size_bytes: 4128,
                        ..BackupResult::default()
                    };
                    a.insert(
                        labels::BACKUP_RESULT.into(),
                        serde_json::to_string(&r).unwrap(),
                    );
                }
            }
            Effect::ClearRetry => {
                self.du_ann.remove(labels::RETRY);
            }
        }
    }

    /// The agents: run pending assignments to completion.
    fn agents(&mut self) {
        let names: Vec<String> = self.ann.keys().cloned().collect();
        for n in names {
            let a = self.ann[&n].clone();
            if a.get(labels::STATUS).map(String::as_str) != Some("pending") {
                continue;
            }
            let target = a[labels::TARGET_VERSION].clone();
            *self.runs.entry((n.clone(), target.clone())).or_default() += 1;
            if self.failing.contains(&n) {
                let a = self.ann.get_mut(&n).unwrap();
                a.insert(labels::STATUS.into(), "failed".into());
                a.insert(labels::MESSAGE.into(), "03-kubeadm-upgrade: exit 1".into());
                continue;
            }
            let node = self.node_mut(&n);
            node.kubelet_version = v(&target);
            if let Some(cp) = node.control_plane.as_mut() {
                cp.apiserver = Some(v(&target));
                cp.controller_manager = Some(v(&target));
                cp.scheduler = Some(v(&target));
            }
            let a = self.ann.get_mut(&n).unwrap();
            a.insert(labels::STATUS.into(), "completed".into());
            a.insert(labels::STEP.into(), "06-verify".into());
        }
    }
}

fn decide(
    w: &World,
    sp: &DirectUpdateSpec,
    st: Option<&DirectUpdateStatus>,
    now: DateTime<Utc>,
) -> Decision {
    next(RolloutInput {
        name: "du",
        uid: Some("op-1"),
        generation: Some(1),
        annotations: &w.du_ann,
        spec: sp,
        status: st,
        stages: &sp.stages,
        cluster: &w.cluster,
        node_annotations: &w.ann,
        now,
    })
}

fn cluster_3cp_4w() -> World {
    World::new(
        vec![
            node("cp-1", true, "1.33.4"),
            node("cp-2", true, "1.33.4"),
            node("cp-3", true, "1.33.4"),
            node("w-1", false, "1.33.4"),
            node("w-2", false, "1.33.4"),
            node("w-3", false, "1.33.4"),
            node("w-4", false, "1.33.4"),
        ],
        vec![
            pod("app", "web-a", "w-1", "web"),
            pod("app", "web-b", "w-2", "web"),
            pod("app", "db-a", "w-3", "db"),
        ],
        vec![pdb("app", "web", "web", 1), pdb("app", "db", "db", 1)],
    )
}

fn full_spec() -> DirectUpdateSpec {
    let mut sp = spec("1.34.2");
    sp.backup = Some(BackupRef {
        etcd: true,
        store_ref: Some("s3://b".into()),
    });
    sp.stages = vec![
        stage(StageKind::Backup, "1.34.2", &[&["cp-1"]]),
        stage(
            StageKind::ControlPlane,
            "1.34.2",
            &[&["cp-1"], &["cp-2"], &["cp-3"]],
        ),
        stage(StageKind::Canary, "1.34.2", &[&["w-4"]]),
        stage(StageKind::Workers, "1.34.2", &[&["w-1", "w-2", "w-3"]]),
    ];
    sp
}

/// Drive a rollout to the end. With `crash_every`, each n-th decision's effects are
/// performed but its status is lost (the controller died before writing it).
/// Checks the invariants after every decision; returns the final status and world.
fn drive(
    w: World,
    sp: &DirectUpdateSpec,
    crash_every: Option<usize>,
) -> (DirectUpdateStatus, World, Vec<String>) {
    drive_with(w, sp, |i| crash_every.is_some_and(|k| i % k == k - 1))
}

fn drive_with(
    mut w: World,
    sp: &DirectUpdateSpec,
    mut crash: impl FnMut(usize) -> bool,
) -> (DirectUpdateStatus, World, Vec<String>) {
    let mut st: Option<DirectUpdateStatus> = None;
    let mut now = t0();
    let mut order = Vec::new();
    for i in 0..400 {
        let d = decide(&w, sp, st.as_ref(), now);
        for e in &d.effects {
            w.apply(e);
        }
        // Invariant: never two control-plane nodes in flight.
        let cp_active = d
            .status
            .nodes
            .iter()
            .filter(|(n, s)| n.starts_with("cp-") && s.phase.is_active())
            .count();
        assert!(
            cp_active <= 1,
            "two control-plane nodes at once: {:?}",
            d.status.nodes
        );
        for (n, s) in &d.status.nodes {
            if s.phase == NodePhase::Draining && !order.contains(n) {
                order.push(n.clone());
            }
        }
        let crashed = crash(i);
        if !crashed {
            st = Some(d.status.clone());
        }
        w.agents();
        now += CDuration::seconds(5);
        if st.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded)
            || st.as_ref().and_then(|s| s.phase) == Some(Phase::Failed)
                && !st
                    .as_ref()
                    .unwrap()
                    .nodes
                    .values()
                    .any(|n| n.phase.is_active())
        {
            break;
        }
    }
    // Invariant: no node upgraded twice to one version.
    for ((n, ver), c) in &w.runs {
        assert_eq!(*c, 1, "{n} upgraded to {ver} {c} times");
    }
    (st.unwrap(), w, order)
}

#[test]
fn full_rollout_runs_in_plan_order_and_succeeds() {
    let (st, w, order) = drive(cluster_3cp_4w(), &full_spec(), None);
    assert_eq!(st.phase, Some(Phase::Succeeded), "{st:?}");
    assert_eq!(st.progress.as_deref(), Some("7/7"));
    assert!(st.backup_info.as_ref().is_some_and(|b| b.verified));
    assert_eq!(w.backups, 1);
    // Control plane first (one at a time), then the canary, then the workers.
    assert_eq!(&order[..4], ["cp-1", "cp-2", "cp-3", "w-4"]);
    assert!(
        w.cluster
            .nodes
            .iter()
            .all(|n| n.kubelet_version == v("1.34.2"))
    );
    assert!(
        w.cluster.nodes.iter().all(|n| !n.unschedulable),
        "every node uncordoned"
    );
    assert!(
        w.ann
            .values()
            .all(|a| a.get(labels::OPERATION_ID).is_none()),
        "assignments cleared"
    );
    let up = st.upgrade_path.unwrap();
    assert_eq!((up.current_step, up.total_steps), (1, 1));
}

#[test]
fn resumes_from_any_status_without_upgrading_a_node_twice() {
    for k in [2, 3, 4, 5, 7] {
        let (st, w, _) = drive(cluster_3cp_4w(), &full_spec(), Some(k));
        assert_eq!(st.phase, Some(Phase::Succeeded), "crash every {k}: {st:?}");
        assert_eq!(w.runs.len(), 7, "crash every {k}: {:?}", w.runs);
    }
}

#[test]
fn random_lost_status_writes_never_upgrade_a_node_twice() {
    for seed in 1..=40u64 {
        // A seeded LCG: about a third of the status writes are lost.
        let mut x = seed;
        let (st, w, _) = drive_with(cluster_3cp_4w(), &full_spec(), |_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % 3 == 0
        });
        assert_eq!(st.phase, Some(Phase::Succeeded), "seed {seed}: {st:?}");
        assert_eq!(w.runs.len(), 7, "seed {seed}");
    }
}

#[test]
fn multi_hop_runs_control_plane_hop_by_hop() {
    let mut sp = spec("1.35.1");
    sp.upgrade_path = vec![v("1.34.2"), v("1.35.1")];
    sp.stages = vec![
        stage(StageKind::ControlPlane, "1.34.2", &[&["cp-1"], &["cp-2"]]),
        stage(StageKind::ControlPlane, "1.35.1", &[&["cp-1"], &["cp-2"]]),
        stage(StageKind::Workers, "1.35.1", &[&["w-1"]]),
    ];
    let w = World::new(
        vec![
            node("cp-1", true, "1.33.4"),
            node("cp-2", true, "1.33.4"),
            node("w-1", false, "1.33.4"),
        ],
        vec![],
        vec![],
    );
    let (st, w, _) = drive(w, &sp, Some(3));
    assert_eq!(st.phase, Some(Phase::Succeeded), "{st:?}");
    let runs: Vec<_> = w.runs.keys().cloned().collect();
    assert_eq!(
        runs,
        [
            ("cp-1".into(), "1.34.2".into()),
            ("cp-1".into(), "1.35.1".into()),
            ("cp-2".into(), "1.34.2".into()),
            ("cp-2".into(), "1.35.1".into()),
            ("w-1".into(), "1.35.1".into()),
        ]
    );
    assert_eq!(st.upgrade_path.unwrap().current_step, 2);
}

/// What starting `node` decides after its cordon and drain: its assignment, written
/// only if the drain finds nothing left to evict.
fn assign_if_drained(node: &str, mode: UpgradeMode) -> Effect {
    Effect::Assign {
        node: node.into(),
        operation_id: "op-1".into(),
        target: "1.34.2".parse().unwrap(),
        components: spec("1.34.2").components,
        mode,
        only_if_drained: true,
    }
}

#[test]
fn first_decision_table() {
    struct Case {
        name: &'static str,
        spec: fn() -> DirectUpdateSpec,
        world: fn() -> World,
        want_effects: Vec<Effect>,
        want_phase: Phase,
    }
    let cases = [
        Case {
            name: "backup first when spec.backup.etcd",
            spec: full_spec,
            world: cluster_3cp_4w,
            want_effects: vec![Effect::RequestBackup {
                node: "cp-1".into(),
                operation_id: "op-1".into(),
            }],
            want_phase: Phase::InProgress,
        },
        Case {
            name: "no backup: cordon and drain the first control-plane node",
            spec: || {
                let mut s = full_spec();
                s.backup = None;
                s
            },
            world: cluster_3cp_4w,
            want_effects: vec![
                Effect::Cordon {
                    node: "cp-1".into(),
                    admin_cordoned: false,
                },
                Effect::Drain {
                    node: "cp-1".into(),
                },
                assign_if_drained("cp-1", UpgradeMode::Apply),
            ],
            want_phase: Phase::InProgress,
        },
        Case {
            name: "an admin-cordoned node is recorded as such",
            spec: || {
                let mut s = spec("1.34.2");
                s.stages = vec![stage(StageKind::Workers, "1.34.2", &[&["w-4"]])];
                s
            },
            world: || {
                let mut w = cluster_3cp_4w();
                w.node_mut("w-4").unschedulable = true;
                w
            },
            want_effects: vec![
                Effect::Cordon {
                    node: "w-4".into(),
                    admin_cordoned: true,
                },
                Effect::Drain { node: "w-4".into() },
                assign_if_drained("w-4", UpgradeMode::Node),
            ],
            want_phase: Phase::InProgress,
        },
        Case {
            name: "control-plane nodes one at a time even in one batch",
            spec: || {
                let mut s = spec("1.34.2");
                s.stages = vec![stage(
                    StageKind::ControlPlane,
                    "1.34.2",
                    &[&["cp-1", "cp-2"]],
                )];
                s
            },
            world: cluster_3cp_4w,
            want_effects: vec![
                Effect::Cordon {
                    node: "cp-1".into(),
                    admin_cordoned: false,
                },
                Effect::Drain {
                    node: "cp-1".into(),
                },
                assign_if_drained("cp-1", UpgradeMode::Apply),
            ],
            want_phase: Phase::InProgress,
        },
        Case {
            name: "two nodes of one PDB with budget 1: only the first starts",
            spec: || {
                let mut s = spec("1.34.2");
                s.stages = vec![stage(
                    StageKind::Workers,
                    "1.34.2",
                    &[&["w-1", "w-2", "w-3"]],
                )];
                s
            },
            world: cluster_3cp_4w,
            want_effects: vec![
                Effect::Cordon {
                    node: "w-1".into(),
                    admin_cordoned: false,
                },
                Effect::Drain { node: "w-1".into() },
                assign_if_drained("w-1", UpgradeMode::Node),
                // w-2 shares PDB web (budget 1) with w-1: waits. w-3 (PDB db) starts.
                Effect::Cordon {
                    node: "w-3".into(),
                    admin_cordoned: false,
                },
                Effect::Drain { node: "w-3".into() },
                assign_if_drained("w-3", UpgradeMode::Node),
            ],
            want_phase: Phase::InProgress,
        },
        Case {
            name: "a NotReady control-plane node holds back the others (quorum)",
            spec: || {
                let mut s = full_spec();
                s.backup = None;
                s
            },
            world: || {
                let mut w = cluster_3cp_4w();
                w.node_mut("cp-3").ready = false;
                w
            },
            want_effects: vec![],
            want_phase: Phase::InProgress,
        },
        Case {
            name: "paused before start: nothing starts",
            spec: || {
                let mut s = full_spec();
                s.paused = true;
                s
            },
            world: cluster_3cp_4w,
            want_effects: vec![],
            want_phase: Phase::Paused,
        },
        Case {
            name: "nodes already at the version are skipped, not touched",
            spec: || {
                let mut s = spec("1.34.2");
                s.stages = vec![stage(
                    StageKind::ControlPlane,
                    "1.34.2",
                    &[&["cp-1"], &["cp-2"]],
                )];
                s
            },
            world: || {
                let mut w = cluster_3cp_4w();
                *w.node_mut("cp-1") = node("cp-1", true, "1.34.2");
                w
            },
            want_effects: vec![
                Effect::Cordon {
                    node: "cp-2".into(),
                    admin_cordoned: false,
                },
                Effect::Drain {
                    node: "cp-2".into(),
                },
                assign_if_drained("cp-2", UpgradeMode::Node),
            ],
            want_phase: Phase::InProgress,
        },
    ];
    for c in cases {
        let w = (c.world)();
        let d = decide(&w, &(c.spec)(), None, t0());
        assert_eq!(d.effects, c.want_effects, "{}", c.name);
        assert_eq!(
            d.status.phase,
            Some(c.want_phase),
            "{}: {:?}",
            c.name,
            d.status
        );
        assert_eq!(d.status.operation_id.as_deref(), Some("op-1"), "{}", c.name);
    }
}

/// Run decisions (no crash) until `stop` holds for the status, returning the last decision.
fn until(
    w: &mut World,
    sp: &DirectUpdateSpec,
    st: &mut Option<DirectUpdateStatus>,
    now: &mut DateTime<Utc>,
    stop: impl Fn(&Decision) -> bool,
) -> Decision {
    for _ in 0..100 {
        let d = decide(w, sp, st.as_ref(), *now);
        for e in &d.effects {
            w.apply(e);
        }
        *st = Some(d.status.clone());
        if stop(&d) {
            return d;
        }
        w.agents();
        *now += CDuration::seconds(5);
    }
    panic!("condition never reached: {st:?}");
}

#[test]
fn a_failed_node_stops_the_operation_and_retry_resumes_it() {
    let mut w = cluster_3cp_4w();
    w.failing = vec!["w-4".into()];
    let mut sp = spec("1.34.2");
    sp.stages = vec![
        stage(StageKind::Canary, "1.34.2", &[&["w-4"]]),
        stage(StageKind::Workers, "1.34.2", &[&["w-1"]]),
    ];
    let (mut st, mut now) = (None, t0());
    let d = until(&mut w, &sp, &mut st, &mut now, |d| {
        d.status.phase == Some(Phase::Failed)
    });
    let n = &d.status.nodes["w-4"];
    assert_eq!(n.phase, NodePhase::Failed);
    assert!(
        n.error.as_deref().unwrap().contains("03-kubeadm-upgrade"),
        "{n:?}"
    );
    assert!(
        d.events
            .iter()
            .any(|e| e.reason == "NodeFailed" && e.warning)
    );
    // Nothing else starts while failed.
    for _ in 0..3 {
        let d = decide(&w, &sp, st.as_ref(), now);
        assert!(d.effects.is_empty(), "{:?}", d.effects);
        assert!(!d.status.nodes.contains_key("w-1"));
        now += CDuration::seconds(5);
    }
    // Retry: the node goes back to Pending and the operation resumes.
    w.failing.clear();
    w.du_ann.insert(labels::RETRY.into(), "w-4".into());
    // The agent's failed report stays on the node: the new assignment rewrites it.
    let d = decide(&w, &sp, st.as_ref(), now);
    assert_eq!(d.effects[0], Effect::ClearRetry);
    assert_eq!(d.status.phase, Some(Phase::InProgress));
    for e in &d.effects {
        w.apply(e);
    }
    st = Some(d.status);
    let d = until(&mut w, &sp, &mut st, &mut now, |d| {
        d.status.phase == Some(Phase::Succeeded)
    });
    assert_eq!(d.status.progress.as_deref(), Some("2/2"));
}

#[test]
fn a_blocked_drain_requires_attention_naming_the_pdb() {
    let mut w = cluster_3cp_4w();
    w.cluster.pdbs = vec![pdb("app", "web", "web", 0)];
    let mut sp = spec("1.34.2");
    sp.stages = vec![stage(StageKind::Workers, "1.34.2", &[&["w-1"]])];
    let mut st = None;
    let d = decide(&w, &sp, st.as_ref(), t0());
    for e in &d.effects {
        w.apply(e);
    }
    assert_eq!(
        w.ann["w-1"].get(labels::OPERATION_ID),
        None,
        "a PDB kept the drain from emptying the node: not assigned"
    );
    assert_eq!(d.status.nodes["w-1"].phase, NodePhase::Draining);
    st = Some(d.status);
    // Within drain.timeout (10m default): still in progress, draining again.
    let d = decide(&w, &sp, st.as_ref(), t0() + CDuration::minutes(5));
    assert_eq!(d.status.phase, Some(Phase::InProgress));
    assert!(d.effects.contains(&Effect::Drain { node: "w-1".into() }));
    st = Some(d.status);
    let d = decide(&w, &sp, st.as_ref(), t0() + CDuration::minutes(11));
    assert_eq!(d.status.phase, Some(Phase::RequiresAttention));
    let msg = d.status.message.clone().unwrap();
    assert!(msg.contains("app/web") && msg.contains("w-1"), "{msg}");
    assert!(d.events.iter().any(|e| e.reason == "RequiresAttention"));
    // The PDB allows again: the drain completes, the rollout goes on.
    w.cluster.pdbs[0]
        .status
        .as_mut()
        .unwrap()
        .disruptions_allowed = 1;
    w.apply(&Effect::Drain { node: "w-1".into() });
    st = Some(d.status);
    let d = decide(&w, &sp, st.as_ref(), t0() + CDuration::minutes(12));
    assert_eq!(d.status.phase, Some(Phase::InProgress));
    assert_eq!(d.status.nodes["w-1"].phase, NodePhase::Upgrading);
}

#[test]
fn node_and_operation_timeouts() {
    // nodeTimeout: the agent never answers.
    let w = cluster_3cp_4w();
    let mut sp = spec("1.34.2");
    sp.node_timeout = Some(GoDuration::from_secs(600));
    sp.stages = vec![stage(StageKind::Workers, "1.34.2", &[&["w-4"]])];
    let mut st = DirectUpdateStatus {
        phase: Some(Phase::InProgress),
        operation_id: Some("op-1".into()),
        started_at: Some(t0()),
        ..DirectUpdateStatus::default()
    };
    st.nodes.insert(
        "w-4".into(),
        NodeStatus {
            phase: NodePhase::Upgrading,
            target_version: Some(v("1.34.2")),
            started_at: Some(t0()),
            last_updated: Some(t0()),
            ..NodeStatus::default()
        },
    );
    let d = decide(&w, &sp, Some(&st), t0() + CDuration::minutes(9));
    assert_eq!(d.status.nodes["w-4"].phase, NodePhase::Upgrading);
    let d = decide(&w, &sp, Some(&st), t0() + CDuration::minutes(11));
    assert_eq!(d.status.nodes["w-4"].phase, NodePhase::Failed);
    assert!(
        d.status.nodes["w-4"]
            .error
            .as_deref()
            .unwrap()
            .contains("nodeTimeout")
    );
    assert_eq!(d.status.phase, Some(Phase::Failed));

    // operationTimeout: nothing new starts once it passed.
    let mut sp = spec("1.34.2");
    sp.operation_timeout = Some(GoDuration::from_secs(3600));
    sp.stages = vec![stage(StageKind::Workers, "1.34.2", &[&["w-4"]])];
    let st = DirectUpdateStatus {
        phase: Some(Phase::InProgress),
        operation_id: Some("op-1".into()),
        started_at: Some(t0()),
        ..DirectUpdateStatus::default()
    };
    let d = decide(&w, &sp, Some(&st), t0() + CDuration::minutes(61));
    assert!(d.effects.is_empty(), "{:?}", d.effects);
    assert_eq!(d.status.phase, Some(Phase::Failed));
    assert!(d.status.message.unwrap().contains("timed out"));
}

#[test]
fn pause_lets_the_node_in_flight_finish_and_starts_no_other() {
    let mut w = cluster_3cp_4w();
    let mut sp = spec("1.34.2");
    sp.stages = vec![stage(StageKind::Workers, "1.34.2", &[&["w-4"], &["w-1"]])];
    let (mut st, mut now) = (None, t0());
    until(&mut w, &sp, &mut st, &mut now, |d| {
        d.status
            .nodes
            .get("w-4")
            .is_some_and(|n| n.phase == NodePhase::Upgrading)
    });
    sp.paused = true;
    let d = until(&mut w, &sp, &mut st, &mut now, |d| {
        d.status.phase == Some(Phase::Paused)
    });
    assert_eq!(d.status.nodes["w-4"].phase, NodePhase::Completed);
    assert!(
        !d.status.nodes.contains_key("w-1"),
        "w-1 must not start while paused"
    );
    sp.paused = false;
    let d = until(&mut w, &sp, &mut st, &mut now, |d| {
        d.status.phase == Some(Phase::Succeeded)
    });
    assert_eq!(d.status.nodes["w-1"].phase, NodePhase::Completed);
}

#[test]
fn a_failed_backup_blocks_the_control_plane() {
    let mut w = cluster_3cp_4w();
    let sp = full_spec();
    let r = BackupResult {
        operation_id: "op-1".into(),
        ok: false,
        message: Some("snapshot truncated: 4096 bytes".into()),
        ..BackupResult::default()
    };
    w.ann.get_mut("cp-1").unwrap().insert(
        labels::BACKUP_RESULT.into(),
        serde_json::to_string(&r).unwrap(),
    );
    let d = decide(&w, &sp, None, t0());
    assert_eq!(d.status.phase, Some(Phase::RequiresAttention));
    assert!(d.status.message.unwrap().contains("snapshot truncated"));
    assert!(
        !d.effects.iter().any(|e| matches!(e, Effect::Cordon { .. })),
        "{:?}",
        d.effects
    );
}

#[test]
fn an_admin_cordoned_node_is_never_uncordoned() {
    let mut w = cluster_3cp_4w();
    w.node_mut("w-4").unschedulable = true;
    let mut sp = spec("1.34.2");
    sp.stages = vec![stage(StageKind::Workers, "1.34.2", &[&["w-4"], &["w-1"]])];
    let (mut st, mut now) = (None, t0());
    until(&mut w, &sp, &mut st, &mut now, |d| {
        d.status.phase == Some(Phase::Succeeded)
    });
    assert!(
        w.cluster
            .nodes
            .iter()
            .find(|n| n.name == "w-4")
            .unwrap()
            .unschedulable
    );
    assert!(
        !w.cluster
            .nodes
            .iter()
            .find(|n| n.name == "w-1")
            .unwrap()
            .unschedulable
    );
}

#[test]
fn dry_run_touches_nothing() {
    let w = cluster_3cp_4w();
    let mut sp = full_spec();
    sp.dry_run = true;
    let d = decide(&w, &sp, None, t0());
    assert!(d.effects.is_empty());
    assert_eq!(d.status.phase, Some(Phase::Succeeded));
    assert!(
        d.status
            .nodes
            .values()
            .all(|n| n.phase == NodePhase::Skipped
                && n.message.as_deref().unwrap().starts_with("dry run"))
    );
}

#[test]
fn a_status_write_happens_only_when_something_changed() {
    let w = cluster_3cp_4w();
    let mut sp = spec("1.34.2");
    sp.paused = true;
    sp.stages = vec![stage(StageKind::Workers, "1.34.2", &[&["w-4"]])];
    let d1 = decide(&w, &sp, None, t0());
    let d2 = decide(&w, &sp, Some(&d1.status), t0() + CDuration::minutes(1));
    assert_eq!(
        d1.status, d2.status,
        "no clock value changes an idle status"
    );
}
