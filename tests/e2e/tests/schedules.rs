//! The in-cluster ScheduledUpdate and UpdateSchedule controllers of `cupcake run`
//! on a real control plane: a ScheduledUpdate creates its DirectUpdate at
//! `scheduleAt` through the gate and follows it to Completed; a denied one fails
//! naming the rule; an UpdateSchedule creates one DirectUpdate per occurrence,
//! for the newest catalogue version matching its pattern.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use cupcake_api::crd::{DirectUpdate, Phase, ScheduledUpdate, UpdateSchedule};
use cupcake_api::protocol::ScheduledUpdatePhase;
use cupcake_e2e::private::{PrivateCluster, Proc, bin, kwok_cluster, simulated_agents};
use cupcake_e2e::wait_for;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};

fn controller(pc: &PrivateCluster) -> Proc {
    let kc = pc.kubeconfig.to_str().unwrap().to_string();
    pc.spawn(
        &bin("cupcake"),
        &[
            "run",
            "--kubeconfig",
            &kc,
            "--listen",
            "127.0.0.1:0",
            "--lease-namespace",
            "default",
            "--identity",
            "schedules-e2e",
            "--lease-duration",
            "6s",
        ],
        "cupcake-schedules.log",
    )
}

async fn su_status(client: &Client, name: &str) -> Option<cupcake_api::crd::ScheduledUpdateStatus> {
    Api::<ScheduledUpdate>::all(client.clone())
        .get(name)
        .await
        .ok()?
        .status
}

