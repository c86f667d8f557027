//! The etcd backup: take a snapshot from one etcd endpoint, check it while it
//! streams, upload it, read it back, write its manifest, prune old ones, and
//! report a [`BackupResult`]. `cupcake-agent backup` runs this by hand; the
//! backup stage ([`crate::backup_stage`]) runs it when the rollout controller
//! asks (`backup-request` on the node).
//!
//! ```text
//! etcd Maintenance/Snapshot ──32 KiB blobs──► SnapshotCheck ──► multipart upload ──► read back + hash
//!   (one endpoint, TLS)          (size, trailing SHA-256,          (object_store:           │
//!                                 SHA-256 of the whole file)     s3, gs, az, file)          ▼
//!                                                             <name>.manifest.json, prune to --keep
//! ```
//!
//! What is checked, and where a failure stops:
//!
//! - the stream: etcd sends the database in blobs and then one last 32-byte
//!   blob, the SHA-256 of everything before it. A complete snapshot has
//!   `size % 512 == 32` and `sha256(data[..len-32]) == data[len-32..]` (what
//!   `etcdutl snapshot restore` checks). Anything else is truncated or corrupt:
//!   the multipart upload is aborted, nothing is committed;
//! - the upload: read back in full, its size and SHA-256 must be those of the
//!   stream (S3-compatible stores do not all check upload checksums). A
//!   mismatch deletes the object;
//! - only then the manifest is written: a manifest means a verified snapshot.
//!
//! Objects, per store URL and cluster (`--cluster`, optional):
//! `<url path>/[<cluster>/]etcd-snapshot-<UTC time>.db` and
//! `…/etcd-snapshot-<UTC time>.manifest.json`; names sort by time, so
//! retention keeps the newest `--keep` snapshots (0: keep all) and deletes
//! older ones with their manifests.
//!
//! Errors name the endpoint, the store and the object. Store credentials come
//! from the environment (see [`crate::backup_store`]) and never appear in a
//! message: every message passes [`redact`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use cupcake_api::protocol::BackupResult;
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use futures::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tracing::{info, warn};

use crate::backup_store::{self, Store};

/// Default number of snapshots kept per store prefix and cluster.
pub const DEFAULT_KEEP: usize = 10;
/// Where kubeadm keeps etcd's PKI on a control-plane node.
pub const KUBEADM_ETCD_PKI: &str = "etc/kubernetes/pki/etcd";
/// The etcd endpoint of a kubeadm control-plane node.
pub const DEFAULT_ENDPOINT: &str = "https://127.0.0.1:2379";
/// Size of the multipart upload's parts (S3's minimum is 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight at once.
const PARTS_IN_FLIGHT: usize = 2;
/// etcd's trailing checksum.
const SHA_LEN: usize = 32;

/// Object name prefix and suffixes of what a backup writes.
pub const SNAPSHOT_PREFIX: &str = "etcd-snapshot-";
pub const SNAPSHOT_SUFFIX: &str = ".db";
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdTarget {
    /// Endpoints to try, in order; the snapshot comes from the first that answers.
    pub endpoints: Vec<String>,
    /// TLS files (CA, client certificate, client key); `None` for a plain `http://` endpoint.
    pub tls: Option<TlsFiles>,
}

/// PEM files for etcd's client TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cacert: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl TlsFiles {
    /// kubeadm's files under `root` (`/` on the host, `/host` in the DaemonSet):
    /// the etcd CA and the health-check client certificate.
    pub fn kubeadm(root: &std::path::Path) -> Self {
        let d = root.join(KUBEADM_ETCD_PKI);
        Self {
            cacert: d.join("ca.crt"),
            cert: Some(d.join("healthcheck-client.crt")),
            key: Some(d.join("healthcheck-client.key")),
        }
    }
}

/// Everything one backup needs.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    pub etcd: EtcdTarget,
    /// Store URL (`s3://bucket/prefix`, `gs://…`, `az://…`, `file:///dir`).
    pub store: String,
    /// Sub-directory per cluster under the store URL's path (optional).
    pub cluster: Option<String>,
    /// Snapshots kept (0: all).
    pub keep: usize,
    /// The node whose etcd is snapshotted (for the manifest).
    pub node: String,
}

