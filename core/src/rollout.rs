//! The rollout decision: given a DirectUpdate (spec and status), the observed
//! nodes, pods, PDBs and node annotations, and `now`, what happens next.
//!
//! [`next`] is pure. It returns the complete status to write and the effects to
//! perform first ([`Effect`]: cordon, drain, assign, uncordon, backup request …),
//! each idempotent, so a controller killed at any moment re-derives the same
//! decision from what is stored (status + nodes) and never upgrades a node twice:
//!
//! ```text
//! loop { d = next(input); perform(d.effects)?; write(d.status); wait(d.requeue_after | watch event) }
//! ```
//!
//! Order and safety rules, all enforced here:
//! - stages run in order (backup, control-plane hop by hop, canary, workers), batch by
//!   batch; a batch's nodes go together, the next batch starts when the batch is done;
//! - control-plane nodes strictly one at a time, whatever the stages say;
//! - a node starts draining only if no PDB covering its pods is already being drained
//!   beyond its budget on another node, and is assigned to its agent only once nothing
//!   evictable is left on it (at once, if the drain that starts it finds nothing);
//! - no control-plane node without a verified etcd backup when `spec.backup.etcd`;
//! - a failed node stops the operation (no new node starts; nodes in flight finish);
//! - paused: nodes in flight finish, no new node starts; phase Paused when idle;
//! - timeouts: `drain.timeout` (→ RequiresAttention naming the blocking PDB),
//!   `nodeTimeout` (→ the node fails), `operationTimeout` (→ the operation fails).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cupcake_api::KubeVersion;
use cupcake_api::common::Component;
use cupcake_api::crd::{
    BackupInfo, DirectUpdateSpec, DirectUpdateStatus, NodeStatus, Phase, Summary, UpgradePathStatus,
};
use cupcake_api::labels;
use cupcake_api::plan::{Stage, StageKind};
use cupcake_api::protocol::{AgentStatus, BackupResult, NodePhase, UpgradeMode};
use cupcake_api::snapshot::{ClusterSnapshot, Node, Pdb, Role};

pub mod preflight;

/// Default `nodeTimeout`: from cordon to uncordon.
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How often a waiting rollout looks again even without a watch event.
pub const POLL: Duration = Duration::from_secs(5);

/// Everything [`next`] reads.
#[derive(Debug, Clone, Copy)]
pub struct RolloutInput<'a> {
    /// The DirectUpdate's name (for messages and, without a uid, the operation id).
    pub name: &'a str,
    /// `metadata.uid`: the operation id of a new operation.
    pub uid: Option<&'a str>,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The DirectUpdate's annotations (`retry`, `paused`).
    pub annotations: &'a BTreeMap<String, String>,
    pub spec: &'a DirectUpdateSpec,
    /// The current status (`None` for a new DirectUpdate).
    pub status: Option<&'a DirectUpdateStatus>,
    /// The stages to run: `spec.stages`, or the plan the controller made for a DirectUpdate without them.
    pub stages: &'a [Stage],
    /// Nodes, pods and PDBs as they are now.
    pub cluster: &'a ClusterSnapshot,
    /// CUPCAKE's annotations of each node (`cupcake.ricardomolendijk.com/…`).
    pub node_annotations: &'a BTreeMap<String, BTreeMap<String, String>>,
    pub now: DateTime<Utc>,
}

/// Something the controller must do before writing the new status. Every effect
/// is idempotent: performing it twice is the same as once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Set `spec.unschedulable` and record, once, whether an admin had cordoned the node
    /// (annotation `admin-cordoned`: such a node is never uncordoned).
    Cordon { node: String, admin_cordoned: bool },
    /// Evict the node's evictable pods through the eviction API (one attempt each; PDB
    /// refusals are not errors, the next decision looks again).
    Drain { node: String },
    /// Write the assignment annotations with `status=pending` (unless the node already
    /// carries this exact assignment and its agent has not failed it: assigning a failed
    /// assignment again is the retry).
    Assign {
        node: String,
        operation_id: String,
        target: KubeVersion,
        components: Vec<Component>,
        mode: UpgradeMode,
        /// Only if the node's [`Effect::Drain`] just before it, in the same decision,
        /// found nothing left to evict on the node (its pod list, read after the
        /// cordon, has only DaemonSet, mirror and finished pods). A node starting with
        /// nothing to drain is then assigned at once instead of one decision later; if
        /// the drain found pods, nothing is written and the next decision assigns the
        /// node once they are gone. The node's status says `Draining` until then.
        only_if_drained: bool,
    },
    /// Clear the assignment annotations and, unless an admin had cordoned it, uncordon.
    Release { node: String, uncordon: bool },
    /// Ask the node's agent for an etcd snapshot (annotation `backup-request`).
    RequestBackup { node: String, operation_id: String },
    /// Remove the DirectUpdate's `retry` annotation once acted on.
    ClearRetry,
}

