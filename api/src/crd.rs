//! The custom resources: DirectUpdate (du), ScheduledUpdate (su) and
//! UpdateSchedule (us), group `cupcake.ricardomolendijk.com`, version `v1`,
//! cluster-scoped. Field names stay compatible with the original CUPCAKE
//! manifests.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube_derive::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::KubeVersion;
use crate::common::{CanarySpec, Component, DrainSpec, GoDuration, Strategy, default_components};
use crate::plan::Stage;
use crate::protocol::{NodePhase, ScheduledUpdatePhase};
use crate::schedule::UpdateScheduleSpec;

/// Upgrade a cluster's nodes to one Kubernetes version, now.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cupcake.ricardomolendijk.com",
    crates(kube_core = "::kube_core"),
    version = "v1",
    kind = "DirectUpdate",
    shortname = "du",
    category = "cupcake",
    status = "DirectUpdateStatus",
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.targetVersion"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Progress","type":"string","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DirectUpdateSpec {
    /// Kubernetes version every selected node ends at (1.34.2 or v1.34.2).
    pub target_version: KubeVersion,
    /// Host components to upgrade on each node.
    #[serde(default = "default_components")]
    pub components: Vec<Component>,
    /// How workers are rolled: rolling, parallel or canary.
    #[serde(default)]
    pub strategy: Strategy,
    /// Workers upgraded at once (rolling strategy).
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub concurrency: u32,
    /// Canary workers upgraded first, as a batch of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanarySpec>,
    /// Only nodes with all these labels are upgraded (control-plane nodes always are).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Check the API server, the planned nodes (Ready, no pressure, disk space), their PDBs,
    /// the air-gapped bundle and etcd once, before the first node is touched (docs/preflight.md).
    #[serde(default = "yes")]
    pub preflight_checks: bool,
    /// Install from an in-cluster bundle instead of package repositories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub air_gapped: Option<AirGapped>,
    /// Walk the plan and report what would happen without changing nodes.
    #[serde(default)]
    pub dry_run: bool,
    /// Give up on the whole operation after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_timeout: Option<GoDuration>,
    /// Give up on one node after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_timeout: Option<GoDuration>,
    /// Kill switch: no new node starts while true; the node in progress finishes its step.
    #[serde(default)]
    pub paused: bool,
    /// Control-plane versions visited in order (the planner's hops); the last is targetVersion.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upgrade_path: Vec<KubeVersion>,
    /// Node order: stages (backup, control-plane, canary, workers), each a list of batches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// etcd backup before control-plane hops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupRef>,
    /// How nodes are drained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainSpec>,
    /// Where this DirectUpdate came from, when rendered from a fleet repo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRef>,
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

/// Air-gapped installation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AirGapped {
    /// Use the bundle instead of package repositories.
    #[serde(default)]
    pub enabled: bool,
    /// ConfigMap holding the package bundle (`bundle.yaml`): NAMESPACE/NAME, or NAME in the controller's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_config_map: Option<String>,
}

/// etcd backup settings of a DirectUpdate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRef {
    /// Take and verify an etcd snapshot before the first control-plane node.
    #[serde(default)]
    pub etcd: bool,
    /// Store URL for the snapshot (s3://, gs://, az://, file://); replaces the agent's --backup-store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_ref: Option<String>,
}

/// Provenance of a rendered DirectUpdate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceRef {
    /// Fleet repository URL or path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Commit the desired state was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Path of cluster.yaml inside the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The working tree had uncommitted changes: the desired state is not exactly `revision`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dirty: bool,
}

/// Lifecycle of a DirectUpdate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    /// Accepted, no node touched yet.
    #[default]
    Pending,
    /// Nodes are being upgraded.
    InProgress,
    /// Every node is at the target version.
    Succeeded,
    /// A node failed and the operation stopped.
    Failed,
    /// Stopped on something a human must decide (blocked drain, missing backup).
    RequiresAttention,
    /// `spec.paused` is true.
    Paused,
    /// Deleted or superseded before it finished.
    Cancelled,
}

/// Per-node progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Pending, Draining, Upgrading, Verifying, Uncordoning, Completed, Failed or Skipped.
    #[serde(default)]
    pub phase: NodePhase,
    /// Last step the agent reported (e.g. `03-upgrade-kubeadm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<String>,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why the node failed (set with phase Failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Version the node is being moved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<KubeVersion>,
    /// When the node started (cordoned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When the node's phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<DateTime<Utc>>,
    /// When the node finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
}

