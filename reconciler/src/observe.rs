//! Observe a live cluster: list Nodes, Pods and PodDisruptionBudgets and turn
//! them into the same kubectl-style `List` that `cupcake plan --snapshot`
//! reads (or straight into its snapshot, by the same rules); and watch objects
//! into the caches the controllers decide from ([`reflect`]).

use std::collections::HashMap;
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
    #[error("writing the snapshot: {0}")]
    Write(std::io::Error),
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

/// Every object of `api`, one page at a time, handed to `each` (the pages of one
/// list are one consistent read: the continue token pins the first page's revision).
async fn list_pages<K>(
    api: Api<K>,
    what: &'static str,
    server: &str,
    mut each: impl FnMut(Vec<K>) -> Result<(), ObserveError>,
) -> Result<(), ObserveError>
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
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
        each(page.items)?;
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(()),
        }
    }
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

/// The live cluster's snapshot: what [`crate::snapshot::parse`] makes of
/// what [`write_snapshot`] writes. Each list page is asked for in Kubernetes' protobuf
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

/// Where the controllers read the cluster from when they plan: the rollout
/// controller's watch caches once they are ready ([`Observer::publish`]), a paged
/// list of the cluster ([`snapshot`]) until then. The GitOps loop and the schedule
/// controllers plan through one of these, so a controller that already watches every
/// Node, Pod and PDB never lists them again (at 50,000 pods a list is 82 MB the API
/// server takes seconds to serve; the cached rows make the same snapshot in tens of
/// milliseconds). Cheap to clone: every clone sees the same caches.
#[derive(Clone)]
pub struct Observer {
    client: Client,
    server: String,
    cache: Arc<tokio::sync::watch::Sender<Option<Cached>>>,
}

/// How long [`Observer::snapshot`] waits for the caches before it lists the cluster
/// instead: the rollout controller starts with the GitOps loop and its caches are
/// usually ready within seconds (5,000 nodes and 50,000 pods: 2–5 s here); a list
/// of that cluster takes as long and leaves the controller's memory at its peak.
const CACHE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The rollout controller's caches, as [`Observer`] reads them.
#[derive(Clone, Debug)]
pub struct Cached {
    /// Slim Nodes (`rollout::slim`).
    pub nodes: Store<crate::rollout::slim::CachedNode>,
    pub pods: PodRows,
    /// Slim PDBs.
    pub pdbs: Store<PodDisruptionBudget>,
}

impl Cached {
    /// Watch every Node (slim), Pod (as rows) and PDB (slim) with `config`, waking
    /// `notify` on every change the caches keep. Drive the returned future to fill
    /// them and keep them current.
    pub fn start(
        client: Client,
        config: watcher::Config,
        notify: Arc<Notify>,
    ) -> (Cached, impl Future<Output = ()>) {
        use crate::rollout::slim;
        let (nodes, w1) = reflect_via(
            Api::<slim::WatchedNode>::all(client.clone()),
            config.clone(),
            slim::WatchedNode::into_cached,
            slim::same,
            notify.clone(),
        );
        let (pods, w2) = reflect_pods(client.clone(), config.clone(), notify.clone());
        let (pdbs, w3) = reflect(
            Api::<PodDisruptionBudget>::all(client),
            config,
            slim::pdb,
            slim::same,
            notify,
        );
        let watch = async move {
            futures::future::join3(w1, w2, w3).await;
        };
        (Cached { nodes, pods, pdbs }, watch)
    }

    /// Once the first state of each cache is in.
    pub async fn wait_until_ready(&self) {
        let _ = self.nodes.wait_until_ready().await;
        self.pods.wait_until_ready().await;
        let _ = self.pdbs.wait_until_ready().await;
    }

    /// The snapshot of what the caches hold now.
    pub fn snapshot(&self) -> Result<cupcake_api::snapshot::ClusterSnapshot, ObserveError> {
        self.snapshot_with(&self.nodes.state())
    }

    /// The snapshot of `nodes` (the rollout controller passes its cached Nodes with
    /// its own newer writes in their place) and of the cached pods and PDBs.
    pub fn snapshot_with(
        &self,
        nodes: &[Arc<crate::rollout::slim::CachedNode>],
    ) -> Result<cupcake_api::snapshot::ClusterSnapshot, ObserveError> {
        // In the order a list gives them (etcd's: by `name`, by `namespace/name`),
        // not the caches' hash order, so that a plan from the caches is the plan
        // `cupcake plan --live` makes from a list.
        let mut nodes: Vec<&crate::rollout::slim::CachedNode> =
            nodes.iter().map(|n| &**n).collect();
        nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let pods = self.pods.read();
        let mut rows: Vec<&PodRow> = pods.values().collect();
        rows.sort_by(|a, b| {
            key_order(
                a.namespace.as_deref().unwrap_or(""),
                a.name.as_deref().unwrap_or(""),
                b.namespace.as_deref().unwrap_or(""),
                b.name.as_deref().unwrap_or(""),
            )
        });
        let pdbs = self.pdbs.state();
        let mut pdbs: Vec<&PodDisruptionBudget> = pdbs.iter().map(|p| &**p).collect();
        pdbs.sort_by(|a, b| {
            key_order(
                a.metadata.namespace.as_deref().unwrap_or(""),
                a.metadata.name.as_deref().unwrap_or(""),
                b.metadata.namespace.as_deref().unwrap_or(""),
                b.metadata.name.as_deref().unwrap_or(""),
            )
        });
        crate::snapshot::from_rows(nodes, rows, pdbs, "the live cluster")
            .map_err(ObserveError::Snapshot)
    }
}

