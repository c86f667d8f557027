//! Label and annotation keys. The node annotations are the reconciler ↔ agent protocol.

/// Node annotation: the DirectUpdate operation the node is assigned to.
pub const OPERATION_ID: &str = "cupcake.ricardomolendijk.com/operation-id";
/// Node annotation: version the agent must move the node to.
pub const TARGET_VERSION: &str = "cupcake.ricardomolendijk.com/target-version";
/// Node annotation: comma-separated components to upgrade.
pub const COMPONENTS: &str = "cupcake.ricardomolendijk.com/components";
/// Node annotation: pending | in-progress | completed | failed.
pub const STATUS: &str = "cupcake.ricardomolendijk.com/status";
/// Node annotation: the step the agent is on.
pub const STEP: &str = "cupcake.ricardomolendijk.com/step";
/// Node annotation: `apply` (first control-plane node of a hop) or `node`.
pub const UPGRADE_MODE: &str = "cupcake.ricardomolendijk.com/upgrade-mode";
/// Node annotation: on failure, what failed, in one line (written by the agent).
pub const MESSAGE: &str = "cupcake.ricardomolendijk.com/message";
/// Node annotation: take an etcd snapshot for this operation id (written by the controller).
pub const BACKUP_REQUEST: &str = "cupcake.ricardomolendijk.com/backup-request";
/// Node annotation: the snapshot's [`BackupResult`](crate::protocol::BackupResult), JSON (written by the agent).
pub const BACKUP_RESULT: &str = "cupcake.ricardomolendijk.com/backup-result";
/// Node annotation: store URL for the `backup-request` (the DirectUpdate's `spec.backup.storeRef`;
/// written with the request, replaces the agent's `--backup-store`).
pub const BACKUP_STORE: &str = "cupcake.ricardomolendijk.com/backup-store";
/// Node annotation: `<namespace>/<name>` of the air-gapped bundle ConfigMap to install from
/// (written with the assignment when `spec.airGapped.enabled`; see [`crate::bundle`]).
pub const PACKAGE_SOURCE: &str = "cupcake.ricardomolendijk.com/package-source";
/// Node annotation: report disk space (and, with `etcd`, etcd health) for this operation id
/// (written by the controller before the first node is touched).
pub const PREFLIGHT_REQUEST: &str = "cupcake.ricardomolendijk.com/preflight-request";
/// Node annotation: `true` — the agent also reports etcd's health (set on the backup node).
pub const PREFLIGHT_ETCD: &str = "cupcake.ricardomolendijk.com/preflight-etcd";
/// Node annotation: the agent's [`PreflightReport`](crate::protocol::PreflightReport), JSON.
pub const PREFLIGHT_RESULT: &str = "cupcake.ricardomolendijk.com/preflight-result";
/// Node annotation: the node was already cordoned when the controller took it (never uncordon it).
pub const ADMIN_CORDONED: &str = "cupcake.ricardomolendijk.com/admin-cordoned";

/// Every node annotation of the protocol (cleared together when an assignment ends).
pub const NODE_ASSIGNMENT: [&str; 8] = [
    OPERATION_ID,
    TARGET_VERSION,
    COMPONENTS,
    UPGRADE_MODE,
    STATUS,
    STEP,
    MESSAGE,
    PACKAGE_SOURCE,
];

/// DirectUpdate annotation: `<node>` — retry that failed node.
pub const RETRY: &str = "cupcake.ricardomolendijk.com/retry";
/// DirectUpdate annotation (seed runbook): `true` pauses like `spec.paused`.
pub const PAUSED: &str = "cupcake.ricardomolendijk.com/paused";

/// Label on rendered CRs: the fleet cluster name.
pub const CLUSTER: &str = "cupcake.ricardomolendijk.com/cluster";
/// Label on rendered CRs: hash of the plan that produced it.
pub const PLAN_HASH: &str = "cupcake.ricardomolendijk.com/plan-hash";
/// Label on rendered CRs: who made it.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Annotation on rendered CRs: fleet commit.
pub const SOURCE_REVISION: &str = "cupcake.ricardomolendijk.com/source-revision";
/// Annotation on rendered CRs: fleet repository.
pub const SOURCE_REPOSITORY: &str = "cupcake.ricardomolendijk.com/source-repository";
/// Annotation on rendered CRs: path of cluster.yaml in the fleet repo.
pub const SOURCE_PATH: &str = "cupcake.ricardomolendijk.com/source-path";

/// Node label of control-plane nodes.
pub const ROLE_CONTROL_PLANE: &str = "node-role.kubernetes.io/control-plane";
/// Legacy node label of control-plane nodes.
pub const ROLE_MASTER: &str = "node-role.kubernetes.io/master";
