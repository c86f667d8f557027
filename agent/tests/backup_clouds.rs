//! The etcd backup's `az://` and `gs://` stores against their emulators: Azurite (Microsoft's
//! Azure Storage emulator, `tests/harness/azurite.sh`) and fake-gcs-server
//! (`tests/harness/fake-gcs.sh`), each started by the test on a free port, in memory. The
//! snapshots come from a real etcd (the harness's binary) with data written.
//!
//! az:// runs the whole backup. gs:// cannot: fake-gcs-server refuses the XML uploads
//! object_store's GCS client sends (`PUT`, multipart), so the gs:// tests cover what the
//! backup does before (refusals) and after (read-back, listing, retention) the upload, on real
//! snapshots put into the bucket through GCS's JSON API. docs/testing.md has the details.
//!
//! When a tool is missing the tests say so and pass, unless `CUPCAKE_REQUIRE_AZURITE=1` /
//! `CUPCAKE_REQUIRE_FAKE_GCS=1` (tests/run-all.sh sets both) makes that a failure.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cupcake_agent::backup::{self, BackupSettings, EtcdTarget, Manifest, check_snapshot};
use cupcake_agent::backup_store;
use cupcake_api::protocol::BackupResult;
use futures::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use sha2::{Digest as _, Sha256};

// ---- tools and processes ----------------------------------------------------------------------

fn home() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
}

fn cache() -> PathBuf {
    std::env::var("CUPCAKE_HARNESS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| home().join(".cache/cupcake-harness"))
}

/// A tool, or `None` with a note (a failure when `require` is set to 1).
fn tool(what: &str, path: Option<PathBuf>, require: &str, install: &str) -> Option<PathBuf> {
    if let Some(p) = path.filter(|p| p.is_file()) {
        return Some(p);
    }
    let msg = format!("{what} missing: run {install}");
    if std::env::var(require).is_ok_and(|v| v == "1") {
        panic!("{msg} ({require}=1)");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// The harness's etcd: PATH first, then the harness cache.
fn etcd_bin() -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("etcd"))
            .find(|f| f.is_file())
    });
    let version = std::env::var("CUPCAKE_K8S_VERSION").unwrap_or_else(|_| "v1.35.4".into());
    in_path.or_else(|| Some(cache().join(version).join("bin/etcd")))
}

fn azurite_bin() -> Option<PathBuf> {
    let v = std::env::var("CUPCAKE_AZURITE_VERSION").unwrap_or_else(|_| "3.37.0".into());
    Some(cache().join(format!("azurite-{v}/node_modules/.bin/azurite-blob")))
}

fn fake_gcs_bin() -> Option<PathBuf> {
    let v = std::env::var("CUPCAKE_FAKE_GCS_VERSION").unwrap_or_else(|_| "0.1.1".into());
    Some(cache().join(format!("fake-gcs-{v}/bin/fake-gcs-server")))
}

/// etcd and the emulator of one store, or `None` when one is missing and not required.
fn tools(store: Store) -> Option<(PathBuf, PathBuf)> {
    let (emulator, require, install) = match store {
        Store::Azure => (
            azurite_bin(),
            "CUPCAKE_REQUIRE_AZURITE",
            "tests/harness/azurite.sh",
        ),
        Store::Gcs => (
            fake_gcs_bin(),
            "CUPCAKE_REQUIRE_FAKE_GCS",
            "tests/harness/fake-gcs.sh",
        ),
    };
    let etcd = tool("etcd", etcd_bin(), require, "tests/harness/build.sh")?;
    let emulator = tool(store.emulator(), emulator, require, install)?;
    Some((etcd, emulator))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    Azure,
    Gcs,
}

impl Store {
    fn emulator(self) -> &'static str {
        match self {
            Store::Azure => "Azurite",
            Store::Gcs => "fake-gcs-server",
        }
    }
}

