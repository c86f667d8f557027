//! Observe a live cluster: list Nodes, Pods and PodDisruptionBudgets and turn
//! them into the same kubectl-style `List` that `cupcake plan --snapshot`
//! reads (or straight into its snapshot, by the same rules); and watch objects
//! into the caches the controllers decide from ([`reflect`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use futures::{AsyncReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Config, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::snapshot::{Interner, PodRow, WatchedPod};
use tokio::sync::Notify;

/// Page size for list calls; large clusters are read in pages.
const PAGE: u32 = 500;

/// Page size of the live snapshot's lists: each page is decoded and dropped, so a
/// page of 5,000 pods (8 MB of protobuf) bounds the memory; a page of 500 made
/// 100 round trips of 50,000 pods, and the API server's work per page made that
/// several times slower than ten pages.
const SNAPSHOT_PAGE: u32 = 5000;

/// What the live snapshot's lists accept: protobuf, else JSON.
const PROTOBUF: &str = "application/vnd.kubernetes.protobuf, application/json";

/// Why the cluster could not be observed. Each message carries its cause
/// (no `#[source]` chain, so `{:#}` never repeats it).
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("reading kubeconfig {path}: {error}")]
    Kubeconfig {
        path: String,
        error: kube::config::KubeconfigError,
    },
    #[error("no usable kubeconfig (in-cluster, $KUBECONFIG or ~/.kube/config): {0}")]
    Infer(kube::config::InferConfigError),
    #[error("building the Kubernetes client: {0}")]
    Client(kube::Error),
    #[error("listing {what} from {server}: {error}")]
    List {
        what: &'static str,
        server: String,
        error: kube::Error,
    },
    #[error("encoding the snapshot: {0}")]
    Encode(serde_json::Error),
    /// The objects do not make a snapshot (a node without its kubelet version …).
    #[error("{0}")]
    Snapshot(crate::snapshot::SnapshotError),
}

/// Which cluster to talk to, like kubectl: `--kubeconfig` (else `$KUBECONFIG`, else
/// `~/.kube/config`, else in-cluster) and `--context`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct KubeArgs {
    /// kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context to use (default: its current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
}

/// A client for the cluster `args` names.
///
/// kube's client retries 429/503/504 answers with backoff (up to 15 times);
/// that suits reads, but an eviction blocked by a PDB also answers 429 — code
/// that must see a refusal (drains) builds its client with [`config`] and
/// `default_retry = false`.
pub async fn client(args: &KubeArgs) -> Result<Client, ObserveError> {
    Client::try_from(config(args).await?).map_err(ObserveError::Client)
}

/// The client configuration [`client`] uses.
pub async fn config(args: &KubeArgs) -> Result<Config, ObserveError> {
    install_crypto_provider();
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config =
        match (&args.kubeconfig, &args.context) {
            (Some(p), _) => {
                let kc = Kubeconfig::read_from(p).map_err(|error| ObserveError::Kubeconfig {
                    path: p.display().to_string(),
                    error,
                })?;
                Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|error| ObserveError::Kubeconfig {
                        path: p.display().to_string(),
                        error,
                    })?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options).await.map_err(|error| {
                ObserveError::Kubeconfig {
                    path: std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into()),
                    error,
                }
            })?,
            (None, None) => Config::infer().await.map_err(ObserveError::Infer)?,
        };
    Ok(config)
}

/// Use aws-lc-rs for TLS everywhere (one crypto provider in the process).
pub fn install_crypto_provider() {
    // Err means a provider is installed already, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

async fn list_all<K>(api: Api<K>, what: &'static str, server: &str) -> Result<Vec<K>, ObserveError>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|error| ObserveError::List {
                what,
                server: server.to_string(),
                error,
            })?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

#[derive(Serialize)]
struct List {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    items: Vec<serde_json::Value>,
    kind: &'static str,
    metadata: serde_json::Value,
}

/// Connect to the cluster `args` names: the client and the server URL (for messages).
pub async fn connect(args: &KubeArgs) -> Result<(Client, String), ObserveError> {
    let config = config(args).await?;
    let server = config.cluster_url.to_string();
    Ok((
        Client::try_from(config).map_err(ObserveError::Client)?,
        server,
    ))
}

