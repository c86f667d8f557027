//! The rollout controller: drives DirectUpdates node by node.
//!
//! A thin loop around [`cupcake_core::rollout::next`]: reflectors keep Nodes,
//! Pods, PDBs and DirectUpdates in memory and wake the loop on every change; each
//! round picks the one DirectUpdate that may run (one at a time per cluster — the
//! oldest started, else the oldest created), asks the core for the next decision,
//! performs its effects and writes the status with server-side apply under one
//! field manager, guarded by the object's `resourceVersion` (a second fence after
//! the Lease: a stale leader's write is refused). Everything it knows lives in the
//! DirectUpdate's status and the nodes' annotations, so a restarted controller
//! resumes exactly where the last one stopped.
//!
//! DirectUpdates written by hand without `spec.stages` (the original CUPCAKE's
//! style) are planned here with the core planner from the live cluster; the plan
//! is recorded in `status.stages` and never recomputed.

mod effects;
mod preflight;
pub mod slim;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use cupcake_api::crd::{DirectUpdate, DirectUpdateStatus, Phase};
use cupcake_api::plan::{Severity, Stage};
use cupcake_api::protocol::{NodePhase, compare_resource_versions};
use cupcake_api::snapshot::ClusterSnapshot;
use cupcake_core::rollout::{self, Decision, RolloutInput};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event as KEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use slim::CachedNode;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::observe;

pub use effects::{Clients, eviction_refusal};

/// The field manager of every status write.
pub const FIELD_MANAGER: &str = "cupcake-rollout";
/// Finalizer that lets a deleted DirectUpdate cancel cleanly (clear unstarted assignments).
pub const FINALIZER: &str = "cupcake.ricardomolendijk.com/rollout";

/// Prometheus metrics of the rollout controller.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub reconciles: prometheus::IntCounter,
    pub reconcile_errors: prometheus::IntCounter,
    pub reconcile_seconds: prometheus::Histogram,
    pub directupdates: prometheus::IntGaugeVec,
    pub nodes: prometheus::IntGaugeVec,
    pub evictions: prometheus::IntCounter,
    pub evictions_blocked: prometheus::IntCounter,
    pub node_seconds: prometheus::HistogramVec,
    pub phase_seconds: prometheus::HistogramVec,
}

impl Metrics {
    /// Register the metrics in `registry`.
    pub fn new(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        use prometheus::{HistogramOpts, IntCounter, IntGaugeVec, Opts};
        let m = Self {
            reconciles: IntCounter::new("cupcake_reconcile_total", "Rollout reconcile rounds")?,
            reconcile_errors: IntCounter::new(
                "cupcake_reconcile_errors_total",
                "Rollout reconcile rounds that failed (an API call failed; retried)",
            )?,
            reconcile_seconds: prometheus::Histogram::with_opts(
                HistogramOpts::new(
                    "cupcake_reconcile_duration_seconds",
                    "Duration of one rollout reconcile round",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ]),
            )?,
            directupdates: IntGaugeVec::new(
                Opts::new("cupcake_directupdates", "DirectUpdates by phase"),
                &["phase"],
            )?,
            nodes: IntGaugeVec::new(
                Opts::new(
                    "cupcake_nodes",
                    "Nodes of the running DirectUpdate by node phase",
                ),
                &["phase"],
            )?,
            evictions: IntCounter::new("cupcake_drain_evictions_total", "Pods evicted by drains")?,
            evictions_blocked: IntCounter::new(
                "cupcake_drain_evictions_blocked_total",
                "Evictions refused by a PodDisruptionBudget (429)",
            )?,
            node_seconds: prometheus::HistogramVec::new(
                HistogramOpts::new(
                    "cupcake_node_upgrade_duration_seconds",
                    "Time from a node's cordon to its completion or failure",
                )
                .buckets(vec![
                    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
                ]),
                &["result"],
            )?,
            phase_seconds: prometheus::HistogramVec::new(
                HistogramOpts::new(
                    "cupcake_node_phase_duration_seconds",
                    "Time a node spent in a phase (Draining, Upgrading, Verifying, Uncordoning) before leaving it",
                )
                .buckets(vec![0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0]),
                &["phase"],
            )?,
        };
        registry.register(Box::new(m.reconciles.clone()))?;
        registry.register(Box::new(m.phase_seconds.clone()))?;
        registry.register(Box::new(m.reconcile_errors.clone()))?;
        registry.register(Box::new(m.reconcile_seconds.clone()))?;
        registry.register(Box::new(m.directupdates.clone()))?;
        registry.register(Box::new(m.nodes.clone()))?;
        registry.register(Box::new(m.evictions.clone()))?;
        registry.register(Box::new(m.evictions_blocked.clone()))?;
        registry.register(Box::new(m.node_seconds.clone()))?;
        Ok(m)
    }
}

/// How many nodes' effects run at once.
const EFFECT_CONCURRENCY: usize = 64;

/// The node an effect acts on ("" for the DirectUpdate itself).
fn effect_node(e: &rollout::Effect) -> &str {
    use rollout::Effect::*;
    match e {
        Cordon { node, .. }
        | Drain { node }
        | Assign { node, .. }
        | Release { node, .. }
        | RequestBackup { node, .. } => node,
        ClearRetry => "",
    }
}