/// A child process killed (by its own handle) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A log file for a child's stdout and stderr.
fn log_to(path: &Path) -> (Stdio, Stdio) {
    let f = std::fs::File::create(path).unwrap();
    (f.try_clone().unwrap().into(), f.into())
}

fn wait_port(what: &str, port: u16, proc: &mut Proc, log: &Path) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = proc.0.try_wait() {
            panic!(
                "{what} exited before listening on {port}: {status}\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} not listening on {port} after 60s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---- etcd with data ------------------------------------------------------------------------------

struct Etcd {
    _proc: Proc,
    endpoint: String,
}

/// A one-member etcd on free ports (plain http: TLS is covered by agent/tests/backup.rs).
fn start_etcd(bin: &Path, data: &Path) -> Etcd {
    let (client, peer) = (free_port(), free_port());
    let endpoint = format!("http://127.0.0.1:{client}");
    let log = data.with_extension("log");
    let (out, err) = log_to(&log);
    let mut proc = Proc(
        Command::new(bin)
            .args([
                "--name=t",
                &format!("--data-dir={}", data.display()),
                &format!("--listen-client-urls={endpoint}"),
                &format!("--advertise-client-urls={endpoint}"),
                &format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                &format!("--initial-cluster=t=http://127.0.0.1:{peer}"),
                "--unsafe-no-fsync=true",
                "--log-level=error",
            ])
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("etcd starts"),
    );
    wait_port("etcd", client, &mut proc, &log);
    Etcd {
        _proc: proc,
        endpoint,
    }
}

/// Write `n` keys of `size` bytes each; returns etcd's revision after.
async fn fill(e: &Etcd, n: usize, size: usize) -> i64 {
    let start = Instant::now();
    let mut c = loop {
        if let Ok(mut c) = etcd_client::Client::connect([e.endpoint.as_str()], None).await
            && c.status().await.is_ok()
        {
            break c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "etcd at {} not answering",
            e.endpoint
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut rev = 0;
    for i in 0..n {
        let v: Vec<u8> = (0..size).map(|j| ((i * 31 + j * 7) % 251) as u8).collect();
        rev = c
            .put(format!("/registry/test/key-{i:04}"), v, None)
            .await
            .expect("put")
            .header()
            .map(|h| h.revision())
            .unwrap_or_default();
    }
    rev
}

// ---- Azurite ---------------------------------------------------------------------------------------

/// The test's storage account (not Azurite's well-known devstoreaccount1, so a wrong key is
/// really wrong and a printed key would really be this one).
const AZ_ACCOUNT: &str = "cupcakebackups";
/// base64 of 64 bytes, as Azure account keys are.
const AZ_KEY: &str =
    "Y3VwY2FrZS10ZXN0LWFjY291bnQta2V5LW5ldmVyLXByaW50ZWQtMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODk=";

/// Azurite's and the Azure Storage Emulator's well-known account and key (public), which
/// object_store uses with `AZURE_STORAGE_USE_EMULATOR=true`.
const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
const EMULATOR_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

struct Azurite {
    _proc: Proc,
    /// `http://127.0.0.1:PORT`: the blob service.
    root: String,
    /// `http://127.0.0.1:PORT/<AZ_ACCOUNT>`: the account's blob endpoint (path style).
    endpoint: String,
    _dir: tempfile::TempDir,
}

/// Azurite's blob service on a free port, in memory, with `AZ_ACCOUNT` and `containers` in
/// it, and the well-known `devstoreaccount1` (empty).
fn start_azurite(bin: &Path, containers: &[&str]) -> Azurite {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("azurite.log");
    let (out, err) = log_to(&log);
    let mut proc = Proc(
        Command::new(bin)
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--loose",
                "--silent",
                "--disableTelemetry",
            ])
            .env(
                "AZURITE_ACCOUNTS",
                format!("{AZ_ACCOUNT}:{AZ_KEY};{EMULATOR_ACCOUNT}:{EMULATOR_KEY}"),
            )
            .current_dir(dir.path())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("azurite-blob starts"),
    );
    wait_port("Azurite", port, &mut proc, &log);
    let root = format!("http://127.0.0.1:{port}");
    let endpoint = format!("{root}/{AZ_ACCOUNT}");
    for c in containers {
        create_container(&endpoint, AZ_ACCOUNT, AZ_KEY, c);
    }
    Azurite {
        _proc: proc,
        root,
        endpoint,
        _dir: dir,
    }
}

/// `PUT <endpoint>/<container>?restype=container`, signed with the account key (Shared Key),
/// by node (Azurite's own runtime).
fn create_container(endpoint: &str, account: &str, key: &str, container: &str) {
    let script = r#"
const crypto = require('crypto'), http = require('http');
const [endpoint, account, key, container] = process.argv.slice(1);
const url = new URL(`${endpoint}/${container}?restype=container`);
const date = new Date().toUTCString(), version = '2021-08-06';
const toSign = ['PUT', '', '', '', '', '', '', '', '', '', '', '',
  `x-ms-date:${date}\nx-ms-version:${version}`,
  `/${account}${url.pathname}\nrestype:container`].join('\n');
const sig = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(toSign, 'utf8').digest('base64');
const req = http.request(url, { method: 'PUT', headers: {
  'x-ms-date': date, 'x-ms-version': version, 'Content-Length': 0,
  Authorization: `SharedKey ${account}:${sig}` } }, (res) => {
  let body = ''; res.on('data', (d) => body += d);
  res.on('end', () => { if (res.statusCode !== 201) { console.error(res.statusCode, body); process.exit(1); } });
});
req.on('error', (e) => { console.error(String(e)); process.exit(1); });
req.end();
"#;
    run(Command::new("node").args(["-e", script, endpoint, account, key, container]));
}

/// An independent client of the container (not the backup's `backup_store::open`).
fn azure_client(az: &Azurite, container: &str) -> Arc<dyn ObjectStore> {
    azure_client_as(&az.endpoint, AZ_ACCOUNT, AZ_KEY, container)
}

fn azure_client_as(
    endpoint: &str,
    account: &str,
    key: &str,
    container: &str,
) -> Arc<dyn ObjectStore> {
    Arc::new(
        object_store::azure::MicrosoftAzureBuilder::new()
            .with_endpoint(endpoint.to_string())
            .with_allow_http(true)
            .with_account(account)
            .with_access_key(key)
            .with_container_name(container)
            .build()
            .unwrap(),
    )
}

// ---- fake-gcs-server -----------------------------------------------------------------------------

struct FakeGcs {
    _proc: Proc,
    /// `http://127.0.0.1:PORT`: what `gcs_base_url` in the key file points object_store at.
    base_url: String,
    dir: tempfile::TempDir,
}

/// fake-gcs-server on a free port, in memory, plain http, with `buckets` (JSON API).
fn start_fake_gcs(bin: &Path, buckets: &[&str]) -> FakeGcs {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("fake-gcs.log");
    let (out, err) = log_to(&log);
    let mut proc = Proc(
        Command::new(bin)
            .args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                &port.to_string(),
                "-backend",
                "memory",
                "-public-host",
                &format!("127.0.0.1:{port}"),
                "-log-level",
                "warn",
            ])
            .current_dir(dir.path())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("fake-gcs-server starts"),
    );
    wait_port("fake-gcs-server", port, &mut proc, &log);
    let base_url = format!("http://127.0.0.1:{port}");
    for b in buckets {
        run(Command::new("curl").args([
            "-sS",
            "--fail-with-body",
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            &format!(r#"{{"name":"{b}"}}"#),
            &format!("{base_url}/storage/v1/b"),
        ]));
    }
    FakeGcs {
        _proc: proc,
        base_url,
        dir,
    }
}

/// Upload `file` as `name` through GCS's JSON API (`uploadType=media`), which fake-gcs-server
/// accepts (object_store's XML uploads it does not: see tests/harness/fake-gcs.sh).
fn gcs_seed(gcs: &FakeGcs, bucket: &str, name: &str, file: &Path) {
    run(Command::new("curl").args([
        "-sS",
        "--fail-with-body",
        "-X",
        "POST",
        "-H",
        "content-type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!(
            "{}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={}",
            gcs.base_url,
            name.replace('/', "%2F")
        ),
    ]));
}

