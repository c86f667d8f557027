//! One pass over one cluster: plan → schedule → gate → render.
//!
//! This is the only place the pipeline is wired. `cupcake plan`, the GitOps
//! loop, the tests and the benchmarks call [`pass`]; none re-wires it.
//!
//! ```
//! use cupcake_core::{pass, PassInput, gate::PolicyEnv, pass::Cluster, schedule};
//! # let spec: cupcake_api::fleet::ClusterVersionSpec =
//! #     serde_json::from_value(serde_json::json!({"kubernetesVersion": "1.34.2"})).unwrap();
//! # let snapshot = cupcake_api::snapshot::ClusterSnapshot::default();
//! # let schedule_spec: cupcake_api::schedule::UpdateScheduleSpec =
//! #     serde_json::from_value(serde_json::json!({"windows": [{"days": ["Sat"], "startTime": "01:00", "endTime": "05:00"}]})).unwrap();
//! // Built once, when the fleet is loaded.
//! let env = PolicyEnv::default_pack();
//! let schedule = schedule::Compiled::new(&schedule_spec).unwrap();
//! let out = pass(PassInput {
//!     cluster: Cluster { name: "demo", spec: &spec, schedule: Some(&schedule), labels: None },
//!     catalog: None,
//!     snapshot: &snapshot,
//!     policies: &env,
//!     config: &serde_json::json!({}),
//!     source: &Default::default(),
//!     now: "2026-11-28T02:30:00Z".parse().unwrap(),
//! })
//! .unwrap();
//! // An empty snapshot has no control plane: the planner denies.
//! assert_eq!(out.decision.verdict, cupcake_api::plan::Verdict::Deny);
//! ```

use chrono::{DateTime, Utc};
use cupcake_api::crd::{DirectUpdate, SourceRef};
use cupcake_api::fleet::{ClusterVersionSpec, VersionCatalogSpec};
use cupcake_api::plan::{Decision, Verdict};
use cupcake_api::policy::PolicyInput;
use cupcake_api::report::PlanReport;
use cupcake_api::snapshot::ClusterSnapshot;

use crate::gate::{self, PolicyEnv};
use crate::plan::{self, ClusterIndex, PlanOutcome, SnapshotDataError};
use crate::render;
use crate::schedule;

/// The cluster's desired state, as loaded from the fleet.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    /// Folder name under `clusters/`.
    pub name: &'a str,
    /// `cluster.yaml`'s spec.
    pub spec: &'a ClusterVersionSpec,
    /// `schedule.yaml`, compiled when it was loaded; `None` without one (always open).
    pub schedule: Option<&'a schedule::Compiled>,
    /// `cluster.yaml`'s `metadata.labels` (`input.cluster.labels`), when it has any.
    pub labels: Option<&'a std::collections::BTreeMap<String, String>>,
}

/// Everything one pass reads. All values: the caller did the IO.
#[derive(Debug, Clone, Copy)]
pub struct PassInput<'a> {
    pub cluster: Cluster<'a>,
    /// `versions.yaml`'s spec, when the fleet has one.
    pub catalog: Option<&'a VersionCatalogSpec>,
    /// The observed cluster.
    pub snapshot: &'a ClusterSnapshot,
    /// The compiled policy environment (default pack + the fleet's rules).
    pub policies: &'a PolicyEnv,
    /// `policies/config.yaml` (`input.config`).
    pub config: &'a serde_json::Value,
    /// Where the desired state came from.
    pub source: &'a SourceRef,
    /// The instant the pass is evaluated at.
    pub now: DateTime<Utc>,
}

/// What one pass decided.
#[derive(Debug, Clone)]
pub struct PassOutcome {
    /// The planner's outcome (plan, current versions, planner findings).
    pub outcome: PlanOutcome,
    /// The policy input the rules saw.
    pub input: PolicyInput,
    /// The verdict and every finding.
    pub decision: Decision,
    /// The DirectUpdate for the plan: present unless up to date or denied. Apply it only
    /// when the verdict is allow; a deferred one is what *would* be created.
    pub direct_update: Option<DirectUpdate>,
}

/// A pass that could not be evaluated at all.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The snapshot holds data the planner would misread (fail closed: no plan, no verdict).
    #[error("snapshot: {0}")]
    Snapshot(#[from] SnapshotDataError),
}

/// Validate the snapshot, plan, evaluate the schedule, gate and render: one cluster,
/// one instant. The snapshot is indexed once, for the planner and the policy input.
pub fn pass(input: PassInput<'_>) -> Result<PassOutcome, PassError> {
    let PassInput {
        cluster,
        catalog,
        snapshot,
        policies,
        config,
        source,
        now,
    } = input;
    plan::validate(snapshot)?;
    let index = ClusterIndex::new(cluster.spec, snapshot);
    let outcome = plan::plan_indexed(
        plan::PlanInput {
            spec: cluster.spec,
            catalog,
            snapshot,
        },
        &index,
    );
    let schedule = schedule::evaluate_compiled(cluster.schedule, now);
    let input = gate::input::build(gate::InputParts {
        cluster: cluster.name,
        labels: cluster.labels,
        spec: cluster.spec,
        index: &index,
        outcome: &outcome,
        schedule: &schedule,
        source,
        now,
        config,
    });
    let decision = gate::decide(policies, &input, &outcome.findings);
    let direct_update = (!outcome.up_to_date && decision.verdict != Verdict::Deny)
        .then(|| render::direct_update(cluster.name, cluster.spec, &outcome, source));
    Ok(PassOutcome {
        outcome,
        input,
        decision,
        direct_update,
    })
}

impl PassOutcome {
    /// The `cupcake plan -o json` document for this pass.
    pub fn report(&self, cluster: &str) -> PlanReport {
        PlanReport {
            cluster: cluster.to_string(),
            revision: self.input.source.revision.clone(),
            target: self.outcome.target.clone(),
            up_to_date: self.outcome.up_to_date,
            current: self.outcome.current.clone(),
            plan: self.outcome.plan.clone(),
            decision: self.decision.clone(),
            direct_update: self.direct_update.clone(),
            schedule: Some(self.input.schedule.clone()),
        }
    }
}