/// The order of `namespace/name` keys, byte by byte (etcd's, so a list's): `a-b/x`
/// before `a/x`, which comparing the namespaces first would reverse.
fn key_order(ns_a: &str, a: &str, ns_b: &str, b: &str) -> std::cmp::Ordering {
    let ka = ns_a.bytes().chain(*b"/").chain(a.bytes());
    let kb = ns_b.bytes().chain(*b"/").chain(b.bytes());
    ka.cmp(kb)
}

/// Where an [`Observer`]'s snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The rollout controller's watch caches.
    Cache,
    /// A list of the cluster.
    List,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cache => "cache",
            Source::List => "list",
        }
    }
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("server", &self.server)
            .field("cached", &self.cache.borrow().is_some())
            .finish()
    }
}

impl Observer {
    /// Reads `client`'s cluster (`server` names it in errors) from the caches once
    /// they are published, listing it only when they are not within a minute.
    pub fn new(client: Client, server: String) -> Self {
        Observer {
            client,
            server,
            cache: Arc::new(tokio::sync::watch::Sender::new(None)),
        }
    }

    /// From now on, plan from `cached` (call once its first state is in).
    pub fn publish(&self, cached: Cached) {
        self.cache.send_replace(Some(cached));
    }

    /// The cluster now: from the caches once published (waiting up to a minute
    /// for them), else listed.
    pub async fn snapshot(
        &self,
    ) -> Result<(cupcake_api::snapshot::ClusterSnapshot, Source), ObserveError> {
        let mut published = self.cache.subscribe();
        let cached = tokio::time::timeout(CACHE_WAIT, published.wait_for(Option::is_some))
            .await
            .ok()
            .and_then(|r| r.ok().and_then(|c| c.clone()));
        match cached {
            // Tens of milliseconds at 50,000 pods, on this worker thread: on the
            // blocking pool each evaluation's garbage stayed in another thread's
            // allocator heap until that thread exited (118 MiB resident with an
            // evaluation a second, against about 60).
            Some(c) => Ok((c.snapshot()?, Source::Cache)),
            None => {
                tracing::warn!(
                    "the rollout controller's caches are not ready after {}s: listing the cluster",
                    CACHE_WAIT.as_secs()
                );
                Ok((snapshot(&self.client, &self.server).await?, Source::List))
            }
        }
    }
}

/// Write the live cluster's nodes, pods and PDBs to `out` as one kubectl `List`, a list
/// page (500 objects) at a time: `cupcake snapshot` of 5,000 nodes and 50,000 pods
/// holds one page, not the whole cluster three times over (2.6 GiB before). Returns
/// how many objects were written.
pub async fn write_snapshot<W: std::io::Write>(
    client: &Client,
    server: &str,
    out: &mut crate::snapshot::ListWriter<W>,
) -> Result<usize, ObserveError> {
    let nodes = write_list(Api::<Node>::all(client.clone()), "nodes", server, out).await?;
    let pods = write_list(Api::<Pod>::all(client.clone()), "pods", server, out).await?;
    let pdbs = write_list(
        Api::<PodDisruptionBudget>::all(client.clone()),
        "poddisruptionbudgets",
        server,
        out,
    )
    .await?;
    Ok(nodes + pods + pdbs)
}

/// Every object of `api` onto `out`, page by page; returns how many.
async fn write_list<K, W>(
    api: Api<K>,
    what: &'static str,
    server: &str,
    out: &mut crate::snapshot::ListWriter<W>,
) -> Result<usize, ObserveError>
where
    K: kube::Resource + Clone + DeserializeOwned + Serialize + std::fmt::Debug,
    W: std::io::Write,
{
    let mut n = 0;
    list_pages(api, what, server, |page| {
        n += write_page(out, &page)?;
        Ok(())
    })
    .await?;
    Ok(n)
}

/// One list page's objects onto `out`, as JSON values (keys in order, as kubectl
/// prints them; k8s-openapi writes apiVersion and kind for every object).
fn write_page<K: Serialize, W: std::io::Write>(
    out: &mut crate::snapshot::ListWriter<W>,
    items: &[K],
) -> Result<usize, ObserveError> {
    for o in items {
        let v = serde_json::to_value(o).map_err(ObserveError::Encode)?;
        out.item(&v).map_err(ObserveError::Write)?;
    }
    Ok(items.len())
}

