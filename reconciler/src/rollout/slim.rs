//! What the rollout controller keeps of each Node, PDB and DirectUpdate in its
//! caches: the fields the snapshot (`crate::snapshot::from_rows`) and the decision
//! read, nothing else. Objects are slimmed as they arrive from the watch, before they
//! enter a store, so a cache of 5,000 Nodes does not hold their managed fields, images
//! and heartbeats. A heartbeat that changes only what is dropped leaves the slim copy
//! equal to the cached one, and the controller does not wake for it.
//!
//! Nodes are kept as [`CachedNode`]s (a third of a `Node` struct's size), PDBs and
//! DirectUpdates as slimmed objects. Pods are not kept as objects at all but as the snapshot's rows
//! (`crate::snapshot::PodRow`, `crate::observe::reflect_pods`). Drains do not read
//! the cache: they list the node's pods from the API server (owner, mirror
//! annotation, emptyDir volumes, phase; see `effects.rs`). `tests/snapshot_objects.rs`
//! checks that slim copies and rows make the same snapshot as the whole objects.

use cupcake_api::crd::DirectUpdate;
use k8s_openapi::api::core::v1::{Node, Taint};
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

/// A Node as the controller's cache keeps it: identity, labels and our annotations
/// (in `metadata`), cordon and taints, Ready and the True conditions, the kubelet
/// version. Some 450 bytes and the strings, where a `Node` struct alone is 1.5 KB:
/// at 5,000 nodes the whole struct, mostly empty fields, was 7.5 MB of the cache.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CachedNode {
    pub metadata: ObjectMeta,
    /// `spec.unschedulable`.
    pub unschedulable: Option<bool>,
    /// `spec.taints`.
    pub taints: Option<Vec<Taint>>,
    /// `status.conditions`: Ready, and those that are True (preflight's pressure
    /// checks), as (type, status); a healthy node's four False ones are never read.
    pub conditions: Vec<(String, String)>,
    /// `status.nodeInfo.kubeletVersion` (None without `nodeInfo`).
    pub kubelet_version: Option<String>,
}

impl CachedNode {
    /// Whether condition `type_` is "True".
    pub fn condition_true(&self, type_: &str) -> bool {
        self.conditions
            .iter()
            .any(|(t, s)| t == type_ && s == "True")
    }
}

/// What the cache keeps of a whole Node (also of each node patch's answer).
pub fn node(n: Node) -> CachedNode {
    let (spec, status) = (n.spec.unwrap_or_default(), n.status.unwrap_or_default());
    CachedNode {
        metadata: metadata(n.metadata, |k| k.starts_with(OURS)),
        unschedulable: spec.unschedulable,
        taints: spec.taints,
        conditions: kept_conditions(
            status
                .conditions
                .unwrap_or_default()
                .into_iter()
                .map(|c| (c.type_, c.status)),
        ),
        kubelet_version: status.node_info.map(|i| i.kubelet_version),
    }
}

/// The conditions a [`CachedNode`] keeps, as (type, status): Ready, and those that are
/// True (preflight's pressure checks).
fn kept_conditions(cs: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    cs.filter(|(t, s)| t == "Ready" || s == "True").collect()
}

/// `kube::Resource` for a core/v1 type the caches keep in place of a whole object
/// (`$kind`, `$plural`, `$scope`), with its metadata in `$meta`.
macro_rules! core_resource {
    ($t:ty, $meta:ident, $kind:literal, $plural:literal, $scope:ty) => {
        impl kube::Resource for $t {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                "".into()
            }
            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                "v1".into()
            }
            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.$meta
            }
            fn meta_mut(
                &mut self,
            ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.$meta
            }
        }
    };
}
pub(crate) use core_resource;

core_resource!(
    CachedNode,
    metadata,
    "Node",
    "nodes",
    k8s_openapi::ClusterResourceScope
);

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

/// A Node as the rollout controller's watch decodes it: straight into the
/// [`CachedNode`], skipping managed fields, images, addresses and the other annotations while
/// decoding (no whole `Node` is built and dropped per heartbeat). `tests/snapshot_objects.rs`
/// checks that it is `node` of the whole object.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(from = "WireNode")]
pub struct WatchedNode {
    metadata: WireMeta,
    spec: Option<WireSpec>,
    status: Option<WireStatus>,
    /// What the watcher reads of the object: its name and resourceVersion (without
    /// the resourceVersion it takes every change after the initial state for a
    /// broken watch and starts again from a whole new list).
    meta: ObjectMeta,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct WireNode {
    #[serde(default)]
    metadata: WireMeta,
    #[serde(default)]
    spec: Option<WireSpec>,
    #[serde(default)]
    status: Option<WireStatus>,
}

impl From<WireNode> for WatchedNode {
    fn from(w: WireNode) -> Self {
        let meta = ObjectMeta {
            name: w.metadata.name.clone(),
            resource_version: w.metadata.resource_version.clone(),
            ..ObjectMeta::default()
        };
        WatchedNode {
            metadata: w.metadata,
            spec: w.spec,
            status: w.status,
            meta,
        }
    }
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    deletion_timestamp: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    labels: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Ours,
    owner_references: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>,
    finalizers: Option<Vec<String>>,
}

/// Only CUPCAKE's annotations; the rest are skipped without being allocated.
#[derive(Debug, Clone, Default)]
struct Ours(std::collections::BTreeMap<String, String>);

impl<'de> serde::Deserialize<'de> for Ours {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ours;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of annotations")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Ours, E> {
                Ok(Ours::default())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Ours, A::Error> {
                let mut ours = std::collections::BTreeMap::new();
                while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if k.starts_with(OURS) {
                        ours.insert(k.into_owned(), map.next_value::<String>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(Ours(ours))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
struct WireSpec {
    unschedulable: Option<bool>,
    taints: Option<Vec<k8s_openapi::api::core::v1::Taint>>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireStatus {
    conditions: Option<Vec<WireCondition>>,
    node_info: Option<WireInfo>,
}

// Absent or null strings read as "", as k8s-openapi reads them.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
struct WireCondition {
    #[serde(rename = "type")]
    type_: Option<String>,
    status: Option<String>,
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireInfo {
    kubelet_version: Option<String>,
}

impl WatchedNode {
    /// The cached node: what [`node`] keeps of the whole object.
    pub fn into_cached(self) -> CachedNode {
        let m = self.metadata;
        let (spec, status) = (
            self.spec.unwrap_or_default(),
            self.status.unwrap_or_default(),
        );
        CachedNode {
            metadata: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                uid: m.uid,
                resource_version: m.resource_version,
                generation: m.generation,
                creation_timestamp: m.creation_timestamp,
                deletion_timestamp: m.deletion_timestamp,
                labels: m.labels,
                annotations: Some(m.annotations.0).filter(|a| !a.is_empty()),
                owner_references: m.owner_references,
                finalizers: m.finalizers,
                ..ObjectMeta::default()
            },
            unschedulable: spec.unschedulable,
            taints: spec.taints,
            conditions: kept_conditions(
                status
                    .conditions
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| (c.type_.unwrap_or_default(), c.status.unwrap_or_default())),
            ),
            kubelet_version: status
                .node_info
                .map(|i| i.kubelet_version.unwrap_or_default()),
        }
    }
}

// What the watcher reads: the name and resourceVersion (the store keeps
// [`WatchedNode::into_cached`]).
core_resource!(
    WatchedNode,
    meta,
    "Node",
    "nodes",
    k8s_openapi::ClusterResourceScope
);
