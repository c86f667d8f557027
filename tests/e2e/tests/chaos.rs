//! Chaos during a rollout (issue 13): a GitOps-driven rollout of 3 control-plane
//! nodes and 9 workers (47 in the long form: 50 nodes) with a PDB-guarded Deployment, while the test SIGKILLs the
//! controller at random moments, kills the agents right after a step boundary,
//! stops and restarts etcd and the kube-apiserver, and takes the Git server down
//! while the status branch is being written. A supervisor restarts what dies (as
//! the kubelet would). Sampled throughout, these must hold:
//!
//! - never two control-plane nodes in progress at once;
//! - no PodDisruptionBudget below its desired healthy count;
//! - no node upgraded twice (one agent operation per node over every agent process,
//!   and every operation's checkpoint complete, no step left half done);
//! - no node Failed or RequiresAttention (a failure would be in status: the test
//!   prints it);
//! - the rollout completes and the status file on the status branch says so.
//!
//! The short form runs in the test command. `CUPCAKE_CHAOS=long` runs the long form
//! of the issue: 100 controller kills, agents killed at every step boundary seen,
//! the apiserver stopped for 30 s, etcd for 10 s, the Git server killed 10 times.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cupcake_api::crd::{DirectUpdate, Phase};
use cupcake_api::labels;
use cupcake_e2e::gitserver::{GitServer, WorkClone, free_port};
use cupcake_e2e::private::{Proc, bin, kwok_cluster_with, outage};
use cupcake_e2e::{deployment, pdb, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};

const FROM: &str = "v1.33.4";
const STATUS_BRANCH: &str = "cupcake/status";
const STATUS_FILE: &str = "status/demo.yaml";

/// How hard to shake.
#[derive(Debug, Clone, Copy)]
struct Profile {
    /// Workers besides the 3 control-plane nodes.
    workers: usize,
    controller_kills: usize,
    /// Agent kills right after a step boundary (`usize::MAX`: every one seen).
    agent_kills: usize,
    apiserver_down: Duration,
    etcd_down: Duration,
    git_kills: usize,
    step: &'static str,
    /// How long the rollout may take, chaos included.
    deadline: Duration,
}

const SHORT: Profile = Profile {
    workers: 9,
    controller_kills: 10,
    agent_kills: 4,
    apiserver_down: Duration::from_secs(6),
    etcd_down: Duration::from_secs(4),
    git_kills: 3,
    step: "800ms",
    deadline: Duration::from_secs(420),
};

const LONG: Profile = Profile {
    // A 50-node rollout, as issue 13 asks.
    workers: 47,
    controller_kills: 100,
    agent_kills: usize::MAX,
    apiserver_down: Duration::from_secs(30),
    etcd_down: Duration::from_secs(10),
    git_kills: 10,
    step: "3s",
    deadline: Duration::from_secs(1800),
};

fn cluster_yaml(version: &str) -> String {
    format!(
        "apiVersion: cupcake.ricardomolendijk.com/v1
kind: ClusterVersion
metadata:
  name: demo
spec:
  kubernetesVersion: {version}
  components: [kubeadm, kubelet, kubectl]
  concurrency: 2
  drain:
    timeout: 3m
  backup:
    etcd: false
"
    )
}

const CATALOG: &str = "apiVersion: cupcake.ricardomolendijk.com/v1
kind: VersionCatalog
metadata:
  name: kubernetes
spec:
  versions: [1.33.4, 1.34.0, 1.34.2]
";

/// A seeded generator: a failing run repeats with the same moments.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// A process the supervisor keeps running: restarted (with a new log) when it exits.
struct Supervised {
    name: &'static str,
    start: Box<dyn Fn(usize) -> Proc + Send>,
    proc: Proc,
    starts: usize,
}

impl Supervised {
    fn new(name: &'static str, start: Box<dyn Fn(usize) -> Proc + Send>) -> Self {
        let proc = start(1);
        Self {
            name,
            start,
            proc,
            starts: 1,
        }
    }

    /// Restart it if it exited; true when it did.
    fn keep_alive(&mut self) -> bool {
        if matches!(self.proc.child.try_wait(), Ok(Some(_))) {
            self.starts += 1;
            self.proc = (self.start)(self.starts);
            eprintln!("chaos: {} started again (start {})", self.name, self.starts);
            return true;
        }
        false
    }

    /// SIGKILL and start again at once.
    fn crash(&mut self) {
        self.proc.kill();
        self.keep_alive();
    }
}

/// `"03-kubeadm-upgrade-node done node=…"` → the step's name, for a step's "done" line.
trait StepDone {
    fn strip_suffix_done(&self) -> Option<String>;
}

impl StepDone for str {
    fn strip_suffix_done(&self) -> Option<String> {
        let (step, rest) = self.split_once(' ')?;
        rest.starts_with("done").then(|| step.to_string())
    }
}

