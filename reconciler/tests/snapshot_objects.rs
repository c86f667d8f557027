//! The typed conversion (`snapshot::from_objects`), the reader of kubectl's List
//! (`snapshot::parse`, used for `--snapshot` files and `cupcake snapshot`'s output),
//! the reader of list pages (`snapshot::Pages`, used by `observe::snapshot`: `plan
//! --live`, the GitOps loop, schedules) and the rollout controller's caches (pods as
//! `snapshot::PodRow`s, `snapshot::from_rows`; slimmed Nodes and PDBs,
//! `rollout::slim`) make the same snapshot of the same objects, and fail the same way.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;

use cupcake_api::snapshot::ClusterSnapshot;
use cupcake_reconciler::rollout::slim::CachedNode;
use cupcake_reconciler::snapshot::PodRow;
use cupcake_reconciler::{rollout, snapshot};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, Node, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo,
    Pod, PodSpec, PodStatus, Taint, Volume,
};
use k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ManagedFieldsEntry, ObjectMeta, OwnerReference,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn map(kv: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn meta(ns: Option<&str>, name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(Into::into),
        labels: map(labels),
        resource_version: Some("7".into()),
        uid: Some(format!("uid-{name}")),
        annotations: map(&[(
            "kubectl.kubernetes.io/last-applied-configuration",
            "{\"a\": \"long blob\"}",
        )]),
        managed_fields: Some(vec![ManagedFieldsEntry {
            manager: Some("kubectl".into()),
            operation: Some("Apply".into()),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn mk_node(name: &str, version: &str, cp: bool, ready: bool) -> Node {
    let mut labels = vec![("kubernetes.io/hostname", name), ("zone", "a")];
    if cp {
        labels.push(("node-role.kubernetes.io/control-plane", ""));
    }
    let mut m = meta(None, name, &labels);
    m.annotations.get_or_insert_default().insert(
        "cupcake.ricardomolendijk.com/status".into(),
        "pending".into(),
    );
    Node {
        metadata: m,
        spec: Some(NodeSpec {
            unschedulable: Some(!ready),
            pod_cidr: Some("10.0.0.0/24".into()),
            taints: cp.then(|| {
                vec![
                    Taint {
                        key: "node-role.kubernetes.io/control-plane".into(),
                        effect: "NoSchedule".into(),
                        ..Default::default()
                    },
                    Taint {
                        key: "dedicated".into(),
                        value: Some("etcd".into()),
                        effect: "NoExecute".into(),
                        ..Default::default()
                    },
                ]
            }),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            conditions: Some(vec![
                NodeCondition {
                    type_: "MemoryPressure".into(),
                    status: "False".into(),
                    ..Default::default()
                },
                NodeCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    reason: Some("KubeletReady".into()),
                    ..Default::default()
                },
            ]),
            node_info: Some(NodeSystemInfo {
                kubelet_version: version.into(),
                container_runtime_version: "containerd://1.7.27".into(),
                os_image: "Debian GNU/Linux 12".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn owner(kind: &str, controller: Option<bool>) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: kind.into(),
        name: format!("{}-owner", kind.to_lowercase()),
        uid: "u".into(),
        controller,
        ..Default::default()
    }
}

fn mk_pod(
    ns: &str,
    name: &str,
    node: Option<&str>,
    labels: &[(&str, &str)],
    owners: Vec<OwnerReference>,
    phase: Option<&str>,
    containers: &[(&str, Option<&str>)],
) -> Pod {
    let mut m = meta(Some(ns), name, labels);
    if !owners.is_empty() {
        m.owner_references = Some(owners);
    }
    Pod {
        metadata: m,
        spec: Some(PodSpec {
            node_name: node.map(Into::into),
            containers: containers
                .iter()
                .map(|(n, i)| Container {
                    name: n.to_string(),
                    image: i.map(Into::into),
                    args: Some(vec!["--v=2".into()]),
                    ..Default::default()
                })
                .collect(),
            volumes: Some(vec![Volume {
                name: "scratch".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: phase.map(|p| PodStatus {
            phase: Some(p.into()),
            pod_ip: Some("10.0.0.9".into()),
            ..Default::default()
        }),
    }
}

fn mirror(mut p: Pod) -> Pod {
    p.metadata
        .annotations
        .get_or_insert_default()
        .insert("kubernetes.io/config.mirror".into(), "hash".into());
    p
}

fn mk_pdb(
    ns: &str,
    name: &str,
    selector: Option<LabelSelector>,
    min: Option<IntOrString>,
    max: Option<IntOrString>,
    status: Option<(i32, i32, i32, i32)>,
) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(Some(ns), name, &[]),
        spec: Some(PodDisruptionBudgetSpec {
            selector,
            min_available: min,
            max_unavailable: max,
            ..Default::default()
        }),
        status: status.map(|(d, c, de, e)| PodDisruptionBudgetStatus {
            disruptions_allowed: d,
            current_healthy: c,
            desired_healthy: de,
            expected_pods: e,
            observed_generation: Some(1),
            ..Default::default()
        }),
    }
}

/// A cluster with every case the conversion rules distinguish.
fn objects() -> (Vec<Node>, Vec<Pod>, Vec<PodDisruptionBudget>) {
    let nodes = vec![
        mk_node("cp-1", "v1.33.4", true, true),
        mk_node("cp-2", "v1.34.2", true, false),
        mk_node("w-1", "v1.33.4", false, true),
        mk_node("w-2", "v1.33.4+k3s1", false, false),
        Node {
            // no spec, labels or conditions
            metadata: ObjectMeta {
                name: Some("w-3".into()),
                ..Default::default()
            },
            spec: None,
            status: Some(NodeStatus {
                node_info: Some(NodeSystemInfo {
                    kubelet_version: "v1.32.1".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        },
    ];
    let mut pods = Vec::new();
    for n in ["cp-1", "cp-2"] {
        let v = if n == "cp-1" { "v1.33.4" } else { "v1.34.2" };
        for c in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            pods.push(mirror(mk_pod(
                "kube-system",
                &format!("{c}-{n}"),
                Some(n),
                &[("component", c), ("tier", "control-plane")],
                vec![owner("Node", Some(true))],
                Some("Running"),
                &[
                    ("sidecar", Some("busybox:1")),
                    (c, Some(&format!("registry.k8s.io/{c}:{v}"))),
                ],
            )));
        }
    }
    // etcd by name only (no component label), image with a digest; mirror without owner.
    pods.push(mirror(mk_pod(
        "kube-system",
        "etcd-cp-1",
        Some("cp-1"),
        &[],
        vec![],
        Some("Running"),
        &[("etcd", Some("registry.k8s.io/etcd:3.5.21-0@sha256:abc"))],
    )));
    // A kube-system pod whose container name matches no component: the first image counts.
    pods.push(mk_pod(
        "kube-system",
        "kube-scheduler-w-1",
        Some("w-1"),
        &[],
        vec![owner("Node", Some(true))],
        Some("Running"),
        &[("other", Some("registry.k8s.io/kube-scheduler:v1.30.0"))],
    ));
    pods.push(mk_pod(
        "kube-system",
        "agent-w-1",
        Some("w-1"),
        &[("app", "agent")],
        vec![owner("DaemonSet", Some(true))],
        Some("Running"),
        &[("agent", Some("agent:1"))],
    ));
    for (i, (phase, owners)) in [
        (Some("Running"), vec![owner("ReplicaSet", Some(true))]),
        (Some("Pending"), vec![owner("StatefulSet", Some(true))]),
        (Some("Succeeded"), vec![owner("Job", Some(true))]),
        (Some("Failed"), vec![owner("Job", None)]),
        (None, vec![]),
        // the controller is not the first owner; then no controller at all
        (
            Some("Running"),
            vec![owner("ConfigMap", None), owner("ReplicaSet", Some(true))],
        ),
        (
            Some("Running"),
            vec![owner("ConfigMap", Some(false)), owner("Foo", None)],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        pods.push(mk_pod(
            "apps",
            &format!("web-{i}"),
            if i == 4 { None } else { Some("w-1") },
            &[("app", "web"), ("tier", if i % 2 == 0 { "a" } else { "b" })],
            owners,
            phase,
            &[("web", None)],
        ));
    }
    let pdbs = vec![
        mk_pdb(
            "apps",
            "web",
            Some(LabelSelector {
                match_labels: map(&[("app", "web")]),
                ..Default::default()
            }),
            Some(IntOrString::Int(2)),
            None,
            Some((1, 3, 2, 4)),
        ),
        mk_pdb(
            "apps",
            "tier",
            Some(LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![
                    LabelSelectorRequirement {
                        key: "tier".into(),
                        operator: "In".into(),
                        values: Some(vec!["a".into(), "b".into()]),
                    },
                    LabelSelectorRequirement {
                        key: "gone".into(),
                        operator: "DoesNotExist".into(),
                        values: None,
                    },
                ]),
            }),
            None,
            Some(IntOrString::String("25%".into())),
            None,
        ),
        mk_pdb("apps", "none", None, None, None, Some((0, 0, 0, 0))),
        mk_pdb(
            "other",
            "empty",
            Some(LabelSelector::default()),
            Some(IntOrString::String("100%".into())),
            None,
            Some((0, 5, 5, 5)),
        ),
    ];
    (nodes, pods, pdbs)
}

/// What `cupcake snapshot` prints (observe::write_snapshot's shape), read back.
fn via_json(
    nodes: &[Node],
    pods: &[Pod],
    pdbs: &[PodDisruptionBudget],
) -> Result<ClusterSnapshot, String> {
    let mut items: Vec<serde_json::Value> = Vec::new();
    items.extend(nodes.iter().map(|n| serde_json::to_value(n).unwrap()));
    items.extend(pods.iter().map(|p| serde_json::to_value(p).unwrap()));
    items.extend(pdbs.iter().map(|p| serde_json::to_value(p).unwrap()));
    let list = serde_json::json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}});
    snapshot::parse(&list.to_string(), "t").map_err(|e| e.to_string())
}

fn typed(
    nodes: &[Node],
    pods: &[Pod],
    pdbs: &[PodDisruptionBudget],
) -> Result<ClusterSnapshot, String> {
    snapshot::from_objects(nodes, pods, pdbs, "t").map_err(|e| e.to_string())
}

/// As the rollout controller makes it: pods as rows (one interner for all, as its
/// cache has), Nodes and PDBs typed.
fn rows(
    nodes: &[CachedNode],
    pods: &[Pod],
    pdbs: &[PodDisruptionBudget],
) -> Result<ClusterSnapshot, String> {
    let mut names = snapshot::Interner::default();
    let rows: Vec<PodRow> = pods
        .iter()
        .map(|p| PodRow::from_pod(p, &mut names))
        .collect();
    snapshot::from_rows(nodes, &rows, pdbs, "t").map_err(|e| e.to_string())
}

/// The nodes as the controller's cache keeps them.
fn cached(nodes: &[Node]) -> Vec<CachedNode> {
    nodes.iter().cloned().map(rollout::slim::node).collect()
}

/// Each node as the controller's watch decodes it (`WatchedNode`, from the node's
/// JSON) is the slim copy of the whole object.
fn watched_nodes_are_the_slim_nodes(nodes: &[Node]) {
    for n in nodes {
        let watched: rollout::slim::WatchedNode =
            serde_json::from_value(serde_json::to_value(n).unwrap()).unwrap();
        // The watcher reads the resourceVersion of every change after the initial
        // state; without it, it drops the change and lists every node again.
        use kube::Resource;
        assert_eq!(
            watched.meta().resource_version,
            n.metadata.resource_version,
            "{:?}",
            n.metadata.name
        );
        assert_eq!(watched.meta().name, n.metadata.name);
        assert_eq!(
            watched.into_cached(),
            rollout::slim::node(n.clone()),
            "{:?}",
            n.metadata.name
        );
    }
}

/// Each pod as the controller's watch decodes it (`WatchedPod`, from the pod's JSON)
/// makes the row of the whole object.
fn watched_rows_are_the_rows_of_the_objects(pods: &[Pod]) {
    let mut names = snapshot::Interner::default();
    for p in pods {
        let watched: snapshot::WatchedPod =
            serde_json::from_value(serde_json::to_value(p).unwrap()).unwrap();
        assert_eq!(
            names.share(watched.row.clone()),
            PodRow::from_pod(p, &mut names),
            "{:?}",
            p.metadata.name
        );
        assert_eq!(
            kube::Resource::meta(&watched).name,
            p.metadata.name,
            "the watcher's object names its pod"
        );
    }
}

/// One kind's list as the API server answers it, `page` items a page: items
/// without `kind` and `apiVersion`, a `continue` token on every page but the last.
fn feed<T: serde::Serialize>(
    pages: &mut snapshot::Pages,
    kind: &str,
    objects: &[T],
    page: usize,
) -> Result<(), String> {
    let mut chunks: Vec<&[T]> = objects.chunks(page).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for (i, chunk) in chunks.iter().enumerate() {
        let items: Vec<serde_json::Value> = chunk
            .iter()
            .map(|o| {
                let mut v = serde_json::to_value(o).unwrap();
                let m = v.as_object_mut().unwrap();
                m.remove("kind");
                m.remove("apiVersion");
                v
            })
            .collect();
        let more = i + 1 < chunks.len();
        let mut metadata = serde_json::json!({"resourceVersion": "42"});
        if more {
            metadata["continue"] = format!("token-{i}").into();
        }
        let answer = serde_json::json!({
            "kind": format!("{kind}List"), "apiVersion": "v1", "metadata": metadata, "items": items,
        });
        let token = pages
            .add(kind, &answer.to_string())
            .map_err(|e| e.to_string())?;
        assert_eq!(token, more.then(|| format!("token-{i}")), "{kind} page {i}");
    }
    Ok(())
}

/// As `observe::snapshot` reads a live cluster: list answers, `page` items a page.
fn paged(
    nodes: &[Node],
    pods: &[Pod],
    pdbs: &[PodDisruptionBudget],
    page: usize,
) -> Result<ClusterSnapshot, String> {
    let mut pages = snapshot::Pages::new("t");
    feed(&mut pages, "Node", nodes, page)?;
    feed(&mut pages, "Pod", pods, page)?;
    feed(&mut pages, "PodDisruptionBudget", pdbs, page)?;
    pages.finish().map_err(|e| e.to_string())
}

#[test]
fn typed_objects_and_their_kubectl_list_make_the_same_snapshot() {
    let (nodes, pods, pdbs) = objects();
    let t = typed(&nodes, &pods, &pdbs).unwrap();
    assert_eq!(t, via_json(&nodes, &pods, &pdbs).unwrap());
    assert_eq!(
        t,
        rows(&cached(&nodes), &pods, &pdbs).unwrap(),
        "pods as rows"
    );
    watched_nodes_are_the_slim_nodes(&nodes);
    watched_rows_are_the_rows_of_the_objects(&pods);
    for page in [1, 2, 3, 500] {
        assert_eq!(
            t,
            paged(&nodes, &pods, &pdbs, page).unwrap(),
            "pages of {page}"
        );
    }
    // Not vacuous: the cases above are all there.
    let cp1 = t.nodes.iter().find(|n| n.name == "cp-1").unwrap();
    let cp = cp1.control_plane.as_ref().unwrap();
    assert_eq!(cp.apiserver.as_ref().unwrap().to_string(), "1.33.4");
    assert_eq!(cp.etcd.as_deref(), Some("3.5.21-0"));
    assert_eq!(cp1.taints.len(), 2);
    assert!(t.nodes.iter().any(|n| !n.ready && n.unschedulable));
    let kinds: Vec<Option<&str>> = t.pods.iter().map(|p| p.owner_kind.as_deref()).collect();
    for k in [
        "Node",
        "DaemonSet",
        "ReplicaSet",
        "StatefulSet",
        "Job",
        "ConfigMap",
    ] {
        assert!(kinds.contains(&Some(k)), "{k}: {kinds:?}");
    }
    assert!(kinds.contains(&None));
    let web = t.pdbs.iter().find(|p| p.name == "web").unwrap();
    assert_eq!(web.status.unwrap().disruptions_allowed, 1);
    assert!(t.pdbs.iter().any(|p| p.status.is_none()));
    assert!(t.pdbs.iter().any(|p| p.selector.is_none()));
}

#[test]
fn typed_objects_and_their_kubectl_list_fail_the_same_way() {
    let (nodes, pods, pdbs) = objects();
    type Break = Box<dyn Fn(&mut Vec<Node>, &mut Vec<Pod>, &mut Vec<PodDisruptionBudget>)>;
    let cases: Vec<(&str, Break)> = vec![
        ("no node", Box::new(|n, _, _| n.clear())),
        (
            "node without status",
            Box::new(|n, _, _| n[2].status = None),
        ),
        (
            "bad kubelet version",
            Box::new(|n, _, _| {
                n[1].status
                    .as_mut()
                    .unwrap()
                    .node_info
                    .as_mut()
                    .unwrap()
                    .kubelet_version = "latest".into()
            }),
        ),
        (
            "node without name",
            Box::new(|n, _, _| n[3].metadata.name = None),
        ),
        (
            "pod without namespace",
            Box::new(|_, p, _| p[4].metadata.namespace = None),
        ),
        (
            "pod without name",
            Box::new(|_, p, _| p[9].metadata.name = None),
        ),
        (
            "pdb without namespace",
            Box::new(|_, _, b| b[1].metadata.namespace = None),
        ),
        (
            "pdb with both limits",
            Box::new(|_, _, b| {
                b[0].spec.as_mut().unwrap().max_unavailable = Some(IntOrString::Int(1))
            }),
        ),
    ];
    for (what, break_it) in cases {
        let (mut n, mut p, mut b) = (nodes.clone(), pods.clone(), pdbs.clone());
        break_it(&mut n, &mut p, &mut b);
        let t = typed(&n, &p, &b).expect_err(what);
        assert_eq!(t, via_json(&n, &p, &b).expect_err(what), "{what}");
        assert_eq!(
            t,
            rows(&cached(&n), &p, &b).expect_err(what),
            "{what}: rows"
        );
        for page in [1, 4, 500] {
            assert_eq!(
                t,
                paged(&n, &p, &b, page).expect_err(what),
                "{what}: pages of {page}"
            );
        }
    }
}

fn slim<K>(f: fn(&mut K)) -> impl Fn(K) -> K {
    move |mut k| {
        f(&mut k);
        k
    }
}

#[test]
fn the_controllers_slim_copies_make_the_same_snapshot() {
    let (nodes, pods, pdbs) = objects();
    let slim_nodes: Vec<CachedNode> = nodes.iter().cloned().map(rollout::slim::node).collect();
    let slim_pdbs: Vec<PodDisruptionBudget> =
        pdbs.iter().cloned().map(slim(rollout::slim::pdb)).collect();
    assert_eq!(
        rows(&slim_nodes, &pods, &slim_pdbs).unwrap(),
        typed(&nodes, &pods, &pdbs).unwrap()
    );
    // What goes: managed fields, last-applied, pod specs beyond node and images.
    let n = &slim_nodes[0];
    assert!(n.metadata.managed_fields.is_none());
    assert_eq!(
        n.metadata
            .annotations
            .as_ref()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["cupcake.ricardomolendijk.com/status"],
        "the controller's own annotations stay"
    );
    assert_eq!(n.metadata.resource_version.as_deref(), Some("7"));
    // Conditions: Ready, and those that are True (preflight reads pressure), no others.
    let types =
        |n: &CachedNode| -> Vec<String> { n.conditions.iter().map(|c| c.0.clone()).collect() };
    assert_eq!(types(n), ["Ready"]);
    let mut pressed = nodes[0].clone();
    pressed
        .status
        .as_mut()
        .unwrap()
        .conditions
        .as_mut()
        .unwrap()[0]
        .status = "True".into();
    assert_eq!(
        types(&rollout::slim::node(pressed)),
        ["MemoryPressure", "Ready"]
    );
    // A pod's row keeps an image only for a control-plane component, and the pods of
    // one app share their namespace, node, phase, owner kind and labels.
    let mut names = snapshot::Interner::default();
    let r: Vec<PodRow> = pods
        .iter()
        .map(|p| PodRow::from_pod(p, &mut names))
        .collect();
    assert_eq!(
        r[0].image.as_deref(),
        Some("registry.k8s.io/kube-apiserver:v1.33.4")
    );
    let web: Vec<&PodRow> = r
        .iter()
        .filter(|p| &*p.namespace.clone().unwrap() == "apps")
        .collect();
    assert!(web.iter().all(|p| p.image.is_none()));
    let (a, b) = (web[0], web[2]);
    assert_eq!(a.labels, b.labels);
    assert!(std::sync::Arc::ptr_eq(&a.labels, &b.labels));
    assert!(std::sync::Arc::ptr_eq(
        a.namespace.as_ref().unwrap(),
        b.namespace.as_ref().unwrap()
    ));
    assert!(std::sync::Arc::ptr_eq(&a.node, &b.node));
    assert!(
        slim_pdbs
            .iter()
            .all(|b| b.metadata.managed_fields.is_none() && b.metadata.annotations.is_none())
    );
}

/// The example fleet's snapshot: real kubectl output of a 12-node cluster (nodes with
/// their addresses, capacity and heartbeats; static, DaemonSet and Deployment pods;
/// PDBs with status), read as typed objects the way a watch delivers them.
#[test]
fn a_real_kubectl_snapshot_reads_the_same_typed_and_slimmed() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/fleet/clusters/demo/snapshot.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let list: serde_json::Value = yaml_serde::from_str(&text).unwrap();
    let (mut nodes, mut pods, mut pdbs) = (Vec::<Node>::new(), Vec::<Pod>::new(), Vec::new());
    for item in list["items"].as_array().unwrap() {
        match item["kind"].as_str().unwrap() {
            "Node" => nodes.push(serde_json::from_value(item.clone()).unwrap()),
            "Pod" => pods.push(serde_json::from_value(item.clone()).unwrap()),
            "PodDisruptionBudget" => {
                pdbs.push(serde_json::from_value::<PodDisruptionBudget>(item.clone()).unwrap())
            }
            k => panic!("unexpected kind {k} in {path}"),
        }
    }
    assert_eq!((nodes.len(), pods.len(), pdbs.len()), (12, 47, 5));
    let from_file = snapshot::parse(&text, path).unwrap();
    assert_eq!(typed(&nodes, &pods, &pdbs).unwrap(), from_file);
    assert_eq!(via_json(&nodes, &pods, &pdbs).unwrap(), from_file);
    for page in [1, 5, 500] {
        assert_eq!(paged(&nodes, &pods, &pdbs, page).unwrap(), from_file);
    }
    let mut beat = nodes[0].clone();
    let nodes_whole = nodes.clone();
    let slim_nodes: Vec<CachedNode> = nodes.into_iter().map(rollout::slim::node).collect();
    let slim_pdbs: Vec<PodDisruptionBudget> =
        pdbs.into_iter().map(slim(rollout::slim::pdb)).collect();
    assert_eq!(rows(&slim_nodes, &pods, &slim_pdbs).unwrap(), from_file);
    watched_nodes_are_the_slim_nodes(&nodes_whole);
    watched_rows_are_the_rows_of_the_objects(&pods);
    // A pod's status heartbeat (new conditions, a new resourceVersion) leaves its row
    // the same: the controller does not wake for it.
    let mut names = snapshot::Interner::default();
    let mut moved = pods[0].clone();
    moved.metadata.resource_version = Some("99999".into());
    moved.status.get_or_insert_default().conditions = None;
    assert_eq!(
        PodRow::from_pod(&pods[0], &mut names),
        PodRow::from_pod(&moved, &mut names)
    );
    moved.status.get_or_insert_default().phase = Some("Failed".into());
    assert_ne!(
        PodRow::from_pod(&pods[0], &mut names),
        PodRow::from_pod(&moved, &mut names)
    );
    // A heartbeat (new condition timestamps, a new resourceVersion) leaves the slim
    // copy the same: the controller does not wake for it. A cordon does not.
    beat.metadata.resource_version = Some("99999".into());
    for c in beat.status.as_mut().unwrap().conditions.as_mut().unwrap() {
        c.last_heartbeat_time = None;
    }
    let beat = rollout::slim::node(beat);
    assert!(rollout::slim::same(&slim_nodes[0], &beat));
    let mut cordoned = beat.clone();
    cordoned.unschedulable = Some(true);
    assert!(!rollout::slim::same(&slim_nodes[0], &cordoned));
}
