//! On-disk checkpoints of one operation: what makes a restarted agent resume
//! at the first step not done and never run a done step again.
//!
//! ```text
//! <root>/operation-<id>/
//!   metadata.json                    the assignment (operation id, target, components, mode),
//!                                    node, role, step list, start time
//!   step-01-preflight.done           "started <time>" per attempt, then "done <time>"
//!   step-02-upgrade-kubeadm-package.inprogress
//!                                    created before the step runs, renamed to .done after it succeeded
//!   completed                        every step done (the time)
//!   failed                           the last attempt failed (the error, one line)
//!   logs/<step-id>.log               what each attempt of the step did
//! ```
//!
//! `<root>` is `--state-dir` for a node's own agent and `<state-dir>/<node>` for
//! `cupcake-agent simulate --all-nodes`.
//!
//! Rules, each enforced when a directory is opened:
//!
//! - `.done` steps form a prefix of the step list; at most one `.inprogress`, and
//!   only on the first step not done (a crash during that step: it runs again,
//!   so steps must be safe to repeat *until* they are done — never after);
//! - `completed` only when every step is done; never together with `failed`;
//! - any other file, a step that is not in the list, or unreadable metadata is
//!   an error naming the file: a human has to look (the runbook says to move the
//!   directory away to start over).
//!
//! One operation id covers every hop of a multi-hop DirectUpdate, so a node can
//! be assigned the same operation twice with different targets. A directory whose
//! metadata names another assignment is moved aside to `operation-<id>@<target>`
//! when that run finished (completed or failed), and refused while it is unfinished.
//!
//! Writes are made durable (file and directory `fsync`) before the agent reports
//! them. A new directory is built under a dot-name and renamed into place, so a
//! crash never leaves an operation directory without its metadata.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use cupcake_api::KubeVersion;
use cupcake_api::common::Component;
use cupcake_api::protocol::UpgradeMode;
use serde::{Deserialize, Serialize};

use crate::assignment::Role;

pub const METADATA: &str = "metadata.json";
pub const COMPLETED: &str = "completed";
pub const FAILED: &str = "failed";
pub const LOGS: &str = "logs";
const DONE: &str = ".done";
const IN_PROGRESS: &str = ".inprogress";

/// `metadata.json`: which assignment this directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    pub operation_id: String,
    pub target_version: KubeVersion,
    pub components: Vec<Component>,
    pub mode: UpgradeMode,
    pub node: String,
    pub role: Role,
    /// Step ids in order ([`crate::steps::Step::id`]).
    pub steps: Vec<String>,
    /// When the first attempt started.
    pub started: DateTime<Utc>,
}

impl Metadata {
    /// Same assignment, node and step list (the start time does not matter).
    pub fn same_job(&self, other: &Self) -> bool {
        self.operation_id == other.operation_id
            && self.target_version == other.target_version
            && self.components == other.components
            && self.mode == other.mode
            && self.node == other.node
            && self.role == other.role
            && self.steps == other.steps
    }

    fn summary(&self) -> String {
        format!(
            "operation {} to {} on {} ({} {}, steps {})",
            self.operation_id,
            self.target_version,
            self.node,
            self.role,
            self.mode,
            self.steps.join(",")
        )
    }
}

/// The name of an operation's directory under the node's state root.
pub fn dir_name(operation_id: &str) -> String {
    format!("operation-{operation_id}")
}

/// Why a checkpoint directory cannot be used. Messages name the file and carry
/// their cause (no `#[source]` chain, so `{:#}` never repeats it); they end up,
/// on one line, in the node's `message` annotation.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{op} {path}: {error}")]
    Io {
        op: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{path} has no metadata.json: not an operation checkpoint (move it away to start over)"
    )]
    MissingMetadata { path: PathBuf },
    #[error(
        "{path} is not valid operation metadata: {error} (move the directory away to start over)"
    )]
    Metadata {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error(
        "{path}: unexpected file in an operation checkpoint (expected metadata.json, logs/, step-NN-<name>.done or .inprogress, completed, failed)"
    )]
    Foreign { path: PathBuf },
    #[error("{path}: {why}")]
    Corrupt { path: PathBuf, why: String },
    #[error(
        "{path} holds an unfinished run of another assignment ({theirs}); this assignment is {ours}: move the directory away to start over"
    )]
    Unfinished {
        path: PathBuf,
        theirs: String,
        ours: String,
    },
}

