//! The real `cupcake-agent` binary with the simulate executor on kwok nodes of
//! the shared control plane. Each test assigns nodes the way the rollout
//! controller does (annotations, `status=pending`) and checks what a user of
//! the protocol sees: the node's annotations, its kubelet version, its static
//! pods, and the checkpoint directory (each step run exactly once).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cupcake_api::labels;
use cupcake_e2e::private::{Proc, bin};
use cupcake_e2e::{TestNodes, bound_pod, client, harness, kubectl, kwok_node};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const FROM: &str = "v1.33.4";
const TARGET: &str = "1.34.2";
const STATIC_PODS: [&str; 3] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];
/// The steps of a default assignment (kubeadm, kubelet, kubectl) on a worker.
const WORKER_STEPS: [&str; 6] = [
    "01-preflight",
    "02-upgrade-kubeadm-package",
    "03-kubeadm-upgrade-node",
    "04-upgrade-kubelet-kubectl",
    "05-restart-kubelet",
    "06-verify",
];

/// Names no other test (or earlier run) uses.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "ag-{what}-{:x}{:03x}",
        std::process::id() & 0xfff,
        nanos & 0xfff
    )
}

/// Start `cupcake-agent ARGS --kubeconfig <harness>`; SIGKILLed when dropped.
fn agent(log_dir: &Path, log: &str, args: &[&str]) -> Proc {
    let log = log_dir.join(log);
    let f = std::fs::File::create(&log).unwrap();
    let child = Command::new(bin("cupcake-agent"))
        .args(args)
        .arg("--kubeconfig")
        .arg(&harness().kubeconfig)
        .env_remove("NODE_NAME")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    Proc { child, log }
}

/// One node's agent with the simulate executor.
fn node_agent(state: &Path, logs: &Path, log: &str, node: &str, extra: &[&str]) -> Proc {
    let mut args = vec![
        "--node-name",
        node,
        "--executor",
        "simulate",
        "--state-dir",
        state.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    agent(logs, log, &args)
}

/// SIGTERM, then the exit status (within `timeout`).
fn terminate(p: &mut Proc, timeout: Duration) -> std::process::ExitStatus {
    let out = Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "kill -TERM failed");
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not exit within {timeout:?} of SIGTERM:\n{}",
            p.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Assign `node` as the controller does: one merge patch, `status=pending`, no step or message.
async fn assign(client: &Client, node: &str, op: &str, mode: &str) {
    Api::<Node>::all(client.clone())
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                labels::OPERATION_ID: op,
                labels::TARGET_VERSION: TARGET,
                labels::COMPONENTS: "kubeadm,kubelet,kubectl",
                labels::UPGRADE_MODE: mode,
                labels::STATUS: "pending",
                labels::STEP: null,
                labels::MESSAGE: null,
            }}})),
        )
        .await
        .unwrap();
}

/// Only `status=pending` (a retry, or the same assignment written again).
async fn set_pending(client: &Client, node: &str) {
    Api::<Node>::all(client.clone())
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {labels::STATUS: "pending"}}})),
        )
        .await
        .unwrap();
}

async fn node(client: &Client, name: &str) -> Node {
    Api::<Node>::all(client.clone()).get(name).await.unwrap()
}

fn annotation(n: &Node, key: &str) -> Option<String> {
    n.annotations().get(key).cloned()
}

fn kubelet(n: &Node) -> String {
    n.status
        .as_ref()
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.kubelet_version.clone())
        .unwrap_or_default()
}

