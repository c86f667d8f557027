//! Maintenance schedules: validation, compilation ([`Compiled`], once, when the
//! schedule is loaded), and evaluation against `now` (active window, next
//! window, active exclusions) as a pure function of the schedule and the instant.
//!
//! Semantics, pinned by the tests below:
//! - crontab windows follow POSIX crontab (croner): 5 fields, Sunday is 0 or
//!   7, and when both day fields are restricted a day matches if either does
//!   (`0 0 1 * MON` opens on the 1st *and* on every Monday);
//! - a crontab window opens at each fire time in its time zone and stays open
//!   for `duration` of elapsed time (so a 4h window spanning a DST change is
//!   still four real hours);
//! - a days window opens at `startTime` local time on each listed day and
//!   closes at `endTime` local time, the next day when `endTime` ≤
//!   `startTime`; a local time that does not exist (the spring-forward gap)
//!   moves to the first instant after the gap, an ambiguous one (fall back)
//!   takes the earlier instant;
//! - the seed's `maintenanceWindow` is a days window on every day;
//! - an active exclusion beats any window; no windows at all means always open.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
pub use cupcake_api::schedule::{ActiveExclusion, ScheduleEval, WindowSpan};
use cupcake_api::schedule::{Exclusion, UpdateScheduleSpec, Weekday, Window};

/// A schedule field that is wrong, with its path for error positions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ScheduleError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ScheduleError {
    ScheduleError {
        field: field.into(),
        message: message.into(),
    }
}

/// Parse a POSIX crontab string: exactly 5 fields (minute hour day-of-month
/// month day-of-week), Sunday 0 or 7, day-of-month OR day-of-week.
pub fn parse_cron(s: &str) -> Result<Cron, String> {
    let fields = s.split_whitespace().count();
    if !s.trim_start().starts_with('@') && fields != 5 {
        return Err(format!(
            "invalid crontab {s:?}: expected 5 fields (minute hour day-of-month month day-of-week), got {fields}{}",
            if fields == 6 {
                " (a seconds field is not supported)"
            } else {
                ""
            }
        ));
    }
    Cron::from_str(s).map_err(|e| format!("invalid crontab {s:?}: {e}"))
}

/// Parse an IANA time zone name (default UTC).
pub fn parse_tz(s: Option<&str>) -> Result<Tz, String> {
    match s {
        None => Ok(Tz::UTC),
        Some(name) => name.parse::<Tz>().map_err(|_| {
            format!(
                "unknown time zone {name:?}: expected an IANA name like Europe/Amsterdam or UTC"
            )
        }),
    }
}

