//! The GitOps loop of `cupcake run --repo …`: follow a branch of the fleet repo,
//! turn each desired state into a gated DirectUpdate, and write what happened
//! back to Git (the status file) and to GitHub (the commit status).
//!
//! One task, one cluster. Each turn:
//!
//! 1. **fetch** the branch (libgit2 on a blocking thread, with a deadline); an
//!    unreachable remote backs off exponentially, is counted and reported, and
//!    the last good state stays in force; a rewritten branch (force push) is
//!    followed and reported;
//! 2. **evaluate** the fleet at that commit against the live cluster with the
//!    same pipeline as `cupcake plan` ([`crate::pipeline`]);
//! 3. **act**: allowed → server-side apply the DirectUpdate, unless a DirectUpdate
//!    is still running (the new one waits, and the status says so) or one for the
//!    same target already failed (retry it with the `retry` annotation, or delete
//!    it); deferred → wake up at `deferUntil`; denied → nothing;
//! 4. **report**: the status file (committed only when its bytes change, at most
//!    one progress-only commit per [`Config::status_interval`]) and the commit status.
//!
//! A turn starts on the poll timer, on a verified GitHub push webhook, when a
//! DirectUpdate changes, or when a deferral ends. Everything it knows is
//! recomputed from Git and the cluster each turn: a restarted process picks up
//! where the last one stopped, and applying is idempotent (the DirectUpdate's
//! name is a hash of its spec).

pub mod bump;
pub mod git;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use cupcake_api::crd::{DirectUpdate, Phase};
use cupcake_api::plan::Verdict;
use futures::StreamExt;
use git2::Oid;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::report::status::{self, Assessment, CommitState, DirectUpdateView, State};
use crate::{observe, pipeline};
use git::{Auth, Mirror, Pushed};

/// The field manager of applied DirectUpdate specs.
pub const FIELD_MANAGER: &str = "cupcake-gitops";

/// Sets the commit status `cupcake/<cluster>` on a commit (GitHub, when configured):
/// `(sha, state, description)`; the error is one line, without secrets.
pub type CommitStatusFn = Arc<
    dyn Fn(String, CommitState, String) -> futures::future::BoxFuture<'static, Result<(), String>>
        + Send
        + Sync,
>;

/// Everything the loop needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// The repository as given (may be a local path; never shown as is).
    pub repo: String,
    pub branch: String,
    pub cluster: String,
    pub fleet_path: String,
    pub poll: Duration,
    pub auth: Auth,
    /// SSH host keys the remote must present (else libgit2's ~/.ssh/known_hosts check).
    pub known_hosts: Option<git::KnownHosts>,
    pub status_branch: String,
    /// Local bare mirror of the repository.
    pub mirror_dir: PathBuf,
    /// Deadline of one fetch or push.
    pub git_timeout: Duration,
    /// Shortest time between two status-file commits that only move progress.
    pub status_interval: Duration,
    /// Longest backoff after failed fetches.
    pub max_backoff: Duration,
    /// GitHub (commit statuses, auto-update pull requests), with `--github-repo`.
    pub github: Option<crate::report::github::GitHub>,
}

/// The loop's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub fetches: prometheus::IntCounterVec,
    pub fetch_seconds: prometheus::Histogram,
    pub evaluation_seconds: prometheus::HistogramVec,
    pub source_up: prometheus::IntGauge,
    pub force_pushes: prometheus::IntCounter,
    pub passes: prometheus::IntCounterVec,
    pub applies: prometheus::IntCounter,
    pub status_pushes: prometheus::IntCounterVec,
    pub commit_statuses: prometheus::IntCounterVec,
    pub webhooks: prometheus::IntCounterVec,
}