/// What the controller needs: clients, the event recorder, metrics.
#[derive(Clone)]
pub struct Context {
    pub clients: Clients,
    pub recorder: Recorder,
    pub metrics: Metrics,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

impl Context {
    /// Clients from one client configuration (evictions without retries), a recorder
    /// reporting as `cupcake` / `identity`.
    pub fn new(
        config: kube::Config,
        identity: &str,
        metrics: Metrics,
    ) -> Result<Self, kube::Error> {
        let client = Client::try_from(config.clone())?;
        let mut no_retry = config;
        no_retry.default_retry = false;
        let evict = Client::try_from(no_retry)?;
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "cupcake".into(),
                instance: Some(identity.to_string()),
            },
        );
        Ok(Self {
            clients: Clients { client, evict },
            recorder,
            metrics,
        })
    }
}

struct Stores {
    dus: Store<DirectUpdate>,
    /// Nodes, Pods and PDBs: what the planner reads (the GitOps loop and the
    /// schedule controllers plan from them too, through `observe::Observer`).
    cluster: observe::Cached,
}

/// The cluster as the planner and the rollout decision read it, from the stores.
fn cluster_snapshot(s: &Stores, nodes: &[Arc<CachedNode>]) -> Result<ClusterSnapshot, String> {
    s.cluster.snapshot_with(nodes).map_err(|e| e.to_string())
}

fn node_annotations(nodes: &[Arc<CachedNode>]) -> BTreeMap<String, BTreeMap<String, String>> {
    nodes
        .iter()
        .map(|n| {
            let a = n
                .annotations()
                .iter()
                .filter(|(k, _)| k.starts_with("cupcake.ricardomolendijk.com/"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (n.name_any(), a)
        })
        .collect()
}

/// Whether a DirectUpdate is done (Succeeded, Cancelled, or Failed with nothing in
/// flight and no retry asked for): it no longer holds the cluster.
pub fn terminal(du: &DirectUpdate) -> bool {
    let st = du.status.as_ref();
    match st.and_then(|s| s.phase) {
        Some(Phase::Succeeded | Phase::Cancelled) => true,
        // Failed is final unless nodes are still in flight or a retry is asked for.
        Some(Phase::Failed) => {
            !st.is_some_and(|s| s.nodes.values().any(|n| n.phase.is_active()))
                && !du.annotations().contains_key(cupcake_api::labels::RETRY)
        }
        _ => false,
    }
}

/// The DirectUpdate that may run now: one already started, else the oldest created.
fn pick(dus: &[Arc<DirectUpdate>]) -> Option<Arc<DirectUpdate>> {
    let mut open: Vec<&Arc<DirectUpdate>> = dus.iter().filter(|d| !terminal(d)).collect();
    open.sort_by_key(|d| {
        (
            d.status
                .as_ref()
                .and_then(|s| s.operation_id.as_ref())
                .is_none(),
            d.metadata.creation_timestamp.clone().map(|t| t.0),
            d.name_any(),
        )
    });
    open.first().map(|d| (*d).clone())
}

/// Plan a DirectUpdate written without stages, like the original CUPCAKE's.
fn plan_seed_style(du: &DirectUpdate, cluster: &ClusterSnapshot) -> Result<Vec<Stage>, String> {
    let spec = crate::schedules::cluster_spec_of(&du.spec);
    let outcome = cupcake_core::plan::plan(cupcake_core::plan::PlanInput {
        spec: &spec,
        catalog: None,
        snapshot: cluster,
    });
    if let Some(f) = outcome
        .findings
        .iter()
        .find(|f| f.severity == Severity::Deny)
    {
        return Err(format!(
            "cannot plan this DirectUpdate: {} ({})",
            f.message, f.rule
        ));
    }
    Ok(outcome.plan.stages)
}

/// The standard conditions for a status: `Ready` (Succeeded), `Progressing`
/// (nodes being upgraded; False with the reason while it waits, is paused or
/// ended) and `Degraded` (Failed, RequiresAttention). A condition keeps its
/// `lastTransitionTime` while its status stays the same.
pub fn conditions(
    st: &DirectUpdateStatus,
    generation: Option<i64>,
    now: chrono::DateTime<Utc>,
) -> Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    let phase = st.phase.unwrap_or_default();
    let msg = st.message.clone().unwrap_or_default();
    let waiting = phase == Phase::Pending && msg.starts_with("waiting:");
    let (progressing, p_reason) = match phase {
        Phase::Pending if waiting => ("False", "WaitingForDirectUpdate"),
        Phase::Pending => ("True", "Pending"),
        Phase::InProgress => ("True", "InProgress"),
        Phase::Paused => ("False", "Paused"),
        Phase::Succeeded => ("False", "Succeeded"),
        Phase::Failed => ("False", "Failed"),
        Phase::RequiresAttention => ("False", "RequiresAttention"),
        Phase::Cancelled => ("False", "Cancelled"),
    };
    let ready = if phase == Phase::Succeeded {
        "True"
    } else {
        "False"
    };
    let degraded = if matches!(phase, Phase::Failed | Phase::RequiresAttention) {
        "True"
    } else {
        "False"
    };
    let phase_name = format!("{phase:?}");
    let ts = k8s_openapi::jiff::Timestamp::from_second(now.timestamp())
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    [
        ("Ready", ready, phase_name.as_str()),
        ("Progressing", progressing, p_reason),
        ("Degraded", degraded, phase_name.as_str()),
    ]
    .into_iter()
    .map(|(type_, status, reason)| {
        let old = st.conditions.iter().find(|c| c.type_ == type_);
        let last = old
            .filter(|c| c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(ts));
        Condition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: msg.clone(),
            last_transition_time: last,
            observed_generation: generation,
        }
    })
    .collect()
}