/// A service-account key file pointing object_store at the emulator without OAuth (the way
/// object_store's own tests reach fake-gcs-server: `gcs_base_url`, `disable_oauth`).
fn gcs_key_file(gcs: &FakeGcs) -> PathBuf {
    let p = gcs.dir.path().join("service-account.json");
    std::fs::write(
        &p,
        serde_json::json!({
            "gcs_base_url": gcs.base_url,
            "disable_oauth": true,
            "client_email": "backup@cupcake-test.iam.gserviceaccount.com",
            "private_key": "",
            "private_key_id": "",
        })
        .to_string(),
    )
    .unwrap();
    p
}

// ---- the agent ---------------------------------------------------------------------------------------

/// `cupcake-agent backup …` with exactly these store variables (none inherited).
fn agent_backup(args: &[String], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cupcake-agent"));
    cmd.arg("backup")
        .args(args)
        .env("KUBECONFIG", "/nonexistent/kubeconfig");
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_")
            || k.starts_with("AZURE_")
            || k.starts_with("AZURITE_")
            || k.starts_with("GOOGLE_")
            || k == "SERVICE_ACCOUNT"
        {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("cupcake-agent runs")
}

fn backup_args(etcd: &Etcd, store: &str, keep: usize) -> Vec<String> {
    [
        "--endpoints",
        &etcd.endpoint,
        "--store",
        store,
        "--cluster",
        "prod-eu",
        "--keep",
        &keep.to_string(),
        "--node-name",
        "cp-1",
        "-o",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The failed result of a backup that must fail: exit 1, `ok: false`, its message.
fn failed(what: &str, o: &Output) -> String {
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{what}: {out}\n{err}");
    let r: BackupResult =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: {e}: {out}\n{err}"));
    assert!(!r.ok, "{what}");
    r.message.unwrap_or_default()
}

/// One refusal: what, the store variables, the store URL, what the message must contain.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, Vec<&'a str>);

fn assert_not_printed(what: &str, o: &Output, secrets: &[&str]) {
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    for s in secrets {
        assert!(
            !out.contains(s) && !err.contains(s),
            "{what}: a secret was printed:\n{out}\n{err}"
        );
    }
}

async fn names(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = store
        .list(Some(&ObjectPath::from(prefix)))
        .map(|m| m.unwrap().location.to_string())
        .collect()
        .await;
    v.sort();
    v
}

async fn download(store: &dyn ObjectStore, name: &str) -> Vec<u8> {
    store
        .get(&ObjectPath::from(name))
        .await
        .unwrap_or_else(|e| panic!("downloading {name}: {e}"))
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

fn manifest_of(snapshot: &str) -> String {
    snapshot.replace(".db", ".manifest.json")
}

// ---- Azure -----------------------------------------------------------------------------------------

/// az:// through the CLI against Azurite: a 12 MiB snapshot (two blocks of the block-blob
/// upload), read back by the backup and again here, its manifest, and retention (keep 2 of 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_backup_uploads_reads_back_and_keeps_n() {
    let Some((etcd_bin, az_bin)) = tools(Store::Azure) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd(&etcd_bin, &dir.path().join("data"));
    let rev = fill(&etcd, 96, 128 * 1024).await;
    let az = start_azurite(&az_bin, &["backups"]);
    let env = [
        ("AZURE_STORAGE_ACCOUNT_NAME", AZ_ACCOUNT),
        ("AZURE_STORAGE_ACCOUNT_KEY", AZ_KEY),
        ("AZURE_STORAGE_ENDPOINT", az.endpoint.as_str()),
    ];
    let mut results: Vec<BackupResult> = vec![];
    let mut last_pruned = vec![];
    for _ in 0..3 {
        let o = agent_backup(&backup_args(&etcd, "az://backups/etcd", 2), &env);
        let (out, err) = (text(&o.stdout), text(&o.stderr));
        assert!(o.status.success(), "{out}\n{err}");
        assert_not_printed("az backup", &o, &[AZ_KEY]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        last_pruned = v["pruned"].as_array().cloned().unwrap_or_default();
        results.push(serde_json::from_value(v).unwrap());
    }
    let r = results.last().unwrap().clone();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.revision, Some(rev));
    assert!(r.size_bytes > 12 * 1024 * 1024, "{}", r.size_bytes);
    let object = r.etcd_snapshot.clone().unwrap();
    assert!(
        object.starts_with("etcd/prod-eu/etcd-snapshot-") && object.ends_with(".db"),
        "{object}"
    );
    assert_eq!(
        r.location.as_deref(),
        Some(format!("az://backups/{object}").as_str())
    );

    // Retention: the newest two snapshots with their manifests; the first one pruned.
    let store = azure_client(&az, "backups");
    let mut want: Vec<String> = results[1..]
        .iter()
        .flat_map(|r| {
            let s = r.etcd_snapshot.clone().unwrap();
            [manifest_of(&s), s]
        })
        .collect();
    want.sort();
    assert_eq!(names(store.as_ref(), "etcd/prod-eu").await, want);
    let first = results[0].etcd_snapshot.clone().unwrap();
    assert!(
        last_pruned.iter().any(|p| p == &first)
            && last_pruned.iter().any(|p| p == &manifest_of(&first)),
        "{last_pruned:?}"
    );

    // What a restore downloads: the bytes etcd sent, as the manifest describes them.
    let bytes = download(store.as_ref(), &object).await;
    let manifest: Manifest =
        serde_json::from_slice(&download(store.as_ref(), &manifest_of(&object)).await).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    assert_eq!(manifest.sha256, sha);
    assert_eq!(r.sha256.as_deref(), Some(sha.as_str()));
    assert_eq!(manifest.size_bytes, bytes.len() as u64);
    assert_eq!(manifest.snapshot, object);
    assert_eq!(manifest.revision, rev);
    assert_eq!(manifest.node, "cp-1");
    assert_eq!(manifest.endpoint, etcd.endpoint);
    check_snapshot(&bytes).expect("the downloaded object is a complete etcd snapshot");
}

/// az:// refusals: a wrong account key, a container that does not exist, no account — each a
/// failed result naming the store (and the object once one was being written), exit 1, and
/// neither key printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_refusals_name_the_store_and_never_print_the_key() {
    let Some((etcd_bin, az_bin)) = tools(Store::Azure) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd(&etcd_bin, &dir.path().join("data"));
    fill(&etcd, 10, 1024).await;
    let az = start_azurite(&az_bin, &["backups"]);
    // A well-formed key of the right length that is not the account's.
    let wrong =
        "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXkxMjM=";
    let endpoint = az.endpoint.as_str();
    let cases: [Case; 3] = [
        (
            "wrong key",
            vec![
                ("AZURE_STORAGE_ACCOUNT_NAME", AZ_ACCOUNT),
                ("AZURE_STORAGE_ACCOUNT_KEY", wrong),
                ("AZURE_STORAGE_ENDPOINT", endpoint),
            ],
            "az://backups/x",
            vec!["403", "AuthorizationFailure", "etcd-snapshot-"],
        ),
        (
            "missing container",
            vec![
                ("AZURE_STORAGE_ACCOUNT_NAME", AZ_ACCOUNT),
                ("AZURE_STORAGE_ACCOUNT_KEY", AZ_KEY),
                ("AZURE_STORAGE_ENDPOINT", endpoint),
            ],
            "az://no-such-container/x",
            vec!["404", "ContainerNotFound", "etcd-snapshot-"],
        ),
        (
            "no account",
            vec![
                ("AZURE_STORAGE_ACCOUNT_KEY", AZ_KEY),
                ("AZURE_STORAGE_ENDPOINT", endpoint),
            ],
            "az://backups/x",
            vec![
                "Account must be specified",
                "variables set: AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_ENDPOINT;",
                "AZURE_STORAGE_ACCOUNT_NAME",
            ],
        ),
    ];
    for (what, env, url, reasons) in cases {
        let o = agent_backup(&backup_args(&etcd, url, 2), &env);
        let m = failed(what, &o);
        assert!(m.contains(&format!("store {url}")), "{what}: {m}");
        for r in reasons {
            assert!(m.contains(r), "{what}: {r:?} not in {m}");
        }
        assert_not_printed(what, &o, &[AZ_KEY, wrong]);
    }
    // Nothing was left in the container by the refused attempts.
    assert_eq!(
        names(azure_client(&az, "backups").as_ref(), "").await,
        Vec::<String>::new()
    );
}

/// `AZURE_STORAGE_USE_EMULATOR=true`, object_store's Azurite mode (the well-known account and
/// key, `AZURITE_BLOB_STORAGE_URL`), works for the backup as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn az_emulator_mode_reaches_azurite() {
    let Some((etcd_bin, az_bin)) = tools(Store::Azure) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd(&etcd_bin, &dir.path().join("data"));
    let rev = fill(&etcd, 10, 4096).await;
    let az = start_azurite(&az_bin, &[]);
    let emu = format!("{}/{EMULATOR_ACCOUNT}", az.root);
    create_container(&emu, EMULATOR_ACCOUNT, EMULATOR_KEY, "emu");
    let env = [
        ("AZURE_STORAGE_USE_EMULATOR", "true"),
        ("AZURITE_BLOB_STORAGE_URL", az.root.as_str()),
    ];
    let o = agent_backup(&backup_args(&etcd, "az://emu/etcd", 2), &env);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let r: BackupResult = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r.revision, Some(rev));
    let object = r.etcd_snapshot.unwrap();
    let bytes = download(
        azure_client_as(&emu, EMULATOR_ACCOUNT, EMULATOR_KEY, "emu").as_ref(),
        &object,
    )
    .await;
    assert_eq!(
        r.sha256.as_deref(),
        Some(hex::encode(Sha256::digest(&bytes)).as_str())
    );
}

