//! The etcd backup against real servers: a private etcd (the harness's binary,
//! with client TLS), moto's S3 server (pinned, `tests/harness/moto-venv.sh`), and
//! `etcdutl` at the same etcd version (`tests/harness/build-etcdutl.sh`) to check
//! the uploaded snapshot the way a restore would.
//!
//! Tools are looked up in PATH, then in the harness cache and the moto venv;
//! when one is missing the tests say so and pass, unless
//! `CUPCAKE_REQUIRE_BACKUP_TOOLS=1` (tests/run-all.sh sets it) makes that a failure.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cupcake_agent::backup::{
    self, BackupSettings, EtcdTarget, Manifest, SnapshotError, TlsFiles, check_snapshot,
};
use cupcake_agent::backup_store;
use cupcake_api::protocol::BackupResult;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt as _, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use sha2::{Digest as _, Sha256};

// ---- tools and processes ----------------------------------------------------------------------

fn home() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
}

/// A harness binary: PATH first, then the harness cache.
fn harness_tool(name: &str) -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    });
    in_path.or_else(|| {
        let cache = std::env::var("CUPCAKE_HARNESS_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| home().join(".cache/cupcake-harness"));
        let version = std::env::var("CUPCAKE_K8S_VERSION").unwrap_or_else(|_| "v1.35.4".into());
        Some(cache.join(version).join("bin").join(name)).filter(|f| f.is_file())
    })
}