/// How the rollout controller's watches get their first state: streamed as watch
/// events (`sendInitialEvents`, Kubernetes' streaming lists, KEP-3157) when the API
/// server does that, else listed page by page ([`watch_config`]).
///
/// A streamed start decodes one object at a time instead of pages of 500: at 5,000
/// nodes and 50,000 pods the controller's resident memory fell from 75–100 MiB to about
/// 60 (docs/performance.md, Scale). The feature is on by default in Kubernetes 1.32,
/// off in 1.33 (the API server refuses the request with 422) and on again from 1.34,
/// so it is asked for, never assumed.
pub async fn streams_initial_events(client: &Client) -> bool {
    use kube::api::{WatchEvent, WatchParams};
    // A watch of no node (a name no node can have) that only says where the initial
    // state ends: a bookmark annotated `k8s.io/initial-events-end`.
    let params = WatchParams::streaming_lists()
        .fields("metadata.name=cupcake.invalid")
        .timeout(5);
    let api = Api::<Node>::all(client.clone());
    let probe = async {
        let stream = match api.watch(&params, "").await {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(error = %e, "the API server does not stream a watch's initial state; the caches start from paged lists");
                return false;
            }
        };
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Bookmark(b))
                    if b.metadata.annotations.get("k8s.io/initial-events-end")
                        == Some(&"true".to_string()) =>
                {
                    return true;
                }
                Ok(WatchEvent::Error(e)) => {
                    tracing::info!(error = %e.message, "the API server does not stream a watch's initial state; the caches start from paged lists");
                    return false;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::info!(error = %e, "probing for streamed watch starts failed; the caches start from paged lists");
                    return false;
                }
            }
        }
        false
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), probe)
        .await
        .unwrap_or(false)
}

/// The watcher configuration for a cache: a streamed start when `streaming`
/// ([`streams_initial_events`]), else the initial state listed in pages of 500.
pub fn watch_config(streaming: bool) -> watcher::Config {
    if streaming {
        watcher::Config::default().streaming_lists()
    } else {
        watcher::Config::default()
    }
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
    config: watcher::Config,
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
    let events = watcher(api, config)
        .modify(slim)
        .default_backoff()
        .inspect_err(watch_error::<K>)
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
    config: watcher::Config,
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
    let events = watcher(api, config)
        .default_backoff()
        .inspect_err(watch_error::<K>)
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

/// A watch that failed: the watcher starts it again after a backoff (a relist when
/// the API server no longer has its revision), and the cache keeps what it has until
/// then. Said, because a watch that keeps failing is a controller deciding from an
/// old cluster.
fn watch_error<K: Resource>(e: &watcher::Error)
where
    K::DynamicType: Default,
{
    tracing::warn!(kind = %K::kind(&Default::default()), error = %e, "watch failed (retrying; the cache keeps what it has)");
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

/// Pod rows by namespace and name (a hash map: a B-tree filled in key order, as a
/// list comes, left its nodes half empty, 12.7 MB for 50,000 rows against 9; the
/// snapshot sorts the rows anyway, into etcd's order).
pub type Rows = HashMap<(Arc<str>, Arc<str>), PodRow>;

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
pub fn reflect_pods(
    client: Client,
    config: watcher::Config,
    notify: Arc<Notify>,
) -> (PodRows, impl Future<Output = ()>) {
    let rows: Arc<RwLock<Rows>> = Arc::default();
    let (ready_tx, ready) = tokio::sync::watch::channel(false);
    let store = PodRows {
        rows: rows.clone(),
        ready,
    };
    let key = |r: &PodRow| {
        (
            r.namespace.clone().unwrap_or_else(|| Arc::from("")),
            r.name.clone().unwrap_or_else(|| Arc::from("")),
        )
    };
    let mut names = Interner::default();
    // A relist's rows, swapped in whole when it is done.
    let mut relist: Option<Rows> = None;
    // Decoded straight into rows (`WatchedPod`), never into whole Pods.
    let api = Api::<WatchedPod>::all(client);
    let events = watcher(api, config).default_backoff();
    let stream = events.for_each(move |e| {
        let write = || rows.write().unwrap_or_else(PoisonError::into_inner);
        let changed = match e {
            Ok(watcher::Event::Init) => {
                // Sized for the rows there are: growing doubles the table, twice held.
                let now = rows.read().unwrap_or_else(PoisonError::into_inner).len();
                relist = Some(HashMap::with_capacity(now));
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
    fn cached_rows_come_in_a_lists_order() {
        use std::cmp::Ordering::*;
        for (a, b, want) in [
            (("a-b", "x"), ("a", "x"), Less), // '-' < '/'
            (("a", "x"), ("a", "y"), Less),
            (("a", "y"), ("b", "a"), Less),
            (("ab", "x"), ("a", "zz"), Greater), // 'b' > '/'
            (("a", "x"), ("a", "x"), Equal),
        ] {
            assert_eq!(key_order(a.0, a.1, b.0, b.1), want, "{a:?} vs {b:?}");
        }
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