impl Metrics {
    pub fn new(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts};
        let m = Self {
            fetches: IntCounterVec::new(
                Opts::new(
                    "cupcake_git_fetches_total",
                    "Fetches of the fleet branch, by result (ok, error)",
                ),
                &["result"],
            )?,
            fetch_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "cupcake_git_fetch_duration_seconds",
                    "Time one fetch of the fleet branch took",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            )?,
            evaluation_seconds: prometheus::HistogramVec::new(
                HistogramOpts::new(
                    "cupcake_gitops_evaluation_duration_seconds",
                    "Time one evaluation took: observe the cluster, plan, gate, render",
                )
                .buckets(vec![
                    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ]),
                &["cluster_from"],
            )?,
            source_up: IntGauge::new(
                "cupcake_git_source_up",
                "1 when the last fetch of the fleet branch succeeded",
            )?,
            force_pushes: IntCounter::new(
                "cupcake_git_force_pushes_total",
                "Times the followed branch was rewritten (its new tip does not descend from the old)",
            )?,
            passes: IntCounterVec::new(
                Opts::new(
                    "cupcake_gitops_passes_total",
                    "Evaluations of the desired state, by outcome (allow, defer, deny, up_to_date, invalid)",
                ),
                &["outcome"],
            )?,
            applies: IntCounter::new(
                "cupcake_gitops_applies_total",
                "DirectUpdates applied by the GitOps loop",
            )?,
            status_pushes: IntCounterVec::new(
                Opts::new(
                    "cupcake_status_file_pushes_total",
                    "Status-file writes, by result (committed, unchanged, error)",
                ),
                &["result"],
            )?,
            commit_statuses: IntCounterVec::new(
                Opts::new(
                    "cupcake_commit_statuses_total",
                    "Commit statuses set on GitHub, by result (ok, error)",
                ),
                &["result"],
            )?,
            webhooks: IntCounterVec::new(
                Opts::new(
                    "cupcake_webhook_requests_total",
                    "GitHub webhook requests, by result (accepted, ignored, unauthorized, bad_request, replayed; bodies over 1 MiB get 413 before they are counted)",
                ),
                &["result"],
            )?,
        };
        registry.register(Box::new(m.fetches.clone()))?;
        registry.register(Box::new(m.fetch_seconds.clone()))?;
        registry.register(Box::new(m.evaluation_seconds.clone()))?;
        registry.register(Box::new(m.source_up.clone()))?;
        registry.register(Box::new(m.force_pushes.clone()))?;
        registry.register(Box::new(m.passes.clone()))?;
        registry.register(Box::new(m.applies.clone()))?;
        registry.register(Box::new(m.status_pushes.clone()))?;
        registry.register(Box::new(m.commit_statuses.clone()))?;
        registry.register(Box::new(m.webhooks.clone()))?;
        // Every label value exists from the start, at 0: a series born at 1 shows no
        // increase() in Prometheus, so the first failed fetch or invalid pass would
        // raise no alert (charts/cupcake/files/prometheus-rules.yaml).
        for (family, values) in [
            (&m.fetches, &["ok", "error"][..]),
            (
                &m.passes,
                &["allow", "defer", "deny", "up_to_date", "invalid"][..],
            ),
            (&m.status_pushes, &["committed", "unchanged", "error"][..]),
            (&m.commit_statuses, &["ok", "error"][..]),
            (
                &m.webhooks,
                &[
                    "accepted",
                    "ignored",
                    "unauthorized",
                    "bad_request",
                    "replayed",
                ][..],
            ),
        ] {
            for v in values {
                family.with_label_values(&[*v]);
            }
        }
        Ok(m)
    }
}

/// The loop's memory between turns. Only an optimisation and a report: a fresh
/// process rebuilds all of it from Git and the cluster.
#[derive(Debug, Default)]
struct Memory {
    /// The last turn observed the cluster and evaluated (its garbage is worth giving back).
    evaluated: bool,
    /// Tip of the branch at the last successful fetch.
    tip: Option<Oid>,
    /// Consecutive failed fetches.
    failures: u32,
    /// The last source error (shown in the status file while it lasts).
    source_error: Option<String>,
    /// The status file as last committed (or found unchanged).
    status_written: Option<String>,
    status_written_at: Option<Instant>,
    /// The last status write failed: retry with the next fetch, not at once.
    status_failed: bool,
    /// The commit status as last set, per commit.
    commit_status: Option<(String, CommitState, String)>,
    /// A deferred plan may start then.
    defer_until: Option<chrono::DateTime<Utc>>,
    /// The last evaluation (see [`turn`]).
    last_eval: Option<LastEval>,
    /// The auto-update proposal as last reported, and the (revision, version) it was made for.
    auto_update: Option<cupcake_api::status_file::StatusAutoUpdate>,
    auto_update_for: Option<(Oid, String)>,
}

