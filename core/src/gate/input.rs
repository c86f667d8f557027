//! The policy input document: `{plan, cluster, schedule, source, now, config}`.
//!
//! Built from values the reconciler already has (the ClusterVersion spec, the
//! snapshot indexed once for the planner and this builder ([`ClusterIndex`]),
//! the planner's outcome, the evaluated schedule) and kept compact:
//! nodes are summarised, pods are reduced to the PDBs that cover them, and
//! the skew state after every stage is precomputed so that rules stay cheap
//! on 5,000-node clusters. `schemas/policy-input.schema.json` is generated
//! from these types.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use cupcake_api::KubeVersion;
use cupcake_api::crd::SourceRef;
use cupcake_api::fleet::ClusterVersionSpec;
use cupcake_api::plan::{Plan, StageKind};
use cupcake_api::policy::{
    ClusterInput, NodeInput, PdbInput, PolicyInput, TimelineEntry, UpgradeKind,
};
use cupcake_api::schedule::ScheduleEval;

use crate::plan::{ClusterIndex, PlanOutcome};

/// How many node names a summary lists (oldest/newest kubelets).
const NAMES_LISTED: usize = 5;

/// Everything [`build`] reads.
#[derive(Debug, Clone, Copy)]
pub struct InputParts<'a> {
    pub cluster: &'a str,
    /// `cluster.yaml`'s `metadata.labels`.
    pub labels: Option<&'a std::collections::BTreeMap<String, String>>,
    pub spec: &'a ClusterVersionSpec,
    /// The snapshot, indexed (the same index the planner used).
    pub index: &'a ClusterIndex<'a>,
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

/// Which nodes the plan drains (upgrades), by snapshot position.
fn planned(ix: &ClusterIndex<'_>, plan: &Plan) -> Vec<bool> {
    let mut planned = vec![false; ix.snapshot().nodes.len()];
    for n in plan
        .stages
        .iter()
        .filter(|s| s.kind != StageKind::Backup)
        .flat_map(|s| s.nodes())
    {
        if let Some(i) = ix.position(n) {
            planned[i] = true;
        }
    }
    planned
}

fn timeline(
    plan: &Plan,
    apiservers: &BTreeMap<String, KubeVersion>,
    ix: &ClusterIndex<'_>,
) -> Vec<TimelineEntry> {
    let snapshot = ix.snapshot();
    if plan.stages.is_empty() || snapshot.nodes.is_empty() {
        return Vec::new();
    }
    let mut kubelet: Vec<&KubeVersion> =
        snapshot.nodes.iter().map(|n| &n.kubelet_version).collect();
    let mut api: Vec<Option<&KubeVersion>> = snapshot
        .nodes
        .iter()
        .map(|n| apiservers.get(&n.name))
        .collect();
    // Node indices in natural name order, sorted once: "the first five nodes on version v"
    // is then a scan, not a sort per stage.
    let order = ix.natural_order();
    let mut out = Vec::with_capacity(plan.stages.len());
    for (i, stage) in plan.stages.iter().enumerate() {
        if stage.kind != StageKind::Backup {
            for name in stage.nodes() {
                let Some(j) = ix.position(name) else {
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

fn pdbs(ix: &ClusterIndex<'_>, planned: &[bool]) -> Vec<PdbInput> {
    let snapshot = ix.snapshot();
    snapshot
        .pdbs
        .iter()
        .zip(ix.pdbs())
        .map(|(p, facts)| PdbInput {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            min_available: p.min_available.clone(),
            max_unavailable: p.max_unavailable.clone(),
            disruptions_allowed: p.status.map(|s| s.disruptions_allowed),
            budget: facts.budget,
            expected_pods: p.status.map(|s| s.expected_pods),
            current_healthy: p.status.map(|s| s.current_healthy),
            desired_healthy: p.status.map(|s| s.desired_healthy),
            pods: facts.pods,
            // Already in natural order.
            nodes_to_drain: facts
                .nodes
                .iter()
                .filter(|&&n| planned[n])
                .map(|&n| snapshot.nodes[n].name.clone())
                .collect(),
        })
        .collect()
}

/// Assemble the input document.
pub fn build(parts: InputParts<'_>) -> PolicyInput {
    let InputParts {
        cluster,
        labels,
        spec,
        index,
        outcome,
        schedule,
        source,
        now,
        config,
    } = parts;
    let snapshot = index.snapshot();
    let planned = planned(index, &outcome.plan);
    let nodes: Vec<NodeInput> = snapshot
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeInput {
            name: n.name.clone(),
            labels: n.labels.clone(),
            role: n.role,
            kubelet_version: n.kubelet_version.clone(),
            ready: n.ready,
            unschedulable: n.unschedulable,
            in_scope: index.in_scope(i),
            planned: planned[i],
        })
        .collect();
    let target = &outcome.target;
    let oldest = snapshot
        .nodes
        .iter()
        .enumerate()
        .filter(|&(i, _)| index.in_scope(i))
        .map(|(_, n)| &n.kubelet_version)
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
            labels: labels.cloned().unwrap_or_default(),
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
            pdbs: pdbs(index, &planned),
            timeline: timeline(&outcome.plan, &outcome.current.apiservers, index),
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