/// A user-visible transition, for a Kubernetes Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// CamelCase reason (`NodeUpgraded`, `DrainBlocked`, …).
    pub reason: &'static str,
    pub message: String,
    /// Warning (else Normal).
    pub warning: bool,
    /// The node it concerns, when it concerns one (also recorded on that Node).
    pub node: Option<String>,
}

impl Event {
    /// A node failed: a Warning on the DirectUpdate and on the node.
    fn node_failed(node: &str, message: String) -> Self {
        Self {
            reason: "NodeFailed",
            message,
            warning: true,
            node: Some(node.to_string()),
        }
    }
}

/// What [`next`] decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The complete status to write after the effects succeeded.
    pub status: DirectUpdateStatus,
    /// Effects to perform, in order, before writing `status`.
    pub effects: Vec<Effect>,
    /// Look again after this long even without a watch event (`None`: only on events).
    pub requeue_after: Option<Duration>,
    /// Transitions worth an Event.
    pub events: Vec<Event>,
}

/// One node's place in the plan: the stage version it must reach now.
struct Slot<'a> {
    stage: &'a Stage,
    stage_index: usize,
    node: &'a str,
}

/// The observed view of one node.
struct Seen<'a> {
    node: Option<&'a Node>,
    ann: Option<&'a BTreeMap<String, String>>,
}

impl<'a> Seen<'a> {
    fn get(&self, key: &str) -> Option<&'a str> {
        self.ann.and_then(|a| a.get(key)).map(String::as_str)
    }

    fn is_control_plane(&self) -> bool {
        self.node.is_some_and(|n| n.role == Role::ControlPlane)
    }

    /// kubelet, and on a control-plane node every static pod, at `v`; Ready.
    fn at_version(&self, v: &KubeVersion) -> Result<(), String> {
        let Some(n) = self.node else {
            return Err("the node no longer exists".to_string());
        };
        if &n.kubelet_version != v {
            return Err(format!("kubelet is {} (want {v})", n.kubelet_version));
        }
        if n.role == Role::ControlPlane {
            let cp = n.control_plane.clone().unwrap_or_default();
            for (what, got) in [
                ("kube-apiserver", &cp.apiserver),
                ("kube-controller-manager", &cp.controller_manager),
                ("kube-scheduler", &cp.scheduler),
            ] {
                match got {
                    Some(g) if g == v => {}
                    Some(g) => return Err(format!("{what} runs {g} (want {v})")),
                    None => return Err(format!("no {what} static pod found")),
                }
            }
        }
        if !n.ready {
            return Err("the node is not Ready".to_string());
        }
        Ok(())
    }

    fn agent_status(&self, op: &str, v: &KubeVersion) -> Option<AgentStatus> {
        if self.get(labels::OPERATION_ID) != Some(op) {
            return None;
        }
        if self
            .get(labels::TARGET_VERSION)
            .and_then(|t| t.parse::<KubeVersion>().ok())
            .as_ref()
            != Some(v)
        {
            return None;
        }
        self.get(labels::STATUS).and_then(|s| s.parse().ok())
    }
}

fn seen<'a>(input: &RolloutInput<'a>, name: &str) -> Seen<'a> {
    Seen {
        node: input.cluster.nodes.iter().find(|n| n.name == name),
        ann: input.node_annotations.get(name),
    }
}

fn elapsed(since: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Duration {
    since
        .and_then(|s| (now - s).to_std().ok())
        .unwrap_or_default()
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

/// PDBs whose selector matches an evictable pod on `node`, with the count of such pods.
pub(crate) fn pdbs_on<'a>(cluster: &'a ClusterSnapshot, node: &str) -> Vec<&'a Pdb> {
    let mut out: Vec<&Pdb> = Vec::new();
    for p in cluster
        .pods
        .iter()
        .filter(|p| p.node == node && p.evictable())
    {
        for b in &cluster.pdbs {
            if b.namespace == p.namespace
                && b.selector.as_ref().is_some_and(|s| s.matches(&p.labels))
                && !out.iter().any(|o| std::ptr::eq(*o, b))
            {
                out.push(b);
            }
        }
    }
    out
}

fn evictable_left(cluster: &ClusterSnapshot, node: &str) -> Vec<String> {
    cluster
        .pods
        .iter()
        .filter(|p| p.node == node && p.evictable())
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect()
}