/// The cluster's nodes, pods and PDBs (`server` names the apiserver in errors).
async fn objects(client: &Client, server: &str) -> Result<Objects, ObserveError> {
    let nodes = list_all(Api::<Node>::all(client.clone()), "nodes", server).await?;
    let pods = list_all(Api::<Pod>::all(client.clone()), "pods", server).await?;
    let pdbs = list_all(
        Api::<PodDisruptionBudget>::all(client.clone()),
        "poddisruptionbudgets",
        server,
    )
    .await?;
    Ok((nodes, pods, pdbs))
}

type Objects = (Vec<Node>, Vec<Pod>, Vec<PodDisruptionBudget>);

/// The live cluster's snapshot: what [`crate::snapshot::parse`] makes of
/// [`snapshot_json`]'s text. Each list page is asked for in Kubernetes' protobuf
/// encoding (the API server writes it about twice as fast as JSON, in a third of the
/// bytes) and decoded straight into what the snapshot reads (see
/// [`crate::snapshot::Pages`]), never into whole objects. The
/// lists are consistent reads (no `resourceVersion`: the API server answers from its
/// watch cache once that has caught up with etcd), so a plan never decides from a
/// cluster older than the moment it was asked for.
pub async fn snapshot(
    client: &Client,
    server: &str,
) -> Result<cupcake_api::snapshot::ClusterSnapshot, ObserveError> {
    snapshot_as(client, server, ListEncoding::Protobuf).await
}

/// How [`snapshot_as`] asks for the lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListEncoding {
    /// Kubernetes' protobuf (the API server may still answer JSON; both are read).
    Protobuf,
    /// JSON only.
    Json,
}

/// [`snapshot`], asking for the lists in `encoding` (the two make the same snapshot;
/// the e2e test `live_snapshot.rs` compares them).
pub async fn snapshot_as(
    client: &Client,
    server: &str,
    encoding: ListEncoding,
) -> Result<cupcake_api::snapshot::ClusterSnapshot, ObserveError> {
    let accept = match encoding {
        ListEncoding::Protobuf => PROTOBUF,
        ListEncoding::Json => "application/json",
    };
    let mut pages = crate::snapshot::Pages::new(&format!("live cluster ({server})"));
    for (path, kind, what) in [
        ("/api/v1/nodes", "Node", "nodes"),
        ("/api/v1/pods", "Pod", "pods"),
        (
            "/apis/policy/v1/poddisruptionbudgets",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
        ),
    ] {
        let request = kube::core::Request::new(path);
        let mut params = ListParams::default().limit(SNAPSHOT_PAGE);
        loop {
            let failed = |error| ObserveError::List {
                what,
                server: server.to_string(),
                error,
            };
            let mut req = request
                .list(&params)
                .map_err(|e| failed(kube::Error::BuildRequest(e)))?;
            let value = accept.parse().map_err(|_| {
                failed(kube::Error::BuildRequest(
                    kube::core::request::Error::Validation(format!("Accept: {accept}")),
                ))
            })?;
            req.headers_mut().insert("accept", value);
            let mut body = Vec::new();
            client
                .request_stream(req)
                .await
                .map_err(failed)?
                .read_to_end(&mut body)
                .await
                .map_err(|e| failed(kube::Error::ReadEvents(e)))?;
            match pages
                .add_answer(kind, &body)
                .map_err(ObserveError::Snapshot)?
            {
                Some(token) => params = params.continue_token(&token),
                None => break,
            }
        }
    }
    pages.finish().map_err(ObserveError::Snapshot)
}

