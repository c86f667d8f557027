//! The reconciler ↔ agent protocol, typed: the node phases the rollout
//! controller walks, the agent states written on a node's annotations, the
//! upgrade modes, the ScheduledUpdate lifecycle and the backup result.
//!
//! The controller decides and writes the assignment; the agent reports. Every
//! value that crosses the wire (annotations, status) has one enum here, so a
//! typo is a compile error instead of a stuck rollout.
//!
//! ```
//! use cupcake_api::protocol::{AgentStatus, NodePhase};
//! assert_eq!(NodePhase::Draining.on_success(), Some(NodePhase::Upgrading));
//! assert_eq!("in-progress".parse::<AgentStatus>().unwrap(), AgentStatus::InProgress);
//! ```

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The timeout that bounds a node phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseTimeout {
    /// No timeout: the phase waits for something outside the node (its turn, a human).
    None,
    /// `spec.drain.timeout` (default 10m): evictions still refused then → RequiresAttention.
    Drain,
    /// `spec.nodeTimeout` (default 30m), counted from the node's `startedAt`.
    Node,
}

/// Where one node is in a DirectUpdate. The controller moves a node forward;
/// `on_success` is the next phase when the current one's work is done.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum NodePhase {
    /// Waiting for its batch. Successor: Draining. No timeout.
    #[default]
    Pending,
    /// Cordoned; pods are being evicted through the eviction API. Successor: Upgrading.
    /// Timeout: `drain.timeout` (a drain still refused then → RequiresAttention naming the PDB).
    Draining,
    /// Assigned to the agent (node annotations); the agent runs the host steps.
    /// Successor: Verifying. Timeout: `nodeTimeout`.
    Upgrading,
    /// The agent reported completed; the controller checks the kubelet version, readiness and,
    /// on control-plane nodes, the static pods' image tags. Successor: Uncordoning. Timeout: `nodeTimeout`.
    Verifying,
    /// Verified; the controller uncordons (unless an admin had cordoned it) and clears the
    /// assignment. Successor: Completed. Timeout: `nodeTimeout`.
    Uncordoning,
    /// At the target version, verified, schedulable again. Terminal.
    Completed,
    /// The agent reported failed, or a timeout passed. Terminal until retried
    /// (`cupcake.ricardomolendijk.com/retry=<node>` on the DirectUpdate).
    Failed,
    /// Not upgraded by this operation (already at the target, or cancelled before it started). Terminal.
    Skipped,
}

impl NodePhase {
    /// Every phase, in lifecycle order.
    pub const ALL: [NodePhase; 8] = [
        Self::Pending,
        Self::Draining,
        Self::Upgrading,
        Self::Verifying,
        Self::Uncordoning,
        Self::Completed,
        Self::Failed,
        Self::Skipped,
    ];

    /// The next phase when this one's work is done; `None` for terminal phases.
    pub fn on_success(self) -> Option<Self> {
        match self {
            Self::Pending => Some(Self::Draining),
            Self::Draining => Some(Self::Upgrading),
            Self::Upgrading => Some(Self::Verifying),
            Self::Verifying => Some(Self::Uncordoning),
            Self::Uncordoning => Some(Self::Completed),
            Self::Completed | Self::Failed | Self::Skipped => None,
        }
    }

    /// Which timeout bounds this phase.
    pub fn timeout(self) -> PhaseTimeout {
        match self {
            Self::Draining => PhaseTimeout::Drain,
            Self::Upgrading | Self::Verifying | Self::Uncordoning => PhaseTimeout::Node,
            Self::Pending | Self::Completed | Self::Failed | Self::Skipped => PhaseTimeout::None,
        }
    }

    /// Completed, Failed or Skipped.
    pub fn is_terminal(self) -> bool {
        self.on_success().is_none()
    }

    /// The node has been touched and not finished: Draining … Uncordoning.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Draining | Self::Upgrading | Self::Verifying | Self::Uncordoning
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Draining => "Draining",
            Self::Upgrading => "Upgrading",
            Self::Verifying => "Verifying",
            Self::Uncordoning => "Uncordoning",
            Self::Completed => "Completed",
            Self::Failed => "Failed",
            Self::Skipped => "Skipped",
        }
    }
}

impl fmt::Display for NodePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value that is not one of an enum's wire names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is not one of: {allowed}")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub allowed: &'static str,
}

/// The `status` annotation of an assigned node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AgentStatus {
    /// Written by the controller with the assignment: the agent should start.
    Pending,
    /// Written by the agent: steps are running.
    InProgress,
    /// Written by the agent: every step is done.
    Completed,
    /// Written by the agent: a step failed (`message` says which and why).
    Failed,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentStatus {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Pending,
            Self::InProgress,
            Self::Completed,
            Self::Failed,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or_else(|| UnknownValue {
            what: "agent status",
            value: s.to_string(),
            allowed: "pending, in-progress, completed, failed",
        })
    }
}

/// The `upgrade-mode` annotation: which kubeadm command the node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpgradeMode {
    /// `kubeadm upgrade apply vX --yes`: the first control-plane node of a hop.
    Apply,
    /// `kubeadm upgrade node`: every other node.
    Node,
}