/// The manifest object written next to a verified snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always `cupcake.ricardomolendijk.com/v1`.
    pub api_version: String,
    /// Always `EtcdSnapshotManifest`.
    pub kind: String,
    /// The snapshot's object name (full key in the store).
    pub snapshot: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the whole object, hex (`sha256sum` of the downloaded file).
    pub sha256: String,
    /// etcd's revision when the snapshot started (the snapshot holds at least it).
    pub revision: i64,
    /// The etcd server's version (`status`).
    pub etcd_version: String,
    /// etcd's storage version sent with the snapshot, when it sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_version: Option<String>,
    /// The endpoint the snapshot came from.
    pub endpoint: String,
    /// The node whose etcd this is.
    pub node: String,
    /// When the snapshot was taken.
    pub timestamp: DateTime<Utc>,
    /// The operation it was taken for (`cupcake-agent backup` by hand: `manual-<time>`).
    pub operation_id: String,
}

/// What `cupcake-agent backup -o json` prints: the [`BackupResult`] the backup
/// stage writes on the node, plus the manifest and what retention deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupReport {
    #[serde(flatten)]
    pub result: BackupResult,
    /// The manifest's object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Older snapshots (and their manifests) deleted by retention.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pruned: Vec<String>,
    /// Problems that did not fail the backup (retention).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Why a backup failed. Every message names what it concerns.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Config(String),
    #[error("etcd {endpoint}: {what}: {error}")]
    Etcd {
        endpoint: String,
        what: &'static str,
        error: String,
    },
    #[error("snapshot from {endpoint} is not intact: {error}")]
    Snapshot {
        endpoint: String,
        error: SnapshotError,
    },
    #[error("store {store}: {what} {object}: {error}")]
    Store {
        store: String,
        what: &'static str,
        object: String,
        error: String,
    },
    #[error(
        "store {store}: {object} read back does not match what was uploaded: {got_size} bytes sha256 {got}, uploaded {want_size} bytes sha256 {want}"
    )]
    ReadBack {
        store: String,
        object: String,
        want_size: u64,
        want: String,
        got_size: u64,
        got: String,
    },
}

/// A snapshot stream that is not a complete etcd snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("empty ({0} bytes)")]
    TooShort(u64),
    #[error(
        "{0} bytes is not 512·n + 32 (a complete snapshot is the database in 512-byte multiples followed by its 32-byte SHA-256): truncated"
    )]
    Size(u64),
    #[error("the trailing SHA-256 {trailer} does not match the data's {actual}: corrupt")]
    Hash { trailer: String, actual: String },
}

/// Checks a snapshot as it streams: holds back the last 32 bytes (the
/// candidate trailer), hashes everything before them, and hashes the whole
/// stream for the object's own checksum.
#[derive(Debug, Clone, Default)]
pub struct SnapshotCheck {
    body: Sha256,
    whole: Sha256,
    tail: Vec<u8>,
    size: u64,
}

/// A checked snapshot's size and SHA-256 (of the whole object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub size: u64,
    pub sha256: String,
}

impl SnapshotCheck {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.whole.update(chunk);
        self.size += chunk.len() as u64;
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > SHA_LEN {
            let n = self.tail.len() - SHA_LEN;
            self.body.update(&self.tail[..n]);
            self.tail.drain(..n);
        }
    }

    /// Bytes seen so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn finish(self) -> Result<Checked, SnapshotError> {
        if self.size <= SHA_LEN as u64 {
            return Err(SnapshotError::TooShort(self.size));
        }
        if self.size % 512 != SHA_LEN as u64 {
            return Err(SnapshotError::Size(self.size));
        }
        let actual = self.body.finalize();
        if actual.as_slice() != self.tail.as_slice() {
            return Err(SnapshotError::Hash {
                trailer: hex::encode(&self.tail),
                actual: hex::encode(actual),
            });
        }
        Ok(Checked {
            size: self.size,
            sha256: hex::encode(self.whole.finalize()),
        })
    }
}

/// Check a whole snapshot file (what `etcdutl snapshot restore` checks first).
pub fn check_snapshot(data: &[u8]) -> Result<Checked, SnapshotError> {
    let mut c = SnapshotCheck::new();
    c.update(data);
    c.finish()
}