/// The cluster's nodes, pods and PDBs as a kubectl-style `v1 List` in JSON
/// (`server` names the apiserver in errors).
pub async fn snapshot_json(client: &Client, server: &str) -> Result<String, ObserveError> {
    let (nodes, pods, pdbs) = objects(client, server).await?;
    let mut items = Vec::with_capacity(nodes.len() + pods.len() + pdbs.len());
    // k8s-openapi writes apiVersion and kind for every object, as kubectl does.
    for n in &nodes {
        items.push(serde_json::to_value(n).map_err(ObserveError::Encode)?);
    }
    for p in &pods {
        items.push(serde_json::to_value(p).map_err(ObserveError::Encode)?);
    }
    for p in &pdbs {
        items.push(serde_json::to_value(p).map_err(ObserveError::Encode)?);
    }
    let list = List {
        api_version: "v1",
        items,
        kind: "List",
        metadata: serde_json::json!({"resourceVersion": ""}),
    };
    serde_json::to_string(&list).map_err(ObserveError::Encode)
}

/// Watch `api` into a store of slim copies (`slim`: what the controller reads of
/// each object, applied before the object enters the store), waking `notify` on
/// every event but those that leave a cached copy the `same` (a heartbeat that only
/// moves a timestamp the copy does not keep). The controllers' one way to cache
/// objects: the rollout controller's Nodes, Pods, PDBs and DirectUpdates, the
/// schedule controllers' ScheduledUpdates, UpdateSchedules and DirectUpdates.
/// Drive the returned future to keep the store current.
pub fn reflect<K>(
    api: Api<K>,
    slim: fn(&mut K),
    same: fn(&K, &K) -> bool,
    notify: Arc<Notify>,
) -> (Store<K>, impl Future<Output = ()>)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let cached = reader.clone();
    // Seen before the reflector applies the event, so `cached` still holds the old copy.
    let events = watcher(api, watcher::Config::default())
        .modify(slim)
        .default_backoff()
        .inspect_ok(move |e| {
            if changes(&cached, e, same) {
                notify.notify_one();
            }
        });
    let stream = reflector::reflector(writer, events).for_each(|_| futures::future::ready(()));
    (reader, stream)
}

/// [`reflect`] of a type decoded slim already (`W`, e.g. `rollout::slim::WatchedNode`),
/// turned into what the store keeps by `into`: no whole object is built per event.
pub fn reflect_via<W, K>(
    api: Api<W>,
    into: fn(W) -> K,
    same: fn(&K, &K) -> bool,
    notify: Arc<Notify>,
) -> (Store<K>, impl Future<Output = ()>)
where
    W: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    W::DynamicType: Default,
    K: Resource + Clone + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let cached = reader.clone();
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .map_ok(move |e| match e {
            watcher::Event::Apply(w) => watcher::Event::Apply(into(w)),
            watcher::Event::InitApply(w) => watcher::Event::InitApply(into(w)),
            watcher::Event::Delete(w) => watcher::Event::Delete(into(w)),
            watcher::Event::Init => watcher::Event::Init,
            watcher::Event::InitDone => watcher::Event::InitDone,
        })
        .inspect_ok(move |e| {
            if changes(&cached, e, same) {
                notify.notify_one();
            }
        });
    let stream = reflector::reflector(writer, events).for_each(|_| futures::future::ready(()));
    (reader, stream)
}

/// Whether a watch event changes the store.
fn changes<K>(store: &Store<K>, e: &watcher::Event<K>, same: fn(&K, &K) -> bool) -> bool
where
    K: Resource + Clone,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    match e {
        watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => store
            .get(&reflector::ObjectRef::from_obj(obj))
            .is_none_or(|old| !same(&old, obj)),
        watcher::Event::Delete(_) | watcher::Event::Init | watcher::Event::InitDone => true,
    }
}

/// Pod rows by namespace and name.
pub type Rows = BTreeMap<(Arc<str>, Box<str>), PodRow>;

/// The rollout controller's pods, one [`PodRow`] each (not whole `Pod`s: a cache of
/// 50,000 pods holds a few shared strings per pod), kept current by [`reflect_pods`].
#[derive(Clone, Debug)]
pub struct PodRows {
    rows: Arc<RwLock<Rows>>,
    ready: tokio::sync::watch::Receiver<bool>,
}

