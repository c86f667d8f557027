//! Schedule windows, table-driven at the instants that matter: a window is open
//! from its start instant up to, not including, its end instant
//! (`[start, end)`: at 05:00 a 01:00–05:00 window is closed); openings of one
//! window that overlap or touch are one opening; the time zone is the window's.
//! Mutation testing (docs/testing.md) asked for the boundaries to be pinned
//! from outside the module.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use chrono::{DateTime, Utc};
use cupcake_api::schedule::UpdateScheduleSpec;
use cupcake_core::schedule::evaluate;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// What a user reads off the schedule at `now`: the open window (start, end)
/// and seconds left, or the next opening's start.
#[derive(Debug, PartialEq)]
enum Seen {
    Open(DateTime<Utc>, DateTime<Utc>, i64),
    Closed { next: Option<DateTime<Utc>> },
}

fn open(start: &str, end: &str, left: i64) -> Seen {
    Seen::Open(t(start), t(end), left)
}

fn closed(next: &str) -> Seen {
    Seen::Closed {
        next: Some(t(next)),
    }
}

fn seen(schedule: &str, now: &str) -> Seen {
    let spec: UpdateScheduleSpec = yaml_serde::from_str(schedule).unwrap();
    let e = evaluate(Some(&spec), t(now)).unwrap();
    assert_eq!(
        e.in_window,
        e.active_window.is_some(),
        "{schedule} at {now}"
    );
    match &e.active_window {
        Some(w) => Seen::Open(w.start, w.end, e.remaining_seconds.unwrap()),
        None => Seen::Closed {
            next: e.next_window.as_ref().map(|w| w.start),
        },
    }
}

#[test]
fn window_boundaries_table() {
    // 2026-11-27 is a Friday, 2026-11-28 a Saturday.
    let daily = "windows: [{days: [Mon, Tue, Wed, Thu, Fri, Sat, Sun], startTime: '01:00', endTime: '05:00'}]";
    let cases: Vec<(&str, &str, &str, Seen)> = vec![
        (
            "a second before the start: closed, opens at 01:00",
            daily,
            "2026-11-28T00:59:59Z",
            closed("2026-11-28T01:00:00Z"),
        ),
        (
            "at the start instant: open",
            daily,
            "2026-11-28T01:00:00Z",
            open("2026-11-28T01:00:00Z", "2026-11-28T05:00:00Z", 4 * 3600),
        ),
        (
            "a second before the end: open, one second left",
            daily,
            "2026-11-28T04:59:59Z",
            open("2026-11-28T01:00:00Z", "2026-11-28T05:00:00Z", 1),
        ),
        (
            "at the end instant: closed (the end is exclusive), next opening tomorrow",
            daily,
            "2026-11-28T05:00:00Z",
            closed("2026-11-29T01:00:00Z"),
        ),
        (
            "inside, the end is today's, not a later day's",
            daily,
            "2026-11-28T02:00:00Z",
            open("2026-11-28T01:00:00Z", "2026-11-28T05:00:00Z", 3 * 3600),
        ),
        (
            "whole days that touch are one opening: Friday 00:00 to Sunday 00:00",
            "windows: [{days: [Fri, Sat], startTime: '00:00', endTime: '24:00'}]",
            "2026-11-27T12:00:00Z",
            open("2026-11-27T00:00:00Z", "2026-11-29T00:00:00Z", 36 * 3600),
        ),
        (
            "...and a day apart they are not",
            "windows: [{days: [Thu, Sat], startTime: '00:00', endTime: '24:00'}]",
            "2026-11-26T12:00:00Z",
            open("2026-11-26T00:00:00Z", "2026-11-27T00:00:00Z", 12 * 3600),
        ),
        (
            "an overnight days window is open after midnight",
            "windows: [{days: [Fri], startTime: '22:00', endTime: '02:00'}]",
            "2026-11-28T01:30:00Z",
            open("2026-11-27T22:00:00Z", "2026-11-28T02:00:00Z", 30 * 60),
        ),
        (
            "a crontab window that opened yesterday is still open",
            "windows: [{schedule: '0 22 * * 5', duration: 4h}]",
            "2026-11-28T01:00:00Z",
            open("2026-11-27T22:00:00Z", "2026-11-28T02:00:00Z", 3600),
        ),
        (
            "a crontab window at its end instant is closed, next week's is next",
            "windows: [{schedule: '0 22 * * 5', duration: 4h}]",
            "2026-11-28T02:00:00Z",
            closed("2026-12-04T22:00:00Z"),
        ),
        (
            "overlapping crontab openings are merged",
            "windows: [{schedule: '0 1,3 * * 6', duration: 3h}]",
            "2026-11-28T02:00:00Z",
            open("2026-11-28T01:00:00Z", "2026-11-28T06:00:00Z", 4 * 3600),
        ),
        (
            "after the first opening ends, only the second is open",
            "windows: [{schedule: '0 1,3 * * 6', duration: 3h}]",
            "2026-11-28T04:00:00Z",
            open("2026-11-28T03:00:00Z", "2026-11-28T06:00:00Z", 2 * 3600),
        ),
        (
            "in the window's time zone: 02:00 Amsterdam is 01:00 UTC in November",
            "windows: [{days: [Sat], startTime: '02:00', endTime: '06:00', timeZone: Europe/Amsterdam}]",
            "2026-11-28T00:30:00Z",
            closed("2026-11-28T01:00:00Z"),
        ),
        (
            "...open at 01:00 UTC, closing at 05:00 UTC",
            "windows: [{days: [Sat], startTime: '02:00', endTime: '06:00', timeZone: Europe/Amsterdam}]",
            "2026-11-28T01:00:00Z",
            open("2026-11-28T01:00:00Z", "2026-11-28T05:00:00Z", 4 * 3600),
        ),
        (
            "the seed's maintenanceWindow has the same exclusive end",
            "maintenanceWindow: {start: '02:00', end: '06:00'}",
            "2026-11-28T06:00:00Z",
            closed("2026-11-29T02:00:00Z"),
        ),
    ];
    for (what, schedule, now, want) in cases {
        assert_eq!(seen(schedule, now), want, "{what}");
    }
}
