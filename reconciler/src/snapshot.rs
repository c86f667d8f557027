//! Read a cluster snapshot from the output of
//! `kubectl get nodes,pods,pdb -A -o yaml` (or `-o json`): a `v1 List`.
//!
//! Only the fields the planner needs are decoded; everything else in
//! kubectl's output is skipped without being built, which keeps a
//! 5,000-node snapshot fast to read. JSON borrows its strings from the input;
//! YAML in the block style kubectl prints goes through `yaml`, a reader of
//! just that subset, and anything else (or any error) through `yaml_serde`,
//! whose messages name the line and column.
//!
//! The same conversion rules (one `Builder` over `RawObject`s) read the live
//! cluster's list pages, JSON or protobuf ([`Pages`], `proto`), typed objects
//! ([`from_objects`]) and the rollout controller's caches, which keep each pod as a
//! compact [`PodRow`] ([`from_rows`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cupcake_api::KubeVersion;
use cupcake_api::labels::{ROLE_CONTROL_PLANE, ROLE_MASTER};
use cupcake_api::snapshot::{
    ClusterSnapshot, ControlPlaneComponents, IntOrString, LabelSelector, Node, Pdb, PdbStatus, Pod,
    Role, SelectorRequirement, Taint,
};
use serde::Deserialize;

use crate::rollout::slim::CachedNode;

mod list;
mod proto;
mod rows;
mod yaml;

pub use list::ListWriter;
pub use rows::{Interner, PodRow, WatchedPod};

/// A snapshot that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        /// Shown in the message, not chained: `{:#}` would repeat it.
        error: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

fn invalid(origin: &str, message: impl Into<String>) -> SnapshotError {
    SnapshotError::Invalid {
        origin: origin.to_string(),
        message: message.into(),
    }
}

/// A string borrowed from the input when it can be (JSON without escapes),
/// owned otherwise; most of kubectl's strings are read only to be dropped.
#[derive(Default, Clone, PartialEq, Eq)]
struct Str<'a>(Cow<'a, str>);

impl std::fmt::Debug for Str<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Str<'_> {
    fn owned(self) -> String {
        self.0.into_owned()
    }
}

#[derive(Deserialize)]
struct RawList<'a> {
    #[serde(rename = "apiVersion", borrow)]
    api_version: Option<Str<'a>>,
    #[serde(borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    items: Option<Vec<RawObject<'a>>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawObject<'a> {
    #[serde(rename = "apiVersion", borrow)]
    api_version: Option<Str<'a>>,
    #[serde(borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    metadata: RawMeta<'a>,
    #[serde(borrow)]
    spec: RawSpec<'a>,
    #[serde(borrow)]
    status: RawStatus<'a>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawMeta<'a> {
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    namespace: Option<Str<'a>>,
    /// Read for watches only (`rows::WatchedPod`): a watch resumes from the last
    /// object's resourceVersion, and without one kube's watcher fails every event.
    #[serde(rename = "resourceVersion", borrow)]
    pub(crate) resource_version: Option<Str<'a>>,
    labels: BTreeMap<String, String>,
    #[serde(rename = "ownerReferences", borrow)]
    owner_references: Vec<RawOwner<'a>>,
    annotations: MirrorAnnotation,
}

/// The annotation of mirror pods (the API server's copies of static pods).
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Only whether `kubernetes.io/config.mirror` is among the annotations: the
/// rest is skipped without allocating (annotations can be large).
#[derive(Default)]
struct MirrorAnnotation(bool);

impl<'de> Deserialize<'de> for MirrorAnnotation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = MirrorAnnotation;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of annotations")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(MirrorAnnotation(false))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut found = false;
                while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    found |= k == MIRROR_ANNOTATION;
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                Ok(MirrorAnnotation(found))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawOwner<'a> {
    #[serde(borrow)]
    kind: Str<'a>,
    controller: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSpec<'a> {
    // Node
    unschedulable: Option<bool>,
    taints: Vec<Taint>,
    // Pod
    #[serde(rename = "nodeName", borrow)]
    node_name: Option<Str<'a>>,
    #[serde(borrow)]
    containers: Vec<RawContainer<'a>>,
    // PDB
    selector: Option<RawSelector>,
    #[serde(rename = "minAvailable")]
    min_available: Option<IntOrString>,
    #[serde(rename = "maxUnavailable")]
    max_unavailable: Option<IntOrString>,
}