/// Take a backup; never fails: a failure is a [`BackupReport`] with `ok: false`
/// and the reason in `message` (credentials redacted).
pub async fn run(settings: &BackupSettings, operation_id: &str) -> BackupReport {
    let fail = |e: BackupError| {
        let message = redact(&e.to_string());
        warn!(operation = operation_id, "etcd backup failed: {message}");
        BackupReport {
            result: BackupResult {
                operation_id: operation_id.to_string(),
                ok: false,
                message: Some(message),
                ..BackupResult::default()
            },
            manifest: None,
            pruned: vec![],
            warnings: vec![],
        }
    };
    let store = match backup_store::open(&settings.store, settings.cluster.as_deref()) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match run_with(settings, &store, operation_id).await {
        Ok(r) => r,
        Err(e) => fail(e),
    }
}

/// [`run`] against an opened store (tests hand in wrapped stores).
pub async fn run_with(
    settings: &BackupSettings,
    store: &Store,
    operation_id: &str,
) -> Result<BackupReport, BackupError> {
    let (mut client, endpoint, status) = connect(&settings.etcd).await?;
    let now = Utc::now();
    let stem = format!(
        "{SNAPSHOT_PREFIX}{}",
        now.format("%Y%m%dT%H%M%S%.3fZ")
            .to_string()
            .replace('.', "")
    );
    let object = store
        .prefix
        .clone()
        .join(format!("{stem}{SNAPSHOT_SUFFIX}"));
    let manifest_path = store
        .prefix
        .clone()
        .join(format!("{stem}{MANIFEST_SUFFIX}"));
    info!(%endpoint, revision = status.revision, store = %store.display, object = %object, "taking an etcd snapshot");

    let (checked, storage_version) =
        stream_and_upload(&mut client, &endpoint, store, &object).await?;
    read_back(store, &object, &checked).await?;

    let manifest = Manifest {
        api_version: "cupcake.ricardomolendijk.com/v1".into(),
        kind: "EtcdSnapshotManifest".into(),
        snapshot: object.to_string(),
        size_bytes: checked.size,
        sha256: checked.sha256.clone(),
        revision: status.revision,
        etcd_version: status.version.clone(),
        storage_version,
        endpoint: endpoint.clone(),
        node: settings.node.clone(),
        timestamp: now,
        operation_id: operation_id.to_string(),
    };
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Store {
        store: store.display.clone(),
        what: "encoding the manifest",
        object: manifest_path.to_string(),
        error: e.to_string(),
    })?;
    store
        .inner
        .put(&manifest_path, PutPayload::from(body))
        .await
        .map_err(|e| store_err(store, "writing the manifest", &manifest_path, e))?;
    info!(object = %object, size = checked.size, sha256 = %checked.sha256, "etcd snapshot verified");

    let mut warnings = vec![];
    let pruned = match prune(store, settings.keep).await {
        Ok(p) => p,
        Err(e) => {
            let m = redact(&e.to_string());
            warn!("retention: {m}");
            warnings.push(format!("retention: {m}"));
            vec![]
        }
    };
    Ok(BackupReport {
        result: BackupResult {
            operation_id: operation_id.to_string(),
            ok: true,
            etcd_snapshot: Some(object.to_string()),
            location: Some(store.url_of(&object)),
            size_bytes: checked.size,
            sha256: Some(checked.sha256),
            revision: Some(status.revision),
            timestamp: Some(now),
            message: None,
        },
        manifest: Some(manifest_path.to_string()),
        pruned,
        warnings,
    })
}

/// What `status()` said about the endpoint.
#[derive(Debug, Clone)]
pub(crate) struct EtcdStatus {
    revision: i64,
    version: String,
}

