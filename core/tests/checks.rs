//! The version-skew checks, table-driven: which kube-apiservers and kubelets a
//! plan names, under which rule id and with which words (Kubernetes' version
//! skew policy: apiservers within one minor of each other, a kubelet never
//! newer than the apiserver and at most 3 minors older). Mutation testing
//! (docs/testing.md) found these only tested through the reconciler's suites.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{mk_cluster, mk_node, mk_spec, run, v};
use cupcake_api::plan::Severity;
use cupcake_api::snapshot::{ClusterSnapshot, Role};

/// The skew rules' findings of one plan: (rule, severity, message).
fn skew_findings(spec: &str, snap: &ClusterSnapshot) -> Vec<(String, Severity, String)> {
    let o = run(&mk_spec(spec), snap).unwrap();
    o.outcome
        .findings
        .iter()
        .filter(|f| {
            [
                "planner.apiserver-skew",
                "planner.mixed-apiservers",
                "planner.apiserver-newer-than-target",
                "planner.kubelet-newer-than-target",
                "planner.kubelet-newer-than-apiserver",
                "planner.kubelet-out-of-skew",
                "planner.out-of-scope-skew",
            ]
            .contains(&f.rule.as_str())
        })
        .map(|f| (f.rule.clone(), f.severity, f.message.clone()))
        .collect()
}

/// Three control-plane nodes and four workers at `base`, then per node name a
/// (kube-apiserver, kubelet) version; `None` keeps what is there.
fn cluster(base: &str, set: &[(&str, Option<&str>, Option<&str>)]) -> ClusterSnapshot {
    let mut snap = mk_cluster(3, 4, base);
    for (name, api, kubelet) in set {
        let n = snap.nodes.iter_mut().find(|n| n.name == *name).unwrap();
        if let Some(k) = kubelet {
            n.kubelet_version = v(k);
        }
        if let Some(a) = api {
            n.control_plane.as_mut().unwrap().apiserver = Some(v(a));
        }
    }
    snap
}

fn want(rule: &str, severity: Severity, message: &str) -> (String, Severity, String) {
    (rule.to_string(), severity, message.to_string())
}