/// A PDB's selector; other kinds (Services) use a plain map we don't need.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawSelector {
    Selector(LabelSelector),
    #[allow(dead_code)]
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawContainer<'a> {
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    image: Option<Str<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawStatus<'a> {
    // Node
    #[serde(rename = "nodeInfo", borrow)]
    node_info: Option<RawNodeInfo<'a>>,
    #[serde(borrow)]
    conditions: Vec<RawCondition<'a>>,
    // Pod
    #[serde(borrow)]
    phase: Option<Str<'a>>,
    // PDB
    #[serde(rename = "disruptionsAllowed")]
    disruptions_allowed: Option<i64>,
    #[serde(rename = "currentHealthy")]
    current_healthy: Option<i64>,
    #[serde(rename = "desiredHealthy")]
    desired_healthy: Option<i64>,
    #[serde(rename = "expectedPods")]
    expected_pods: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawNodeInfo<'a> {
    #[serde(rename = "kubeletVersion", borrow)]
    kubelet_version: Option<Str<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawCondition<'a> {
    #[serde(rename = "type", borrow)]
    type_: Str<'a>,
    #[serde(borrow)]
    status: Str<'a>,
}

/// Read a snapshot file (YAML or JSON).
pub fn read_file(path: &Path) -> Result<ClusterSnapshot, SnapshotError> {
    let bytes = std::fs::read(path).map_err(|error| SnapshotError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let origin = path.display().to_string();
    let text = crate::source::utf8_text(&bytes).map_err(|m| invalid(&origin, m))?;
    parse(text, &origin)
}

/// Parse snapshot text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<ClusterSnapshot, SnapshotError> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(invalid(
            origin,
            "empty snapshot: expected the output of `kubectl get nodes,pods,pdb -A -o yaml`",
        ));
    }
    let list: RawList = if trimmed.starts_with('{') {
        serde_json::from_str(text).map_err(|e| {
            let hint = if e.is_eof() {
                " (the file looks truncated)"
            } else {
                ""
            };
            let mut msg = e.to_string();
            // serde_json repeats the position; ours is in front already.
            if let Some(i) = msg.find(" at line ") {
                msg.truncate(i);
            }
            invalid(
                origin,
                format!(
                    "line {} column {}: {}{hint}",
                    e.line(),
                    e.column(),
                    plain_types(&msg)
                ),
            )
        })?
    } else {
        // Deeper flow nesting takes the YAML parser time quadratic in the depth to
        // refuse (as in fleet files): refused before parsing.
        if let Some((line, col)) = cupcake_core::yamlpos::too_deep(text) {
            return Err(invalid(
                origin,
                format!(
                    "line {line} column {col}: flow collections ([...] or {{...}}) nested more than {} levels deep",
                    cupcake_core::yamlpos::MAX_FLOW_DEPTH
                ),
            ));
        }
        // kubectl's YAML takes the fast path; anything else (and every error,
        // with its line and column) comes from the full parser.
        match yaml::from_str(text) {
            Some(list) => list,
            None => {
                yaml_serde::from_str(text).map_err(|e| invalid(origin, yaml_message(&e, text)))?
            }
        }
    };
    from_list(list, origin)
}

/// serde's names for our decoding types, in words a user knows.
fn plain_types(msg: &str) -> String {
    msg.replace(
        "struct RawObject",
        "an object (a Node, Pod or PodDisruptionBudget)",
    )
    .replace(
        "struct RawList",
        "a kubectl list (apiVersion: v1, kind: List, items: [...])",
    )
}

