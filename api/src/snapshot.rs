//! The cluster snapshot model: the observed state the planner needs, reduced
//! from Nodes, Pods and PodDisruptionBudgets.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::KubeVersion;

/// A node's role in a kubeadm cluster.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Worker,
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: String,
}

/// Versions of the control-plane static pods on one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneComponents {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apiserver: Option<KubeVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_manager: Option<KubeVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<KubeVersion>,
    /// etcd's own version (3.x), as its image tag says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<String>,
}

/// One node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub role: Role,
    /// `status.nodeInfo.kubeletVersion`.
    pub kubelet_version: KubeVersion,
    /// The Ready condition is True.
    pub ready: bool,
    /// Cordoned.
    pub unschedulable: bool,
    #[serde(default)]
    pub taints: Vec<Taint>,
    /// Control-plane static pods found on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<ControlPlaneComponents>,
}

/// A pod's labels, shared between the pods that have the same.
pub type Labels = std::sync::Arc<BTreeMap<String, String>>;

/// One pod, as far as draining is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    /// `spec.nodeName`; empty for unscheduled pods.
    #[serde(default)]
    pub node: String,
    /// Shared: the pods of one workload carry the same labels, and a snapshot of 50,000
    /// pods held a copy each (27 MB of the controller's 85 MB at its peak, measured with
    /// heaptrack; docs/performance.md).
    #[serde(default)]
    pub labels: Labels,
    /// Kind of the controlling owner (ReplicaSet, DaemonSet, StatefulSet, Job, Node for static pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_kind: Option<String>,
    /// `status.phase`.
    #[serde(default)]
    pub phase: String,
}

impl Pod {
    /// Whether draining the node evicts this pod (DaemonSet, mirror and finished pods stay).
    pub fn evictable(&self) -> bool {
        !matches!(self.owner_kind.as_deref(), Some("DaemonSet" | "Node"))
            && !matches!(self.phase.as_str(), "Succeeded" | "Failed")
    }
}

/// A label selector requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SelectorRequirement {
    pub key: String,
    /// In | NotIn | Exists | DoesNotExist.
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

/// A label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<SelectorRequirement>,
}

impl LabelSelector {
    /// Kubernetes semantics: all requirements must hold; an empty selector matches everything.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let got = labels.get(&r.key);
                match r.operator.as_str() {
                    "In" => got.is_some_and(|v| r.values.contains(v)),
                    "NotIn" => got.is_none_or(|v| !r.values.contains(v)),
                    "Exists" => got.is_some(),
                    "DoesNotExist" => got.is_none(),
                    _ => false,
                }
            })
    }
}

/// `minAvailable` / `maxUnavailable` of a PDB: a count or a percentage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

/// PDB status as the disruption controller reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PdbStatus {
    pub disruptions_allowed: i64,
    pub current_healthy: i64,
    pub desired_healthy: i64,
    pub expected_pods: i64,
}

/// A PodDisruptionBudget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pdb {
    pub namespace: String,
    pub name: String,
    /// `spec.selector`; `None` selects no pods (policy/v1 semantics for a null selector).
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// `None` when the snapshot had no status (a hand-written manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PdbStatus>,
}

/// Everything the planner reads about a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterSnapshot {
    pub nodes: Vec<Node>,
    pub pods: Vec<Pod>,
    pub pdbs: Vec<Pdb>,
}