#[test]
fn apiserver_skew_table() {
    use Severity::{Deny, Warn};
    type Case = (
        &'static str,
        &'static str,
        Vec<(&'static str, Option<&'static str>, Option<&'static str>)>,
        Vec<(String, Severity, String)>,
    );
    let cases: Vec<Case> = vec![
        (
            "all apiservers on one version: nothing to say",
            "kubernetesVersion: 1.34.2",
            vec![],
            vec![],
        ),
        (
            "one apiserver a patch ahead: mixed, planned from the oldest",
            "kubernetesVersion: 1.34.2",
            vec![("cp-2", Some("1.33.5"), None)],
            vec![want(
                "planner.mixed-apiservers",
                Warn,
                "kube-apiservers run different versions (cp-1 1.33.4, cp-2 1.33.5, cp-3 1.33.4); planning from the oldest, 1.33.4",
            )],
        ),
        (
            "one minor apart (an interrupted hop): mixed, not skew",
            "kubernetesVersion: 1.34.2",
            vec![("cp-1", Some("1.34.2"), Some("1.34.2"))],
            vec![want(
                "planner.mixed-apiservers",
                Warn,
                "kube-apiservers run different versions (cp-1 1.34.2, cp-2 1.33.4, cp-3 1.33.4); planning from the oldest, 1.33.4",
            )],
        ),
        (
            "two minors apart: skew",
            "kubernetesVersion: 1.35.1",
            vec![("cp-3", Some("1.35.1"), Some("1.35.1"))],
            vec![want(
                "planner.apiserver-skew",
                Warn,
                "kube-apiservers are more than one minor apart (1.33.4 to 1.35.1); finish the interrupted upgrade first",
            )],
        ),
        (
            "an apiserver past the target is named, the one at the target is not",
            "kubernetesVersion: 1.34.2",
            vec![
                ("cp-2", Some("1.34.3"), None),
                ("cp-3", Some("1.34.2"), None),
            ],
            vec![
                want(
                    "planner.mixed-apiservers",
                    Warn,
                    "kube-apiservers run different versions (cp-1 1.33.4, cp-2 1.34.3, cp-3 1.34.2); planning from the oldest, 1.33.4",
                ),
                want(
                    "planner.apiserver-newer-than-target",
                    Deny,
                    "kube-apiserver on cp-2 is newer than the target 1.34.2; raise the target or restore those nodes",
                ),
            ],
        ),
        (
            "an apiserver exactly at the target: not newer",
            "kubernetesVersion: 1.34.2",
            vec![("cp-2", Some("1.34.2"), None)],
            vec![want(
                "planner.mixed-apiservers",
                Warn,
                "kube-apiservers run different versions (cp-1 1.33.4, cp-2 1.34.2, cp-3 1.33.4); planning from the oldest, 1.33.4",
            )],
        ),
        (
            "a patch downgrade: the control plane is newer than the target by design",
            "kubernetesVersion: 1.33.2\nforce: [planner.patch-downgrade]",
            vec![],
            vec![],
        ),
    ];
    for (what, spec, set, expected) in cases {
        let snap = cluster("1.33.4", &set);
        assert_eq!(skew_findings(spec, &snap), expected, "{what}");
    }
}

#[test]
fn kubelet_skew_table() {
    use Severity::{Deny, Warn};
    type Case = (
        &'static str,
        &'static str,
        Vec<(&'static str, Option<&'static str>, Option<&'static str>)>,
        Vec<(String, Severity, String)>,
    );
    let cases: Vec<Case> = vec![
        (
            "every kubelet at the control plane's version",
            "kubernetesVersion: 1.34.2",
            vec![],
            vec![],
        ),
        (
            "kubelets three minors behind are still within the skew policy",
            "kubernetesVersion: 1.34.2",
            vec![("w-1", None, Some("1.30.9"))],
            vec![],
        ),
        (
            "a kubelet a minor past the target",
            "kubernetesVersion: 1.34.2",
            vec![("w-2", None, Some("1.35.0"))],
            vec![want(
                "planner.kubelet-newer-than-target",
                Deny,
                "kubelet on w-2 is newer than the target 1.34.2; CUPCAKE does not downgrade kubelets",
            )],
        ),
        (
            "a kubelet a patch past the target",
            "kubernetesVersion: 1.34.2",
            vec![("w-3", None, Some("1.34.3"))],
            vec![want(
                "planner.kubelet-newer-than-target",
                Deny,
                "kubelet on w-3 is newer than the target 1.34.2; CUPCAKE does not downgrade kubelets",
            )],
        ),
        (
            "kubelets at the target or below it but past the apiserver: newer than the apiserver",
            "kubernetesVersion: 1.34.2",
            vec![("w-1", None, Some("1.34.2")), ("w-4", None, Some("1.34.0"))],
            vec![want(
                "planner.kubelet-newer-than-apiserver",
                Warn,
                "kubelet on w-1, w-4 is newer than the oldest kube-apiserver (1.33.4), which the skew policy forbids; the control-plane upgrade fixes it",
            )],
        ),
        (
            "four minors behind: out of skew already",
            "kubernetesVersion: 1.34.2",
            vec![("w-4", None, Some("1.29.3"))],
            vec![want(
                "planner.kubelet-out-of-skew",
                Warn,
                "kubelet on w-4 is already more minors behind the control plane (1.33.4) than the skew policy allows; the plan moves it first",
            )],
        ),
        (
            "a control-plane kubelet is not judged as a worker",
            "kubernetesVersion: 1.34.2",
            vec![("cp-2", None, Some("1.35.0"))],
            vec![],
        ),
        (
            "one of each, in snapshot order",
            "kubernetesVersion: 1.34.2",
            vec![
                ("w-1", None, Some("1.29.0")),
                ("w-2", None, Some("1.34.1")),
                ("w-3", None, Some("1.35.1")),
            ],
            vec![
                want(
                    "planner.kubelet-newer-than-target",
                    Deny,
                    "kubelet on w-3 is newer than the target 1.34.2; CUPCAKE does not downgrade kubelets",
                ),
                want(
                    "planner.kubelet-newer-than-apiserver",
                    Warn,
                    "kubelet on w-2 is newer than the oldest kube-apiserver (1.33.4), which the skew policy forbids; the control-plane upgrade fixes it",
                ),
                want(
                    "planner.kubelet-out-of-skew",
                    Warn,
                    "kubelet on w-1 is already more minors behind the control plane (1.33.4) than the skew policy allows; the plan moves it first",
                ),
            ],
        ),
        (
            "a patch downgrade: kubelets at the control plane's patch are not 'newer than the target'",
            "kubernetesVersion: 1.33.2\nforce: [planner.patch-downgrade]",
            vec![],
            vec![],
        ),
        (
            "a patch downgrade still refuses a kubelet a minor past the target",
            "kubernetesVersion: 1.33.2\nforce: [planner.patch-downgrade]",
            vec![("w-2", None, Some("1.34.0"))],
            vec![want(
                "planner.kubelet-newer-than-target",
                Deny,
                "kubelet on w-2 is newer than the target 1.33.2; CUPCAKE does not downgrade kubelets",
            )],
        ),
    ];
    for (what, spec, set, expected) in cases {
        let snap = cluster("1.33.4", &set);
        assert_eq!(skew_findings(spec, &snap), expected, "{what}");
    }
}

#[test]
fn nodes_outside_node_selector_table() {
    use Severity::Deny;
    // w-1 and w-2 carry pool=a; nodeSelector {pool: a} leaves w-3 and w-4 out.
    type Case = (
        &'static str,
        &'static str,
        Vec<(&'static str, &'static str)>,
        Vec<(String, Severity, String)>,
    );
    let cases: Vec<Case> = vec![
        (
            "out-of-scope kubelets that stay within skew of the target",
            "kubernetesVersion: 1.34.2\nnodeSelector: {pool: a}",
            vec![("w-3", "1.31.0")],
            vec![],
        ),
        (
            "out-of-scope kubelets that would fall four minors behind",
            "kubernetesVersion: 1.34.2\nnodeSelector: {pool: a}",
            vec![("w-3", "1.30.5"), ("w-4", "1.30.5")],
            vec![want(
                "planner.out-of-scope-skew",
                Deny,
                "node(s) w-3, w-4 are outside nodeSelector and their kubelets would fall out of the skew policy with a 1.34.2 control plane; widen nodeSelector, upgrade them separately, or force planner.out-of-scope-skew",
            )],
        ),
        (
            "an out-of-scope kubelet is not judged as an in-scope one (newer than the target)",
            "kubernetesVersion: 1.34.2\nnodeSelector: {pool: a}",
            vec![("w-4", "1.34.5")],
            vec![],
        ),
        (
            "in-scope workers far behind are out of skew, not 'outside nodeSelector'",
            "kubernetesVersion: 1.34.2\nnodeSelector: {pool: a}",
            vec![("w-1", "1.29.0")],
            vec![want(
                "planner.kubelet-out-of-skew",
                Severity::Warn,
                "kubelet on w-1 is already more minors behind the control plane (1.33.4) than the skew policy allows; the plan moves it first",
            )],
        ),
    ];
    for (what, spec, kubelets, expected) in cases {
        let mut snap = mk_cluster(3, 4, "1.33.4");
        for n in snap.nodes.iter_mut() {
            if n.name == "w-1" || n.name == "w-2" {
                n.labels.insert("pool".into(), "a".into());
            }
            if let Some((_, k)) = kubelets.iter().find(|(name, _)| *name == n.name) {
                n.kubelet_version = v(k);
            }
        }
        assert_eq!(skew_findings(spec, &snap), expected, "{what}");
    }
}

#[test]
fn long_node_lists_are_abbreviated() {
    let mut snap = mk_cluster(1, 0, "1.33.4");
    snap.nodes
        .extend((1..=7).map(|i| mk_node(&format!("w-{i}"), Role::Worker, "1.35.0")));
    assert_eq!(
        skew_findings("kubernetesVersion: 1.34.2", &snap),
        vec![want(
            "planner.kubelet-newer-than-target",
            Severity::Deny,
            "kubelet on w-1, w-2, w-3, w-4, w-5 and 2 more is newer than the target 1.34.2; CUPCAKE does not downgrade kubelets",
        )]
    );
}
