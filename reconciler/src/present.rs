//! The result of `cupcake plan` and how it is shown: the JSON contract, a
//! readable text summary, and Markdown fit for a pull-request comment.

use std::fmt::Write as _;

use cupcake_api::common::GoDuration;
use cupcake_api::plan::{CurrentVersions, Severity, Stage, Verdict};

pub use cupcake_api::report::PlanReport;

/// How many batches of a stage are listed before "… N more".
const BATCHES_SHOWN: usize = 3;
/// How many nodes of a batch are listed before "… N more".
const NODES_SHOWN: usize = 6;

fn batch_text(b: &[String]) -> String {
    let mut s = b
        .iter()
        .take(NODES_SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if b.len() > NODES_SHOWN {
        let _ = write!(s, ", … {} more", b.len() - NODES_SHOWN);
    }
    format!("[{s}]")
}

fn stage_text(s: &Stage) -> String {
    let nodes: usize = s.batches.iter().map(Vec::len).sum();
    let shown: Vec<String> = s
        .batches
        .iter()
        .take(BATCHES_SHOWN)
        .map(|b| batch_text(b))
        .collect();
    let mut t = shown.join(" ");
    if s.batches.len() > BATCHES_SHOWN {
        let rest: usize = s.batches[BATCHES_SHOWN..].iter().map(Vec::len).sum();
        let _ = write!(
            t,
            " … {} more batches ({rest} nodes)",
            s.batches.len() - BATCHES_SHOWN
        );
    }
    format!("{} node(s) in {} batch(es): {t}", nodes, s.batches.len())
}

/// What shaped a stage's batches, each reason once with how many batches it
/// ended: `concurrency 5 (×3), remaining nodes (×1)`. None for stages without
/// batch limits (backup, control plane).
fn limits_text(s: &Stage) -> Option<String> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for l in &s.batch_limits {
        let t = l.to_string();
        match seen.iter_mut().find(|(x, _)| *x == t) {
            Some((_, n)) => *n += 1,
            None => seen.push((t, 1)),
        }
    }
    if seen.is_empty() {
        return None;
    }
    let parts: Vec<String> = seen.iter().map(|(t, n)| format!("{t} (×{n})")).collect();
    Some(parts.join(", "))
}

/// ` — limited by concurrency 5` after batch `j` of a stage, when known.
fn batch_limit_suffix(s: &Stage, j: usize) -> String {
    s.batch_limits
        .get(j)
        .map(|l| format!(" — limited by {l}"))
        .unwrap_or_default()
}

fn duration(secs: u64) -> String {
    GoDuration::from_secs(secs).to_string()
}

fn severity_tag(sev: Severity, forced: bool) -> &'static str {
    match (sev, forced) {
        (Severity::Deny, true) => "FORCED",
        (Severity::Deny, false) => "DENY",
        (Severity::Defer, _) => "DEFER",
        (Severity::Warn, _) => "WARN",
    }
}

/// ` [forceable]` after a deny that `force: [id]` in cluster.yaml would override.
fn forceable_mark(f: &cupcake_api::plan::Finding) -> &'static str {
    if f.severity == Severity::Deny && f.forceable && !f.forced {
        " [forceable]"
    } else {
        ""
    }
}

/// What happens to the DirectUpdate: created only when allowed, else what would be.
fn direct_update_line(r: &PlanReport) -> Option<String> {
    let name = r.direct_update.as_ref()?.metadata.name.clone()?;
    Some(match r.decision.verdict {
        Verdict::Allow => format!("DirectUpdate: {name}"),
        _ => format!("DirectUpdate: none now (would create {name} when allowed)"),
    })
}

fn current_text(c: &CurrentVersions) -> (String, String) {
    let cp = c
        .control_plane
        .as_ref()
        .map_or("unknown".to_string(), ToString::to_string);
    let apis: Vec<String> = c
        .apiservers
        .iter()
        .map(|(n, v)| format!("{n} {v}"))
        .collect();
    let kubelets: Vec<String> = c
        .kubelets
        .iter()
        .map(|(v, n)| format!("{v} ×{n}"))
        .collect();
    (format!("{cp} ({})", apis.join(", ")), kubelets.join(", "))
}

