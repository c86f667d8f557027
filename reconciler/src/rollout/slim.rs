//! What the rollout controller keeps of each object in its caches: the fields the
//! snapshot (`crate::snapshot::from_objects`) and the decision read, nothing else.
//! Objects are slimmed as they arrive from the watch, before they enter a store,
//! so a cache of 1,000 Nodes does not hold their managed fields, images and
//! heartbeats. A heartbeat that changes only what is dropped leaves the slim copy
//! equal to the cached one, and the controller does not wake for it.
//!
//! Drains do not read the cache: they list the node's pods from the API server
//! (owner, mirror annotation, emptyDir volumes, phase; see `effects.rs`), so the
//! cached pods can lose their specs. `tests/snapshot_objects.rs` checks that a
//! slim copy makes the same snapshot as the whole object.

use cupcake_api::crd::DirectUpdate;
use k8s_openapi::api::core::v1::{
    Container, Node, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Pod, PodSpec, PodStatus,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::mem::take;

/// The prefix of CUPCAKE's node annotations (assignment, agent status, admin-cordoned …).
const OURS: &str = "cupcake.ricardomolendijk.com/";
/// Marks a mirror pod (the snapshot gives it owner kind `Node`).
const MIRROR: &str = "kubernetes.io/config.mirror";

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

/// Name, labels, our annotations, cordon and taints, Ready, kubelet version.
pub fn node(n: &mut Node) {
    *n = Node {
        metadata: metadata(take(&mut n.metadata), |k| k.starts_with(OURS)),
        spec: n.spec.take().map(|s| NodeSpec {
            unschedulable: s.unschedulable,
            taints: s.taints,
            ..NodeSpec::default()
        }),
        status: n.status.take().map(|s| NodeStatus {
            conditions: s.conditions.map(|cs| {
                cs.into_iter()
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

/// Name, labels, owners, the mirror annotation, node, container images, phase.
pub fn pod(p: &mut Pod) {
    let mut metadata = metadata(take(&mut p.metadata), |k| k == MIRROR);
    metadata.owner_references = metadata.owner_references.map(|os| {
        os.into_iter()
            .map(|o| OwnerReference {
                api_version: String::new(),
                kind: o.kind,
                name: String::new(),
                uid: String::new(),
                controller: o.controller,
                block_owner_deletion: None,
            })
            .collect()
    });
    *p = Pod {
        metadata,
        spec: p.spec.take().map(|s| PodSpec {
            node_name: s.node_name,
            containers: s
                .containers
                .into_iter()
                .map(|c| Container {
                    name: c.name,
                    image: c.image,
                    ..Container::default()
                })
                .collect(),
            ..PodSpec::default()
        }),
        status: p.status.take().map(|s| PodStatus {
            phase: s.phase,
            ..PodStatus::default()
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
