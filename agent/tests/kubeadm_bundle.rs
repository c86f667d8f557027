//! Air-gapped package bundles (docs/host-steps.md, "Air-gapped bundle") on the
//! real roots: apt (`tests/harness/debian-root.sh`, whose bundle mirror
//! `/var/lib/cupcake/bundle/apt` is a flat repository signed by a key apt does not
//! trust until the bundle's keyring.gpg is written) and dnf
//! (`tests/harness/dnf-root.sh`, mirror `/var/lib/cupcake/bundle/rpm`). The
//! executor gets the bundle as the agent would after reading the ConfigMap
//! (`LoadedBundle`), points the repository at the mirror and installs the
//! bundle's exact versions, checked in the repository before anything changes.
//!
//! Skipped like the other root tests unless CUPCAKE_REQUIRE_DEBIAN_ROOT=1 /
//! CUPCAKE_REQUIRE_DNF_ROOT=1.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod kubeadm_common;

use cupcake_agent::assignment::Role;
use cupcake_agent::executor::kubeadm::LoadedBundle;
use cupcake_api::bundle::PackageBundle;
use cupcake_api::common::Component;
use cupcake_api::protocol::UpgradeMode;
use kubeadm_common::{Flavor, KUBE, Node, kubeadm_calls, run_for};

const APT_LIST: &str = "etc/apt/sources.list.d/kubernetes.list";
const APT_KEYRING: &str = "etc/apt/keyrings/cupcake-bundle.gpg";
const RPM_REPO: &str = "etc/yum.repos.d/kubernetes.repo";
const RPM_KEYRING: &str = "etc/pki/rpm-gpg/cupcake-bundle.gpg";

fn bundle(yaml: &str, keyring: Option<Vec<u8>>) -> LoadedBundle {
    LoadedBundle {
        source: "ConfigMap ops/k8s-1-34".into(),
        bundle: PackageBundle::from_yaml(yaml).unwrap(),
        keyring,
    }
}

fn apt_bundle(kubeadm: &str) -> String {
    format!(
        r#"apiVersion: cupcake.ricardomolendijk.com/v1
kind: PackageBundle
repository:
  apt: "file:///var/lib/cupcake/bundle/apt"
versions:
  "1.34.2": {{kubeadm: "{kubeadm}", kubelet: "1.34.2-1.1", kubectl: "1.34.2-1.1", containerd: "1.7.28-1"}}
"#
    )
}

const DNF_BUNDLE: &str = r#"apiVersion: cupcake.ricardomolendijk.com/v1
kind: PackageBundle
repository:
  apt: "file:///var/lib/cupcake/bundle/apt"
  dnf: "file:///var/lib/cupcake/bundle/rpm"
versions:
  "1.34.2": {kubeadm: "1.34.2-150500.1.1", kubelet: "1.34.2-150500.1.1", kubectl: "1.34.2-150500.1.1", containerd: "1.7.28-1"}
"#;