pub(crate) fn pdb_key(p: &Pdb) -> String {
    format!("{}/{}", p.namespace, p.name)
}

/// The operation id of a DirectUpdate: its uid, else its name.
pub fn operation_id(uid: Option<&str>, name: &str) -> String {
    uid.unwrap_or(name).to_string()
}

/// The control-plane versions the operation visits, in order: `spec.upgradePath`, else
/// the control-plane stages' versions (a DirectUpdate the controller planned), else the
/// target alone.
pub fn hops(spec: &DirectUpdateSpec, stages: &[Stage]) -> Vec<KubeVersion> {
    let mut steps: Vec<KubeVersion> = spec.upgrade_path.clone();
    if steps.is_empty() {
        for s in stages.iter().filter(|s| s.kind == StageKind::ControlPlane) {
            if !steps.contains(&s.version) {
                steps.push(s.version.clone());
            }
        }
    }
    if steps.is_empty() {
        steps.push(spec.target_version.clone());
    }
    steps
}

/// The decision for one DirectUpdate. See the module docs.
pub fn next(input: RolloutInput<'_>) -> Decision {
    let now = input.now;
    let old = input.status.cloned().unwrap_or_default();
    let mut st = old.clone();
    let mut effects = Vec::new();
    let mut events = Vec::new();
    let mut requeue: Option<Duration> = None;
    let wake = |d: Duration, r: &mut Option<Duration>| {
        *r = Some(r.map_or(d, |x| x.min(d)));
    };

    // A finished operation stays finished (a retry reopens a failed one).
    let retry = input.annotations.get(labels::RETRY).cloned();
    if let Some(Phase::Succeeded | Phase::Cancelled) = old.phase {
        return Decision {
            status: old,
            effects: vec![],
            requeue_after: None,
            events: vec![],
        };
    }

    // Start.
    let op = match &old.operation_id {
        Some(op) => op.clone(),
        None => {
            let op = operation_id(input.uid, input.name);
            st.operation_id = Some(op.clone());
            st.phase = Some(Phase::InProgress);
            st.started_at = Some(now);
            let steps = hops(input.spec, input.stages);
            st.upgrade_path = Some(UpgradePathStatus {
                current_version: input
                    .cluster
                    .nodes
                    .iter()
                    .filter(|n| n.role == Role::ControlPlane)
                    .filter_map(|n| n.control_plane.as_ref()?.apiserver.clone())
                    .min(),
                target_version: Some(input.spec.target_version.clone()),
                total_steps: steps.len() as u32,
                steps,
                current_step: 0,
            });
            events.push(Event {
                reason: "Started",
                message: format!(
                    "upgrading to {} ({} stages)",
                    input.spec.target_version,
                    input.stages.len()
                ),
                warning: false,
                node: None,
            });
            op
        }
    };
    st.observed_generation = input.generation.or(st.observed_generation);

    // Dry run: walk and report, touch nothing.
    if input.spec.dry_run {
        for slot in slots(input.stages) {
            if slot.stage.kind == StageKind::Backup {
                continue;
            }
            st.nodes.insert(
                slot.node.to_string(),
                NodeStatus {
                    phase: NodePhase::Skipped,
                    message: Some(format!(
                        "dry run: would upgrade to {} in stage {} ({})",
                        slot.stage.version,
                        slot.stage_index + 1,
                        slot.stage.kind.as_str()
                    )),
                    target_version: Some(slot.stage.version.clone()),
                    ..NodeStatus::default()
                },
            );
        }
        st.phase = Some(Phase::Succeeded);
        st.message = Some("dry run: no node was touched".to_string());
        st.completed_at.get_or_insert(now);
        return finish(input, old, st, effects, None, events);
    }

    // Retry of a failed node.
    if let Some(node) = &retry {
        effects.push(Effect::ClearRetry);
        if let Some(ns) = st.nodes.get_mut(node)
            && ns.phase == NodePhase::Failed
        {
            ns.phase = NodePhase::Pending;
            ns.error = None;
            ns.message = Some("retry requested".to_string());
            ns.last_updated = Some(now);
            ns.started_at = None;
            if matches!(st.phase, Some(Phase::Failed)) {
                st.phase = Some(Phase::InProgress);
                st.completed_at = None;
            }
            events.push(Event {
                reason: "NodeRetry",
                message: format!("retrying node {node}"),
                warning: false,
                node: Some(node.clone()),
            });
        }
    }

    let paused = input.spec.paused
        || input
            .annotations
            .get(labels::PAUSED)
            .is_some_and(|v| v == "true");
    let node_timeout = input
        .spec
        .node_timeout
        .map(|d| d.0)
        .unwrap_or(DEFAULT_NODE_TIMEOUT);
    let drain = input.spec.drain.clone().unwrap_or_default();
    let op_timed_out = input
        .spec
        .operation_timeout
        .is_some_and(|t| elapsed(st.started_at, now) > t.0);
    let mut attention: Option<String> = None;

    // Advance the nodes already in flight (whatever the stage cursor says).
    let active: Vec<String> = st
        .nodes
        .iter()
        .filter(|(_, s)| s.phase.is_active())
        .map(|(n, _)| n.clone())
        .collect();
    for name in &active {
        let s = seen(&input, name);
        let mut ns = st.nodes[name].clone();
        let v = ns
            .target_version
            .clone()
            .unwrap_or_else(|| input.spec.target_version.clone());
        let mode = mode_for(input.stages, name, &v, &st);
        advance(
            name,
            &s,
            &mut ns,
            &Ctx {
                op: &op,
                v: &v,
                mode,
                components: &input.spec.components,
                node_timeout,
                drain_timeout: drain.timeout.0,
                cluster: input.cluster,
                now,
            },
            &mut effects,
            &mut events,
            &mut attention,
        );
        if ns.phase.is_active() {
            wake(POLL, &mut requeue);
        }
        st.nodes.insert(name.clone(), ns);
    }

    let any_failed = st.nodes.values().any(|s| s.phase == NodePhase::Failed);
    let still_active = st.nodes.values().any(|s| s.phase.is_active());

    // Find the current batch and start what may start.
    let mut all_done = true;
    let mut waiting: Option<String> = None;
    'stages: for (si, stage) in input.stages.iter().enumerate() {
        if stage.kind == StageKind::Backup {
            if !input.spec.backup.as_ref().is_some_and(|b| b.etcd) {
                continue;
            }
            if st.backup_info.as_ref().is_some_and(|b| b.verified) {
                continue;
            }
            all_done = false;
            let Some(node) = stage.nodes().next() else {
                continue;
            };
            let s = seen(&input, node);
            match s
                .get(labels::BACKUP_RESULT)
                .and_then(|r| serde_json::from_str::<BackupResult>(r).ok())
                .filter(|r| r.operation_id == op)
            {
                Some(r) if r.ok => {
                    st.backup_info = Some(BackupInfo {
                        etcd_snapshot: r.etcd_snapshot.clone(),
                        timestamp: r.timestamp,
                        location: r.location.clone(),
                        size_bytes: r.size_bytes,
                        sha256: r.sha256.clone(),
                        revision: r.revision,
                        node: Some(node.to_string()),
                        verified: true,
                    });
                    events.push(Event {
                        reason: "BackupVerified",
                        message: format!(
                            "etcd snapshot of {node} verified ({} bytes{})",
                            r.size_bytes,
                            r.location
                                .as_deref()
                                .map(|l| format!(" at {l}"))
                                .unwrap_or_default()
                        ),
                        warning: false,
                        node: None,
                    });
                    continue;
                }
                Some(r) => {
                    attention = Some(format!(
                        "etcd backup on {node} failed: {}; no control-plane node is upgraded without a verified backup",
                        r.message.as_deref().unwrap_or("no reason given")
                    ));
                    break 'stages;
                }
                None => {
                    if !paused && !any_failed && !op_timed_out {
                        effects.push(Effect::RequestBackup {
                            node: node.to_string(),
                            operation_id: op.clone(),
                        });
                        waiting = Some(format!("waiting for the etcd backup on {node}"));
                        wake(POLL, &mut requeue);
                    }
                    break 'stages;
                }
            }
        }
        for batch in &stage.batches {
            let pending: Vec<&String> = batch
                .iter()
                .filter(|n| !done_for(&st, n, &stage.version))
                .collect();
            if pending.is_empty() {
                continue;
            }
            all_done = false;
            for name in pending {
                let ns = st.nodes.get(name.as_str()).cloned();
                let fresh = ns.as_ref().is_none_or(|s| {
                    s.target_version.as_ref() != Some(&stage.version)
                        || s.phase == NodePhase::Pending
                });
                if !fresh {
                    continue; // active (advanced above) or failed
                }
                let s = seen(&input, name);
                // Already there (a half-done hop, or a node upgraded by hand): skip it.
                if s.at_version(&stage.version).is_ok() && s.get(labels::OPERATION_ID).is_none() {
                    st.nodes.insert(
                        name.clone(),
                        NodeStatus {
                            phase: NodePhase::Skipped,
                            message: Some(format!("already at {}", stage.version)),
                            target_version: Some(stage.version.clone()),
                            last_updated: Some(now),
                            ..NodeStatus::default()
                        },
                    );
                    continue;
                }
                if s.node.is_none() {
                    st.nodes.insert(
                        name.clone(),
                        failed(
                            ns.unwrap_or_default(),
                            &stage.version,
                            format!("node {name} does not exist"),
                            now,
                        ),
                    );
                    events.push(Event::node_failed(
                        name,
                        format!("node {name} does not exist"),
                    ));
                    continue;
                }
                if paused || any_failed || op_timed_out {
                    continue;
                }
                // Control-plane nodes strictly one at a time.
                if s.is_control_plane()
                    && let Some(other) = st.nodes.iter().find(|(n, x)| {
                        x.phase.is_active()
                            && n.as_str() != name.as_str()
                            && seen(&input, n).is_control_plane()
                    })
                {
                    waiting = Some(format!(
                        "control-plane node {name} waits for {} to finish",
                        other.0
                    ));
                    continue;
                }
                // Quorum: never take a control-plane node down while another one is NotReady.
                if s.is_control_plane()
                    && let Some(sick) = input
                        .cluster
                        .nodes
                        .iter()
                        .find(|n| n.role == Role::ControlPlane && n.name != *name && !n.ready)
                {
                    waiting = Some(format!(
                        "control-plane node {name} waits: {} is not Ready, and taking a second control-plane node down risks etcd quorum",
                        sick.name
                    ));
                    wake(POLL, &mut requeue);
                    continue;
                }
                // PDB budgets against nodes already draining.
                if let Some(p) = pdb_conflict(&input, &st, name) {
                    waiting = Some(format!(
                        "{name} waits: PodDisruptionBudget {p} has no budget for another node"
                    ));
                    wake(POLL, &mut requeue);
                    continue;
                }
                let admin_cordoned = match s.get(labels::ADMIN_CORDONED) {
                    Some(v) => v == "true",
                    None => s.node.is_some_and(|n| n.unschedulable),
                };
                effects.push(Effect::Cordon {
                    node: name.clone(),
                    admin_cordoned,
                });
                effects.push(Effect::Drain { node: name.clone() });
                effects.push(Effect::Assign {
                    node: name.clone(),
                    operation_id: op.clone(),
                    target: stage.version.clone(),
                    components: input.spec.components.clone(),
                    mode: mode_for(input.stages, name, &stage.version, &st),
                    only_if_drained: true,
                });
                st.nodes.insert(
                    name.clone(),
                    NodeStatus {
                        phase: NodePhase::Draining,
                        message: Some(format!(
                            "draining for {} (stage {}, {})",
                            stage.version,
                            si + 1,
                            stage.kind.as_str()
                        )),
                        target_version: Some(stage.version.clone()),
                        started_at: Some(now),
                        last_updated: Some(now),
                        ..NodeStatus::default()
                    },
                );
                events.push(Event {
                    reason: "NodeStarted",
                    message: format!("draining {name} for {}", stage.version),
                    warning: false,
                    node: Some(name.clone()),
                });
                wake(POLL, &mut requeue);
            }
            if batch.iter().all(|n| done_for(&st, n, &stage.version)) {
                continue; // every node of the batch was skipped: go on to the next
            }
            break 'stages;
        }
    }

    // Operation phase.
    let still_active = still_active || st.nodes.values().any(|s| s.phase.is_active());
    let any_failed = st.nodes.values().any(|s| s.phase == NodePhase::Failed);
    if all_done && !still_active && !any_failed {
        st.phase = Some(Phase::Succeeded);
        st.message = Some(format!("every node is at {}", input.spec.target_version));
        st.completed_at.get_or_insert(now);
        if old.phase != Some(Phase::Succeeded) {
            events.push(Event {
                reason: "Succeeded",
                message: format!("upgrade to {} succeeded", input.spec.target_version),
                warning: false,
                node: None,
            });
        }
    } else if any_failed {
        let first = st
            .nodes
            .iter()
            .find(|(_, s)| s.phase == NodePhase::Failed)
            .map(|(n, s)| {
                format!(
                    "node {n} failed: {}",
                    s.error.as_deref().unwrap_or("unknown")
                )
            })
            .unwrap_or_default();
        st.phase = Some(Phase::Failed);
        st.message = Some(format!(
            "{first}; no new node starts (annotate {}=<node> to retry it)",
            labels::RETRY
        ));
        if !still_active {
            st.completed_at.get_or_insert(now);
        }
    } else if op_timed_out {
        st.phase = Some(Phase::Failed);
        st.message = Some(format!(
            "operation timed out after {}",
            human(
                input
                    .spec
                    .operation_timeout
                    .map(|d| d.0)
                    .unwrap_or_default()
            )
        ));
        if old.phase != Some(Phase::Failed) {
            events.push(Event {
                reason: "OperationTimedOut",
                message: st.message.clone().unwrap_or_default(),
                warning: true,
                node: None,
            });
        }
    } else if let Some(a) = attention {
        if old.phase != Some(Phase::RequiresAttention) || old.message.as_ref() != Some(&a) {
            events.push(Event {
                reason: "RequiresAttention",
                message: a.clone(),
                warning: true,
                node: None,
            });
        }
        st.phase = Some(Phase::RequiresAttention);
        st.message = Some(a);
        wake(POLL, &mut requeue);
    } else if paused {
        if still_active {
            st.phase = Some(Phase::InProgress);
            st.message = Some("paused: the nodes in flight finish, no new node starts".into());
        } else {
            st.phase = Some(Phase::Paused);
            st.message = Some("paused (spec.paused): no node is being upgraded".into());
            if old.phase != Some(Phase::Paused) {
                events.push(Event {
                    reason: "Paused",
                    message: "paused".into(),
                    warning: false,
                    node: None,
                });
            }
        }
    } else {
        st.phase = Some(Phase::InProgress);
        st.message = Some(waiting.unwrap_or_else(|| {
            let active: Vec<&String> = st
                .nodes
                .iter()
                .filter(|(_, s)| s.phase.is_active())
                .map(|(n, _)| n)
                .collect();
            let mut active = active;
            active.sort_by(|a, b| crate::plan::natural_cmp(a, b));
            format!("upgrading {}", crate::plan::list_names(&active))
        }));
        if requeue.is_none() {
            wake(POLL, &mut requeue);
        }
    }
    finish(input, old, st, effects, requeue, events)
}

