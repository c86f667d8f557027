//! The kubeadm executor on an RPM node: Debian's real dnf 4, rpm and
//! dnf-plugins-core (versionlock) in a Debian root without apt-get
//! (`tests/harness/dnf-root.sh`: pkgs.k8s.io-style rpm repositories of stand-in
//! kubeadm/kubelet/kubectl 1.33.4, 1.34.0, 1.34.2-150500.1.1 built with rpmbuild,
//! the repo file with `exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni`,
//! the three version-locked at 1.33.4). Each test works on its own copy of the
//! cached root under chroot, with the agent's step loop and checkpoints.
//!
//! When the root is missing (or we are not root) the tests say so and pass,
//! unless `CUPCAKE_REQUIRE_DNF_ROOT=1` (tests/run-all.sh sets it).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod kubeadm_common;

use cupcake_agent::assignment::Role;
use cupcake_api::common::Component;
use cupcake_api::protocol::UpgradeMode;
use kubeadm_common::{Flavor, KUBE, Node, kubeadm_calls, run_for};

const REPO: &str = "etc/yum.repos.d/kubernetes.repo";
const HELD: &str = "kubeadm\nkubectl\nkubelet\n";

fn cached_root() -> Option<std::path::PathBuf> {
    kubeadm_common::cached_root(Flavor::Dnf)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_control_plane_apply_node_from_1_33_to_1_34_with_dnf_then_a_rerun_changes_nothing() {
    let Some(cached) = cached_root() else { return };
    let node = Node::new(&cached, Flavor::Dnf);
    let before_repo = node.file(REPO);
    assert!(before_repo.contains("exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n"));
    let r = run_for(Role::ControlPlane, UpgradeMode::Apply, "1.34.2", &KUBE);
    r.go(&node, &node.state, None).await.unwrap();

    assert_eq!(
        node.take_calls(),
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
        "containerd.io 1.7.24-3.1\nkubeadm 1.34.2-150500.1.1\nkubectl 1.34.2-150500.1.1\nkubelet 1.34.2-150500.1.1\n"
    );
    assert_eq!(held, HELD);
    let mut locks = node.versionlocks();
    locks.sort();
    assert_eq!(
        locks,
        [
            "kubeadm-0:1.34.2-150500.1.1.*",
            "kubectl-0:1.34.2-150500.1.1.*",
            "kubelet-0:1.34.2-150500.1.1.*"
        ]
    );
    // Only the minor of baseurl and gpgkey moved; exclude= and everything else stay.
    assert_eq!(node.file(REPO), before_repo.replace("/v1.33/", "/v1.34/"));
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
    for want in [
        "$ dnf versionlock delete kubeadm",
        "$ dnf install -y --disableexcludes=kubernetes kubeadm-1.34.2-150500.1.1",
        "$ dnf versionlock add kubeadm",
    ] {
        assert!(log.contains(want), "{want} not in {log}");
    }
    let preflight =
        std::fs::read_to_string(node.state.join("operation-op-1/logs/01-preflight.log")).unwrap();
    assert!(preflight.contains("package manager: dnf"), "{preflight}");
    assert!(
        preflight.contains("kubeadm 1.34.2: 1.34.2-150500.1.1"),
        "{preflight}"
    );
    assert_eq!(node.installs("kubeadm", "1.34.2-150500.1.1"), 1);

    // The same operation from a lost state directory: every step checks first.
    let rpm_log = node.package_log();
    let again = tempfile::tempdir().unwrap();
    r.go(&node, again.path(), None).await.unwrap();
    let calls = node.take_calls();
    assert!(kubeadm_calls(&calls).is_empty(), "{calls:?}");
    assert_eq!(node.package_log(), rpm_log, "dnf changed packages again");
    assert_eq!(node.packages(), (pkgs, held));
    for step in ["02-upgrade-kubeadm-package", "04-upgrade-kubelet-kubectl"] {
        let log =
            std::fs::read_to_string(again.path().join(format!("operation-op-1/logs/{step}.log")))
                .unwrap();
        assert!(
            log.contains("installed and held, nothing to change"),
            "{log}"
        );
        assert!(!log.contains("dnf install"), "{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_with_containerd_moves_from_1_33_4_to_1_34_2_with_dnf() {
    let Some(cached) = cached_root() else { return };
    let node = Node::new(&cached, Flavor::Dnf);
    let mut comps = KUBE.to_vec();
    comps.push(Component::Containerd);
    let r = run_for(Role::Worker, UpgradeMode::Node, "1.34.2", &comps);
    r.go(&node, &node.state, None).await.unwrap();
    let calls = node.take_calls();
    assert_eq!(kubeadm_calls(&calls), ["kubeadm@1.34.2 upgrade node"]);
    let pos = |c: &str| calls.iter().position(|x| x == c).unwrap();
    assert!(pos("systemctl restart containerd") < pos("systemctl restart kubelet"));
    assert!(pos("kubeadm@1.34.2 upgrade node") < pos("systemctl restart kubelet"));
    assert_eq!(
        node.packages(),
        (
            "containerd.io 1.7.28-1\nkubeadm 1.34.2-150500.1.1\nkubectl 1.34.2-150500.1.1\nkubelet 1.34.2-150500.1.1\n"
                .to_string(),
            HELD.to_string()
        )
    );
    assert!(
        node.file("var/lib/kubelet/config.yaml")
            .contains("kubeadm v1.34.2 upgrade node")
    );
    assert!(
        node.file(REPO)
            .contains("baseurl=file:///srv/pkgs.k8s.io/core:/stable:/v1.34/rpm/\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_missing_from_the_rpm_repository_fails_in_preflight_before_anything_changes() {
    let Some(cached) = cached_root() else { return };
    let node = Node::new(&cached, Flavor::Dnf);
    let repo = node.file(REPO);
    let rpm_log = node.package_log();
    let before = node.packages();
    let locks = node.versionlocks();
    let r = run_for(Role::Worker, UpgradeMode::Node, "1.34.1", &KUBE);
    let e = r.go(&node, &node.state, None).await.unwrap_err();
    assert!(
        e.starts_with("step 01-preflight failed: kubeadm 1.34.1 is not in the repository (`dnf list --quiet --showduplicates --disableexcludes=kubernetes kubeadm` lists 1.34.2-150500.1.1, 1.34.0-150500.1.1)"),
        "{e}"
    );
    assert!(
        e.ends_with("/etc/yum.repos.d/kubernetes.repo put back as it was, no package changed"),
        "{e}"
    );
    assert_eq!(node.file(REPO), repo);
    assert_eq!(node.package_log(), rpm_log);
    assert_eq!(node.packages(), before);
    assert_eq!(node.versionlocks(), locks);
    assert_eq!(node.take_calls(), Vec::<String>::new());
}
