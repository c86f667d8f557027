//! What the rollout controller keeps of each Node, PDB and DirectUpdate in its
//! caches: the fields the snapshot (`crate::snapshot::from_rows`) and the decision
//! read, nothing else. Objects are slimmed as they arrive from the watch, before they
//! enter a store, so a cache of 5,000 Nodes does not hold their managed fields, images
//! and heartbeats. A heartbeat that changes only what is dropped leaves the slim copy
//! equal to the cached one, and the controller does not wake for it.
//!
//! Pods are not kept as objects at all but as the snapshot's rows
//! (`crate::snapshot::PodRow`, `crate::observe::reflect_pods`). Drains do not read
//! the cache: they list the node's pods from the API server (owner, mirror
//! annotation, emptyDir volumes, phase; see `effects.rs`). `tests/snapshot_objects.rs`
//! checks that slim copies and rows make the same snapshot as the whole objects.

use cupcake_api::crd::DirectUpdate;
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::mem::take;

/// The prefix of CUPCAKE's node annotations (assignment, agent status, admin-cordoned …).
const OURS: &str = "cupcake.ricardomolendijk.com/";

/// Identity and labels; annotations only where `keep` says so.
fn metadata(m: ObjectMeta, keep: impl Fn(&str) -> bool) -> ObjectMeta {
    let annotations = m
        .annotations
        .map(|a| {
            a.into_iter()
                .filter(|(k, _)| keep(k))
                .collect::<std::collections::BTreeMap<_, _>>()
        })
        .filter(|a| !a.is_empty());
    ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        generation: m.generation,
        creation_timestamp: m.creation_timestamp,
        deletion_timestamp: m.deletion_timestamp,
        labels: m.labels,
        annotations,
        owner_references: m.owner_references,
        finalizers: m.finalizers,
        ..ObjectMeta::default()
    }
}

/// Name, labels, our annotations, cordon and taints, Ready and the True conditions,
/// kubelet version.
pub fn node(n: &mut Node) {
    *n = Node {
        metadata: metadata(take(&mut n.metadata), |k| k.starts_with(OURS)),
        spec: n.spec.take().map(|s| NodeSpec {
            unschedulable: s.unschedulable,
            taints: s.taints,
            ..NodeSpec::default()
        }),
        status: n.status.take().map(|s| NodeStatus {
            // Ready (the snapshot) and the conditions that are True (preflight's
            // pressure checks): a healthy node's four False ones are never read.
            conditions: s.conditions.map(|cs| {
                cs.into_iter()
                    .filter(|c| c.type_ == "Ready" || c.status == "True")
                    .map(|c| NodeCondition {
                        type_: c.type_,
                        status: c.status,
                        ..NodeCondition::default()
                    })
                    .collect()
            }),
            node_info: s.node_info.map(|i| NodeSystemInfo {
                kubelet_version: i.kubelet_version,
                ..NodeSystemInfo::default()
            }),
            ..NodeStatus::default()
        }),
    };
}

/// Without managed fields and annotations (the decision reads spec and status).
pub fn pdb(p: &mut PodDisruptionBudget) {
    p.metadata = metadata(take(&mut p.metadata), |_| false);
}

/// Without managed fields and `last-applied-configuration` (the rest is read:
/// spec, status, our annotations, finalizers).
pub fn direct_update(d: &mut DirectUpdate) {
    d.metadata = metadata(take(&mut d.metadata), |k| {
        k != "kubectl.kubernetes.io/last-applied-configuration"
    });
}

/// Equal but for `resourceVersion`: nothing the controller reads changed.
pub fn same<K: kube::Resource + Clone + PartialEq>(old: &K, new: &K) -> bool {
    let mut new = new.clone();
    new.meta_mut().resource_version = old.meta().resource_version.clone();
    *old == new
}