/// Summary, progress, current hop, lastUpdated (only when something changed).
fn finish(
    input: RolloutInput<'_>,
    old: DirectUpdateStatus,
    mut st: DirectUpdateStatus,
    effects: Vec<Effect>,
    requeue_after: Option<Duration>,
    events: Vec<Event>,
) -> Decision {
    // Each node's last stage version: it is done when it is done for that.
    let mut last: BTreeMap<&str, &KubeVersion> = BTreeMap::new();
    for slot in slots(input.stages) {
        if slot.stage.kind != StageKind::Backup {
            last.insert(slot.node, &slot.stage.version);
        }
    }
    let mut sum = Summary {
        total: last.len() as u32,
        ..Summary::default()
    };
    for (n, v) in &last {
        match st.nodes.get(*n) {
            Some(s) if s.phase == NodePhase::Failed => sum.failed += 1,
            Some(s) if s.phase.is_active() => sum.upgrading += 1,
            _ if done_for(&st, n, v) => sum.completed += 1,
            _ => sum.pending += 1,
        }
    }
    st.summary = Some(sum);
    st.progress = Some(format!("{}/{}", sum.completed, sum.total));
    let cp_done = input
        .stages
        .iter()
        .filter(|s| s.kind == StageKind::ControlPlane)
        .filter(|s| s.nodes().all(|n| done_for(&st, n, &s.version)))
        .count();
    if let Some(up) = st.upgrade_path.as_mut() {
        up.current_step = (cp_done as u32).min(up.total_steps);
    }
    if st != old {
        st.last_updated = Some(input.now);
    }
    Decision {
        status: st,
        effects,
        requeue_after,
        events,
    }
}

