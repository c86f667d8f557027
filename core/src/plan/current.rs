//! The versions running now: each control-plane node's kube-apiserver (its
//! static pod), the kubelets, and the control plane's version (the oldest
//! kube-apiserver).

use std::collections::BTreeMap;

use cupcake_api::KubeVersion;
use cupcake_api::plan::{CurrentVersions, Finding};
use cupcake_api::snapshot::Node;

use super::rules;
use super::scope::Scope;

/// Current versions. Without any kube-apiserver static pod the control-plane
/// kubelets stand in for the apiservers (with a warning).
pub(crate) fn versions(
    scope: &Scope<'_>,
    nodes: &[Node],
    findings: &mut Vec<Finding>,
) -> CurrentVersions {
    let cp_nodes = &scope.control_plane;
    let mut apiservers: BTreeMap<String, KubeVersion> = cp_nodes
        .iter()
        .filter_map(|n| {
            n.control_plane
                .as_ref()?
                .apiserver
                .clone()
                .map(|v| (n.name.clone(), v))
        })
        .collect();
    if apiservers.is_empty() && !cp_nodes.is_empty() {
        findings.push(rules::NO_STATIC_PODS.finding(
            "no kube-apiserver static pods found in kube-system; the control-plane nodes' kubelet versions stand in for the apiserver versions",
        ));
        apiservers = cp_nodes
            .iter()
            .map(|n| (n.name.clone(), n.kubelet_version.clone()))
            .collect();
    }
    let mut kubelets: BTreeMap<String, usize> = BTreeMap::new();
    for n in nodes {
        *kubelets.entry(n.kubelet_version.to_string()).or_default() += 1;
    }
    CurrentVersions {
        control_plane: apiservers.values().min().cloned(),
        apiservers,
        kubelets,
    }
}
