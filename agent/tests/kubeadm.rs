//! The kubeadm executor on a real Debian root with the real apt-get, apt-cache,
//! apt-mark and dpkg (`tests/harness/debian-root.sh`: debootstrap minbase, signed
//! pkgs.k8s.io-style repositories of stand-in kubeadm/kubelet/kubectl packages
//! whose binaries record their calls, a stand-in systemctl). Each test works on
//! its own copy of the cached root (`cp -a --reflink=auto`) with `--host-root`
//! semantics (chroot), and drives the steps the way the agent's runner does:
//! checkpoint, `.inprogress`, the executor, `.done`, or `failed` with the message.
//!
//! When the root is missing (or we are not root) the tests say so and pass,
//! unless `CUPCAKE_REQUIRE_DEBIAN_ROOT=1` (tests/run-all.sh sets it).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::Utc;
use cupcake_agent::assignment::{Assignment, Role};
use cupcake_agent::checkpoint::{Checkpoint, Metadata};
use cupcake_agent::executor::host::{Access, Host};
use cupcake_agent::executor::kubeadm::Kubeadm;
use cupcake_agent::executor::{Executor, Job, StepLog};
use cupcake_agent::steps::{Step, plan};
use cupcake_api::common::Component;
use cupcake_api::protocol::UpgradeMode;

const CALLS: &str = "var/log/cupcake-standins/calls.log";

/// The cached root, or `None` (with a note) when it is missing and not required.
fn cached_root() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/harness/debian-root.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--print-dir")
        .output()
        .unwrap();
    let dir = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let complete = dir.parent().is_some_and(|p| p.join(".complete").is_file());
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if complete && is_root {
        return Some(dir);
    }
    let why = if is_root {
        format!(
            "no Debian root at {} (run tests/harness/debian-root.sh)",
            dir.display()
        )
    } else {
        "chroot needs root".to_string()
    };
    if std::env::var("CUPCAKE_REQUIRE_DEBIAN_ROOT").is_ok_and(|v| v == "1") {
        panic!("CUPCAKE_REQUIRE_DEBIAN_ROOT=1: {why}");
    }
    eprintln!("skipped: {why}");
    None
}

/// A kubelet /healthz answering ok (the kubelet is a stand-in in the root).
fn healthz() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/healthz", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nok");
        }
    });
    url
}

/// One node: a copy of the cached root and a state dir.
struct Node {
    _dir: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    healthz: String,
}

impl Node {
    fn new(cached: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let st = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(cached)
            .arg(&root)
            .status()
            .unwrap();
        assert!(st.success(), "copying the root");
        let state = dir.path().join("state");
        Self {
            _dir: dir,
            root,
            state,
            healthz: healthz(),
        }
    }

    fn executor(&self) -> Kubeadm {
        Kubeadm::new(Host::new(&self.root).unwrap(), Some(self.healthz.clone()))
    }

    fn in_root(&self, args: &[&str]) -> String {
        let o = Command::new("chroot")
            .arg(&self.root)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// `kubeadm 1.34.2-1.1` lines and the held packages.
    fn packages(&self) -> (String, String) {
        (
            self.in_root(&[
                "dpkg-query",
                "-W",
                "-f=${Package} ${Version}\n",
                "kubeadm",
                "kubelet",
                "kubectl",
                "containerd.io",
            ]),
            self.in_root(&["apt-mark", "showhold"]),
        )
    }

    fn file(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel)).unwrap_or_default()
    }

    /// The stand-ins' calls since the last `take_calls`.
    fn take_calls(&self) -> Vec<String> {
        let p = self.root.join(CALLS);
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        std::fs::write(&p, "").unwrap();
        text.lines().map(str::to_string).collect()
    }

    /// How many times dpkg installed `what` (e.g. `kubeadm:amd64 1.34.2-1.1`).
    fn installs(&self, what: &str) -> usize {
        self.file("var/log/dpkg.log")
            .lines()
            .filter(|l| l.contains(&format!("status installed {what}")))
            .count()
    }
}

struct Run {
    role: Role,
    assignment: Assignment,
}

fn run_for(role: Role, mode: UpgradeMode, target: &str, components: &[Component]) -> Run {
    Run {
        role,
        assignment: Assignment {
            operation_id: "op-1".into(),
            target: target.parse().unwrap(),
            components: components.to_vec(),
            mode,
        },
    }
}

const KUBE: [Component; 3] = [Component::Kubeadm, Component::Kubelet, Component::Kubectl];

