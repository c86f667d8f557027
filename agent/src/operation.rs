//! One node's operation, from its assignment to its report: the step runner.
//!
//! [`reconcile`] is called with what the node looks like *now* (read from the
//! API server, or the watch event that woke it when that is no older than anything
//! the worker read or wrote: see [`crate::watch`]) and is told nothing about why it
//! runs, so every call decides afresh:
//!
//! | node `status` | checkpoint of the assignment | what happens |
//! |---|---|---|
//! | none, `completed`, `failed`, unknown | — | nothing |
//! | `pending`/`in-progress`, malformed assignment | — | `failed` + what is wrong |
//! | `pending`/`in-progress` | none | `operation started`: `in-progress`, all steps |
//! | `pending`/`in-progress` | steps done, no marker | resume at the first step not done |
//! | `pending`/`in-progress` | `completed` | `completed` again, nothing runs |
//! | `in-progress` | `failed` | `failed` again with the recorded error |
//! | `pending` | `failed` | a **retry**: `failed` is removed, resume at the failed step |
//!
//! Why `pending` + `failed` means retry: the agent writes `in-progress` before
//! its first step, so after a failure the node only says `pending` again when
//! someone wrote it after the failure — the controller's retry
//! (`cupcake.ricardomolendijk.com/retry=<node>` on the DirectUpdate) or a human
//! following the runbook. Deleting the `failed` file by hand is then not needed
//! (it is harmless). The retry resumes: steps done before the failure never run again.
//!
//! A step starts only after `in-progress` (with the step about to run) was written
//! under the assignment's guard, conditional on the copy of the node it was decided
//! from (see [`crate::node`]); after that the run goes to its end even if the
//! assignment is cleared meanwhile (a half-upgraded host is worse than a
//! finished one), reporting only while the assignment is still there. On
//! shutdown the runner stops *between* steps; the checkpoint resumes it.
//!
//! A step that fails only because the API server cannot answer now (no
//! connection, 429, a 5xx) is run again, 1 s, 2 s, 4 s, 8 s, then every 15 s,
//! up to [`TRANSIENT_RETRIES`] times (about 2 minutes), each retry noted in its
//! step log; only then, or on any other error, does the node fail.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;
use cupcake_api::protocol::AgentStatus;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::Api;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::assignment::{Assignment, Observed, Role, observe};
use crate::checkpoint::{Checkpoint, Metadata, Opened};
use crate::executor::{Executor, Job, StepError, StepLog};
use crate::node::{self, Guard, Latest, NodeView, Report, Written};
use crate::steps::{Step, plan};

/// Lines the runner writes to each step's log (tests count them).
pub const LOG_STARTED: &str = "step started";
pub const LOG_DONE: &str = "step done";
pub const LOG_FAILED: &str = "step failed:";
/// Step-log marker of a step run again after a transient API error.
pub const LOG_RETRYING: &str = "step retrying after a transient error:";

/// How often a step that failed only on the API server (unreachable, 429, 5xx)
/// is run again before the node fails: with [`retry_wait`], about 2 minutes.
pub const TRANSIENT_RETRIES: u32 = 12;

/// 1 s, 2 s, 4 s, 8 s, then 15 s between attempts.
fn retry_wait(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_secs((1u64 << attempt.saturating_sub(1).min(4)).min(15))
}

/// Whether a step failed only because the API server could not answer now:
/// no connection, a dropped stream, 429 or a 5xx. Anything else (a 4xx, a
/// failed check) is the step's real outcome.
fn transient(e: &StepError) -> bool {
    match e {
        StepError::Kube { error, .. } => match error {
            kube::Error::Api(s) => matches!(s.code, 429 | 500 | 502 | 503 | 504),
            kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
                true
            }
            _ => false,
        },
        StepError::Failed(_) => false,
    }
}

/// Everything one node's runner needs.
pub struct NodeAgent<E> {
    pub client: Client,
    pub executor: Arc<E>,
    /// The node this runner acts for.
    pub node: String,
    /// Its checkpoint root: `--state-dir`, or `<state-dir>/<node>` for `simulate --all-nodes`.
    pub root: PathBuf,
    /// Becomes `true` on SIGTERM/SIGINT.
    pub shutdown: watch::Receiver<bool>,
}

impl<E: std::fmt::Debug> std::fmt::Debug for NodeAgent<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAgent")
            .field("executor", &self.executor)
            .field("node", &self.node)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// How a [`reconcile`] call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do (or the assignment went away before a step started).
    Idle,
    /// Every step done and reported (now or before).
    Completed,
    /// A step (or the assignment) failed, and that was reported.
    Failed,
    /// Stopped between steps for shutdown; the checkpoint resumes it.
    Abandoned,
    /// A report could not be written: call again later (the checkpoint has the truth).
    RetryLater,
}

