//! The plan model: what the planner produces, what the policy gate reads as
//! `input.plan`, and what a DirectUpdate carries as its node order.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::KubeVersion;

/// One control-plane hop: one minor at a time (or a patch upgrade within a minor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Hop {
    /// Control-plane version before the hop.
    pub from: KubeVersion,
    /// Control-plane version after the hop.
    pub to: KubeVersion,
}

/// What a stage does.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum StageKind {
    /// Take and verify an etcd snapshot (on the listed control-plane node) before a control-plane hop.
    Backup,
    /// Upgrade control-plane nodes, one per batch; the first runs `kubeadm upgrade apply`.
    ControlPlane,
    /// Upgrade the canary workers as one batch.
    Canary,
    /// Upgrade the remaining workers in batches.
    Workers,
}

impl StageKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Backup => "backup",
            Self::ControlPlane => "control-plane",
            Self::Canary => "canary",
            Self::Workers => "workers",
        }
    }
}

/// A step of the plan: nodes moved to one version, batch by batch, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Stage {
    /// What the stage does.
    pub kind: StageKind,
    /// The version the stage's nodes end at.
    pub version: KubeVersion,
    /// Node names, batch by batch; a batch's nodes are drained and upgraded together.
    pub batches: Vec<Vec<String>>,
}

impl Stage {
    /// All nodes of the stage in order.
    pub fn nodes(&self) -> impl Iterator<Item = &String> {
        self.batches.iter().flatten()
    }
}

/// Forecast of how long the plan takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Estimate {
    /// Seconds from the first step to the last.
    pub seconds: u64,
}

/// The upgrade plan: control-plane hops and the ordered stages that carry them out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// Control-plane hops, oldest first.
    pub hops: Vec<Hop>,
    /// Stages in execution order.
    pub stages: Vec<Stage>,
    /// Duration forecast.
    pub estimate: Estimate,
}

/// How bad a finding is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Blocks the plan unless forced (when forceable).
    Deny,
    /// Postpones the plan (outside a window, a PDB that needs time).
    Defer,
    /// Informational.
    Warn,
}

/// One rule's verdict on a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Rule id, e.g. `skew.kubelet-too-old` or `planner.patch-downgrade`.
    pub rule: String,
    /// deny | warn | defer.
    pub severity: Severity,
    /// Whether `force: [rule]` in cluster.yaml may override a deny.
    pub forceable: bool,
    /// Whether the cluster's `force` list overrode it.
    pub forced: bool,
    /// What is wrong and what to do about it.
    pub message: String,
    /// `planner`, or the policy file the rule came from.
    pub source: String,
    /// For defers: when to look again (RFC 3339), if the rule knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

impl Finding {
    /// A finding raised by the planner itself.
    pub fn planner(
        rule: &str,
        severity: Severity,
        forceable: bool,
        message: impl Into<String>,
    ) -> Self {
        Self {
            rule: rule.to_string(),
            severity,
            forceable,
            forced: false,
            message: message.into(),
            source: "planner".to_string(),
            until: None,
        }
    }
}

/// The gate's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
    Defer,
}

impl Verdict {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::Defer => "defer",
        }
    }
}

/// Verdict plus the findings behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// allow | deny | defer.
    pub verdict: Verdict,
    /// When a deferred plan may go ahead (the next window start), if known.
    pub defer_until: Option<DateTime<Utc>>,
    /// Every finding, denies first.
    pub findings: Vec<Finding>,
}

impl Decision {
    /// Deny if any deny is not forced, else defer if any defer, else allow.
    /// Marks forceable denies whose rule is in `force` as forced.
    pub fn from_findings(
        mut findings: Vec<Finding>,
        force: &[String],
        defer_until: Option<DateTime<Utc>>,
    ) -> Self {
        for f in &mut findings {
            if f.severity == Severity::Deny && f.forceable && force.iter().any(|r| r == &f.rule) {
                f.forced = true;
            }
        }
        findings
            .sort_by(|a, b| (a.severity, a.forced, &a.rule).cmp(&(b.severity, b.forced, &b.rule)));
        let verdict = if findings
            .iter()
            .any(|f| f.severity == Severity::Deny && !f.forced)
        {
            Verdict::Deny
        } else if findings.iter().any(|f| f.severity == Severity::Defer) {
            Verdict::Defer
        } else {
            Verdict::Allow
        };
        let defer_until = if verdict == Verdict::Defer {
            defer_until.or_else(|| findings.iter().filter_map(|f| f.until).max())
        } else {
            None
        };
        Self {
            verdict,
            defer_until,
            findings,
        }
    }
}

/// The versions running now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CurrentVersions {
    /// The control plane's version: the lowest kube-apiserver version.
    pub control_plane: Option<KubeVersion>,
    /// kube-apiserver version per control-plane node.
    pub apiservers: BTreeMap<String, KubeVersion>,
    /// How many nodes run each kubelet version.
    pub kubelets: BTreeMap<String, usize>,
}
