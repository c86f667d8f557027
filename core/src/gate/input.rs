//! The policy input document: `{plan, cluster, schedule, source, now, config}`.
//!
//! Built from values the reconciler already has (the ClusterVersion spec, the
//! snapshot, the planner's outcome, the evaluated schedule) and kept compact:
//! nodes are summarised, pods are reduced to the PDBs that cover them, and
//! the skew state after every stage is precomputed so that rules stay cheap
//! on 5,000-node clusters. `schemas/policy-input.schema.json` is generated
//! from these types.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use cupcake_api::KubeVersion;
use cupcake_api::crd::SourceRef;
use cupcake_api::fleet::ClusterVersionSpec;
use cupcake_api::plan::{Plan, StageKind};
use cupcake_api::policy::{
    ClusterInput, NodeInput, PdbInput, PolicyInput, TimelineEntry, UpgradeKind,
};
use cupcake_api::schedule::ScheduleEval;
use cupcake_api::snapshot::{ClusterSnapshot, Node, Role};

use super::FnvBuild;
use crate::plan::{PlanOutcome, natural_cmp};

/// How many node names a summary lists (oldest/newest kubelets).
const NAMES_LISTED: usize = 5;

/// Everything [`PolicyInput::build`] reads.
#[derive(Debug, Clone, Copy)]
pub struct InputParts<'a> {
    pub cluster: &'a str,
    pub spec: &'a ClusterVersionSpec,
    pub snapshot: &'a ClusterSnapshot,
    pub outcome: &'a PlanOutcome,
    pub schedule: &'a ScheduleEval,
    pub source: &'a SourceRef,
    pub now: DateTime<Utc>,
    pub config: &'a serde_json::Value,
}

/// The `now` string of the input document.
pub fn format_now(now: DateTime<Utc>) -> String {
    now.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn in_scope(spec: &ClusterVersionSpec, n: &Node) -> bool {
    n.role == Role::ControlPlane
        || spec
            .node_selector
            .iter()
            .all(|(k, v)| n.labels.get(k) == Some(v))
}

fn timeline(
    plan: &Plan,
    snapshot: &ClusterSnapshot,
    apiservers: &BTreeMap<String, KubeVersion>,
    ix: &NodeIndex<'_>,
) -> Vec<TimelineEntry> {
    if plan.stages.is_empty() || snapshot.nodes.is_empty() {
        return Vec::new();
    }
    let index = &ix.by_name;
    let mut kubelet: Vec<&KubeVersion> =
        snapshot.nodes.iter().map(|n| &n.kubelet_version).collect();
    let mut api: Vec<Option<&KubeVersion>> = snapshot
        .nodes
        .iter()
        .map(|n| apiservers.get(&n.name))
        .collect();
    // Node indices in natural name order, sorted once: "the first five nodes on version v"
    // is then a scan, not a sort per stage.
    let order = &ix.order;
    let mut out = Vec::with_capacity(plan.stages.len());
    for (i, stage) in plan.stages.iter().enumerate() {
        if stage.kind != StageKind::Backup {
            for name in stage.nodes() {
                let Some(&j) = index.get(name.as_str()) else {
                    continue;
                };
                kubelet[j] = &stage.version;
                if stage.kind == StageKind::ControlPlane && api[j].is_some() {
                    api[j] = Some(&stage.version);
                }
            }
        }
        let (mut kmin, mut kmax) = (kubelet[0], kubelet[0]);
        for k in &kubelet {
            kmin = kmin.min(k);
            kmax = kmax.max(k);
        }
        let names = |v: &KubeVersion| -> Vec<String> {
            order
                .iter()
                .filter(|&&j| kubelet[j] == v)
                .take(NAMES_LISTED)
                .map(|&j| snapshot.nodes[j].name.clone())
                .collect()
        };
        out.push(TimelineEntry {
            stage: i,
            kind: stage.kind,
            version: stage.version.clone(),
            apiserver_min: api.iter().flatten().min().map(|v| (*v).clone()),
            apiserver_max: api.iter().flatten().max().map(|v| (*v).clone()),
            kubelet_min: kmin.clone(),
            kubelet_max: kmax.clone(),
            oldest_kubelets: names(kmin),
            newest_kubelets: names(kmax),
        });
    }
    out
}

/// Node lookups by name, sized for 5,000 nodes and 50,000 pods.
struct NodeIndex<'a> {
    by_name: HashMap<&'a str, usize, FnvBuild>,
    /// The plan drains node i.
    planned: Vec<bool>,
    /// Position of node i in natural name order.
    rank: Vec<usize>,
    /// Node indices in natural name order.
    order: Vec<usize>,
}

impl<'a> NodeIndex<'a> {
    fn new(snapshot: &'a ClusterSnapshot, plan: &Plan) -> Self {
        let by_name: HashMap<&str, usize, FnvBuild> = snapshot
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let mut planned = vec![false; snapshot.nodes.len()];
        for n in plan
            .stages
            .iter()
            .filter(|s| s.kind != StageKind::Backup)
            .flat_map(|s| s.nodes())
        {
            if let Some(&i) = by_name.get(n.as_str()) {
                planned[i] = true;
            }
        }
        let mut order: Vec<usize> = (0..snapshot.nodes.len()).collect();
        order.sort_by(|&a, &b| natural_cmp(&snapshot.nodes[a].name, &snapshot.nodes[b].name));
        let mut rank = vec![0; order.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i] = r;
        }
        Self {
            by_name,
            planned,
            rank,
            order,
        }
    }
}

