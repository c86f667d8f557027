//! A pod as the snapshot reads it, compact: [`PodRow`]. The rollout controller keeps
//! its pods as rows (not as `Pod` objects), so a cache of 50,000 pods holds a few
//! strings each; the strings many pods share (namespace, node, phase, owner kind, the
//! label set of one app) are held once, through an [`Interner`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::{MirrorAnnotation, RawObject, component_of};

/// What the snapshot reads of one Pod: the same rules turn a row and the whole
/// object into the same snapshot pod (`tests/snapshot_objects.rs` checks it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRow {
    /// `metadata.name` (the snapshot refuses a pod without one); shared with the
    /// key the rollout controller's cache files the row under.
    pub name: Option<Arc<str>>,
    /// `metadata.namespace` (the snapshot refuses a pod without one).
    pub namespace: Option<Arc<str>>,
    /// `spec.nodeName`, empty when unscheduled.
    pub node: Arc<str>,
    pub labels: Arc<BTreeMap<String, String>>,
    /// The controlling owner's kind (else the first owner's; `Node` for a mirror pod).
    pub owner_kind: Option<Arc<str>>,
    /// `status.phase`, empty when unknown.
    pub phase: Arc<str>,
    /// The image of a control-plane component's container, for kube-system pods
    /// that run one (kube-apiserver, kube-controller-manager, kube-scheduler, etcd).
    pub image: Option<Box<str>>,
}

impl PodRow {
    /// The row of a whole Pod, as a watch delivers it.
    pub fn from_pod(p: &k8s_openapi::api::core::v1::Pod, names: &mut Interner) -> PodRow {
        PodRow::of(super::typed::pod(p), names)
    }

    pub(super) fn of(item: RawObject, names: &mut Interner) -> PodRow {
        let m = item.metadata;
        let owner_kind = m
            .owner_references
            .iter()
            .find(|o| o.controller == Some(true))
            .or(m.owner_references.first())
            .map(|o| &*o.kind)
            // Mirror pods of static manifests carry this annotation.
            .or_else(|| {
                let MirrorAnnotation(mirror) = m.annotations;
                mirror.then_some("Node")
            })
            .map(|k| names.str(k));
        let name = m.name.as_deref().map(Arc::<str>::from);
        let image = (m.namespace.as_deref() == Some("kube-system"))
            .then(|| component_of(name.as_deref().unwrap_or(""), &m.labels))
            .flatten()
            .and_then(|c| {
                item.spec
                    .containers
                    .iter()
                    .find(|x| &*x.name == c)
                    .or(item.spec.containers.first())
            })
            .and_then(|x| x.image.as_deref().map(Box::<str>::from));
        PodRow {
            namespace: m.namespace.as_deref().map(|n| names.str(n)),
            name,
            node: names.str(item.spec.node_name.as_deref().unwrap_or("")),
            labels: names.labels(m.labels),
            owner_kind,
            phase: names.str(item.status.phase.as_deref().unwrap_or("")),
            image,
        }
    }
}

/// Shares equal strings and label sets among rows. Values no row holds any more are
/// dropped now and then ([`Interner::purge`]), so churn does not grow it for ever.
#[derive(Debug, Default)]
pub struct Interner {
    strs: HashSet<Arc<str>>,
    labels: HashSet<Arc<BTreeMap<String, String>>>,
    /// Share nothing (a one-off snapshot of a file: every value is used once).
    off: bool,
    /// The size after the last purge.
    kept: usize,
}

impl Interner {
    /// An interner that shares nothing.
    pub fn none() -> Self {
        Interner {
            off: true,
            ..Interner::default()
        }
    }

    fn str(&mut self, s: &str) -> Arc<str> {
        if self.off {
            return Arc::from(s);
        }
        if let Some(a) = self.strs.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.strs.insert(a.clone());
        self.grew();
        a
    }

    fn labels(&mut self, l: BTreeMap<String, String>) -> Arc<BTreeMap<String, String>> {
        if self.off {
            return Arc::new(l);
        }
        if let Some(a) = self.labels.get(&l) {
            return a.clone();
        }
        let a = Arc::new(l);
        self.labels.insert(a.clone());
        self.grew();
        a
    }

    /// Purge once the interner has doubled since the last purge.
    fn grew(&mut self) {
        if self.strs.len() + self.labels.len() > 2 * self.kept + 1024 {
            self.purge();
        }
    }

    /// Drop the values no row holds.
    pub fn purge(&mut self) {
        self.strs.retain(|a| Arc::strong_count(a) > 1);
        self.labels.retain(|a| Arc::strong_count(a) > 1);
        self.kept = self.strs.len() + self.labels.len();
    }
}

impl Interner {
    /// `row` with its shared values shared (rows decoded on their own hold their own).
    pub fn share(&mut self, row: PodRow) -> PodRow {
        if self.off {
            return row;
        }
        PodRow {
            namespace: row.namespace.map(|n| self.str(&n)),
            node: self.str(&row.node),
            labels: self.labels(Arc::unwrap_or_clone(row.labels)),
            owner_kind: row.owner_kind.map(|k| self.str(&k)),
            phase: self.str(&row.phase),
            ..row
        }
    }
}

/// A Pod as the rollout controller's watch decodes it: straight into its row
/// (through the same `RawObject` the snapshot reader uses), never into a whole
/// `Pod`, so the initial list of 50,000 pods does not build and drop 50,000 objects
/// (and fragment the heap with their hundreds of allocations each). A `Resource` for
/// `kube`'s watcher; only the name, namespace and resourceVersion are in its `metadata`.
#[derive(Debug, Clone)]
pub struct WatchedPod {
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    /// The pod's row, its strings not shared yet ([`Interner::share`]).
    pub row: PodRow,
}

impl<'de> serde::Deserialize<'de> for WatchedPod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawObject::deserialize(d)?;
        let metadata = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: raw.metadata.name.as_deref().map(str::to_string),
            namespace: raw.metadata.namespace.as_deref().map(str::to_string),
            resource_version: raw.metadata.resource_version.as_deref().map(str::to_string),
            ..Default::default()
        };
        let row = PodRow::of(raw, &mut Interner::none());
        Ok(WatchedPod { metadata, row })
    }
}

crate::rollout::slim::core_resource!(
    WatchedPod,
    metadata,
    "Pod",
    "pods",
    k8s_openapi::NamespaceResourceScope
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use super::*;
    use kube::Resource as _;

    /// kube's watcher resumes from each event's resourceVersion: a WatchedPod without
    /// one made every watch event an error, and the rows stayed stale until a relist
    /// (a PDB check saw no pod on a node that had one).
    #[test]
    fn a_watched_pod_keeps_its_resource_version() {
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"db-0","namespace":"apps","resourceVersion":"4711","labels":{"app":"db"}},"spec":{"nodeName":"w-1","containers":[{"name":"c","image":"db:1"}]},"status":{"phase":"Running"}}"#;
        let p: WatchedPod = serde_json::from_str(json).unwrap();
        assert_eq!(p.meta().resource_version.as_deref(), Some("4711"));
        assert_eq!(p.meta().name.as_deref(), Some("db-0"));
        assert_eq!(p.meta().namespace.as_deref(), Some("apps"));
        assert_eq!(&*p.row.node, "w-1");
    }
}
