//! The Mermaid Gantt chart in `cupcake plan -o markdown` (the PR comment) is checked
//! by Mermaid itself: `tests/harness/mermaid.sh --check` runs the `mermaid` npm
//! package's parser and its Gantt model (every task compiled to a start and an end).
//! The chart must parse, and its bars must be the forecast: back to back from the
//! start the plan names, one batch estimate each, next to the maintenance window.
//!
//! A missing node/npm skips these tests with a message, and fails them when
//! `CUPCAKE_REQUIRE_MERMAID=1` (as `tests/run-all.sh` sets).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::Command;

use chrono::{DateTime, Duration, Utc};

mod common;
use common::{copy_dir, repo};

/// Mermaid is there (installing it into the cache if needed), or the test is skipped
/// (failed under `CUPCAKE_REQUIRE_MERMAID=1`).
fn mermaid_ready() -> bool {
    let script = repo().join("tests/harness/mermaid.sh");
    let out = Command::new(&script).output();
    let ok = matches!(&out, Ok(o) if o.status.success());
    if !ok {
        let why = match out {
            Ok(o) => String::from_utf8_lossy(&o.stderr).to_string(),
            Err(e) => e.to_string(),
        };
        if std::env::var("CUPCAKE_REQUIRE_MERMAID").as_deref() == Ok("1") {
            panic!("tests/harness/mermaid.sh failed and CUPCAKE_REQUIRE_MERMAID=1:\n{why}");
        }
        eprintln!("skipping: Mermaid is not available ({why})");
    }
    ok
}

#[derive(Debug, serde::Deserialize)]
struct Checked {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    tasks: Vec<Task>,
}