impl PodRows {
    /// The rows, by namespace and name.
    pub fn read(&self) -> RwLockReadGuard<'_, Rows> {
        // A writer that panicked left whole rows behind: read on.
        self.rows.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Once the first list is in.
    pub async fn wait_until_ready(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|r| *r).await;
    }
}

/// Watch every Pod into [`PodRows`], waking `notify` on every event that changes a
/// row (a pod's status heartbeat that moves only what rows do not keep does not).
/// Drive the returned future to keep the rows current.
pub fn reflect_pods(client: Client, notify: Arc<Notify>) -> (PodRows, impl Future<Output = ()>) {
    let rows: Arc<RwLock<Rows>> = Arc::default();
    let (ready_tx, ready) = tokio::sync::watch::channel(false);
    let store = PodRows {
        rows: rows.clone(),
        ready,
    };
    let key = |r: &PodRow| {
        (
            r.namespace.clone().unwrap_or_else(|| Arc::from("")),
            r.name.clone().unwrap_or_default(),
        )
    };
    let mut names = Interner::default();
    // A relist's rows, swapped in whole when it is done.
    let mut relist: Option<Rows> = None;
    // Decoded straight into rows (`WatchedPod`), never into whole Pods.
    let api = Api::<WatchedPod>::all(client);
    let events = watcher(api, watcher::Config::default()).default_backoff();
    let stream = events.for_each(move |e| {
        let write = || rows.write().unwrap_or_else(PoisonError::into_inner);
        let changed = match e {
            Ok(watcher::Event::Init) => {
                relist = Some(BTreeMap::new());
                true
            }
            Ok(watcher::Event::InitApply(p)) => {
                let row = names.share(p.row);
                let k = key(&row);
                let changed =
                    rows.read().unwrap_or_else(PoisonError::into_inner).get(&k) != Some(&row);
                relist.get_or_insert_default().insert(k, row);
                changed
            }
            Ok(watcher::Event::InitDone) => {
                *write() = relist.take().unwrap_or_default();
                names.purge();
                let _ = ready_tx.send(true);
                true
            }
            Ok(watcher::Event::Apply(p)) => {
                let row = names.share(p.row);
                let k = key(&row);
                write().insert(k, row.clone()) != Some(row)
            }
            Ok(watcher::Event::Delete(p)) => {
                write().remove(&key(&p.row));
                true
            }
            // The watcher retries with backoff; the rows stay as they were.
            Err(e) => {
                tracing::warn!(error = %e, "watching pods (retrying; the cached rows stay)");
                false
            }
        };
        if changed {
            notify.notify_one();
        }
        futures::future::ready(())
    });
    (store, stream)
}

/// Keep every object whole.
pub fn whole<K>(_: &mut K) {}

/// Every event wakes the controller.
pub fn never_same<K>(_: &K, _: &K) -> bool {
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use super::*;
    use k8s_openapi::api::core::v1::NodeSpec;
    use kube::api::ObjectMeta;

    fn node(rv: &str, cordoned: bool) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("w-1".into()),
                resource_version: Some(rv.into()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                unschedulable: Some(cordoned),
                ..NodeSpec::default()
            }),
            status: None,
        }
    }

    fn same_but_version(a: &Node, b: &Node) -> bool {
        a.spec == b.spec
    }

    #[test]
    fn only_events_that_change_the_cached_copy_wake_the_controller() {
        let (reader, mut writer) = reflector::store::<Node>();
        let apply = |n: Node| watcher::Event::Apply(n);
        // A new object wakes; the same copy again (a heartbeat) does not; a change does.
        assert!(changes(&reader, &apply(node("1", false)), same_but_version));
        writer.apply_watcher_event(&apply(node("1", false)));
        assert!(!changes(
            &reader,
            &apply(node("2", false)),
            same_but_version
        ));
        assert!(changes(&reader, &apply(node("3", true)), same_but_version));
        assert!(changes(&reader, &apply(node("3", false)), never_same));
        // Deletions and relists always wake.
        assert!(changes(
            &reader,
            &watcher::Event::Delete(node("4", false)),
            same_but_version
        ));
        assert!(changes(
            &reader,
            &watcher::Event::InitDone,
            same_but_version
        ));
    }
}