fn yaml_message(e: &yaml_serde::Error, text: &str) -> String {
    let mut msg = e.to_string();
    if msg.starts_with("deserializing from YAML containing more than one document") {
        return "more than one YAML document (a `---` line between two): a snapshot is one kubectl list".into();
    }
    if let Some(i) = msg.find(" at line ") {
        msg.truncate(i);
    }
    // The reader's errors (control characters) give a byte offset instead.
    if let Some((line, col)) = crate::load::at_position(&mut msg, text) {
        return format!("line {line} column {col}: {}", plain_types(&msg));
    }
    if msg.contains("tab character") {
        msg.push_str(" (a tab: YAML indents with spaces only)");
    }
    match e.location() {
        Some(l) => format!(
            "line {} column {}: {}",
            l.line(),
            l.column(),
            plain_types(&msg)
        ),
        None => plain_types(&msg),
    }
}

const LIST_HINT: &str =
    "expected the output of `kubectl get nodes,pods,pdb -A -o yaml` (apiVersion: v1, kind: List)";

fn from_list(list: RawList, origin: &str) -> Result<ClusterSnapshot, SnapshotError> {
    // kubectl prints `kind: List` after `items`, so a file cut short loses it.
    let kind = list.kind.ok_or_else(|| {
        invalid(origin, format!("no `kind` at the top level: the file looks truncated or is not a kubectl list; {LIST_HINT}"))
    })?;
    if !kind.ends_with("List") {
        return Err(invalid(
            origin,
            format!("kind {kind:?} is not a list; {LIST_HINT}"),
        ));
    }
    if list.api_version.as_deref() != Some("v1") && &*kind == "List" {
        return Err(invalid(
            origin,
            match list.api_version.as_deref() {
                Some(v) => format!("apiVersion {v:?} where \"v1\" was expected; {LIST_HINT}"),
                None => format!("apiVersion missing (\"v1\" was expected); {LIST_HINT}"),
            },
        ));
    }
    let items = list
        .items
        .ok_or_else(|| invalid(origin, format!("no `items`; {LIST_HINT}")))?;
    let item_kind = kind
        .strip_suffix("List")
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    from_items(items, item_kind, origin)
}

/// The snapshot of decoded items (of kind `item_kind` when they name none): the
/// one set of conversion rules behind [`parse`] and [`from_objects`].
fn from_items<'a>(
    items: impl IntoIterator<Item = RawObject<'a>>,
    item_kind: Option<String>,
    origin: &str,
) -> Result<ClusterSnapshot, SnapshotError> {
    let mut b = Builder::new(origin, Interner::none());
    for item in items {
        b.object(item, item_kind.as_deref())?;
    }
    b.finish()
}

/// Builds a snapshot item by item, in the order of a kubectl List (nodes, pods, PDBs):
/// errors name the item by its index among all items.
#[derive(Debug)]
struct Builder {
    origin: String,
    nodes: Vec<Node>,
    pods: Vec<Pod>,
    pdbs: Vec<Pdb>,
    /// (pod index, image) of control-plane static pods.
    cp_images: Vec<(usize, String)>,
    /// The index of the next item.
    next: usize,
    names: Interner,
}

impl Builder {
    fn new(origin: &str, names: Interner) -> Self {
        Builder {
            origin: origin.to_string(),
            nodes: Vec::new(),
            pods: Vec::new(),
            pdbs: Vec::new(),
            cp_images: Vec::new(),
            next: 0,
            names,
        }
    }

    fn invalid(&self, message: String) -> SnapshotError {
        invalid(&self.origin, message)
    }