/// Connect to the first endpoint that answers `status` (etcd-client's `connect`
/// succeeds on a closed port; the first request is the real test).
pub(crate) async fn connect(
    target: &EtcdTarget,
) -> Result<(Client, String, EtcdStatus), BackupError> {
    if target.endpoints.is_empty() {
        return Err(BackupError::Config("no etcd endpoint given".into()));
    }
    let mut options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(10));
    if let Some(tls) = &target.tls {
        options = options.with_tls(tls_options(tls)?);
    }
    let mut errors = vec![];
    for endpoint in &target.endpoints {
        if target.tls.is_none() && endpoint.starts_with("https://") {
            return Err(BackupError::Config(format!(
                "etcd {endpoint}: https endpoint without --cacert"
            )));
        }
        let attempt = async {
            let mut c = Client::connect([endpoint.as_str()], Some(options.clone()))
                .await
                .map_err(|e| ("connecting", e))?;
            let s = tokio::time::timeout(Duration::from_secs(15), c.status())
                .await
                .map_err(|_| {
                    (
                        "status",
                        etcd_client::Error::InvalidArgs("no answer within 15s".into()),
                    )
                })?
                .map_err(|e| ("status", e))?;
            let revision = s.header().map(|h| h.revision()).unwrap_or_default();
            Ok::<_, (&'static str, etcd_client::Error)>((
                c,
                EtcdStatus {
                    revision,
                    version: s.version().to_string(),
                },
            ))
        };
        match attempt.await {
            Ok((c, s)) => return Ok((c, endpoint.clone(), s)),
            Err((what, e)) => {
                warn!(%endpoint, "etcd {what}: {e}");
                errors.push(BackupError::Etcd {
                    endpoint: endpoint.clone(),
                    what,
                    error: etcd_message(&e),
                });
            }
        }
    }
    // One endpoint: its error; several: all of them.
    if errors.len() == 1 {
        return Err(errors.remove(0));
    }
    Err(BackupError::Config(
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
    ))
}

fn tls_options(t: &TlsFiles) -> Result<TlsOptions, BackupError> {
    let read = |p: &PathBuf, what: &str| {
        std::fs::read(p).map_err(|e| {
            BackupError::Config(format!("reading the etcd {what} {}: {e}", p.display()))
        })
    };
    let mut o = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&t.cacert, "CA")?));
    match (&t.cert, &t.key) {
        (Some(c), Some(k)) => {
            o = o.identity(Identity::from_pem(
                read(c, "client certificate")?,
                read(k, "client key")?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(BackupError::Config(
                "--cert and --key go together".to_string(),
            ));
        }
    }
    Ok(o)
}

/// etcd-client's errors: the gRPC status' message, or the transport error with its causes.
pub(crate) fn etcd_message(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            let mut m = format!("{:?}: {}", s.code(), s.message());
            let mut src = std::error::Error::source(s);
            while let Some(c) = src {
                m.push_str(&format!(": {c}"));
                src = c.source();
            }
            m
        }
        other => {
            let mut m = other.to_string();
            let mut src = std::error::Error::source(other);
            while let Some(c) = src {
                let s = c.to_string();
                if !m.contains(&s) {
                    m.push_str(&format!(": {s}"));
                }
                src = c.source();
            }
            m
        }
    }
}

/// Stream the snapshot into a multipart upload while checking it. On any
/// failure the upload is aborted (nothing committed).
async fn stream_and_upload(
    client: &mut Client,
    endpoint: &str,
    store: &Store,
    object: &ObjectPath,
) -> Result<(Checked, Option<String>), BackupError> {
    let etcd_err = |what: &'static str, e: etcd_client::Error| BackupError::Etcd {
        endpoint: endpoint.to_string(),
        what,
        error: etcd_message(&e),
    };
    let mut stream = client
        .snapshot()
        .await
        .map_err(|e| etcd_err("starting the snapshot", e))?;
    let upload = store
        .inner
        .put_multipart(object)
        .await
        .map_err(|e| store_err(store, "starting the upload of", object, e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut check = SnapshotCheck::new();
    let mut storage_version = None;
    let streamed: Result<(), BackupError> = async {
        loop {
            let msg = stream.message().await.map_err(|e| BackupError::Etcd {
                endpoint: endpoint.to_string(),
                what: "reading the snapshot stream",
                error: format!("{} after {} bytes", etcd_message(&e), check.size()),
            })?;
            let Some(msg) = msg else { break };
            if storage_version.is_none() && !msg.version().is_empty() {
                storage_version = Some(msg.version().to_string());
            }
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|e| store_err(store, "uploading", object, e))?;
            check.update(msg.blob());
            writer.write(msg.blob());
        }
        Ok(())
    }
    .await;
    let checked = streamed.and_then(|()| {
        check.finish().map_err(|error| BackupError::Snapshot {
            endpoint: endpoint.to_string(),
            error,
        })
    });
    match checked {
        Ok(c) => {
            writer
                .finish()
                .await
                .map_err(|e| store_err(store, "completing the upload of", object, e))?;
            Ok((c, storage_version))
        }
        Err(e) => {
            if let Err(a) = writer.abort().await {
                warn!(object = %object, "aborting the upload: {}", redact(&a.to_string()));
            }
            Err(e)
        }
    }
}