/// Why a turn starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    Timer,
    Webhook,
    DirectUpdate,
}

/// Run the loop until the future is dropped (the lease is lost or the process stops).
pub async fn run(
    cfg: Config,
    client: Client,
    observer: observe::Observer,
    webhook: Arc<Notify>,
    metrics: Metrics,
    commit_status: Option<CommitStatusFn>,
) {
    let mirror = {
        let cfg = cfg.clone();
        match tokio::task::spawn_blocking(move || {
            Mirror::open(
                &cfg.mirror_dir,
                &cfg.repo,
                cfg.auth.clone(),
                cfg.git_timeout,
            )
        })
        .await
        {
            Ok(Ok(m)) => Arc::new(std::sync::Mutex::new(m)),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot open the local mirror: the GitOps loop stops");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "opening the local mirror panicked");
                return;
            }
        }
    };
    let du_changed = Arc::new(Notify::new());
    let (dus, reflect) = {
        let (reader, writer) = reflector::store();
        let notify = du_changed.clone();
        let stream = reflector::reflector(
            writer,
            watcher(
                Api::<DirectUpdate>::all(client.clone()),
                watcher::Config::default(),
            ),
        )
        .default_backoff()
        .for_each(move |_| {
            notify.notify_one();
            futures::future::ready(())
        });
        (reader, stream)
    };
    let turns = async {
        let _ = dus.wait_until_ready().await;
        let mut mem = Memory::default();
        let mut wake = Wake::Timer;
        let mut next_fetch = Instant::now();
        loop {
            // Fetch when due or asked to by a webhook; other wakes re-evaluate only.
            let fetch_now = wake == Wake::Webhook || Instant::now() >= next_fetch;
            if fetch_now {
                match fetch(&cfg, &mirror, &metrics, &mut mem).await {
                    Ok(()) => next_fetch = Instant::now() + cfg.poll,
                    Err(()) => next_fetch = Instant::now() + backoff(&cfg, mem.failures),
                }
            }
            let assessment = turn(
                &cfg, &client, &observer, &mirror, &dus, &metrics, &mut mem, wake,
            )
            .await;
            // The evaluation's snapshot, plan and policy input are freed: hand the pages
            // back (not after the turns that only report a DirectUpdate's progress).
            if std::mem::take(&mut mem.evaluated) {
                crate::telemetry::release_memory();
            }
            report(
                &cfg,
                &mirror,
                &metrics,
                &mut mem,
                &assessment,
                commit_status.as_ref(),
            )
            .await;
            // Sleep until the next reason to look again.
            let mut until = next_fetch;
            if let Some(t) = mem.defer_until {
                let secs = (t - Utc::now()).num_milliseconds().max(0) as u64;
                until = until.min(Instant::now() + Duration::from_millis(secs + 50));
            }
            if let Some(at) = mem.status_written_at.filter(|_| !mem.status_failed) {
                // A progress-only change held back by the interval: look again then.
                let pending = status::to_yaml(&status::status_file(&assessment));
                if mem.status_written.as_deref() != Some(pending.as_str()) {
                    until = until.min(at + cfg.status_interval);
                }
            }
            let sleep = tokio::time::sleep_until(until.into());
            wake = tokio::select! {
                _ = sleep => Wake::Timer,
                _ = webhook.notified() => Wake::Webhook,
                _ = du_changed.notified() => {
                    // Let a burst of status writes settle into one turn.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Wake::DirectUpdate
                }
            };
            tracing::debug!(?wake, "GitOps turn");
        }
    };
    tokio::select! {
        _ = reflect => warn!("the DirectUpdate watch ended"),
        _ = turns => {}
    }
}

fn backoff(cfg: &Config, failures: u32) -> Duration {
    let base = Duration::from_secs(1).min(cfg.poll);
    let exp = base.saturating_mul(1u32 << failures.min(16));
    exp.min(cfg.max_backoff).max(base)
}

type SharedMirror = Arc<std::sync::Mutex<Mirror>>;

