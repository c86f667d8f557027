//! Test support for end-to-end tests against the real control plane built by
//! `tests/harness/`: attach to (or start) one control plane per test run, a
//! throwaway namespace per test, builders for kwok nodes, bound pods,
//! Deployments and PDBs, and waits with deadlines instead of sleeps.
//!
//! Attach: `CUPCAKE_HARNESS_DIR` (set by `tests/run-all.sh`) or `KUBECONFIG`
//! with `CUPCAKE_E2E_ATTACH=1`. Otherwise the first test starts one with
//! `tests/harness/up.sh` and a watchdog stops it when the test process exits,
//! also on panic. If it cannot start, the test fails and says why — never a
//! silent skip.

pub mod gitserver;
pub mod invariants;
pub mod private;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, Namespace, Node, NodeSpec, NodeStatus, NodeSystemInfo, Pod, PodSpec,
    PodTemplateSpec, Taint, Toleration,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};

/// The repository root.
pub fn repo() -> PathBuf {
    // cargo sets CARGO_MANIFEST_DIR for the test binary it runs: read it at run time
    // first. This library compiled in another checkout that shares the target dir
    // (`~/.cache/cupcake-target`) can be reused as fresh, with that checkout's path
    // baked in, and the tests then read that checkout's files.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// A running control plane.
#[derive(Debug, Clone)]
pub struct Harness {
    /// State directory of tests/harness/up.sh (logs under `logs/`).
    pub dir: Option<PathBuf>,
    pub kubeconfig: PathBuf,
}

static HARNESS: OnceLock<Result<Harness, String>> = OnceLock::new();

fn start() -> Result<Harness, String> {
    if let Ok(dir) = std::env::var("CUPCAKE_HARNESS_DIR") {
        let dir = PathBuf::from(dir);
        let kubeconfig = dir.join("kubeconfig");
        if !kubeconfig.is_file() {
            return Err(format!(
                "CUPCAKE_HARNESS_DIR={} has no kubeconfig: is the harness up?",
                dir.display()
            ));
        }
        return Ok(Harness {
            dir: Some(dir),
            kubeconfig,
        });
    }
    if std::env::var("CUPCAKE_E2E_ATTACH").is_ok() {
        let kc = std::env::var("KUBECONFIG")
            .map_err(|_| "CUPCAKE_E2E_ATTACH is set but KUBECONFIG is not".to_string())?;
        return Ok(Harness {
            dir: None,
            kubeconfig: PathBuf::from(kc),
        });
    }
    // Start our own, and a watchdog that stops it when this process ends.
    let dir = std::env::temp_dir().join(format!("cupcake-e2e-{}", std::process::id()));
    let up = repo().join("tests/harness/up.sh");
    let out = Command::new(&up)
        .arg("--dir")
        .arg(&dir)
        .arg("--scheduler")
        .output()
        .map_err(|e| format!("running {}: {e}", up.display()))?;
    if !out.status.success() {
        return Err(format!(
            "tests/harness/up.sh failed (logs in {}/logs):\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    private::watchdog(&dir).map_err(|e| format!("starting the harness watchdog: {e}"))?;
    Ok(Harness {
        kubeconfig: dir.join("kubeconfig"),
        dir: Some(dir),
    })
}

/// The shared control plane; panics with the reason when it cannot start.
pub fn harness() -> &'static Harness {
    match HARNESS.get_or_init(start) {
        Ok(h) => h,
        Err(e) => panic!("the end-to-end control plane is not available: {e}"),
    }
}

/// `--kubeconfig` of the harness.
pub fn kube_args() -> cupcake_reconciler::observe::KubeArgs {
    cupcake_reconciler::observe::KubeArgs {
        kubeconfig: Some(harness().kubeconfig.clone()),
        context: None,
    }
}

/// A client for the harness.
pub async fn client() -> Client {
    cupcake_reconciler::observe::install_crypto_provider();
    cupcake_reconciler::observe::client(&kube_args())
        .await
        .expect("kube client for the harness")
}

/// A client that does not retry 429 answers (for evictions, which answer 429 when a PDB blocks them).
pub async fn client_without_retries() -> Client {
    let mut cfg = cupcake_reconciler::observe::config(&kube_args())
        .await
        .expect("kubeconfig");
    cfg.default_retry = false;
    Client::try_from(cfg).expect("kube client for the harness")
}

/// Run `kubectl` against the harness.
pub fn kubectl(args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", &harness().kubeconfig)
        .output()
        .expect("kubectl on PATH")
}

/// The `cupcake` binary of this build (built by `cargo build --bin cupcake` / `cargo test --workspace`).
pub fn cupcake_bin() -> PathBuf {
    private::bin("cupcake")
}

/// Run `cupcake` with the harness kubeconfig in the environment.
pub fn cupcake(args: &[&str]) -> Output {
    Command::new(cupcake_bin())
        .args(args)
        .env("KUBECONFIG", &harness().kubeconfig)
        .output()
        .expect("cupcake runs")
}

/// Poll `check` until it returns `Some`, or fail after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(50);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

/// A namespace that is deleted when the test ends (also on panic).
#[derive(Debug)]
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub async fn new(client: &Client, prefix: &str) -> anyhow::Result<Self> {
        let name = format!("e2e-{prefix}-{}", unique());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .context("create namespace")?;
        Ok(Self { name })
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "namespace", &self.name, "--wait=false"]);
    }
}