/// Act on the node as it is now. See the module docs for the table. Also returns the
/// resourceVersion of the newest copy of the node it read or wrote (`None` when a last
/// write's answer is not known): a watch event older than that is stale.
pub async fn reconcile<E: Executor>(
    agent: &NodeAgent<E>,
    view: &NodeView,
) -> (Outcome, Option<String>) {
    let latest = Latest::of(view);
    let outcome = act(agent, view, &latest).await;
    (outcome, latest.resource_version())
}

async fn act<E: Executor>(agent: &NodeAgent<E>, view: &NodeView, latest: &Latest) -> Outcome {
    let Observed::Assigned { status, assignment } = observe(&view.annotations) else {
        return Outcome::Idle;
    };
    if !matches!(status, AgentStatus::Pending | AgentStatus::InProgress) {
        return Outcome::Idle;
    }
    let run = Run {
        agent,
        api: Api::all(agent.client.clone()),
        guard: Guard::of(&view.annotations),
        latest,
    };
    let a = match assignment {
        Ok(a) => a,
        Err(e) => {
            warn!(node = %agent.node, "invalid assignment: {e}");
            return run.fail(None, format!("invalid assignment: {e}")).await;
        }
    };
    let role = Role::of(&view.labels);
    let steps = match plan(role, a.mode, &a.components) {
        Ok(s) => s,
        Err(e) => {
            warn!(node = %agent.node, "{a}: {e}");
            return run.fail(None, format!("cannot run {a}: {e}")).await;
        }
    };
    run.operation(&a, role, &steps, status).await
}

struct Run<'a, E> {
    agent: &'a NodeAgent<E>,
    api: Api<Node>,
    guard: Guard,
    /// The node as last read or written: each report's guard is checked against it.
    latest: &'a Latest,
}