/// Read the object back in full; its size and SHA-256 must be the stream's.
async fn read_back(store: &Store, object: &ObjectPath, want: &Checked) -> Result<(), BackupError> {
    let got = async {
        let r = store.inner.get(object).await?;
        let mut s = r.into_stream();
        let mut h = Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = s.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            h.update(&chunk);
        }
        Ok::<_, object_store::Error>((n, hex::encode(h.finalize())))
    }
    .await
    .map_err(|e| store_err(store, "reading back", object, e))?;
    if got.0 != want.size || got.1 != want.sha256 {
        if let Err(e) = store.inner.delete(object).await {
            warn!(object = %object, "deleting the mismatched object: {}", redact(&e.to_string()));
        }
        return Err(BackupError::ReadBack {
            store: store.display.clone(),
            object: object.to_string(),
            want_size: want.size,
            want: want.sha256.clone(),
            got_size: got.0,
            got: got.1,
        });
    }
    Ok(())
}

/// Keep the newest `keep` snapshots under the store's prefix (0: all); delete
/// older ones and their manifests. Returns the deleted object names.
pub async fn prune(store: &Store, keep: usize) -> Result<Vec<String>, BackupError> {
    if keep == 0 {
        return Ok(vec![]);
    }
    let list = store
        .inner
        .list_with_delimiter(Some(&store.prefix))
        .await
        .map_err(|e| store_err(store, "listing", &store.prefix, e))?;
    let mut snapshots: Vec<ObjectPath> = list
        .objects
        .into_iter()
        .map(|o| o.location)
        .filter(|p| {
            p.filename()
                .is_some_and(|f| f.starts_with(SNAPSHOT_PREFIX) && f.ends_with(SNAPSHOT_SUFFIX))
        })
        .collect();
    snapshots.sort_by(|a, b| b.as_ref().cmp(a.as_ref())); // newest first
    let mut deleted = vec![];
    for old in snapshots.into_iter().skip(keep) {
        let name = old.filename().unwrap_or_default();
        let stem = name.strip_suffix(SNAPSHOT_SUFFIX).unwrap_or(name);
        let manifest = store
            .prefix
            .clone()
            .join(format!("{stem}{MANIFEST_SUFFIX}"));
        for p in [old.clone(), manifest] {
            match store.inner.delete(&p).await {
                Ok(()) => deleted.push(p.to_string()),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_err(store, "deleting", &p, e)),
            }
        }
    }
    if !deleted.is_empty() {
        info!(store = %store.display, "retention (keep {keep}) deleted {}", deleted.join(", "));
    }
    Ok(deleted)
}

fn store_err(
    store: &Store,
    what: &'static str,
    object: &ObjectPath,
    e: object_store::Error,
) -> BackupError {
    BackupError::Store {
        store: store.display.clone(),
        what,
        object: object.to_string(),
        error: store_message(&e),
    }
}

/// object_store's error with its causes, on one line.
fn store_message(e: &object_store::Error) -> String {
    let mut m = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        let s = c.to_string();
        if !m.contains(&s) {
            m.push_str(&format!(": {s}"));
        }
        src = c.source();
    }
    m.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Environment variables whose values are secrets, whatever the store.
fn is_secret_var(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    let secretish = [
        "SECRET",
        "TOKEN",
        "PASSWORD",
        "ACCOUNT_KEY",
        "ACCESS_KEY",
        "SAS_KEY",
        "SERVICE_ACCOUNT_KEY",
    ];
    secretish.iter().any(|s| n.contains(s))
        && !n.ends_with("ACCESS_KEY_ID")
        && !n.ends_with("_FILE")
        && !n.ends_with("_PATH")
}

