//! `cupcake snapshot` and live `cupcake plan --kubeconfig` on a kwok cluster
//! (3 control-plane + 20 workers, static control-plane pods, workload pods
//! and a PDB) agree with `kubectl get nodes,pods,pdb -A -o yaml` fed to
//! `cupcake plan`.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;

use cupcake_e2e::{
    TestNamespace, TestNodes, bound_pod, client, cupcake, kubectl, kwok_node, ok, pdb, wait_pdb,
    wait_pods_ready,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, PostParams};

const SCOPE: (&str, &str) = ("e2e-fleet", "snapshot");

fn fleet() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("clusters/e2e");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::write(
        c.join("cluster.yaml"),
        format!(
            "apiVersion: cupcake.ricardomolendijk.com/v1\nkind: ClusterVersion\nmetadata:\n  name: e2e\nspec:\n  kubernetesVersion: 1.34.2\n  strategy: parallel\n  nodeSelector:\n    {}: {}\n",
            SCOPE.0, SCOPE.1
        ),
    )
    .unwrap();
    dir
}

fn plan_json(fleet: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "plan",
        fleet.to_str().unwrap(),
        "--cluster",
        "e2e",
        "--now",
        "2026-11-28T02:30:00Z",
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = cupcake(&args);
    assert!(
        out.status.code().is_some_and(|c| c != 1),
        "cupcake plan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_live_plans_agree_with_kubectl() {
    let client = client().await;
    let mut nodes = TestNodes::default();
    let mut list = Vec::new();
    for i in 1..=3 {
        list.push(kwok_node(&format!("e2e-cp-{i}"), true, "v1.33.4", &[]));
    }
    for i in 1..=20 {
        list.push(kwok_node(&format!("e2e-w-{i}"), false, "v1.33.4", &[SCOPE]));
    }
    nodes.create(&client, list).await.unwrap();
    nodes.wait_ready(&client).await;

    // Static control-plane pods, as kubeadm runs them.
    let ks = Api::<Pod>::namespaced(client.clone(), "kube-system");
    let mut static_pods = Vec::new();
    for i in 1..=3 {
        for comp in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            let node = format!("e2e-cp-{i}");
            let name = format!("{comp}-{node}");
            let mut p = bound_pod(
                "kube-system",
                &name,
                &node,
                &[("component", comp), ("tier", "control-plane")],
                &format!("registry.k8s.io/{comp}:v1.33.4"),
            );
            p.spec.as_mut().unwrap().containers[0].name = comp.to_string();
            ks.create(&PostParams::default(), &p).await.unwrap();
            static_pods.push(name);
        }
    }
    // A workload with a PDB that allows one disruption: web pods on w-1..w-3.
    let ns = TestNamespace::new(&client, "snap").await.unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let mut web = Vec::new();
    for i in 1..=3 {
        let name = format!("web-{i}");
        pods.create(
            &PostParams::default(),
            &bound_pod(
                &ns.name,
                &name,
                &format!("e2e-w-{i}"),
                &[("app", "web")],
                "web:1",
            ),
        )
        .await
        .unwrap();
        web.push(name);
    }
    Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns.name)
        .create(
            &PostParams::default(),
            &pdb(&ns.name, "web", "web", Some(2), None),
        )
        .await
        .unwrap();
    wait_pods_ready(&client, &ns.name, &web).await;
    wait_pods_ready(&client, "kube-system", &static_pods).await;
    wait_pdb(
        &client,
        &ns.name,
        "web",
        "PDB web allows 1 disruption",
        |allowed, healthy| allowed == 1 && healthy == 3,
    )
    .await;

    let fleet = fleet();
    let tmp = tempfile::tempdir().unwrap();
    let snap = tmp.path().join("cupcake-snapshot.yaml");
    let kc = cupcake_e2e::harness()
        .kubeconfig
        .to_str()
        .unwrap()
        .to_string();
    ok(
        &cupcake(&[
            "snapshot",
            "--kubeconfig",
            &kc,
            "-f",
            snap.to_str().unwrap(),
        ]),
        "cupcake snapshot",
    )
    .unwrap();
    let via_kubectl = tmp.path().join("kubectl.yaml");
    let text = ok(
        &kubectl(&["get", "nodes,pods,pdb", "-A", "-o", "yaml"]),
        "kubectl get",
    )
    .unwrap();
    std::fs::write(&via_kubectl, text).unwrap();

    let a = plan_json(fleet.path(), &["--snapshot", snap.to_str().unwrap()]);
    let b = plan_json(fleet.path(), &["--snapshot", via_kubectl.to_str().unwrap()]);
    let live = plan_json(fleet.path(), &["--kubeconfig", &kc]);
    // `--live` finds the cluster like kubectl: $KUBECONFIG (set by `cupcake()`).
    let live_env = plan_json(fleet.path(), &["--live"]);
    for key in ["current", "plan", "target", "upToDate"] {
        assert_eq!(a[key], b[key], "{key}: cupcake snapshot vs kubectl");
        assert_eq!(a[key], live[key], "{key}: snapshot vs live");
        assert_eq!(
            a[key], live_env[key],
            "{key}: snapshot vs live from $KUBECONFIG"
        );
    }
    assert_eq!(
        a["directUpdate"]["metadata"]["name"],
        live["directUpdate"]["metadata"]["name"]
    );

    // And the plan is right for this cluster.
    assert_eq!(a["current"]["controlPlane"], "1.33.4");
    assert_eq!(
        a["current"]["apiservers"],
        serde_json::json!({"e2e-cp-1": "1.33.4", "e2e-cp-2": "1.33.4", "e2e-cp-3": "1.33.4"})
    );
    let stages = a["plan"]["stages"].as_array().unwrap();
    let cp = stages
        .iter()
        .find(|s| s["kind"] == "control-plane")
        .unwrap();
    assert_eq!(
        cp["batches"],
        serde_json::json!([["e2e-cp-1"], ["e2e-cp-2"], ["e2e-cp-3"]])
    );
    let workers = stages.iter().find(|s| s["kind"] == "workers").unwrap();
    let batches: Vec<Vec<String>> = serde_json::from_value(workers["batches"].clone()).unwrap();
    assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 20);
    let mut where_web: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, b) in batches.iter().enumerate() {
        for n in b {
            if ["e2e-w-1", "e2e-w-2", "e2e-w-3"].contains(&n.as_str()) {
                *where_web.entry(i).or_default() += 1;
            }
        }
    }
    assert!(
        where_web.values().all(|c| *c == 1),
        "web pods share a batch: {batches:?}"
    );

    for name in static_pods {
        cupcake_e2e::delete_pod(&client, "kube-system", &name).await;
    }
}
