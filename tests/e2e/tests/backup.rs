//! The backup stage on a real control plane: `cupcake run --rollout-only` asks for
//! an etcd backup before the control plane (`spec.backup.etcd`), the simulated
//! agents answer it with the real backup code against the private control
//! plane's own etcd. A verified snapshot lands in `status.backupInfo` and the
//! rollout goes on; a store that refuses the upload stops the DirectUpdate in
//! RequiresAttention with the reason in status and an Event, no node touched,
//! until the store is fixed and the answer removed (the runbook's retry).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cupcake_api::crd::{DirectUpdate, Phase};
use cupcake_api::labels;
use cupcake_e2e::private::{PrivateCluster, Proc, bin, kwok_cluster as cluster};
use cupcake_e2e::{repo, wait_for};
use k8s_openapi::api::core::v1::{Event, Node};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use sha2::{Digest as _, Sha256};

const FROM: &str = "v1.33.4";

fn du_yaml(name: &str) -> String {
    du_yaml_with(name, "")
}

/// `extra`: more `backup:` fields, indented by four spaces.
fn du_yaml_with(name: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: cupcake.ricardomolendijk.com/v1
kind: DirectUpdate
metadata:
  name: {name}
spec:
  targetVersion: "1.34.2"
  strategy: rolling
  nodeTimeout: 3m
  drain:
    timeout: 1m
  backup:
    etcd: true
{extra}"#
    )
}

/// The private control plane's etcd (`CUPCAKE_HARNESS_ETCD` in its env file).
fn etcd_endpoint(pc: &PrivateCluster) -> String {
    let env = std::fs::read_to_string(pc.dir.join("env")).unwrap();
    env.lines()
        .find_map(|l| l.strip_prefix("CUPCAKE_HARNESS_ETCD="))
        .expect("CUPCAKE_HARNESS_ETCD in the harness env file")
        .trim()
        .to_string()
}

fn controller(pc: &PrivateCluster, id: &str) -> Proc {
    let kc = pc.kubeconfig.to_str().unwrap().to_string();
    pc.spawn(
        &bin("cupcake"),
        &[
            "run",
            "--rollout-only",
            "--kubeconfig",
            &kc,
            "--listen",
            "127.0.0.1:0",
            "--lease-namespace",
            "default",
            "--identity",
            id,
        ],
        &format!("cupcake-{id}.log"),
    )
}

/// Simulated agents of every node that answer backup requests with the real code.
fn agents(pc: &PrivateCluster, state: &Path, store: &str, env: &[(&str, &Path)]) -> Proc {
    let kc = pc.kubeconfig.to_str().unwrap().to_string();
    let etcd = etcd_endpoint(pc);
    pc.spawn_env(
        &bin("cupcake-agent"),
        &[
            "simulate",
            "--all-nodes",
            "--kubeconfig",
            &kc,
            "--state-dir",
            state.to_str().unwrap(),
            "--step-duration",
            "100ms",
            "--backup-store",
            store,
            "--backup-cluster",
            "e2e",
            "--etcd-endpoints",
            &etcd,
        ],
        "agents.log",
        env,
    )
}