async fn write_status(
    ctx: &Context,
    du: &DirectUpdate,
    status: &DirectUpdateStatus,
) -> Result<DirectUpdate, kube::Error> {
    let mut status = status.clone();
    status.conditions = conditions(&status, du.metadata.generation, Utc::now());
    status.observed_generation = du.metadata.generation;
    let status = &status;
    let api = Api::<DirectUpdate>::all(ctx.clients.client.clone());
    let patch = serde_json::json!({
        "apiVersion": "cupcake.ricardomolendijk.com/v1",
        "kind": "DirectUpdate",
        "metadata": {"name": du.name_any(), "resourceVersion": du.resource_version()},
        "status": status,
    });
    api.patch_status(
        &du.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
}

/// `obj` as the stores keep it.
fn slimmed<K>(mut obj: K, slim: fn(&mut K)) -> Arc<K> {
    slim(&mut obj);
    Arc::new(obj)
}

/// Our own latest writes: the watch may deliver them after the next round starts,
/// and deciding from a stale status would repeat effects and lose the write race.
/// Each keeps every version our writes replaced since the store last caught up: two
/// writes in a row can both be ahead of the watch.
type Written<K> = BTreeMap<String, (BTreeSet<String>, Arc<K>)>;

/// Remember `new`, our write over `old` (the copy the round decided from).
fn remember<K: Resource>(written: &mut Written<K>, old: &K, new: Arc<K>) {
    let name = old.name_any();
    let mut replaced = written.remove(&name).map(|(r, _)| r).unwrap_or_default();
    replaced.extend(old.resource_version());
    written.insert(name, (replaced, new));
}

/// The newer of our last copy of a node and the watch's, by resourceVersion (comparable
/// since Kubernetes 1.35); ours when they cannot be compared. A write conditional on the
/// copy's resourceVersion is refused anyway if it was not the latest, and read again.
fn newest(ours: Option<CachedNode>, watched: Option<Arc<CachedNode>>) -> Option<CachedNode> {
    let rv = |n: &CachedNode| n.metadata.resource_version.clone().unwrap_or_default();
    match (ours, watched) {
        (Some(o), Some(w))
            if compare_resource_versions(&rv(&w), &rv(&o)) == Some(std::cmp::Ordering::Greater) =>
        {
            Some((*w).clone())
        }
        (None, Some(w)) => Some((*w).clone()),
        (ours, _) => ours,
    }
}

/// Our latest writes to DirectUpdates and Nodes.
#[derive(Default)]
struct Mine {
    dus: Written<DirectUpdate>,
    nodes: Written<CachedNode>,
    /// When the running DirectUpdate's status was last written.
    status_written: Option<Instant>,
    /// A DirectUpdate (name, resourceVersion) whose decided status is in `dus` but
    /// not written yet, and since when (see `round`).
    owed: Option<(String, Option<String>, Instant)>,
    /// The preflight run in progress (see `preflight.rs`).
    preflight: Option<preflight::Attempt>,
}

/// How often a status that changed only in the agents' progress (`lastStep`) is
/// written (the node's `step` annotation is the live one). Fifty agents report a step
/// a second between them; each write sends the whole status (a thousand nodes, some
/// 300 kB, and the API server merges it field by field), and while one is under way a
/// completed node waits to be verified and released.
const PROGRESS_WRITES: Duration = Duration::from_secs(5);

/// How long decisions that only move nodes may wait to be written together.
const NODE_WRITES: Duration = Duration::from_millis(250);

/// `new` differs from `old` only in the nodes' `lastStep` (and so `lastUpdated`).
fn only_progress(old: &DirectUpdateStatus, new: &DirectUpdateStatus) -> bool {
    let mut new = new.clone();
    new.last_updated = old.last_updated;
    for (name, ns) in &mut new.nodes {
        if let Some(o) = old.nodes.get(name) {
            ns.last_step.clone_from(&o.last_step);
        }
    }
    &new == old
}

/// The freshest copy of each object: the store's, unless it is still a version our
/// writes replaced.
fn freshest<K: Resource + Clone>(dus: Vec<Arc<K>>, written: &mut Written<K>) -> Vec<Arc<K>> {
    let names: BTreeSet<String> = dus.iter().map(|d| d.name_any()).collect();
    written.retain(|n, _| names.contains(n));
    dus.into_iter()
        .map(|d| match written.get(&d.name_any()) {
            Some((replaced, mine))
                if d.resource_version().is_some_and(|v| replaced.contains(&v)) =>
            {
                mine.clone()
            }
            _ => {
                written.remove(&d.name_any());
                d
            }
        })
        .collect()
}

/// Where a decision's Events are recorded: each node's on its Node (`None`: the
/// DirectUpdate). On the DirectUpdate, the routine node Events of one reason are one
/// Event per round ("NodeUpgraded: 50 nodes: w-1 is at 1.34.2; …"): a batch of fifty
/// starting or finishing together was a hundred Event writes, at the moment the API
/// server is busiest with the batch itself. Warnings (a node failed) stay one each.
fn event_targets(events: &[rollout::Event]) -> Vec<(Option<String>, rollout::Event)> {
    let mut out = Vec::new();
    let mut routine: BTreeMap<&'static str, Vec<&rollout::Event>> = BTreeMap::new();
    for e in events {
        match &e.node {
            Some(n) => {
                out.push((Some(n.clone()), e.clone()));
                if e.warning {
                    out.push((None, e.clone()));
                } else {
                    routine.entry(e.reason).or_default().push(e);
                }
            }
            None => out.push((None, e.clone())),
        }
    }
    for (reason, es) in routine {
        let message = match es.as_slice() {
            [one] => one.message.clone(),
            many => {
                let mut m = format!("{} nodes: ", many.len());
                for (i, e) in many.iter().enumerate() {
                    if m.len() + e.message.len() > 900 {
                        m.push_str(&format!("… and {} more", many.len() - i));
                        break;
                    }
                    m.push_str(&e.message);
                    if i + 1 < many.len() {
                        m.push_str("; ");
                    }
                }
                m
            }
        };
        out.push((
            None,
            rollout::Event {
                reason,
                message,
                warning: false,
                node: None,
            },
        ));
    }
    out
}

/// Record the decision's Events on the DirectUpdate (and the Node they concern), in the
/// background: Events are best effort and must not hold up the next round.
fn publish(ctx: &Context, du: &DirectUpdate, d: &Decision) {
    if d.events.is_empty() {
        return;
    }
    let recorder = ctx.recorder.clone();
    let du_ref = du.object_ref(&());
    let events = d.events.clone();
    tokio::spawn(async move {
        let mk = |e: &rollout::Event| KEvent {
            type_: if e.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: e.reason.to_string(),
            note: Some(e.message.chars().take(1000).collect()),
            action: "Rollout".into(),
            secondary: None,
        };
        let sends = event_targets(&events).into_iter().map(|(node, e)| {
            let target = match node {
                None => du_ref.clone(),
                Some(n) => ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Node".into()),
                    name: Some(n.clone()),
                    uid: Some(n),
                    ..ObjectReference::default()
                },
            };
            (mk(&e), target)
        });
        futures::stream::iter(sends)
            .for_each_concurrent(2, |(ev, r)| {
                let recorder = recorder.clone();
                async move {
                    if let Err(err) = recorder.publish(&ev, &r).await {
                        warn!(error = %err, "recording an event");
                    }
                }
            })
            .await;
    });
}