impl<E: Executor> Run<'_, E> {
    async fn operation(
        &self,
        a: &Assignment,
        role: Role,
        steps: &[Step],
        status: AgentStatus,
    ) -> Outcome {
        let node = self.agent.node.as_str();
        let ids: Vec<String> = steps.iter().map(Step::id).collect();
        let want = Metadata {
            operation_id: a.operation_id.clone(),
            target_version: a.target.clone(),
            components: a.components.clone(),
            mode: a.mode,
            node: node.to_string(),
            role,
            steps: ids.clone(),
            started: Utc::now(),
        };
        let (mut cp, opened) = match Checkpoint::open(&self.agent.root, &want) {
            Ok(x) => x,
            Err(e) => {
                warn!(node, "{a}: checkpoint: {e}");
                return self.fail(None, format!("checkpoint: {e}")).await;
            }
        };
        if cp.is_completed() {
            info!(node, operation = %a.operation_id, "{node}: {a} is already completed; reporting it again");
            return self
                .finish(Report::Completed {
                    last_step: ids.last().cloned(),
                })
                .await;
        }
        let current = |cp: &Checkpoint| cp.next().and_then(|i| ids.get(i).cloned());
        if let Some(failure) = cp.failure().map(str::to_string) {
            if status != AgentStatus::Pending {
                return self.fail(current(&cp), failure).await;
            }
            info!(node, operation = %a.operation_id,
                "{node}: retrying {a} at step {} (it had failed: {failure})",
                current(&cp).unwrap_or_default());
            if let Err(e) = cp.clear_failure() {
                return self.fail(current(&cp), format!("checkpoint: {e}")).await;
            }
        } else {
            match &opened {
                Opened::Created => info!(node, operation = %a.operation_id,
                    target = %a.target, mode = %a.mode, role = %role,
                    "{node}: operation started: {a}, {} steps", ids.len()),
                Opened::Replaced { archived } => info!(node, operation = %a.operation_id,
                    target = %a.target, mode = %a.mode, role = %role,
                    "{node}: operation started: {a}, {} steps (the finished run of the earlier assignment is in {})",
                    ids.len(), archived.display()),
                Opened::Existing => info!(node, operation = %a.operation_id,
                    "{node}: operation resumed at step {} ({} of {} done)",
                    current(&cp).unwrap_or_default(), cp.done(), ids.len()),
            }
        }
        // Start steps only while the assignment is ours.
        // `in-progress` with the step about to run: its report too, in the same write.
        let first = current(&cp);
        let started = Report::Started {
            step: first.clone(),
        };
        match node::write(&self.api, node, &self.guard, &started, self.latest).await {
            Ok(Written::Yes) => {}
            Ok(Written::NotOurs | Written::Gone) => {
                info!(
                    node,
                    "{node}: the assignment went away before a step started; nothing done"
                );
                return Outcome::Idle;
            }
            Err(e) => {
                warn!(
                    node,
                    "{node}: cannot report in-progress, will try again: {e}"
                );
                return Outcome::RetryLater;
            }
        }
        let job = Job {
            node,
            role,
            assignment: a,
        };
        let mut reporting = NodeProgress {
            run: self,
            reporting: true,
            reported: first,
        };
        let end = drive(
            self.agent.executor.as_ref(),
            &job,
            steps,
            &mut cp,
            &self.agent.shutdown,
            &mut reporting,
        )
        .await;
        match end {
            Driven::Completed => {
                info!(node, operation = %a.operation_id, "{node}: operation completed: {a}");
                self.finish(Report::Completed {
                    last_step: ids.last().cloned(),
                })
                .await
            }
            Driven::Failed { step, message } => self.fail(step, message).await,
            Driven::Abandoned => Outcome::Abandoned,
        }
    }

    /// A progress report; `false` once the assignment is no longer on the node
    /// (the run goes on, silently).
    async fn progress(&self, report: Report) -> bool {
        let node = self.agent.node.as_str();
        match node::write(&self.api, node, &self.guard, &report, self.latest).await {
            Ok(Written::Yes) => true,
            Ok(Written::NotOurs | Written::Gone) => {
                info!(
                    node,
                    "{node}: the assignment was cleared or replaced; finishing the steps without reporting"
                );
                false
            }
            Err(e) => {
                warn!(node, "{node}: cannot report progress: {e}");
                true
            }
        }
    }

    async fn fail(&self, step: Option<String>, message: String) -> Outcome {
        self.finish(Report::Failed { step, message }).await
    }

    /// A final report: `Completed`/`Failed`, or `RetryLater` when it could not be written.
    async fn finish(&self, report: Report) -> Outcome {
        let node = self.agent.node.as_str();
        let outcome = match report {
            Report::Failed { .. } => Outcome::Failed,
            _ => Outcome::Completed,
        };
        match node::write(&self.api, node, &self.guard, &report, self.latest).await {
            Ok(Written::Yes) => outcome,
            Ok(Written::NotOurs | Written::Gone) => {
                info!(
                    node,
                    "{node}: the assignment is no longer on the node; not reporting {report:?}"
                );
                outcome
            }
            Err(e) => {
                warn!(
                    node,
                    "{node}: cannot report {report:?}, will try again: {e}"
                );
                Outcome::RetryLater
            }
        }
    }
}

/// Told each step id as it starts (run beside the step; done before the next one).
pub trait Progress: Send {
    fn step(&mut self, id: String) -> impl std::future::Future<Output = ()> + Send;
}

/// The node agent's progress: the `step` annotation, until the assignment goes away.
struct NodeProgress<'a, 'b, E> {
    run: &'a Run<'b, E>,
    reporting: bool,
    /// The step `in-progress` was reported with (not reported twice).
    reported: Option<String>,
}

impl<E: Executor> Progress for NodeProgress<'_, '_, E> {
    async fn step(&mut self, id: String) {
        if self.reported.take().as_ref() == Some(&id) {
            return;
        }
        if self.reporting {
            self.reporting = self.run.progress(Report::Step(id)).await;
        }
    }
}

/// `cupcake-agent run`'s progress: a line on stdout.
struct Print;

impl Progress for Print {
    async fn step(&mut self, id: String) {
        println!("step {id}");
    }
}

/// How [`drive`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driven {
    /// Every step done; the checkpoint says `completed`.
    Completed,
    /// A step (or the checkpoint) failed; the checkpoint says `failed` with `message`
    /// when the step itself failed.
    Failed {
        step: Option<String>,
        message: String,
    },
    /// Stopped for shutdown (between steps, or while waiting to retry one).
    Abandoned,
}