// ---- GCS -------------------------------------------------------------------------------------------

/// gs:// reading, listing and retention against fake-gcs-server, on real snapshots: three
/// backups of a real etcd (taken to a file:// store, then put into the bucket through GCS's
/// JSON API, since fake-gcs-server refuses object_store's XML uploads) are read back through
/// object_store's GCS client with their manifests' size and SHA-256, and retention keeps 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gs_snapshots_read_back_and_retention_keeps_n() {
    let Some((etcd_bin, gcs_bin)) = tools(Store::Gcs) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd(&etcd_bin, &dir.path().join("data"));
    let rev = fill(&etcd, 40, 64 * 1024).await;
    let local = dir.path().join("local");
    let settings = BackupSettings {
        etcd: EtcdTarget {
            endpoints: vec![etcd.endpoint.clone()],
            tls: None,
        },
        store: format!("file://{}", local.display()),
        cluster: Some("prod-eu".into()),
        keep: 0,
        node: "cp-1".into(),
    };
    let gcs = start_fake_gcs(&gcs_bin, &["backups"]);
    let mut snapshots = vec![];
    for i in 0..3 {
        let r = backup::run(&settings, &format!("op-{i}")).await;
        assert!(r.result.ok, "{:?}", r.result);
        let name = r.result.etcd_snapshot.unwrap();
        for n in [name.clone(), manifest_of(&name)] {
            gcs_seed(&gcs, "backups", &format!("etcd/{n}"), &local.join(&n));
        }
        snapshots.push(format!("etcd/{name}"));
    }
    let key = gcs_key_file(&gcs);
    let client: Arc<dyn ObjectStore> = Arc::new(
        object_store::gcp::GoogleCloudStorageBuilder::new()
            .with_service_account_path(key.display().to_string())
            .with_bucket_name("backups")
            .build()
            .unwrap(),
    );
    for s in &snapshots {
        let bytes = download(client.as_ref(), s).await;
        let m: Manifest =
            serde_json::from_slice(&download(client.as_ref(), &manifest_of(s)).await).unwrap();
        assert_eq!(m.sha256, hex::encode(Sha256::digest(&bytes)), "{s}");
        assert_eq!(m.size_bytes, bytes.len() as u64, "{s}");
        assert_eq!(m.revision, rev, "{s}");
        check_snapshot(&bytes).unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    let store = backup_store::Store::new(
        client.clone(),
        ObjectPath::from("etcd/prod-eu"),
        "gs://backups/etcd".into(),
        "gs://backups".into(),
    );
    assert_eq!(
        backup::prune(&store, 0).await.unwrap(),
        Vec::<String>::new()
    );
    let mut pruned = backup::prune(&store, 2).await.unwrap();
    pruned.sort();
    let mut want_pruned = vec![manifest_of(&snapshots[0]), snapshots[0].clone()];
    want_pruned.sort();
    assert_eq!(pruned, want_pruned);
    let mut want: Vec<String> = snapshots[1..]
        .iter()
        .flat_map(|s| [manifest_of(s), s.clone()])
        .collect();
    want.sort();
    assert_eq!(names(client.as_ref(), "etcd/prod-eu").await, want);
}