#[derive(Debug, serde::Deserialize)]
struct Task {
    id: String,
    task: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

/// What Mermaid makes of `chart`.
fn check(chart: &str) -> Checked {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("chart.mmd");
    std::fs::write(&f, chart).unwrap();
    let out = Command::new(repo().join("tests/harness/mermaid.sh"))
        .arg("--check")
        .arg(&f)
        // Mermaid reads dates in the local zone; the chart's times are UTC.
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().next().unwrap_or_else(|| {
        panic!(
            "no answer from mermaid.sh:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let c: Checked = serde_json::from_str(line).unwrap();
    assert_eq!(out.status.success(), c.ok, "exit status and verdict agree");
    c
}

fn markdown(fleet: &Path, now: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cupcake"))
        .args(["plan", fleet.to_str().unwrap(), "--cluster", "demo"])
        .args(["--now", now, "-o", "markdown"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// The one ```` ```mermaid ```` block of a comment.
fn chart(md: &str) -> String {
    let start = md
        .find("```mermaid\n")
        .unwrap_or_else(|| panic!("no mermaid block:\n{md}"));
    let body = &md[start + "```mermaid\n".len()..];
    body[..body.find("```").unwrap()].to_string()
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Mermaid's reading of the chart: the window bar, and the batches back to back
/// from `start`, each `batch` long except grouped bars, ending at `end`.
fn assert_forecast(
    checked: &Checked,
    window: Option<(&str, &str)>,
    start: &str,
    end: &str,
) -> usize {
    assert!(checked.ok, "Mermaid refused the chart: {:?}", checked.error);
    assert_eq!(checked.kind.as_deref(), Some("gantt"));
    let (win, bars): (Vec<&Task>, Vec<&Task>) =
        checked.tasks.iter().partition(|t| t.id == "window");
    match window {
        Some((a, b)) => {
            assert_eq!(win.len(), 1, "{:?}", checked.tasks);
            assert_eq!((win[0].start, win[0].end), (t(a), t(b)));
        }
        None => assert!(win.is_empty(), "{:?}", checked.tasks),
    }
    assert_eq!(bars.first().unwrap().start, t(start));
    assert_eq!(bars.last().unwrap().end, t(end));
    for pair in bars.windows(2) {
        assert_eq!(pair[0].end, pair[1].start, "{pair:?}: bars back to back");
    }
    bars.len()
}

/// Inside the window: the rollout starts now and fits. Outside: it starts when
/// the next window opens. The example's estimate is 1h17m over 11 batches.
#[test]
fn the_plan_chart_parses_and_shows_the_forecast_in_the_window() {
    if !mermaid_ready() {
        return;
    }
    let fleet = repo().join("examples/fleet");
    let md = markdown(&fleet, "2026-11-28T02:30:00Z");
    let c = check(&chart(&md));
    let bars = assert_forecast(
        &c,
        Some(("2026-11-28T01:00:00Z", "2026-11-28T05:00:00Z")),
        "2026-11-28T02:30:00Z",
        "2026-11-28T03:47:00Z",
    );
    assert_eq!(
        bars,
        1 + 3 + 1 + 5,
        "backup, 3 control planes, canary, 5 batches"
    );
    let cp1 = c.tasks.iter().find(|t| t.id == "s2b1").unwrap();
    assert_eq!(cp1.task.trim(), "cp-1");
    assert_eq!(
        cp1.end - cp1.start,
        Duration::minutes(10),
        "controlPlaneNode default"
    );
    assert!(
        md.contains("Forecast: starts 2026-11-28 02:30 UTC, ends 2026-11-28 03:47 UTC (1h17m"),
        "{md}"
    );
    assert!(md.contains("fits the window"), "{md}");

    // Deferred on Friday: the forecast starts when Saturday's window opens.
    let md = markdown(&fleet, "2026-11-27T10:00:00Z");
    assert_forecast(
        &check(&chart(&md)),
        Some(("2026-11-28T01:00:00Z", "2026-11-28T05:00:00Z")),
        "2026-11-28T01:00:00Z",
        "2026-11-28T02:17:00Z",
    );
}

/// Slow batches overrun the window: the bars past its end are marked critical and
/// the comment says by how much.
#[test]
fn a_rollout_longer_than_the_window_says_so() {
    if !mermaid_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("examples/fleet"), tmp.path());
    let f = tmp.path().join("clusters/demo/cluster.yaml");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(
        &f,
        text.replace(
            "  preflightChecks: true\n",
            "  preflightChecks: true\n  estimates: {workerBatch: 45m}\n",
        ),
    )
    .unwrap();
    let md = markdown(tmp.path(), "2026-11-28T02:30:00Z");
    let chart = chart(&md);
    // backup 5m + 3 × 10m + 6 worker batches × 45m = 5h05m from 02:30.
    assert_forecast(
        &check(&chart),
        Some(("2026-11-28T01:00:00Z", "2026-11-28T05:00:00Z")),
        "2026-11-28T02:30:00Z",
        "2026-11-28T07:35:00Z",
    );
    let crit: Vec<&str> = chart
        .lines()
        .filter(|l| l.contains(":crit, "))
        .map(str::trim)
        .collect();
    assert_eq!(crit.len(), 4, "batches ending after 05:00: {crit:?}");
    assert!(
        md.contains("ends **2h35m after the window closes**"),
        "{md}"
    );
}

/// The check is real: a chart with an impossible date, a broken task line or an
/// unknown diagram type fails it, naming what is wrong.
#[test]
fn a_broken_chart_fails_the_check() {
    if !mermaid_ready() {
        return;
    }
    let good = chart(&markdown(
        &repo().join("examples/fleet"),
        "2026-11-28T02:30:00Z",
    ));
    assert!(check(&good).ok);
    for (broken, says) in [
        (
            good.replacen("2026-11-28T02:30:00", "2026-13-45T99:00:00", 1),
            "Invalid date",
        ),
        (
            good.replacen("    todayMarker off\n", "    todayMarker off\n    :::\n", 1),
            "Parse error",
        ),
        (
            good.replacen("gantt", "gnatt", 1),
            "No diagram type detected",
        ),
    ] {
        let c = check(&broken);
        assert!(!c.ok, "accepted:\n{broken}");
        let err = c.error.unwrap_or_default();
        assert!(err.contains(says), "{says:?} not in {err:?}");
    }
}

/// A stage of many batches: the first 5 are bars, the rest one bar as long as all
/// of them; Mermaid reads it the same way.
#[test]
fn a_long_stage_is_summarised_in_one_bar() {
    if !mermaid_ready() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_cupcake"))
        .args(["plan", "examples/fleet", "--cluster", "demo"])
        .args(["--now", "2026-11-28T02:30:00Z", "-o", "json"])
        .current_dir(repo())
        .output()
        .unwrap();
    let mut report: cupcake_reconciler::present::PlanReport =
        serde_json::from_slice(&out.stdout).unwrap();
    // 40 single-node worker batches of 7 minutes.
    let workers = report.plan.stages.last_mut().unwrap();
    workers.batches = (1..=40).map(|i| vec![format!("w-{i}")]).collect();
    workers.batch_limits.clear();
    report.plan.estimate.seconds = 300 + 3 * 600 + 420 + 40 * 420;
    let md = cupcake_reconciler::present::markdown(&report, t("2026-11-28T02:30:00Z"));
    let c = check(&chart(&md));
    let bars = assert_forecast(
        &c,
        Some(("2026-11-28T01:00:00Z", "2026-11-28T05:00:00Z")),
        "2026-11-28T02:30:00Z",
        "2026-11-28T07:52:00Z",
    );
    assert_eq!(bars, 1 + 3 + 1 + 5 + 1);
    let rest = c.tasks.iter().find(|t| t.id == "s4rest").unwrap();
    assert_eq!(rest.task.trim(), "batches 6-40 (35 nodes)");
    assert_eq!(rest.end - rest.start, Duration::minutes(35 * 7));
}
