//! The maintenance-schedule model (`UpdateSchedule`), shared by the CRD and the
//! fleet repo's `schedule.yaml`. Evaluation lives in the reconciler; these are
//! only the values.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Component, GoDuration, Strategy};

/// Regex for a time of day in windows (`01:00`, `23:59`, `24:00` as an end).
pub const TIME_OF_DAY_PATTERN: &str = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$";

/// When upgrades of a cluster may start, what blocks them, and whether new
/// versions are proposed automatically.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateScheduleSpec {
    /// Upgrades may start only inside one of these windows. No windows means always.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<Window>,
    /// Periods when upgrades may not start; an active exclusion beats any window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusions: Vec<Exclusion>,
    /// Stop starting new upgrades (running ones finish their current node).
    #[serde(default)]
    pub suspended: bool,
    /// Propose newer versions as pull requests against the fleet repo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_update: Option<AutoUpdate>,
    /// Seed-compatible: POSIX crontab (5 fields) of when a recurring upgrade is attempted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Seed-compatible: a daily window (start/end time of day) inside which upgrades may start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_window: Option<MaintenanceWindow>,
    /// Seed-compatible: what a recurring upgrade does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_policy: Option<UpdatePolicy>,
}

/// One maintenance window, in one of two forms: a crontab `schedule` plus a
/// `duration`, or `days` plus `startTime`/`endTime`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Window {
    /// POSIX crontab (5 fields: minute hour day-of-month month day-of-week) of when the window opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// How long a crontab window stays open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<GoDuration>,
    /// Days of the week the window opens on (the days form).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<Weekday>,
    /// Time of day the window opens (the days form), HH:MM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"))]
    pub start_time: Option<String>,
    /// Time of day the window closes (the days form), HH:MM; earlier than startTime means the next day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"))]
    pub end_time: Option<String>,
    /// IANA time zone the window is written in (default UTC); daylight-saving correct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The plan's estimated duration must fit before the window closes.
    #[serde(default)]
    pub must_finish: bool,
}

/// A day of the week.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum Weekday {
    #[serde(alias = "Monday")]
    Mon,
    #[serde(alias = "Tuesday")]
    Tue,
    #[serde(alias = "Wednesday")]
    Wed,
    #[serde(alias = "Thursday")]
    Thu,
    #[serde(alias = "Friday")]
    Fri,
    #[serde(alias = "Saturday")]
    Sat,
    #[serde(alias = "Sunday")]
    Sun,
}

/// A period in which upgrades may not start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Exclusion {
    /// Start of the exclusion (RFC 3339).
    pub start: DateTime<Utc>,
    /// End of the exclusion (RFC 3339), exclusive.
    pub end: DateTime<Utc>,
    /// What the exclusion blocks: everything, minor upgrades only, or patch upgrades only.
    #[serde(default)]
    pub scope: ExclusionScope,
    /// Why; shown in findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an exclusion blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExclusionScope {
    /// Every upgrade.
    #[default]
    All,
    /// Minor upgrades; patch upgrades still go through.
    Minor,
    /// Patch upgrades only.
    Patch,
}

/// Proposing new versions automatically.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoUpdate {
    /// Turn automatic proposals on.
    #[serde(default)]
    pub enabled: bool,
    /// Which newer versions are proposed.
    #[serde(default)]
    pub channel: Channel,
    /// Propose through a pull request (otherwise only report the available version).
    #[serde(default = "yes")]
    pub pull_request: bool,
}

fn yes() -> bool {
    true
}

/// Which newer versions auto-update proposes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// The newest patch of the current minor.
    #[default]
    Patch,
    /// The newest patch of the next minor.
    Minor,
}

/// Seed-compatible daily maintenance window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaintenanceWindow {
    /// Opening time of day, HH:MM.
    #[schemars(regex(pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"))]
    pub start: String,
    /// Closing time of day, HH:MM (earlier than start means the next day).
    #[schemars(regex(pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"))]
    pub end: String,
    /// IANA time zone (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// Seed-compatible: what a recurring upgrade does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePolicy {
    /// Versions a recurring upgrade may move to, e.g. `1.34.x` (x matches any patch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^v?[0-9]+\.([0-9]+|x)\.([0-9]+|x)$"))]
    pub target_version_pattern: Option<String>,
    /// Components upgraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
    /// Worker strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Nodes upgraded at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub concurrency: Option<u32>,
    /// Run preflight checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight_checks: Option<bool>,
    /// Extra labels for the DirectUpdates it creates.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

// ---- The schedule evaluated at one instant (a published contract: `input.schedule`).

/// One opening of a window: `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowSpan {
    /// Which window of `spec.windows` (the seed's `maintenanceWindow` counts as the last).
    pub index: usize,
    /// When it opens (RFC 3339, UTC).
    pub start: DateTime<Utc>,
    /// When it closes (RFC 3339, UTC), exclusive.
    pub end: DateTime<Utc>,
    /// The window is marked `mustFinish`: the plan's estimate must fit before `end`.
    pub must_finish: bool,
    /// The window's own IANA time zone (`timeZone`, default UTC), for showing its times.
    #[serde(default = "utc")]
    pub time_zone: String,
}

fn utc() -> String {
    "UTC".to_string()
}

/// An exclusion that is active at `now`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActiveExclusion {
    /// Which exclusion of `spec.exclusions`.
    pub index: usize,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// all | minor | patch.
    pub scope: ExclusionScope,
    /// The exclusion's reason, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The first instant at or after `end` when a window is open (ignoring other exclusions).
    pub resume_at: Option<DateTime<Utc>>,
}

/// The schedule evaluated at one instant: what the policy gate reads as `input.schedule`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleEval {
    /// The cluster has an UpdateSchedule (schedule.yaml). Without one: always open, nothing excluded.
    pub configured: bool,
    /// `spec.suspended`.
    pub suspended: bool,
    /// How many windows are defined (including the seed's maintenanceWindow). 0 means always open.
    pub windows: usize,
    /// An upgrade may start now as far as windows are concerned (true when no windows are defined).
    pub in_window: bool,
    /// The window open at `now`, if any (merged with overlapping openings of the same window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_window: Option<WindowSpan>,
    /// Seconds until the active window closes; absent outside a window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_seconds: Option<i64>,
    /// The earliest window opening strictly after `now`, if any within a year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_window: Option<WindowSpan>,
    /// Exclusions active at `now`.
    pub active_exclusions: Vec<ActiveExclusion>,
    /// Seed-compatible `schedule`: the next time a recurring upgrade is attempted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt: Option<DateTime<Utc>>,
    /// Seed-compatible `updatePolicy.targetVersionPattern` (e.g. `1.34.x`), passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version_pattern: Option<String>,
}