/// How [`Checkpoint::open`] found the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// There was none: a new operation.
    Created,
    /// It was there: resume (or report) from it.
    Existing,
    /// A finished run of another assignment (an earlier hop) was moved to `archived`.
    Replaced { archived: PathBuf },
}

/// An operation directory, validated.
#[derive(Debug)]
pub struct Checkpoint {
    dir: PathBuf,
    steps: Vec<String>,
    done: usize,
    completed: bool,
    failure: Option<String>,
}

impl Checkpoint {
    /// Open (or create) the directory for `want` under `root`.
    pub fn open(root: &Path, want: &Metadata) -> Result<(Self, Opened), CheckpointError> {
        let dir = root.join(dir_name(&want.operation_id));
        if is_symlink(&dir)? {
            return Err(symlink(&dir));
        }
        let opened = if !exists(&dir)? {
            create(root, &dir, want)?;
            Opened::Created
        } else {
            let have = read_metadata(&dir)?;
            if have.same_job(want) {
                Opened::Existing
            } else {
                let finished = exists(&dir.join(COMPLETED))? || exists(&dir.join(FAILED))?;
                if !finished {
                    return Err(CheckpointError::Unfinished {
                        path: dir,
                        theirs: have.summary(),
                        ours: want.summary(),
                    });
                }
                let archived = archive(root, &dir, &have)?;
                create(root, &dir, want)?;
                Opened::Replaced { archived }
            }
        };
        let cp = scan(&dir, &want.steps)?;
        Ok((cp, opened))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of steps done (they are the first ones).
    pub fn done(&self) -> usize {
        self.done
    }

    /// Index of the first step not done; `None` when all are.
    pub fn next(&self) -> Option<usize> {
        (self.done < self.steps.len()).then_some(self.done)
    }

    pub fn is_completed(&self) -> bool {
        self.completed
    }

    /// The error of a failed run (the `failed` marker), if any.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// `logs/<step-id>.log` of step `i`.
    pub fn log_path(&self, i: usize) -> PathBuf {
        let id = self.steps.get(i).map(String::as_str).unwrap_or("unknown");
        self.dir.join(LOGS).join(format!("{id}.log"))
    }

    /// Mark step `i` (the first not done) as started: `.inprogress`, durable.
    pub fn begin(&mut self, i: usize, now: DateTime<Utc>) -> Result<(), CheckpointError> {
        let path = self.step_file(i, IN_PROGRESS)?;
        append(&path, &format!("started {}\n", stamp(now)))?;
        sync_dir(&self.dir)
    }

    /// Step `i` succeeded: `.inprogress` → `.done`, durable.
    pub fn finish(&mut self, i: usize, now: DateTime<Utc>) -> Result<(), CheckpointError> {
        let from = self.step_file(i, IN_PROGRESS)?;
        let to = self.step_file(i, DONE)?;
        append(&from, &format!("done {}\n", stamp(now)))?;
        fs::rename(&from, &to).map_err(io("renaming", &from))?;
        sync_dir(&self.dir)?;
        self.done += 1;
        Ok(())
    }

    /// Every step is done: write `completed`.
    pub fn complete(&mut self, now: DateTime<Utc>) -> Result<(), CheckpointError> {
        if self.done != self.steps.len() {
            return Err(CheckpointError::Corrupt {
                path: self.dir.clone(),
                why: format!(
                    "cannot complete with {} of {} steps done",
                    self.done,
                    self.steps.len()
                ),
            });
        }
        write_new(&self.dir.join(COMPLETED), &format!("{}\n", stamp(now)))?;
        sync_dir(&self.dir)?;
        self.completed = true;
        Ok(())
    }

    /// The run failed: write `failed` with the error (one line). The failed
    /// step keeps its `.inprogress`: a retry runs it again.
    pub fn fail(&mut self, message: &str) -> Result<(), CheckpointError> {
        let line = one_line(message);
        write_new(&self.dir.join(FAILED), &format!("{line}\n"))?;
        sync_dir(&self.dir)?;
        self.failure = Some(line);
        Ok(())
    }

    /// A retry: remove `failed` so the run resumes at its first step not done.
    pub fn clear_failure(&mut self) -> Result<(), CheckpointError> {
        let path = self.dir.join(FAILED);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("removing", &path)(e)),
        }
        sync_dir(&self.dir)?;
        self.failure = None;
        Ok(())
    }

    fn step_file(&self, i: usize, suffix: &str) -> Result<PathBuf, CheckpointError> {
        if i != self.done {
            return Err(CheckpointError::Corrupt {
                path: self.dir.clone(),
                why: format!(
                    "step {} is not the first step not done ({} done)",
                    i + 1,
                    self.done
                ),
            });
        }
        let id = self.steps.get(i).ok_or_else(|| CheckpointError::Corrupt {
            path: self.dir.clone(),
            why: format!("no step {}", i + 1),
        })?;
        Ok(self.dir.join(format!("step-{id}{suffix}")))
    }
}

