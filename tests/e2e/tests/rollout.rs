//! The rollout on a real control plane: `cupcake run --rollout-only` drives
//! DirectUpdates, `cupcake-agent simulate --all-nodes` plays every node's agent,
//! kwok nodes and pods, Deployments with PDBs. Each test has its own control
//! plane (the controller acts on every node of its cluster).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cupcake_api::crd::{DirectUpdate, Phase};
use cupcake_api::labels;
use cupcake_api::protocol::NodePhase;
use cupcake_e2e::private::{
    PrivateCluster, Proc, bin, kwok_cluster as cluster, simulated_agents as agents,
};
use cupcake_e2e::{bound_pod, deployment, pdb, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};

const FROM: &str = "v1.33.4";

fn controller(pc: &PrivateCluster, id: &str, extra: &[&str]) -> Proc {
    let kc = pc.kubeconfig.to_str().unwrap().to_string();
    let mut args = vec![
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
        "--lease-duration",
        "6s",
    ];
    args.extend_from_slice(extra);
    pc.spawn(&bin("cupcake"), &args, &format!("cupcake-{id}.log"))
}

async fn du_status(client: &Client, name: &str) -> Option<DirectUpdate> {
    Api::<DirectUpdate>::all(client.clone())
        .get(name)
        .await
        .ok()
}