/// What the sampler saw.
#[derive(Debug, Default)]
struct Seen {
    max_cp_active: usize,
    pdb_violations: Vec<String>,
    bad_phases: Vec<String>,
    samples: usize,
}

fn sampler(
    client: Client,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let h = tokio::spawn(async move {
        let dus = Api::<DirectUpdate>::all(client.clone());
        let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), "apps");
        while !stop.load(Ordering::Relaxed) {
            if let Ok(l) = dus.list(&ListParams::default()).await {
                let mut g = s2.lock().unwrap();
                g.samples += 1;
                for d in l.items {
                    let Some(st) = d.status else { continue };
                    let cp = st
                        .nodes
                        .iter()
                        .filter(|(n, s)| n.starts_with("cp-") && s.phase.is_active())
                        .count();
                    g.max_cp_active = g.max_cp_active.max(cp);
                    if let Some(p @ (Phase::Failed | Phase::RequiresAttention)) = st.phase {
                        g.bad_phases
                            .push(format!("{p:?}: {}", st.message.unwrap_or_default()));
                    }
                }
            }
            let v = cupcake_e2e::invariants::pdb_violations(&pdbs).await;
            s2.lock().unwrap().pdb_violations.extend(v);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    (seen, h)
}

/// The `step` annotation of every node (for step boundaries).
async fn steps(client: &Client) -> Option<BTreeMap<String, String>> {
    let l = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .ok()?;
    Some(
        l.items
            .iter()
            .map(|n| {
                (
                    n.name_any(),
                    n.annotations()
                        .get(labels::STEP)
                        .cloned()
                        .unwrap_or_default(),
                )
            })
            .collect(),
    )
}

/// Every operation checkpoint under `state` complete, none with a step half done;
/// returns the number of operations per node.
fn operations(state: &Path) -> BTreeMap<String, usize> {
    let mut per_node = BTreeMap::new();
    for node in std::fs::read_dir(state).unwrap().flatten() {
        for op in std::fs::read_dir(node.path()).unwrap().flatten() {
            if !op.file_name().to_string_lossy().starts_with("operation-") {
                continue;
            }
            *per_node
                .entry(node.file_name().to_string_lossy().to_string())
                .or_insert(0) += 1;
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
                "{}: {names:?}",
                op.path().display()
            );
        }
    }
    per_node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_survives_killed_controllers_agents_apiserver_etcd_and_git_server() {
    let long = std::env::var("CUPCAKE_CHAOS").is_ok_and(|v| v == "long");
    let p = if long { LONG } else { SHORT };
    eprintln!("chaos profile: {p:?}");
    // kwok renews the fake nodes' leases, but when the node lifecycle controller has
    // marked a node NotReady it does not set its pods Ready again as a kubelet would:
    // their PDB would stay at 0 allowed disruptions for good. The long form keeps the
    // control plane away for 40 s and more (etcd, then the apiserver), so its leases
    // (and the grace period up.sh derives from them) outlast that.
    let lease = p.apiserver_down + p.etcd_down + Duration::from_secs(60);
    let lease = lease.as_secs().to_string();
    let (pc, client) =
        kwok_cluster_with("chaos", 3, p.workers, FROM, &["--lease-seconds", &lease]).await;
    let total = 3 + p.workers;
    let pc = Arc::new(pc);

    // A Deployment of 6 with a PDB of minAvailable 4 on the workers.
    let ns = "apps";
    pc.kubectl(&["create", "namespace", ns]);
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deployment(ns, "web", 6, "web"))
        .await
        .unwrap();
    Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &pdb(ns, "web", "web", Some(4), None),
        )
        .await
        .unwrap();
    cupcake_e2e::wait_pdb(&client, ns, "web", "PDB web with 6 healthy pods", |_, h| {
        h == 6
    })
    .await;

    // The fleet repo, at the cluster's version.
    let mut srv = GitServer::start("tok-chaos");
    srv.create_repo("fleet");
    let work = WorkClone::new(&srv.auth_url("fleet"));
    work.write("versions.yaml", CATALOG);
    work.write("clusters/demo/cluster.yaml", &cluster_yaml("1.33.4"));
    work.commit_push("demo at 1.33.4", "main");
    let token = pc.dir.join("git-token");
    std::fs::write(&token, format!("{}\n", srv.token)).unwrap();

    let state = tempfile::tempdir().unwrap();
    let agent_state = state.path().to_path_buf();
    let agent_logs: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
    let ctl_logs: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
    let mut agents = {
        let pc = pc.clone();
        let logs = agent_logs.clone();
        let step = p.step;
        Supervised::new(
            "agents",
            Box::new(move |n| {
                let kc = pc.kubeconfig.to_str().unwrap().to_string();
                let st = agent_state.to_str().unwrap().to_string();
                let proc = pc.spawn(
                    &bin("cupcake-agent"),
                    &[
                        "simulate",
                        "--all-nodes",
                        "--kubeconfig",
                        &kc,
                        "--state-dir",
                        &st,
                        "--step-duration",
                        step,
                    ],
                    &format!("agents-{n}.log"),
                );
                logs.lock().unwrap().push(proc.log.clone());
                proc
            }),
        )
    };
    let url = srv.url("fleet");
    let mut controller = {
        let pc = pc.clone();
        let logs = ctl_logs.clone();
        let token = token.clone();
        Supervised::new(
            "controller",
            Box::new(move |n| {
                let listen = format!("127.0.0.1:{}", free_port());
                let proc = pc.spawn(
                    &bin("cupcake"),
                    &[
                        "run",
                        "--kubeconfig",
                        pc.kubeconfig.to_str().unwrap(),
                        "--listen",
                        &listen,
                        "--lease-namespace",
                        "default",
                        // One identity, as a restarted container of one pod has.
                        "--identity",
                        "chaos",
                        "--lease-duration",
                        "6s",
                        "--repo",
                        &url,
                        "--cluster",
                        "demo",
                        "--poll",
                        "2s",
                        "--git-token-file",
                        token.to_str().unwrap(),
                    ],
                    &format!("cupcake-{n}.log"),
                );
                logs.lock().unwrap().push(proc.log.clone());
                proc
            }),
        )
    };
    let tail = |logs: &Arc<Mutex<Vec<PathBuf>>>| {
        let last = logs.lock().unwrap().last().cloned();
        let text = last
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };

    // Up and reporting the first revision; then the bump that starts the rollout.
    wait_for("the first status file", Duration::from_secs(90), || async {
        work.remote_file(STATUS_BRANCH, STATUS_FILE)
            .filter(|s| s.contains("desired: 1.33.4"))
    })
    .await;
    work.write("clusters/demo/cluster.yaml", &cluster_yaml("1.34.2"));
    let bump = work.commit_push("bump demo to 1.34.2", "main");
    let dus = Api::<DirectUpdate>::all(client.clone());
    let name = wait_for(
        "the DirectUpdate of the bump",
        Duration::from_secs(60),
        || async {
            dus.list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .next()
                .map(|d| d.name_any())
        },
    )
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let (seen, sampling) = sampler(client.clone(), stop.clone());

    // The chaos, interleaved; the supervisor restarts whatever died after each event.
    let mut rng = Rng(0xc4a05);
    let mut plan: Vec<&str> = Vec::new();
    plan.extend(std::iter::repeat_n("controller", p.controller_kills));
    plan.extend(std::iter::repeat_n("git", p.git_kills));
    plan.extend(std::iter::repeat_n("agents", p.agent_kills.min(40)));
    plan.push("etcd");
    plan.push("apiserver");
    for i in (1..plan.len()).rev() {
        plan.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let done = |d: &Option<DirectUpdate>| {
        d.as_ref()
            .and_then(|d| d.status.as_ref())
            .and_then(|s| s.phase)
            == Some(Phase::Succeeded)
    };
    let agent_kills = AtomicUsize::new(0);
    let mut events = 0;
    let chaos_started = Instant::now();
    for what in &plan {
        if done(&dus.get(&name).await.ok()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200 + rng.below(900))).await;
        match *what {
            "controller" => controller.crash(),
            "agents" => {
                // Right after some node's step changes.
                if let Some(before) = steps(&client).await {
                    let _ = tokio::time::timeout(Duration::from_secs(20), async {
                        loop {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            if steps(&client).await.is_some_and(|now| now != before) {
                                return;
                            }
                        }
                    })
                    .await;
                }
                agents.crash();
                agent_kills.fetch_add(1, Ordering::Relaxed);
            }
            "git" => {
                // While status commits are being pushed (progress moves every few seconds).
                srv.halt();
                tokio::time::sleep(Duration::from_millis(500 + rng.below(2500))).await;
                srv.resume();
            }
            "etcd" => outage(&pc.dir, "etcd", p.etcd_down).await,
            "apiserver" => outage(&pc.dir, "kube-apiserver", p.apiserver_down).await,
            _ => unreachable!(),
        }
        events += 1;
        controller.keep_alive();
        agents.keep_alive();
    }
    let progress_after_chaos = dus
        .get(&name)
        .await
        .ok()
        .and_then(|d| d.status)
        .and_then(|s| s.summary)
        .map(|s| s.completed)
        .unwrap_or(0);
    eprintln!(
        "chaos: {events} events in {:?} ({} agent kills); {progress_after_chaos}/{total} nodes done when it ended",
        chaos_started.elapsed(),
        agent_kills.load(Ordering::Relaxed)
    );
    assert!(
        events >= plan.len() / 2,
        "the rollout ended after {events} of {} chaos events: slow it down",
        plan.len()
    );

    // The long form keeps killing agents at every step boundary until the end.
    let deadline = Instant::now() + p.deadline;
    let mut last_steps = steps(&client).await;
    loop {
        let d = dus.get(&name).await.ok();
        if done(&d) {
            break;
        }
        let failed = d
            .as_ref()
            .and_then(|d| d.status.as_ref())
            .and_then(|s| s.phase)
            .is_some_and(|p| matches!(p, Phase::Failed | Phase::RequiresAttention));
        if failed || Instant::now() > deadline {
            // What the workload looked like: a PDB that allows nothing because replacement
            // pods are missing (ReplicaSet controller), Pending (scheduler) or bound but
            // not Running (kwok) points at the cluster's own controllers, not at ours.
            let pods = pc.kubectl(&["get", "pods", "-n", ns, "-o", "wide"]);
            let pdb = pc.kubectl(&["get", "pdb", "-n", ns, "-o", "wide"]);
            panic!(
                "the rollout did not complete; status: {:#?}\ncontroller log:\n{}\nagents log:\n{}\npods:\n{}\nPDB:\n{}",
                d.and_then(|d| d.status),
                tail(&ctl_logs),
                tail(&agent_logs),
                String::from_utf8_lossy(&pods.stdout),
                String::from_utf8_lossy(&pdb.stdout)
            );
        }
        if p.agent_kills == usize::MAX {
            let now = steps(&client).await;
            if now.is_some() && now != last_steps {
                agents.crash();
                last_steps = now;
            }
        }
        controller.keep_alive();
        agents.keep_alive();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    sampling.await.unwrap();

    // The invariants.
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    eprintln!("chaos: {} samples", seen.samples);
    assert!(
        seen.samples > 20,
        "the sampler hardly ran: {}",
        seen.samples
    );
    assert_eq!(seen.max_cp_active, 1, "control-plane nodes one at a time");
    assert!(
        seen.pdb_violations.is_empty(),
        "PDB below minAvailable: {:?}",
        seen.pdb_violations
    );
    assert!(
        seen.bad_phases.is_empty(),
        "the rollout failed on the way: {:?}",
        seen.bad_phases
    );
    let ops = operations(state.path());
    assert_eq!(ops.len(), total, "every node ran an operation: {ops:?}");
    assert!(
        ops.values().all(|n| *n == 1),
        "a node upgraded twice: {ops:?}"
    );
    // Over every agent process's log: no node's operation was started twice and no step
    // finished twice. (At most once, not exactly: an agent killed after writing a
    // checkpoint but before its log line leaves the next process to say "resumed", and
    // one killed after marking a step done but before logging it says nothing; the
    // checkpoints above show every step done.)
    let mut started: BTreeMap<String, usize> = BTreeMap::new();
    let mut ran: BTreeSet<String> = BTreeSet::new();
    let mut done: BTreeMap<(String, String), usize> = BTreeMap::new();
    for log in agent_logs.lock().unwrap().iter() {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            let Some(n) = ops.keys().find(|n| line.contains(&format!(" {n}: "))) else {
                continue;
            };
            if line.contains(&format!("{n}: operation started")) {
                *started.entry(n.clone()).or_insert(0) += 1;
                ran.insert(n.clone());
            } else if line.contains(&format!("{n}: operation resumed")) {
                ran.insert(n.clone());
            } else if let Some(step) = line
                .split_once(&format!("{n}: step "))
                .and_then(|(_, rest)| rest.strip_suffix_done())
            {
                *done.entry((n.clone(), step)).or_insert(0) += 1;
            }
        }
    }
    assert!(
        started.values().all(|n| *n == 1) && ran.len() == total,
        "operations started per node over {} agent processes: {started:?}; nodes seen running: {}",
        agents.starts,
        ran.len()
    );
    let twice: Vec<_> = done.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "steps done twice: {twice:?}");
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    for n in &nodes.items {
        let info = n.status.as_ref().unwrap().node_info.as_ref().unwrap();
        assert_eq!(info.kubelet_version, "v1.34.2", "{}", n.name_any());
        assert!(
            !n.spec.as_ref().unwrap().unschedulable.unwrap_or(false),
            "{} left cordoned",
            n.name_any()
        );
    }
    // Git says so too, after the Git server's outages.
    wait_for(
        "the status file to show Succeeded",
        Duration::from_secs(90),
        || async {
            work.remote_file(STATUS_BRANCH, STATUS_FILE).filter(|s| {
                s.contains("phase: Succeeded") && s.contains(&format!("revision: {bump}"))
            })
        },
    )
    .await;
    eprintln!(
        "chaos: {} controller and {} agent processes over the rollout",
        controller.starts, agents.starts
    );
    drop(controller);
    drop(agents);
}
