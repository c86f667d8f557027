//! What the loop knows about one cluster, as the status file and as a commit
//! status. Both are pure functions of an [`Assessment`], so the same state
//! always gives the same bytes (no commit) and the same commit status (no call).

use cupcake_api::KubeVersion;
use cupcake_api::crd::{DirectUpdate, Phase};
use cupcake_api::plan::{Finding, Severity, Verdict};
use cupcake_api::report::PlanReport;
use cupcake_api::status_file::{ObservedVersions, StatusDecision, StatusDirectUpdate, StatusFile};
use kube::ResourceExt;

/// The loop's view of one cluster at one revision.
#[derive(Debug, Clone)]
pub struct Assessment {
    pub cluster: String,
    /// The desired-state commit.
    pub revision: Option<String>,
    pub state: State,
}

/// What became of the desired state.
#[derive(Debug, Clone)]
pub enum State {
    /// The fleet could not be read or is invalid (load, source or observe error).
    Error(String),
    /// The pipeline ran.
    Evaluated {
        report: Box<PlanReport>,
        /// The DirectUpdate carrying this desired state (applied now or earlier).
        direct_update: Option<DirectUpdateView>,
        /// Why nothing was applied although the verdict allows it.
        waiting: Option<String>,
    },
}

/// The parts of a DirectUpdate the reports show.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectUpdateView {
    pub name: String,
    pub phase: Option<Phase>,
    pub progress: Option<String>,
    pub summary: Option<cupcake_api::crd::Summary>,
    pub message: Option<String>,
}

impl DirectUpdateView {
    /// From a DirectUpdate object (its status, when the rollout controller wrote one).
    pub fn of(du: &DirectUpdate) -> Self {
        let st = du.status.as_ref();
        Self {
            name: du.name_any(),
            phase: st.and_then(|s| s.phase),
            progress: st.and_then(|s| s.progress.clone()),
            summary: st.and_then(|s| s.summary),
            message: st.and_then(|s| s.message.clone()),
        }
    }
}

/// `status/<cluster>.yaml` on the status branch.
pub fn path(cluster: &str) -> String {
    format!("status/{cluster}.yaml")
}

/// The status file of an assessment.
pub fn status_file(a: &Assessment) -> StatusFile {
    let mut f = StatusFile {
        cluster: a.cluster.clone(),
        revision: a.revision.clone(),
        desired: None,
        observed: None,
        decision: None,
        direct_update: None,
        error: None,
        auto_update: None,
    };
    match &a.state {
        State::Error(e) => f.error = Some(e.clone()),
        State::Evaluated {
            report,
            direct_update,
            waiting,
        } => {
            f.desired = Some(report.target.clone());
            f.observed = Some(ObservedVersions {
                control_plane: report.current.control_plane.clone(),
                kubelets: report.current.kubelets.clone(),
            });
            f.decision = Some(StatusDecision {
                verdict: report.decision.verdict,
                defer_until: report.decision.defer_until,
                findings: report.decision.findings.clone(),
            });
            f.direct_update = match (direct_update, waiting) {
                (Some(du), w) => Some(StatusDirectUpdate {
                    name: du.name.clone(),
                    phase: du.phase,
                    progress: du.progress.clone(),
                    summary: du.summary,
                    message: w.clone().or_else(|| du.message.clone()),
                }),
                (None, Some(w)) => report.direct_update.as_ref().map(|d| StatusDirectUpdate {
                    name: d.name_any(),
                    phase: None,
                    progress: None,
                    summary: None,
                    message: Some(w.clone()),
                }),
                (None, None) => None,
            };
        }
    }
    f
}

/// Deterministic YAML: struct field order, sorted maps, no timestamps of its own.
pub fn to_yaml(f: &StatusFile) -> String {
    yaml_serde::to_string(f).unwrap_or_else(|e| format!("error: 'encoding the status file: {e}'\n"))
}

/// GitHub commit status states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitState {
    Pending,
    Success,
    Failure,
}

impl CommitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CommitState::Pending => "pending",
            CommitState::Success => "success",
            CommitState::Failure => "failure",
        }
    }
}

/// The commit status of an assessment: pending while deferred, waiting or in
/// progress; success when done or up to date; failure when invalid, denied or
/// failed. The description names the first reason.
pub fn commit_status(a: &Assessment) -> (CommitState, String) {
    let (report, du, waiting) = match &a.state {
        State::Error(e) => return (CommitState::Failure, format!("invalid: {e}")),
        State::Evaluated {
            report,
            direct_update,
            waiting,
        } => (report, direct_update, waiting),
    };
    if let Some(du) = du {
        let phase = du.phase.unwrap_or(Phase::Pending);
        let progress = du
            .progress
            .as_deref()
            .map(|p| format!(" ({p} nodes)"))
            .unwrap_or_default();
        let why = du
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        return match phase {
            Phase::Succeeded => (
                CommitState::Success,
                format!("{} upgraded to {}{progress}", a.cluster, report.target),
            ),
            Phase::Failed | Phase::Cancelled => (
                CommitState::Failure,
                format!("DirectUpdate {} {phase:?}{why}", du.name),
            ),
            Phase::RequiresAttention => (
                CommitState::Failure,
                format!("DirectUpdate {} requires attention{why}", du.name),
            ),
            Phase::Pending | Phase::InProgress | Phase::Paused => (
                CommitState::Pending,
                match waiting {
                    Some(w) => w.clone(),
                    None => format!("DirectUpdate {} {phase:?}{progress}", du.name),
                },
            ),
        };
    }
    if report.up_to_date {
        return (
            CommitState::Success,
            format!("{} is at {}: up to date", a.cluster, report.target),
        );
    }
    match report.decision.verdict {
        Verdict::Deny => (
            CommitState::Failure,
            format!(
                "denied: {}",
                first_reason(&report.decision.findings, Severity::Deny)
            ),
        ),
        Verdict::Defer => (
            CommitState::Pending,
            match report.decision.defer_until {
                Some(t) => format!(
                    "deferred until {}: {}",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    first_reason(&report.decision.findings, Severity::Defer)
                ),
                None => format!(
                    "deferred: {}",
                    first_reason(&report.decision.findings, Severity::Defer)
                ),
            },
        ),
        Verdict::Allow => (
            CommitState::Pending,
            waiting
                .clone()
                .unwrap_or_else(|| format!("allowed: upgrading to {}", report.target)),
        ),
    }
}

fn first_reason(findings: &[Finding], severity: Severity) -> String {
    findings
        .iter()
        .find(|f| f.severity == severity && !f.forced)
        .map(|f| format!("{}: {}", f.rule, f.message))
        .unwrap_or_else(|| "no reason given".to_string())
}

/// The kubernetes version the status shows as desired (for logs).
pub fn desired(a: &Assessment) -> Option<&KubeVersion> {
    match &a.state {
        State::Evaluated { report, .. } => Some(&report.target),
        State::Error(_) => None,
    }
}