/// Parse `HH:MM` (00:00–24:00) into minutes after midnight.
pub fn parse_time_of_day(s: &str) -> Result<u32, String> {
    let bad = || format!("invalid time of day {s:?}: expected HH:MM between 00:00 and 24:00");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u32 = h.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn validate_window(i: usize, w: &Window) -> Result<(), ScheduleError> {
    let at = |f: &str| format!("spec.windows[{i}].{f}");
    let cron_form = w.schedule.is_some() || w.duration.is_some();
    let days_form = !w.days.is_empty() || w.start_time.is_some() || w.end_time.is_some();
    if cron_form && days_form {
        return Err(err(
            format!("spec.windows[{i}]"),
            "a window is either schedule + duration or days + startTime + endTime, not both",
        ));
    }
    if cron_form {
        let s = w
            .schedule
            .as_deref()
            .ok_or_else(|| err(at("schedule"), "a window with a duration needs a schedule"))?;
        parse_cron(s).map_err(|m| err(at("schedule"), m))?;
        let d = w.duration.ok_or_else(|| {
            err(
                at("duration"),
                "a window with a schedule needs a duration (e.g. 4h)",
            )
        })?;
        if d.as_secs() == 0 {
            return Err(err(at("duration"), "must be longer than 0s"));
        }
        // A window open for more than a year is a typo (and 15 billion years overflowed
        // the date arithmetic of the evaluation: a panic found by fuzzing).
        if d.as_secs() > 366 * 86_400 {
            return Err(err(at("duration"), "must be at most 366d"));
        }
    } else if days_form {
        if w.days.is_empty() {
            return Err(err(
                at("days"),
                "a window with startTime/endTime needs days (e.g. [Sat, Sun])",
            ));
        }
        let start = w
            .start_time
            .as_deref()
            .ok_or_else(|| err(at("startTime"), "missing startTime (HH:MM)"))?;
        let end = w
            .end_time
            .as_deref()
            .ok_or_else(|| err(at("endTime"), "missing endTime (HH:MM)"))?;
        let s = parse_time_of_day(start).map_err(|m| err(at("startTime"), m))?;
        let e = parse_time_of_day(end).map_err(|m| err(at("endTime"), m))?;
        if s == e {
            return Err(err(
                at("endTime"),
                "endTime equals startTime: the window would be empty",
            ));
        }
    } else {
        return Err(err(
            format!("spec.windows[{i}]"),
            "empty window: give schedule + duration, or days + startTime + endTime",
        ));
    }
    parse_tz(w.time_zone.as_deref()).map_err(|m| err(at("timeZone"), m))?;
    Ok(())
}

/// Check everything the schema cannot: crontab syntax, time zones, window forms, exclusion order.
pub fn validate(spec: &UpdateScheduleSpec) -> Result<(), ScheduleError> {
    for (i, w) in spec.windows.iter().enumerate() {
        validate_window(i, w)?;
    }
    for (i, x) in spec.exclusions.iter().enumerate() {
        if x.end <= x.start {
            return Err(err(
                format!("spec.exclusions[{i}].end"),
                "end must be after start",
            ));
        }
    }
    if let Some(s) = &spec.schedule {
        parse_cron(s).map_err(|m| err("spec.schedule", m))?;
    }
    if let Some(mw) = &spec.maintenance_window {
        let start =
            parse_time_of_day(&mw.start).map_err(|m| err("spec.maintenanceWindow.start", m))?;
        let end = parse_time_of_day(&mw.end).map_err(|m| err("spec.maintenanceWindow.end", m))?;
        // The compiler refuses it too; the loader must say so first (found by fuzzing:
        // load::cluster accepted a schedule that the gate then could not evaluate).
        if start == end {
            return Err(err(
                "spec.maintenanceWindow.end",
                "end equals start: the window would be empty",
            ));
        }
        parse_tz(mw.timezone.as_deref()).map_err(|m| err("spec.maintenanceWindow.timezone", m))?;
    }
    if let Some(p) = spec
        .update_policy
        .as_ref()
        .and_then(|p| p.target_version_pattern.as_deref())
    {
        let parts: Vec<&str> = p.trim_start_matches('v').split('.').collect();
        let ok = parts.len() == 3 && parts.iter().all(|x| *x == "x" || x.parse::<u64>().is_ok());
        if !ok {
            return Err(err(
                "spec.updatePolicy.targetVersionPattern",
                format!(
                    "invalid pattern {p:?}: expected MAJOR.MINOR.PATCH where MINOR and PATCH may be x (1.34.x)"
                ),
            ));
        }
    }
    Ok(())
}

/// How far ahead the next window is searched.
const HORIZON_DAYS: i64 = 400;
/// Upper bound on merged overlapping cron openings (a `* * * * *` window would otherwise loop long).
const MAX_MERGE: usize = 2_000;

/// A window in evaluable form.
#[derive(Debug, Clone)]
enum CompiledWindow {
    Cron {
        cron: Box<Cron>,
        tz: Tz,
        duration: Duration,
        must_finish: bool,
    },
    Days {
        days: Vec<chrono::Weekday>,
        start: u32,
        end: u32,
        tz: Tz,
        must_finish: bool,
    },
}

fn weekday(d: Weekday) -> chrono::Weekday {
    match d {
        Weekday::Mon => chrono::Weekday::Mon,
        Weekday::Tue => chrono::Weekday::Tue,
        Weekday::Wed => chrono::Weekday::Wed,
        Weekday::Thu => chrono::Weekday::Thu,
        Weekday::Fri => chrono::Weekday::Fri,
        Weekday::Sat => chrono::Weekday::Sat,
        Weekday::Sun => chrono::Weekday::Sun,
    }
}

fn compile_window(i: usize, w: &Window) -> Result<CompiledWindow, ScheduleError> {
    validate_window(i, w)?;
    let at = |f: &str| format!("spec.windows[{i}].{f}");
    let tz = parse_tz(w.time_zone.as_deref()).map_err(|m| err(at("timeZone"), m))?;
    if let Some(s) = &w.schedule {
        let cron = parse_cron(s).map_err(|m| err(at("schedule"), m))?;
        let secs = w.duration.map(|d| d.as_secs()).unwrap_or(0);
        let duration =
            Duration::seconds(i64::try_from(secs).map_err(|_| err(at("duration"), "too long"))?);
        return Ok(CompiledWindow::Cron {
            cron: Box::new(cron),
            tz,
            duration,
            must_finish: w.must_finish,
        });
    }
    let start = parse_time_of_day(w.start_time.as_deref().unwrap_or_default())
        .map_err(|m| err(at("startTime"), m))?;
    let end = parse_time_of_day(w.end_time.as_deref().unwrap_or_default())
        .map_err(|m| err(at("endTime"), m))?;
    Ok(CompiledWindow::Days {
        days: w.days.iter().copied().map(weekday).collect(),
        start,
        end,
        tz,
        must_finish: w.must_finish,
    })
}

/// The instant of a local date + minutes after midnight, DST-resolved: a time in
/// the spring-forward gap moves to the first instant after it; an ambiguous time
/// takes the earlier instant.
fn local_instant(tz: Tz, date: NaiveDate, minutes: u32) -> Option<DateTime<Utc>> {
    let (date, minutes) = if minutes >= 24 * 60 {
        (date.succ_opt()?, minutes - 24 * 60)
    } else {
        (date, minutes)
    };
    let naive = date.and_time(NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0)?);
    // Gaps are at most a few hours; step minute by minute to the gap's end.
    for step in 0..=(4 * 60) {
        let t = naive + Duration::minutes(step);
        match tz.from_local_datetime(&t) {
            LocalResult::Single(x) => return Some(x.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => return Some(a.min(b).with_timezone(&Utc)),
            LocalResult::None => continue,
        }
    }
    None
}

impl CompiledWindow {
    fn tz(&self) -> Tz {
        match self {
            Self::Cron { tz, .. } | Self::Days { tz, .. } => *tz,
        }
    }

    fn must_finish(&self) -> bool {
        match self {
            Self::Cron { must_finish, .. } | Self::Days { must_finish, .. } => *must_finish,
        }
    }

    /// Openings that overlap `[from, to)`, in order, as `(start, end)`.
    fn spans(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut out = Vec::new();
        match self {
            Self::Cron {
                cron, tz, duration, ..
            } => {
                let mut cursor = (from - *duration).with_timezone(tz);
                let mut inclusive = true;
                while out.len() < MAX_MERGE {
                    let Ok(t) = cron.find_next_occurrence(&cursor, inclusive) else {
                        break;
                    };
                    let start = t.with_timezone(&Utc);
                    if start >= to {
                        break;
                    }
                    let end = start + *duration;
                    if end > from {
                        out.push((start, end));
                    }
                    cursor = t;
                    inclusive = false;
                }
            }
            Self::Days {
                days,
                start,
                end,
                tz,
                ..
            } => {
                let first = from.with_timezone(tz).date_naive() - Duration::days(2);
                let last = to.with_timezone(tz).date_naive() + Duration::days(1);
                let mut d = first;
                while d <= last {
                    if days.contains(&d.weekday()) {
                        let end_day_minutes = if end <= start { end + 24 * 60 } else { *end };
                        if let (Some(s), Some(e)) = (
                            local_instant(*tz, d, *start),
                            local_instant(*tz, d, end_day_minutes),
                        ) && s < to
                            && e > from
                            && e > s
                        {
                            out.push((s, e));
                        }
                    }
                    let Some(n) = d.succ_opt() else { break };
                    d = n;
                }
            }
        }
        out
    }

    /// The opening containing `now`, merged with openings that overlap or touch it.
    fn active(&self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let horizon = now + Duration::days(8);
        let spans = self.spans(now, horizon);
        let mut cur: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
        for (s, e) in spans {
            match &mut cur {
                None if s <= now && now < e => cur = Some((s, e)),
                None => {}
                Some((_, ce)) if s <= *ce => *ce = (*ce).max(e),
                Some(_) => break,
            }
        }
        cur
    }

    /// The first opening that starts strictly after `now`.
    fn next(&self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        match self {
            Self::Cron {
                cron, tz, duration, ..
            } => {
                let t = cron
                    .find_next_occurrence(&now.with_timezone(tz), false)
                    .ok()?
                    .with_timezone(&Utc);
                (t - now <= Duration::days(HORIZON_DAYS)).then_some((t, t + *duration))
            }
            Self::Days { .. } => self
                .spans(now, now + Duration::days(8))
                .into_iter()
                .find(|(s, _)| *s > now),
        }
    }
}

/// All windows of a spec in evaluable form, the seed's maintenanceWindow last.
fn compiled_windows(spec: &UpdateScheduleSpec) -> Result<Vec<CompiledWindow>, ScheduleError> {
    let mut v: Vec<CompiledWindow> = spec
        .windows
        .iter()
        .enumerate()
        .map(|(i, w)| compile_window(i, w))
        .collect::<Result<_, _>>()?;
    if let Some(mw) = &spec.maintenance_window {
        let start =
            parse_time_of_day(&mw.start).map_err(|m| err("spec.maintenanceWindow.start", m))?;
        let end = parse_time_of_day(&mw.end).map_err(|m| err("spec.maintenanceWindow.end", m))?;
        if start == end {
            return Err(err(
                "spec.maintenanceWindow.end",
                "end equals start: the window would be empty",
            ));
        }
        let tz = parse_tz(mw.timezone.as_deref())
            .map_err(|m| err("spec.maintenanceWindow.timezone", m))?;
        let days = vec![
            chrono::Weekday::Mon,
            chrono::Weekday::Tue,
            chrono::Weekday::Wed,
            chrono::Weekday::Thu,
            chrono::Weekday::Fri,
            chrono::Weekday::Sat,
            chrono::Weekday::Sun,
        ];
        v.push(CompiledWindow::Days {
            days,
            start,
            end,
            tz,
            must_finish: false,
        });
    }
    Ok(v)
}

/// The earliest instant ≥ `t` at which some window is open (`t` itself when there are no windows).
fn open_at_or_after(windows: &[CompiledWindow], t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if windows.is_empty() || windows.iter().any(|w| w.active(t).is_some()) {
        return Some(t);
    }
    windows
        .iter()
        .filter_map(|w| w.next(t))
        .map(|(s, _)| s)
        .min()
}

/// A schedule in evaluable form: crontabs parsed and time zones resolved once,
/// when the schedule is loaded, then evaluated at any instant (the GitOps loop
/// evaluates the same schedule every pass).
#[derive(Debug, Clone)]
pub struct Compiled {
    windows: Vec<CompiledWindow>,
    exclusions: Vec<Exclusion>,
    /// The seed's `spec.schedule`: when the next attempt is due.
    attempt: Option<Cron>,
    suspended: bool,
    target_version_pattern: Option<String>,
}

impl Compiled {
    /// Validate and compile `spec`; the errors are [`validate`]'s.
    pub fn new(spec: &UpdateScheduleSpec) -> Result<Self, ScheduleError> {
        validate(spec)?;
        let windows = compiled_windows(spec)?;
        let attempt = spec
            .schedule
            .as_deref()
            .map(|s| parse_cron(s).map_err(|m| err("spec.schedule", m)))
            .transpose()?;
        Ok(Self {
            windows,
            exclusions: spec.exclusions.clone(),
            attempt,
            suspended: spec.suspended,
            target_version_pattern: spec
                .update_policy
                .as_ref()
                .and_then(|p| p.target_version_pattern.clone()),
        })
    }

    /// The attempt of `spec.schedule` (the seed's recurring upgrade) due at `now`: the
    /// latest occurrence at or before `now` that is later than `since` (the last one
    /// handled, or when the schedule was created). Missed occurrences collapse into
    /// the latest one. `None` without `spec.schedule` or when nothing is due.
    pub fn due_attempt(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cron = self.attempt.as_ref()?;
        let latest = cron.find_previous_occurrence(&now, true).ok()?;
        (latest > since).then_some(latest)
    }

    /// The schedule at `now`.
    pub fn evaluate(&self, now: DateTime<Utc>) -> ScheduleEval {
        let windows = &self.windows;
        // The active window that stays open longest: the most room for the plan.
        let active_window = windows
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                w.active(now).map(|(s, e)| WindowSpan {
                    index: i,
                    start: s,
                    end: e,
                    must_finish: w.must_finish(),
                    time_zone: w.tz().name().to_string(),
                })
            })
            .max_by_key(|w| (w.end, std::cmp::Reverse(w.index)));
        let next_window = windows
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                w.next(now).map(|(s, e)| WindowSpan {
                    index: i,
                    start: s,
                    end: e,
                    must_finish: w.must_finish(),
                    time_zone: w.tz().name().to_string(),
                })
            })
            .min_by_key(|w| (w.start, w.index));
        let active_exclusions = self
            .exclusions
            .iter()
            .enumerate()
            .filter(|(_, x)| x.start <= now && now < x.end)
            .map(|(i, x)| ActiveExclusion {
                index: i,
                start: x.start,
                end: x.end,
                scope: x.scope,
                reason: x.reason.clone(),
                resume_at: open_at_or_after(windows, x.end),
            })
            .collect();
        let next_attempt = self
            .attempt
            .as_ref()
            .and_then(|cron| cron.find_next_occurrence(&now, false).ok());
        ScheduleEval {
            configured: true,
            suspended: self.suspended,
            windows: windows.len(),
            in_window: windows.is_empty() || active_window.is_some(),
            remaining_seconds: active_window.as_ref().map(|w| (w.end - now).num_seconds()),
            active_window,
            next_window,
            active_exclusions,
            next_attempt,
            target_version_pattern: self.target_version_pattern.clone(),
        }
    }
}