impl Run {
    fn steps(&self) -> Vec<Step> {
        plan(self.role, self.assignment.mode, &self.assignment.components).unwrap()
    }

    /// Run the steps not done yet, like the agent's runner (a fresh executor:
    /// nothing but the checkpoint and the host carries over). `stop_after`:
    /// stop once that many steps are done, as a killed agent would.
    async fn go(&self, node: &Node, state: &Path, stop_after: Option<usize>) -> Result<(), String> {
        let steps = self.steps();
        let meta = Metadata {
            operation_id: self.assignment.operation_id.clone(),
            target_version: self.assignment.target.clone(),
            components: self.assignment.components.clone(),
            mode: self.assignment.mode,
            node: "n-1".into(),
            role: self.role,
            steps: steps.iter().map(Step::id).collect(),
            started: Utc::now(),
        };
        let (mut cp, _) = Checkpoint::open(state, &meta).unwrap();
        if cp.failure().is_some() {
            cp.clear_failure().unwrap(); // a retry
        }
        let exec = node.executor();
        let job = Job {
            node: "n-1",
            role: self.role,
            assignment: &self.assignment,
        };
        while let Some(i) = cp.next() {
            if stop_after.is_some_and(|n| cp.done() >= n) {
                return Ok(());
            }
            let step = &steps[i];
            cp.begin(i, Utc::now()).unwrap();
            let mut log = StepLog::open(&cp.log_path(i));
            match exec.run_step(&job, step, &mut log).await {
                Ok(()) => cp.finish(i, Utc::now()).unwrap(),
                Err(e) => {
                    let message = format!("step {} failed: {e}", step.id());
                    eprintln!(
                        "{message}\n--- {}:\n{}",
                        log.path().display(),
                        std::fs::read_to_string(log.path()).unwrap_or_default()
                    );
                    cp.fail(&message).unwrap();
                    return Err(message);
                }
            }
        }
        cp.complete(Utc::now()).unwrap();
        Ok(())
    }
}

/// The stand-ins' calls that change or check the cluster (not version probes of the runner).
fn kubeadm_calls(calls: &[String]) -> Vec<&str> {
    calls
        .iter()
        .map(String::as_str)
        .filter(|c| c.contains(" upgrade "))
        .collect()
}

