//! The status file `status/<cluster>.yaml` that the GitOps loop commits to the
//! status branch: a published contract (`schemas/status-file.schema.json`).
//! Serialization is deterministic (struct field order, sorted maps), so an
//! unchanged state gives unchanged bytes and no commit.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::KubeVersion;
use crate::crd::{Phase, Summary};
use crate::plan::{Finding, Verdict};

/// `status/<cluster>.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "CUPCAKE status file")]
pub struct StatusFile {
    /// Cluster name (its folder under `clusters/`).
    pub cluster: String,
    /// The desired-state commit this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The target version of `cluster.yaml` (absent when it could not be loaded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<KubeVersion>,
    /// Versions running in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<ObservedVersions>,
    /// The policy gate's decision on the desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<StatusDecision>,
    /// The DirectUpdate carrying the desired state out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_update: Option<StatusDirectUpdate>,
    /// Load or source errors; absent when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The newer version `autoUpdate` proposes, and what became of the proposal
    /// (absent when autoUpdate is off or nothing newer is allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_update: Option<StatusAutoUpdate>,
}

/// An auto-update proposal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusAutoUpdate {
    /// The version proposed.
    pub version: KubeVersion,
    /// The branch with the bump (`cupcake/update-<cluster>`), once pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The pull request proposing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<u64>,
    /// What happened, or why no pull request was opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Versions observed in the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObservedVersions {
    /// The control plane's version (the oldest kube-apiserver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<KubeVersion>,
    /// How many nodes run each kubelet version.
    #[serde(default)]
    pub kubelets: BTreeMap<String, usize>,
}

/// The verdict, in short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusDecision {
    /// allow, defer or deny.
    pub verdict: Verdict,
    /// When a deferred plan may start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defer_until: Option<DateTime<Utc>>,
    /// Every finding, planner and policy.
    #[serde(default)]
    pub findings: Vec<Finding>,
}

/// The DirectUpdate and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusDirectUpdate {
    /// Its name (deterministic for a plan).
    pub name: String,
    /// Its phase, once the rollout controller has seen it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// `completed/total` nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Node counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// Why it is not moving, when it is not: waiting for another DirectUpdate,
    /// waiting for a retry, the controller's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