fn pdbs(snapshot: &ClusterSnapshot, ix_nodes: &NodeIndex<'_>) -> Vec<PdbInput> {
    // Candidate PDBs per pod without testing every selector of the namespace: PDBs are
    // indexed by one of their matchLabels (key, value); those without matchLabels are
    // tested against every pod of their namespace.
    #[derive(Default)]
    struct NsIndex<'a> {
        by_label: HashMap<&'a str, HashMap<&'a str, Vec<usize>>>,
        scan: Vec<usize>,
    }
    let mut by_ns: HashMap<&str, NsIndex<'_>> = HashMap::new();
    for (i, p) in snapshot.pdbs.iter().enumerate() {
        let ix = by_ns.entry(p.namespace.as_str()).or_default();
        match p
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.iter().next())
        {
            Some((k, v)) => ix
                .by_label
                .entry(k.as_str())
                .or_default()
                .entry(v.as_str())
                .or_default()
                .push(i),
            None if p.selector.is_some() => ix.scan.push(i),
            None => {} // a null selector selects nothing
        }
    }
    let mut pods = vec![0i64; snapshot.pdbs.len()];
    let mut nodes: Vec<Vec<usize>> = vec![Vec::new(); snapshot.pdbs.len()];
    let mut cands = Vec::new();
    for pod in &snapshot.pods {
        let Some(ix) = by_ns.get(pod.namespace.as_str()) else {
            continue;
        };
        cands.clear();
        for (k, values) in &ix.by_label {
            if let Some(v) = pod.labels.get(*k).and_then(|v| values.get(v.as_str())) {
                cands.extend_from_slice(v);
            }
        }
        cands.extend_from_slice(&ix.scan);
        for &i in &cands {
            if snapshot.pdbs[i]
                .selector
                .as_ref()
                .is_some_and(|s| s.matches(&pod.labels))
            {
                pods[i] += 1;
                if let Some(&n) = ix_nodes.by_name.get(pod.node.as_str())
                    && ix_nodes.planned[n]
                    && pod.evictable()
                {
                    nodes[i].push(n);
                }
            }
        }
    }
    snapshot
        .pdbs
        .iter()
        .zip(pods)
        .zip(nodes)
        .map(|((p, pods), nodes)| {
            let mut nodes = nodes;
            nodes.sort_unstable_by_key(|&n| ix_nodes.rank[n]);
            nodes.dedup();
            let nodes: Vec<String> = nodes
                .into_iter()
                .map(|n| snapshot.nodes[n].name.clone())
                .collect();
            PdbInput {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                min_available: p.min_available.clone(),
                max_unavailable: p.max_unavailable.clone(),
                disruptions_allowed: p.status.map(|s| s.disruptions_allowed),
                expected_pods: p.status.map(|s| s.expected_pods),
                current_healthy: p.status.map(|s| s.current_healthy),
                desired_healthy: p.status.map(|s| s.desired_healthy),
                pods,
                nodes_to_drain: nodes,
            }
        })
        .collect()
}

/// Assemble the input document.
pub fn build(parts: InputParts<'_>) -> PolicyInput {
    let InputParts {
        cluster,
        spec,
        snapshot,
        outcome,
        schedule,
        source,
        now,
        config,
    } = parts;
    let ix = NodeIndex::new(snapshot, &outcome.plan);
    let nodes: Vec<NodeInput> = snapshot
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeInput {
            name: n.name.clone(),
            role: n.role,
            kubelet_version: n.kubelet_version.clone(),
            ready: n.ready,
            unschedulable: n.unschedulable,
            in_scope: in_scope(spec, n),
            planned: ix.planned[i],
        })
        .collect();
    let target = &outcome.target;
    let oldest = snapshot
        .nodes
        .iter()
        .filter(|n| in_scope(spec, n))
        .map(|n| &n.kubelet_version)
        .chain(outcome.current.control_plane.as_ref())
        .min();
    let upgrade = if outcome.up_to_date {
        UpgradeKind::None
    } else if oldest.is_some_and(|o| target.minor_distance(o) > 0) {
        UpgradeKind::Minor
    } else {
        UpgradeKind::Patch
    };
    PolicyInput {
        plan: outcome.plan.clone(),
        cluster: ClusterInput {
            name: cluster.to_string(),
            target: target.clone(),
            up_to_date: outcome.up_to_date,
            upgrade,
            control_plane: outcome.current.control_plane.clone(),
            apiservers: outcome.current.apiservers.clone(),
            kubelets: outcome.current.kubelets.clone(),
            allow_prerelease: spec.allow_prerelease,
            force: spec.force.clone(),
            strategy: spec.strategy,
            nodes,
            pdbs: pdbs(snapshot, &ix),
            timeline: timeline(&outcome.plan, snapshot, &outcome.current.apiservers, &ix),
        },
        schedule: schedule.clone(),
        source: source.clone(),
        now: format_now(now),
        config: if config.is_null() {
            serde_json::Value::Object(Default::default())
        } else {
            config.clone()
        },
    }
}