/// Run a Git operation on a blocking thread, bounded by the git timeout (plus
/// slack for local work); a stuck libgit2 call leaves its thread behind, holding
/// the mirror, and the next operation reports that instead of piling up.
async fn with_mirror<T: Send + 'static>(
    cfg: &Config,
    mirror: &SharedMirror,
    f: impl FnOnce(&Mirror) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    let m = mirror.clone();
    let op = tokio::task::spawn_blocking(move || {
        let guard = m.try_lock().map_err(|_| {
            "an earlier Git operation is still running past its deadline".to_string()
        })?;
        f(&guard)
    });
    match tokio::time::timeout(cfg.git_timeout + Duration::from_secs(5), op).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(format!("Git operation panicked: {e}")),
        Err(_) => Err(format!(
            "Git operation gave no answer within {}s",
            (cfg.git_timeout + Duration::from_secs(5)).as_secs()
        )),
    }
}

async fn fetch(
    cfg: &Config,
    mirror: &SharedMirror,
    metrics: &Metrics,
    mem: &mut Memory,
) -> Result<(), ()> {
    let branch = cfg.branch.clone();
    let old = mem.tip;
    let started = Instant::now();
    let got = with_mirror(cfg, mirror, move |m| {
        let tip = m.fetch(&branch).map_err(|e| e.to_string())?;
        let rewritten = old.is_some_and(|o| !m.descends(tip, o));
        Ok((tip, rewritten))
    })
    .await;
    metrics
        .fetch_seconds
        .observe(started.elapsed().as_secs_f64());
    match got {
        Ok((tip, rewritten)) => {
            metrics.fetches.with_label_values(&["ok"]).inc();
            metrics.source_up.set(1);
            if mem.failures > 0 {
                info!(
                    failures = mem.failures,
                    "the fleet repository is reachable again"
                );
            }
            mem.failures = 0;
            mem.source_error = None;
            if rewritten {
                metrics.force_pushes.inc();
                warn!(
                    branch = %cfg.branch,
                    old = %mem.tip.map(|o| o.to_string()).unwrap_or_default(),
                    new = %tip,
                    "the branch was rewritten (force push): following the new tip"
                );
            }
            if mem.tip != Some(tip) {
                info!(branch = %cfg.branch, revision = %tip, "new desired-state revision");
            }
            mem.tip = Some(tip);
            Ok(())
        }
        Err(e) => {
            metrics.fetches.with_label_values(&["error"]).inc();
            metrics.source_up.set(0);
            mem.failures += 1;
            warn!(error = %e, failures = mem.failures, retry_in = ?backoff(cfg, mem.failures), "fetching the fleet repository failed; the last good state stays in force");
            mem.source_error = Some(e);
            Err(())
        }
    }
}

/// What the DirectUpdates in the cluster mean for the desired target.
struct Selection {
    /// The DirectUpdate to show for this desired state.
    shown: Option<DirectUpdateView>,
    /// Why nothing is applied although the verdict may allow it.
    waiting: Option<String>,
    /// The desired state has no DirectUpdate yet and nothing stands in the way.
    may_apply: bool,
}

/// Pick the DirectUpdate carrying `report`'s target: a running one for it; else the
/// newest for it (a Failed or RequiresAttention one blocks a new one until retried or
/// deleted); a running one for another target makes a new one wait.
fn select(report: &cupcake_api::report::PlanReport, all: &[Arc<DirectUpdate>]) -> Selection {
    let target = report.target.to_string();
    let running: Vec<&Arc<DirectUpdate>> = all
        .iter()
        .filter(|d| !crate::rollout::terminal(d))
        .collect();
    let for_target = |d: &&Arc<DirectUpdate>| d.spec.target_version.to_string() == target;
    if let Some(d) = running.iter().copied().find(for_target) {
        return Selection {
            shown: Some(DirectUpdateView::of(d)),
            waiting: None,
            may_apply: false,
        };
    }
    let mut done: Vec<&Arc<DirectUpdate>> = all.iter().filter(for_target).collect();
    done.sort_by_key(|d| d.metadata.creation_timestamp.clone().map(|t| t.0));
    let newest = done.last().copied();
    let blocked = newest.filter(|d| {
        d.status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(|p| matches!(p, Phase::Failed | Phase::RequiresAttention))
    });
    if let Some(d) = blocked {
        // Never start the same target again behind a failed one's back.
        return Selection {
            shown: Some(DirectUpdateView::of(d)),
            waiting: Some(format!(
                "DirectUpdate {} for {target} failed: retry it (annotation cupcake.ricardomolendijk.com/retry=<node>) or delete it",
                d.name_any()
            )),
            may_apply: false,
        };
    }
    if report.up_to_date {
        return Selection {
            shown: newest.map(|d| DirectUpdateView::of(d)),
            waiting: None,
            may_apply: false,
        };
    }
    if let Some(other) = running.first() {
        return Selection {
            shown: None,
            waiting: (report.decision.verdict == Verdict::Allow).then(|| {
                format!(
                    "waiting: DirectUpdate {} ({}) runs first (one at a time per cluster)",
                    other.name_any(),
                    other.spec.target_version
                )
            }),
            may_apply: false,
        };
    }
    Selection {
        shown: None,
        waiting: None,
        may_apply: report.decision.verdict == Verdict::Allow && report.direct_update.is_some(),
    }
}