    /// One decoded object (of kind `item_kind` when it names none).
    fn object(&mut self, item: RawObject, item_kind: Option<&str>) -> Result<(), SnapshotError> {
        let i = self.next;
        self.next += 1;
        let k: Option<String> = item
            .kind
            .as_ref()
            .map(|k| k.to_string())
            .or_else(|| item_kind.map(str::to_string));
        let name = item
            .metadata
            .name
            .clone()
            .ok_or_else(|| self.invalid(format!("items[{i}]: metadata.name missing")))?;
        let at = |what: &str| format!("items[{i}] ({} {name})", what);
        match k.as_deref() {
            Some("Node") => {
                let n =
                    node(item, &name).map_err(|m| self.invalid(format!("{}: {m}", at("Node"))))?;
                self.nodes.push(n);
            }
            Some("Pod") => {
                let row = PodRow::of(item, &mut self.names);
                self.add_pod(i, &row)?;
            }
            Some("PodDisruptionBudget") => {
                if item
                    .api_version
                    .as_deref()
                    .is_some_and(|v| v != "policy/v1")
                {
                    return Err(self.invalid(format!(
                        "{}: apiVersion {:?} is not supported, use policy/v1",
                        at("PodDisruptionBudget"),
                        item.api_version
                    )));
                }
                let p = pdb(item, &name)
                    .map_err(|m| self.invalid(format!("{}: {m}", at("PodDisruptionBudget"))))?;
                self.pdbs.push(p);
            }
            // Fail closed: a kind the planner does not read is refused, not skipped (a
            // `kubectl get all` has no PDBs: planning over it would ignore them all).
            Some(other) => {
                return Err(self.invalid(format!(
                    "items[{i}] ({other} {name}): a snapshot holds Nodes, Pods and PodDisruptionBudgets only; make it with `kubectl get nodes,pods,pdb -A -o yaml`"
                )));
            }
            None => return Err(self.invalid(format!("items[{i}] ({name}): kind missing"))),
        }
        Ok(())
    }

    /// One pod as a row (the next item).
    fn pod_row(&mut self, row: &PodRow) -> Result<(), SnapshotError> {
        let i = self.next;
        self.next += 1;
        self.add_pod(i, row)
    }

    fn add_pod(&mut self, i: usize, row: &PodRow) -> Result<(), SnapshotError> {
        let Some(name) = row.name.as_deref() else {
            return Err(self.invalid(format!("items[{i}]: metadata.name missing")));
        };
        let Some(namespace) = row.namespace.as_deref() else {
            return Err(self.invalid(format!(
                "items[{i}] (Pod {name}): metadata.namespace missing"
            )));
        };
        if let Some(image) = &row.image {
            self.cp_images.push((self.pods.len(), image.to_string()));
        }
        self.pods.push(Pod {
            namespace: namespace.to_string(),
            name: name.to_string(),
            node: row.node.to_string(),
            labels: row.labels.clone(),
            owner_kind: row.owner_kind.as_deref().map(str::to_string),
            phase: row.phase.to_string(),
        });
        Ok(())
    }

    fn finish(mut self) -> Result<ClusterSnapshot, SnapshotError> {
        if self.nodes.is_empty() {
            return Err(self.invalid(format!("the snapshot holds no Node; {LIST_HINT}")));
        }
        attach_control_plane(&mut self.nodes, &self.pods, &self.cp_images);
        let snapshot = ClusterSnapshot {
            nodes: self.nodes,
            pods: self.pods,
            pdbs: self.pdbs,
        };
        // What the planner would misread (PDB budgets, node names, …) is refused here,
        // naming the snapshot; `core::pass` checks again for snapshots made elsewhere.
        cupcake_core::plan::validate(&snapshot)
            .map_err(|e| invalid(&self.origin, e.to_string()))?;
        Ok(snapshot)
    }
}

fn node(item: RawObject, name: &str) -> Result<Node, String> {
    let kv = item
        .status
        .node_info
        .and_then(|n| n.kubelet_version)
        .ok_or(
            "status.nodeInfo.kubeletVersion missing (was the node written without its status?)",
        )?;
    let kubelet_version =
        KubeVersion::parse(&kv).map_err(|e| format!("status.nodeInfo.kubeletVersion: {e}"))?;
    let labels = item.metadata.labels;
    let role = if labels.contains_key(ROLE_CONTROL_PLANE) || labels.contains_key(ROLE_MASTER) {
        Role::ControlPlane
    } else {
        Role::Worker
    };
    // A condition status is True, False or Unknown; anything else would read as
    // "not Ready" without a word.
    if let Some(c) = item
        .status
        .conditions
        .iter()
        .find(|c| !matches!(&*c.status, "True" | "False" | "Unknown"))
    {
        return Err(format!(
            "status.conditions[{}].status {:?}: expected True, False or Unknown",
            &*c.type_, &*c.status
        ));
    }
    let ready = item
        .status
        .conditions
        .iter()
        .any(|c| &*c.type_ == "Ready" && &*c.status == "True");
    Ok(Node {
        name: name.to_string(),
        labels,
        role,
        kubelet_version,
        ready,
        unschedulable: item.spec.unschedulable.unwrap_or(false),
        taints: item.spec.taints,
        control_plane: None,
    })
}

