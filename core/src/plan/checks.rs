//! Checks of the target against what runs now: findings that deny, warn, or
//! stop planning altogether.

use std::collections::BTreeMap;

use cupcake_api::KubeVersion;
use cupcake_api::fleet::{ClusterVersionSpec, VersionCatalogSpec};
use cupcake_api::plan::Finding;
use cupcake_api::snapshot::Role;
use cupcake_api::version::PrereleaseKind;

use super::index::ClusterIndex;
use super::{kubelet_skew_ok, list_names, rules};

/// Whether the target can be planned at all from control plane `cp`: `None` stops
/// planning (a pre-release not allowed, a minor downgrade); `Some(downgrade)` goes
/// on, `downgrade` for an older patch of the same minor.
/// Without a catalogue, at most this many minors in one plan (a bound, not a policy:
/// Kubernetes supports about a year of minors, and each hop is a full control-plane pass).
pub const MAX_MINORS_WITHOUT_CATALOG: i64 = 10;

pub(crate) fn target(
    spec: &ClusterVersionSpec,
    target: &KubeVersion,
    cp: &KubeVersion,
    catalog: Option<&VersionCatalogSpec>,
    findings: &mut Vec<Finding>,
) -> Option<bool> {
    // Absurd targets stop here, before any hop is computed.
    if target.major != cp.major {
        findings.push(rules::MAJOR_CHANGE.finding(format!(
            "target {target} changes the major version of the control plane ({cp}); kubeadm upgrades one minor at a time within a major"
        )));
        return None;
    }
    let distance = target.minor_distance(cp);
    let (limit, why) = match catalog.map(|c| {
        c.versions
            .iter()
            .filter(|v| v.major == target.major)
            .map(|v| v.minor)
            .fold((u64::MAX, 0), |(lo, hi), m| (lo.min(m), hi.max(m)))
    }) {
        Some((lo, hi)) if lo <= hi => (
            (hi - lo) as i64 + 1,
            format!(
                "versions.yaml spans {} minors ({}.{lo} to {}.{hi})",
                hi - lo + 1,
                target.major,
                target.major
            ),
        ),
        _ => (
            MAX_MINORS_WITHOUT_CATALOG,
            format!(
                "without versions.yaml a plan spans at most {MAX_MINORS_WITHOUT_CATALOG} minors"
            ),
        ),
    };
    if distance > limit {
        findings.push(rules::TOO_MANY_MINORS.finding(format!(
            "target {target} is {distance} minors past the control plane ({cp}) and {why}: check the version for a typo"
        )));
        return None;
    }
    if let Some(c) = catalog
        && !c.versions.iter().any(|v| v == target)
    {
        let mut below: Vec<&KubeVersion> = c.versions.iter().filter(|v| *v < target).collect();
        below.sort();
        let mut above: Vec<&KubeVersion> = c.versions.iter().filter(|v| *v > target).collect();
        above.sort();
        let nearest: Vec<String> = below
            .iter()
            .rev()
            .take(2)
            .rev()
            .chain(above.iter().take(2))
            .map(|v| v.to_string())
            .collect();
        findings.push(rules::TARGET_NOT_IN_CATALOG.finding(format!(
            "target {target} is not a release in versions.yaml (nearest known: {}); fix the version, add it to versions.yaml, or force {} if it is a real release",
            if nearest.is_empty() { "none".to_string() } else { nearest.join(", ") },
            rules::TARGET_NOT_IN_CATALOG.id
        )));
    }
    if !spec.allow_prerelease.permits(target) {
        findings.push(rules::PRERELEASE.finding(format!(
            "target {target} is a pre-release; set allowPrerelease: {} in cluster.yaml to accept it",
            if target.prerelease_kind() == Some(PrereleaseKind::Rc) {
                "rc"
            } else {
                "all"
            }
        )));
        return None;
    }
    if target.minor_distance(cp) < 0 {
        findings.push(rules::MINOR_DOWNGRADE.finding(format!(
            "target {target} is an older minor than the control plane ({cp}): kubeadm cannot downgrade a minor version; restore from an etcd backup instead"
        )));
        return None;
    }
    let downgrade = target < cp;
    if downgrade {
        findings.push(rules::PATCH_DOWNGRADE.finding(format!(
            "target {target} is older than the control plane ({cp}); patch downgrades are possible but unusual: add {} to force in cluster.yaml if you mean it",
            rules::PATCH_DOWNGRADE.id
        )));
    }
    Some(downgrade)
}