/// Node counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    /// Nodes in the operation.
    pub total: u32,
    /// Nodes at the target version, verified.
    pub completed: u32,
    /// Nodes being drained, upgraded or verified.
    pub upgrading: u32,
    /// Nodes not started yet.
    pub pending: u32,
    /// Nodes that failed.
    pub failed: u32,
}

/// Result of one preflight check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreflightCheck {
    /// Check name.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Detail, especially on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Results of the preflight checks run before the first node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreflightResults {
    /// Every check passed.
    pub passed: bool,
    /// Each check.
    #[serde(default)]
    pub checks: Vec<PreflightCheck>,
}

/// Progress along the upgrade path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradePathStatus {
    /// The control plane's version when the operation started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<KubeVersion>,
    /// The final version (spec.targetVersion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<KubeVersion>,
    /// Control-plane versions visited in order.
    #[serde(default)]
    pub steps: Vec<KubeVersion>,
    /// Index into `steps` of the hop in progress (equal to totalSteps when all are done).
    #[serde(default)]
    pub current_step: u32,
    /// Number of hops.
    #[serde(default)]
    pub total_steps: u32,
}

/// The verified etcd backup taken for this operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupInfo {
    /// Object name of the snapshot in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_snapshot: Option<String>,
    /// When it was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Store URL it was uploaded to (no credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Snapshot size in bytes.
    #[serde(default)]
    pub size_bytes: u64,
    /// SHA-256 of the snapshot, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// etcd revision at the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// Node whose etcd was snapshotted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Read back from the store and checked after upload.
    #[serde(default)]
    pub verified: bool,
}

/// Observed state of a DirectUpdate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectUpdateStatus {
    /// Pending, InProgress, Succeeded, Failed, RequiresAttention, Paused, Cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Identifier the agents see in node annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<String>,
    /// When the first node started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<DateTime<Utc>>,
    /// When the operation ended (Succeeded, Failed or Cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
    /// Human-readable state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `completed/total` nodes, for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Per-node progress.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, NodeStatus>,
    /// Node counts by state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// Results of the preflight checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight_results: Option<PreflightResults>,
    /// Progress along spec.upgradePath.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_path: Option<UpgradePathStatus>,
    /// The verified etcd backup; no control-plane node is upgraded without one when spec.backup.etcd is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_info: Option<BackupInfo>,
    /// The plan the controller made itself, for a DirectUpdate written without `spec.stages`
    /// (seed style: targetVersion, strategy, concurrency, canary, nodeSelector).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// Standard conditions (Ready, Progressing, Degraded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A DirectUpdate that starts at a given time.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cupcake.ricardomolendijk.com",
    crates(kube_core = "::kube_core"),
    version = "v1",
    kind = "ScheduledUpdate",
    shortname = "su",
    category = "cupcake",
    status = "ScheduledUpdateStatus",
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.targetVersion"}"#,
    printcolumn = r#"{"name":"At","type":"string","jsonPath":".spec.scheduleAt"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledUpdateSpec {
    /// When to create the DirectUpdate (RFC 3339).
    pub schedule_at: DateTime<Utc>,
    /// The DirectUpdate to create.
    #[serde(flatten)]
    pub update: DirectUpdateSpec,
}

/// Observed state of a ScheduledUpdate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledUpdateStatus {
    /// Scheduled, Executing, Completed, Failed or Cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ScheduledUpdatePhase>,
    /// When the DirectUpdate is (or was) due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// When the DirectUpdate was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executed_at: Option<DateTime<Utc>>,
    /// The DirectUpdate created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_update_name: Option<String>,
    /// Human-readable state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Recurring upgrades and maintenance windows, in-cluster.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "cupcake.ricardomolendijk.com",
    crates(kube_core = "::kube_core"),
    version = "v1",
    kind = "UpdateSchedule",
    shortname = "us",
    category = "cupcake",
    status = "UpdateScheduleStatus",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Suspended","type":"boolean","jsonPath":".spec.suspended"}"#,
    printcolumn = r#"{"name":"Next","type":"string","jsonPath":".status.nextWindowStart"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(transparent)]
pub struct UpdateScheduleCrdSpec {
    /// The schedule.
    pub inner: UpdateScheduleSpec,
}

/// Observed state of an UpdateSchedule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateScheduleStatus {
    /// When it last created a DirectUpdate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled_time: Option<DateTime<Utc>>,
    /// When it will next attempt one (the seed's `schedule`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_scheduled_time: Option<DateTime<Utc>>,
    /// The last DirectUpdate it created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_name: Option<String>,
    /// DirectUpdates it created that are still running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<String>,
    /// Start of the next maintenance window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_window_start: Option<DateTime<Utc>>,
    /// Human-readable state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