/// Replace every secret from the environment (and any URL credentials) in `s`.
pub fn redact(s: &str) -> String {
    let mut out = s.to_string();
    for (k, v) in std::env::vars() {
        if v.len() >= 6 && is_secret_var(&k) && out.contains(&v) {
            out = out.replace(&v, "[redacted]");
        }
    }
    backup_store::strip_url_credentials(&out)
}

/// `manual-<time>`: the operation id of a backup taken by hand.
pub fn manual_operation_id(now: DateTime<Utc>) -> String {
    format!("manual-{}", now.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// For the trait object in [`Store`].
pub type DynStore = Arc<dyn ObjectStore>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot as etcd sends it: `n` pages of data, then their SHA-256.
    fn snapshot(pages: usize) -> Vec<u8> {
        let mut d: Vec<u8> = (0..pages * 512).map(|i| (i * 7 % 251) as u8).collect();
        let h = Sha256::digest(&d);
        d.extend_from_slice(&h);
        d
    }

    #[test]
    fn a_complete_snapshot_passes_in_any_chunking() {
        let d = snapshot(100);
        let whole = hex::encode(Sha256::digest(&d));
        assert_eq!(
            check_snapshot(&d).unwrap(),
            Checked {
                size: d.len() as u64,
                sha256: whole.clone()
            }
        );
        for chunk in [1, 7, 31, 32, 33, 512, 32 * 1024] {
            let mut c = SnapshotCheck::new();
            d.chunks(chunk).for_each(|p| c.update(p));
            assert_eq!(c.finish().unwrap().sha256, whole, "chunk {chunk}");
        }
    }

    #[test]
    fn truncated_or_corrupt_snapshots_fail() {
        let d = snapshot(100);
        // Cut at a page boundary + 32: the size rule holds, the trailer does not.
        let cut = &d[..512 * 60 + 32];
        assert!(
            matches!(check_snapshot(cut), Err(SnapshotError::Hash { .. })),
            "{:?}",
            check_snapshot(cut)
        );
        // The trailer missing: a multiple of 512.
        assert_eq!(
            check_snapshot(&d[..512 * 100]),
            Err(SnapshotError::Size(512 * 100))
        );
        // Cut anywhere else.
        for n in [1, 100, 4096, 32 * 1024 + 5, d.len() - 1] {
            assert!(check_snapshot(&d[..n]).is_err(), "{n}");
        }
        assert_eq!(check_snapshot(&[]), Err(SnapshotError::TooShort(0)));
        // One flipped bit.
        let mut bad = d.clone();
        bad[1000] ^= 1;
        let e = check_snapshot(&bad).unwrap_err();
        assert!(e.to_string().contains("corrupt"), "{e}");
    }

    #[test]
    fn secrets_from_the_environment_are_redacted() {
        assert!(is_secret_var("AWS_SECRET_ACCESS_KEY"));
        assert!(is_secret_var("AWS_SESSION_TOKEN"));
        assert!(is_secret_var("AZURE_STORAGE_ACCOUNT_KEY"));
        assert!(!is_secret_var("AWS_ACCESS_KEY_ID"));
        assert!(!is_secret_var("AWS_REGION"));
        assert!(!is_secret_var("GOOGLE_SERVICE_ACCOUNT_PATH"));
    }

    #[test]
    fn the_report_is_a_backup_result_on_the_wire() {
        let r = BackupReport {
            result: BackupResult {
                operation_id: "op".into(),
                ok: true,
                size_bytes: 544,
                ..BackupResult::default()
            },
            manifest: Some("m".into()),
            pruned: vec!["old".into()],
            warnings: vec![],
        };
        let j = serde_json::to_string(&r).unwrap();
        let back: BackupResult = serde_json::from_str(&j).unwrap();
        assert_eq!(back, r.result);
        assert!(
            j.contains("\"operationId\":\"op\"") && j.contains("\"pruned\":[\"old\"]"),
            "{j}"
        );
    }
}