/// A message as one line (newlines and tabs become spaces, runs of blanks one).
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError {
    let path = path.to_path_buf();
    move |error| CheckpointError::Io { op, path, error }
}

fn exists(p: &Path) -> Result<bool, CheckpointError> {
    p.try_exists().map_err(io("checking", p))
}

/// A symbolic link where the agent writes only files and `logs/`: following it would
/// read (and report in the node's annotations) or overwrite whatever it points to.
fn symlink(path: &Path) -> CheckpointError {
    CheckpointError::Corrupt {
        path: path.to_path_buf(),
        why: "a symbolic link: an operation checkpoint holds only the files the agent wrote (move the directory away to start over)".to_string(),
    }
}

fn is_symlink(p: &Path) -> Result<bool, CheckpointError> {
    match fs::symlink_metadata(p) {
        Ok(m) => Ok(m.file_type().is_symlink()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("checking", p)(e)),
    }
}

fn read_metadata(dir: &Path) -> Result<Metadata, CheckpointError> {
    let path = dir.join(METADATA);
    if is_symlink(&path)? {
        return Err(symlink(&path));
    }
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CheckpointError::MissingMetadata {
                path: dir.to_path_buf(),
            });
        }
        Err(e) => return Err(io("reading", &path)(e)),
    };
    serde_json::from_str(&text).map_err(|error| CheckpointError::Metadata { path, error })
}

/// Build the directory under a dot-name, then rename it into place.
fn create(root: &Path, dir: &Path, meta: &Metadata) -> Result<(), CheckpointError> {
    fs::create_dir_all(root).map_err(io("creating", root))?;
    let staging = root.join(format!(".{}.new", dir_name(&meta.operation_id)));
    if exists(&staging)? {
        // Left by a crash while creating: ours, never reported, safe to drop.
        fs::remove_dir_all(&staging).map_err(io("removing", &staging))?;
    }
    let logs = staging.join(LOGS);
    fs::create_dir_all(&logs).map_err(io("creating", &logs))?;
    let json = serde_json::to_string_pretty(meta).map_err(|error| CheckpointError::Metadata {
        path: staging.join(METADATA),
        error,
    })?;
    write_new(&staging.join(METADATA), &format!("{json}\n"))?;
    sync_dir(&staging)?;
    fs::rename(&staging, dir).map_err(io("renaming", &staging))?;
    sync_dir(root)
}

/// Move a finished run of another assignment aside: `operation-<id>@<target>[.N]`.
fn archive(root: &Path, dir: &Path, have: &Metadata) -> Result<PathBuf, CheckpointError> {
    let base = format!("{}@{}", dir_name(&have.operation_id), have.target_version);
    let mut to = root.join(&base);
    let mut n = 2;
    while exists(&to)? {
        to = root.join(format!("{base}.{n}"));
        n += 1;
    }
    fs::rename(dir, &to).map_err(io("renaming", dir))?;
    sync_dir(root)?;
    Ok(to)
}

