//! Which nodes the agent acts for, and when: a watch on Node metadata that
//! wakes one worker task per node.
//!
//! - A node's own agent watches only its Node (field selector
//!   `metadata.name=<node>`), so it never sees, let alone touches, another node's
//!   assignment.
//! - `simulate --all-nodes` watches every node (optionally a label selector) and
//!   plays each one's agent, with checkpoints under `<state-dir>/<node>/`.
//!
//! An event whose annotations say `pending` or `in-progress`, or carry a backup or
//! preflight request not answered yet, wakes that node's worker, which
//! [`reconcile`](crate::operation::reconcile)s from the newest copy of the node the
//! watch brought — unless that copy is older (by resourceVersion, comparable since
//! Kubernetes 1.35) than one the worker itself read or wrote, or the versions cannot be
//! compared: then it reads the node first. So it never acts on a copy from before its
//! own last report (say, the `pending` its `in-progress` replaced), and a node's start
//! costs no read. Every write is conditional on the copy's resourceVersion anyway.
//!
//! One worker per node runs one operation at a time, so a node never has two;
//! wake-ups during a run are coalesced into one re-check after it. Different nodes
//! run concurrently.
//!
//! Only metadata is watched (`PartialObjectMeta<Node>`): node status
//! heartbeats make full Node objects large and frequent.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cupcake_api::protocol::compare_resource_versions;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event, watcher as watch_nodes};
use kube::{Client, ResourceExt as _};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::assignment::{is_safe_name, observe};
use crate::backup_stage::{self, StageSettings};
use crate::executor::Executor;
use crate::node::{self, NodeView};
use crate::operation::{NodeAgent, Outcome, reconcile};
use crate::preflight;

/// How long a shutdown waits for running steps to finish (a Pod's default
/// termination grace period is 30 s). What is still running then is abandoned;
/// its checkpoint is `.inprogress` and runs again on restart.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// Pause before re-checking a node whose report could not be written.
const RETRY: Duration = Duration::from_secs(5);

/// Which nodes this process is the agent of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One node; checkpoints directly under the state dir.
    Node(String),
    /// Every node matching the label selector; checkpoints under `<state-dir>/<node>/`.
    Nodes { selector: Option<String> },
}

/// How the agent answers the controller's requests besides assignments.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `backup-request` (see [`backup_stage`]).
    pub backup: StageSettings,
    /// `preflight-request` (see [`preflight`]).
    pub preflight: preflight::Settings,
}

/// Run until `shutdown` becomes true, then wait (up to [`SHUTDOWN_GRACE`]) for
/// running steps to finish.
pub async fn run<E: Executor>(
    client: Client,
    executor: Arc<E>,
    state_dir: PathBuf,
    scope: Scope,
    settings: Arc<Settings>,
    shutdown: watch::Receiver<bool>,
) {
    let api = Api::<PartialObjectMeta<Node>>::all(client.clone());
    let config = match &scope {
        Scope::Node(name) => watcher::Config::default().fields(&format!("metadata.name={name}")),
        Scope::Nodes { selector: Some(s) } => watcher::Config::default().labels(s),
        Scope::Nodes { selector: None } => watcher::Config::default(),
    };
    let mut events = pin!(watch_nodes(api, config).default_backoff());
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut stop = shutdown.clone();
    info!(executor = executor.name(), state_dir = %state_dir.display(), "watching {}", describe(&scope));
    loop {
        if *stop.borrow() {
            break;
        }
        let event = tokio::select! {
            r = stop.changed() => {
                if r.is_err() {
                    break; // no one can stop us any more: stop now
                }
                continue;
            }
            e = events.next() => e,
        };
        let obj = match event {
            None => {
                warn!("the node watch ended");
                break;
            }
            Some(Err(e)) => {
                warn!("watching nodes: {e}");
                continue;
            }
            Some(Ok(Event::Apply(o) | Event::InitApply(o))) => o,
            Some(Ok(Event::Delete(_) | Event::Init | Event::InitDone)) => continue,
        };
        // Only `pending`/`in-progress` can need the agent; anything else (heartbeats,
        // our own final report, the controller clearing the assignment) is no news.
        // A backup or preflight request not answered yet needs the agent too.
        let wanted = observe(obj.annotations()).wants_agent()
            || backup_stage::wanted(obj.annotations()).is_some()
            || preflight::wanted(obj.annotations()).is_some();
        let name = obj.name_any();
        if let Some(w) = workers.get(&name) {
            w.saw(&obj); // its newest copy, news or not
            if wanted {
                w.wake.notify_one(); // coalesced with any wake-up it has not seen yet
            }
            continue;
        }
        if !wanted {
            continue;
        }
        let root = match &scope {
            Scope::Node(own) if *own == name => state_dir.clone(),
            Scope::Node(_) => continue, // the field selector makes this impossible
            Scope::Nodes { .. } if is_safe_name(&name) => state_dir.join(&name),
            Scope::Nodes { .. } => {
                warn!("node {name:?} cannot name a checkpoint directory; skipped");
                continue;
            }
        };
        debug!(node = %name, "starting the node's worker");
        let agent = NodeAgent {
            client: client.clone(),
            executor: executor.clone(),
            node: name.clone(),
            root,
            shutdown: shutdown.clone(),
        };
        let w = Worker::spawn(agent, settings.clone());
        w.saw(&obj);
        w.wake.notify_one();
        workers.insert(name, w);
    }
    let handles: Vec<JoinHandle<()>> = workers.into_values().map(|w| w.handle).collect();
    if handles.iter().any(|h| !h.is_finished()) {
        info!("waiting up to {SHUTDOWN_GRACE:?} for running steps to finish");
    }
    let all = futures::future::join_all(handles);
    if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
        warn!(
            "steps still running after {SHUTDOWN_GRACE:?}: abandoned (they run again on restart)"
        );
    }
}

