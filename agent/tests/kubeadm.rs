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

mod kubeadm_common;

use std::process::Command;

use cupcake_agent::assignment::Role;
use cupcake_agent::executor::host::{Access, Host};
use cupcake_agent::executor::kubeadm::Kubeadm;
use cupcake_agent::executor::{Executor, Job, StepLog};
use cupcake_api::common::Component;
use cupcake_api::protocol::UpgradeMode;
use kubeadm_common::{Flavor, KUBE, Node, kubeadm_calls, run_for};

fn cached_root() -> Option<std::path::PathBuf> {
    kubeadm_common::cached_root(Flavor::Apt)
}

const HELD: &str = "kubeadm\nkubectl\nkubelet\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_control_plane_apply_node_from_1_33_to_1_34_then_a_rerun_changes_nothing() {
    let Some(cached) = cached_root() else { return };
    let node = Node::new(&cached, Flavor::Apt);
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
    let node = Node::new(&cached, Flavor::Apt);
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
        let node = Node::new(&cached, Flavor::Apt);
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
                node.installs(p, "1.34.2-1.1"),
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
    let node = Node::new(&cached, Flavor::Apt);
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
    let node = Node::new(&cached, Flavor::Apt);
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
    assert_eq!(node.installs("kubeadm", "1.34.2-1.1"), 1);
    assert_eq!(node.packages().1, HELD);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_host_root_slash_commands_go_through_nsenter_into_pid_1() {
    let Some(cached) = cached_root() else { return };
    let node = Node::new(&cached, Flavor::Apt);
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