/// The control-plane component a pod runs, by its `component` label or its name.
fn component_of(name: &str, labels: &BTreeMap<String, String>) -> Option<&'static str> {
    const COMPONENTS: [&str; 4] = [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "etcd",
    ];
    let by_label = labels
        .get("component")
        .and_then(|c| COMPONENTS.iter().find(|x| *x == c).copied());
    by_label.or_else(|| {
        COMPONENTS
            .iter()
            .find(|c| name.starts_with(&format!("{c}-")))
            .copied()
    })
}

fn attach_control_plane(nodes: &mut [Node], pods: &[Pod], images: &[(usize, String)]) {
    let mut by_node: BTreeMap<&str, ControlPlaneComponents> = BTreeMap::new();
    for (i, image) in images {
        let p = &pods[*i];
        let Some(c) = component_of(&p.name, &p.labels) else {
            continue;
        };
        if p.node.is_empty() {
            continue;
        }
        let entry = by_node.entry(p.node.as_str()).or_default();
        match c {
            "kube-apiserver" => entry.apiserver = KubeVersion::from_image(image),
            "kube-controller-manager" => entry.controller_manager = KubeVersion::from_image(image),
            "kube-scheduler" => entry.scheduler = KubeVersion::from_image(image),
            _ => {
                // The tag, without a digest (`etcd:3.5.21-0@sha256:…`).
                let name = image.split('@').next().unwrap_or(image);
                entry.etcd = name.rsplit_once(':').map(|(_, t)| t.to_string())
            }
        }
    }
    for n in nodes.iter_mut() {
        if let Some(c) = by_node.remove(n.name.as_str()) {
            n.control_plane = Some(c);
        }
    }
}

fn pdb(item: RawObject, name: &str) -> Result<Pdb, String> {
    let namespace = item
        .metadata
        .namespace
        .ok_or("metadata.namespace missing")?;
    let s = &item.status;
    let status = s.disruptions_allowed.map(|d| PdbStatus {
        disruptions_allowed: d,
        current_healthy: s.current_healthy.unwrap_or(0),
        desired_healthy: s.desired_healthy.unwrap_or(0),
        expected_pods: s.expected_pods.unwrap_or(0),
    });
    let selector = match item.spec.selector {
        Some(RawSelector::Selector(sel)) => Some(sel),
        Some(RawSelector::Other(_)) => return Err("spec.selector is not a label selector".into()),
        None => None,
    };
    if item.spec.min_available.is_some() && item.spec.max_unavailable.is_some() {
        return Err("spec sets both minAvailable and maxUnavailable".into());
    }
    Ok(Pdb {
        namespace: namespace.owned(),
        name: name.to_string(),
        selector,
        min_available: item.spec.min_available,
        max_unavailable: item.spec.max_unavailable,
        status,
    })
}

/// The snapshot of typed objects: the same snapshot [`parse`] makes of them printed
/// as a kubectl `List` (nodes, then pods, then PDBs), without printing and reading
/// them back.
pub fn from_objects<'a>(
    nodes: impl IntoIterator<Item = &'a k8s::Node>,
    pods: impl IntoIterator<Item = &'a k8s::Pod>,
    pdbs: impl IntoIterator<Item = &'a k8s::PodDisruptionBudget>,
    origin: &str,
) -> Result<ClusterSnapshot, SnapshotError> {
    let items = nodes
        .into_iter()
        .map(typed::node)
        .chain(pods.into_iter().map(typed::pod))
        .chain(pdbs.into_iter().map(typed::pdb));
    from_items(items, None, origin)
}