fn moto_bin() -> Option<PathBuf> {
    let venv = std::env::var("CUPCAKE_MOTO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| home().join(".cache/cupcake-moto/venv"));
    Some(venv.join("bin/moto_server")).filter(|f| f.is_file())
}

struct Tools {
    etcd: PathBuf,
    etcdutl: PathBuf,
    moto: PathBuf,
}

/// The tools, or `None` (with a note) when one is missing and not required.
fn tools() -> Option<Tools> {
    let found = (harness_tool("etcd"), harness_tool("etcdutl"), moto_bin());
    match found {
        (Some(etcd), Some(etcdutl), Some(moto)) => Some(Tools {
            etcd,
            etcdutl,
            moto,
        }),
        missing => {
            let msg = format!(
                "backup tools missing (etcd, etcdutl, moto_server): {missing:?}; run tests/harness/build.sh, tests/harness/build-etcdutl.sh and tests/harness/moto-venv.sh"
            );
            if std::env::var("CUPCAKE_REQUIRE_BACKUP_TOOLS").is_ok_and(|v| v == "1") {
                panic!("{msg}");
            }
            eprintln!("SKIPPED: {msg}");
            None
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

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < timeout,
            "{what} not ready after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// etcd's CA, a server certificate for 127.0.0.1 and a client certificate (openssl CLI).
struct Pki {
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

fn pki(dir: &Path) -> Pki {
    let p = |n: &str| dir.join(n);
    let ossl = |args: &[&str]| {
        run(Command::new("openssl").args(args).current_dir(dir));
    };
    ossl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=etcd-ca",
    ]);
    std::fs::write(
        p("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    std::fs::write(p("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, cn) in [
        ("server", "etcd"),
        ("client", "kube-etcd-healthcheck-client"),
    ] {
        ossl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ]);
        ossl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.crt"),
            "-days",
            "1",
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }
    Pki {
        ca: p("ca.crt"),
        server: (p("server.crt"), p("server.key")),
        client: (p("client.crt"), p("client.key")),
    }
}

struct Etcd {
    _proc: Proc,
    endpoint: String,
    tls: Option<TlsFiles>,
}

fn start_etcd(tools: &Tools, data: &Path, pki: Option<&Pki>) -> Etcd {
    let (client, peer) = (free_port(), free_port());
    let scheme = if pki.is_some() { "https" } else { "http" };
    let endpoint = format!("{scheme}://127.0.0.1:{client}");
    let mut cmd = Command::new(&tools.etcd);
    cmd.args([
        "--name=t",
        &format!("--data-dir={}", data.display()),
        &format!("--listen-client-urls={endpoint}"),
        &format!("--advertise-client-urls={endpoint}"),
        &format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
        &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
        &format!("--initial-cluster=t=http://127.0.0.1:{peer}"),
        "--unsafe-no-fsync=true",
        "--log-level=error",
    ]);
    if let Some(p) = pki {
        cmd.arg(format!("--cert-file={}", p.server.0.display()))
            .arg(format!("--key-file={}", p.server.1.display()))
            .arg(format!("--trusted-ca-file={}", p.ca.display()))
            .arg("--client-cert-auth=true");
    }
    let proc = Proc(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts"),
    );
    wait_for("etcd", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", client)).is_ok()
    });
    Etcd {
        _proc: proc,
        endpoint,
        tls: pki.map(|p| TlsFiles {
            cacert: p.ca.clone(),
            cert: Some(p.client.0.clone()),
            key: Some(p.client.1.clone()),
        }),
    }
}

async fn etcd_client(e: &Etcd) -> etcd_client::Client {
    let mut o = etcd_client::ConnectOptions::new();
    if let Some(t) = &e.tls {
        o = o.with_tls(
            etcd_client::TlsOptions::new()
                .ca_certificate(etcd_client::Certificate::from_pem(
                    std::fs::read(&t.cacert).unwrap(),
                ))
                .identity(etcd_client::Identity::from_pem(
                    std::fs::read(t.cert.as_ref().unwrap()).unwrap(),
                    std::fs::read(t.key.as_ref().unwrap()).unwrap(),
                )),
        );
    }
    let start = Instant::now();
    loop {
        if let Ok(mut c) =
            etcd_client::Client::connect([e.endpoint.as_str()], Some(o.clone())).await
            && c.status().await.is_ok()
        {
            return c;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "etcd at {} not answering",
            e.endpoint
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Write `n` keys of `size` bytes each; returns etcd's revision after.
async fn fill(e: &Etcd, n: usize, size: usize) -> i64 {
    let mut c = etcd_client(e).await;
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

struct Moto {
    _proc: Proc,
    endpoint: String,
}

/// moto's S3 on a free port, with `bucket` created. With `auth`, IAM is enforced
/// afterwards and the keys of a `writer` (s3:* on every bucket) and a `reader` (read-only) user are returned.
fn start_moto(tools: &Tools, bucket: &str, auth: bool) -> (Moto, Option<serde_json::Value>) {
    let port = free_port();
    let proc = Proc(
        Command::new(&tools.moto)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts"),
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_for("moto", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let python = tools.moto.with_file_name("python");
    let script = r#"
import json, sys, urllib.request, boto3
ep, bucket, auth = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
kw = dict(endpoint_url=ep, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup-secret")
boto3.client("s3", **kw).create_bucket(Bucket=bucket)
keys = {}
if auth:
    iam = boto3.client("iam", **kw)
    own = [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    for user, actions, res in [("writer", ["s3:*"], ["*"]), ("reader", ["s3:GetObject", "s3:ListBucket"], own)]:
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": res}]}))
        k = iam.create_access_key(UserName=user)["AccessKey"]
        keys[user] = {"id": k["AccessKeyId"], "secret": k["SecretAccessKey"]}
    # From now on every request is authenticated and authorized.
    urllib.request.urlopen(urllib.request.Request(ep + "/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"})).read()
print(json.dumps(keys))
"#;
    let o = run(Command::new(python).args([
        "-c",
        script,
        &endpoint,
        bucket,
        if auth { "1" } else { "0" },
    ]));
    let keys: serde_json::Value = serde_json::from_slice(&o.stdout).expect("setup prints the keys");
    (
        Moto {
            _proc: proc,
            endpoint,
        },
        auth.then_some(keys),
    )
}

/// `cupcake-agent backup …` with exactly these AWS variables.
fn agent_backup(args: &[&str], aws: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cupcake-agent"));
    cmd.arg("backup")
        .args(args)
        .env("KUBECONFIG", "/nonexistent/kubeconfig");
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("AZURE_") || k.starts_with("GOOGLE_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(aws.iter().copied());
    cmd.output().expect("cupcake-agent runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s3(endpoint: &str, bucket: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test-secret")
            .build()
            .unwrap(),
    )
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

fn etcdutl_status(tools: &Tools, file: &Path) -> serde_json::Value {
    let o = run(Command::new(&tools.etcdutl)
        .args(["snapshot", "status", "-w", "json"])
        .arg(file));
    serde_json::from_slice(&o.stdout).expect("etcdutl status prints json")
}

// ---- the tests ----------------------------------------------------------------------------------

/// The whole path over TLS and S3 through the CLI: multipart upload of a >8 MiB snapshot,
/// the manifest, retention, and the restore of the runbook (download, check the manifest's
/// hash, `etcdutl snapshot restore`, start etcd on it, the data is there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_backup_over_tls_restores_with_etcdutl_and_keeps_n() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let etcd = start_etcd(&tools, &dir.path().join("data"), Some(&pki));
    // 12 MiB of values: more than one 8 MiB part.
    let rev = fill(&etcd, 96, 128 * 1024).await;
    let (moto, _) = start_moto(&tools, "backups", false);
    let secret = "s3cr3t-never-printed-0123456789";
    let aws = [
        ("AWS_ACCESS_KEY_ID", "AKIATESTTESTTEST"),
        ("AWS_SECRET_ACCESS_KEY", secret),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
    ];
    let tls = etcd.tls.clone().unwrap();
    let args = |keep: &'static str| {
        vec![
            "--endpoints".to_string(),
            etcd.endpoint.clone(),
            "--cacert".into(),
            tls.cacert.display().to_string(),
            "--cert".into(),
            tls.cert.as_ref().unwrap().display().to_string(),
            "--key".into(),
            tls.key.as_ref().unwrap().display().to_string(),
            "--store".into(),
            "s3://backups/etcd".into(),
            "--cluster".into(),
            "prod-eu".into(),
            "--keep".into(),
            keep.into(),
            "--node-name".into(),
            "cp-1".into(),
            "-o".into(),
            "json".into(),
        ]
    };
    let mut results: Vec<BackupResult> = vec![];
    let mut last_pruned = vec![];
    for _ in 0..3 {
        let a = args("2");
        let o = agent_backup(&a.iter().map(String::as_str).collect::<Vec<_>>(), &aws);
        let (out, err) = (text(&o.stdout), text(&o.stderr));
        assert!(o.status.success(), "{out}\n{err}");
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "secret printed:\n{out}\n{err}"
        );
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
        Some(format!("s3://backups/{object}").as_str())
    );

    // Retention: the newest two snapshots and their manifests, the first one pruned.
    let store = s3(&moto.endpoint, "backups");
    let listed = names(store.as_ref(), "etcd/prod-eu").await;
    let first = results[0].etcd_snapshot.clone().unwrap();
    let mut want: Vec<String> = results[1..]
        .iter()
        .flat_map(|r| {
            let s = r.etcd_snapshot.clone().unwrap();
            let m = s.replace(".db", ".manifest.json");
            [s, m]
        })
        .collect();
    want.sort();
    assert_eq!(listed, want);
    assert!(last_pruned.iter().any(|p| p == &first), "{last_pruned:?}");

    // The runbook's restore: download the snapshot and its manifest, check the hash.
    let bytes = store
        .get(&ObjectPath::from(object.as_str()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let manifest: Manifest = serde_json::from_slice(
        &store
            .get(&ObjectPath::from(object.replace(".db", ".manifest.json")))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.sha256, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(Some(manifest.sha256.as_str()), r.sha256.as_deref());
    assert_eq!(manifest.size_bytes, bytes.len() as u64);
    assert_eq!(manifest.revision, rev);
    assert_eq!(manifest.etcd_version, "3.6.5");
    assert_eq!(manifest.node, "cp-1");
    assert_eq!(manifest.snapshot, object);
    assert_eq!(manifest.endpoint, etcd.endpoint);
    assert_eq!(Some(manifest.timestamp), r.timestamp);
    check_snapshot(&bytes).expect("the downloaded object is a complete snapshot");
    let file = dir.path().join("snapshot.db");
    std::fs::write(&file, &bytes).unwrap();
    let st = etcdutl_status(&tools, &file);
    assert_eq!(st["revision"].as_i64(), Some(rev), "{st}");
    assert!(st["totalKey"].as_i64().unwrap() >= 96, "{st}");

    let restored = dir.path().join("restored");
    let peer = free_port();
    run(Command::new(&tools.etcdutl).args([
        "snapshot",
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        restored.to_str().unwrap(),
        "--name",
        "t",
        "--initial-cluster",
        &format!("t=http://127.0.0.1:{peer}"),
        "--initial-advertise-peer-urls",
        &format!("http://127.0.0.1:{peer}"),
    ]));
    // etcdutl refuses a snapshot whose trailing hash does not match (one flipped byte).
    let mut bad = bytes.to_vec();
    bad[4096] ^= 0xff;
    let bad_file = dir.path().join("corrupt.db");
    std::fs::write(&bad_file, &bad).unwrap();
    let o = Command::new(&tools.etcdutl)
        .args([
            "snapshot",
            "restore",
            bad_file.to_str().unwrap(),
            "--data-dir",
        ])
        .arg(dir.path().join("not-restored"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "etcdutl restored a corrupt snapshot");
    // The restored member serves the data (a fresh etcd on the restored dir; no TLS needed).
    drop(etcd);
    let back = start_etcd(&tools, &restored, None);
    let mut c = etcd_client(&back).await;
    let got = c.get("/registry/test/key-0042", None).await.unwrap();
    let want: Vec<u8> = (0..128 * 1024)
        .map(|j| ((42 * 31 + j * 7) % 251) as u8)
        .collect();
    assert_eq!(got.kvs().first().map(|kv| kv.value().to_vec()), Some(want));
}

/// Stores that refuse: a read-only policy, a wrong secret, a missing bucket — each a
/// failed result naming the store and the object, exit 1, no secret in the output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_stores_are_failed_results_with_the_reason() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd(&tools, &dir.path().join("data"), None);
    fill(&etcd, 10, 1024).await;
    let (moto, keys) = start_moto(&tools, "locked", true);
    let keys = keys.unwrap();
    let key = |u: &str, f: &str| keys[u][f].as_str().unwrap().to_string();
    let (writer_id, writer_secret) = (key("writer", "id"), key("writer", "secret"));
    let (reader_id, reader_secret) = (key("reader", "id"), key("reader", "secret"));
    let wrong = "wrong-secret-value-0123456789";
    let cases = [
        (
            "read-only policy",
            reader_id.as_str(),
            reader_secret.as_str(),
            "s3://locked/x",
            "AccessDenied",
        ),
        (
            "wrong secret",
            writer_id.as_str(),
            wrong,
            "s3://locked/x",
            "SignatureDoesNotMatch",
        ),
        (
            "missing bucket",
            writer_id.as_str(),
            writer_secret.as_str(),
            "s3://no-such-bucket/x",
            "NoSuchBucket",
        ),
    ];
    for (what, id, secret, url, reason) in cases {
        let aws = [
            ("AWS_ACCESS_KEY_ID", id),
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ];
        let o = agent_backup(
            &["--endpoints", &etcd.endpoint, "--store", url, "-o", "json"],
            &aws,
        );
        let (out, err) = (text(&o.stdout), text(&o.stderr));
        assert_eq!(o.status.code(), Some(1), "{what}: {out}\n{err}");
        let r: BackupResult =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: {e}: {out}"));
        assert!(!r.ok, "{what}");
        let m = r.message.unwrap_or_default();
        assert!(
            m.contains(reason)
                && m.contains(&format!("store {url}"))
                && m.contains("etcd-snapshot-"),
            "{what}: {m}"
        );
        for s in [secret, writer_secret.as_str(), reader_secret.as_str()] {
            assert!(
                !out.contains(s) && !err.contains(s),
                "{what}: a secret was printed:\n{out}\n{err}"
            );
        }
    }
    // The writer may: the same code path succeeds.
    let aws = [
        ("AWS_ACCESS_KEY_ID", writer_id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", writer_secret.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
    ];
    let o = agent_backup(
        &[
            "--endpoints",
            &etcd.endpoint,
            "--store",
            "s3://locked/x",
            "--keep",
            "0",
        ],
        &aws,
    );
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    // Without an explicit http:// endpoint, plain http is never used: the default is AWS over https.
    let o = agent_backup(
        &[
            "--endpoints",
            "http://127.0.0.1:1",
            "--store",
            "s3://locked/x",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("etcd http://127.0.0.1:1"),
        "{}",
        text(&o.stderr)
    );
}

fn settings(etcd: &Etcd, store: &str, keep: usize) -> BackupSettings {
    BackupSettings {
        etcd: EtcdTarget {
            endpoints: vec![etcd.endpoint.clone()],
            tls: etcd.tls.clone(),
        },
        store: store.to_string(),
        cluster: Some("c".into()),
        keep,
        node: "cp-1".into(),
    }
}

/// A TCP proxy that forwards to `to` and cuts each connection after `limit` bytes
/// from the server: a snapshot stream cut short.
async fn cutting_proxy(to: String, limit: usize) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = l.accept().await {
            let to = to.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(&to).await else {
                    return;
                };
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = tokio::io::copy(&mut cr, &mut sw);
                let down = async {
                    let mut sent = 0;
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = sr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 || sent + n > limit {
                            break;
                        }
                        if cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        sent += n;
                    }
                };
                tokio::select! { _ = up => {}, _ = down => {} }
            });
        }
    });
    format!("http://{addr}")
}

/// A snapshot stream cut short by the network: failed, the endpoint and the byte count
/// in the reason, the multipart upload aborted (no snapshot object, no manifest).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_short_is_refused_and_nothing_is_stored() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd(&tools, &dir.path().join("data"), None);
    fill(&etcd, 40, 64 * 1024).await;
    let proxy = cutting_proxy(
        etcd.endpoint.trim_start_matches("http://").to_string(),
        1024 * 1024,
    )
    .await;
    let store_dir = dir.path().join("store");
    let url = format!("file://{}", store_dir.display());
    let mut s = settings(&etcd, &url, 3);
    s.etcd.endpoints = vec![proxy.clone()];
    let r = backup::run(&s, "op-cut").await;
    assert!(!r.result.ok);
    let m = r.result.message.unwrap_or_default();
    assert!(
        m.contains(&format!("etcd {proxy}")) && m.contains("snapshot"),
        "{m}"
    );
    let left: Vec<_> = walk(&store_dir);
    assert!(
        left.iter().all(|p| !p.contains("etcd-snapshot-")),
        "left behind: {left:?}"
    );

    // Truncated bytes: the check function refuses every cut of a real snapshot.
    let s = settings(&etcd, &url, 3);
    let ok = backup::run(&s, "op-ok").await;
    assert!(ok.result.ok, "{:?}", ok.result);
    let bytes = std::fs::read(store_dir.join(ok.result.etcd_snapshot.unwrap())).unwrap();
    check_snapshot(&bytes).unwrap();
    for cut in [
        bytes.len() - 32,
        bytes.len() - 1,
        bytes.len() / 2,
        512 * 7 + 32,
    ] {
        let e = check_snapshot(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(e, SnapshotError::Size(_) | SnapshotError::Hash { .. }),
            "{cut}: {e}"
        );
    }
}

fn walk(d: &Path) -> Vec<String> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

/// A store whose reads return one flipped byte: what a read-back must catch.
#[derive(Debug)]
struct Corrupting(Arc<dyn ObjectStore>);

impl std::fmt::Display for Corrupting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Corrupting({})", self.0)
    }
}

#[async_trait]
impl ObjectStore for Corrupting {
    async fn put_opts(
        &self,
        l: &ObjectPath,
        p: PutPayload,
        o: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.0.put_opts(l, p, o).await
    }
    async fn put_multipart_opts(
        &self,
        l: &ObjectPath,
        o: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(l, o).await
    }
    async fn get_opts(&self, l: &ObjectPath, o: GetOptions) -> object_store::Result<GetResult> {
        let r = self.0.get_opts(l, o).await?;
        let meta = r.meta.clone();
        let range = r.range.clone();
        let attributes = r.attributes.clone();
        let mut bytes = r.bytes().await?.to_vec();
        if let Some(b) = bytes.get_mut(100) {
            *b ^= 0xff;
        }
        Ok(GetResult {
            payload: GetResultPayload::Stream(
                futures::stream::once(async move { Ok(bytes.into()) }).boxed(),
            ),
            meta,
            range,
            attributes,
            extensions: Default::default(),
        })
    }
    fn delete_stream(
        &self,
        l: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.0.delete_stream(l)
    }
    fn list(&self, p: Option<&ObjectPath>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list(p)
    }
    async fn list_with_delimiter(
        &self,
        p: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.0.list_with_delimiter(p).await
    }
    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        o: CopyOptions,
    ) -> object_store::Result<()> {
        self.0.copy_opts(from, to, o).await
    }
}

/// A read-back that differs from what was uploaded: failed with both hashes, the
/// object deleted, no manifest written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_back_mismatch_fails_and_removes_the_object() {
    let Some(tools) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let etcd = start_etcd(&tools, &dir.path().join("data"), None);
    fill(&etcd, 10, 4096).await;
    let store_dir = dir.path().join("store");
    let url = format!("file://{}", store_dir.display());
    let s = settings(&etcd, &url, 3);
    let store = backup_store::open(&url, Some("c")).unwrap();
    let corrupting = store
        .clone()
        .with_inner(Arc::new(Corrupting(store.inner.clone())));
    let e = backup::run_with(&s, &corrupting, "op-x")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("read back does not match") && e.contains(&format!("store {url}")),
        "{e}"
    );
    assert!(walk(&store_dir).is_empty(), "{:?}", walk(&store_dir));
}