/// Every (stage, node) in plan order.
fn slots(stages: &[Stage]) -> impl Iterator<Item = Slot<'_>> {
    stages.iter().enumerate().flat_map(|(i, s)| {
        s.nodes().map(move |n| Slot {
            stage: s,
            stage_index: i,
            node: n.as_str(),
        })
    })
}

/// The node finished the stage that moves it to `v` (or a later one).
fn done_for(st: &DirectUpdateStatus, node: &str, v: &KubeVersion) -> bool {
    st.nodes
        .get(node)
        .is_some_and(|s| match s.target_version.as_ref() {
            // Moving to a later version: it finished this one before it started that.
            Some(t) if t > v => true,
            Some(t) if t == v => matches!(s.phase, NodePhase::Completed | NodePhase::Skipped),
            _ => false,
        })
}

/// `apply` for the first control-plane node of a hop, `node` for every other.
fn mode_for(
    stages: &[Stage],
    node: &str,
    v: &KubeVersion,
    _st: &DirectUpdateStatus,
) -> UpgradeMode {
    let first = stages
        .iter()
        .find(|s| s.kind == StageKind::ControlPlane && &s.version == v)
        .and_then(|s| s.nodes().next());
    if first.map(String::as_str) == Some(node) {
        UpgradeMode::Apply
    } else {
        UpgradeMode::Node
    }
}

