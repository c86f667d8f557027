#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use super::*;
use cupcake_api::crd::{AirGapped, BackupRef};
use cupcake_api::protocol::EtcdHealth;
use cupcake_api::snapshot::{LabelSelector, Node, Pdb, PdbStatus, Pod, Role};

fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}

fn node(name: &str, cp: bool) -> Node {
    Node {
        name: name.into(),
        labels: BTreeMap::new(),
        role: if cp { Role::ControlPlane } else { Role::Worker },
        kubelet_version: v("1.33.4"),
        ready: true,
        unschedulable: false,
        taints: vec![],
        control_plane: None,
    }
}

fn stage(kind: StageKind, ver: &str, nodes: &[&str]) -> Stage {
    Stage {
        kind,
        version: v(ver),
        batches: nodes.iter().map(|n| vec![n.to_string()]).collect(),
        batch_limits: Vec::new(),
    }
}

fn spec() -> DirectUpdateSpec {
    serde_json::from_value(serde_json::json!({"targetVersion": "1.34.2"})).unwrap()
}

fn stages() -> Vec<Stage> {
    vec![
        stage(StageKind::Backup, "1.34.2", &["cp-1"]),
        stage(StageKind::ControlPlane, "1.34.2", &["cp-1"]),
        stage(StageKind::Workers, "1.34.2", &["w-1", "w-2"]),
    ]
}

fn cluster() -> ClusterSnapshot {
    ClusterSnapshot {
        nodes: vec![node("cp-1", true), node("w-1", false), node("w-2", false)],
        pods: vec![Pod {
            namespace: "apps".into(),
            name: "web-1".into(),
            node: "w-1".into(),
            labels: BTreeMap::from([("app".to_string(), "web".to_string())]).into(),
            owner_kind: Some("ReplicaSet".into()),
            phase: "Running".into(),
        }],
        pdbs: vec![Pdb {
            namespace: "apps".into(),
            name: "web".into(),
            selector: Some(LabelSelector {
                match_labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
                match_expressions: vec![],
            }),
            min_available: None,
            max_unavailable: None,
            status: Some(PdbStatus {
                disruptions_allowed: 0,
                current_healthy: 1,
                desired_healthy: 1,
                expected_pods: 1,
            }),
        }],
    }
}

fn report_json(op: &str, free: u64, etcd: Option<EtcdHealth>) -> String {
    serde_json::to_string(&PreflightReport {
        operation_id: op.into(),
        disk_free_bytes: Some(free),
        disk_path: Some("/var/lib".into()),
        etcd,
        error: None,
    })
    .unwrap()
}

fn healthy_etcd() -> EtcdHealth {
    EtcdHealth {
        endpoint: "https://127.0.0.1:2379".into(),
        members: vec!["cp-1".into()],
        ..EtcdHealth::default()
    }
}

const GIB: u64 = 1 << 30;

/// Annotations where every node reported `free` bytes, cp-1 with etcd `etcd`.
fn reported(free: u64, etcd: Option<EtcdHealth>) -> BTreeMap<String, BTreeMap<String, String>> {
    ["cp-1", "w-1", "w-2"]
        .iter()
        .map(|n| {
            let e = if *n == "cp-1" { etcd.clone() } else { None };
            (
                n.to_string(),
                BTreeMap::from([(
                    labels::PREFLIGHT_RESULT.to_string(),
                    report_json("op", free, e),
                )]),
            )
        })
        .collect()
}

const BUNDLE: &str = r#"apiVersion: cupcake.ricardomolendijk.com/v1
kind: PackageBundle
repository: {apt: "file:///var/lib/cupcake/bundle/apt"}
versions:
  "1.34.2": {kubeadm: "1.34.2-1.1", kubelet: "1.34.2-1.1", kubectl: "1.34.2-1.1"}
"#;