/// Poll until `node`'s `status` annotation is `want`; on timeout, fail with the agents' logs.
async fn wait_status(client: &Client, name: &str, want: &str, agents: &[&Proc]) -> Node {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = node(client, name).await;
        if annotation(&n, labels::STATUS).as_deref() == Some(want) {
            return n;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = agents.iter().map(|p| p.output()).collect();
            panic!(
                "timed out waiting for {name} status={want}; annotations {:?}\nagent logs:\n{}",
                n.annotations(),
                logs.join("\n----\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Poll the file system until `check` holds (with a deadline).
async fn wait_files(what: &str, check: impl Fn() -> bool, agent: &Proc) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; agent log:\n{}",
            agent.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn count(dir: &Path, suffix: &str) -> usize {
    files(dir).iter().filter(|f| f.ends_with(suffix)).count()
}

/// step id → (times started, times done), from `logs/<step>.log`.
fn runs(op_dir: &Path) -> BTreeMap<String, (usize, usize)> {
    let mut out = BTreeMap::new();
    for f in files(&op_dir.join("logs")) {
        let text = std::fs::read_to_string(op_dir.join("logs").join(&f)).unwrap();
        let id = f.trim_end_matches(".log").to_string();
        out.insert(
            id,
            (
                text.matches(" step started").count(),
                text.matches(" step done").count(),
            ),
        );
    }
    out
}

/// Every step of `steps` done exactly once, the operation completed, nothing in progress.
fn assert_completed_once(op_dir: &Path, steps: &[&str]) {
    let names = files(op_dir);
    assert!(names.contains(&"completed".to_string()), "{names:?}");
    assert!(names.contains(&"metadata.json".to_string()), "{names:?}");
    assert_eq!(count(op_dir, ".inprogress"), 0, "{names:?}");
    for s in steps {
        assert!(
            names.contains(&format!("step-{s}.done")),
            "{s} not done: {names:?}"
        );
    }
    assert_eq!(count(op_dir, ".done"), steps.len(), "{names:?}");
    for (step, (_, done)) in runs(op_dir) {
        assert_eq!(done, 1, "{step} finished {done} times");
    }
}

/// Static pods of a control-plane node at `FROM`, deleted on drop.
struct StaticPods {
    names: Vec<String>,
}

impl StaticPods {
    async fn create(client: &Client, node: &str) -> Self {
        let api = Api::<Pod>::namespaced(client.clone(), "kube-system");
        let mut names = Vec::new();
        for c in STATIC_PODS {
            let name = format!("{c}-{node}");
            let mut p = bound_pod(
                "kube-system",
                &name,
                node,
                &[("component", c), ("tier", "control-plane")],
                &format!("registry.k8s.io/{c}:{FROM}"),
            );
            p.metadata.annotations = Some(BTreeMap::from([(
                "kubernetes.io/config.mirror".to_string(),
                "e2e".to_string(),
            )]));
            api.create(&PostParams::default(), &p).await.unwrap();
            names.push(name);
        }
        Self { names }
    }

    async fn images(&self, client: &Client) -> Vec<String> {
        let api = Api::<Pod>::namespaced(client.clone(), "kube-system");
        let mut out = Vec::new();
        for n in &self.names {
            let p = api.get(n).await.unwrap();
            out.push(p.spec.unwrap().containers[0].image.clone().unwrap());
        }
        out
    }
}

impl Drop for StaticPods {
    fn drop(&mut self) {
        let mut args = vec![
            "delete",
            "pod",
            "-n",
            "kube-system",
            "--wait=false",
            "--grace-period=0",
        ];
        args.extend(self.names.iter().map(String::as_str));
        let _ = kubectl(&args);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_upgrades_its_own_node_and_ignores_the_others() {
    let client = client().await;
    let cp = unique("cp");
    let other = unique("other");
    let mut nodes = TestNodes::default();
    nodes
        .create(
            &client,
            vec![
                kwok_node(&cp, true, FROM, &[]),
                kwok_node(&other, false, FROM, &[]),
            ],
        )
        .await
        .unwrap();
    let pods = StaticPods::create(&client, &cp).await;
    let state = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let ag = node_agent(
        state.path(),
        logs.path(),
        "agent.log",
        &cp,
        &["--step-duration", "300ms"],
    );

    // Record what the node says while it runs.
    let sampler = {
        let (client, cp) = (client.clone(), cp.clone());
        tokio::spawn(async move {
            let mut seen: Vec<(String, String)> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                let n = node(&client, &cp).await;
                let s = (
                    annotation(&n, labels::STATUS).unwrap_or_default(),
                    annotation(&n, labels::STEP).unwrap_or_default(),
                );
                if seen.last() != Some(&s) {
                    seen.push(s.clone());
                }
                if s.0 == "completed" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            seen
        })
    };
    // Another node's assignment first: this agent must never touch it.
    assign(&client, &other, "op-other", "node").await;
    assign(&client, &cp, "op-cp", "apply").await;
    let n = wait_status(&client, &cp, "completed", &[&ag]).await;
    let seen = sampler.await.unwrap();

    assert!(
        seen.iter().any(|(s, _)| s == "in-progress"),
        "never saw in-progress: {seen:?}"
    );
    let steps: Vec<&str> = seen
        .iter()
        .filter(|(s, st)| s == "in-progress" && !st.is_empty())
        .map(|(_, st)| st.as_str())
        .collect();
    assert!(steps.len() >= 3, "too few steps reported: {seen:?}");
    assert!(
        steps.windows(2).all(|w| w[0] < w[1]),
        "steps out of order: {seen:?}"
    );
    assert_eq!(
        annotation(&n, labels::STEP).as_deref(),
        Some("06-verify"),
        "{:?}",
        n.annotations()
    );
    assert_eq!(annotation(&n, labels::MESSAGE), None);
    assert_eq!(kubelet(&n), format!("v{TARGET}"));
    for image in pods.images(&client).await {
        assert!(image.ends_with(&format!(":v{TARGET}")), "{image}");
    }

    // The checkpoint: metadata, every step once, completed.
    let op_dir = state.path().join("operation-op-cp");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(op_dir.join("metadata.json")).unwrap())
            .unwrap();
    assert_eq!(meta["operationId"], "op-cp");
    assert_eq!(meta["targetVersion"], TARGET);
    assert_eq!(meta["mode"], "apply");
    assert_eq!(meta["node"], cp.as_str());
    assert_eq!(meta["components"], json!(["kubeadm", "kubelet", "kubectl"]));
    let cp_steps: Vec<String> = WORKER_STEPS
        .iter()
        .map(|s| s.replace("kubeadm-upgrade-node", "kubeadm-upgrade-apply"))
        .collect();
    assert_completed_once(
        &op_dir,
        &cp_steps.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(
        files(state.path()),
        ["operation-op-cp"],
        "only its own node"
    );

    // The other node was left alone.
    let o = node(&client, &other).await;
    assert_eq!(annotation(&o, labels::STATUS).as_deref(), Some("pending"));
    assert_eq!(annotation(&o, labels::STEP), None);
    assert_eq!(kubelet(&o), FROM);

    // The same assignment written again: reported completed again, nothing runs.
    let before = runs(&op_dir);
    set_pending(&client, &cp).await;
    wait_status(&client, &cp, "completed", &[&ag]).await;
    assert_eq!(
        runs(&op_dir),
        before,
        "a completed operation ran steps again"
    );
    assert!(ag.output().contains("already completed"), "{}", ag.output());
    assert_eq!(ag.output().matches("operation started").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_or_killed_agent_resumes_and_runs_no_step_twice() {
    let client = client().await;
    let w = unique("resume");
    let mut nodes = TestNodes::default();
    nodes
        .create(&client, vec![kwok_node(&w, false, FROM, &[])])
        .await
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let op_dir = state.path().join("operation-op-resume");
    let args = ["--step-duration", "500ms"];
    let mut ag = node_agent(state.path(), logs.path(), "agent-1.log", &w, &args);
    assign(&client, &w, "op-resume", "node").await;

    // SIGTERM during a step: the step finishes, no new one starts, exit 0.
    wait_files("2 steps done", || count(&op_dir, ".done") >= 2, &ag).await;
    let status = terminate(&mut ag, Duration::from_secs(10));
    assert!(status.success(), "exit {status}:\n{}", ag.output());
    assert_eq!(
        count(&op_dir, ".inprogress"),
        0,
        "SIGTERM left a step half-run: {:?}",
        files(&op_dir)
    );
    let done_at_term = count(&op_dir, ".done");
    assert!(done_at_term < WORKER_STEPS.len(), "{:?}", files(&op_dir));
    assert_eq!(
        annotation(&node(&client, &w).await, labels::STATUS).as_deref(),
        Some("in-progress")
    );

    // Restart; SIGKILL (a crash) two steps later.
    let mut ag = node_agent(state.path(), logs.path(), "agent-2.log", &w, &args);
    wait_files(
        "2 more steps done",
        || count(&op_dir, ".done") >= done_at_term + 2,
        &ag,
    )
    .await;
    ag.kill();
    let done_before_kill: Vec<String> = files(&op_dir)
        .into_iter()
        .filter_map(|f| {
            f.strip_suffix(".done")
                .and_then(|s| s.strip_prefix("step-"))
                .map(str::to_string)
        })
        .collect();
    assert!(
        done_before_kill.len() < WORKER_STEPS.len(),
        "finished before the kill: {:?}",
        files(&op_dir)
    );
    assert!(
        ag.output().contains("operation resumed at step"),
        "{}",
        ag.output()
    );

    // Restart again: it completes.
    let ag = node_agent(state.path(), logs.path(), "agent-3.log", &w, &args);
    let n = wait_status(&client, &w, "completed", &[&ag]).await;
    assert_eq!(kubelet(&n), format!("v{TARGET}"));
    assert_eq!(annotation(&n, labels::STEP).as_deref(), Some("06-verify"));
    assert_completed_once(&op_dir, &WORKER_STEPS);
    let runs = runs(&op_dir);
    for s in &done_before_kill {
        assert_eq!(
            runs[s],
            (1, 1),
            "{s} was done before the kill and ran again: {runs:?}"
        );
    }
    for (s, (started, _)) in &runs {
        // Only a step cut short by SIGKILL may start twice.
        assert!(*started <= 2, "{s} started {started} times: {runs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_step_reports_failed_naming_it_and_a_retry_resumes_there() {
    let client = client().await;
    let w = unique("fail");
    let mut nodes = TestNodes::default();
    nodes
        .create(&client, vec![kwok_node(&w, false, FROM, &[])])
        .await
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let op_dir = state.path().join("operation-op-fail");
    let mut ag = node_agent(
        state.path(),
        logs.path(),
        "agent-1.log",
        &w,
        &["--step-duration", "100ms", "--fail-step", "restart-kubelet"],
    );
    assign(&client, &w, "op-fail", "node").await;
    let n = wait_status(&client, &w, "failed", &[&ag]).await;
    let msg = annotation(&n, labels::MESSAGE).unwrap_or_default();
    assert!(
        msg.contains("step 05-restart-kubelet failed") && msg.contains("simulated failure"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg:?}");
    assert_eq!(
        annotation(&n, labels::STEP).as_deref(),
        Some("05-restart-kubelet")
    );
    assert_eq!(kubelet(&n), FROM, "the kubelet step never ran");
    assert_eq!(
        std::fs::read_to_string(op_dir.join("failed"))
            .unwrap()
            .trim(),
        msg
    );
    ag.kill();

    // A fixed agent does nothing while the node says failed; a retry resumes at the failed step.
    let ag = node_agent(
        state.path(),
        logs.path(),
        "agent-2.log",
        &w,
        &["--step-duration", "100ms"],
    );
    set_pending(&client, &w).await;
    let n = wait_status(&client, &w, "completed", &[&ag]).await;
    assert_eq!(kubelet(&n), format!("v{TARGET}"));
    assert_eq!(annotation(&n, labels::MESSAGE), None);
    assert_completed_once(&op_dir, &WORKER_STEPS);
    let runs = runs(&op_dir);
    for s in &WORKER_STEPS[..4] {
        assert_eq!(runs[*s], (1, 1), "{s}: {runs:?}");
    }
    assert_eq!(runs["05-restart-kubelet"], (2, 1), "{runs:?}");
    assert!(ag.output().contains("retrying"), "{}", ag.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_all_nodes_runs_assigned_nodes_at_once() {
    let client = client().await;
    let scope = unique("all");
    let sel = ("cupcake-e2e-agents", scope.as_str());
    let (x, y, bad, outside) = (
        format!("{scope}-x"),
        format!("{scope}-y"),
        format!("{scope}-bad"),
        format!("{scope}-outside"),
    );
    let mut nodes = TestNodes::default();
    nodes
        .create(
            &client,
            vec![
                kwok_node(&x, false, FROM, &[sel]),
                kwok_node(&y, false, FROM, &[sel]),
                kwok_node(&bad, false, FROM, &[sel]),
                kwok_node(&outside, false, FROM, &[]),
            ],
        )
        .await
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let selector = format!("{}={}", sel.0, sel.1);
    let ag = agent(
        logs.path(),
        "agents.log",
        &[
            "simulate",
            "--all-nodes",
            "--selector",
            &selector,
            "--state-dir",
            state.path().to_str().unwrap(),
            "--step-duration",
            "300ms",
        ],
    );
    assign(&client, &outside, "op-all", "node").await;
    assign(&client, &x, "op-all", "node").await;
    assign(&client, &y, "op-all", "node").await;
    // `apply` is for control-plane nodes only: refused, with a reason.
    assign(&client, &bad, "op-all", "apply").await;

    for n in [&x, &y] {
        let node = wait_status(&client, n, "completed", &[&ag]).await;
        assert_eq!(kubelet(&node), format!("v{TARGET}"), "{n}");
        assert_completed_once(
            &state.path().join(n).join("operation-op-all"),
            &WORKER_STEPS,
        );
    }
    // They ran at the same time: each started before the other completed.
    let span = |n: &str| {
        let d = state.path().join(n).join("operation-op-all");
        let first = std::fs::read_to_string(d.join("step-01-preflight.done")).unwrap();
        let start = first
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("started ")
            .to_string();
        let end = std::fs::read_to_string(d.join("completed"))
            .unwrap()
            .trim()
            .to_string();
        (start, end)
    };
    let (sx, ex) = span(&x);
    let (sy, ey) = span(&y);
    assert!(
        sx < ey && sy < ex,
        "not concurrent: {x} {sx}..{ex}, {y} {sy}..{ey}"
    );

    let b = wait_status(&client, &bad, "failed", &[&ag]).await;
    let msg = annotation(&b, labels::MESSAGE).unwrap_or_default();
    assert!(msg.contains("apply") && msg.contains("worker"), "{msg}");
    assert_eq!(kubelet(&b), FROM);

    // Outside the selector: untouched.
    let o = node(&client, &outside).await;
    assert_eq!(annotation(&o, labels::STATUS).as_deref(), Some("pending"));
    assert_eq!(kubelet(&o), FROM);
    let mut dirs = files(state.path());
    dirs.sort();
    let mut want = vec![x.clone(), y.clone()];
    want.sort();
    assert!(
        dirs.iter().all(|d| want.contains(d)),
        "checkpoint dirs {dirs:?}, want only {want:?}"
    );
}

/// A report is checked against the agent's last copy of its node and sent with that
/// copy's resourceVersion (no read first). When the assignment was replaced after the
/// copy was taken, the API server refuses the write; the agent reads the node again
/// and writes nothing onto the other assignment. With a current copy the write lands
/// and the copy follows it, so the next report needs no read either.
#[tokio::test]
async fn a_report_from_a_stale_copy_never_lands_on_a_replaced_assignment() {
    use cupcake_agent::node::{self, Guard, Latest, NodeView, Report, Written};
    let client = client().await;
    let name = unique("stale");
    let mut nodes = TestNodes::default();
    nodes
        .create(&client, vec![kwok_node(&name, false, FROM, &[])])
        .await
        .unwrap();
    let api = Api::<Node>::all(client.clone());
    assign(&client, &name, "op-first", "in-place").await;
    let view = NodeView::of(&node(&client, &name).await);
    let guard = Guard::of(&view.annotations);

    // Current copy: written, and the copy now carries the write.
    let latest = Latest::of(&view);
    let w = node::write(
        &api,
        &name,
        &guard,
        &Report::Started { step: None },
        &latest,
    )
    .await
    .unwrap();
    assert_eq!(w, Written::Yes);
    let w = node::write(&api, &name, &guard, &Report::Step("01-a".into()), &latest)
        .await
        .unwrap();
    assert_eq!(w, Written::Yes, "the copy after the first write is current");
    let n = node(&client, &name).await;
    assert_eq!(
        annotation(&n, labels::STATUS).as_deref(),
        Some("in-progress")
    );
    assert_eq!(annotation(&n, labels::STEP).as_deref(), Some("01-a"));

    // Stale copy: the controller replaced the assignment after it was taken.
    let stale = Latest::of(&NodeView::of(&n));
    assign(&client, &name, "op-second", "in-place").await;
    let w = node::write(&api, &name, &guard, &Report::Step("02-b".into()), &stale)
        .await
        .unwrap();
    assert_eq!(w, Written::NotOurs);
    let w = node::write(
        &api,
        &name,
        &guard,
        &Report::Completed { last_step: None },
        &stale,
    )
    .await
    .unwrap();
    assert_eq!(w, Written::NotOurs);
    let n = node(&client, &name).await;
    assert_eq!(
        annotation(&n, labels::OPERATION_ID).as_deref(),
        Some("op-second")
    );
    assert_eq!(annotation(&n, labels::STATUS).as_deref(), Some("pending"));
    assert_eq!(
        annotation(&n, labels::STEP),
        None,
        "nothing of the old run on the new assignment"
    );
}