fn verdict_line(r: &PlanReport) -> String {
    let mut s = match (r.up_to_date, r.decision.verdict) {
        (true, Verdict::Allow) => "UP TO DATE".to_string(),
        (_, Verdict::Allow) => "ALLOWED".to_string(),
        (_, Verdict::Deny) => "DENIED".to_string(),
        (_, Verdict::Defer) => "DEFERRED".to_string(),
    };
    if let Some(t) = r.decision.defer_until {
        let _ = write!(
            s,
            " until {}",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    s
}

/// `2026-11-28 03:00 Europe/Amsterdam (02:00 UTC)`: a time in its window's zone and in UTC.
fn local_and_utc(t: chrono::DateTime<chrono::Utc>, tz: &str) -> String {
    let utc = t.format("%Y-%m-%d %H:%M UTC").to_string();
    match tz.parse::<chrono_tz::Tz>() {
        Ok(z) if tz != "UTC" => format!(
            "{} {tz} ({})",
            t.with_timezone(&z).format("%Y-%m-%d %H:%M"),
            t.format("%H:%M UTC")
        ),
        _ => utc,
    }
}

/// The maintenance window at `now`, in the window's own time zone and UTC.
fn window_line(r: &PlanReport) -> Option<String> {
    let s = r.schedule.as_ref()?;
    if !s.configured || s.windows == 0 {
        return Some("no maintenance window configured (upgrades may start any time)".into());
    }
    if let Some(w) = &s.active_window {
        let left = s.remaining_seconds.unwrap_or(0).max(0) as u64;
        return Some(format!(
            "open now (windows[{}]), closes {}, in {}",
            w.index,
            local_and_utc(w.end, &w.time_zone),
            duration(left)
        ));
    }
    Some(match &s.next_window {
        Some(w) => format!(
            "closed; the next (windows[{}]) opens {} and closes {}",
            w.index,
            local_and_utc(w.start, &w.time_zone),
            local_and_utc(w.end, &w.time_zone)
        ),
        None => "closed; none opens within a year".into(),
    })
}

/// The human-readable summary.
pub fn text(r: &PlanReport) -> String {
    let mut o = String::new();
    let cp = r
        .current
        .control_plane
        .as_ref()
        .map_or("unknown".to_string(), ToString::to_string);
    let _ = writeln!(o, "Cluster {}: {} → {}", r.cluster, cp, r.target);
    if let Some(rev) = &r.revision {
        let _ = writeln!(o, "Revision: {rev}");
    }
    let _ = writeln!(o, "Verdict: {}", verdict_line(r));
    if let Some(w) = window_line(r) {
        let _ = writeln!(o, "Window: {w}");
    }
    let (apis, kubelets) = current_text(&r.current);
    let _ = writeln!(o, "Control plane: {apis}");
    let _ = writeln!(o, "Kubelets: {kubelets}");
    if !r.plan.hops.is_empty() {
        let hops: Vec<String> = r
            .plan
            .hops
            .iter()
            .map(|h| format!("{} → {}", h.from, h.to))
            .collect();
        let _ = writeln!(o, "Hops: {}", hops.join(", "));
    }
    if !r.plan.stages.is_empty() {
        let _ = writeln!(o, "Plan (estimate {}):", duration(r.plan.estimate.seconds));
        for (i, s) in r.plan.stages.iter().enumerate() {
            let _ = writeln!(
                o,
                "  {:>2}. {:<13} {:<10} {}",
                i + 1,
                s.kind.as_str(),
                s.version.to_string(),
                stage_text(s)
            );
            if let Some(l) = limits_text(s) {
                let _ = writeln!(o, "      batch size limited by: {l}");
            }
        }
    }
    if r.decision.findings.is_empty() {
        let _ = writeln!(o, "Findings: none");
    } else {
        let _ = writeln!(o, "Findings:");
        for f in &r.decision.findings {
            let _ = writeln!(
                o,
                "  {:<6} {}{} ({}): {}",
                severity_tag(f.severity, f.forced),
                f.rule,
                forceable_mark(f),
                f.source,
                f.message
            );
        }
    }
    if let Some(line) = direct_update_line(r) {
        let _ = writeln!(o, "{line}");
    }
    o
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// A stage with more batches than this shows the first [`GANTT_BATCHES_SHOWN`]
/// one by one and the rest as one bar (a 200-batch chart is unreadable).
const GANTT_BATCHES_MAX: usize = 8;
const GANTT_BATCHES_SHOWN: usize = 5;

/// Text safe inside a Mermaid Gantt task name or title: `:` starts a task's data,
/// `#` and `;` end a statement.
fn mermaid_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ':' | '#' | ';' | '\n' => ' ',
            c => c,
        })
        .collect()
}