impl UpgradeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Node => "node",
        }
    }
}

impl fmt::Display for UpgradeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UpgradeMode {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "apply" => Ok(Self::Apply),
            "node" => Ok(Self::Node),
            _ => Err(UnknownValue {
                what: "upgrade mode",
                value: s.to_string(),
                allowed: "apply, node",
            }),
        }
    }
}

/// Lifecycle of a ScheduledUpdate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ScheduledUpdatePhase {
    /// Waiting for `scheduleAt`.
    #[default]
    Scheduled,
    /// Its DirectUpdate exists and runs.
    Executing,
    /// Its DirectUpdate succeeded.
    Completed,
    /// Its DirectUpdate failed, or it could not be created.
    Failed,
    /// Deleted or suspended before it ran.
    Cancelled,
}

/// The agent's report of an etcd snapshot (annotation `backup-result`, JSON), which
/// the controller copies into `status.backupInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupResult {
    /// The `backup-request` this answers (the DirectUpdate's operation id).
    pub operation_id: String,
    /// True when the snapshot was taken, checked, uploaded and read back intact.
    pub ok: bool,
    /// Object name of the snapshot in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_snapshot: Option<String>,
    /// Store URL the snapshot was uploaded to (no credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Size in bytes.
    #[serde(default)]
    pub size_bytes: u64,
    /// SHA-256 of the snapshot, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// etcd revision at the snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// When it was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// On failure: what failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The agent's answer to a `preflight-request` (annotation `preflight-result`, JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreflightReport {
    /// The `preflight-request` this answers (the DirectUpdate's operation id).
    pub operation_id: String,
    /// Free bytes available to unprivileged writers on the filesystem holding `diskPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_free_bytes: Option<u64>,
    /// The path measured (on the host: `/var/lib`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_path: Option<String>,
    /// etcd's health, when the request asked for it (`preflight-etcd: true`); else null.
    #[serde(default)]
    pub etcd: Option<EtcdHealth>,
    /// What the agent could not measure, in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// etcd as one member's endpoint sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EtcdHealth {
    /// The endpoint asked.
    pub endpoint: String,
    /// Members by name (an unstarted member has no name: its peer URL is listed instead).
    #[serde(default)]
    pub members: Vec<String>,
    /// Members that have not started (listed by peer URL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unstarted: Vec<String>,
    /// Active alarms, e.g. `NOSPACE on member 8e9e05c52164694d`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<String>,
    /// Why the member or alarm list could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Which of two `resourceVersion`s of the same kind of object is newer (Kubernetes
/// KEP-5504, stable in 1.35: they are positive integers without leading zeros, of any
/// length, increasing with every write). `None` when either is not such a number: the
/// caller must not guess, and reads the object instead.
pub fn compare_resource_versions(a: &str, b: &str) -> Option<std::cmp::Ordering> {
    let valid =
        |v: &str| !v.is_empty() && !v.starts_with('0') && v.bytes().all(|c| c.is_ascii_digit());
    (valid(a) && valid(b)).then(|| a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
}

#[cfg(test)]
mod tests {

    #[test]
    fn resource_versions_compare_as_numbers_of_any_length() {
        use std::cmp::Ordering::*;
        let cases: &[(&str, &str, Option<std::cmp::Ordering>)] = &[
            ("10", "9", Some(Greater)),
            ("9", "10", Some(Less)),
            ("123", "123", Some(Equal)),
            (
                "18446744073709551616",
                "18446744073709551615",
                Some(Greater),
            ), // beyond u64
            ("0", "1", None),    // zero is never a live version
            ("012", "12", None), // leading zero
            ("", "1", None),
            ("12a", "1", None),
            ("-1", "1", None),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_resource_versions(a, b), *want, "{a} vs {b}");
        }
    }
    use super::*;

    #[test]
    fn every_phase_reaches_a_terminal_one() {
        for p in NodePhase::ALL {
            let mut cur = p;
            let mut steps = 0;
            while let Some(n) = cur.on_success() {
                assert!(n > cur || n.is_terminal(), "{cur} → {n} goes backwards");
                cur = n;
                steps += 1;
                assert!(steps < 10);
            }
            assert!(cur.is_terminal());
        }
        assert_eq!(NodePhase::Pending.timeout(), PhaseTimeout::None);
        assert_eq!(NodePhase::Draining.timeout(), PhaseTimeout::Drain);
        assert_eq!(NodePhase::Upgrading.timeout(), PhaseTimeout::Node);
    }

    #[test]
    fn agent_status_round_trips_its_wire_names() {
        for s in [
            AgentStatus::Pending,
            AgentStatus::InProgress,
            AgentStatus::Completed,
            AgentStatus::Failed,
        ] {
            assert_eq!(s.as_str().parse::<AgentStatus>().unwrap(), s);
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::json!(s.as_str())
            );
        }
        let e = "done".parse::<AgentStatus>().unwrap_err();
        assert!(e.to_string().contains("in-progress"), "{e}");
        assert_eq!("apply".parse::<UpgradeMode>().unwrap(), UpgradeMode::Apply);
        assert!("Apply".parse::<UpgradeMode>().is_err());
    }
}