fn with_containerd() -> Vec<Component> {
    let mut c = KUBE.to_vec();
    c.push(Component::Containerd);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn apt_installs_the_bundles_exact_versions_from_its_signed_mirror_and_a_rerun_changes_nothing()
 {
    let Some(cached) = kubeadm_common::cached_root(Flavor::Apt) else {
        return;
    };
    let mut node = Node::new(&cached, Flavor::Apt);
    let key = std::fs::read(node.root.join("srv/bundle/keyring.gpg")).unwrap();
    node.bundle = Some(bundle(&apt_bundle("1.34.2-1.1"), Some(key.clone())));
    let r = run_for(
        Role::Worker,
        UpgradeMode::Node,
        "1.34.2",
        &with_containerd(),
    );
    r.go(&node, &node.state, None).await.unwrap();

    assert_eq!(
        node.file(APT_LIST),
        "# Written by cupcake-agent: packages from the air-gapped package bundle ConfigMap ops/k8s-1-34.\n\
         deb [signed-by=/etc/apt/keyrings/cupcake-bundle.gpg] file:///var/lib/cupcake/bundle/apt ./\n"
    );
    assert_eq!(std::fs::read(node.root.join(APT_KEYRING)).unwrap(), key);
    let calls = node.take_calls();
    assert_eq!(kubeadm_calls(&calls), ["kubeadm@1.34.2 upgrade node"]);
    assert!(calls.contains(&"systemctl restart containerd".to_string()));
    assert_eq!(
        node.packages(),
        (
            "containerd.io 1.7.28-1\nkubeadm 1.34.2-1.1\nkubectl 1.34.2-1.1\nkubelet 1.34.2-1.1\n"
                .to_string(),
            "kubeadm\nkubectl\nkubelet\n".to_string()
        )
    );
    let preflight =
        std::fs::read_to_string(node.state.join("operation-op-1/logs/01-preflight.log")).unwrap();
    assert!(
        preflight.contains(
            "air-gapped: packages from the package bundle ConfigMap ops/k8s-1-34 (with keyring.gpg)"
        ),
        "{preflight}"
    );
    // The bundle's version is checked in the mirror, not guessed from it.
    assert!(
        preflight.contains("$ apt-cache madison kubeadm"),
        "{preflight}"
    );
    assert!(
        preflight.contains("kubeadm 1.34.2: 1.34.2-1.1"),
        "{preflight}"
    );

    let dpkg = node.package_log();
    let again = tempfile::tempdir().unwrap();
    r.go(&node, again.path(), None).await.unwrap();
    assert_eq!(node.package_log(), dpkg, "dpkg ran again");
    let preflight =
        std::fs::read_to_string(again.path().join("operation-op-1/logs/01-preflight.log")).unwrap();
    assert!(
        preflight
            .contains("/etc/apt/keyrings/cupcake-bundle.gpg already holds the bundle's keyring"),
        "{preflight}"
    );
    assert!(
        preflight.contains("already points at file:///var/lib/cupcake/bundle/apt"),
        "{preflight}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apt_without_the_bundles_keyring_refuses_the_mirror_and_puts_everything_back() {
    let Some(cached) = kubeadm_common::cached_root(Flavor::Apt) else {
        return;
    };
    let mut node = Node::new(&cached, Flavor::Apt);
    // No keyring.gpg: the file keeps pkgs.k8s.io's key, which did not sign the mirror.
    node.bundle = Some(bundle(&apt_bundle("1.34.2-1.1"), None));
    let list = node.file(APT_LIST);
    let before = node.packages();
    let dpkg = node.package_log();
    let r = run_for(Role::Worker, UpgradeMode::Node, "1.34.2", &KUBE);
    let e = r.go(&node, &node.state, None).await.unwrap_err();
    assert!(
        e.starts_with("step 01-preflight failed: `apt-get update` exited with code 100"),
        "{e}"
    );
    assert!(e.contains("NO_PUBKEY") || e.contains("not signed"), "{e}");
    assert!(
        e.ends_with(
            "/etc/apt/sources.list.d/kubernetes.list put back as it was, no package changed"
        ),
        "{e}"
    );
    assert_eq!(node.file(APT_LIST), list);
    assert_eq!(node.packages(), before);
    assert_eq!(node.package_log(), dpkg);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_version_missing_from_its_mirror_fails_in_preflight_naming_the_bundle() {
    let Some(cached) = kubeadm_common::cached_root(Flavor::Apt) else {
        return;
    };
    let mut node = Node::new(&cached, Flavor::Apt);
    let key = std::fs::read(node.root.join("srv/bundle/keyring.gpg")).unwrap();
    node.bundle = Some(bundle(&apt_bundle("1.34.2-1.9"), Some(key)));
    let list = node.file(APT_LIST);
    let before = node.packages();
    let r = run_for(Role::ControlPlane, UpgradeMode::Apply, "1.34.2", &KUBE);
    let e = r.go(&node, &node.state, None).await.unwrap_err();
    assert_eq!(
        e,
        "step 01-preflight failed: kubeadm 1.34.2-1.9 of the package bundle ConfigMap ops/k8s-1-34 is not in its repository file:///var/lib/cupcake/bundle/apt (`apt-cache madison kubeadm` lists 1.34.2-1.1); /etc/apt/sources.list.d/kubernetes.list put back as it was, no package changed"
    );
    assert_eq!(node.file(APT_LIST), list);
    assert!(!node.root.join(APT_KEYRING).exists(), "keyring left behind");
    assert_eq!(node.packages(), before);
    assert_eq!(node.take_calls(), Vec::<String>::new());

    // A bundle that does not list a component fails before any command changes anything.
    let mut node = Node::new(&cached, Flavor::Apt);
    let no_kubelet = apt_bundle("1.34.2-1.1").replace("kubelet: \"1.34.2-1.1\", ", "");
    node.bundle = Some(bundle(&no_kubelet, None));
    let e = r.go(&node, &node.state, None).await.unwrap_err();
    assert_eq!(
        e,
        "step 01-preflight failed: the package bundle ConfigMap ops/k8s-1-34 lists no kubelet for 1.34.2; nothing changed"
    );
    assert_eq!(node.file(APT_LIST), list);
}

#[tokio::test(flavor = "multi_thread")]
async fn dnf_installs_the_bundles_exact_versions_from_its_rpm_mirror() {
    let Some(cached) = kubeadm_common::cached_root(Flavor::Dnf) else {
        return;
    };
    let mut node = Node::new(&cached, Flavor::Dnf);
    let before = node.file(RPM_REPO);
    node.bundle = Some(bundle(DNF_BUNDLE, Some(b"stand-in key".to_vec())));
    let r = run_for(
        Role::Worker,
        UpgradeMode::Node,
        "1.34.2",
        &with_containerd(),
    );
    r.go(&node, &node.state, None).await.unwrap();
    let repo = node.file(RPM_REPO);
    assert_eq!(
        repo,
        format!(
            "# Written by cupcake-agent: packages from the air-gapped package bundle ConfigMap ops/k8s-1-34.\n{}",
            before
                .replace(
                    "baseurl=file:///srv/pkgs.k8s.io/core:/stable:/v1.33/rpm/",
                    "baseurl=file:///var/lib/cupcake/bundle/rpm"
                )
                .replace(
                    "gpgkey=file:///srv/pkgs.k8s.io/core:/stable:/v1.33/rpm/repodata/repomd.xml.key",
                    "gpgkey=file:///etc/pki/rpm-gpg/cupcake-bundle.gpg"
                )
        )
    );
    assert!(repo.contains("exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n"));
    assert_eq!(
        std::fs::read(node.root.join(RPM_KEYRING)).unwrap(),
        b"stand-in key"
    );
    assert_eq!(
        node.packages(),
        (
            "containerd.io 1.7.28-1\nkubeadm 1.34.2-150500.1.1\nkubectl 1.34.2-150500.1.1\nkubelet 1.34.2-150500.1.1\n"
                .to_string(),
            "kubeadm\nkubectl\nkubelet\n".to_string()
        )
    );
    assert_eq!(
        kubeadm_calls(&node.take_calls()),
        ["kubeadm@1.34.2 upgrade node"]
    );
}

/// `cupcake-agent steps --bundle` shows the air-gapped commands with the bundle's exact
/// versions, and refuses a bundle the node could not install from.
#[test]
fn steps_with_a_bundle_show_its_repository_and_exact_versions() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bundle.yaml");
    std::fs::write(&f, apt_bundle("1.34.2-1.1")).unwrap();
    let steps = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cupcake-agent"))
            .args([
                "steps", "--role", "worker", "--from", "1.33.4", "--to", "1.34.2",
            ])
            .arg("--bundle")
            .arg(&f)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = steps(&[
        "--bundle-keyring",
        "--components",
        "kubeadm,kubelet,kubectl,containerd",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for want in [
        "Air-gapped: packages from the package bundle file ",
        "at the package bundle file ",
        "'s repository file:///var/lib/cupcake/bundle/apt (its keyring.gpg written to /etc/apt/keyrings/cupcake-bundle.gpg",
        "$ apt-cache madison kubeadm",
        " kubeadm=1.34.2-1.1\n",
        " kubelet=1.34.2-1.1 kubectl=1.34.2-1.1\n",
        " containerd.io=1.7.28-1\n",
    ] {
        assert!(text.contains(want), "{want:?} not in\n{text}");
    }
    assert!(!text.contains("-REV"), "{text}");
    let out = steps(&["--package-manager", "dnf"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("has no repository.dnf, and this host installs with dnf"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