async fn wait_phase(
    client: &Client,
    name: &str,
    phase: Phase,
    timeout: Duration,
    logs: &[&Proc],
) -> DirectUpdate {
    let what = format!("DirectUpdate {name} in phase {phase:?}");
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(du) = du_status(client, name).await
            && du.status.as_ref().and_then(|s| s.phase) == Some(phase)
        {
            return du;
        }
        if std::time::Instant::now() > deadline {
            let du = du_status(client, name).await;
            let logs: Vec<String> = logs.iter().map(|p| p.output()).collect();
            panic!(
                "timed out waiting for {what}; status: {:#?}\nlogs:\n{}",
                du.and_then(|d| d.status),
                logs.join("\n----\n")
                    .lines()
                    .rev()
                    .take(60)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Samples the cluster during a rollout and records what must never happen.
#[derive(Debug, Default)]
struct Watch {
    max_cp_active: usize,
    pdb_violations: Vec<String>,
    /// node → upgrade-mode annotations seen, in order of first sight.
    modes: Vec<(String, String)>,
}

fn sampler(
    client: Client,
    du: String,
    pdb_ns: Option<String>,
) -> (Arc<Mutex<Watch>>, tokio::task::JoinHandle<()>) {
    let w = Arc::new(Mutex::new(Watch::default()));
    let w2 = w.clone();
    let h = tokio::spawn(async move {
        loop {
            if let Some(d) = du_status(&client, &du).await
                && let Some(st) = d.status
            {
                let cp_active = st
                    .nodes
                    .iter()
                    .filter(|(n, s)| n.starts_with("cp-") && s.phase.is_active())
                    .count();
                let mut g = w2.lock().unwrap();
                g.max_cp_active = g.max_cp_active.max(cp_active);
            }
            if let Ok(nodes) = Api::<Node>::all(client.clone())
                .list(&ListParams::default())
                .await
            {
                let mut g = w2.lock().unwrap();
                for n in nodes.items {
                    if let Some(m) = n.annotations().get(labels::UPGRADE_MODE) {
                        let key = (n.name_any(), m.clone());
                        if !g.modes.contains(&key) {
                            g.modes.push(key);
                        }
                    }
                }
            }
            if let Some(ns) = &pdb_ns {
                let api = Api::<PodDisruptionBudget>::namespaced(client.clone(), ns);
                let v = cupcake_e2e::invariants::pdb_violations(&api).await;
                w2.lock().unwrap().pdb_violations.extend(v);
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    (w, h)
}

const SEED_DU: &str = r#"
apiVersion: cupcake.ricardomolendijk.com/v1
kind: DirectUpdate
metadata:
  name: upgrade-to-1-34-2
spec:
  targetVersion: "1.34.2"
  strategy: rolling
  concurrency: 5
  nodeTimeout: 3m
  drain:
    timeout: 2m
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_style_rollout_of_3_control_plane_and_20_workers_succeeds() {
    let (pc, client) = cluster("rollout-seed", 3, 20, FROM).await;
    // A Deployment with a PDB: drains must never take it below minAvailable.
    let ns = "apps";
    pc.kubectl(&["create", "namespace", ns]);
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deployment(ns, "web", 8, "web"))
        .await
        .unwrap();
    Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &pdb(ns, "web", "web", Some(6), None),
        )
        .await
        .unwrap();
    cupcake_e2e::wait_pdb(&client, ns, "web", "PDB web with 8 healthy pods", |_, h| {
        h == 8
    })
    .await;

    let state = tempfile::tempdir().unwrap();
    let ag = agents(&pc, state.path(), &[]);
    let ctl = controller(&pc, "c1", &[]);
    let (watch, sampling) = sampler(client.clone(), "upgrade-to-1-34-2".into(), Some(ns.into()));
    pc.apply(SEED_DU);
    let du = wait_phase(
        &client,
        "upgrade-to-1-34-2",
        Phase::Succeeded,
        Duration::from_secs(240),
        &[&ctl, &ag],
    )
    .await;
    sampling.abort();
    let st = du.status.unwrap();
    assert_eq!(st.progress.as_deref(), Some("23/23"), "{st:?}");
    assert!(
        !st.stages.is_empty(),
        "the controller recorded its plan in status.stages"
    );
    assert!(
        st.nodes.values().all(|n| n.phase == NodePhase::Completed),
        "{:?}",
        st.nodes
    );
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    for n in &nodes.items {
        let v = &n
            .status
            .as_ref()
            .unwrap()
            .node_info
            .as_ref()
            .unwrap()
            .kubelet_version;
        assert_eq!(v, "v1.34.2", "{}", n.name_any());
        assert!(
            !n.spec.as_ref().unwrap().unschedulable.unwrap_or(false),
            "{} left cordoned",
            n.name_any()
        );
        assert!(
            n.annotations().get(labels::OPERATION_ID).is_none(),
            "{} still assigned",
            n.name_any()
        );
    }
    let w = watch.lock().unwrap();
    assert_eq!(w.max_cp_active, 1, "control-plane nodes one at a time");
    assert!(
        w.pdb_violations.is_empty(),
        "PDB below minAvailable: {:?}",
        w.pdb_violations
    );
    let cp_modes: Vec<&(String, String)> = w
        .modes
        .iter()
        .filter(|(n, _)| n.starts_with("cp-"))
        .collect();
    assert_eq!(
        cp_modes.first().map(|m| m.1.as_str()),
        Some("apply"),
        "{cp_modes:?}"
    );
    assert!(
        cp_modes.iter().skip(1).all(|m| m.1 == "node"),
        "{cp_modes:?}"
    );
    // The agent ran every node's upgrade exactly once.
    assert_runs_once(state.path());
    // Events on the DirectUpdate.
    let ev = pc.kubectl(&[
        "get",
        "events",
        "-A",
        "--field-selector",
        "involvedObject.kind=DirectUpdate",
        "-o",
        "name",
    ]);
    assert!(
        !String::from_utf8_lossy(&ev.stdout).trim().is_empty(),
        "no events recorded"
    );
    // Every node changed many times over the rollout, and each change came through the
    // caches' watches as a change, never as a broken watch and a relist of every node.
    let log = ctl.output();
    assert!(
        !log.contains("watch failed"),
        "a watch failed during the rollout:\n{log}"
    );
    drop(ctl);
    drop(ag);
}

/// Every operation dir of the simulated agents has each step done exactly once.
fn assert_runs_once(state: &std::path::Path) {
    let mut dirs = 0;
    for node in std::fs::read_dir(state).unwrap().flatten() {
        for op in std::fs::read_dir(node.path()).unwrap().flatten() {
            if !op.file_name().to_string_lossy().starts_with("operation-") {
                continue;
            }
            dirs += 1;
            let names: BTreeSet<String> = std::fs::read_dir(op.path())
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect();
            assert!(
                names.contains("completed"),
                "{}: {names:?}",
                op.path().display()
            );
            assert!(
                !names.iter().any(|n| n.ends_with(".inprogress")),
                "{names:?}"
            );
        }
    }
    assert!(
        dirs > 0,
        "no operation directories under {}",
        state.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_step_fails_the_rollout_and_retry_finishes_it() {
    let (pc, client) = cluster("rollout-fail", 1, 3, FROM).await;
    let state = tempfile::tempdir().unwrap();
    let ctl = controller(&pc, "c1", &[]);
    let mut ag = agents(
        &pc,
        state.path(),
        &["--fail-step", "kubelet", "--fail-nodes", "w-2"],
    );
    pc.apply(&SEED_DU.replace("concurrency: 5", "concurrency: 1"));
    let du = wait_phase(
        &client,
        "upgrade-to-1-34-2",
        Phase::Failed,
        Duration::from_secs(120),
        &[&ctl, &ag],
    )
    .await;
    let st = du.status.unwrap();
    let w2 = &st.nodes["w-2"];
    assert_eq!(w2.phase, NodePhase::Failed);
    assert!(
        w2.error.as_deref().unwrap_or("").contains("kubelet"),
        "{w2:?}"
    );
    assert!(st.message.as_deref().unwrap().contains("w-2"), "{st:?}");
    // Nothing after w-2 started.
    assert!(
        !st.nodes.contains_key("w-3") || st.nodes["w-3"].phase == NodePhase::Pending,
        "{:?}",
        st.nodes
    );
    // Fix the agent, then retry the node.
    ag.kill();
    let _ag = agents(&pc, state.path(), &[]);
    // The runbook's retry: clear the agent's failure and ask for a retry.
    pc.kubectl(&[
        "annotate",
        "directupdate",
        "upgrade-to-1-34-2",
        &format!("{}=w-2", labels::RETRY),
    ]);
    let du = wait_phase(
        &client,
        "upgrade-to-1-34-2",
        Phase::Succeeded,
        Duration::from_secs(120),
        &[&ctl],
    )
    .await;
    assert_eq!(du.status.as_ref().unwrap().progress.as_deref(), Some("4/4"));
    assert!(
        du.annotations().get(labels::RETRY).is_none(),
        "retry annotation cleared"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pdb_allowing_no_disruption_requires_attention_naming_it() {
    let (pc, client) = cluster("rollout-pdb", 1, 1, FROM).await;
    let ns = "apps";
    pc.kubectl(&["create", "namespace", ns]);
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &bound_pod(ns, "db-0", "w-1", &[("app", "db")], "db:1"),
        )
        .await
        .unwrap();
    Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pdb(ns, "db", "db", Some(1), None))
        .await
        .unwrap();
    cupcake_e2e::wait_pdb(&client, ns, "db", "PDB db blocking", |a, h| {
        a == 0 && h == 1
    })
    .await;
    let state = tempfile::tempdir().unwrap();
    let _ag = agents(&pc, state.path(), &[]);
    let ctl = controller(&pc, "c1", &[]);
    // The bare pod has no controller: drain.force lets the drain evict it (then the PDB refuses).
    pc.apply(&SEED_DU.replace("timeout: 2m", "timeout: 5s\n    force: true"));
    let du = wait_phase(
        &client,
        "upgrade-to-1-34-2",
        Phase::RequiresAttention,
        Duration::from_secs(90),
        &[&ctl],
    )
    .await;
    let st = du.status.unwrap();
    let msg = st.message.clone().unwrap();
    assert!(msg.contains("apps/db") && msg.contains("w-1"), "{msg}");
    // The drain that started w-1 found a pod it could not move: w-1 was never handed to
    // its agent (a node is assigned right after its drain only when that finds nothing).
    assert_eq!(st.nodes["w-1"].phase, NodePhase::Draining);
    let w1 = Api::<Node>::all(client.clone()).get("w-1").await.unwrap();
    assert_eq!(w1.annotations().get(labels::OPERATION_ID), None);
    assert_eq!(w1.annotations().get(labels::STATUS), None);
    let ev = pc.kubectl(&[
        "get",
        "events",
        "-A",
        "--field-selector",
        "reason=RequiresAttention",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        String::from_utf8_lossy(&ev.stdout).contains("apps/db"),
        "event names the PDB"
    );
    // The pod goes away (its owner scaled down): the rollout goes on.
    cupcake_e2e::delete_pod(&client, ns, "db-0").await;
    wait_phase(
        &client,
        "upgrade-to-1-34-2",
        Phase::Succeeded,
        Duration::from_secs(90),
        &[&ctl],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_delete_mid_rollout() {
    let (pc, client) = cluster("rollout-pause", 1, 4, FROM).await;
    let state = tempfile::tempdir().unwrap();
    let _ag = agents(&pc, state.path(), &["--step-duration", "400ms"]);
    let ctl = controller(&pc, "c1", &[]);
    pc.apply(&SEED_DU.replace("concurrency: 5", "concurrency: 1"));
    let dus = Api::<DirectUpdate>::all(client.clone());
    wait_for("cp-1 completed", Duration::from_secs(60), || async {
        let d = dus.get("upgrade-to-1-34-2").await.ok()?;
        (d.status?.nodes.get("cp-1")?.phase == NodePhase::Completed).then_some(())
    })
    .await;
    pc.kubectl(&[
        "patch",
        "directupdate",
        "upgrade-to-1-34-2",
        "--type=merge",
        "-p",
        r#"{"spec":{"paused":true}}"#,
    ]);
    let du = wait_phase(
        &client,
        "upgrade-to-1-34-2",
        Phase::Paused,
        Duration::from_secs(60),
        &[&ctl],
    )
    .await;
    let st = du.status.unwrap();
    let progressing = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("False", "Paused")
    );
    let done = st.summary.unwrap().completed;
    // A second DirectUpdate waits for the first, and its condition says why.
    pc.apply(
        &SEED_DU
            .replace("upgrade-to-1-34-2", "second-upgrade")
            .replace(
                "  strategy: rolling\n",
                "  strategy: rolling\n  paused: true\n",
            ),
    );
    let second = wait_for(
        "the second DirectUpdate to wait",
        Duration::from_secs(30),
        || async {
            let d = dus.get("second-upgrade").await.ok()?;
            let c = d
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Progressing")?;
            (c.reason == "WaitingForDirectUpdate").then_some(c)
        },
    )
    .await;
    assert_eq!(second.status, "False");
    assert!(
        second.message.contains("upgrade-to-1-34-2 runs first"),
        "{}",
        second.message
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let du = dus.get("upgrade-to-1-34-2").await.unwrap();
    assert_eq!(
        du.status.as_ref().unwrap().summary.unwrap().completed,
        done,
        "no node started while paused"
    );
    pc.kubectl(&[
        "patch",
        "directupdate",
        "upgrade-to-1-34-2",
        "--type=merge",
        "-p",
        r#"{"spec":{"paused":false}}"#,
    ]);
    wait_for(
        "a node starts after resume",
        Duration::from_secs(60),
        || async {
            let d = dus.get("upgrade-to-1-34-2").await.ok()?;
            (d.status?.summary?.completed > done).then_some(())
        },
    )
    .await;
    // Delete: the node in flight finishes, nothing else starts, the object goes away.
    pc.kubectl(&[
        "delete",
        "directupdate",
        "upgrade-to-1-34-2",
        "--wait=false",
    ]);
    wait_for(
        "the DirectUpdate is gone",
        Duration::from_secs(60),
        || async { dus.get("upgrade-to-1-34-2").await.is_err().then_some(()) },
    )
    .await;
    // The waiting one now runs, but it is paused: no node starts.
    wait_phase(
        &client,
        "second-upgrade",
        Phase::Paused,
        Duration::from_secs(30),
        &[&ctl],
    )
    .await;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    for n in &nodes.items {
        assert!(
            n.annotations().get(labels::OPERATION_ID).is_none(),
            "{} still assigned after cancel",
            n.name_any()
        );
        assert!(
            !n.spec.as_ref().unwrap().unschedulable.unwrap_or(false),
            "{} left cordoned",
            n.name_any()
        );
    }
    let upgraded = nodes
        .items
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .unwrap()
                .node_info
                .as_ref()
                .unwrap()
                .kubelet_version
                == "v1.34.2"
        })
        .count();
    assert!(
        upgraded < 5,
        "the cancelled rollout did not finish every node"
    );
}

/// 1.32 → 1.34: the control plane hop by hop (1.33 then 1.34), workers in one skip-level pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_hop_rollout_with_a_skip_level_worker_pass() {
    let (pc, client) = cluster("rollout-hops", 1, 3, "v1.32.9").await;
    let state = tempfile::tempdir().unwrap();
    let ag = agents(&pc, state.path(), &[]);
    let ctl = controller(&pc, "c1", &[]);
    pc.apply(&SEED_DU.replace("concurrency: 5", "concurrency: 3"));
    let du = wait_phase(
        &client,
        "upgrade-to-1-34-2",
        Phase::Succeeded,
        Duration::from_secs(180),
        &[&ctl, &ag],
    )
    .await;
    let st = du.status.unwrap();
    let kinds: Vec<(String, String)> = st
        .stages
        .iter()
        .map(|s| (s.kind.as_str().to_string(), s.version.to_string()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("control-plane".to_string(), "1.33.0".to_string()),
            ("control-plane".to_string(), "1.34.2".to_string()),
            ("workers".to_string(), "1.34.2".to_string()),
        ],
        "{:?}",
        st.stages
    );
    let up = st.upgrade_path.unwrap();
    assert_eq!((up.current_step, up.total_steps), (2, 2), "{up:?}");
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(nodes.items.iter().all(|n| {
        n.status
            .as_ref()
            .unwrap()
            .node_info
            .as_ref()
            .unwrap()
            .kubelet_version
            == "v1.34.2"
    }));
    drop(ctl);
    drop(ag);
}

/// SIGKILL the controller at many moments of one rollout: it completes, no node is
/// upgraded twice (each agent operation ran each step once), never two control-plane
/// nodes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_killed_at_random_moments_completes_without_double_upgrades() {
    let (pc, client) = cluster("rollout-chaos", 3, 8, FROM).await;
    let state = tempfile::tempdir().unwrap();
    let ag = agents(&pc, state.path(), &["--step-duration", "700ms"]);
    let (watch, sampling) = sampler(client.clone(), "upgrade-to-1-34-2".into(), None);
    pc.apply(&SEED_DU.replace("concurrency: 5", "concurrency: 2"));
    // 20 SIGKILLs at seeded random moments (a rerun repeats them), then one that lives.
    let mut x: u64 = 0x5eed;
    for _ in 0..20 {
        // The same identity, as a restarted container of one pod would have: it takes
        // its own unexpired Lease over at once (a new identity would wait it out).
        let mut ctl = controller(&pc, "chaos", &[]);
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        tokio::time::sleep(Duration::from_millis(300 + (x >> 33) % 700)).await;
        ctl.kill();
    }
    let done_at_last_kill = du_status(&client, "upgrade-to-1-34-2")
        .await
        .and_then(|d| d.status)
        .and_then(|s| s.summary)
        .map(|s| s.completed)
        .unwrap_or(0);
    assert!(
        done_at_last_kill < 11,
        "the rollout ended before the kills did: slow it down"
    );
    let ctl = controller(&pc, "chaos", &[]);
    wait_phase(
        &client,
        "upgrade-to-1-34-2",
        Phase::Succeeded,
        Duration::from_secs(180),
        &[&ctl, &ag],
    )
    .await;
    sampling.abort();
    let w = watch.lock().unwrap();
    assert_eq!(w.max_cp_active, 1, "control-plane nodes one at a time");
    assert_runs_once(state.path());
    let agent_log = ag.output();
    for n in (1..=3)
        .map(|i| format!("cp-{i}"))
        .chain((1..=8).map(|i| format!("w-{i}")))
    {
        let runs = agent_log
            .matches(&format!("{n}: operation started"))
            .count();
        assert!(runs <= 1, "{n} started {runs} operations:\n{agent_log}");
    }
}

/// Two replicas: only the Lease holder writes; kill it, the other takes over and finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_replica_takes_over_when_the_leader_dies() {
    let (pc, client) = cluster("rollout-lease", 1, 4, FROM).await;
    let state = tempfile::tempdir().unwrap();
    let _ag = agents(&pc, state.path(), &["--step-duration", "300ms"]);
    let mut a = controller(&pc, "replica-a", &[]);
    wait_for(
        "replica-a holds the lease",
        Duration::from_secs(30),
        || async {
            let out = pc.kubectl(&[
                "get",
                "lease",
                "-n",
                "default",
                "cupcake",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ]);
            (String::from_utf8_lossy(&out.stdout) == "replica-a").then_some(())
        },
    )
    .await;
    let b = controller(&pc, "replica-b", &[]);
    pc.apply(&SEED_DU.replace("concurrency: 5", "concurrency: 1"));
    let dus = Api::<DirectUpdate>::all(client.clone());
    wait_for("two nodes done", Duration::from_secs(60), || async {
        let d = dus.get("upgrade-to-1-34-2").await.ok()?;
        (d.status?.summary?.completed >= 2).then_some(())
    })
    .await;
    assert!(
        !b.output().contains("leading: starting"),
        "the standby must not lead while a holds the lease"
    );
    a.kill();
    let du = wait_phase(
        &client,
        "upgrade-to-1-34-2",
        Phase::Succeeded,
        Duration::from_secs(120),
        &[&b],
    )
    .await;
    assert_eq!(du.status.unwrap().progress.as_deref(), Some("5/5"));
    assert!(
        b.output().contains("leading: starting"),
        "replica-b took over"
    );
}