/// kube-apiservers apart from each other, or ahead of the target.
pub(crate) fn apiservers(
    apiservers: &BTreeMap<String, KubeVersion>,
    cp: &KubeVersion,
    target: &KubeVersion,
    downgrade: bool,
    findings: &mut Vec<Finding>,
) {
    let newest_api = apiservers.values().max().unwrap_or(cp);
    if newest_api.minor_distance(cp) > 1 {
        findings.push(rules::APISERVER_SKEW.finding(format!(
            "kube-apiservers are more than one minor apart ({cp} to {newest_api}); finish the interrupted upgrade first"
        )));
    } else if newest_api != cp {
        findings.push(rules::MIXED_APISERVERS.finding(format!(
            "kube-apiservers run different versions ({}); planning from the oldest, {cp}",
            apiservers
                .iter()
                .map(|(n, v)| format!("{n} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if newest_api > target && !downgrade {
        let ahead: Vec<&String> = apiservers
            .iter()
            .filter(|(_, v)| *v > target)
            .map(|(n, _)| n)
            .collect();
        findings.push(rules::APISERVER_NEWER_THAN_TARGET.finding(format!(
            "kube-apiserver on {} is newer than the target {target}; raise the target or restore those nodes",
            list_names(&ahead)
        )));
    }
}

/// Kubelets ahead of the target or the control plane, already out of skew, or
/// (outside nodeSelector) about to fall out of skew. Names in snapshot order.
pub(crate) fn kubelets(
    index: &ClusterIndex<'_>,
    cp: &KubeVersion,
    target: &KubeVersion,
    downgrade: bool,
    findings: &mut Vec<Finding>,
) {
    let nodes = &index.snapshot().nodes;
    let mut newer_than_target = Vec::new();
    let mut newer_than_api = Vec::new();
    let mut out_of_skew = Vec::new();
    let mut stuck = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        if !index.in_scope(i) {
            if !kubelet_skew_ok(&n.kubelet_version, target) {
                stuck.push(n.name.as_str());
            }
            continue;
        }
        if n.role != Role::Worker {
            continue;
        }
        if n.kubelet_version.minor_distance(target) > 0
            || (!downgrade && n.kubelet_version > *target)
        {
            newer_than_target.push(n.name.as_str());
        } else if n.kubelet_version.minor_distance(cp) > 0 {
            newer_than_api.push(n.name.as_str());
        } else if !kubelet_skew_ok(&n.kubelet_version, cp) {
            out_of_skew.push(n.name.as_str());
        }
    }
    if !newer_than_target.is_empty() {
        findings.push(rules::KUBELET_NEWER_THAN_TARGET.finding(format!(
            "kubelet on {} is newer than the target {target}; CUPCAKE does not downgrade kubelets",
            list_names(&newer_than_target)
        )));
    }
    if !newer_than_api.is_empty() {
        findings.push(rules::KUBELET_NEWER_THAN_APISERVER.finding(format!(
            "kubelet on {} is newer than the oldest kube-apiserver ({cp}), which the skew policy forbids; the control-plane upgrade fixes it",
            list_names(&newer_than_api)
        )));
    }
    if !out_of_skew.is_empty() {
        findings.push(rules::KUBELET_OUT_OF_SKEW.finding(format!(
            "kubelet on {} is already more minors behind the control plane ({cp}) than the skew policy allows; the plan moves it first",
            list_names(&out_of_skew)
        )));
    }
    if !stuck.is_empty() {
        findings.push(rules::OUT_OF_SCOPE_SKEW.finding(format!(
            "node(s) {} are outside nodeSelector and their kubelets would fall out of the skew policy with a {target} control plane; widen nodeSelector, upgrade them separately, or force {}",
            list_names(&stuck),
            rules::OUT_OF_SCOPE_SKEW.id
        )));
    }
}

/// Inputs that change what the plan is without being errors: each a warning, so the
/// reader of the plan knows (a snapshot made with `-n` instead of `-A` hides PDBs).
pub(crate) fn inputs(
    spec: &ClusterVersionSpec,
    index: &ClusterIndex<'_>,
    scope_workers: usize,
    findings: &mut Vec<Finding>,
) {
    let snap = index.snapshot();
    let workers = snap.nodes.iter().filter(|n| n.role == Role::Worker).count();
    if snap.pdbs.is_empty() && workers > 0 {
        findings.push(rules::NO_PDBS.finding(
            "the snapshot has no PodDisruptionBudget: batches are limited only by concurrency/maxUnavailable. If the cluster has PDBs, make the snapshot with `kubectl get nodes,pods,pdb -A -o yaml` (all namespaces)",
        ));
    }
    let namespaces: std::collections::BTreeSet<&str> =
        snap.pods.iter().map(|p| p.namespace.as_str()).collect();
    if namespaces.len() == 1 && snap.pods.len() > 1 {
        findings.push(rules::ONE_NAMESPACE.finding(format!(
            "every pod of the snapshot is in namespace {}: was it made with -n instead of -A? Pods and PDBs of other namespaces are not considered",
            namespaces.iter().next().copied().unwrap_or_default()
        )));
    }
    if !spec.node_selector.is_empty() && scope_workers == 0 && workers > 0 {
        let sel: Vec<String> = spec
            .node_selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        findings.push(rules::SELECTOR_MATCHES_NO_WORKER.finding(format!(
            "nodeSelector {} matches none of the {workers} workers: only the control plane would be upgraded",
            sel.join(",")
        )));
    }
    if spec.backup.etcd && spec.backup.store.is_none() {
        findings.push(rules::BACKUP_WITHOUT_STORE.finding(
            "backup.etcd is on but backup.store is not set: the snapshot has nowhere to go, and no control-plane node is upgraded without a verified backup. Set backup.store (s3://…, gs://…, az://…, file://…)",
        ));
    }
}