/// Run the steps the checkpoint has not done yet, in order, recording each:
/// `.inprogress`, the executor, `.done`, or `failed` with the message; then
/// `completed`. `progress` is told each step id as it starts (its report is written
/// while the step runs; both end before the next step). The one step
/// loop of the node agent ([`reconcile`]) and of `cupcake-agent run` ([`run_offline`]).
pub async fn drive<E: Executor>(
    executor: &E,
    job: &Job<'_>,
    steps: &[Step],
    cp: &mut Checkpoint,
    shutdown: &watch::Receiver<bool>,
    progress: &mut impl Progress,
) -> Driven {
    let node = job.node;
    let ids: Vec<String> = steps.iter().map(Step::id).collect();
    let failed = |step: Option<String>, message: String| Driven::Failed { step, message };
    while let Some(i) = cp.next() {
        let step = &steps[i];
        let id = step.id();
        if *shutdown.borrow() {
            info!(
                node,
                "{node}: shutting down before step {id}; a restarted agent resumes there"
            );
            return Driven::Abandoned;
        }
        if let Err(e) = cp.begin(i, Utc::now()) {
            return failed(Some(id), format!("checkpoint: {e}"));
        }
        let mut log = StepLog::open(&cp.log_path(i));
        log.line(&format!("{LOG_STARTED} ({} executor)", executor.name()));
        info!(node, step = %id, "{node}: step {id} started");
        // The API server may be away for a while (restarted, upgraded, overloaded):
        // a step that failed only for that is run again (steps are safe to repeat
        // until they succeed) before the node is given up as failed.
        let run = async {
            let mut attempt = 0;
            loop {
                match executor.run_step(job, step, &mut log).await {
                    Err(e) if transient(&e) && attempt < TRANSIENT_RETRIES => {
                        if *shutdown.borrow() {
                            info!(
                                node,
                                "{node}: shutting down during step {id}; a restarted agent runs it again"
                            );
                            return None;
                        }
                        attempt += 1;
                        let wait = retry_wait(attempt);
                        log.line(&format!(
                            "{LOG_RETRYING} {e} (attempt {attempt} of {TRANSIENT_RETRIES}, again in {}s)",
                            wait.as_secs()
                        ));
                        warn!(node, step = %id, attempt, "{node}: step {id} hit a transient API error, running it again in {}s: {e}", wait.as_secs());
                        tokio::time::sleep(wait).await;
                    }
                    r => return Some(r),
                }
            }
        };
        // The progress report (the node's `step` annotation) is written while the step
        // runs, not before it: on a busy API server each write took 0.1–0.2 s, and six
        // of them in a row delayed every node by about a second. Both end before the
        // next step, so the annotations still come in order.
        let (_, result) = tokio::join!(progress.step(id.clone()), run);
        let Some(result) = result else {
            return Driven::Abandoned;
        };
        match result {
            Ok(()) => {
                log.line(LOG_DONE);
                if let Err(e) = cp.finish(i, Utc::now()) {
                    return failed(Some(id), format!("checkpoint: {e}"));
                }
                info!(node, step = %id, "{node}: step {id} done");
            }
            Err(e) => {
                log.line(&format!("{LOG_FAILED} {e}"));
                let message = format!("step {id} failed: {e}");
                warn!(node, step = %id, "{node}: {message}");
                if let Err(ce) = cp.fail(&message) {
                    warn!(node, "{node}: cannot record the failure: {ce}");
                }
                return failed(Some(id), message);
            }
        }
    }
    if let Err(e) = cp.complete(Utc::now()) {
        return failed(ids.last().cloned(), format!("checkpoint: {e}"));
    }
    Driven::Completed
}

/// `cupcake-agent run`: one assignment on this host now, without a cluster.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The node's name (recorded in the checkpoint; the DaemonSet's agent on this node resumes
    /// the same operation only under the same name).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// The operation id (names the checkpoint directory operation-<ID>).
    #[arg(long, value_name = "ID")]
    pub operation_id: String,
    /// The node's role.
    #[arg(long, value_enum)]
    pub role: crate::cli::RoleArg,
    /// The upgrade-mode: apply (the first control-plane node of the hop) or node.
    #[arg(long, value_enum, default_value_t = crate::cli::ModeArg::Node)]
    pub mode: crate::cli::ModeArg,
    /// The target version of the hop.
    #[arg(long, value_name = "V")]
    pub to: cupcake_api::KubeVersion,
    /// Components to upgrade.
    #[arg(long, value_name = "C,...", default_value = "kubeadm,kubelet,kubectl")]
    pub components: String,
    /// The host's root filesystem: commands run as `chroot DIR …`, or with `/` through nsenter into PID 1.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub host_root: PathBuf,
    /// Where checkpoints and step logs are kept (operation-<id>/).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/cupcake")]
    pub state_dir: PathBuf,
    /// The kubelet's health URL checked by the verify step ("" to skip).
    #[arg(long, value_name = "URL", default_value = crate::executor::kubeadm::DEFAULT_KUBELET_HEALTHZ)]
    pub kubelet_healthz_url: String,
    /// Air-gapped: install from this package bundle (a bundle.yaml, the ConfigMap's data) instead of pkgs.k8s.io.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// With --bundle: the bundle's keyring.gpg.
    #[arg(long, value_name = "FILE", requires = "bundle")]
    pub bundle_keyring: Option<PathBuf>,
}

