//! Executors carry out the steps of [`crate::steps::plan`]. The runner
//! ([`crate::operation`]) decides which step runs and records it; an executor
//! only runs the one it is handed.
//!
//! - [`simulate::Simulate`]: for kwok clusters, demos and tests — waits, then
//!   does to the API objects what kubeadm would do to them;
//! - [`kubeadm::Kubeadm`]: the real host changes, run through [`host`]
//!   (chroot into `--host-root`, or nsenter into PID 1's namespaces when it is `/`).
//!
//! Contract: a step may be handed to the executor again after a crash *during*
//! it (its checkpoint is `.inprogress`), never after it succeeded. So a step must
//! be safe to repeat until it has returned `Ok`.

pub mod host;
pub mod kubeadm;
pub mod simulate;

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};

use crate::assignment::{Assignment, Role};
use crate::steps::Step;

/// Runs steps.
pub trait Executor: Send + Sync + 'static {
    /// `simulate`, `kubeadm`: for logs.
    fn name(&self) -> &'static str;

    /// Run one step of `job`. Write what it does to `log`.
    fn run_step(
        &self,
        job: &Job<'_>,
        step: &Step,
        log: &mut StepLog,
    ) -> impl Future<Output = Result<(), StepError>> + Send;
}

/// What the steps are run for.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    pub node: &'a str,
    pub role: Role,
    pub assignment: &'a Assignment,
}

/// Why a step failed. The runner puts `step <id> failed: <this>` in the
/// node's `message` annotation, on one line.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{0}")]
    Failed(String),
    #[error("{what}: {error}")]
    Kube { what: String, error: kube::Error },
}

/// `logs/<step-id>.log`: one timestamped line per event, appended across attempts.
#[derive(Debug)]
pub struct StepLog {
    file: Option<File>,
    path: PathBuf,
}

impl StepLog {
    /// Open (append) the log; if it cannot be opened the step still runs, with a warning.
    pub fn open(path: &Path) -> Self {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| tracing::warn!(path = %path.display(), "cannot open step log: {e}"))
            .ok();
        Self {
            file,
            path: path.to_path_buf(),
        }
    }

    /// Append one line (a log that cannot be written never fails a step).
    pub fn line(&mut self, text: &str) {
        if let Some(f) = &mut self.file {
            let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
            if let Err(e) = writeln!(f, "{ts} {text}") {
                tracing::warn!(path = %self.path.display(), "cannot write step log: {e}");
                self.file = None;
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