/// The snapshot of typed Nodes and PDBs and of pods as rows, as the rollout
/// controller's caches hold them: the same as [`from_objects`] of the pods the rows
/// were made of.
pub fn from_rows<'a>(
    nodes: impl IntoIterator<Item = &'a CachedNode>,
    pods: impl IntoIterator<Item = &'a PodRow>,
    pdbs: impl IntoIterator<Item = &'a k8s::PodDisruptionBudget>,
    origin: &str,
) -> Result<ClusterSnapshot, SnapshotError> {
    let mut b = Builder::new(origin, Interner::none());
    let nodes = nodes.into_iter();
    b.nodes.reserve(nodes.size_hint().0);
    for n in nodes {
        b.object(typed::cached_node(n), None)?;
    }
    // Sized once: grown by doubling, 50,000 pods' vector was 9 MB of copies.
    let pods = pods.into_iter();
    b.pods.reserve(pods.size_hint().0);
    for p in pods {
        b.pod_row(p)?;
    }
    for p in pdbs {
        b.object(typed::pdb(p), None)?;
    }
    b.finish()
}

/// A snapshot read from the API server's list answers page by page
/// (`observe::snapshot`): nodes, then pods, then PDBs, each page decoded into only
/// what the snapshot reads and then dropped, so the cluster is never held as whole
/// objects. The same snapshot as [`from_objects`] of the listed objects.
#[derive(Debug)]
pub struct Pages {
    b: Builder,
}

/// One page of a list (`GET /api/v1/pods?limit=…`): its items carry no `kind`.
#[derive(Deserialize)]
struct RawPage<'a> {
    #[serde(borrow)]
    items: Option<Vec<RawObject<'a>>>,
    #[serde(borrow, default)]
    metadata: RawListMeta<'a>,
}

#[derive(Deserialize, Default)]
struct RawListMeta<'a> {
    #[serde(rename = "continue", borrow)]
    continue_: Option<Str<'a>>,
}

impl Pages {
    /// `origin` names the cluster in errors.
    pub fn new(origin: &str) -> Self {
        Pages {
            b: Builder::new(origin, Interner::none()),
        }
    }

    /// Read one page of the list of `kind` (`Node`, `Pod`, `PodDisruptionBudget`):
    /// the API server's JSON answer. Returns the token of the next page, if any.
    pub fn add(&mut self, kind: &str, json: &str) -> Result<Option<String>, SnapshotError> {
        let page: RawPage = serde_json::from_str(json).map_err(|e| {
            self.b.invalid(format!(
                "the {kind} list answer, line {} column {}: {e}",
                e.line(),
                e.column()
            ))
        })?;
        self.items(
            kind,
            page.items.unwrap_or_default(),
            page.metadata.continue_,
        )
    }

    /// Read one page of the list of `kind` as the API server answered it: in
    /// Kubernetes' protobuf encoding (`Accept: application/vnd.kubernetes.protobuf`)
    /// or, when the server chose it, JSON. Returns the token of the next page, if any.
    pub fn add_answer(&mut self, kind: &str, body: &[u8]) -> Result<Option<String>, SnapshotError> {
        if !body.starts_with(proto::MAGIC) {
            let text = std::str::from_utf8(body).map_err(|e| {
                self.b.invalid(format!(
                    "the {kind} list answer is neither protobuf nor JSON: {e}"
                ))
            })?;
            return self.add(kind, text);
        }
        let (items, token) = proto::list(body, kind).map_err(|e| {
            self.b
                .invalid(format!("the {kind} list answer (protobuf): {e}"))
        })?;
        self.items(kind, items, token)
    }

    fn items(
        &mut self,
        kind: &str,
        items: Vec<RawObject>,
        token: Option<Str>,
    ) -> Result<Option<String>, SnapshotError> {
        for item in items {
            self.b.object(item, Some(kind))?;
        }
        Ok(token.filter(|c| !c.is_empty()).map(Str::owned))
    }

