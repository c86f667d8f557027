//! The `cupcake plan -o json` document: a published contract that CI scripts,
//! the PR comment and the status file read. `schemas/plan-report.schema.json`
//! is generated from it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::KubeVersion;
use crate::crd::DirectUpdate;
use crate::plan::{CurrentVersions, Decision, Plan, Verdict};

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
}

impl PlanReport {
    /// Process exit code: 0 allowed or up to date, 2 denied, 3 deferred.
    pub fn exit_code(&self) -> u8 {
        match self.decision.verdict {
            Verdict::Allow => 0,
            Verdict::Deny => 2,
            Verdict::Defer => 3,
        }
    }
}
