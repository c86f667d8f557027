//! Fleet-repo manifests: `clusters/<name>/cluster.yaml` (ClusterVersion),
//! `clusters/<name>/schedule.yaml` (UpdateSchedule) and `versions.yaml`
//! (VersionCatalog). Every file is `apiVersion`/`kind`/`metadata`/`spec`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::KubeVersion;
use crate::common::{
    AllowPrerelease, CanarySpec, Component, DrainSpec, GoDuration, IntOrPercent, Strategy,
    default_components,
};
use crate::schedule::UpdateScheduleSpec;

/// `apiVersion` of every CUPCAKE manifest.
pub const API_VERSION: &str = "cupcake.ricardomolendijk.com/v1";

/// Metadata of a fleet-repo manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ManifestMeta {
    /// Name; for cluster.yaml conventionally the cluster's folder name.
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A fleet-repo manifest with a typed spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest<S> {
    /// Always `cupcake.ricardomolendijk.com/v1`.
    pub api_version: String,
    /// ClusterVersion, UpdateSchedule or VersionCatalog.
    pub kind: String,
    pub metadata: ManifestMeta,
    pub spec: S,
}

/// `clusters/<name>/cluster.yaml`.
pub type ClusterVersion = Manifest<ClusterVersionSpec>;
/// `clusters/<name>/schedule.yaml`.
pub type UpdateScheduleManifest = Manifest<UpdateScheduleSpec>;
/// `versions.yaml`.
pub type VersionCatalog = Manifest<VersionCatalogSpec>;

/// The desired state of one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterVersionSpec {
    /// The Kubernetes version the cluster should run (1.34.2 or v1.34.2).
    pub kubernetes_version: KubeVersion,
    /// Host components to upgrade (default kubeadm, kubelet, kubectl).
    #[serde(default = "default_components")]
    pub components: Vec<Component>,
    /// How workers are rolled: rolling (default), parallel or canary.
    #[serde(default)]
    pub strategy: Strategy,
    /// Workers upgraded at once (a count or a percentage). Exclusive with maxUnavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<IntOrPercent>,
    /// Same as concurrency, in Deployment terms. Exclusive with concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrPercent>,
    /// Canary workers upgraded first, alone.
    #[serde(default)]
    pub canary: CanarySpec,
    /// Only nodes with all these labels are upgraded (control-plane nodes always are).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// How nodes are drained.
    #[serde(default)]
    pub drain: DrainSpec,
    /// etcd backup before every control-plane hop.
    #[serde(default)]
    pub backup: BackupSpec,
    /// Run preflight checks on each node before upgrading it.
    #[serde(default = "yes")]
    pub preflight_checks: bool,
    /// Accept pre-release targets: none (default), rc or all.
    #[serde(default)]
    pub allow_prerelease: AllowPrerelease,
    /// Rule ids whose (forceable) denies are overridden for this cluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub force: Vec<String>,
    /// Per-step durations used for the plan's estimate.
    #[serde(default)]
    pub estimates: StepEstimates,
}

fn yes() -> bool {
    true
}

/// etcd backup settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackupSpec {
    /// Snapshot etcd before every control-plane hop (default true).
    #[serde(default = "yes")]
    pub etcd: bool,
    /// Where snapshots go: a URL (s3://bucket/prefix, gs://…, az://…, file:///path) or the name of a store configured in the reconciler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
}

impl Default for BackupSpec {
    fn default() -> Self {
        Self {
            etcd: true,
            store: None,
        }
    }
}

/// How long each kind of step takes, for the estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepEstimates {
    /// An etcd snapshot + upload + verify (default 5m).
    #[serde(default = "d_backup")]
    pub backup: GoDuration,
    /// One control-plane node (default 10m).
    #[serde(default = "d_cp")]
    pub control_plane_node: GoDuration,
    /// One worker batch: drain, upgrade, rejoin (default 7m).
    #[serde(default = "d_worker")]
    pub worker_batch: GoDuration,
}

fn d_backup() -> GoDuration {
    GoDuration::from_secs(300)
}
fn d_cp() -> GoDuration {
    GoDuration::from_secs(600)
}
fn d_worker() -> GoDuration {
    GoDuration::from_secs(420)
}

impl Default for StepEstimates {
    fn default() -> Self {
        Self {
            backup: d_backup(),
            control_plane_node: d_cp(),
            worker_batch: d_worker(),
        }
    }
}

/// The known Kubernetes releases, for choosing intermediate hops.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VersionCatalogSpec {
    /// Released versions, in any order.
    pub versions: Vec<KubeVersion>,
}

impl VersionCatalogSpec {
    /// The newest release of `major.minor` that `allow` permits.
    pub fn latest_patch(
        &self,
        major: u64,
        minor: u64,
        allow: AllowPrerelease,
    ) -> Option<&KubeVersion> {
        self.versions
            .iter()
            .filter(|v| v.major == major && v.minor == minor && allow.permits(v))
            .max()
    }
}