/// The last evaluation, reused when only a DirectUpdate's status moved.
#[derive(Debug, Clone)]
struct LastEval {
    tip: Oid,
    report: Box<cupcake_api::report::PlanReport>,
    /// The running DirectUpdates then: when one finishes, evaluate afresh.
    running: Vec<String>,
}

fn running_names(all: &[Arc<DirectUpdate>]) -> Vec<String> {
    let mut v: Vec<String> = all
        .iter()
        .filter(|d| !crate::rollout::terminal(d))
        .map(|d| d.name_any())
        .collect();
    v.sort();
    v
}

/// Evaluate the desired state at the current tip and act on it. A turn woken only by
/// a DirectUpdate's progress reuses the last evaluation (no cluster listing) as long
/// as the tip and the set of running DirectUpdates are the same.
#[allow(clippy::too_many_arguments)]
async fn turn(
    cfg: &Config,
    client: &Client,
    observer: &observe::Observer,
    mirror: &SharedMirror,
    dus: &Store<DirectUpdate>,
    metrics: &Metrics,
    mem: &mut Memory,
    wake: Wake,
) -> Assessment {
    let Some(tip) = mem.tip else {
        mem.defer_until = None;
        return Assessment {
            cluster: cfg.cluster.clone(),
            revision: None,
            state: State::Error(
                mem.source_error
                    .clone()
                    .unwrap_or_else(|| "the fleet repository has not been fetched yet".into()),
            ),
        };
    };
    let assessment = |state| Assessment {
        cluster: cfg.cluster.clone(),
        revision: Some(tip.to_string()),
        state,
    };
    let all = dus.state();
    let running = running_names(&all);
    if wake == Wake::DirectUpdate
        && let Some(last) = mem
            .last_eval
            .as_ref()
            .filter(|l| l.tip == tip && l.running == running)
    {
        let sel = select(&last.report, &all);
        if !sel.may_apply {
            return assessment(State::Evaluated {
                report: last.report.clone(),
                direct_update: sel.shown,
                waiting: sel.waiting,
            });
        }
    }
    mem.defer_until = None;
    mem.last_eval = None;
    let fleet_path = cfg.fleet_path.clone();
    let tree = match with_mirror(cfg, mirror, move |m| {
        m.tree(tip, &fleet_path).map_err(|e| e.to_string())
    })
    .await
    {
        Ok(t) => t,
        Err(e) => {
            metrics.passes.with_label_values(&["invalid"]).inc();
            return assessment(State::Error(e));
        }
    };
    let loaded = match pipeline::load(&tree, &cfg.cluster) {
        Ok(l) => l,
        Err(e) => {
            metrics.passes.with_label_values(&["invalid"]).inc();
            return assessment(State::Error(crate::cli::error_chain(&e)));
        }
    };
    let started = Instant::now();
    let (snap, source) = match observer.snapshot().await {
        Ok(s) => s,
        Err(e) => return assessment(State::Error(e.to_string())),
    };
    let observed = started.elapsed();
    let evaluated = match pipeline::evaluate(&tree, &loaded, &snap, Utc::now()) {
        Ok(e) => e,
        Err(e) => {
            metrics.passes.with_label_values(&["invalid"]).inc();
            return assessment(State::Error(crate::cli::error_chain(&e)));
        }
    };
    let took = started.elapsed();
    mem.evaluated = true;
    metrics
        .evaluation_seconds
        .with_label_values(&[source.as_str()])
        .observe(took.as_secs_f64());
    info!(
        revision = %tip,
        cluster_from = source.as_str(),
        observe_ms = observed.as_millis() as u64,
        plan_gate_ms = (took - observed).as_millis() as u64,
        total_ms = took.as_millis() as u64,
        "evaluated the desired state against the live cluster"
    );
    let report = evaluated.report;
    let outcome = if report.up_to_date {
        "up_to_date"
    } else {
        match report.decision.verdict {
            Verdict::Allow => "allow",
            Verdict::Defer => "defer",
            Verdict::Deny => "deny",
        }
    };
    metrics.passes.with_label_values(&[outcome]).inc();
    let mut sel = select(&report, &all);
    if report.decision.verdict == Verdict::Defer && !report.up_to_date {
        mem.defer_until = report.decision.defer_until;
    }
    if sel.may_apply
        && let Some(du) = &report.direct_update
    {
        match apply(client, du).await {
            Ok(applied) => {
                metrics.applies.inc();
                info!(name = %applied.name_any(), revision = %tip, "applied the DirectUpdate");
                sel.shown = Some(DirectUpdateView::of(&applied));
            }
            Err(e) => {
                return assessment(State::Error(format!(
                    "applying DirectUpdate {}: {e}",
                    du.name_any()
                )));
            }
        }
    }
    if let Some(gh) = &cfg.github {
        auto_update(cfg, gh, mirror, &tree, &loaded, &snap, tip, mem).await;
    } else {
        auto_update_without_github(&loaded, mem);
    }
    let report = Box::new(report);
    mem.last_eval = Some(LastEval {
        tip,
        report: report.clone(),
        running,
    });
    assessment(State::Evaluated {
        report,
        direct_update: sel.shown,
        waiting: sel.waiting,
    })
}