/// Run one assignment with the kubeadm executor, the node agent's step loop and
/// checkpoints, reading and writing no Kubernetes object. A rerun resumes at the first
/// step not done (an interrupted step runs again, done ones never); after a failure it
/// retries the failed step. Prints one line per step; fails with the step's message.
pub fn run_offline(a: RunArgs) -> anyhow::Result<()> {
    use crate::executor::host::Host;
    use crate::executor::kubeadm::{BundleSource, Kubeadm, LoadedBundle};
    use cupcake_api::protocol::UpgradeMode;
    let role = match a.role {
        crate::cli::RoleArg::ControlPlane => Role::ControlPlane,
        crate::cli::RoleArg::Worker => Role::Worker,
    };
    let mode = match a.mode {
        crate::cli::ModeArg::Apply => UpgradeMode::Apply,
        crate::cli::ModeArg::Node => UpgradeMode::Node,
    };
    if !crate::assignment::is_safe_name(&a.operation_id) {
        anyhow::bail!(
            "--operation-id {:?}: 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', '-'",
            a.operation_id
        );
    }
    let components = crate::assignment::parse_components(&a.components)
        .map_err(|e| anyhow::anyhow!("--components {:?}: {e}", a.components))?;
    let steps = plan(role, mode, &components)
        .map_err(|e| anyhow::anyhow!("--role {role} --mode {mode}: {e}"))?;
    let bundles = match &a.bundle {
        Some(f) => BundleSource::Fixed(
            LoadedBundle::from_files(f, a.bundle_keyring.as_deref())
                .map_err(|e| anyhow::anyhow!("--bundle: {e}"))?,
        ),
        None => BundleSource::None,
    };
    let healthz = Some(a.kubelet_healthz_url.clone()).filter(|u| !u.trim().is_empty());
    let exec = Kubeadm::new(Host::new(&a.host_root)?, healthz).with_bundles(bundles);
    let assignment = Assignment {
        operation_id: a.operation_id.clone(),
        target: a.to.clone(),
        components,
        mode,
        package_source: None,
    };
    let want = Metadata {
        operation_id: assignment.operation_id.clone(),
        target_version: assignment.target.clone(),
        components: assignment.components.clone(),
        mode,
        node: a.node_name.clone(),
        role,
        steps: steps.iter().map(Step::id).collect(),
        started: Utc::now(),
    };
    let (mut cp, _) = Checkpoint::open(&a.state_dir, &want)?;
    if cp.is_completed() {
        println!("{assignment}: already completed");
        return Ok(());
    }
    if let Some(f) = cp.failure() {
        println!("retrying after: {f}");
        cp.clear_failure()?;
    }
    let job = Job {
        node: &a.node_name,
        role,
        assignment: &assignment,
    };
    let (_tx, shutdown) = watch::channel(false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let end = rt.block_on(drive(&exec, &job, &steps, &mut cp, &shutdown, &mut Print));
    match end {
        Driven::Completed => {
            println!("{assignment}: completed");
            Ok(())
        }
        Driven::Failed { message, .. } => anyhow::bail!("{message}"),
        Driven::Abandoned => anyhow::bail!("stopped before the end; run again to resume"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> StepError {
        StepError::Kube {
            what: "reading node n".into(),
            error: kube::Error::Api(Box::new(
                kube::core::Status::failure("x", "y").with_code(code),
            )),
        }
    }

    #[test]
    fn only_api_server_unavailability_is_retried() {
        let cases = [
            (api(429), true),
            (api(500), true),
            (api(503), true),
            (api(504), true),
            (api(404), false),
            (api(409), false),
            (api(422), false),
            (
                StepError::Kube {
                    what: "reading pod".into(),
                    error: kube::Error::Service("client error (Connect)".into()),
                },
                true,
            ),
            (StepError::Failed("kubelet reports v1.33.4".into()), false),
        ];
        for (e, want) in cases {
            assert_eq!(transient(&e), want, "{e}");
        }
    }

    #[test]
    fn retries_back_off_to_15_seconds_and_span_about_two_minutes() {
        let waits: Vec<u64> = (1..=TRANSIENT_RETRIES)
            .map(|a| retry_wait(a).as_secs())
            .collect();
        assert_eq!(&waits[..6], [1, 2, 4, 8, 15, 15]);
        let total: u64 = waits.iter().sum();
        assert!((100..=180).contains(&total), "{total}s");
    }
}
