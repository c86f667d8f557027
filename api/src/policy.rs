//! The policy input document: `{plan, cluster, schedule, source, now, config}`,
//! what every Rego and CEL rule evaluates. A published contract:
//! `schemas/policy-input.schema.json` is generated from these types, and the
//! builder lives in `cupcake-core` (`gate::input`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::KubeVersion;
use crate::common::{AllowPrerelease, Strategy};
use crate::crd::SourceRef;
use crate::plan::{Plan, StageKind};
use crate::schedule::ScheduleEval;
use crate::snapshot::{IntOrString, Role};

/// The document every Rego and CEL rule evaluates (`input` in Rego; top-level variables in CEL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(title = "CUPCAKE policy input")]
pub struct PolicyInput {
    /// The upgrade plan, exactly the `plan` object of `cupcake plan -o json`.
    pub plan: Plan,
    /// The cluster: desired and current versions, nodes, PDBs and the skew state after each stage.
    pub cluster: ClusterInput,
    /// The maintenance schedule evaluated at `now`.
    pub schedule: ScheduleEval,
    /// Where the desired state came from.
    pub source: SourceRef,
    /// The evaluation instant, RFC 3339 in UTC (`2026-11-28T02:30:00Z`).
    pub now: String,
    /// Free-form settings for rules, from the fleet repo's `policies/config.yaml` (default `{}`).
    #[serde(default)]
    pub config: serde_json::Value,
}

/// What kind of upgrade the plan is, for exclusions (`scope: minor` lets patch upgrades through).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpgradeKind {
    /// Up to date: nothing to do.
    None,
    /// Every node stays on its minor (includes patch downgrades).
    Patch,
    /// Some node moves to a newer minor.
    Minor,
}

/// The cluster as the gate sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInput {
    /// Cluster name (its folder under `clusters/`).
    pub name: String,
    /// `metadata.labels` of cluster.yaml (`input.cluster.labels.environment == "production"`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `spec.kubernetesVersion`, normalised (no leading `v`).
    pub target: KubeVersion,
    /// The control plane and every in-scope node already run the target.
    pub up_to_date: bool,
    /// none | patch | minor.
    pub upgrade: UpgradeKind,
    /// The control plane's version: the oldest kube-apiserver (absent when no control-plane node is known).
    pub control_plane: Option<KubeVersion>,
    /// kube-apiserver version per control-plane node.
    pub apiservers: BTreeMap<String, KubeVersion>,
    /// How many nodes run each kubelet version.
    pub kubelets: BTreeMap<String, usize>,
    /// `spec.allowPrerelease`: none | rc | all.
    pub allow_prerelease: AllowPrerelease,
    /// `spec.force`: rule ids whose forceable denies are overridden.
    pub force: Vec<String>,
    /// `spec.strategy`.
    pub strategy: Strategy,
    /// Every node of the snapshot.
    pub nodes: Vec<NodeInput>,
    /// Every PodDisruptionBudget, with the nodes to drain that hold its pods.
    pub pdbs: Vec<PdbInput>,
    /// Versions after each stage of `plan.stages` (`timeline[i]` is the state after `plan.stages[i]`).
    pub timeline: Vec<TimelineEntry>,
}

/// One node, summarised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeInput {
    pub name: String,
    /// The node's labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// control-plane | worker.
    pub role: Role,
    /// `status.nodeInfo.kubeletVersion`, normalised.
    pub kubelet_version: KubeVersion,
    /// The Ready condition is True.
    pub ready: bool,
    /// Cordoned.
    pub unschedulable: bool,
    /// Selected by `spec.nodeSelector` (control-plane nodes always are).
    pub in_scope: bool,
    /// The plan drains and upgrades this node.
    pub planned: bool,
}

/// A PodDisruptionBudget and how the plan touches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PdbInput {
    pub namespace: String,
    pub name: String,
    /// `spec.minAvailable` (a count or a percentage string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    /// `spec.maxUnavailable` (a count or a percentage string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// `status.disruptionsAllowed`; absent when the snapshot had no status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruptions_allowed: Option<i64>,
    /// Disruptions allowed now as the planner counts them: `status.disruptionsAllowed`, or,
    /// without a status, estimated from the spec and the matched pods (all counted healthy).
    pub budget: i64,
    /// `status.expectedPods`: the selected workload's replicas; absent without status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_pods: Option<i64>,
    /// `status.currentHealthy`; absent without status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_healthy: Option<i64>,
    /// `status.desiredHealthy`; absent without status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_healthy: Option<i64>,
    /// Pods of the snapshot the selector matches.
    pub pods: i64,
    /// Nodes the plan drains that hold evictable pods of this PDB (natural order).
    pub nodes_to_drain: Vec<String>,
}

/// The versions in the cluster after one stage of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEntry {
    /// Index into `plan.stages`.
    pub stage: usize,
    /// The stage's kind.
    pub kind: StageKind,
    /// The stage's version.
    pub version: KubeVersion,
    /// Oldest kube-apiserver after the stage.
    pub apiserver_min: Option<KubeVersion>,
    /// Newest kube-apiserver after the stage.
    pub apiserver_max: Option<KubeVersion>,
    /// Oldest kubelet after the stage (all nodes, in scope or not).
    pub kubelet_min: KubeVersion,
    /// Newest kubelet after the stage.
    pub kubelet_max: KubeVersion,
    /// Up to five nodes running `kubeletMin`.
    pub oldest_kubelets: Vec<String>,
    /// Up to five nodes running `kubeletMax`.
    pub newest_kubelets: Vec<String>,
}
