//! Which nodes the agent acts for, and when: a watch on Node metadata that
//! wakes one worker task per node.
//!
//! - A node's own agent watches only its Node (field selector
//!   `metadata.name=<node>`), so it never sees, let alone touches, another node's
//!   assignment.
//! - `simulate --all-nodes` watches every node (optionally a label selector) and
//!   plays each one's agent, with checkpoints under `<state-dir>/<node>/`.
//!
//! The watch is only a trigger: an event whose annotations say `pending` or
//! `in-progress`, or carry a backup or preflight request not answered yet, wakes
//! that node's worker, which reads the node again and
//! [`reconcile`](crate::operation::reconcile)s. One worker per node runs one
//! operation at a time, so a node never has two; wake-ups during a run are
//! coalesced into one re-check after it. Different nodes run concurrently.
//!
//! Only metadata is watched (`PartialObjectMeta<Node>`): node status
//! heartbeats make full Node objects large and frequent.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

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
        if !observe(obj.annotations()).wants_agent()
            && backup_stage::wanted(obj.annotations()).is_none()
            && preflight::wanted(obj.annotations()).is_none()
        {
            continue;
        }
        let name = obj.name_any();
        if let Some(w) = workers.get(&name) {
            w.wake.notify_one(); // coalesced with any wake-up it has not seen yet
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

/// One node's worker task and its wake-up.
#[derive(Debug)]
struct Worker {
    wake: Arc<Notify>,
    handle: JoinHandle<()>,
}

impl Worker {
    fn spawn<E: Executor>(agent: NodeAgent<E>, settings: Arc<Settings>) -> Self {
        let wake = Arc::new(Notify::new());
        let handle = tokio::spawn(work(agent, wake.clone(), settings));
        Self { wake, handle }
    }
}

async fn work<E: Executor>(agent: NodeAgent<E>, wake: Arc<Notify>, settings: Arc<Settings>) {
    let api = Api::<Node>::all(agent.client.clone());
    let mut stop = agent.shutdown.clone();
    let mut retry: Option<Duration> = None;
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
        let view: NodeView = match node::read(&api, &agent.node).await {
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
        };
        // Preflight first: it comes before anything else of an operation.
        if let Some(want) = preflight::wanted(&view.annotations)
            && let Err(e) = preflight::answer(&api, &agent.node, &settings.preflight, &want).await
        {
            warn!(node = %agent.node, "writing the preflight report: {e}");
            retry = Some(RETRY);
            continue;
        }
        if let Some(op) = backup_stage::wanted(&view.annotations) {
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
        retry = match reconcile(&agent, &view).await {
            Outcome::RetryLater => Some(RETRY),
            Outcome::Abandoned => return,
            Outcome::Idle | Outcome::Completed | Outcome::Failed => None,
        };
    }
}
