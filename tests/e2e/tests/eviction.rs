//! The disruption controller runs: evicting a pod whose PDB allows no
//! disruption gets 429, and succeeds once the PDB allows it.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use cupcake_e2e::{
    TestNamespace, TestNodes, bound_pod, client, client_without_retries, kwok_node, pdb, wait_for,
    wait_pdb, wait_pods_ready,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, EvictParams, Patch, PatchParams, PostParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_respects_pod_disruption_budgets() {
    let client = client().await;
    let mut nodes = TestNodes::default();
    nodes
        .create(
            &client,
            vec![kwok_node("e2e-evict-1", false, "v1.33.4", &[])],
        )
        .await
        .unwrap();
    nodes.wait_ready(&client).await;
    let ns = TestNamespace::new(&client, "evict").await.unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    pods.create(
        &PostParams::default(),
        &bound_pod(&ns.name, "db-0", "e2e-evict-1", &[("app", "db")], "db:1"),
    )
    .await
    .unwrap();
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns.name);
    pdbs.create(
        &PostParams::default(),
        &pdb(&ns.name, "db", "db", Some(1), None),
    )
    .await
    .unwrap();
    wait_pods_ready(&client, &ns.name, &["db-0".to_string()]).await;
    wait_pdb(
        &client,
        &ns.name,
        "db",
        "PDB db with 1 healthy pod and 0 allowed",
        |allowed, healthy| allowed == 0 && healthy == 1,
    )
    .await;

    // kube's default client retries 429 for minutes; a drain must see the refusal at once.
    let evictions = Api::<Pod>::namespaced(client_without_retries().await, &ns.name);
    match evictions.evict("db-0", &EvictParams::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 429, "{s:?}"),
        other => panic!("eviction under a blocking PDB should be refused with 429, got {other:?}"),
    }

    pdbs.patch(
        "db",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"minAvailable": 0}})),
    )
    .await
    .unwrap();
    wait_pdb(&client, &ns.name, "db", "PDB db allows 1", |allowed, _| {
        allowed == 1
    })
    .await;
    evictions
        .evict("db-0", &EvictParams::default())
        .await
        .expect("eviction allowed now");
    wait_for(
        "db-0 gone or terminating",
        Duration::from_secs(60),
        || async {
            match pods.get("db-0").await {
                Err(_) => Some(()),
                Ok(p) => p.metadata.deletion_timestamp.map(|_| ()),
            }
        },
    )
    .await;
}
