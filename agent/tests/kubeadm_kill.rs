//! `kill -9` of the real agent binary in the middle of a step, on the real roots.
//!
//! `cupcake-agent run` (one assignment offline: the agent's step loop and
//! checkpoints, the kubeadm executor with `--host-root`) is started as a child
//! process; the stand-in kubeadm blocks in `upgrade apply` while
//! `/etc/cupcake-standins/block-kubeadm-upgrade` exists (after recording its call,
//! before changing anything). Then the agent gets SIGKILL, and so does the blocked
//! stand-in (the pod's processes die with it). A restarted agent resumes at the
//! interrupted step, runs no done step again (the stand-ins' call log and the
//! package manager's log say so) and ends with the right package state.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod kubeadm_common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubeadm_common::{Flavor, Node, kubeadm_calls};

const BLOCK: &str = "etc/cupcake-standins/block-kubeadm-upgrade";
const BLOCKED: &str = "var/log/cupcake-standins/kubeadm-blocked";

fn agent(node: &Node) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cupcake-agent"));
    c.args([
        "run",
        "--node-name",
        "n-1",
        "--operation-id",
        "op-1",
        "--role",
        "control-plane",
        "--mode",
        "apply",
        "--to",
        "1.34.2",
        "--kubelet-healthz-url",
        &node.healthz,
    ])
    .arg("--host-root")
    .arg(&node.root)
    .arg("--state-dir")
    .arg(&node.state)
    .env_remove("NODE_NAME")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

fn wait_for(path: &Path, what: &str, child: &mut std::process::Child) {
    // Not a timing assertion: a bound so a broken stand-in fails the test instead of hanging it.
    let limit = Instant::now() + Duration::from_secs(600);
    while !path.is_file()
        || std::fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .is_empty()
    {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the agent exited ({st}) before {what}");
        }
        assert!(Instant::now() < limit, "{what} never happened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill_mid_step_and_resume(flavor: Flavor, version: &str) {
    let Some(cached) = kubeadm_common::cached_root(flavor) else {
        return;
    };
    let node = Node::new(&cached, flavor);
    std::fs::write(node.root.join(BLOCK), "").unwrap();
    let mut first = agent(&node).spawn().unwrap();
    wait_for(
        &node.root.join(BLOCKED),
        "kubeadm upgrade apply blocked",
        &mut first,
    );
    first.kill().unwrap(); // SIGKILL
    let st = first.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9));
    // The blocked stand-in dies with the agent's pod.
    let pid = std::fs::read_to_string(node.root.join(BLOCKED)).unwrap();
    let _ = Command::new("kill").args(["-9", pid.trim()]).status();
    std::fs::remove_file(node.root.join(BLOCK)).unwrap();
    let op = node.state.join("operation-op-1");
    assert!(op.join("step-01-preflight.done").is_file());
    assert!(op.join("step-02-upgrade-kubeadm-package.done").is_file());
    assert!(
        op.join("step-03-kubeadm-upgrade-apply.inprogress")
            .is_file()
    );
    assert!(!op.join("completed").exists());
    let before = node.take_calls();
    assert_eq!(
        kubeadm_calls(&before),
        [
            "kubeadm@1.34.2 upgrade plan v1.34.2",
            "kubeadm@1.34.2 upgrade apply v1.34.2 --yes"
        ]
    );
    // Killed before kubeadm changed anything: the static pods still run 1.33.4.
    assert!(
        node.file("etc/kubernetes/manifests/kube-apiserver.yaml")
            .contains(":v1.33.4")
    );

    let out = agent(&node).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "restarted agent: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("step "))
        .collect();
    assert_eq!(
        steps,
        [
            "03-kubeadm-upgrade-apply",
            "04-upgrade-kubelet-kubectl",
            "05-restart-kubelet",
            "06-verify"
        ],
        "{stdout}"
    );
    let after = node.take_calls();
    assert_eq!(
        kubeadm_calls(&after),
        [
            "kubeadm@1.34.2 upgrade plan v1.34.2",
            "kubeadm@1.34.2 upgrade apply v1.34.2 --yes"
        ],
        "the interrupted step runs again from its start"
    );
    let all: Vec<&String> = before.iter().chain(&after).collect();
    assert_eq!(
        all.iter()
            .filter(|c| c.as_str() == "systemctl restart kubelet")
            .count(),
        1
    );
    for p in ["kubeadm", "kubelet", "kubectl"] {
        assert_eq!(node.installs(p, version), 1, "{p} installed once");
    }
    let (pkgs, held) = node.packages();
    for p in ["kubeadm", "kubectl", "kubelet"] {
        assert!(pkgs.contains(&format!("{p} {version}\n")), "{pkgs}");
    }
    assert_eq!(held, "kubeadm\nkubectl\nkubelet\n");
    assert!(
        node.file("etc/kubernetes/manifests/kube-apiserver.yaml")
            .contains(":v1.34.2")
    );
    assert!(op.join("completed").is_file());
    // A third start finds it completed and runs nothing.
    let out = agent(&node).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("already completed"));
    assert_eq!(node.take_calls(), Vec::<String>::new());
}