/// Evaluate a compiled schedule at `now`. `None` (no schedule.yaml) is always open.
pub fn evaluate_compiled(schedule: Option<&Compiled>, now: DateTime<Utc>) -> ScheduleEval {
    match schedule {
        Some(c) => c.evaluate(now),
        None => ScheduleEval {
            configured: false,
            suspended: false,
            windows: 0,
            in_window: true,
            active_window: None,
            remaining_seconds: None,
            next_window: None,
            active_exclusions: Vec::new(),
            next_attempt: None,
            target_version_pattern: None,
        },
    }
}

/// Compile and evaluate a schedule at `now`. `None` (no schedule.yaml) is always
/// open. Evaluating the same schedule repeatedly: compile it once with [`Compiled::new`].
pub fn evaluate(
    spec: Option<&UpdateScheduleSpec>,
    now: DateTime<Utc>,
) -> Result<ScheduleEval, ScheduleError> {
    let compiled = spec.map(Compiled::new).transpose()?;
    Ok(evaluate_compiled(compiled.as_ref(), now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cupcake_api::schedule::ExclusionScope;

    #[test]
    fn due_attempt_is_the_latest_unhandled_occurrence() {
        let spec: UpdateScheduleSpec = yaml_serde::from_str("schedule: '0 3 * * *'").expect("spec");
        let c = Compiled::new(&spec).expect("compiles");
        let t = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        for (since, now, want) in [
            // Created at 10:30: nothing due until 03:00 the next day.
            ("2026-11-28T10:30:00Z", "2026-11-28T23:00:00Z", None),
            (
                "2026-11-28T10:30:00Z",
                "2026-11-29T03:00:00Z",
                Some("2026-11-29T03:00:00Z"),
            ),
            (
                "2026-11-28T10:30:00Z",
                "2026-11-29T05:00:00Z",
                Some("2026-11-29T03:00:00Z"),
            ),
            // Handled at 03:00: not again the same day.
            ("2026-11-29T03:00:00Z", "2026-11-29T23:59:00Z", None),
            // Down for three days: one attempt, the latest.
            (
                "2026-11-29T03:00:00Z",
                "2026-12-02T04:00:00Z",
                Some("2026-12-02T03:00:00Z"),
            ),
        ] {
            assert_eq!(
                c.due_attempt(t(since), t(now)),
                want.map(t),
                "since {since}, now {now}"
            );
        }
        let none: UpdateScheduleSpec = yaml_serde::from_str("suspended: false").expect("spec");
        let c = Compiled::new(&none).expect("compiles");
        assert_eq!(
            c.due_attempt(t("2026-01-01T00:00:00Z"), t("2026-12-01T00:00:00Z")),
            None
        );
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test timestamp")
            .with_timezone(&Utc)
    }

    fn spec(yaml: &str) -> UpdateScheduleSpec {
        yaml_serde::from_str(yaml).expect("test spec")
    }

    /// Next fire times of a crontab in a zone, as UTC strings.
    fn fires(cron: &str, tz: &str, from: &str, n: usize) -> Vec<String> {
        let c = parse_cron(cron).expect("cron");
        let tz = parse_tz(Some(tz)).expect("tz");
        let mut cur = t(from).with_timezone(&tz);
        let mut out = Vec::new();
        for _ in 0..n {
            cur = c.find_next_occurrence(&cur, false).expect("next");
            out.push(
                cur.with_timezone(&Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            );
        }
        out
    }

    #[test]
    fn crontab_is_posix() {
        // `0 2 * * 6` is Saturday 02:00 (2026-11-28 is a Saturday).
        assert_eq!(
            fires("0 2 * * 6", "UTC", "2026-11-23T00:00:00Z", 2),
            ["2026-11-28T02:00:00Z", "2026-12-05T02:00:00Z"]
        );
        // Sunday is 0 and 7.
        assert_eq!(
            fires("0 3 * * 0", "UTC", "2026-11-23T00:00:00Z", 1),
            ["2026-11-29T03:00:00Z"]
        );
        assert_eq!(
            fires("0 3 * * 7", "UTC", "2026-11-23T00:00:00Z", 1),
            ["2026-11-29T03:00:00Z"]
        );
        assert_eq!(
            fires("0 3 * * SUN", "UTC", "2026-11-23T00:00:00Z", 1),
            ["2026-11-29T03:00:00Z"]
        );
        // Day-of-month OR day-of-week: the 1st, and every Monday.
        // 2026-06: Mon 1st, then Mondays 8, 15, 22, 29; 2026-07-01 is a Wednesday.
        assert_eq!(
            fires("0 0 1 * MON", "UTC", "2026-06-20T00:00:00Z", 4),
            [
                "2026-06-22T00:00:00Z",
                "2026-06-29T00:00:00Z",
                "2026-07-01T00:00:00Z",
                "2026-07-06T00:00:00Z"
            ]
        );
        // Only one day field restricted: that one alone.
        assert_eq!(
            fires("0 0 1 * *", "UTC", "2026-06-20T00:00:00Z", 2),
            ["2026-07-01T00:00:00Z", "2026-08-01T00:00:00Z"]
        );
    }

    #[test]
    fn six_fields_and_bad_zones_are_rejected() {
        let e = parse_cron("0 0 2 * * 6").expect_err("six fields");
        assert!(
            e.contains("expected 5 fields") && e.contains("seconds"),
            "{e}"
        );
        let e = parse_tz(Some("Europe/Amsterdm")).expect_err("typo");
        assert!(e.contains("unknown time zone \"Europe/Amsterdm\""), "{e}");
        let s = spec("windows: [{schedule: '0 0 2 * * 6', duration: 4h}]");
        let e = evaluate(Some(&s), t("2026-01-01T00:00:00Z")).expect_err("six fields");
        assert_eq!(e.field, "spec.windows[0].schedule");
        let s = spec("windows: [{schedule: '0 2 * * 6', duration: 4h, timeZone: Mars/Olympus}]");
        let e = evaluate(Some(&s), t("2026-01-01T00:00:00Z")).expect_err("zone");
        assert_eq!(e.field, "spec.windows[0].timeZone");
    }

    #[test]
    fn amsterdam_saturday_window() {
        let s =
            spec("windows: [{schedule: '0 2 * * 6', duration: 4h, timeZone: Europe/Amsterdam}]");
        // Winter: 02:00 CET = 01:00Z; 02:30Z is 03:30 local, inside.
        let e = evaluate(Some(&s), t("2026-11-28T02:30:00Z")).expect("eval");
        let w = e.active_window.expect("active");
        assert_eq!(
            (w.start, w.end),
            (t("2026-11-28T01:00:00Z"), t("2026-11-28T05:00:00Z"))
        );
        assert_eq!(e.remaining_seconds, Some(2 * 3600 + 1800));
        assert!(e.in_window);
        assert_eq!(
            e.next_window.map(|w| w.start),
            Some(t("2026-12-05T01:00:00Z"))
        );
        // Summer: 02:00 CEST = 00:00Z.
        let e = evaluate(Some(&s), t("2026-06-24T12:00:00Z")).expect("eval");
        assert!(!e.in_window && e.active_window.is_none());
        assert_eq!(
            e.next_window.map(|w| (w.start, w.end)),
            Some((t("2026-06-27T00:00:00Z"), t("2026-06-27T04:00:00Z")))
        );
        // The window closes exactly at start + duration.
        let e = evaluate(Some(&s), t("2026-11-28T05:00:00Z")).expect("eval");
        assert!(!e.in_window);
    }

    #[test]
    fn dst_transitions_europe_amsterdam() {
        // Spring forward: 2026-03-29 02:00 CET → 03:00 CEST. A daily 01:00 window of 4h spans it:
        // four real hours, 00:00Z → 04:00Z (06:00 local).
        let s =
            spec("windows: [{schedule: '0 1 * * *', duration: 4h, timeZone: Europe/Amsterdam}]");
        let e = evaluate(Some(&s), t("2026-03-29T03:30:00Z")).expect("eval");
        assert_eq!(
            e.active_window.map(|w| (w.start, w.end)),
            Some((t("2026-03-29T00:00:00Z"), t("2026-03-29T04:00:00Z")))
        );
        // The next day's 01:00 is CEST: 23:00Z.
        assert_eq!(
            e.next_window.map(|w| w.start),
            Some(t("2026-03-29T23:00:00Z"))
        );
        // A days window 02:30–05:00 on the spring-forward Sunday: 02:30 does not exist, it opens at 03:00 CEST (01:00Z).
        let s = spec(
            "windows: [{days: [Sun], startTime: '02:30', endTime: '05:00', timeZone: Europe/Amsterdam}]",
        );
        let e = evaluate(Some(&s), t("2026-03-28T12:00:00Z")).expect("eval");
        assert_eq!(
            e.next_window.map(|w| (w.start, w.end)),
            Some((t("2026-03-29T01:00:00Z"), t("2026-03-29T03:00:00Z")))
        );
        // Fall back: 2026-10-25 03:00 CEST → 02:00 CET. 02:30 happens twice; the window opens at the first (00:30Z)
        // and closes at 05:00 CET (04:00Z): four and a half real hours.
        let e = evaluate(Some(&s), t("2026-10-24T12:00:00Z")).expect("eval");
        assert_eq!(
            e.next_window.map(|w| (w.start, w.end)),
            Some((t("2026-10-25T00:30:00Z"), t("2026-10-25T04:00:00Z")))
        );
        // Saturday 02:00 crontab stays at 02:00 local on both sides of the change.
        assert_eq!(
            fires("0 2 * * 6", "Europe/Amsterdam", "2026-10-20T00:00:00Z", 2),
            ["2026-10-24T00:00:00Z", "2026-10-31T01:00:00Z"]
        );
    }

    #[test]
    fn dst_transitions_america_new_york() {
        // Spring forward: 2026-03-08 02:00 EST → 03:00 EDT. 02:30 does not exist that day: the
        // opening moves to the end of the gap (03:00 EDT = 07:00Z), like the days form; the next
        // day it is 02:30 EDT again.
        let got = fires("30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", 2);
        assert_eq!(got, ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]);
        // Fall back: 2026-11-01 02:00 EDT → 01:00 EST; 01:30 happens twice, the window opens once.
        let got = fires("30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", 2);
        assert_eq!(got, ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]);
        // Days form across fall back: Sun 00:00–04:00 local is five real hours.
        let s = spec(
            "windows: [{days: [Sun], startTime: '00:00', endTime: '04:00', timeZone: America/New_York}]",
        );
        let e = evaluate(Some(&s), t("2026-11-01T07:00:00Z")).expect("eval");
        assert_eq!(
            e.active_window.map(|w| (w.start, w.end)),
            Some((t("2026-11-01T04:00:00Z"), t("2026-11-01T09:00:00Z")))
        );
        // And across spring forward, three real hours.
        let e = evaluate(Some(&s), t("2026-03-08T06:00:00Z")).expect("eval");
        assert_eq!(
            e.active_window.map(|w| (w.start, w.end)),
            Some((t("2026-03-08T05:00:00Z"), t("2026-03-08T08:00:00Z")))
        );
    }

    #[test]
    fn days_windows_wrap_midnight_and_24_00() {
        let s = spec("windows: [{days: [Fri], startTime: '22:00', endTime: '02:00'}]");
        // 2026-11-27 is a Friday; the window runs into Saturday.
        let e = evaluate(Some(&s), t("2026-11-28T01:00:00Z")).expect("eval");
        assert_eq!(
            e.active_window.map(|w| (w.start, w.end)),
            Some((t("2026-11-27T22:00:00Z"), t("2026-11-28T02:00:00Z")))
        );
        let s = spec("windows: [{days: [Sat], startTime: '20:00', endTime: '24:00'}]");
        let e = evaluate(Some(&s), t("2026-11-28T23:59:00Z")).expect("eval");
        assert_eq!(
            e.active_window.map(|w| w.end),
            Some(t("2026-11-29T00:00:00Z"))
        );
    }

    #[test]
    fn exclusions_beat_windows_and_resume_at_the_next_opening() {
        let s = spec(
            "windows: [{days: [Sun], startTime: '01:00', endTime: '05:00'}]\n\
             exclusions: [{start: '2026-12-20T00:00:00Z', end: '2027-01-04T00:00:00Z', scope: minor, reason: freeze}]",
        );
        let e = evaluate(Some(&s), t("2026-12-27T02:00:00Z")).expect("eval");
        assert!(e.in_window, "the window itself is open");
        assert_eq!(e.active_exclusions.len(), 1);
        let x = &e.active_exclusions[0];
        assert_eq!(
            (x.scope, x.reason.as_deref()),
            (ExclusionScope::Minor, Some("freeze"))
        );
        // 2027-01-04 is a Monday: the next Sunday window opens 2027-01-10 01:00Z.
        assert_eq!(x.resume_at, Some(t("2027-01-10T01:00:00Z")));
        // Outside the exclusion nothing is active.
        let e = evaluate(Some(&s), t("2027-01-04T00:00:00Z")).expect("eval");
        assert!(e.active_exclusions.is_empty());
    }

    #[test]
    fn no_schedule_or_no_windows_is_always_open() {
        let e = evaluate(None, t("2026-01-01T00:00:00Z")).expect("eval");
        assert!(e.in_window && !e.configured);
        let s = spec("suspended: true");
        let e = evaluate(Some(&s), t("2026-01-01T00:00:00Z")).expect("eval");
        assert!(e.in_window && e.suspended && e.configured && e.next_window.is_none());
    }

    #[test]
    fn seed_maintenance_window_is_daily() {
        let s = spec(
            "maintenanceWindow: {start: '02:00', end: '06:00', timezone: Europe/Amsterdam}\nschedule: '0 3 1 * *'",
        );
        let e = evaluate(Some(&s), t("2026-11-25T03:00:00Z")).expect("eval");
        assert_eq!(
            e.active_window.map(|w| (w.start, w.end)),
            Some((t("2026-11-25T01:00:00Z"), t("2026-11-25T05:00:00Z")))
        );
        assert_eq!(e.next_attempt, Some(t("2026-12-01T03:00:00Z")));
        assert_eq!(e.windows, 1);
    }

    #[test]
    fn a_compiled_schedule_evaluates_like_the_spec_at_every_instant() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Compiled>();
        let s = spec(
            "windows:\n\
             - {schedule: '0 2 * * 6', duration: 4h, timeZone: Europe/Amsterdam, mustFinish: true}\n\
             - {days: [Sun], startTime: '01:00', endTime: '05:00'}\n\
             exclusions: [{start: '2026-12-20T00:00:00Z', end: '2027-01-04T00:00:00Z', scope: minor, reason: freeze}]\n\
             maintenanceWindow: {start: '22:00', end: '23:00'}\n\
             schedule: '0 3 1 * *'\n\
             updatePolicy: {targetVersionPattern: 1.34.x}",
        );
        let c = Compiled::new(&s).expect("compile");
        for now in [
            "2026-11-28T02:30:00Z",
            "2026-11-27T10:00:00Z",
            "2026-11-27T22:30:00Z",
            "2026-12-27T02:00:00Z",
            "2026-03-29T03:30:00Z",
            "2026-10-25T01:30:00Z",
        ] {
            let want = evaluate(Some(&s), t(now)).expect("eval");
            assert_eq!(c.evaluate(t(now)), want, "{now}");
            assert_eq!(evaluate_compiled(Some(&c), t(now)), want, "{now}");
        }
        assert_eq!(
            evaluate_compiled(None, t("2026-11-28T02:30:00Z")),
            evaluate(None, t("2026-11-28T02:30:00Z")).expect("eval")
        );
    }

    #[test]
    fn schedule_errors_surface_when_compiling() {
        let cases = [
            (
                "windows: [{schedule: '0 2 * * *'}]",
                "spec.windows[0].duration",
            ),
            (
                "windows: [{schedule: '0 2 * * 6', duration: 4h, timeZone: Mars/Olympus}]",
                "spec.windows[0].timeZone",
            ),
            ("schedule: '0 3 1 *'", "spec.schedule"),
            (
                "maintenanceWindow: {start: '02:00', end: '02:00'}",
                "spec.maintenanceWindow.end",
            ),
        ];
        for (yaml, field) in cases {
            let e = Compiled::new(&spec(yaml)).expect_err(yaml);
            assert_eq!(e.field, field, "{yaml}");
            // Whatever the compiler refuses, validation (the loader's check) refuses too.
            let v = validate(&spec(yaml)).expect_err(yaml);
            assert_eq!(v.field, field, "validate: {yaml}");
        }
    }

    #[test]
    fn overlapping_cron_openings_merge() {
        // Every hour, open for 2h: always open; the active span reaches past the next opening.
        let s = spec("windows: [{schedule: '0 * * * *', duration: 2h}]");
        let e = evaluate(Some(&s), t("2026-01-01T10:30:00Z")).expect("eval");
        let w = e.active_window.expect("active");
        assert_eq!(w.start, t("2026-01-01T09:00:00Z"));
        assert!(
            w.end >= t("2026-01-08T00:00:00Z"),
            "merged through the search horizon: {w:?}"
        );
    }

    /// Regression (issue 13, found by `tests/fuzz.sh schedule`): a huge duration
    /// overflowed `now - duration` in the evaluation and panicked.
    #[test]
    fn absurd_window_durations_are_refused() {
        let s = spec("windows: [{schedule: '15 2 3 * *', duration: 8000073034410m}]");
        let e = Compiled::new(&s).unwrap_err();
        assert_eq!(e.field, "spec.windows[0].duration");
        assert!(e.message.contains("at most 366d"), "{}", e.message);
    }
}
