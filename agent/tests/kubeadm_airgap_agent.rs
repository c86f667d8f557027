//! The agent as deployed, air-gapped: the real `cupcake-agent` binary
//! (`--executor kubeadm --host-root ROOT`) against a real kube-apiserver (the
//! harness's control plane, started here with tests/harness/up.sh unless
//! CUPCAKE_HARNESS_DIR points at one) and the real apt of the Debian root. The
//! node's assignment carries `package-source: ops/k8s-1-34`; the agent reads that
//! ConfigMap (`bundle.yaml` and binaryData `keyring.gpg`) with `get`, installs from
//! the bundle's signed mirror, and reports `completed`. A package-source naming a
//! ConfigMap that does not exist fails the node with a message naming it, nothing
//! changed.
//!
//! Skipped when the Debian root or the harness binaries are missing, unless
//! CUPCAKE_REQUIRE_DEBIAN_ROOT=1 (tests/run-all.sh sets it; it builds both first).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod kubeadm_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cupcake_api::labels;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node as KubeNode};
use kube::api::{Api, ObjectMeta, PostParams};
use kubeadm_common::{Flavor, Node, kubeadm_calls};

const BUNDLE: &str = r#"apiVersion: cupcake.ricardomolendijk.com/v1
kind: PackageBundle
repository:
  apt: "file:///var/lib/cupcake/bundle/apt"
versions:
  "1.34.2": {kubeadm: "1.34.2-1.1", kubelet: "1.34.2-1.1", kubectl: "1.34.2-1.1"}
"#;

/// A control plane: the one of CUPCAKE_HARNESS_DIR, or one started (and stopped) here.
struct ControlPlane {
    dir: PathBuf,
    ours: bool,
}