/// The proposal `autoUpdate` asks for at this revision, if any: (version, pullRequest).
fn proposal(loaded: &pipeline::Loaded) -> Result<Option<(cupcake_api::KubeVersion, bool)>, String> {
    let def = loaded.def();
    let Some(au) = def
        .schedule
        .as_ref()
        .and_then(|s| s.spec.auto_update.as_ref())
        .filter(|a| a.enabled)
    else {
        return Ok(None);
    };
    let Some(catalog) = loaded.fleet.catalog_spec() else {
        return Err(
            "autoUpdate is enabled but the fleet has no versions.yaml: nothing to propose from"
                .into(),
        );
    };
    Ok(cupcake_core::autoupdate::proposal(
        catalog,
        &def.version.spec.kubernetes_version,
        au.channel,
    )
    .map(|v| (v, au.pull_request)))
}

/// Without GitHub there is no pull request to open: the proposal is reported in the
/// status file, saying so (an enabled autoUpdate is never silently ignored).
fn auto_update_without_github(loaded: &pipeline::Loaded, mem: &mut Memory) {
    use cupcake_api::status_file::StatusAutoUpdate;
    mem.auto_update = match proposal(loaded) {
        Ok(None) => None,
        Ok(Some((version, pr))) => Some(StatusAutoUpdate {
            version,
            branch: None,
            pull_request: None,
            message: Some(if pr {
                "available: a pull request needs cupcake run --github-repo and --github-token-file"
                    .into()
            } else {
                "available (autoUpdate.pullRequest is false)".into()
            }),
        }),
        Err(e) => {
            warn!(error = %e, "auto-update");
            None
        }
    };
}