    /// The snapshot of every page read.
    pub fn finish(self) -> Result<ClusterSnapshot, SnapshotError> {
        self.b.finish()
    }
}

/// The k8s-openapi types the typed path reads.
mod k8s {
    pub use k8s_openapi::api::core::v1::{Node, Pod};
    pub use k8s_openapi::api::policy::v1::PodDisruptionBudget;
}

/// Typed objects as [`RawObject`]s, borrowing their strings: each field is what
/// its JSON would decode to (`None` for what k8s-openapi leaves out).
mod typed {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_openapi::apimachinery::pkg::util::intstr;

    fn s(v: &str) -> Str<'_> {
        Str(Cow::Borrowed(v))
    }

    fn opt(v: &Option<String>) -> Option<Str<'_>> {
        v.as_deref().map(s)
    }

    fn metadata(m: &meta::ObjectMeta) -> RawMeta<'_> {
        RawMeta {
            name: opt(&m.name),
            namespace: opt(&m.namespace),
            resource_version: opt(&m.resource_version),
            labels: m.labels.clone().unwrap_or_default(),
            owner_references: m
                .owner_references
                .iter()
                .flatten()
                .map(|o| RawOwner {
                    kind: s(&o.kind),
                    controller: o.controller,
                })
                .collect(),
            annotations: MirrorAnnotation(
                m.annotations
                    .as_ref()
                    .is_some_and(|a| a.contains_key(MIRROR_ANNOTATION)),
            ),
        }
    }

    fn int_or_string(v: &Option<intstr::IntOrString>) -> Option<IntOrString> {
        v.as_ref().map(|v| match v {
            intstr::IntOrString::Int(i) => IntOrString::Int(i64::from(*i)),
            intstr::IntOrString::String(s) => IntOrString::String(s.clone()),
        })
    }

    fn taints<'a>(ts: impl Iterator<Item = &'a k8s_openapi::api::core::v1::Taint>) -> Vec<Taint> {
        ts.map(|t| Taint {
            key: t.key.clone(),
            value: t.value.clone(),
            effect: t.effect.clone(),
        })
        .collect()
    }

    /// The same as [`node`] of the whole Node the cached one was made of.
    pub(super) fn cached_node(n: &CachedNode) -> RawObject<'_> {
        RawObject {
            api_version: Some(s("v1")),
            kind: Some(s("Node")),
            metadata: metadata(&n.metadata),
            spec: RawSpec {
                unschedulable: n.unschedulable,
                taints: taints(n.taints.iter().flatten()),
                ..RawSpec::default()
            },
            status: RawStatus {
                node_info: n.kubelet_version.as_deref().map(|v| RawNodeInfo {
                    kubelet_version: Some(s(v)),
                }),
                conditions: n
                    .conditions
                    .iter()
                    .map(|(t, st)| RawCondition {
                        type_: s(t),
                        status: s(st),
                    })
                    .collect(),
                ..RawStatus::default()
            },
        }
    }

    pub(super) fn node(n: &k8s::Node) -> RawObject<'_> {
        let spec = n.spec.as_ref();
        let status = n.status.as_ref();
        RawObject {
            api_version: Some(s("v1")),
            kind: Some(s("Node")),
            metadata: metadata(&n.metadata),
            spec: RawSpec {
                unschedulable: spec.and_then(|s| s.unschedulable),
                taints: taints(spec.and_then(|s| s.taints.as_ref()).into_iter().flatten()),
                ..RawSpec::default()
            },
            status: RawStatus {
                node_info: status
                    .and_then(|s| s.node_info.as_ref())
                    .map(|i| RawNodeInfo {
                        kubelet_version: Some(s(&i.kubelet_version)),
                    }),
                conditions: status
                    .and_then(|s| s.conditions.as_ref())
                    .into_iter()
                    .flatten()
                    .map(|c| RawCondition {
                        type_: s(&c.type_),
                        status: s(&c.status),
                    })
                    .collect(),
                ..RawStatus::default()
            },
        }
    }

    pub(super) fn pod(p: &k8s::Pod) -> RawObject<'_> {
        let spec = p.spec.as_ref();
        RawObject {
            api_version: Some(s("v1")),
            kind: Some(s("Pod")),
            metadata: metadata(&p.metadata),
            spec: RawSpec {
                node_name: spec.and_then(|s| opt(&s.node_name)),
                containers: spec
                    .into_iter()
                    .flat_map(|s| &s.containers)
                    .map(|c| RawContainer {
                        name: s(&c.name),
                        image: opt(&c.image),
                    })
                    .collect(),
                ..RawSpec::default()
            },
            status: RawStatus {
                phase: p.status.as_ref().and_then(|s| opt(&s.phase)),
                ..RawStatus::default()
            },
        }
    }

    pub(super) fn pdb(p: &k8s::PodDisruptionBudget) -> RawObject<'_> {
        let spec = p.spec.as_ref();
        let status = p.status.as_ref();
        RawObject {
            api_version: Some(s("policy/v1")),
            kind: Some(s("PodDisruptionBudget")),
            metadata: metadata(&p.metadata),
            spec: RawSpec {
                selector: spec.and_then(|s| s.selector.as_ref()).map(|sel| {
                    RawSelector::Selector(LabelSelector {
                        match_labels: sel.match_labels.clone().unwrap_or_default(),
                        match_expressions: sel
                            .match_expressions
                            .iter()
                            .flatten()
                            .map(|r| SelectorRequirement {
                                key: r.key.clone(),
                                operator: r.operator.clone(),
                                values: r.values.clone().unwrap_or_default(),
                            })
                            .collect(),
                    })
                }),
                min_available: int_or_string(&spec.and_then(|s| s.min_available.clone())),
                max_unavailable: int_or_string(&spec.and_then(|s| s.max_unavailable.clone())),
                ..RawSpec::default()
            },
            status: RawStatus {
                disruptions_allowed: status.map(|s| i64::from(s.disruptions_allowed)),
                current_healthy: status.map(|s| i64::from(s.current_healthy)),
                desired_healthy: status.map(|s| i64::from(s.desired_healthy)),
                expected_pods: status.map(|s| i64::from(s.expected_pods)),
                ..RawStatus::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use super::*;

    /// kubectl-shaped YAML: the example fleet's and a synthetic cluster printed by yaml_serde.
    fn kubectl_yaml() -> Vec<String> {
        let example = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/fleet/clusters/demo/snapshot.yaml");
        let json = crate::synth::kubectl_json(40, 5, 8, "1.33.4");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        vec![
            std::fs::read_to_string(example).unwrap(),
            yaml_serde::to_string(&value).unwrap(),
        ]
    }

    #[test]
    fn kubectl_yaml_takes_the_fast_path_and_reads_the_same() {
        for text in kubectl_yaml() {
            let fast: RawList = yaml::from_str(&text).expect("the fast path reads kubectl's YAML");
            let full: RawList = yaml_serde::from_str(&text).unwrap();
            assert_eq!(
                from_list(fast, "fast").unwrap(),
                from_list(full, "full").unwrap()
            );
            let fast: serde_json::Value = yaml::from_str(&text).unwrap();
            let full: serde_json::Value = yaml_serde::from_str(&text).unwrap();
            assert_eq!(fast, full);
        }
    }

    #[test]
    fn yaml_outside_the_fast_path_still_reads() {
        // An anchor and a folded scalar: the full parser reads these.
        let text = "apiVersion: v1\nkind: List\nitems:\n- kind: Node\n  metadata:\n    name: &n n1\n    labels: {a: b}\n    annotations:\n      note: >\n        folded\n  status:\n    nodeInfo:\n      kubeletVersion: v1.33.4\n";
        assert!(yaml::from_str::<RawList>(text).is_none());
        let s = parse(text, "t.yaml").unwrap();
        assert_eq!(s.nodes[0].name, "n1");
        assert_eq!(s.nodes[0].labels["a"], "b");
    }
}