/// Read a directory and check it against the rules in the module docs.
fn scan(dir: &Path, steps: &[String]) -> Result<Checkpoint, CheckpointError> {
    let mut done = vec![false; steps.len()];
    let mut in_progress: Vec<usize> = Vec::new();
    let mut completed = false;
    let mut failure = None;
    let entries = fs::read_dir(dir).map_err(io("reading", dir))?;
    for entry in entries {
        let entry = entry.map_err(io("reading", dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let file_type = entry.file_type().map_err(io("reading", &path))?;
        if file_type.is_symlink() {
            return Err(symlink(&path));
        }
        let is_dir = file_type.is_dir();
        let foreign = || CheckpointError::Foreign { path: path.clone() };
        match name.as_str() {
            METADATA if !is_dir => {}
            LOGS if is_dir => {}
            COMPLETED if !is_dir => completed = true,
            FAILED if !is_dir => {
                let text = fs::read_to_string(&path).map_err(io("reading", &path))?;
                let text = one_line(&text);
                failure = Some(if text.is_empty() {
                    "failed (no message recorded)".to_string()
                } else {
                    text
                });
            }
            _ if is_dir => return Err(foreign()),
            _ => {
                let Some(stem) = name.strip_prefix("step-") else {
                    return Err(foreign());
                };
                let (id, is_done) = if let Some(id) = stem.strip_suffix(DONE) {
                    (id, true)
                } else if let Some(id) = stem.strip_suffix(IN_PROGRESS) {
                    (id, false)
                } else {
                    return Err(foreign());
                };
                let Some(i) = steps.iter().position(|s| s == id) else {
                    return Err(CheckpointError::Corrupt {
                        path,
                        why: format!(
                            "{id} is not a step of this operation (steps: {})",
                            steps.join(", ")
                        ),
                    });
                };
                if is_done {
                    done[i] = true;
                } else {
                    in_progress.push(i);
                }
            }
        }
    }
    let corrupt = |why: String| CheckpointError::Corrupt {
        path: dir.to_path_buf(),
        why,
    };
    let n_done = done.iter().take_while(|d| **d).count();
    if let Some(j) = done.iter().skip(n_done).position(|d| *d) {
        let later = n_done + j;
        return Err(corrupt(format!(
            "step {} is done but the earlier step {} is not",
            steps[later], steps[n_done]
        )));
    }
    in_progress.sort_unstable();
    match in_progress.as_slice() {
        [] => {}
        [i] if *i == n_done => {}
        [i] if done[*i] => {
            return Err(corrupt(format!(
                "step {} is both done and in progress",
                steps[*i]
            )));
        }
        [i] => {
            return Err(corrupt(format!(
                "step {} is in progress but the first step not done is {}",
                steps[*i],
                steps.get(n_done).map(String::as_str).unwrap_or("none")
            )));
        }
        many => {
            let names: Vec<&str> = many.iter().map(|i| steps[*i].as_str()).collect();
            return Err(corrupt(format!(
                "several steps in progress at once: {}",
                names.join(", ")
            )));
        }
    }
    if completed && n_done != steps.len() {
        return Err(corrupt(format!(
            "marked completed with {n_done} of {} steps done",
            steps.len()
        )));
    }
    if completed && failure.is_some() {
        return Err(corrupt("marked both completed and failed".to_string()));
    }
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        steps: steps.to_vec(),
        done: n_done,
        completed,
        failure,
    })
}

fn append(path: &Path, text: &str) -> Result<(), CheckpointError> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io("opening", path))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io("writing", path))
}