impl ControlPlane {
    fn get() -> Option<Self> {
        if let Ok(d) = std::env::var("CUPCAKE_HARNESS_DIR") {
            return Some(Self {
                dir: d.into(),
                ours: false,
            });
        }
        let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/harness");
        let bin = Command::new("bash")
            .arg(harness.join("build.sh"))
            .arg("--print-bin-dir")
            .output()
            .unwrap();
        let bin = PathBuf::from(String::from_utf8_lossy(&bin.stdout).trim());
        if !bin.join("kube-apiserver").is_file() {
            let why = format!(
                "no harness binaries in {} (run tests/harness/build.sh)",
                bin.display()
            );
            if std::env::var("CUPCAKE_REQUIRE_DEBIAN_ROOT").is_ok_and(|v| v == "1") {
                panic!("CUPCAKE_REQUIRE_DEBIAN_ROOT=1: {why}");
            }
            eprintln!("skipped: {why}");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("cupcake-airgap-")
            .tempdir()
            .unwrap()
            .keep();
        let out = Command::new("bash")
            .arg(harness.join("up.sh"))
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "up.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Self { dir, ours: true })
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    async fn client(&self) -> kube::Client {
        cupcake_agent::cli::install_crypto_provider();
        let kc = kube::config::Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(cfg).unwrap()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if self.ours {
            let harness = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/harness");
            let _ = Command::new("bash")
                .arg(harness.join("down.sh"))
                .arg("--dir")
                .arg(&self.dir)
                .output();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The agent binary for `node`, killed when dropped.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_agent(cp: &ControlPlane, name: &str, node: &Node) -> Agent {
    let log = std::fs::File::create(node.dir.path().join("agent.log")).unwrap();
    Agent(
        Command::new(env!("CARGO_BIN_EXE_cupcake-agent"))
            .args(["--node-name", name, "--executor", "kubeadm"])
            .arg("--host-root")
            .arg(&node.root)
            .arg("--state-dir")
            .arg(&node.state)
            .args(["--kubelet-healthz-url", &node.healthz])
            .arg("--kubeconfig")
            .arg(cp.kubeconfig())
            .env_remove("NODE_NAME")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

async fn create_node(nodes: &Api<KubeNode>, name: &str, source: &str) {
    let ann: BTreeMap<String, String> = [
        (labels::OPERATION_ID, "op-airgap"),
        (labels::TARGET_VERSION, "1.34.2"),
        (labels::COMPONENTS, "kubeadm,kubelet,kubectl"),
        (labels::UPGRADE_MODE, "node"),
        (labels::STATUS, "pending"),
        (labels::PACKAGE_SOURCE, source),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let n = KubeNode {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: Some(ann),
            ..ObjectMeta::default()
        },
        ..KubeNode::default()
    };
    nodes.create(&PostParams::default(), &n).await.unwrap();
}

/// The node's `status` and `message` once the agent reports completed or failed.
async fn outcome(nodes: &Api<KubeNode>, name: &str, node: &Node) -> (String, String) {
    // Not a timing assertion: a bound so a stuck agent fails the test instead of hanging it.
    let limit = Instant::now() + Duration::from_secs(600);
    loop {
        let n = nodes.get(name).await.unwrap();
        let a = n.metadata.annotations.unwrap_or_default();
        let status = a.get(labels::STATUS).cloned().unwrap_or_default();
        if status == "completed" || status == "failed" {
            return (status, a.get(labels::MESSAGE).cloned().unwrap_or_default());
        }
        assert!(
            Instant::now() < limit,
            "{name} still {status:?}; agent log:\n{}",
            std::fs::read_to_string(node.dir.path().join("agent.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_reads_the_bundle_config_map_and_installs_from_its_mirror() {
    let Some(cached) = kubeadm_common::cached_root(Flavor::Apt) else {
        return;
    };
    let Some(cp) = ControlPlane::get() else {
        return;
    };
    let client = cp.client().await;
    let ns: Api<Namespace> = Api::all(client.clone());
    let _ = ns
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("ops".into()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await;
    let good = Node::new(&cached, Flavor::Apt);
    let key = std::fs::read(good.root.join("srv/bundle/keyring.gpg")).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "ops");
    let _ = cms.delete("k8s-1-34", &Default::default()).await;
    cms.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: ObjectMeta {
                name: Some("k8s-1-34".into()),
                ..ObjectMeta::default()
            },
            data: Some([("bundle.yaml".to_string(), BUNDLE.to_string())].into()),
            binary_data: Some([("keyring.gpg".to_string(), ByteString(key.clone()))].into()),
            ..ConfigMap::default()
        },
    )
    .await
    .unwrap();
    let nodes: Api<KubeNode> = Api::all(client.clone());
    let suffix = std::process::id();
    let (n_good, n_bad) = (
        format!("airgap-{suffix}"),
        format!("airgap-missing-{suffix}"),
    );
    create_node(&nodes, &n_good, "ops/k8s-1-34").await;
    let bad = Node::new(&cached, Flavor::Apt);
    create_node(&nodes, &n_bad, "ops/no-such-bundle").await;
    let _a1 = start_agent(&cp, &n_good, &good);
    let _a2 = start_agent(&cp, &n_bad, &bad);

    let (status, message) = outcome(&nodes, &n_good, &good).await;
    assert_eq!(status, "completed", "{message}");
    assert_eq!(
        good.file("etc/apt/sources.list.d/kubernetes.list"),
        "# Written by cupcake-agent: packages from the air-gapped package bundle ConfigMap ops/k8s-1-34.\n\
         deb [signed-by=/etc/apt/keyrings/cupcake-bundle.gpg] file:///var/lib/cupcake/bundle/apt ./\n"
    );
    assert_eq!(
        std::fs::read(good.root.join("etc/apt/keyrings/cupcake-bundle.gpg")).unwrap(),
        key
    );
    assert_eq!(
        good.packages(),
        (
            "containerd.io 1.7.24-1\nkubeadm 1.34.2-1.1\nkubectl 1.34.2-1.1\nkubelet 1.34.2-1.1\n"
                .to_string(),
            "kubeadm\nkubectl\nkubelet\n".to_string()
        )
    );
    assert_eq!(
        kubeadm_calls(&good.take_calls()),
        ["kubeadm@1.34.2 upgrade node"]
    );

    let list = bad.file("etc/apt/sources.list.d/kubernetes.list");
    let before = bad.packages();
    let (status, message) = outcome(&nodes, &n_bad, &bad).await;
    assert_eq!(status, "failed");
    assert_eq!(
        message,
        "step 01-preflight failed: the package bundle ConfigMap ops/no-such-bundle (annotation cupcake.ricardomolendijk.com/package-source) does not exist"
    );
    assert_eq!(bad.file("etc/apt/sources.list.d/kubernetes.list"), list);
    assert_eq!(bad.packages(), before);
    for n in [&n_good, &n_bad] {
        let _ = nodes.delete(n, &Default::default()).await;
    }
}