/// One case: a change to the healthy world, and the check that must fail with
/// words its message must contain (`None`: everything passes).
struct Case {
    name: &'static str,
    change: fn(&mut World),
    fails: Option<(&'static str, &'static [&'static str])>,
}

struct World {
    spec: DirectUpdateSpec,
    cluster: ClusterSnapshot,
    ann: BTreeMap<String, BTreeMap<String, String>>,
    pressure: BTreeMap<String, Vec<String>>,
    api: Result<String, String>,
    bundle: Option<Result<(String, String), String>>,
    waited: Duration,
}

fn healthy() -> World {
    let mut spec = spec();
    spec.backup = Some(BackupRef {
        etcd: true,
        store_ref: None,
    });
    World {
        spec,
        cluster: cluster(),
        ann: reported(10 * GIB, Some(healthy_etcd())),
        pressure: BTreeMap::new(),
        api: Ok("v1.35.4, /readyz ok".into()),
        bundle: None,
        waited: Duration::from_secs(1),
    }
}

fn run(w: &World) -> Outcome {
    let st = stages();
    evaluate(&Facts {
        operation_id: "op",
        spec: &w.spec,
        stages: &st,
        cluster: &w.cluster,
        node_annotations: &w.ann,
        pressure: &w.pressure,
        api_server: &w.api,
        bundle: w.bundle.as_ref(),
        waited: w.waited,
        min_disk_free: DEFAULT_MIN_DISK_FREE,
        report_timeout: REPORT_TIMEOUT,
    })
}

fn set_report(w: &mut World, node: &str, value: String) {
    w.ann
        .get_mut(node)
        .unwrap()
        .insert(labels::PREFLIGHT_RESULT.into(), value);
}

fn air_gap(w: &mut World, bundle: Result<(String, String), String>) {
    w.spec.air_gapped = Some(AirGapped {
        enabled: true,
        bundle_config_map: Some("bundle".into()),
    });
    w.bundle = Some(bundle);
}

#[test]
fn each_check_fails_on_its_own_cause_and_names_it() {
    let cases = [
        Case {
            name: "healthy",
            change: |_| {},
            fails: None,
        },
        Case {
            name: "api server down",
            change: |w| w.api = Err("GET /readyz: connection refused".into()),
            fails: Some((API_SERVER, &["connection refused"])),
        },
        Case {
            name: "node not ready",
            change: |w| w.cluster.nodes[2].ready = false,
            fails: Some((NODES_READY, &["not Ready: w-2"])),
        },
        Case {
            name: "planned node gone",
            change: |w| {
                w.cluster.nodes.remove(2);
                w.ann.remove("w-2");
            },
            fails: Some((NODES_READY, &["do not exist: w-2"])),
        },
        Case {
            name: "disk pressure",
            change: |w| {
                w.pressure.insert(
                    "w-1".into(),
                    vec!["DiskPressure".into(), "PIDPressure".into()],
                );
            },
            fails: Some((NODE_PRESSURE, &["w-1 has DiskPressure, PIDPressure"])),
        },
        Case {
            name: "low disk",
            change: |w| set_report(w, "w-2", report_json("op", GIB / 2, None)),
            fails: Some((
                DISK_SPACE,
                &["w-2 has 512 MiB free on /var/lib (needs 2.0 GiB)"],
            )),
        },
        Case {
            name: "agent could not measure",
            change: |w| {
                let r = PreflightReport {
                    operation_id: "op".into(),
                    error: Some("statvfs /host/var/lib: No such file".into()),
                    ..PreflightReport::default()
                };
                set_report(w, "w-1", serde_json::to_string(&r).unwrap());
            },
            fails: Some((DISK_SPACE, &["w-1: the agent could not measure: statvfs"])),
        },
        Case {
            name: "garbage report",
            change: |w| set_report(w, "w-1", "{not json".into()),
            fails: Some((DISK_SPACE, &["w-1: its preflight-result is not a report"])),
        },
        Case {
            name: "no report after the timeout",
            change: |w| {
                w.ann.get_mut("w-2").unwrap().clear();
                w.waited = REPORT_TIMEOUT;
            },
            fails: Some((DISK_SPACE, &["w-2: no report within 2m"])),
        },
        Case {
            name: "pdb unhealthy",
            change: |w| {
                let s = w.cluster.pdbs[0].status.as_mut().unwrap();
                s.current_healthy = 1;
                s.desired_healthy = 2;
            },
            fails: Some((PDBS_HEALTHY, &["apps/web has 1 healthy pods, wants 2"])),
        },
        Case {
            name: "pdb without status",
            change: |w| w.cluster.pdbs[0].status = None,
            fails: Some((PDBS_HEALTHY, &["apps/web has no status yet"])),
        },
        Case {
            name: "etcd alarm",
            change: |w| {
                let mut e = healthy_etcd();
                e.alarms = vec!["NOSPACE on member 8e9e05c52164694d".into()];
                set_report(w, "cp-1", report_json("op", 10 * GIB, Some(e)));
            },
            fails: Some((
                ETCD_HEALTHY,
                &["alarms: NOSPACE on member 8e9e05c52164694d"],
            )),
        },
        Case {
            name: "etcd member not started",
            change: |w| {
                let mut e = healthy_etcd();
                e.unstarted = vec!["https://10.0.0.3:2380".into()];
                set_report(w, "cp-1", report_json("op", 10 * GIB, Some(e)));
            },
            fails: Some((
                ETCD_HEALTHY,
                &["members not started: https://10.0.0.3:2380"],
            )),
        },
        Case {
            name: "etcd unreachable",
            change: |w| {
                let e = EtcdHealth {
                    endpoint: "https://127.0.0.1:2379".into(),
                    error: Some("connecting: refused".into()),
                    ..EtcdHealth::default()
                };
                set_report(w, "cp-1", report_json("op", 10 * GIB, Some(e)));
            },
            fails: Some((ETCD_HEALTHY, &["from cp-1): connecting: refused"])),
        },
        Case {
            name: "etcd not reported",
            change: |w| set_report(w, "cp-1", report_json("op", 10 * GIB, None)),
            fails: Some((
                ETCD_HEALTHY,
                &["the agent on cp-1 did not report etcd's health"],
            )),
        },
        Case {
            name: "bundle good",
            change: |w| air_gap(w, Ok(("cupcake-system/bundle".into(), BUNDLE.into()))),
            fails: None,
        },
        Case {
            name: "bundle configmap missing",
            change: |w| air_gap(w, Err("ConfigMap cupcake-system/bundle not found".into())),
            fails: Some((AIRGAP_BUNDLE, &["cupcake-system/bundle not found"])),
        },
        Case {
            name: "bundle lacks the target",
            change: |w| {
                air_gap(
                    w,
                    Ok((
                        "cupcake-system/bundle".into(),
                        BUNDLE.replace("\"1.34.2\":", "\"1.34.1\":"),
                    )),
                )
            },
            fails: Some((
                AIRGAP_BUNDLE,
                &["in ConfigMap cupcake-system/bundle lacks version 1.34.2"],
            )),
        },
        Case {
            name: "bundle lacks a component",
            change: |w| {
                w.spec
                    .components
                    .push(cupcake_api::common::Component::Containerd);
                air_gap(w, Ok(("cupcake-system/bundle".into(), BUNDLE.into())));
            },
            fails: Some((AIRGAP_BUNDLE, &["lacks containerd for 1.34.2"])),
        },
        Case {
            name: "bundle with an unknown field",
            change: |w| {
                air_gap(
                    w,
                    Ok((
                        "cupcake-system/bundle".into(),
                        format!("{BUNDLE}mirror: x\n"),
                    )),
                )
            },
            fails: Some((
                AIRGAP_BUNDLE,
                &[
                    "bundle.yaml in ConfigMap cupcake-system/bundle",
                    "unknown field `mirror`",
                    "line 6",
                ],
            )),
        },
    ];
    for c in cases {
        let mut w = healthy();
        (c.change)(&mut w);
        let Outcome::Done(r) = run(&w) else {
            panic!("{}: still waiting", c.name);
        };
        let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
        let mut want = vec![
            API_SERVER,
            NODES_READY,
            NODE_PRESSURE,
            DISK_SPACE,
            PDBS_HEALTHY,
        ];
        if w.spec.air_gapped.is_some() {
            want.push(AIRGAP_BUNDLE);
        }
        want.push(ETCD_HEALTHY);
        assert_eq!(names, want, "{}", c.name);
        let failed: Vec<&PreflightCheck> = r.checks.iter().filter(|c| !c.passed).collect();
        match c.fails {
            None => {
                assert!(r.passed && failed.is_empty(), "{}: {failed:?}", c.name);
                assert_eq!(failure_message(&r), None);
            }
            Some((check, words)) => {
                assert!(!r.passed, "{}", c.name);
                assert_eq!(
                    failed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
                    [check],
                    "{}: {failed:?}",
                    c.name
                );
                let msg = failed[0].message.as_deref().unwrap_or_default();
                for word in words {
                    assert!(msg.contains(word), "{}: {word:?} not in {msg:?}", c.name);
                }
                let m = failure_message(&r).unwrap();
                assert!(
                    m.starts_with(&format!("preflight check {check} failed: ")),
                    "{m}"
                );
            }
        }
    }
}

#[test]
fn reports_are_awaited_until_the_timeout() {
    let mut w = healthy();
    w.ann.get_mut("w-1").unwrap().clear();
    // An older operation's report does not count.
    set_report(&mut w, "w-2", report_json("op-0", 10 * GIB, None));
    assert_eq!(
        run(&w),
        Outcome::Waiting {
            missing: vec!["w-1".into(), "w-2".into()]
        }
    );
    // A node that does not exist is not waited for (nodes-ready names it).
    w.cluster.nodes.retain(|n| n.name != "w-1");
    assert_eq!(
        run(&w),
        Outcome::Waiting {
            missing: vec!["w-2".into()]
        }
    );
    w.waited = REPORT_TIMEOUT;
    let Outcome::Done(r) = run(&w) else {
        panic!("timed out: done")
    };
    assert!(!r.passed);
}

#[test]
fn without_backup_or_air_gap_those_checks_are_left_out() {
    let mut w = healthy();
    w.spec.backup = None;
    w.ann = reported(10 * GIB, None);
    let Outcome::Done(r) = run(&w) else {
        panic!("done")
    };
    let names: Vec<&str> = r.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            API_SERVER,
            NODES_READY,
            NODE_PRESSURE,
            DISK_SPACE,
            PDBS_HEALTHY
        ]
    );
    assert!(r.passed, "{r:?}");
}