/// gs:// refusals through the CLI: a bucket that does not exist (fake-gcs-server answers 404),
/// a service-account key that is not a key, a key file that is not there — each a failed
/// result naming the store, exit 1, no key material printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gs_refusals_name_the_store_and_never_print_the_key() {
    let Some((etcd_bin, gcs_bin)) = tools(Store::Gcs) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd(&etcd_bin, &dir.path().join("data"));
    fill(&etcd, 10, 1024).await;
    let gcs = start_fake_gcs(&gcs_bin, &["backups"]);
    let key_file = gcs_key_file(&gcs);
    let key_path = key_file.display().to_string();
    let material = "bm90LWEtcmVhbC1rZXktYnV0LXNlY3JldC1tYXRlcmlhbC0wMTIzNDU2Nzg5";
    let bad_key = serde_json::json!({
        "gcs_base_url": gcs.base_url,
        "client_email": "backup@cupcake-test.iam.gserviceaccount.com",
        "private_key_id": "0123456789abcdef",
        "private_key": format!("-----BEGIN PRIVATE KEY-----\n{material}\n-----END PRIVATE KEY-----\n"),
    })
    .to_string();
    let missing = dir.path().join("no-such-key.json").display().to_string();
    let cases: [Case; 3] = [
        (
            "missing bucket",
            vec![("GOOGLE_SERVICE_ACCOUNT", key_path.as_str())],
            "gs://no-such-bucket/x",
            vec!["404", "etcd-snapshot-"],
        ),
        (
            "not a key",
            vec![("GOOGLE_SERVICE_ACCOUNT_KEY", bad_key.as_str())],
            "gs://backups/x",
            vec![
                "Invalid RSA key",
                "variables set: GOOGLE_SERVICE_ACCOUNT_KEY;",
            ],
        ),
        (
            "missing key file",
            vec![("GOOGLE_SERVICE_ACCOUNT", missing.as_str())],
            "gs://backups/x",
            vec![missing.as_str()],
        ),
    ];
    for (what, env, url, reasons) in cases {
        let o = agent_backup(&backup_args(&etcd, url, 2), &env);
        let m = failed(what, &o);
        assert!(m.contains(&format!("store {url}")), "{what}: {m}");
        for r in reasons {
            assert!(m.contains(r), "{what}: {r:?} not in {m}");
        }
        assert_not_printed(what, &o, &[material]);
    }
}
