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