fn write_new(path: &Path, text: &str) -> Result<(), CheckpointError> {
    let mut f = File::create(path).map_err(io("creating", path))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io("writing", path))
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn t(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, s).unwrap()
    }

    fn meta(target: &str) -> Metadata {
        Metadata {
            operation_id: "op1".into(),
            target_version: target.parse().unwrap(),
            components: vec![Component::Kubeadm, Component::Kubelet],
            mode: UpgradeMode::Node,
            node: "w-1".into(),
            role: Role::Worker,
            steps: vec!["01-a".into(), "02-b".into(), "03-c".into()],
            started: t(0),
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Run steps `from..to` the way the runner does.
    fn run(cp: &mut Checkpoint, to: usize) {
        while let Some(i) = cp.next() {
            if i >= to {
                break;
            }
            cp.begin(i, t(1)).unwrap();
            cp.finish(i, t(2)).unwrap();
        }
    }

    #[test]
    fn a_new_operation_gets_metadata_and_logs() {
        let root = tempfile::tempdir().unwrap();
        let (cp, opened) = Checkpoint::open(root.path(), &meta("1.34.2")).unwrap();
        assert_eq!(opened, Opened::Created);
        assert_eq!(cp.next(), Some(0));
        assert_eq!(names(cp.dir()), ["logs", "metadata.json"]);
        assert_eq!(names(root.path()), ["operation-op1"]);
        let m: Metadata =
            serde_json::from_str(&fs::read_to_string(cp.dir().join(METADATA)).unwrap()).unwrap();
        assert_eq!(m, meta("1.34.2"));
        assert_eq!(cp.log_path(1), cp.dir().join("logs/02-b.log"));
    }

    #[test]
    fn a_reopened_operation_resumes_at_the_first_step_not_done() {
        let root = tempfile::tempdir().unwrap();
        let (mut cp, _) = Checkpoint::open(root.path(), &meta("1.34.2")).unwrap();
        run(&mut cp, 1);
        // A crash while step 2 runs.
        cp.begin(1, t(3)).unwrap();
        drop(cp);
        let (mut cp, opened) = Checkpoint::open(root.path(), &meta("1.34.2")).unwrap();
        assert_eq!(opened, Opened::Existing);
        assert_eq!(cp.done(), 1);
        assert_eq!(cp.next(), Some(1), "resume at 02-b, never 01-a again");
        // Beginning a done step is refused.
        assert!(cp.begin(0, t(4)).is_err());
        cp.begin(1, t(4)).unwrap();
        cp.finish(1, t(5)).unwrap();
        let b = fs::read_to_string(cp.dir().join("step-02-b.done")).unwrap();
        assert_eq!(b.matches("started").count(), 2, "{b}");
        assert_eq!(b.matches("done").count(), 1, "{b}");
        run(&mut cp, 3);
        cp.complete(t(6)).unwrap();
        assert_eq!(
            names(cp.dir()),
            [
                "completed",
                "logs",
                "metadata.json",
                "step-01-a.done",
                "step-02-b.done",
                "step-03-c.done"
            ]
        );
    }

    #[test]
    fn a_completed_operation_stays_completed() {
        let root = tempfile::tempdir().unwrap();
        let (mut cp, _) = Checkpoint::open(root.path(), &meta("1.34.2")).unwrap();
        run(&mut cp, 3);
        cp.complete(t(6)).unwrap();
        let (cp, opened) = Checkpoint::open(root.path(), &meta("1.34.2")).unwrap();
        assert_eq!(opened, Opened::Existing);
        assert!(cp.is_completed());
        assert_eq!(cp.next(), None);
    }

    #[test]
    fn completing_early_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let (mut cp, _) = Checkpoint::open(root.path(), &meta("1.34.2")).unwrap();
        run(&mut cp, 2);
        assert!(cp.complete(t(6)).is_err());
    }

    #[test]
    fn a_failure_is_kept_until_cleared_and_the_retry_resumes_at_the_failed_step() {
        let root = tempfile::tempdir().unwrap();
        let (mut cp, _) = Checkpoint::open(root.path(), &meta("1.34.2")).unwrap();
        run(&mut cp, 1);
        cp.begin(1, t(3)).unwrap();
        cp.fail("step 02-b failed:\n  disk full").unwrap();
        let (mut cp, _) = Checkpoint::open(root.path(), &meta("1.34.2")).unwrap();
        assert_eq!(cp.failure(), Some("step 02-b failed: disk full"));
        cp.clear_failure().unwrap();
        let (cp, _) = Checkpoint::open(root.path(), &meta("1.34.2")).unwrap();
        assert_eq!(cp.failure(), None);
        assert_eq!(cp.next(), Some(1));
    }

    #[test]
    fn a_finished_earlier_hop_is_archived_and_an_unfinished_one_refused() {
        let root = tempfile::tempdir().unwrap();
        let (mut cp, _) = Checkpoint::open(root.path(), &meta("1.33.0")).unwrap();
        run(&mut cp, 3);
        cp.complete(t(6)).unwrap();
        let (cp, opened) = Checkpoint::open(root.path(), &meta("1.34.2")).unwrap();
        assert_eq!(
            opened,
            Opened::Replaced {
                archived: root.path().join("operation-op1@1.33.0")
            }
        );
        assert_eq!(cp.next(), Some(0));
        assert_eq!(
            names(root.path()),
            ["operation-op1", "operation-op1@1.33.0"]
        );
        // The new hop is unfinished: a third assignment may not take its place.
        let e = Checkpoint::open(root.path(), &meta("1.35.0")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("unfinished") && msg.contains("1.34.2") && msg.contains("1.35.0"),
            "{msg}"
        );
    }

    #[test]
    fn a_crash_while_creating_leaves_nothing_half_made() {
        let root = tempfile::tempdir().unwrap();
        let staging = root.path().join(".operation-op1.new");
        fs::create_dir_all(&staging).unwrap();
        fs::write(staging.join("junk"), "x").unwrap();
        let (_, opened) = Checkpoint::open(root.path(), &meta("1.34.2")).unwrap();
        assert_eq!(opened, Opened::Created);
        assert_eq!(names(root.path()), ["operation-op1"]);
    }

    /// Table: a damaged directory and words its error must contain.
    #[test]
    fn corrupt_and_foreign_directories_give_errors_naming_the_file() {
        type Damage = fn(&Path);
        let cases: &[(&str, Damage, &[&str])] = &[
            (
                "foreign file",
                |d| fs::write(d.join("notes.txt"), "hi").unwrap(),
                &["notes.txt", "unexpected file"],
            ),
            (
                "foreign directory",
                |d| fs::create_dir(d.join("extra")).unwrap(),
                &["extra", "unexpected file"],
            ),
            (
                "unknown step",
                |d| fs::write(d.join("step-09-reboot.done"), "").unwrap(),
                &[
                    "step-09-reboot.done",
                    "09-reboot is not a step",
                    "01-a, 02-b, 03-c",
                ],
            ),
            (
                "gap",
                |d| fs::write(d.join("step-03-c.done"), "").unwrap(),
                &["03-c is done but the earlier step 02-b is not"],
            ),
            (
                "in progress out of order",
                |d| fs::write(d.join("step-03-c.inprogress"), "").unwrap(),
                &["03-c is in progress but the first step not done is 02-b"],
            ),
            (
                "two in progress",
                |d| {
                    fs::write(d.join("step-02-b.inprogress"), "").unwrap();
                    fs::write(d.join("step-03-c.inprogress"), "").unwrap();
                },
                &["several steps in progress", "02-b, 03-c"],
            ),
            (
                "done and in progress",
                |d| fs::write(d.join("step-01-a.inprogress"), "").unwrap(),
                &["01-a is both done and in progress"],
            ),
            (
                "completed early",
                |d| fs::write(d.join("completed"), "").unwrap(),
                &["completed with 1 of 3 steps done"],
            ),
            (
                "metadata gone",
                |d| fs::remove_file(d.join("metadata.json")).unwrap(),
                &["no metadata.json"],
            ),
            (
                "metadata garbage",
                |d| fs::write(d.join("metadata.json"), "{\"operationId\": 3}").unwrap(),
                &["metadata.json", "not valid operation metadata"],
            ),
        ];
        for (what, damage, words) in cases {
            let root = tempfile::tempdir().unwrap();
            let (mut cp, _) = Checkpoint::open(root.path(), &meta("1.34.2")).unwrap();
            run(&mut cp, 1);
            damage(cp.dir());
            let e = Checkpoint::open(root.path(), &meta("1.34.2"))
                .map(|_| ())
                .unwrap_err()
                .to_string();
            for w in *words {
                assert!(e.contains(w), "{what}: {e:?} lacks {w:?}");
            }
        }
    }

    #[test]
    fn one_line_messages() {
        assert_eq!(one_line("a\n  b\tc \n"), "a b c");
    }
}