fn describe(scope: &Scope) -> String {
    match scope {
        Scope::Node(n) => format!("node {n}"),
        Scope::Nodes { selector: Some(s) } => format!("nodes matching {s}"),
        Scope::Nodes { selector: None } => "every node".to_string(),
    }
}

/// The newest copy of a node the watch brought.
type Seen = Arc<Mutex<Option<NodeView>>>;

/// One node's worker task, its wake-up and the node's newest copy from the watch.
#[derive(Debug)]
struct Worker {
    wake: Arc<Notify>,
    seen: Seen,
    handle: JoinHandle<()>,
}

impl Worker {
    fn spawn<E: Executor>(agent: NodeAgent<E>, settings: Arc<Settings>) -> Self {
        let wake = Arc::new(Notify::new());
        let seen = Seen::default();
        let handle = tokio::spawn(work(agent, wake.clone(), seen.clone(), settings));
        Self { wake, seen, handle }
    }

    fn saw(&self, obj: &PartialObjectMeta<Node>) {
        if let Ok(mut s) = self.seen.lock() {
            *s = Some(NodeView::of(obj));
        }
    }
}

/// What a worker knows of the node's versions: a watch copy older than this is stale.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Floor {
    /// Nothing read or written yet: any copy from the watch will do.
    Any,
    /// The resourceVersion of the newest copy it read or wrote.
    At(String),
    /// It wrote, and the answer is not known: read the node.
    Unknown,
}

impl Floor {
    /// The copy to act on: the watch's, if it is no older than the floor.
    fn pick(&self, seen: Option<NodeView>) -> Option<NodeView> {
        let seen = seen?;
        let fresh = match self {
            Floor::Any => true,
            Floor::At(rv) => seen.resource_version.as_deref().is_some_and(|s| {
                compare_resource_versions(s, rv).is_some_and(|o| o != Ordering::Less)
            }),
            Floor::Unknown => false,
        };
        fresh.then_some(seen)
    }

    fn of(rv: Option<String>) -> Self {
        rv.map_or(Floor::Unknown, Floor::At)
    }
}

async fn work<E: Executor>(
    agent: NodeAgent<E>,
    wake: Arc<Notify>,
    seen: Seen,
    settings: Arc<Settings>,
) {
    let api = Api::<Node>::all(agent.client.clone());
    let mut stop = agent.shutdown.clone();
    let mut retry: Option<Duration> = None;
    let mut floor = Floor::Any;
    loop {
        let later = async {
            match retry {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = later => {}
            r = stop.changed() => {
                if r.is_err() {
                    return;
                }
            }
        }
        if *stop.borrow() {
            return;
        }
        // A retry after a failed write reads the node: what went wrong may be our copy.
        let watched = retry
            .is_none()
            .then(|| seen.lock().ok().and_then(|s| s.clone()));
        let view: NodeView = match floor.pick(watched.flatten()) {
            Some(v) => v,
            None => match node::read(&api, &agent.node).await {
                Ok(Some(v)) => v,
                Ok(None) => {
                    retry = None;
                    continue;
                }
                Err(e) => {
                    warn!(node = %agent.node, "reading the node: {e}");
                    retry = Some(RETRY);
                    continue;
                }
            },
        };
        floor = Floor::of(view.resource_version.clone());
        // Preflight first: it comes before anything else of an operation. Answers are
        // written without keeping their answer: the next wake-up reads the node.
        if let Some(want) = preflight::wanted(&view.annotations) {
            floor = Floor::Unknown;
            if let Err(e) = preflight::answer(&api, &agent.node, &settings.preflight, &want).await {
                warn!(node = %agent.node, "writing the preflight report: {e}");
                retry = Some(RETRY);
                continue;
            }
        }
        if let Some(op) = backup_stage::wanted(&view.annotations) {
            floor = Floor::Unknown;
            let store = view
                .annotations
                .get(cupcake_api::labels::BACKUP_STORE)
                .map(String::as_str);
            if let Err(e) =
                backup_stage::answer(&api, &agent.node, &settings.backup, &op, store).await
            {
                warn!(node = %agent.node, "writing the backup result: {e}");
                retry = Some(RETRY);
                continue;
            }
        }
        let (outcome, newest) = reconcile(&agent, &view).await;
        if floor != Floor::Unknown {
            floor = Floor::of(newest);
        }
        retry = match outcome {
            Outcome::RetryLater => Some(RETRY),
            Outcome::Abandoned => return,
            Outcome::Idle | Outcome::Completed | Outcome::Failed => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rv: &str) -> NodeView {
        NodeView {
            name: "w-1".into(),
            resource_version: Some(rv.into()),
            ..NodeView::default()
        }
    }

    #[test]
    fn a_watch_copy_older_than_what_the_worker_read_or_wrote_is_not_acted_on() {
        let at_10 = Floor::At("10".into());
        let cases: &[(&Floor, Option<&str>, bool)] = &[
            (&Floor::Any, Some("3"), true), // nothing read or written yet
            (&Floor::Any, None, false),     // no copy: read
            (&at_10, Some("11"), true),     // after our last write
            (&at_10, Some("10"), true),     // our last write itself
            (&at_10, Some("9"), false),     // from before it (the `pending` it replaced)
            (&at_10, Some("0x"), false),    // cannot compare: read
            (&Floor::Unknown, Some("99"), false),
        ];
        for (floor, seen, acts) in cases {
            let got = floor.pick(seen.map(at));
            assert_eq!(got.is_some(), *acts, "{floor:?} with {seen:?}");
        }
        assert_eq!(Floor::of(None), Floor::Unknown);
    }
}