/// One round: decide and act for the DirectUpdate that may run. Returns when to look again.
#[tracing::instrument(name = "rollout_round", skip_all)]
async fn round(ctx: &Context, s: &Stores, mine: &mut Mine) -> Result<Option<Duration>, String> {
    let dus = freshest(s.dus.state(), &mut mine.dus);
    let nodes = freshest(s.cluster.nodes.state(), &mut mine.nodes);
    for phase in [
        "Pending",
        "InProgress",
        "Succeeded",
        "Failed",
        "RequiresAttention",
        "Paused",
        "Cancelled",
    ] {
        let n = dus
            .iter()
            .filter(|d| {
                d.status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .map(|p| format!("{p:?}"))
                    .unwrap_or_else(|| "Pending".into())
                    == phase
            })
            .count();
        ctx.metrics
            .directupdates
            .with_label_values(&[phase])
            .set(n as i64);
    }
    // Finished ones need no finalizer (and a deleted finished one must go at once).
    for d in dus
        .iter()
        .filter(|d| terminal(d) && d.finalizers().iter().any(|f| f == FINALIZER))
    {
        remove_finalizer(ctx, d).await?;
    }
    let Some(du) = pick(&dus) else {
        mine.preflight = None;
        let cleared = preflight::clear_stale(ctx, mine, &nodes, None, usize::MAX).await?;
        return Ok((!cleared).then_some(Duration::ZERO));
    };
    // Tell the others why they wait (once).
    for other in dus
        .iter()
        .filter(|d| !terminal(d) && d.name_any() != du.name_any())
    {
        let msg = format!(
            "waiting: DirectUpdate {} runs first (one at a time per cluster)",
            du.name_any()
        );
        let st = other.status.clone().unwrap_or_default();
        if st.message.as_deref() != Some(&msg) && st.operation_id.is_none() {
            let st = DirectUpdateStatus {
                phase: Some(Phase::Pending),
                message: Some(msg),
                ..st
            };
            let new = write_status(ctx, other, &st)
                .await
                .map_err(|e| e.to_string())?;
            remember(&mut mine.dus, other, slimmed(new, slim::direct_update));
        }
    }
    let cluster = cluster_snapshot(s, &nodes)?;
    let node_ann = node_annotations(&nodes);
    let mut status = du.status.clone();
    let stages: Vec<Stage> = if !du.spec.stages.is_empty() {
        du.spec.stages.clone()
    } else if let Some(st) = status.as_ref().filter(|s| !s.stages.is_empty()) {
        st.stages.clone()
    } else {
        match plan_seed_style(&du, &cluster) {
            Ok(stages) => {
                let st = status.get_or_insert_with(Default::default);
                st.stages = stages.clone();
                stages
            }
            Err(msg) => {
                let st = DirectUpdateStatus {
                    phase: Some(Phase::Failed),
                    message: Some(msg),
                    ..status.unwrap_or_default()
                };
                if du.status.as_ref() != Some(&st) {
                    let new = write_status(ctx, &du, &st)
                        .await
                        .map_err(|e| e.to_string())?;
                    remember(&mut mine.dus, &du, slimmed(new, slim::direct_update));
                }
                return Ok(None);
            }
        }
    };
    let deleting = du.metadata.deletion_timestamp.is_some();
    // Preflight, before the first node is touched (see `preflight.rs`).
    let du = match preflight::step(
        ctx,
        mine,
        du.clone(),
        status.as_ref(),
        &stages,
        &cluster,
        &node_ann,
        &nodes,
        deleting,
    )
    .await?
    {
        preflight::Step::Stop(wait) => return Ok(wait),
        preflight::Step::Proceed(None) => du,
        preflight::Step::Proceed(Some(written)) => {
            status = written.status.clone();
            written
        }
    };
    let mut spec = du.spec.clone();
    spec.paused |= deleting;
    let empty = BTreeMap::new();
    let d = rollout::next(RolloutInput {
        name: &du.name_any(),
        uid: du.metadata.uid.as_deref(),
        generation: du.metadata.generation,
        annotations: du.metadata.annotations.as_ref().unwrap_or(&empty),
        spec: &spec,
        status: status.as_ref(),
        stages: &stages,
        cluster: &cluster,
        node_annotations: &node_ann,
        now: Utc::now(),
    });
    // A DirectUpdate with work ahead carries the finalizer, so deleting it cancels cleanly.
    let api = Api::<DirectUpdate>::all(ctx.clients.client.clone());
    if !deleting
        && !du.finalizers().iter().any(|f| f == FINALIZER)
        && d.status
            .phase
            .is_some_and(|p| !matches!(p, Phase::Succeeded | Phase::Cancelled))
    {
        let mut f = du.finalizers().to_vec();
        f.push(FINALIZER.to_string());
        let new = api
            .patch(
                &du.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({"metadata": {"finalizers": f, "resourceVersion": du.resource_version()}})),
            )
            .await
            .map_err(|e| format!("adding the finalizer: {e}"))?;
        remember(&mut mine.dus, &du, slimmed(new, slim::direct_update));
        return Ok(Some(Duration::ZERO));
    }
    let drain = du.spec.drain.clone().unwrap_or_default();
    // The retry annotation is cleared after the status that acts on it is written: clearing
    // it first would change the object under the status write (and lose the retry).
    let (after, before): (Vec<_>, Vec<_>) = d
        .effects
        .iter()
        .partition(|e| matches!(e, rollout::Effect::ClearRetry));
    // Effects on different nodes are independent: run them concurrently (a batch of 50
    // nodes is 100 API calls), each node's own effects in order.
    let mut by_node: BTreeMap<&str, Vec<&rollout::Effect>> = BTreeMap::new();
    for e in before {
        by_node.entry(effect_node(e)).or_default().push(e);
    }
    let by_name: BTreeMap<String, &CachedNode> =
        nodes.iter().map(|n| (n.name_any(), &**n)).collect();
    let results: Vec<Result<Vec<CachedNode>, String>> = futures::stream::iter(by_node)
        .map(|(name, group)| {
            let (clients, du, drain, metrics) = (&ctx.clients, &du, &drain, &ctx.metrics);
            let store = &s.cluster.nodes;
            // The node as this group last saw it: the cache's copy, then each patch's answer.
            let mut latest: Option<CachedNode> = by_name.get(name).map(|n| (*n).clone());
            async move {
                let mut written = Vec::new();
                // What this round's drain of the node left: a node starting with nothing
                // to drain is assigned right after its drain (`only_if_drained`).
                let mut pods_left = None;
                for e in group {
                    if matches!(e, rollout::Effect::Assign { .. }) {
                        // The assignment is checked against, and conditional on, this copy.
                        // Since the cordon, the node controller has most likely added its
                        // `unschedulable` taint: a copy from before that makes the write a
                        // conflict (and costs two more round trips on every node's start).
                        latest = newest(latest, store.get(&ObjectRef::new(name)));
                    }
                    let done = effects::perform(
                        clients,
                        du,
                        drain,
                        e,
                        latest.as_ref(),
                        pods_left,
                        metrics,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    pods_left = done.pods_left.or(pods_left);
                    if let Some(n) = done.node {
                        let n = slim::node(n);
                        latest = Some(n.clone());
                        written.push(n);
                    }
                }
                Ok(written)
            }
        })
        .buffer_unordered(EFFECT_CONCURRENCY)
        .collect()
        .await;
    let mut first_error = None;
    let mut written_here = BTreeSet::new();
    for r in results {
        match r {
            Ok(ns) => {
                // In order: each patch replaced the one before it.
                for n in ns {
                    let name = n.name_any();
                    let old = match mine.nodes.get(&name) {
                        Some((_, m)) if written_here.contains(&name) => Some(m.clone()),
                        _ => by_name.get(&name).map(|n| Arc::new((*n).clone())),
                    };
                    if let Some(old) = old {
                        remember(&mut mine.nodes, &old, Arc::new(n));
                        written_here.insert(name);
                    }
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    for (name, ns) in &d.status.nodes {
        let old_ns = du.status.as_ref().and_then(|s| s.nodes.get(name));
        if let Some(o) = old_ns
            && o.phase != ns.phase
            && o.phase.is_active()
            && let Some(since) = o.last_updated
        {
            let secs = (Utc::now() - since).num_milliseconds().max(0) as f64 / 1000.0;
            ctx.metrics
                .phase_seconds
                .with_label_values(&[o.phase.as_str()])
                .observe(secs);
        }
        let before = old_ns.map(|n| n.phase);
        if before != Some(ns.phase)
            && matches!(ns.phase, NodePhase::Completed | NodePhase::Failed)
            && let Some(start) = ns.started_at
        {
            let secs = (Utc::now() - start).num_milliseconds().max(0) as f64 / 1000.0;
            let result = if ns.phase == NodePhase::Completed {
                "completed"
            } else {
                "failed"
            };
            ctx.metrics
                .node_seconds
                .with_label_values(&[result])
                .observe(secs);
        }
    }
    for p in NodePhase::ALL {
        let n = d.status.nodes.values().filter(|n| n.phase == p).count();
        ctx.metrics
            .nodes
            .with_label_values(&[p.as_str()])
            .set(n as i64);
    }
    // A node moved on (it started draining, finished, …): the next decision may move
    // it or another one further without any new event (a node without pods to drain
    // is assigned at once; the last node of a batch done starts the next batch), so
    // look again now rather than when the watch brings our own writes back.
    let phases = |st: Option<&DirectUpdateStatus>| -> BTreeMap<String, NodePhase> {
        st.map(|s| s.nodes.iter().map(|(n, s)| (n.clone(), s.phase)).collect())
            .unwrap_or_default()
    };
    let moved = phases(Some(&d.status)) != phases(du.status.as_ref());
    let name = du.name_any();
    // Since when a decided status has been waiting to be written.
    let owed = mine
        .owed
        .take()
        .filter(|(n, v, _)| *n == name && *v == du.resource_version())
        .map(|(_, _, since)| since);
    // A change in the agents' progress alone waits for the next progress write.
    let mut progress_due = None;
    let mut owed_due = None;
    if owed.is_some() || du.status.as_ref() != Some(&d.status) {
        let since_write = mine.status_written.map(|t| t.elapsed());
        progress_due = du
            .status
            .as_ref()
            .filter(|old| {
                owed.is_none() && after.is_empty() && !deleting && only_progress(old, &d.status)
            })
            .and(since_write)
            .and_then(|e| PROGRESS_WRITES.checked_sub(e));
        // Decisions that only move nodes of a running operation are written together,
        // at most `NODE_WRITES` after the first of them: fifty nodes completing within
        // a second, or a batch started (cordon, drain) and assigned in the next round,
        // take one 1,000-node status write, not one each. Their effects are done and
        // idempotent, so a crash before the write is a lost status write, which `next`
        // re-derives (the node already cordoned, drained, assigned or released; see
        // its docs). Rounds in between decide from the decided status, never from the
        // older one in the store.
        let running =
            |st: Option<&DirectUpdateStatus>| st.and_then(|s| s.phase) == Some(Phase::InProgress);
        let may_wait = (moved || owed.is_some())
            && after.is_empty()
            && !deleting
            && running(du.status.as_ref())
            && running(Some(&d.status));
        owed_due = owed.map_or(Some(NODE_WRITES), |since| {
            NODE_WRITES.checked_sub(since.elapsed())
        });
        if progress_due.is_some() {
            owed_due = None;
        } else if may_wait && owed_due.is_some() {
            let mut ahead = (*du).clone();
            ahead.status = Some(d.status.clone());
            remember(&mut mine.dus, &du, Arc::new(ahead));
            mine.owed = Some((
                name.clone(),
                du.resource_version(),
                owed.unwrap_or_else(Instant::now),
            ));
        } else {
            owed_due = None;
            mine.status_written = Some(Instant::now());
            let new = write_status(ctx, &du, &d.status)
                .await
                .map_err(|e| format!("writing the status: {e}"))?;
            remember(&mut mine.dus, &du, slimmed(new, slim::direct_update));
            if du.status.as_ref().and_then(|s| s.phase) != d.status.phase {
                info!(directupdate = %name, phase = ?d.status.phase, message = d.status.message.as_deref().unwrap_or(""), "phase changed");
            }
        }
    }
    for e in after {
        effects::perform(&ctx.clients, &du, &drain, e, None, None, &ctx.metrics)
            .await
            .map_err(|e| e.to_string())?;
    }
    publish(ctx, &du, &d);
    if deleting && !d.status.nodes.values().any(|n| n.phase.is_active()) {
        cancel(ctx, &du, &d.status, &node_ann).await?;
        return Ok(Some(Duration::ZERO));
    }
    // Each rerun follows a phase change, so this ends.
    if moved {
        return Ok(Some(Duration::ZERO));
    }
    Ok([d.requeue_after, progress_due, owed_due]
        .into_iter()
        .flatten()
        .min())
}

/// A deleted DirectUpdate whose nodes in flight are done: clear assignments not
/// started, then let it go.
async fn cancel(
    ctx: &Context,
    du: &DirectUpdate,
    status: &DirectUpdateStatus,
    node_ann: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<(), String> {
    for node in rollout::unstarted_assignments(status, node_ann) {
        effects::perform(
            &ctx.clients,
            du,
            &Default::default(),
            &rollout::Effect::Release {
                node: node.clone(),
                uncordon: true,
            },
            None,
            None,
            &ctx.metrics,
        )
        .await
        .map_err(|e| e.to_string())?;
    }
    remove_finalizer(ctx, du).await?;
    info!(directupdate = %du.name_any(), "cancelled (deleted)");
    Ok(())
}

async fn remove_finalizer(ctx: &Context, du: &DirectUpdate) -> Result<(), String> {
    let f: Vec<String> = du
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    Api::<DirectUpdate>::all(ctx.clients.client.clone())
        .patch(
            &du.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&serde_json::json!({"metadata": {"finalizers": f}})),
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("removing the finalizer: {e}"))
}

/// Run the rollout controller until the future is dropped (lease lost, shutdown).
/// Once its caches are ready it publishes them to `observer`, and the GitOps loop
/// and the schedule controllers plan from them instead of listing the cluster.
pub async fn run(ctx: Context, observer: observe::Observer) {
    let notify = Arc::new(Notify::new());
    let c = ctx.clients.client.clone();
    let streaming = observe::streams_initial_events(&c).await;
    info!(
        streaming,
        "rollout controller: starting the watches ({})",
        if streaming {
            "initial state streamed as watch events"
        } else {
            "initial state listed in pages"
        }
    );
    let config = observe::watch_config(streaming);
    let (dus, w1) = observe::reflect(
        Api::<DirectUpdate>::all(c.clone()),
        config.clone(),
        slim::direct_update,
        |_, _| false, // few events, and most are our own writes
        notify.clone(),
    );
    let (cluster, w2) = observe::Cached::start(c, config, notify.clone());
    let stores = Stores { dus, cluster };
    let watchers = futures::future::join(w1, w2);
    let control = async {
        let _ = stores.dus.wait_until_ready().await;
        stores.cluster.wait_until_ready().await;
        info!("rollout controller: caches ready");
        observer.publish(stores.cluster.clone());
        let mut backoff = Duration::from_millis(500);
        let mut mine = Mine::default();
        loop {
            let started = Instant::now();
            ctx.metrics.reconciles.inc();
            let wait = match round(&ctx, &stores, &mut mine).await {
                Ok(w) => {
                    backoff = Duration::from_millis(500);
                    w
                }
                Err(e) => {
                    ctx.metrics.reconcile_errors.inc();
                    warn!(error = %e, "rollout round failed; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    Some(backoff)
                }
            };
            ctx.metrics
                .reconcile_seconds
                .observe(started.elapsed().as_secs_f64());
            match wait {
                Some(d) if d.is_zero() => continue,
                Some(d) => {
                    let _ = tokio::time::timeout(d, notify.notified()).await;
                }
                None => notify.notified().await,
            }
            // Coalesce a burst of watch events into one round.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        _ = watchers => warn!("watchers ended"),
        _ = control => {}
    }
}

#[cfg(test)]
mod condition_tests {
    use super::*;

    fn status(phase: Phase, message: &str) -> DirectUpdateStatus {
        DirectUpdateStatus {
            phase: Some(phase),
            message: Some(message.to_string()),
            ..Default::default()
        }
    }

    fn get<'a>(
        c: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        t: &str,
    ) -> (&'a str, &'a str) {
        let c = c.iter().find(|c| c.type_ == t).expect(t);
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn conditions_say_why_a_direct_update_is_not_progressing() {
        let now: chrono::DateTime<Utc> = "2026-11-28T02:00:00Z".parse().expect("now");
        for (phase, msg, ready, progressing, degraded) in [
            (
                Phase::Pending,
                "waiting: DirectUpdate a runs first (one at a time per cluster)",
                "False",
                ("False", "WaitingForDirectUpdate"),
                "False",
            ),
            (Phase::Pending, "", "False", ("True", "Pending"), "False"),
            (
                Phase::InProgress,
                "",
                "False",
                ("True", "InProgress"),
                "False",
            ),
            (Phase::Paused, "", "False", ("False", "Paused"), "False"),
            (
                Phase::Succeeded,
                "",
                "True",
                ("False", "Succeeded"),
                "False",
            ),
            (
                Phase::Failed,
                "w-1: step failed",
                "False",
                ("False", "Failed"),
                "True",
            ),
            (
                Phase::RequiresAttention,
                "PDB shop/web blocks",
                "False",
                ("False", "RequiresAttention"),
                "True",
            ),
            (
                Phase::Cancelled,
                "",
                "False",
                ("False", "Cancelled"),
                "False",
            ),
        ] {
            let c = conditions(&status(phase, msg), Some(3), now);
            assert_eq!(get(&c, "Ready").0, ready, "{phase:?}");
            assert_eq!(get(&c, "Progressing"), progressing, "{phase:?}");
            assert_eq!(get(&c, "Degraded").0, degraded, "{phase:?}");
            assert!(
                c.iter()
                    .all(|c| c.message == msg && c.observed_generation == Some(3))
            );
        }
        // A condition keeps its transition time while its status holds.
        let first = conditions(&status(Phase::InProgress, ""), Some(1), now);
        let mut st = status(Phase::InProgress, "w-2");
        st.conditions = first.clone();
        let later = conditions(&st, Some(1), now + chrono::Duration::minutes(5));
        assert_eq!(
            later,
            first
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    c.message = "w-2".into();
                    c
                })
                .collect::<Vec<_>>()
        );
        st.phase = Some(Phase::Succeeded);
        let done = conditions(&st, Some(1), now + chrono::Duration::minutes(5));
        let ready = done.iter().find(|c| c.type_ == "Ready").expect("Ready");
        assert_ne!(
            ready.last_transition_time, first[0].last_transition_time,
            "Ready flipped: new transition time"
        );
    }
}

#[cfg(test)]
mod progress_tests {
    use super::*;
    use cupcake_api::crd::NodeStatus;

    fn status(step: &str, phase: NodePhase) -> DirectUpdateStatus {
        let node = NodeStatus {
            phase,
            last_step: Some(step.to_string()),
            ..NodeStatus::default()
        };
        DirectUpdateStatus {
            nodes: [("w-1".to_string(), node)].into(),
            ..DirectUpdateStatus::default()
        }
    }

    #[test]
    fn only_the_agents_progress_may_wait_for_the_next_write() {
        let old = status("01-preflight", NodePhase::Upgrading);
        let mut new = status("02-upgrade-kubeadm-package", NodePhase::Upgrading);
        new.last_updated = Some(Utc::now());
        assert!(only_progress(&old, &new));
        assert!(!only_progress(
            &old,
            &status("06-verify", NodePhase::Completed)
        ));
        let mut other = status("01-preflight", NodePhase::Upgrading);
        other.message = Some("upgrading w-1".into());
        assert!(!only_progress(&old, &other));
    }
}

#[cfg(test)]
mod freshest_tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn node(rv: &str, step: &str) -> Arc<CachedNode> {
        Arc::new(CachedNode {
            metadata: ObjectMeta {
                name: Some("w-1".into()),
                resource_version: Some(rv.into()),
                annotations: Some([(cupcake_api::labels::STEP.into(), step.into())].into()),
                ..ObjectMeta::default()
            },
            ..CachedNode::default()
        })
    }

    fn step(n: &[Arc<CachedNode>]) -> &str {
        n[0].annotations()[cupcake_api::labels::STEP].as_str()
    }

    #[test]
    fn our_writes_count_until_the_watch_brings_them_or_something_newer() {
        let mut mine: Written<CachedNode> = BTreeMap::new();
        let v1 = node("1", "cordoned");
        // Two writes in a row: 1 -> 2 -> 3, the store still at 1.
        remember(&mut mine, &v1, node("2", "assigned"));
        let seen = freshest(vec![v1.clone()], &mut mine);
        remember(&mut mine, &seen[0], node("3", "released"));
        assert_eq!(step(&freshest(vec![v1.clone()], &mut mine)), "released");
        // The watch brings the first write: still behind ours.
        assert_eq!(
            step(&freshest(vec![node("2", "assigned")], &mut mine)),
            "released"
        );
        // It brings our last one, or someone else's newer one: the store's copy.
        assert_eq!(
            step(&freshest(vec![node("4", "agent wrote")], &mut mine)),
            "agent wrote"
        );
        assert!(mine.is_empty());
    }
}

#[cfg(test)]
mod newest_tests {
    use super::*;

    fn at(rv: &str) -> CachedNode {
        let mut n = CachedNode::default();
        n.metadata.resource_version = Some(rv.to_string());
        n
    }

    #[test]
    fn an_assignment_is_checked_against_the_newer_copy_of_the_node() {
        let rv = |n: Option<CachedNode>| n.and_then(|n| n.metadata.resource_version);
        let cases: &[(Option<&str>, Option<&str>, Option<&str>)] = &[
            // (our copy, the watch's, the one the write is conditional on)
            (Some("10"), Some("12"), Some("12")), // the node controller's taint since our cordon
            (Some("12"), Some("10"), Some("12")), // the watch has not brought our cordon yet
            (Some("12"), Some("12"), Some("12")),
            (None, Some("7"), Some("7")),
            (Some("7"), None, Some("7")),
            (None, None, None),
            (Some("12"), Some("x"), Some("12")), // not a number: ours
            (Some("x"), Some("12"), Some("x")),
        ];
        for (ours, watched, want) in cases {
            let got = newest(ours.map(at), watched.map(|w| Arc::new(at(w))));
            assert_eq!(
                rv(got).as_deref(),
                *want,
                "ours {ours:?}, watched {watched:?}"
            );
        }
    }
}

#[cfg(test)]
mod event_tests {
    use super::*;

    fn ev(reason: &'static str, node: Option<&str>, warning: bool) -> rollout::Event {
        rollout::Event {
            reason,
            message: node.map_or_else(|| "the operation".into(), |n| format!("{n} is at 1.34.2")),
            warning,
            node: node.map(str::to_string),
        }
    }

    /// (target, reason, message) of an Event recorded.
    type Recorded = (String, &'static str, String);

    fn targets(events: &[rollout::Event]) -> Vec<Recorded> {
        event_targets(events)
            .into_iter()
            .map(|(n, e)| (n.unwrap_or_else(|| "du".into()), e.reason, e.message))
            .collect()
    }

    #[test]
    fn node_events_go_to_each_node_and_once_per_reason_to_the_directupdate() {
        let t = |a: &str, r: &'static str, m: &str| (a.to_string(), r, m.to_string());
        let cases: Vec<(Vec<rollout::Event>, Vec<Recorded>)> = vec![
            // One node: the same Event on both.
            (
                vec![ev("NodeUpgraded", Some("w-1"), false)],
                vec![
                    t("w-1", "NodeUpgraded", "w-1 is at 1.34.2"),
                    t("du", "NodeUpgraded", "w-1 is at 1.34.2"),
                ],
            ),
            // Two nodes of one reason, an operation Event, a failure: the failure is its
            // own Event on the DirectUpdate, the routine ones one summary.
            (
                vec![
                    ev("NodeUpgraded", Some("w-1"), false),
                    ev("Started", None, false),
                    ev("NodeFailed", Some("w-3"), true),
                    ev("NodeUpgraded", Some("w-2"), false),
                ],
                vec![
                    t("w-1", "NodeUpgraded", "w-1 is at 1.34.2"),
                    t("du", "Started", "the operation"),
                    t("w-3", "NodeFailed", "w-3 is at 1.34.2"),
                    t("du", "NodeFailed", "w-3 is at 1.34.2"),
                    t("w-2", "NodeUpgraded", "w-2 is at 1.34.2"),
                    t(
                        "du",
                        "NodeUpgraded",
                        "2 nodes: w-1 is at 1.34.2; w-2 is at 1.34.2",
                    ),
                ],
            ),
            (vec![], vec![]),
        ];
        for (events, want) in cases {
            assert_eq!(targets(&events), want);
        }
    }

    #[test]
    fn a_summary_of_many_nodes_stays_short_and_says_how_many_it_left_out() {
        let names: Vec<String> = (1..=200).map(|i| format!("worker-{i:03}")).collect();
        let events: Vec<_> = names
            .iter()
            .map(|n| ev("NodeStarted", Some(n), false))
            .collect();
        let got = targets(&events);
        assert_eq!(got.len(), 201);
        let (_, _, summary) = got.last().unwrap();
        assert!(
            summary.starts_with("200 nodes: worker-001 is at 1.34.2; "),
            "{summary}"
        );
        assert!(summary.len() <= 1000, "{}", summary.len());
        let shown = summary.matches(" is at ").count();
        assert!(
            summary.ends_with(&format!("… and {} more", 200 - shown)),
            "{summary}"
        );
    }
}
