//! The live snapshot (`observe::snapshot`: list pages asked for in Kubernetes'
//! protobuf encoding and decoded straight into the snapshot's rows) is the snapshot
//! `cupcake snapshot`'s file makes (whole objects printed as a kubectl List and read
//! back), and the same as the pages read as JSON — on the real API server, with the
//! cases where protobuf and JSON differ (empty strings JSON leaves out, owner
//! references with and without `controller`, taints with and without a value, a
//! cordoned node, an unscheduled pod, mirror and control-plane pods, PDBs with
//! integer and percentage limits, match expressions, an empty selector).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::time::Duration;

use cupcake_api::snapshot::ClusterSnapshot;
use cupcake_e2e::{
    TestNamespace, TestNodes, bound_pod, client, kwok_node, pdb, wait_pdb, wait_pods_ready,
};
use cupcake_reconciler::observe::{self, ListEncoding};
use cupcake_reconciler::snapshot;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Taint};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, OwnerReference,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, PostParams};

/// Only this test's objects (other tests share the cluster and change theirs).
fn ours(mut s: ClusterSnapshot, prefix: &str, ns: &str) -> ClusterSnapshot {
    s.nodes.retain(|n| n.name.starts_with(prefix));
    s.pods.retain(|p| {
        p.namespace == ns
            || (p.namespace == "kube-system" && p.name.ends_with(&format!("-{prefix}cp-1")))
    });
    s.pdbs.retain(|p| p.namespace == ns);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_pages_json_pages_and_the_kubectl_list_make_the_same_snapshot() {
    let client = client().await;
    let prefix = format!("ls{:x}-", std::process::id() & 0xffff);
    let mut nodes = TestNodes::default();
    let cp = format!("{prefix}cp-1");
    let (w1, w2) = (format!("{prefix}w-1"), format!("{prefix}w-2"));
    let mut list = vec![
        kwok_node(&cp, true, "v1.33.4", &[("zone", "a")]),
        kwok_node(&w1, false, "v1.33.4+k3s1", &[("zone", "")]),
        kwok_node(&w2, false, "v1.32.1", &[]),
    ];
    // Taints with and without a value; a cordoned node.
    let spec = list[1].spec.get_or_insert_default();
    spec.taints = Some(vec![
        Taint {
            key: "dedicated".into(),
            value: Some("etcd".into()),
            effect: "NoExecute".into(),
            ..Default::default()
        },
        Taint {
            key: "gpu".into(),
            value: Some(String::new()),
            effect: "NoSchedule".into(),
            ..Default::default()
        },
    ]);
    list[2].spec.get_or_insert_default().unschedulable = Some(true);
    nodes.create(&client, list).await.unwrap();
    nodes.wait_ready(&client).await;

    // Control-plane pods: by label, by name only (etcd, an image with a digest), a
    // container name that matches no component (the first image counts), a mirror.
    let ks = Api::<Pod>::namespaced(client.clone(), "kube-system");
    let mut system = Vec::new();
    for (comp, label, image) in [
        (
            "kube-apiserver",
            true,
            "registry.k8s.io/kube-apiserver:v1.33.4",
        ),
        ("etcd", false, "registry.k8s.io/etcd:3.5.21-0@sha256:abc"),
        (
            "kube-scheduler",
            true,
            "registry.k8s.io/kube-scheduler:v1.33.4",
        ),
    ] {
        let name = format!("{comp}-{cp}");
        let labels: Vec<(&str, &str)> = if label {
            vec![("component", comp), ("tier", "control-plane")]
        } else {
            vec![]
        };
        let mut p = bound_pod("kube-system", &name, &cp, &labels, "busybox:1");
        let spec = p.spec.as_mut().unwrap();
        let mut main = spec.containers[0].clone();
        main.name = if comp == "kube-scheduler" {
            "other".into()
        } else {
            comp.into()
        };
        main.image = Some(image.into());
        spec.containers.insert(0, main);
        if comp == "kube-scheduler" {
            spec.containers.truncate(1);
        }
        if comp == "kube-apiserver" {
            p.metadata
                .annotations
                .get_or_insert_default()
                .insert("kubernetes.io/config.mirror".into(), "hash".into());
        }
        ks.create(&PostParams::default(), &p).await.unwrap();
        system.push(name);
    }
    let cleanup = system.clone();
    let _system_pods = scopeguard(move || {
        for n in &cleanup {
            let _ =
                cupcake_e2e::kubectl(&["delete", "pod", "-n", "kube-system", n, "--wait=false"]);
        }
    });

    let ns = TestNamespace::new(&client, "livesnap").await.unwrap();
    // Owners must exist, or the garbage collector deletes their pods.
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns.name)
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: kube::api::ObjectMeta {
                    name: Some("owner".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let owner = |kind: &str, controller: Option<bool>| OwnerReference {
        api_version: "v1".into(),
        kind: kind.into(),
        name: "owner".into(),
        uid: cm.metadata.uid.clone().unwrap(),
        controller,
        ..Default::default()
    };
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let mut running = Vec::new();
    for (i, owners) in [
        vec![owner("ConfigMap", Some(true))],
        vec![owner("ConfigMap", None)],
        vec![owner("ConfigMap", Some(false))],
        vec![],
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("web-{i}");
        let tier = if i % 2 == 0 { "a" } else { "b" };
        let mut p = bound_pod(
            &ns.name,
            &name,
            &w1,
            &[("app", "web"), ("tier", tier)],
            "web:1",
        );
        if !owners.is_empty() {
            p.metadata.owner_references = Some(owners);
        }
        pods.create(&PostParams::default(), &p).await.unwrap();
        running.push(name);
    }
    // Unscheduled: no node matches its selector, and it names none.
    let mut pending = bound_pod(&ns.name, "pending", "", &[("app", "web")], "web:1");
    let spec = pending.spec.as_mut().unwrap();
    spec.node_name = None;
    spec.node_selector = Some(BTreeMap::from([("nowhere".into(), "true".into())]));
    pods.create(&PostParams::default(), &pending).await.unwrap();

    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns.name);
    pdbs.create(
        &PostParams::default(),
        &pdb(&ns.name, "web", "web", Some(2), None),
    )
    .await
    .unwrap();
    let mut tier = pdb(
        &ns.name,
        "tier",
        "web",
        None,
        Some(IntOrString::String("25%".into())),
    );
    tier.spec.as_mut().unwrap().selector = Some(LabelSelector {
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
    });
    pdbs.create(&PostParams::default(), &tier).await.unwrap();
    let mut all = pdb(&ns.name, "all", "web", None, None);
    let spec = all.spec.as_mut().unwrap();
    spec.selector = Some(LabelSelector::default());
    spec.min_available = Some(IntOrString::String("100%".into()));
    pdbs.create(&PostParams::default(), &all).await.unwrap();

    wait_pods_ready(&client, &ns.name, &running).await;
    wait_pods_ready(&client, "kube-system", &system).await;
    wait_pdb(
        &client,
        &ns.name,
        "web",
        "PDB web counts 4 healthy",
        |_, healthy| healthy == 4,
    )
    .await;

    // The rollout controller's caches (which the GitOps loop and the schedule
    // controllers plan from), started both ways: the initial state streamed as watch
    // events (this 1.35 API server does that) and listed in pages.
    assert!(observe::streams_initial_events(&client).await);
    let mut caches = Vec::new();
    for streaming in [true, false] {
        let notify = std::sync::Arc::new(tokio::sync::Notify::new());
        let (cached, watch) =
            observe::Cached::start(client.clone(), observe::watch_config(streaming), notify);
        let task = tokio::spawn(watch);
        tokio::time::timeout(Duration::from_secs(60), cached.wait_until_ready())
            .await
            .unwrap_or_else(|_| panic!("caches (streaming: {streaming}) not ready in 60 s"));
        caches.push((streaming, cached, AbortOnDrop(task)));
    }

    // Read the five ways until they agree (a controller may still be writing a
    // status between two reads, a watch event may be on its way); then, or after a
    // minute, they must.
    let server = "harness";
    let mut tries = 0;
    let agreed = loop {
        let proto = observe::snapshot_as(&client, server, ListEncoding::Protobuf)
            .await
            .unwrap();
        let json = observe::snapshot_as(&client, server, ListEncoding::Json)
            .await
            .unwrap();
        // `cupcake snapshot`'s file, both formats (written a page at a time).
        let mut written = Vec::new();
        for yaml in [true, false] {
            let mut list = snapshot::ListWriter::new(Vec::new(), yaml).unwrap();
            observe::write_snapshot(&client, server, &mut list)
                .await
                .unwrap();
            let text = String::from_utf8(list.finish().unwrap()).unwrap();
            written.push(snapshot::parse(&text, "cupcake snapshot").unwrap());
        }
        let file_json = ours(written.pop().unwrap(), &prefix, &ns.name);
        let file = written.pop().unwrap();
        let proto = ours(proto, &prefix, &ns.name);
        let json = ours(json, &prefix, &ns.name);
        let file = ours(file, &prefix, &ns.name);
        let cached: Vec<(bool, ClusterSnapshot)> = caches
            .iter()
            .map(|(streaming, c, _)| (*streaming, ours(c.snapshot().unwrap(), &prefix, &ns.name)))
            .collect();
        if (proto == file
            && json == file
            && file_json == file
            && cached.iter().all(|(_, c)| *c == file))
            || tries == 30
        {
            assert_eq!(file_json, file, "cupcake snapshot's List: JSON vs YAML");
            assert_eq!(proto, file, "protobuf pages vs cupcake snapshot's List");
            assert_eq!(json, file, "JSON pages vs cupcake snapshot's List");
            for (streaming, c) in &cached {
                assert_eq!(
                    c, &file,
                    "the watch caches (initial state streamed: {streaming}) vs cupcake snapshot's List"
                );
            }
            break file;
        }
        tries += 1;
        tokio::time::sleep(Duration::from_secs(2)).await;
    };

    // Not vacuous: every case is there.
    assert_eq!(agreed.nodes.len(), 3);
    let n = |name: &str| agreed.nodes.iter().find(|n| n.name == name).unwrap();
    let cpn = n(&cp).control_plane.clone().unwrap();
    assert_eq!(cpn.apiserver.unwrap().to_string(), "1.33.4");
    assert_eq!(cpn.etcd.as_deref(), Some("3.5.21-0"));
    assert_eq!(cpn.scheduler.unwrap().to_string(), "1.33.4");
    let taints = &n(&w1).taints;
    assert!(
        taints
            .iter()
            .any(|t| t.key == "dedicated" && t.value.as_deref() == Some("etcd"))
    );
    assert!(taints.iter().any(|t| t.key == "gpu" && t.value.is_none()));
    assert!(n(&w2).unschedulable);
    let p = |name: &str| agreed.pods.iter().find(|p| p.name == name).unwrap();
    assert_eq!(
        p(&format!("kube-apiserver-{cp}")).owner_kind.as_deref(),
        Some("Node")
    );
    assert_eq!(p("web-0").owner_kind.as_deref(), Some("ConfigMap"));
    assert_eq!(p("web-1").owner_kind.as_deref(), Some("ConfigMap"));
    assert_eq!(p("web-3").owner_kind, None);
    assert_eq!(p("pending").node, "");
    assert_eq!(p("pending").phase, "Pending");
    assert_eq!(p("web-0").phase, "Running");
    assert_eq!(agreed.pdbs.len(), 3);
    assert!(agreed.pdbs.iter().all(|b| b.status.is_some()));

    // The next test binary must not see this control-plane node and its odd versions.
    let mut args = vec!["delete", "node", "--wait=true"];
    args.extend(nodes.names.iter().map(String::as_str));
    cupcake_e2e::ok(&cupcake_e2e::kubectl(&args), "deleting the test's nodes").unwrap();
    nodes.names.clear();
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An API server with streaming lists turned off (as Kubernetes 1.33 ships): the
/// probe says so, and the caches start from paged lists instead of waiting forever
/// for a streamed start the server refuses (422).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_streaming_lists_the_caches_start_from_pages() {
    let pc = cupcake_e2e::private::PrivateCluster::start_with(
        "no-watchlist",
        &["--apiserver-arg=--feature-gates=WatchList=false"],
    );
    let client = pc.client().await;
    assert!(
        !observe::streams_initial_events(&client).await,
        "the probe took a server without WatchList for one with it"
    );
    let ns = TestNamespace::new(&client, "nowl").await.unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let mut p = bound_pod(&ns.name, "lone", "", &[("app", "lone")], "web:1");
    let spec = p.spec.as_mut().unwrap();
    spec.node_name = None;
    spec.node_selector = Some(BTreeMap::from([("nowhere".into(), "true".into())]));
    pods.create(&PostParams::default(), &p).await.unwrap();
    let notify = std::sync::Arc::new(tokio::sync::Notify::new());
    let (cached, watch) =
        observe::Cached::start(client.clone(), observe::watch_config(false), notify);
    let _task = AbortOnDrop(tokio::spawn(watch));
    tokio::time::timeout(Duration::from_secs(60), cached.wait_until_ready())
        .await
        .expect("paged caches not ready in 60 s");
    // A pod alone makes no snapshot (no node); the rows hold it.
    assert!(
        cached
            .pods
            .read()
            .keys()
            .any(|(n, name)| &**n == ns.name.as_str() && &**name == "lone")
    );
}

/// Runs `f` when dropped (also on panic).
fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}