/// Kwok nodes created by a test, deleted when it ends.
#[derive(Debug, Default)]
pub struct TestNodes {
    pub names: Vec<String>,
}

impl TestNodes {
    pub async fn create(&mut self, client: &Client, nodes: Vec<Node>) -> anyhow::Result<()> {
        let api = Api::<Node>::all(client.clone());
        for n in nodes {
            let name = n.metadata.name.clone().unwrap_or_default();
            api.create(&PostParams::default(), &n)
                .await
                .with_context(|| format!("create node {name}"))?;
            self.names.push(name);
        }
        Ok(())
    }

    /// Wait until kwok reports every node Ready.
    pub async fn wait_ready(&self, client: &Client) {
        let api = Api::<Node>::all(client.clone());
        for name in &self.names {
            wait_for(
                &format!("node {name} Ready"),
                Duration::from_secs(60),
                || async {
                    let n = api.get(name).await.ok()?;
                    let ready = n
                        .status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True");
                    ready.then_some(())
                },
            )
            .await;
        }
    }
}

impl Drop for TestNodes {
    fn drop(&mut self) {
        for chunk in self.names.chunks(50) {
            let mut args = vec!["delete", "node", "--wait=false"];
            args.extend(chunk.iter().map(String::as_str));
            let _ = kubectl(&args);
        }
    }
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{:x}{:04x}", std::process::id() & 0xffff, nanos & 0xffff)
}

/// A kwok node (managed by kwok, which makes it Ready) with a kubelet version.
pub fn kwok_node(name: &str, control_plane: bool, kubelet: &str, labels: &[(&str, &str)]) -> Node {
    let mut l: BTreeMap<String, String> = BTreeMap::from([
        ("type".into(), "kwok".into()),
        ("kubernetes.io/hostname".into(), name.into()),
        ("kubernetes.io/os".into(), "linux".into()),
    ]);
    if control_plane {
        l.insert(
            "node-role.kubernetes.io/control-plane".into(),
            String::new(),
        );
    }
    l.extend(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(l),
            annotations: Some(BTreeMap::from([(
                "kwok.x-k8s.io/node".into(),
                "fake".into(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: control_plane.then(|| {
                vec![Taint {
                    key: "node-role.kubernetes.io/control-plane".into(),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            node_info: Some(NodeSystemInfo {
                kubelet_version: kubelet.into(),
                architecture: "amd64".into(),
                operating_system: "linux".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn tolerate_all() -> Vec<Toleration> {
    vec![Toleration {
        operator: Some("Exists".into()),
        ..Default::default()
    }]
}

/// A pod bound to `node` directly (no scheduler needed).
pub fn bound_pod(ns: &str, name: &str, node: &str, labels: &[(&str, &str)], image: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            tolerations: Some(tolerate_all()),
            containers: vec![Container {
                name: "main".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    }
}

/// A Deployment (needs the harness's scheduler) whose pods tolerate everything.
pub fn deployment(ns: &str, name: &str, replicas: i32, app: &str) -> Deployment {
    let labels: BTreeMap<String, String> = BTreeMap::from([("app".into(), app.into())]);
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    tolerations: Some(tolerate_all()),
                    containers: vec![Container {
                        name: "main".into(),
                        image: Some("app:1".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// A PDB selecting `app`, with `minAvailable` or `maxUnavailable`.
pub fn pdb(
    ns: &str,
    name: &str,
    app: &str,
    min_available: Option<i32>,
    max_unavailable: Option<IntOrString>,
) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            min_available: min_available.map(IntOrString::Int),
            max_unavailable,
            selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([("app".into(), app.into())])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// Wait until a PDB's status is current (observedGeneration caught up) and satisfies `ok`.
pub async fn wait_pdb(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    ok: impl Fn(i32, i32) -> bool,
) {
    let api = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns);
    wait_for(what, Duration::from_secs(60), || async {
        let p = api.get(name).await.ok()?;
        let gen_ = p.metadata.generation?;
        let s = p.status?;
        (s.observed_generation == Some(gen_) && ok(s.disruptions_allowed, s.current_healthy))
            .then_some(())
    })
    .await;
}

/// Wait until every listed pod is Running and Ready (kwok's pod-ready stage).
pub async fn wait_pods_ready(client: &Client, ns: &str, names: &[String]) {
    let api = Api::<Pod>::namespaced(client.clone(), ns);
    for name in names {
        wait_for(
            &format!("pod {ns}/{name} Ready"),
            Duration::from_secs(60),
            || async {
                let p = api.get(name).await.ok()?;
                let s = p.status?;
                let ready = s
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                (s.phase.as_deref() == Some("Running") && ready).then_some(())
            },
        )
        .await;
    }
}

/// Delete a pod now (grace 0), ignoring "not found".
pub async fn delete_pod(client: &Client, ns: &str, name: &str) {
    let _ = Api::<Pod>::namespaced(client.clone(), ns)
        .delete(name, &DeleteParams::default().grace_period(0))
        .await;
}

/// Fail with the command's output unless it succeeded.
pub fn ok(out: &Output, what: &str) -> anyhow::Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