fn gantt_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// When the forecast rollout starts, and the maintenance window it starts in: at
/// `deferUntil` when the gate deferred it, else now inside an open window (or when
/// no window is configured), else when the next window opens.
fn forecast_start(
    r: &PlanReport,
    now: chrono::DateTime<chrono::Utc>,
) -> (
    chrono::DateTime<chrono::Utc>,
    Option<&cupcake_api::schedule::WindowSpan>,
) {
    let sched = r.schedule.as_ref();
    let windows = sched.filter(|s| s.configured && s.windows > 0);
    let start = match (r.decision.defer_until, windows) {
        (Some(t), _) => t.max(now),
        (None, None) => now,
        (None, Some(s)) if s.active_window.is_some() => now,
        (None, Some(s)) => s.next_window.as_ref().map_or(now, |w| w.start),
    };
    let window = windows.and_then(|s| {
        [s.active_window.as_ref(), s.next_window.as_ref()]
            .into_iter()
            .flatten()
            .find(|w| w.start <= start && start < w.end)
    });
    (start, window)
}

/// A Mermaid Gantt chart of the forecast rollout against its maintenance window
/// (GitHub renders ```` ```mermaid ```` blocks), and a sentence saying when it ends
/// and whether that fits the window. Durations come from the plan's estimate
/// (cluster.yaml `estimates`, one batch at a time). Times are UTC. None when
/// there is nothing to run.
pub fn gantt(r: &PlanReport, now: chrono::DateTime<chrono::Utc>) -> Option<String> {
    let per = &r.plan.estimate.batch_seconds;
    if r.up_to_date || r.plan.stages.is_empty() || per.len() != r.plan.stages.len() {
        return None;
    }
    let (start, window) = forecast_start(r, now);
    let end = start + chrono::Duration::seconds(r.plan.estimate.seconds as i64);
    let late = |t: chrono::DateTime<chrono::Utc>| window.is_some_and(|w| t > w.end);
    let mut o = String::new();
    let _ = writeln!(o, "```mermaid\ngantt");
    let _ = writeln!(
        o,
        "    title {} to {} (forecast, UTC)",
        mermaid_text(&r.cluster),
        r.target
    );
    let _ = writeln!(o, "    dateFormat YYYY-MM-DDTHH:mm:ss");
    let _ = writeln!(o, "    axisFormat %a %H:%M");
    let _ = writeln!(o, "    todayMarker off");
    if let Some(w) = window {
        let _ = writeln!(o, "    section Window");
        let _ = writeln!(
            o,
            "    windows[{}] :active, window, {}, {}",
            w.index,
            gantt_time(w.start),
            gantt_time(w.end)
        );
    }
    let mut t = start;
    for (i, (s, secs)) in r.plan.stages.iter().zip(per).enumerate() {
        let _ = writeln!(
            o,
            "    section {}. {} {}",
            i + 1,
            s.kind.as_str(),
            s.version
        );
        let step = chrono::Duration::seconds(*secs as i64);
        let n = s.batches.len();
        let shown = if n > GANTT_BATCHES_MAX {
            GANTT_BATCHES_SHOWN
        } else {
            n
        };
        // One bar of `batches` batches, from where the previous bar ended.
        let mut bar = |o: &mut String, name: String, id: String, batches: i32| {
            let until = t + step * batches;
            let tag = if late(until) { "crit, " } else { "" };
            let _ = writeln!(
                o,
                "    {} :{tag}{id}, {}, {}",
                mermaid_text(&name),
                gantt_time(t),
                gantt_time(until)
            );
            t = until;
        };
        for (j, b) in s.batches.iter().take(shown).enumerate() {
            let name = match (s.kind, b.as_slice()) {
                (cupcake_api::plan::StageKind::Backup, [node]) => {
                    format!("etcd snapshot on {node}")
                }
                (_, [node]) => node.clone(),
                _ => format!("batch {} ({} nodes)", j + 1, b.len()),
            };
            bar(&mut o, name, format!("s{}b{}", i + 1, j + 1), 1);
        }
        if n > shown {
            let nodes: usize = s.batches[shown..].iter().map(Vec::len).sum();
            let rest = (n - shown) as i32;
            bar(
                &mut o,
                format!("batches {}-{n} ({nodes} nodes)", shown + 1),
                format!("s{}rest", i + 1),
                rest,
            );
        }
    }
    let _ = writeln!(o, "```\n");
    let fit = match window {
        Some(w) if end > w.end => format!(
            "; ends **{} after the window closes**{}",
            duration((end - w.end).num_seconds() as u64),
            if w.must_finish {
                " (the window is `mustFinish`)"
            } else {
                " (the rollout continues; only starts need a window)"
            }
        ),
        Some(_) => "; fits the window".to_string(),
        None if r
            .schedule
            .as_ref()
            .is_some_and(|s| s.configured && s.windows > 0) =>
        {
            "; no window is open then".to_string()
        }
        None => String::new(),
    };
    let _ = writeln!(
        o,
        "Forecast: starts {}, ends {} ({}, from cluster.yaml `estimates`: one batch at a time){fit}.\n",
        start.format("%Y-%m-%d %H:%M UTC"),
        end.format("%Y-%m-%d %H:%M UTC"),
        duration(r.plan.estimate.seconds)
    );
    Some(o)
}

