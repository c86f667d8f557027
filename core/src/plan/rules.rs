//! The planner's rules: every `planner.*` finding id, with its severity and
//! whether `force` in cluster.yaml may override it. Defined here once; the
//! checks build their findings from these values.
//!
//! Conditions the default policy pack reports are not planner rules: NotReady
//! nodes (`controlplane.not-ready`, `readiness.nodes-not-ready`) and PDBs that
//! allow no disruption (`pdb.zero-disruptions`), so one problem gives one finding.

use cupcake_api::plan::{Finding, Severity};

/// One planner rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The finding's `rule`, `planner.<name>`.
    pub id: &'static str,
    pub severity: Severity,
    /// `force: [<id>]` turns the deny into a forced one.
    pub forceable: bool,
}

impl Rule {
    /// A finding of this rule.
    pub fn finding(&self, message: impl Into<String>) -> Finding {
        Finding::planner(self.id, self.severity, self.forceable, message)
    }
}

const fn rule(id: &'static str, severity: Severity, forceable: bool) -> Rule {
    Rule {
        id,
        severity,
        forceable,
    }
}

/// No kube-apiserver static pod: kubelet versions stand in for the apiservers.
pub const NO_STATIC_PODS: Rule = rule("planner.no-static-pods", Severity::Warn, false);
/// The snapshot has no control-plane node.
pub const NO_CONTROL_PLANE: Rule = rule("planner.no-control-plane", Severity::Deny, false);
/// The target is a pre-release that `allowPrerelease` does not accept.
pub const PRERELEASE: Rule = rule("planner.prerelease", Severity::Deny, false);
/// The target has another major version than the control plane.
pub const MAJOR_CHANGE: Rule = rule("planner.major-change", Severity::Deny, false);
/// The target is more minors away than the catalogue spans (or than 10 without one).
pub const TOO_MANY_MINORS: Rule = rule("planner.too-many-minors", Severity::Deny, false);
/// The target is not a release listed in versions.yaml.
pub const TARGET_NOT_IN_CATALOG: Rule = rule("planner.target-not-in-catalog", Severity::Deny, true);
/// The target is an older minor than the control plane.
pub const MINOR_DOWNGRADE: Rule = rule("planner.minor-downgrade", Severity::Deny, false);
/// The target is an older patch of the control plane's minor.
pub const PATCH_DOWNGRADE: Rule = rule("planner.patch-downgrade", Severity::Deny, true);
/// kube-apiservers more than one minor apart.
pub const APISERVER_SKEW: Rule = rule("planner.apiserver-skew", Severity::Warn, false);
/// kube-apiservers on different versions (within one minor).
pub const MIXED_APISERVERS: Rule = rule("planner.mixed-apiservers", Severity::Warn, false);
/// A kube-apiserver already runs a version newer than the target.
pub const APISERVER_NEWER_THAN_TARGET: Rule =
    rule("planner.apiserver-newer-than-target", Severity::Deny, false);
/// An in-scope kubelet runs a version newer than the target.
pub const KUBELET_NEWER_THAN_TARGET: Rule =
    rule("planner.kubelet-newer-than-target", Severity::Deny, false);
/// An in-scope kubelet is a newer minor than the oldest kube-apiserver.
pub const KUBELET_NEWER_THAN_APISERVER: Rule = rule(
    "planner.kubelet-newer-than-apiserver",
    Severity::Warn,
    false,
);
/// An in-scope kubelet is already out of the skew policy.
pub const KUBELET_OUT_OF_SKEW: Rule = rule("planner.kubelet-out-of-skew", Severity::Warn, false);
/// Nodes outside nodeSelector would fall out of skew with the target control plane.
pub const OUT_OF_SCOPE_SKEW: Rule = rule("planner.out-of-scope-skew", Severity::Deny, true);
/// An intermediate minor has no release in versions.yaml.
pub const NO_CATALOG: Rule = rule("planner.no-catalog", Severity::Warn, false);
/// Canary nodes that are not in-scope workers, or no worker matching the canary selector.
pub const CANARY_MISSING: Rule = rule("planner.canary-missing", Severity::Warn, false);

/// The snapshot has no PodDisruptionBudget at all (made without `-A`, or no PDBs exist).
pub const NO_PDBS: Rule = rule("planner.no-pdbs", Severity::Warn, false);
/// Every pod of the snapshot is in one namespace (made with `-n` instead of `-A`?).
pub const ONE_NAMESPACE: Rule = rule("planner.one-namespace", Severity::Warn, false);
/// `nodeSelector` matches no worker: only the control plane would be upgraded.
pub const SELECTOR_MATCHES_NO_WORKER: Rule =
    rule("planner.selector-matches-no-worker", Severity::Warn, false);
/// `backup.etcd` is on but no `backup.store` is set.
pub const BACKUP_WITHOUT_STORE: Rule = rule("planner.backup-without-store", Severity::Warn, false);

/// Every planner rule.
pub const ALL: &[Rule] = &[
    NO_PDBS,
    ONE_NAMESPACE,
    SELECTOR_MATCHES_NO_WORKER,
    BACKUP_WITHOUT_STORE,
    NO_STATIC_PODS,
    NO_CONTROL_PLANE,
    MAJOR_CHANGE,
    TOO_MANY_MINORS,
    TARGET_NOT_IN_CATALOG,
    PRERELEASE,
    MINOR_DOWNGRADE,
    PATCH_DOWNGRADE,
    APISERVER_SKEW,
    MIXED_APISERVERS,
    APISERVER_NEWER_THAN_TARGET,
    KUBELET_NEWER_THAN_TARGET,
    KUBELET_NEWER_THAN_APISERVER,
    KUBELET_OUT_OF_SKEW,
    OUT_OF_SCOPE_SKEW,
    NO_CATALOG,
    CANARY_MISSING,
];

/// The rule with this id.
pub fn by_id(id: &str) -> Option<&'static Rule> {
    ALL.iter().find(|r| r.id == id)
}
