//! Preflight on a real control plane: `cupcake run --rollout-only` checks a
//! DirectUpdate before its first node is touched, the simulated agents
//! (`cupcake-agent simulate --all-nodes`) answer the `preflight-request` with their
//! free disk space. A failed check stops the DirectUpdate in RequiresAttention with
//! the check named in `status.preflightResults`, the message and a `PreflightFailed`
//! Event, and no node cordoned, assigned or asked for a backup; the retry annotation
//! or a spec change checks again. Air-gapped DirectUpdates have their bundle
//! ConfigMap checked, and carry `package-source` on every assignment.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cupcake_api::crd::{DirectUpdate, DirectUpdateStatus, Phase};
use cupcake_api::labels;
use cupcake_e2e::private::{PrivateCluster, Proc, bin, kwok_cluster as cluster};
use cupcake_e2e::{bound_pod, pdb, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

const FROM: &str = "v1.33.4";
const CHECKS: [&str; 5] = [
    "api-server",
    "nodes-ready",
    "node-pressure",
    "disk-space",
    "pdbs-healthy",
];

fn controller(pc: &PrivateCluster, env: &[(&str, &Path)]) -> Proc {
    let kc = pc.kubeconfig.to_str().unwrap().to_string();
    pc.spawn_env(
        &bin("cupcake"),
        &[
            "run",
            "--rollout-only",
            "--kubeconfig",
            &kc,
            "--listen",
            "127.0.0.1:0",
            "--lease-namespace",
            "default",
            "--identity",
            "c1",
        ],
        "cupcake.log",
        env,
    )
}

fn agents(pc: &PrivateCluster, state: &Path, log: &str, extra: &[&str]) -> Proc {
    let kc = pc.kubeconfig.to_str().unwrap().to_string();
    let mut args = vec![
        "simulate",
        "--all-nodes",
        "--kubeconfig",
        &kc,
        "--state-dir",
        state.to_str().unwrap(),
        "--step-duration",
        "100ms",
    ];
    args.extend_from_slice(extra);
    pc.spawn(&bin("cupcake-agent"), &args, log)
}

fn du_yaml(name: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: cupcake.ricardomolendijk.com/v1
kind: DirectUpdate
metadata:
  name: {name}
spec:
  targetVersion: "1.34.2"
  strategy: rolling
  concurrency: 2
  nodeTimeout: 3m
  drain:
    timeout: 1m
{extra}"#
    )
}