/// Markdown for a pull-request comment: verdict first, then plan and findings,
/// and the forecast rollout as a Gantt chart ([`gantt`]) against the window at `now`.
pub fn markdown(r: &PlanReport, now: chrono::DateTime<chrono::Utc>) -> String {
    let mut o = String::new();
    let icon = match r.decision.verdict {
        Verdict::Allow => "✅",
        Verdict::Deny => "⛔",
        Verdict::Defer => "⏸️",
    };
    let cp = r
        .current
        .control_plane
        .as_ref()
        .map_or("unknown".to_string(), ToString::to_string);
    let _ = writeln!(
        o,
        "### {icon} CUPCAKE plan for `{}`: **{}**\n",
        r.cluster,
        verdict_line(r)
    );
    let _ = writeln!(
        o,
        "`{cp}` → `{}`{}\n",
        r.target,
        r.revision
            .as_ref()
            .map(|v| format!(" at `{v}`"))
            .unwrap_or_default()
    );
    if let Some(w) = window_line(r) {
        let _ = writeln!(o, "Maintenance window: {w}\n");
    }
    if !r.decision.findings.is_empty() {
        let _ = writeln!(
            o,
            "| severity | rule | message | source |\n|---|---|---|---|"
        );
        for f in &r.decision.findings {
            let _ = writeln!(
                o,
                "| {}{} | `{}` | {} | {} |",
                severity_tag(f.severity, f.forced),
                forceable_mark(f),
                f.rule,
                md_escape(&f.message),
                f.source
            );
        }
        o.push('\n');
    }
    if !r.plan.stages.is_empty() {
        let _ = writeln!(
            o,
            "**Plan** (estimate {}):\n",
            duration(r.plan.estimate.seconds)
        );
        let _ = writeln!(o, "| # | stage | version | nodes |\n|---|---|---|---|");
        for (i, s) in r.plan.stages.iter().enumerate() {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} |",
                i + 1,
                s.kind.as_str(),
                s.version,
                md_escape(&stage_text(s))
            );
        }
        o.push('\n');
        if let Some(g) = gantt(r, now) {
            o.push_str(&g);
        }
        // Every batch, folded: the table above abbreviates long stages.
        let _ = writeln!(o, "<details><summary>Every batch</summary>\n");
        for (i, s) in r.plan.stages.iter().enumerate() {
            for (j, b) in s.batches.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "- stage {} ({} {}), batch {}: {}{}",
                    i + 1,
                    s.kind.as_str(),
                    s.version,
                    j + 1,
                    b.join(", "),
                    md_escape(&batch_limit_suffix(s, j))
                );
            }
        }
        let _ = writeln!(o, "</details>\n");
    }
    let (apis, kubelets) = current_text(&r.current);
    let _ = writeln!(
        o,
        "<details><summary>Current versions</summary>\n\n- control plane: {apis}\n- kubelets: {kubelets}\n</details>"
    );
    if let Some(name) = r
        .direct_update
        .as_ref()
        .and_then(|d| d.metadata.name.as_deref())
    {
        let _ = match r.decision.verdict {
            Verdict::Allow => writeln!(o, "\nDirectUpdate: `{name}`"),
            _ => writeln!(
                o,
                "\nDirectUpdate: none now (would create `{name}` when allowed)"
            ),
        };
    }
    o
}
