//! Maintenance schedules: validation now; evaluation against `now` (active
//! window, next window, active exclusions) is pure and lives here too.

use std::str::FromStr;

use chrono_tz::Tz;
use croner::Cron;
use cupcake_api::schedule::{UpdateScheduleSpec, Window};

/// A schedule field that is wrong, with its path for error positions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ScheduleError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> ScheduleError {
    ScheduleError { field: field.into(), message: message.into() }
}

/// Parse a POSIX crontab string: exactly 5 fields (minute hour day-of-month
/// month day-of-week), Sunday 0 or 7, day-of-month OR day-of-week.
pub fn parse_cron(s: &str) -> Result<Cron, String> {
    let fields = s.split_whitespace().count();
    if !s.trim_start().starts_with('@') && fields != 5 {
        return Err(format!(
            "invalid crontab {s:?}: expected 5 fields (minute hour day-of-month month day-of-week), got {fields}{}",
            if fields == 6 { " (a seconds field is not supported)" } else { "" }
        ));
    }
    Cron::from_str(s).map_err(|e| format!("invalid crontab {s:?}: {e}"))
}

/// Parse an IANA time zone name (default UTC).
pub fn parse_tz(s: Option<&str>) -> Result<Tz, String> {
    match s {
        None => Ok(Tz::UTC),
        Some(name) => name.parse::<Tz>().map_err(|_| format!("unknown time zone {name:?}: expected an IANA name like Europe/Amsterdam or UTC")),
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
        let s = w.schedule.as_deref().ok_or_else(|| err(at("schedule"), "a window with a duration needs a schedule"))?;
        parse_cron(s).map_err(|m| err(at("schedule"), m))?;
        let d = w.duration.ok_or_else(|| err(at("duration"), "a window with a schedule needs a duration (e.g. 4h)"))?;
        if d.as_secs() == 0 {
            return Err(err(at("duration"), "must be longer than 0s"));
        }
    } else if days_form {
        if w.days.is_empty() {
            return Err(err(at("days"), "a window with startTime/endTime needs days (e.g. [Sat, Sun])"));
        }
        let start = w.start_time.as_deref().ok_or_else(|| err(at("startTime"), "missing startTime (HH:MM)"))?;
        let end = w.end_time.as_deref().ok_or_else(|| err(at("endTime"), "missing endTime (HH:MM)"))?;
        let s = parse_time_of_day(start).map_err(|m| err(at("startTime"), m))?;
        let e = parse_time_of_day(end).map_err(|m| err(at("endTime"), m))?;
        if s == e {
            return Err(err(at("endTime"), "endTime equals startTime: the window would be empty"));
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
            return Err(err(format!("spec.exclusions[{i}].end"), "end must be after start"));
        }
    }
    if let Some(s) = &spec.schedule {
        parse_cron(s).map_err(|m| err("spec.schedule", m))?;
    }
    if let Some(mw) = &spec.maintenance_window {
        parse_time_of_day(&mw.start).map_err(|m| err("spec.maintenanceWindow.start", m))?;
        parse_time_of_day(&mw.end).map_err(|m| err("spec.maintenanceWindow.end", m))?;
        parse_tz(mw.timezone.as_deref()).map_err(|m| err("spec.maintenanceWindow.timezone", m))?;
    }
    if let Some(p) = spec.update_policy.as_ref().and_then(|p| p.target_version_pattern.as_deref()) {
        let parts: Vec<&str> = p.trim_start_matches('v').split('.').collect();
        let ok = parts.len() == 3 && parts.iter().all(|x| *x == "x" || x.parse::<u64>().is_ok());
        if !ok {
            return Err(err(
                "spec.updatePolicy.targetVersionPattern",
                format!("invalid pattern {p:?}: expected MAJOR.MINOR.PATCH where MINOR and PATCH may be x (1.34.x)"),
            ));
        }
    }
    Ok(())
}