async fn wait_phase(client: &Client, name: &str, phase: Phase, logs: &[&Proc]) -> DirectUpdate {
    let api = Api::<DirectUpdate>::all(client.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(du) = api.get(name).await
            && du.status.as_ref().and_then(|s| s.phase) == Some(phase)
        {
            return du;
        }
        if std::time::Instant::now() > deadline {
            let st = api.get(name).await.ok().and_then(|d| d.status);
            let logs: Vec<String> = logs.iter().map(|p| p.output()).collect();
            panic!(
                "timed out waiting for {name} in {phase:?}; status: {st:#?}\nlogs:\n{}",
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn etcdutl() -> Option<PathBuf> {
    let o = Command::new(repo().join("tests/harness/build-etcdutl.sh"))
        .arg("--print-path")
        .output()
        .ok()?;
    Some(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())).filter(|p| p.is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_backup_is_in_status_before_the_control_plane_starts() {
    let (pc, client) = cluster("backup-ok", 1, 1, FROM).await;
    let state = tempfile::tempdir().unwrap();
    let store = state.path().join("store");
    let url = format!("file://{}", store.display());
    // The agents' own --backup-store is not used: the DirectUpdate's storeRef is
    // forwarded with the request (annotation backup-store) and comes first.
    let own = state.path().join("agents-own-store");
    let ag = agents(
        &pc,
        &state.path().join("agents"),
        &format!("file://{}", own.display()),
        &[],
    );
    let ctl = controller(&pc, "c1");
    pc.apply(&du_yaml_with(
        "with-backup",
        &format!("    storeRef: {url}\n"),
    ));
    let du = wait_phase(&client, "with-backup", Phase::Succeeded, &[&ctl, &ag]).await;
    let st = du.status.unwrap();
    // Preflight asked the backup node's agent for etcd's health (the harness's etcd).
    let r = st
        .preflight_results
        .clone()
        .expect("status.preflightResults");
    assert!(r.passed, "{r:?}");
    let etcd = r.checks.iter().find(|c| c.name == "etcd-healthy").unwrap();
    assert!(
        etcd.message
            .as_deref()
            .is_some_and(|m| m.contains("1 member(s) started, no alarm") && m.contains("cp-1")),
        "{etcd:?}"
    );
    assert_eq!(
        Api::<Node>::all(client.clone())
            .get("cp-1")
            .await
            .unwrap()
            .annotations()
            .get(labels::BACKUP_STORE),
        Some(&url),
        "the request carried the storeRef"
    );
    assert!(
        !own.exists(),
        "the agent's own --backup-store was not used: {}",
        own.display()
    );
    let b = st.backup_info.expect("status.backupInfo");
    assert!(b.verified, "{b:?}");
    assert_eq!(b.node.as_deref(), Some("cp-1"));
    let object = b.etcd_snapshot.clone().unwrap();
    assert!(object.starts_with("e2e/etcd-snapshot-"), "{object}");
    assert_eq!(b.location, Some(format!("{url}/{object}")));
    // The object is the snapshot the status describes, and etcd can read it.
    let bytes = std::fs::read(store.join(&object)).unwrap();
    assert_eq!(bytes.len() as u64, b.size_bytes);
    assert_eq!(Some(hex::encode(Sha256::digest(&bytes))), b.sha256);
    assert!(
        store
            .join(object.replace(".db", ".manifest.json"))
            .is_file()
    );
    if let Some(etcdutl) = etcdutl() {
        let o = Command::new(etcdutl)
            .args(["snapshot", "status", "-w", "json"])
            .arg(store.join(&object))
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(o.status.success());
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        // The snapshot holds at least the revision recorded when it started.
        assert!(
            v["revision"].as_i64().unwrap() >= b.revision.unwrap(),
            "{v} vs {b:?}"
        );
    }
    // The backup came before the control plane: cp-1 started after the backup's time.
    let cp = &st.nodes["cp-1"];
    assert!(
        cp.started_at.unwrap() >= b.timestamp.unwrap(),
        "{cp:?} vs {b:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_upload_stops_in_requires_attention_with_no_node_touched_until_retried() {
    let Some(moto) = moto_server() else {
        if std::env::var("CUPCAKE_REQUIRE_BACKUP_TOOLS").is_ok_and(|v| v == "1") {
            panic!("moto_server missing: run tests/harness/moto-venv.sh");
        }
        eprintln!("SKIPPED: moto_server missing (tests/harness/moto-venv.sh)");
        return;
    };
    let (pc, client) = cluster("backup-refused", 2, 2, FROM).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _moto = pc.spawn(
        &moto,
        &["-H", "127.0.0.1", "-p", &port.to_string()],
        "moto.log",
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    wait_for("moto", Duration::from_secs(30), || async {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok()
            .then_some(())
    })
    .await;
    let secret = "e2e-secret-never-shown-0123456789";
    let state = tempfile::tempdir().unwrap();
    // No bucket was created: every upload is refused with NoSuchBucket.
    let ag = agents(
        &pc,
        &state.path().join("agents"),
        "s3://missing-bucket/etcd",
        &[
            ("AWS_ACCESS_KEY_ID", Path::new("AKIAE2E")),
            ("AWS_SECRET_ACCESS_KEY", Path::new(secret)),
            ("AWS_REGION", Path::new("us-east-1")),
            ("AWS_ENDPOINT_URL", Path::new(&endpoint)),
        ],
    );
    let ctl = controller(&pc, "c1");
    pc.apply(&du_yaml("refused"));
    let du = wait_phase(&client, "refused", Phase::RequiresAttention, &[&ctl, &ag]).await;
    let st = du.status.unwrap();
    let msg = st.message.clone().unwrap_or_default();
    assert!(
        msg.contains("etcd backup on cp-1 failed") && msg.contains("NoSuchBucket"),
        "{msg}"
    );
    assert!(st.backup_info.is_none_or(|b| !b.verified));
    // An Event on the DirectUpdate says the same.
    let ev = wait_for(
        "the RequiresAttention Event",
        Duration::from_secs(30),
        || async {
            let l = Api::<Event>::all(client.clone())
                .list(&ListParams::default())
                .await
                .ok()?;
            l.items.into_iter().find(|e| {
                e.involved_object.name.as_deref() == Some("refused")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.contains("NoSuchBucket"))
            })
        },
    )
    .await;
    assert_eq!(ev.reason.as_deref(), Some("RequiresAttention"), "{ev:?}");
    // Stays there, and no node was touched: no assignment, none cordoned.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
    {
        let a = n.annotations();
        assert!(
            a.get(labels::OPERATION_ID).is_none() && a.get(labels::STATUS).is_none(),
            "{} assigned: {a:?}",
            n.name_any()
        );
        assert_ne!(
            n.spec.as_ref().and_then(|s| s.unschedulable),
            Some(true),
            "{} cordoned",
            n.name_any()
        );
    }
    let du = Api::<DirectUpdate>::all(client.clone())
        .get("refused")
        .await
        .unwrap();
    let st = du.status.unwrap();
    assert_eq!(st.phase, Some(Phase::RequiresAttention));
    assert!(
        st.nodes.values().all(|s| !s.phase.is_active()),
        "{:?}",
        st.nodes
    );
    // The secret appears nowhere: agent log, controller log, status, annotations.
    let result = Api::<Node>::all(client.clone())
        .get("cp-1")
        .await
        .unwrap()
        .annotations()
        .get(labels::BACKUP_RESULT)
        .cloned()
        .unwrap_or_default();
    for (what, text) in [
        ("agent log", ag.output()),
        ("controller log", ctl.output()),
        ("status", format!("{st:?}")),
        ("backup-result", result),
    ] {
        assert!(!text.contains(secret), "the secret is in the {what}");
    }

    // The runbook's retry: fix the store (create the bucket), remove the answer; the agent
    // takes a new snapshot and the controller goes on by itself.
    let o = Command::new("curl")
        .args(["-fsS", "-X", "PUT", &format!("{endpoint}/missing-bucket")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Api::<Node>::all(client.clone())
        .patch(
            "cp-1",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                serde_json::json!({"metadata": {"annotations": {labels::BACKUP_RESULT: null}}}),
            ),
        )
        .await
        .unwrap();
    let du = wait_phase(&client, "refused", Phase::Succeeded, &[&ctl, &ag]).await;
    let b = du.status.unwrap().backup_info.unwrap();
    assert!(b.verified, "{b:?}");
    assert!(
        b.location
            .as_deref()
            .is_some_and(|l| l.starts_with("s3://missing-bucket/etcd/e2e/etcd-snapshot-")),
        "{b:?}"
    );
}

fn moto_server() -> Option<PathBuf> {
    let venv = std::env::var("CUPCAKE_MOTO_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/cupcake-moto/venv")
        });
    Some(venv.join("bin/moto_server")).filter(|p| p.is_file())
}