#[test]
fn requests_go_to_existing_planned_nodes_not_yet_asked_and_etcd_to_the_backup_node() {
    let mut sp = spec();
    sp.backup = Some(BackupRef {
        etcd: true,
        store_ref: None,
    });
    let st = stages();
    let mut c = cluster();
    c.nodes.push(node("w-9", false)); // not planned
    c.nodes.retain(|n| n.name != "w-2"); // planned, gone
    let mut ann: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let r = requests("op", &sp, &st, &c, &ann);
    assert_eq!(
        r,
        [
            Request {
                node: "cp-1".into(),
                etcd: true
            },
            Request {
                node: "w-1".into(),
                etcd: false
            }
        ]
    );
    ann.insert(
        "w-1".into(),
        BTreeMap::from([(labels::PREFLIGHT_REQUEST.to_string(), "op".to_string())]),
    );
    ann.insert(
        "cp-1".into(),
        BTreeMap::from([(labels::PREFLIGHT_REQUEST.to_string(), "op".to_string())]),
    );
    // cp-1 was asked without etcd: asked again, with it.
    assert_eq!(
        requests("op", &sp, &st, &c, &ann),
        [Request {
            node: "cp-1".into(),
            etcd: true
        }]
    );
    ann.get_mut("cp-1")
        .unwrap()
        .insert(labels::PREFLIGHT_ETCD.into(), ETCD_REQUESTED.into());
    assert!(requests("op", &sp, &st, &c, &ann).is_empty());
    assert_eq!(
        requests("op-2", &sp, &st, &c, &ann).len(),
        2,
        "a new operation asks again"
    );
}