const HELD: &str = "kubeadm\nkubectl\nkubelet\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_control_plane_apply_node_from_1_33_to_1_34_then_a_rerun_changes_nothing() {
    let Some(cached) = cached_root() else { return };
    let node = Node::new(&cached);
    let before_list = node.file("etc/apt/sources.list.d/kubernetes.list");
    let r = run_for(Role::ControlPlane, UpgradeMode::Apply, "1.34.2", &KUBE);
    r.go(&node, &node.state, None).await.unwrap();

    let calls = node.take_calls();
    assert_eq!(
        calls,
        [
            "kubeadm@1.34.2 upgrade plan v1.34.2",
            "kubeadm@1.34.2 upgrade apply v1.34.2 --yes",
            "systemctl daemon-reload",
            "systemctl restart kubelet",
            "kubelet@1.34.2 --version", // the stand-in systemctl records what it started
            "kubeadm@1.34.2 version -o short",
            "kubelet@1.34.2 --version",
            "kubectl@1.34.2 version --client -o json",
            "systemctl is-active kubelet",
        ]
    );
    let (pkgs, held) = node.packages();
    assert_eq!(
        pkgs,
        "containerd.io 1.7.24-1\nkubeadm 1.34.2-1.1\nkubectl 1.34.2-1.1\nkubelet 1.34.2-1.1\n"
    );
    assert_eq!(held, HELD);
    // Only the minor moved; the keyring path stays.
    assert_eq!(
        node.file("etc/apt/sources.list.d/kubernetes.list"),
        before_list.replace("/v1.33/", "/v1.34/")
    );
    assert!(before_list.contains("signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg"));
    for c in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        assert!(
            node.file(&format!("etc/kubernetes/manifests/{c}.yaml"))
                .contains(&format!("image: registry.k8s.io/{c}:v1.34.2")),
            "{c}"
        );
    }
    let log = std::fs::read_to_string(
        node.state
            .join("operation-op-1/logs/02-upgrade-kubeadm-package.log"),
    )
    .unwrap();
    assert!(log.contains("$ apt-mark unhold kubeadm"), "{log}");
    assert!(log.contains("kubeadm=1.34.2-1.1"), "{log}");
    assert!(log.contains("$ apt-mark hold kubeadm"), "{log}");

    // The same operation from a lost state directory: every step checks first.
    let dpkg_log = node.file("var/log/dpkg.log");
    let again = tempfile::tempdir().unwrap();
    r.go(&node, again.path(), None).await.unwrap();
    let calls = node.take_calls();
    assert!(kubeadm_calls(&calls).is_empty(), "{calls:?}");
    assert_eq!(node.file("var/log/dpkg.log"), dpkg_log, "dpkg ran again");
    assert_eq!(node.packages(), (pkgs, held));
    for step in ["02-upgrade-kubeadm-package", "04-upgrade-kubelet-kubectl"] {
        let log =
            std::fs::read_to_string(again.path().join(format!("operation-op-1/logs/{step}.log")))
                .unwrap();
        assert!(
            log.contains("installed and held, nothing to change"),
            "{log}"
        );
        assert!(!log.contains("apt-get install"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_with_containerd_runs_upgrade_node_and_restarts_containerd() {
    let Some(cached) = cached_root() else { return };
    let node = Node::new(&cached);
    let mut comps = KUBE.to_vec();
    comps.push(Component::Containerd);
    let r = run_for(Role::Worker, UpgradeMode::Node, "1.34.1", &comps);
    r.go(&node, &node.state, None).await.unwrap();
    let calls = node.take_calls();
    assert_eq!(kubeadm_calls(&calls), ["kubeadm@1.34.1 upgrade node"]);
    assert!(
        calls.contains(&"systemctl restart containerd".to_string()),
        "{calls:?}"
    );
    let restart = calls
        .iter()
        .position(|c| c == "systemctl restart kubelet")
        .unwrap();
    let upgrade = calls
        .iter()
        .position(|c| c.contains("upgrade node"))
        .unwrap();
    assert!(upgrade < restart, "{calls:?}");
    assert_eq!(
        node.packages(),
        (
            "containerd.io 1.7.28-1\nkubeadm 1.34.1-1.1\nkubectl 1.34.1-1.1\nkubelet 1.34.1-1.1\n"
                .to_string(),
            HELD.to_string()
        )
    );
    assert!(
        node.file("var/lib/kubelet/config.yaml")
            .contains("kubeadm v1.34.1 upgrade node")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_between_any_two_steps_resumes_without_repeating_one() {
    let Some(cached) = cached_root() else { return };
    let r = run_for(Role::ControlPlane, UpgradeMode::Apply, "1.34.2", &KUBE);
    let n = r.steps().len();
    for k in 1..n {
        let node = Node::new(&cached);
        r.go(&node, &node.state, Some(k)).await.unwrap();
        let first = node.take_calls();
        r.go(&node, &node.state, None).await.unwrap();
        let second = node.take_calls();
        let all: Vec<String> = first.iter().chain(&second).cloned().collect();
        assert_eq!(
            kubeadm_calls(&all),
            [
                "kubeadm@1.34.2 upgrade plan v1.34.2",
                "kubeadm@1.34.2 upgrade apply v1.34.2 --yes"
            ],
            "killed after {k} steps"
        );
        assert_eq!(
            all.iter()
                .filter(|c| *c == "systemctl restart kubelet")
                .count(),
            1,
            "killed after {k} steps: {all:?}"
        );
        for p in ["kubeadm", "kubelet", "kubectl"] {
            assert_eq!(
                node.installs(&format!("{p}:amd64 1.34.2-1.1")),
                1,
                "{p}, killed after {k} steps"
            );
        }
        assert_eq!(node.packages().1, HELD, "killed after {k} steps");
        assert!(node.state.join("operation-op-1/completed").is_file());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_missing_from_the_repository_fails_in_preflight_before_anything_changes() {
    let Some(cached) = cached_root() else { return };
    let node = Node::new(&cached);
    let list = node.file("etc/apt/sources.list.d/kubernetes.list");
    let dpkg_log = node.file("var/log/dpkg.log");
    let before = node.packages();
    let r = run_for(Role::ControlPlane, UpgradeMode::Apply, "1.34.3", &KUBE);
    let e = r.go(&node, &node.state, None).await.unwrap_err();
    assert!(e.starts_with("step 01-preflight failed: kubeadm 1.34.3 is not in the repository (`apt-cache madison kubeadm` lists 1.34.2-1.1, 1.34.1-1.1)"), "{e}");
    assert!(
        e.contains(
            "/etc/apt/sources.list.d/kubernetes.list put back as it was, no package changed"
        ),
        "{e}"
    );
    assert_eq!(node.file("etc/apt/sources.list.d/kubernetes.list"), list);
    assert_eq!(node.file("var/log/dpkg.log"), dpkg_log);
    assert_eq!(node.packages(), before);
    assert_eq!(node.take_calls(), Vec::<String>::new());
    let failed = std::fs::read_to_string(node.state.join("operation-op-1/failed")).unwrap();
    assert_eq!(failed.trim(), e);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_kubeadm_upgrade_fails_the_node_with_the_message_and_a_retry_resumes_there() {
    let Some(cached) = cached_root() else { return };
    let node = Node::new(&cached);
    let switch = node.root.join("etc/cupcake-standins/fail-kubeadm-upgrade");
    std::fs::write(&switch, "").unwrap();
    let r = run_for(Role::ControlPlane, UpgradeMode::Apply, "1.34.2", &KUBE);
    let e = r.go(&node, &node.state, None).await.unwrap_err();
    assert!(
        e.starts_with("step 03-kubeadm-upgrade-apply failed: `kubeadm upgrade apply v1.34.2 --yes` exited with code 1: "),
        "{e}"
    );
    assert!(e.contains("Errors faced: stand-in failure"), "{e}");
    assert!(e.contains("logs/03-kubeadm-upgrade-apply.log"), "{e}");
    let failed = std::fs::read_to_string(node.state.join("operation-op-1/failed")).unwrap();
    assert_eq!(failed.trim(), e);
    assert!(
        node.state
            .join("operation-op-1/step-03-kubeadm-upgrade-apply.inprogress")
            .is_file()
    );
    // kubelet was not touched.
    let (pkgs, _) = node.packages();
    assert!(pkgs.contains("kubelet 1.33.4-1.1"), "{pkgs}");

    std::fs::remove_file(&switch).unwrap();
    node.take_calls();
    r.go(&node, &node.state, None).await.unwrap();
    let calls = node.take_calls();
    assert_eq!(
        kubeadm_calls(&calls),
        [
            "kubeadm@1.34.2 upgrade plan v1.34.2",
            "kubeadm@1.34.2 upgrade apply v1.34.2 --yes"
        ]
    );
    assert_eq!(node.installs("kubeadm:amd64 1.34.2-1.1"), 1);
    assert_eq!(node.packages().1, HELD);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_host_root_slash_commands_go_through_nsenter_into_pid_1() {
    let Some(cached) = cached_root() else { return };
    let node = Node::new(&cached);
    // A stand-in nsenter: checks it is asked for PID 1's namespaces, records the
    // call, and enters the test's root instead of this machine's.
    let bin = node.root.parent().unwrap().join("nsenter");
    let calls = node.root.parent().unwrap().join("nsenter.calls");
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\n[ \"$1 $2 $3 $4 $5 $6 $7 $8\" = '--target 1 --mount --uts --ipc --net --pid --' ] || {{ echo \"nsenter stand-in: unexpected $*\" >&2; exit 2; }}\nshift 8\necho \"$*\" >>{calls}\nexec chroot {root} \"$@\"\n",
            calls = calls.display(),
            root = node.root.display()
        ),
    )
    .unwrap();
    assert!(
        Command::new("chmod")
            .arg("+x")
            .arg(&bin)
            .status()
            .unwrap()
            .success()
    );
    let exec = Kubeadm::new(
        Host::with_access(Access::Nsenter { nsenter: bin }),
        Some(node.healthz.clone()),
    );
    let r = run_for(Role::Worker, UpgradeMode::Node, "1.33.5", &KUBE);
    let steps = r.steps();
    let job = Job {
        node: "n-1",
        role: r.role,
        assignment: &r.assignment,
    };
    std::fs::create_dir_all(&node.state).unwrap();
    for step in &steps {
        let mut log = StepLog::open(&node.state.join(format!("{}.log", step.id())));
        exec.run_step(&job, step, &mut log).await.unwrap();
    }
    let seen = std::fs::read_to_string(&calls).unwrap();
    assert!(
        seen.lines()
            .any(|l| l.starts_with("apt-get install ") && l.ends_with("kubeadm=1.33.5-1.1")),
        "{seen}"
    );
    assert!(seen.contains("kubeadm upgrade node\n"), "{seen}");
    assert_eq!(
        node.packages().0,
        "containerd.io 1.7.24-1\nkubeadm 1.33.5-1.1\nkubectl 1.33.5-1.1\nkubelet 1.33.5-1.1\n"
    );
}
