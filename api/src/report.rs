//! The `cupcake plan -o json` document: a published contract that CI scripts,
//! the PR comment and the status file read. `schemas/plan-report.schema.json`
//! is generated from it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::KubeVersion;
use crate::crd::DirectUpdate;
use crate::plan::{CurrentVersions, Decision, Plan, Verdict};

/// The rule id of findings raised for broken policies.
pub const POLICY_ERROR: &str = "policy.error";

/// `cupcake plan -o json`. Tests and CI tools depend on these keys.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(title = "CUPCAKE plan report")]
pub struct PlanReport {
    pub cluster: String,
    /// Fleet commit, when the fleet is a git checkout.
    pub revision: Option<String>,
    pub target: KubeVersion,
    pub up_to_date: bool,
    pub current: CurrentVersions,
    pub plan: Plan,
    pub decision: Decision,
    /// The DirectUpdate that would be applied; null when up to date or denied.
    pub direct_update: Option<DirectUpdate>,
    /// The maintenance schedule at `now` (the window open now and when it closes, the next one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<crate::schedule::ScheduleEval>,
}

impl PlanReport {
    /// Process exit code: 0 allowed or up to date, 2 denied, 3 deferred, 1 when a
    /// policy is broken (the verdict is deny, but CI must see an error, not a decision).
    pub fn exit_code(&self) -> u8 {
        self.decision.exit_code()
    }
}

impl Decision {
    /// Exit code of a command that prints this decision (see [`PlanReport::exit_code`]).
    pub fn exit_code(&self) -> u8 {
        if self.findings.iter().any(|f| f.rule == POLICY_ERROR) {
            return 1;
        }
        match self.verdict {
            Verdict::Allow => 0,
            Verdict::Deny => 2,
            Verdict::Defer => 3,
        }
    }
}