#[test]
fn the_gate_runs_once_holds_a_failure_and_reopens_on_retry_or_spec_change() {
    use Gate::*;
    let no_ann = BTreeMap::new();
    let retry = BTreeMap::from([(labels::RETRY.to_string(), "preflight".to_string())]);
    let sp = spec();
    let mut off = spec();
    off.preflight_checks = false;
    let mut off_air = off.clone();
    off_air.air_gapped = Some(AirGapped {
        enabled: true,
        bundle_config_map: Some("b".into()),
    });
    let mut dry = spec();
    dry.dry_run = true;
    let st = |phase: Option<Phase>, passed: Option<bool>, op: bool, generation: i64| {
        DirectUpdateStatus {
            phase,
            operation_id: op.then(|| "op".to_string()),
            preflight_results: passed.map(|passed| PreflightResults {
                passed,
                checks: vec![],
            }),
            observed_generation: Some(generation),
            ..DirectUpdateStatus::default()
        }
    };
    let failed = st(Some(Phase::RequiresAttention), Some(false), false, 1);
    type GateCase<'a> = (
        &'a str,
        &'a DirectUpdateSpec,
        Option<DirectUpdateStatus>,
        i64,
        &'a BTreeMap<String, String>,
        Gate,
    );
    let cases: Vec<GateCase<'_>> = vec![
        ("new", &sp, None, 1, &no_ann, Run { all: true }),
        ("checks off", &off, None, 1, &no_ann, Open),
        (
            "checks off, air-gapped",
            &off_air,
            None,
            1,
            &no_ann,
            Run { all: false },
        ),
        ("dry run", &dry, None, 1, &no_ann, Open),
        (
            "waiting",
            &sp,
            Some(st(Some(Phase::Pending), None, false, 1)),
            1,
            &no_ann,
            Run { all: true },
        ),
        (
            "passed",
            &sp,
            Some(st(Some(Phase::Pending), Some(true), false, 1)),
            1,
            &no_ann,
            Open,
        ),
        (
            "started",
            &sp,
            Some(st(Some(Phase::RequiresAttention), Some(true), true, 1)),
            2,
            &retry,
            Open,
        ),
        ("failed", &sp, Some(failed.clone()), 1, &no_ann, Held),
        (
            "failed, retry",
            &sp,
            Some(failed.clone()),
            1,
            &retry,
            Run { all: true },
        ),
        (
            "failed, spec changed",
            &sp,
            Some(failed.clone()),
            2,
            &no_ann,
            Run { all: true },
        ),
        (
            "bundle failed, checks off",
            &off_air,
            Some(st(Some(Phase::RequiresAttention), None, false, 3)),
            3,
            &no_ann,
            Held,
        ),
    ];
    for (name, spec, status, generation, ann, want) in cases {
        assert_eq!(
            gate(spec, status.as_ref(), Some(generation), ann),
            want,
            "{name}"
        );
    }
}