/// A PDB covering `node`'s pods that is already drained to its budget by other nodes.
fn pdb_conflict(input: &RolloutInput<'_>, st: &DirectUpdateStatus, node: &str) -> Option<String> {
    let draining: Vec<&String> = st
        .nodes
        .iter()
        .filter(|(n, s)| s.phase == NodePhase::Draining && n.as_str() != node)
        .map(|(n, _)| n)
        .collect();
    if draining.is_empty() {
        return None;
    }
    for p in pdbs_on(input.cluster, node) {
        let key = pdb_key(p);
        let busy = draining
            .iter()
            .filter(|d| pdbs_on(input.cluster, d).iter().any(|q| pdb_key(q) == key))
            .count() as i64;
        let allowed = p.status.map_or(0, |s| s.disruptions_allowed);
        if busy > 0 && busy >= allowed {
            return Some(key);
        }
    }
    None
}

struct Ctx<'a> {
    op: &'a str,
    v: &'a KubeVersion,
    mode: UpgradeMode,
    components: &'a [Component],
    node_timeout: Duration,
    drain_timeout: Duration,
    cluster: &'a ClusterSnapshot,
    now: DateTime<Utc>,
}

fn failed(mut ns: NodeStatus, v: &KubeVersion, error: String, now: DateTime<Utc>) -> NodeStatus {
    ns.phase = NodePhase::Failed;
    ns.target_version = Some(v.clone());
    ns.message = Some(error.clone());
    ns.error = Some(error);
    ns.last_updated = Some(now);
    ns
}