#[test]
fn apt_a_kill_9_in_the_middle_of_kubeadm_upgrade_apply_resumes_there() {
    kill_mid_step_and_resume(Flavor::Apt, "1.34.2-1.1");
}

#[test]
fn dnf_a_kill_9_in_the_middle_of_kubeadm_upgrade_apply_resumes_there() {
    kill_mid_step_and_resume(Flavor::Dnf, "1.34.2-150500.1.1");
}

/// Every process whose root is `root` (apt-get, dpkg, the maintainer script under chroot).
fn kill_all_in(root: &Path) {
    let root = std::fs::canonicalize(root).unwrap();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read_link(e.path().join("root")).is_ok_and(|r| r == root) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// The worst moment: the agent, apt-get and dpkg die while dpkg configures the new
/// kubeadm (dpkg is left "interrupted"; apt-get refuses to run until `dpkg
/// --configure -a`). The restarted agent finishes dpkg's run, then resumes.
#[test]
fn apt_a_kill_9_while_dpkg_configures_kubeadm_resumes_and_finishes_dpkg() {
    let Some(cached) = kubeadm_common::cached_root(Flavor::Apt) else {
        return;
    };
    let node = Node::new(&cached, Flavor::Apt);
    let block = node.root.join("etc/cupcake-standins/block-dpkg-configure");
    std::fs::write(&block, "").unwrap();
    let mut first = agent(&node).spawn().unwrap();
    wait_for(
        &node.root.join("var/log/cupcake-standins/dpkg-blocked"),
        "dpkg configuring kubeadm blocked",
        &mut first,
    );
    first.kill().unwrap();
    first.wait().unwrap();
    kill_all_in(&node.root);
    std::fs::remove_file(&block).unwrap();
    let audit = node.in_root(&["dpkg", "--audit"]);
    assert!(
        audit.contains("kubeadm"),
        "dpkg not left interrupted: {audit:?}"
    );
    let op = node.state.join("operation-op-1");
    assert!(
        op.join("step-02-upgrade-kubeadm-package.inprogress")
            .is_file()
    );

    let out = agent(&node).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "restarted agent: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("step 02-upgrade-kubeadm-package\n"),
        "{stdout}"
    );
    let log = std::fs::read_to_string(op.join("logs/02-upgrade-kubeadm-package.log")).unwrap();
    assert!(
        log.contains("an earlier dpkg run was interrupted: finishing it first")
            && log.contains("$ dpkg --configure -a"),
        "{log}"
    );
    assert_eq!(node.in_root(&["dpkg", "--audit"]), "");
    assert_eq!(
        node.packages(),
        (
            "containerd.io 1.7.24-1\nkubeadm 1.34.2-1.1\nkubectl 1.34.2-1.1\nkubelet 1.34.2-1.1\n"
                .to_string(),
            "kubeadm\nkubectl\nkubelet\n".to_string()
        )
    );
    assert_eq!(
        kubeadm_calls(&node.take_calls()),
        [
            "kubeadm@1.34.2 upgrade plan v1.34.2",
            "kubeadm@1.34.2 upgrade apply v1.34.2 --yes"
        ]
    );
    assert!(op.join("completed").is_file());
}