#[test]
fn bundle_refs_and_versions() {
    let mut sp = spec();
    assert_eq!(bundle_ref(&sp, "cupcake-system"), None);
    sp.air_gapped = Some(AirGapped {
        enabled: true,
        bundle_config_map: None,
    });
    let e = bundle_ref(&sp, "cupcake-system").unwrap().unwrap_err();
    assert!(e.contains("bundleConfigMap is not set"), "{e}");
    sp.air_gapped.as_mut().unwrap().bundle_config_map = Some("ops/b".into());
    assert_eq!(
        bundle_ref(&sp, "cupcake-system"),
        Some(Ok(("ops".into(), "b".into())))
    );
    sp.air_gapped.as_mut().unwrap().bundle_config_map = Some("b".into());
    assert_eq!(
        bundle_ref(&sp, "cupcake-system"),
        Some(Ok(("cupcake-system".into(), "b".into())))
    );
    sp.upgrade_path = vec![v("1.33.6"), v("1.34.2")];
    let st = vec![
        stage(StageKind::ControlPlane, "1.33.6", &["cp-1"]),
        stage(StageKind::ControlPlane, "1.34.2", &["cp-1"]),
        stage(StageKind::Workers, "1.34.2", &["w-1"]),
    ];
    assert_eq!(bundle_versions(&sp, &st), [v("1.33.6"), v("1.34.2")]);
}
