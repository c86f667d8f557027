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
#[serde(rename_all = "camelCase")]
pub struct Stage {
    /// What the stage does.
    pub kind: StageKind,
    /// The version the stage's nodes end at.
    pub version: KubeVersion,
    /// Node names, batch by batch; a batch's nodes are drained and upgraded together.
    pub batches: Vec<Vec<String>>,
    /// Worker and canary stages: per batch (same position as in `batches`), what
    /// kept it from holding one more node. Empty for backup and control-plane
    /// stages, which always move one node at a time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub batch_limits: Vec<BatchLimit>,
}

impl Stage {
    /// All nodes of the stage in order.
    pub fn nodes(&self) -> impl Iterator<Item = &String> {
        self.batches.iter().flatten()
    }
}

/// Why a worker batch ends where it does.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum BatchLimitKind {
    /// The batch holds as many nodes as the cluster's batch size allows.
    Concurrency,
    /// The canary nodes, upgraded together before any other worker of the pass.
    Canary,
    /// A PodDisruptionBudget: the next node would take more of its pods down
    /// than it allows now, or this node's pods alone exceed it.
    Pdb,
    /// The stage had no more nodes to add.
    Remaining,
}

/// What limited the size of one worker batch. A flat object (not a tagged
/// enum) so it stays a structural schema inside the DirectUpdate CRD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchLimit {
    /// concurrency | canary | pdb | remaining.
    pub kind: BatchLimitKind,
    /// `concurrency`: nodes per batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    /// `concurrency`: where the size comes from — `concurrency: 25%`,
    /// `maxUnavailable: 2`, or `strategy: rolling` (one node at a time when
    /// neither is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
    /// `pdb`: the PDB as `namespace/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdb: Option<String>,
    /// `pdb`: its own limit as written, `maxUnavailable 1` or `minAvailable 80%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<String>,
    /// `pdb`: disruptions it allows now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<i64>,
    /// `pdb`: this batch's single node alone exceeds the budget, so it goes alone
    /// and its drain waits on the PDB.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub alone: bool,
    /// `remaining`: workers the cluster's `nodeSelector` leaves out of the plan.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub not_in_scope: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl BatchLimit {
    fn of(kind: BatchLimitKind) -> Self {
        Self {
            kind,
            size: None,
            setting: None,
            pdb: None,
            budget: None,
            allowed: None,
            alone: false,
            not_in_scope: 0,
        }
    }

    /// Full at the batch size `size`, set by `setting`.
    pub fn concurrency(size: usize, setting: impl Into<String>) -> Self {
        Self {
            size: Some(size),
            setting: Some(setting.into()),
            ..Self::of(BatchLimitKind::Concurrency)
        }
    }

    /// The canary batch.
    pub fn canary() -> Self {
        Self::of(BatchLimitKind::Canary)
    }

    /// Stopped by the PDB `pdb` (`namespace/name`).
    pub fn pdb(pdb: String, budget: String, allowed: i64, alone: bool) -> Self {
        Self {
            pdb: Some(pdb),
            budget: Some(budget),
            allowed: Some(allowed),
            alone,
            ..Self::of(BatchLimitKind::Pdb)
        }
    }

    /// The stage's last nodes.
    pub fn remaining(not_in_scope: usize) -> Self {
        Self {
            not_in_scope,
            ..Self::of(BatchLimitKind::Remaining)
        }
    }
}

impl std::fmt::Display for BatchLimit {
    /// `concurrency 5`, `PDB shop/web (maxUnavailable 1, allows 1 now)`, `canary`,
    /// `remaining nodes (3 workers not in scope)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            BatchLimitKind::Concurrency => {
                let size = self.size.unwrap_or(0);
                let setting = self.setting.as_deref().unwrap_or("");
                if setting == format!("concurrency: {size}") {
                    write!(f, "concurrency {size}")
                } else {
                    write!(f, "batch size {size} ({setting})")
                }
            }
            BatchLimitKind::Canary => f.write_str("canary"),
            BatchLimitKind::Pdb => {
                write!(
                    f,
                    "PDB {} ({}, allows {} now)",
                    self.pdb.as_deref().unwrap_or("?"),
                    self.budget.as_deref().unwrap_or("no budget"),
                    self.allowed.unwrap_or(0)
                )?;
                if self.alone {
                    f.write_str(": this node alone exceeds it")?;
                }
                Ok(())
            }
            BatchLimitKind::Remaining if self.not_in_scope == 0 => f.write_str("remaining nodes"),
            BatchLimitKind::Remaining => write!(
                f,
                "remaining nodes ({} workers not in scope)",
                self.not_in_scope
            ),
        }
    }
}

/// Forecast of how long the plan takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Estimate {
    /// Seconds from the first step to the last.
    pub seconds: u64,
    /// Per stage (same position as `stages`): the seconds one batch of that stage
    /// takes (cluster.yaml `estimates`: `backup`, `controlPlaneNode`, `workerBatch`).
    /// The stage takes this times its number of batches; `seconds` is the sum.
    #[serde(
        rename = "batchSeconds",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub batch_seconds: Vec<u64>,
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