/// The node carries no assignment and runs `v`: it was upgraded and released already.
/// Assigning it again would run the agent twice.
fn upgraded_and_released(s: &Seen<'_>, v: &KubeVersion) -> bool {
    s.get(labels::OPERATION_ID).is_none() && s.at_version(v).is_ok()
}

/// Move one in-flight node forward as far as it can go without waiting.
fn advance(
    name: &str,
    s: &Seen<'_>,
    ns: &mut NodeStatus,
    c: &Ctx<'_>,
    effects: &mut Vec<Effect>,
    events: &mut Vec<Event>,
    attention: &mut Option<String>,
) {
    let now = c.now;
    let set = |ns: &mut NodeStatus, p: NodePhase, msg: String| {
        ns.phase = p;
        ns.message = Some(msg);
        ns.last_updated = Some(now);
    };
    for _ in 0..4 {
        if ns.phase.timeout() == cupcake_api::protocol::PhaseTimeout::Node
            && elapsed(ns.started_at, now) > c.node_timeout
        {
            let e = format!(
                "timed out after {} in {} (nodeTimeout)",
                human(c.node_timeout),
                ns.phase
            );
            *ns = failed(ns.clone(), c.v, e.clone(), now);
            events.push(Event::node_failed(name, format!("{name}: {e}")));
            return;
        }
        if s.node.is_none() {
            *ns = failed(ns.clone(), c.v, format!("node {name} disappeared"), now);
            events.push(Event::node_failed(
                name,
                format!("node {name} disappeared during its upgrade"),
            ));
            return;
        }
        match ns.phase {
            NodePhase::Draining => {
                let left = evictable_left(c.cluster, name);
                if left.is_empty() && upgraded_and_released(s, c.v) {
                    // Everything after the drain already happened (lost status writes).
                    set(
                        ns,
                        NodePhase::Verifying,
                        "already upgraded; verifying".into(),
                    );
                    continue;
                }
                if left.is_empty() {
                    effects.push(Effect::Assign {
                        node: name.to_string(),
                        operation_id: c.op.to_string(),
                        target: c.v.clone(),
                        components: c.components.to_vec(),
                        mode: c.mode,
                        only_if_drained: false,
                    });
                    set(
                        ns,
                        NodePhase::Upgrading,
                        format!("assigned to the agent ({} {})", c.mode, c.v),
                    );
                    return;
                }
                effects.push(Effect::Drain {
                    node: name.to_string(),
                });
                let waited = elapsed(ns.last_updated, now);
                if waited > c.drain_timeout {
                    let blocking: Vec<String> = pdbs_on(c.cluster, name)
                        .iter()
                        .filter(|p| p.status.is_none_or(|s| s.disruptions_allowed <= 0))
                        .map(|p| pdb_key(p))
                        .collect();
                    let why = if blocking.is_empty() {
                        format!("pods still running: {}", crate::plan::list_names(&left))
                    } else {
                        format!(
                            "PodDisruptionBudget {} allows no disruption",
                            blocking.join(", ")
                        )
                    };
                    let msg = format!(
                        "drain of {name} blocked for {} (drain.timeout): {why}",
                        human(waited)
                    );
                    ns.message = Some(msg.clone());
                    attention.get_or_insert(msg);
                } else {
                    ns.message = Some(format!("draining: {} pod(s) left", left.len()));
                }
                return;
            }
            NodePhase::Upgrading => {
                if let Some(step) = s.get(labels::STEP)
                    && s.get(labels::OPERATION_ID) == Some(c.op)
                {
                    ns.last_step = Some(step.to_string());
                }
                match s.agent_status(c.op, c.v) {
                    Some(AgentStatus::Completed) => {
                        set(
                            ns,
                            NodePhase::Verifying,
                            "the agent finished; verifying".into(),
                        );
                    }
                    Some(AgentStatus::Failed) => {
                        let why = s
                            .get(labels::MESSAGE)
                            .unwrap_or("the agent reported failure without a message");
                        let e = format!("agent failed: {why}");
                        *ns = failed(ns.clone(), c.v, e.clone(), now);
                        events.push(Event::node_failed(name, format!("{name}: {e}")));
                        return;
                    }
                    Some(AgentStatus::Pending | AgentStatus::InProgress) => return,
                    None if upgraded_and_released(s, c.v) => {
                        // Released after the upgrade, but that status write was lost.
                        set(
                            ns,
                            NodePhase::Verifying,
                            "already upgraded; verifying".into(),
                        );
                    }
                    None => {
                        // Not (or no longer) carrying our assignment: write it again.
                        effects.push(Effect::Assign {
                            node: name.to_string(),
                            operation_id: c.op.to_string(),
                            target: c.v.clone(),
                            components: c.components.to_vec(),
                            mode: c.mode,
                            only_if_drained: false,
                        });
                        return;
                    }
                }
            }
            NodePhase::Verifying => match s.at_version(c.v) {
                Ok(()) => {
                    let uncordon = s.get(labels::ADMIN_CORDONED) != Some("true");
                    effects.push(Effect::Release {
                        node: name.to_string(),
                        uncordon,
                    });
                    set(
                        ns,
                        NodePhase::Uncordoning,
                        if uncordon {
                            "verified; uncordoning".into()
                        } else {
                            "verified; left cordoned (an admin had cordoned it)".into()
                        },
                    );
                }
                Err(why) => {
                    ns.message = Some(format!("verifying: {why}"));
                    return;
                }
            },
            NodePhase::Uncordoning => {
                let released = s.get(labels::OPERATION_ID).is_none()
                    && (s.node.is_some_and(|n| !n.unschedulable)
                        || s.get(labels::ADMIN_CORDONED).is_none());
                if !released {
                    let uncordon = s.get(labels::ADMIN_CORDONED) != Some("true");
                    if !effects
                        .iter()
                        .any(|e| matches!(e, Effect::Release { node, .. } if node == name))
                    {
                        effects.push(Effect::Release {
                            node: name.to_string(),
                            uncordon,
                        });
                    }
                }
                set(ns, NodePhase::Completed, format!("at {}", c.v));
                ns.completed_at = Some(now);
                events.push(Event {
                    reason: "NodeUpgraded",
                    message: format!("{name} is at {}", c.v),
                    warning: false,
                    node: Some(name.to_string()),
                });
                return;
            }
            NodePhase::Pending | NodePhase::Completed | NodePhase::Failed | NodePhase::Skipped => {
                return;
            }
        }
    }
}

/// Names of nodes that carry an assignment of `operation_id` but have not started
/// (what cancelling must clear).
pub fn unstarted_assignments(
    status: &DirectUpdateStatus,
    node_annotations: &BTreeMap<String, BTreeMap<String, String>>,
) -> BTreeSet<String> {
    let Some(op) = &status.operation_id else {
        return BTreeSet::new();
    };
    node_annotations
        .iter()
        .filter(|(_, a)| a.get(labels::OPERATION_ID) == Some(op))
        .filter(|(_, a)| {
            a.get(labels::STATUS).map(String::as_str) == Some(AgentStatus::Pending.as_str())
        })
        .map(|(n, _)| n.clone())
        .collect()
}