async fn dus(client: &Client) -> Vec<DirectUpdate> {
    Api::<DirectUpdate>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_updates_and_update_schedules_create_gated_direct_updates() {
    let (pc, client) = kwok_cluster("schedules", 1, 2, "v1.33.4").await;
    let state = tempfile::tempdir().unwrap();
    let _agents = simulated_agents(&pc, state.path(), &[]);
    let ctl = controller(&pc);
    let tail = || {
        let o = ctl.output();
        o.lines().rev().take(30).collect::<Vec<_>>().join("\n")
    };

    // A denied target (a downgrade) fails at once, naming the rule; nothing is created.
    let past = (chrono::Utc::now() - chrono::Duration::seconds(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    pc.apply(&format!(
        "apiVersion: cupcake.ricardomolendijk.com/v1
kind: ScheduledUpdate
metadata: {{name: downgrade}}
spec: {{scheduleAt: \"{past}\", targetVersion: 1.32.0, backup: {{etcd: false}}}}
"
    ));
    let st = wait_for(
        "the denied ScheduledUpdate to fail",
        Duration::from_secs(30),
        || async {
            su_status(&client, "downgrade")
                .await
                .filter(|s| s.phase == Some(ScheduledUpdatePhase::Failed))
        },
    )
    .await;
    let msg = st.message.unwrap_or_default();
    assert!(msg.starts_with("denied: "), "{msg}\n{}", tail());
    assert!(msg.contains("downgrade"), "names the rule: {msg}");
    assert!(
        dus(&client).await.is_empty(),
        "a denied ScheduledUpdate created a DirectUpdate"
    );

    // Due in 6 seconds: Scheduled until then, then its DirectUpdate, then Completed.
    let at = chrono::Utc::now() + chrono::Duration::seconds(6);
    let at_s = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let at: chrono::DateTime<chrono::Utc> = at_s.parse().unwrap();
    pc.apply(&format!(
        "apiVersion: cupcake.ricardomolendijk.com/v1
kind: ScheduledUpdate
metadata: {{name: nightly}}
spec: {{scheduleAt: \"{at_s}\", targetVersion: 1.34.2, backup: {{etcd: false}}}}
"
    ));
    let st = wait_for(
        "the ScheduledUpdate to be Scheduled",
        Duration::from_secs(20),
        || async {
            su_status(&client, "nightly")
                .await
                .filter(|s| s.phase == Some(ScheduledUpdatePhase::Scheduled))
        },
    )
    .await;
    assert_eq!(st.scheduled_for, Some(at));
    let st = wait_for(
        "the ScheduledUpdate to execute",
        Duration::from_secs(30),
        || async {
            su_status(&client, "nightly")
                .await
                .filter(|s| s.direct_update_name.is_some())
        },
    )
    .await;
    assert!(
        st.executed_at.unwrap() >= at,
        "created before scheduleAt: {st:?}"
    );
    let du_name = st.direct_update_name.unwrap();
    let du = Api::<DirectUpdate>::all(client.clone())
        .get(&du_name)
        .await
        .unwrap();
    assert_eq!(du.spec.target_version.to_string(), "1.34.2");
    assert!(!du.spec.stages.is_empty(), "planned through the gate");
    assert_eq!(
        du.owner_references().first().map(|o| o.name.as_str()),
        Some("nightly"),
        "owned by its ScheduledUpdate"
    );
    wait_for(
        "the ScheduledUpdate to complete",
        Duration::from_secs(120),
        || async {
            su_status(&client, "nightly")
                .await
                .filter(|s| s.phase == Some(ScheduledUpdatePhase::Completed))
        },
    )
    .await;
    let du = Api::<DirectUpdate>::all(client.clone())
        .get(&du_name)
        .await
        .unwrap();
    assert_eq!(du.status.and_then(|s| s.phase), Some(Phase::Succeeded));

    // An UpdateSchedule whose last occurrence was handled two minutes ago: the current
    // one is due, and it picks the newest 1.34 patch of the catalogue ConfigMap.
    pc.apply(
        "apiVersion: v1
kind: ConfigMap
metadata: {name: cupcake-version-catalog, namespace: default}
data:
  versions.yaml: |
    apiVersion: cupcake.ricardomolendijk.com/v1
    kind: VersionCatalog
    metadata: {name: kubernetes}
    spec:
      versions: [1.34.2, 1.34.5, 1.35.0]
",
    );
    pc.apply(
        "apiVersion: cupcake.ricardomolendijk.com/v1
kind: UpdateSchedule
metadata: {name: patches}
spec:
  schedule: \"* * * * *\"
  updatePolicy: {targetVersionPattern: 1.34.x, concurrency: 2}
",
    );
    let two_min_ago = (chrono::Utc::now() - chrono::Duration::seconds(120))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Api::<UpdateSchedule>::all(client.clone())
        .patch_status(
            "patches",
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "cupcake.ricardomolendijk.com/v1",
                "kind": "UpdateSchedule",
                "metadata": {"name": "patches"},
                "status": {"lastScheduledTime": two_min_ago},
            })),
        )
        .await
        .unwrap();
    let us = wait_for(
        "the UpdateSchedule to create a DirectUpdate",
        Duration::from_secs(60),
        || async {
            Api::<UpdateSchedule>::all(client.clone())
                .get("patches")
                .await
                .ok()
                .filter(|u| {
                    u.status
                        .as_ref()
                        .and_then(|s| s.last_update_name.as_ref())
                        .is_some()
                })
        },
    )
    .await;
    let st = us.status.unwrap();
    let name = st.last_update_name.unwrap();
    let du = Api::<DirectUpdate>::all(client.clone())
        .get(&name)
        .await
        .unwrap();
    assert_eq!(
        du.spec.target_version.to_string(),
        "1.34.5",
        "the newest 1.34 patch"
    );
    assert!(st.next_scheduled_time.is_some());
    assert!(
        st.last_scheduled_time.unwrap()
            > two_min_ago
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
    );
    // One per occurrence: no second DirectUpdate for the same occurrence.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let created: Vec<_> = dus(&client)
        .await
        .into_iter()
        .filter(|d| d.owner_references().iter().any(|o| o.name == "patches"))
        .collect();
    assert_eq!(created.len(), 1, "{}", tail());
    drop(ctl);
}