/// Wait until the DirectUpdate's status satisfies `ok`.
async fn wait_status(
    client: &Client,
    name: &str,
    what: &str,
    logs: &[&Proc],
    ok: impl Fn(&DirectUpdateStatus) -> bool,
) -> DirectUpdateStatus {
    let api = Api::<DirectUpdate>::all(client.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(du) = api.get(name).await
            && let Some(st) = du.status
            && ok(&st)
        {
            return st;
        }
        if std::time::Instant::now() > deadline {
            let st = api.get(name).await.ok().and_then(|d| d.status);
            let logs: Vec<String> = logs.iter().map(|p| p.output()).collect();
            panic!(
                "timed out waiting for {name}: {what}; status: {st:#?}\nlogs:\n{}",
                logs.join("\n----\n")
                    .lines()
                    .rev()
                    .take(80)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Wait for RequiresAttention because `check` failed; returns the status.
async fn wait_failed(
    client: &Client,
    name: &str,
    check: &str,
    logs: &[&Proc],
) -> DirectUpdateStatus {
    let prefix = format!("preflight check {check} failed: ");
    wait_status(
        client,
        name,
        &format!("RequiresAttention with {check} failed"),
        logs,
        |st| {
            st.phase == Some(Phase::RequiresAttention)
                && st
                    .message
                    .as_deref()
                    .is_some_and(|m| m.starts_with(&prefix))
        },
    )
    .await
}

/// The one failed check's message, after checking that exactly `check` failed.
fn failed_message(st: &DirectUpdateStatus, check: &str) -> String {
    let r = st
        .preflight_results
        .as_ref()
        .expect("status.preflightResults");
    assert!(!r.passed, "{r:?}");
    let failed: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(failed, [check], "{r:?}");
    r.checks
        .iter()
        .find(|c| c.name == check)
        .and_then(|c| c.message.clone())
        .unwrap_or_default()
}

/// No node cordoned, assigned, asked for a backup; no node in the status.
async fn assert_nothing_touched(client: &Client, st: &DirectUpdateStatus) {
    assert!(st.operation_id.is_none(), "the operation started: {st:?}");
    assert!(st.nodes.is_empty(), "{:?}", st.nodes);
    for n in Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
    {
        let a = n.annotations();
        for k in [
            labels::OPERATION_ID,
            labels::STATUS,
            labels::BACKUP_REQUEST,
            labels::ADMIN_CORDONED,
        ] {
            assert!(a.get(k).is_none(), "{}: {k} set: {a:?}", n.name_any());
        }
        assert_ne!(
            n.spec.as_ref().and_then(|s| s.unschedulable),
            Some(true),
            "{} cordoned",
            n.name_any()
        );
    }
}

async fn wait_event(client: &Client, du: &str, reason: &str, words: &str) -> Event {
    wait_for(
        &format!("a {reason} Event on {du} saying {words:?}"),
        Duration::from_secs(30),
        || async {
            let l = Api::<Event>::all(client.clone())
                .list(&ListParams::default())
                .await
                .ok()?;
            l.items.into_iter().find(|e| {
                e.involved_object.name.as_deref() == Some(du)
                    && e.reason.as_deref() == Some(reason)
                    && e.message.as_deref().is_some_and(|m| m.contains(words))
            })
        },
    )
    .await
}

/// Wait until no node carries a preflight annotation (the controller clears them).
async fn wait_cleared(client: &Client) {
    wait_for(
        "the preflight annotations cleared",
        Duration::from_secs(30),
        || async {
            let l = Api::<Node>::all(client.clone())
                .list(&ListParams::default())
                .await
                .ok()?;
            l.items
                .iter()
                .all(|n| {
                    let a = n.annotations();
                    [
                        labels::PREFLIGHT_REQUEST,
                        labels::PREFLIGHT_ETCD,
                        labels::PREFLIGHT_RESULT,
                    ]
                    .iter()
                    .all(|k| !a.contains_key(*k))
                })
                .then_some(())
        },
    )
    .await;
}

fn retry(pc: &PrivateCluster, du: &str) {
    let o = pc.kubectl(&[
        "annotate",
        "--overwrite",
        "du",
        du,
        &format!("{}=preflight", labels::RETRY),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

async fn set_condition(client: &Client, node: &str, type_: &str, status: &str) {
    Api::<Node>::all(client.clone())
        .patch_status(
            node,
            &PatchParams::default(),
            &Patch::Strategic(serde_json::json!({"status": {"conditions": [
                {"type": type_, "status": status, "reason": "E2E", "message": "set by the test"}
            ]}})),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_checks_pass_then_the_rollout_runs() {
    let (pc, client) = cluster("preflight-ok", 1, 2, FROM).await;
    let state = tempfile::tempdir().unwrap();
    let ag = agents(&pc, state.path(), "agents.log", &[]);
    let ctl = controller(&pc, &[]);
    pc.apply(&du_yaml("checked", ""));
    let st = wait_status(&client, "checked", "Succeeded", &[&ctl, &ag], |st| {
        st.phase == Some(Phase::Succeeded)
    })
    .await;
    let r = st.preflight_results.expect("status.preflightResults");
    assert!(r.passed, "{r:?}");
    let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, CHECKS, "{r:?}");
    let disk = r.checks.iter().find(|c| c.name == "disk-space").unwrap();
    assert!(
        disk.message
            .as_deref()
            .is_some_and(|m| m.contains("at least 2.0 GiB free")),
        "{disk:?}"
    );
    assert_eq!(st.progress.as_deref(), Some("3/3"));
    // The seed runbook's command reads it.
    let o = pc.kubectl(&[
        "get",
        "du",
        "checked",
        "-o",
        "jsonpath={.status.preflightResults.passed}",
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "true");
    wait_event(&client, "checked", "PreflightPassed", "5 checks").await;
    wait_cleared(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_check_requires_attention_touches_nothing_and_a_retry_checks_again() {
    let (pc, client) = cluster("preflight-fail", 1, 2, FROM).await;
    let state = tempfile::tempdir().unwrap();
    let mut ag = agents(&pc, state.path(), "agents.log", &[]);
    let ctl = controller(&pc, &[]);

    // 1. DiskPressure on w-1.
    set_condition(&client, "w-1", "DiskPressure", "True").await;
    pc.apply(&du_yaml("guarded", ""));
    let st = wait_failed(&client, "guarded", "node-pressure", &[&ctl, &ag]).await;
    let m = failed_message(&st, "node-pressure");
    assert!(m.contains("w-1 has DiskPressure"), "{m}");
    assert!(st.message.unwrap().contains("w-1 has DiskPressure"));
    wait_event(
        &client,
        "guarded",
        "PreflightFailed",
        "w-1 has DiskPressure",
    )
    .await;
    // It stays there, with nothing touched.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let st = Api::<DirectUpdate>::all(client.clone())
        .get("guarded")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(st.phase, Some(Phase::RequiresAttention));
    assert_nothing_touched(&client, &st).await;
    wait_cleared(&client).await;

    // 2. The pressure is gone, but a PDB on w-1's pod is below its desired count.
    set_condition(&client, "w-1", "DiskPressure", "False").await;
    let ns = "apps";
    pc.kubectl(&["create", "namespace", ns]);
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &bound_pod(ns, "db-0", "w-1", &[("app", "db")], "db:1"),
        )
        .await
        .unwrap();
    Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pdb(ns, "db", "db", Some(2), None))
        .await
        .unwrap();
    cupcake_e2e::wait_pdb(&client, ns, "db", "PDB db with 1 healthy pod", |_, h| {
        h == 1
    })
    .await;
    retry(&pc, "guarded");
    let st = wait_failed(&client, "guarded", "pdbs-healthy", &[&ctl, &ag]).await;
    let m = failed_message(&st, "pdbs-healthy");
    assert!(m.contains("apps/db has 1 healthy pods, wants 2"), "{m}");
    assert_nothing_touched(&client, &st).await;
    let du = Api::<DirectUpdate>::all(client.clone())
        .get("guarded")
        .await
        .unwrap();
    assert!(
        !du.annotations().contains_key(labels::RETRY),
        "the retry annotation is cleared"
    );
    wait_cleared(&client).await;

    // 3. The PDB and its bare pod (a drain would not evict it) are gone; w-2's agent
    // reports 1 GiB free.
    Api::<PodDisruptionBudget>::namespaced(client.clone(), ns)
        .delete("db", &Default::default())
        .await
        .unwrap();
    cupcake_e2e::delete_pod(&client, ns, "db-0").await;
    ag.kill();
    let mut ag = agents(
        &pc,
        state.path(),
        "agents-low-disk.log",
        &["--report-disk-free", "w-2=1073741824"],
    );
    retry(&pc, "guarded");
    let st = wait_failed(&client, "guarded", "disk-space", &[&ctl, &ag]).await;
    let m = failed_message(&st, "disk-space");
    assert!(
        m.contains("w-2 has 1.0 GiB free on") && m.contains("(needs 2.0 GiB)"),
        "{m}"
    );
    assert!(!m.contains("w-1") && !m.contains("cp-1"), "{m}");
    assert_nothing_touched(&client, &st).await;
    wait_cleared(&client).await;

    // 4. Enough disk: a spec change (not the annotation) checks again; it passes and runs.
    ag.kill();
    let ag = agents(&pc, state.path(), "agents-ok.log", &[]);
    let o = pc.kubectl(&[
        "patch",
        "du",
        "guarded",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"nodeTimeout":"4m"}}"#,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let st = wait_status(&client, "guarded", "Succeeded", &[&ctl, &ag], |st| {
        st.phase == Some(Phase::Succeeded)
    })
    .await;
    assert!(st.preflight_results.unwrap().passed);
    assert_eq!(st.progress.as_deref(), Some("3/3"));
}

const BUNDLE: &str = r#"apiVersion: cupcake.ricardomolendijk.com/v1
kind: PackageBundle
repository:
  apt: "file:///var/lib/cupcake/bundle/apt"
versions:
  "1.34.1": {kubeadm: "1.34.1-1.1", kubelet: "1.34.1-1.1", kubectl: "1.34.1-1.1"}
"#;

fn bundle_map(text: &str) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("bundle".into()),
            namespace: Some("airgap".into()),
            ..Default::default()
        },
        data: Some([("bundle.yaml".to_string(), text.to_string())].into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn air_gapped_bundles_are_checked_and_named_on_assignments() {
    let (pc, client) = cluster("preflight-airgap", 1, 1, FROM).await;
    pc.kubectl(&["create", "namespace", "airgap"]);
    let state = tempfile::tempdir().unwrap();
    let ag = agents(
        &pc,
        state.path(),
        "agents.log",
        &["--step-duration", "500ms"],
    );
    // A bare bundleConfigMap name is in the controller's namespace.
    let ctl = controller(&pc, &[("POD_NAMESPACE", Path::new("airgap"))]);
    let air = "  airGapped:\n    enabled: true\n    bundleConfigMap: bundle\n";

    // No ConfigMap.
    pc.apply(&du_yaml("offline", air));
    let st = wait_failed(&client, "offline", "airgap-bundle", &[&ctl, &ag]).await;
    let m = failed_message(&st, "airgap-bundle");
    assert!(
        m.contains("ConfigMap airgap/bundle") && m.contains("not found"),
        "{m}"
    );
    assert_nothing_touched(&client, &st).await;
    let names: Vec<String> = st
        .preflight_results
        .unwrap()
        .checks
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names.last().map(String::as_str), Some("airgap-bundle"));

    // A bundle without the target; the spec changes: checked again.
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "airgap");
    cms.create(&PostParams::default(), &bundle_map(BUNDLE))
        .await
        .unwrap();
    let o = pc.kubectl(&[
        "patch",
        "du",
        "offline",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"nodeTimeout":"4m"}}"#,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let st = wait_status(
        &client,
        "offline",
        "the bundle lacking 1.34.2",
        &[&ctl],
        |st| {
            st.message
                .as_deref()
                .is_some_and(|m| m.contains("lacks version 1.34.2"))
        },
    )
    .await;
    assert_eq!(st.phase, Some(Phase::RequiresAttention));
    let m = failed_message(&st, "airgap-bundle");
    assert!(
        m.contains("bundle.yaml in ConfigMap airgap/bundle lacks version 1.34.2"),
        "{m}"
    );
    assert_nothing_touched(&client, &st).await;
    wait_cleared(&client).await;

    // The bundle lists it: a retry passes, and every assignment names the bundle.
    let fixed = format!(
        "{BUNDLE}  \"1.34.2\": {{kubeadm: \"1.34.2-1.1\", kubelet: \"1.34.2-1.1\", kubectl: \"1.34.2-1.1\"}}\n"
    );
    cms.replace("bundle", &PostParams::default(), &bundle_map(&fixed))
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let sampler = {
        let (client, seen) = (client.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                if let Ok(l) = Api::<Node>::all(client.clone())
                    .list(&ListParams::default())
                    .await
                {
                    for n in l.items {
                        let a = n.annotations();
                        if a.contains_key(labels::OPERATION_ID) {
                            seen.lock().unwrap().insert((
                                n.name_any(),
                                a.get(labels::PACKAGE_SOURCE).cloned().unwrap_or_default(),
                            ));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    retry(&pc, "offline");
    let st = wait_status(&client, "offline", "Succeeded", &[&ctl, &ag], |st| {
        st.phase == Some(Phase::Succeeded)
    })
    .await;
    sampler.abort();
    let r = st.preflight_results.unwrap();
    assert!(r.passed, "{r:?}");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        BTreeSet::from([
            ("cp-1".to_string(), "airgap/bundle".to_string()),
            ("w-1".to_string(), "airgap/bundle".to_string()),
        ]),
        "assignments seen"
    );
    for n in Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
    {
        assert!(
            !n.annotations().contains_key(labels::PACKAGE_SOURCE),
            "{}: package-source left after the release",
            n.name_any()
        );
    }

    // preflightChecks: false runs no check and records nothing...
    pc.apply(&du_yaml("unchecked", "  preflightChecks: false\n"));
    let st = wait_status(&client, "unchecked", "Succeeded", &[&ctl], |st| {
        st.phase == Some(Phase::Succeeded)
    })
    .await;
    assert!(st.preflight_results.is_none(), "{st:?}");
    // ...but an air-gapped one still has its bundle checked (fail closed).
    pc.apply(&du_yaml(
        "unchecked-offline",
        "  preflightChecks: false\n  airGapped:\n    enabled: true\n    bundleConfigMap: airgap/missing\n",
    ));
    let st = wait_status(
        &client,
        "unchecked-offline",
        "RequiresAttention",
        &[&ctl],
        |st| st.phase == Some(Phase::RequiresAttention),
    )
    .await;
    assert!(st.preflight_results.is_none(), "{st:?}");
    let m = st.message.unwrap();
    assert!(
        m.starts_with("air-gapped bundle check failed: ConfigMap airgap/missing")
            && m.contains("not found"),
        "{m}"
    );
    assert!(st.operation_id.is_none());
}