/// Propose the newer version as a pull request: the bump of cluster.yaml on
/// `cupcake/update-<cluster>` (rebuilt on the desired-state tip, force-pushed: a branch
/// only CUPCAKE writes), the plan and verdict for that version as its body. Once per
/// (revision, version); never for a version whose pull request was merged or closed.
#[allow(clippy::too_many_arguments)]
async fn auto_update(
    cfg: &Config,
    gh: &crate::report::github::GitHub,
    mirror: &SharedMirror,
    tree: &crate::source::FleetTree,
    loaded: &pipeline::Loaded,
    snap: &cupcake_api::snapshot::ClusterSnapshot,
    tip: Oid,
    mem: &mut Memory,
) {
    use crate::report::github::{Outcome, UpdatePr};
    use cupcake_api::status_file::StatusAutoUpdate;
    let (version, pull_request) = match proposal(loaded) {
        Ok(Some(p)) => p,
        Ok(None) => {
            mem.auto_update = None;
            mem.auto_update_for = None;
            return;
        }
        Err(e) => {
            warn!(error = %e, "auto-update");
            mem.auto_update = None;
            return;
        }
    };
    let key = (tip, version.to_string());
    if mem.auto_update_for.as_ref() == Some(&key) {
        return;
    }
    let mut state = StatusAutoUpdate {
        version: version.clone(),
        branch: None,
        pull_request: None,
        message: None,
    };
    if !pull_request {
        state.message = Some("available (autoUpdate.pullRequest is false)".into());
        mem.auto_update = Some(state);
        mem.auto_update_for = Some(key);
        return;
    }
    let head = format!("cupcake/update-{}", cfg.cluster);
    let def = loaded.def();
    let mut pr = UpdatePr {
        cluster: cfg.cluster.clone(),
        version: version.to_string(),
        head: head.clone(),
        base: cfg.branch.clone(),
        title: format!("cupcake: upgrade {} to {version}", cfg.cluster),
        body: String::new(),
    };
    let result: Result<(), String> = async {
        if let Some(Outcome::AlreadyDecided { number, state: s }) = gh.update_decided(&pr).await? {
            state.pull_request = Some(number);
            state.message = Some(format!("pull request #{number} for {version} was {s}: not proposed again"));
            return Ok(());
        }
        // The plan and verdict for the proposed version, against the cluster as it is.
        let mut fleet = loaded.fleet.clone();
        if let Some(c) = fleet.clusters.get_mut(&cfg.cluster) {
            c.version.spec.kubernetes_version = version.clone();
        }
        let proposed = pipeline::Loaded {
            fleet,
            cluster: loaded.cluster.clone(),
            schedule: loaded.schedule.clone(),
            policies: loaded.policies.clone(),
            config: loaded.config.clone(),
        };
        let now = Utc::now();
        let ev = pipeline::evaluate(tree, &proposed, snap, now).map_err(|e| crate::cli::error_chain(&e))?;
        pr.body = format!(
            "CUPCAKE proposes {version} for `{}` (autoUpdate, channel from `clusters/{}/schedule.yaml`). Merge to upgrade; close to decline this version.\n\n{}",
            cfg.cluster,
            cfg.cluster,
            crate::present::markdown(&ev.report, now)
        );
        let rel = def.path.to_string_lossy().to_string();
        let text = tree
            .text(&rel)
            .map_err(|e| format!("{rel}: {e}"))?
            .ok_or_else(|| format!("{rel}: not in the tree"))?;
        let bumped = gitops_bump(text, &version.to_string()).map_err(|e| format!("{rel}: {e}"))?;
        let repo_path = tree.repo_path(&rel);
        let message = format!("cupcake: upgrade {} to {version}", cfg.cluster);
        let branch = head.clone();
        with_mirror(cfg, mirror, move |m| {
            let files = std::collections::BTreeMap::from([(repo_path, Some(bumped.into_bytes()))]);
            m.commit_and_push(&branch, Some(tip), &files, &message, true, 3)
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await?;
        state.branch = Some(head.clone());
        let outcome = gh.ensure_update_pr(&pr).await?;
        let (n, what) = match outcome {
            Outcome::Created(n) => (n, "opened"),
            Outcome::Updated(n) => (n, "updated"),
            Outcome::Unchanged(n) => (n, "open"),
            Outcome::AlreadyDecided { number, .. } => (number, "already decided"),
        };
        info!(pull_request = n, %version, what, "auto-update pull request");
        state.pull_request = Some(n);
        state.message = Some(format!("pull request #{n} {what}"));
        Ok(())
    }
    .await;
    match result {
        Ok(()) => mem.auto_update_for = Some(key),
        Err(e) => {
            warn!(error = %e, "auto-update pull request failed; retrying next turn");
            state.message = Some(format!("proposing failed: {e}"));
        }
    }
    mem.auto_update = Some(state);
}

fn gitops_bump(text: &str, version: &str) -> Result<String, String> {
    bump::bump_version_text(text, version)
}

/// Server-side apply of a rendered DirectUpdate's spec.
async fn apply(client: &Client, du: &DirectUpdate) -> Result<DirectUpdate, kube::Error> {
    let api = Api::<DirectUpdate>::all(client.clone());
    let mut body = du.clone();
    body.status = None;
    body.metadata.managed_fields = None;
    body.metadata.resource_version = None;
    api.patch(
        &du.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
}

/// Write the status file and the commit status when they changed.
async fn report(
    cfg: &Config,
    mirror: &SharedMirror,
    metrics: &Metrics,
    mem: &mut Memory,
    a: &Assessment,
    commit_status: Option<&CommitStatusFn>,
) {
    let mut file = status::status_file(a);
    file.auto_update = mem.auto_update.clone();
    if let Some(e) = &mem.source_error {
        // The last good state stays in force; say why it may be stale.
        file.error = Some(match file.error.take() {
            Some(old) if old != *e => format!("{e}; {old}"),
            _ => e.clone(),
        });
    }
    let yaml = status::to_yaml(&file);
    let changed = mem.status_written.as_deref() != Some(yaml.as_str());
    let progress_only = changed
        && mem
            .status_written
            .as_deref()
            .is_some_and(|old| same_but_progress(old, &yaml));
    let held = progress_only
        && mem
            .status_written_at
            .is_some_and(|at| at.elapsed() < cfg.status_interval);
    if changed && !held {
        let rel = status::path(&cfg.cluster);
        let branch = cfg.status_branch.clone();
        let message = format!(
            "cupcake: status of {} at {}",
            cfg.cluster,
            a.revision
                .as_deref()
                .map(|r| &r[..r.len().min(7)])
                .unwrap_or("no revision")
        );
        let bytes = yaml.clone().into_bytes();
        let pushed = with_mirror(cfg, mirror, move |m| {
            let files = std::collections::BTreeMap::from([(rel, Some(bytes))]);
            m.commit_and_push(&branch, None, &files, &message, false, 5)
                .map_err(|e| e.to_string())
        })
        .await;
        match pushed {
            Ok(p) => {
                let label = match p {
                    Pushed::Unchanged(_) => "unchanged",
                    Pushed::Committed { retries, .. } => {
                        if retries > 0 {
                            info!(
                                retries,
                                "status branch moved meanwhile: rebased the status commit"
                            );
                        }
                        "committed"
                    }
                };
                metrics.status_pushes.with_label_values(&[label]).inc();
                mem.status_written = Some(yaml);
                mem.status_written_at = Some(Instant::now());
                mem.status_failed = false;
            }
            Err(e) => {
                metrics.status_pushes.with_label_values(&["error"]).inc();
                mem.status_failed = true;
                warn!(error = %e, branch = %cfg.status_branch, "writing the status file failed; retrying next turn");
            }
        }
    }
    if let (Some(sink), Some(rev)) = (commit_status, &a.revision) {
        let (state, description) = status::commit_status(a);
        let key = (rev.clone(), state, description.clone());
        if mem.commit_status.as_ref() != Some(&key) {
            match sink(rev.clone(), state, description).await {
                Ok(()) => {
                    metrics.commit_statuses.with_label_values(&["ok"]).inc();
                    mem.commit_status = Some(key);
                }
                Err(e) => {
                    metrics.commit_statuses.with_label_values(&["error"]).inc();
                    warn!(error = %e, "setting the commit status failed; retrying next turn");
                }
            }
        }
    }
}

/// Two status files that differ only in progress lines (`progress`, `summary` counts).
fn same_but_progress(a: &str, b: &str) -> bool {
    let strip = |s: &str| {
        let mut out = Vec::new();
        let mut in_summary = false;
        for line in s.lines() {
            let t = line.trim_start();
            if t.starts_with("summary:") {
                in_summary = true;
                continue;
            }
            if in_summary && line.starts_with("    ") {
                continue;
            }
            in_summary = false;
            if t.starts_with("progress:") {
                continue;
            }
            out.push(line.to_string());
        }
        out
    };
    strip(a) == strip(b)
}
