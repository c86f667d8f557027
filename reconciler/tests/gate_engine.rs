//! The gate as a library: regorus' VM agrees with its interpreter on the default
//! pack, the environment is shareable across threads, and the 5,000-node input
//! evaluates.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use cupcake_api::fleet::ClusterVersionSpec;
use cupcake_api::plan::Verdict;
use cupcake_api::schedule::UpdateScheduleSpec;
use cupcake_core::pass::{Cluster, PassInput, PassOutcome, pass};
use cupcake_reconciler::gate::{self, PolicyEnv, PolicyInput};
use cupcake_reconciler::{load, schedule, snapshot, synth};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("time")
}

fn example_input(now: &str) -> PolicyInput {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fleet");
    let fleet = load::load_cluster(&root, "demo").expect("fleet");
    let def = &fleet.clusters["demo"];
    let snap = snapshot::read_file(&root.join("clusters/demo/snapshot.yaml")).expect("snapshot");
    let sched = def
        .schedule
        .as_ref()
        .map(|s| schedule::Compiled::new(&s.spec).expect("schedule"));
    pass(PassInput {
        cluster: Cluster {
            name: "demo",
            spec: &def.version.spec,
            schedule: sched.as_ref(),
            labels: None,
        },
        catalog: fleet.catalog_spec(),
        snapshot: &snap,
        policies: &PolicyEnv::default_pack(),
        config: &serde_json::json!({}),
        source: &Default::default(),
        now: t(now),
    })
    .expect("pass")
    .input
}

/// Inputs that make many rules fire: NotReady nodes, PDBs, skew, exclusions.
fn variants() -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for now in [
        "2026-11-28T02:30:00Z",
        "2026-11-27T10:00:00Z",
        "2026-12-27T02:00:00Z",
    ] {
        out.push(serde_json::to_value(example_input(now)).expect("json"));
    }
    let base = out[0].clone();
    let mut v = base.clone();
    v["cluster"]["nodes"][0]["ready"] = false.into();
    v["cluster"]["nodes"][5]["ready"] = false.into();
    out.push(v);
    let mut v = base.clone();
    for p in v["cluster"]["pdbs"].as_array_mut().expect("pdbs") {
        p["disruptionsAllowed"] = 0.into();
        p["maxUnavailable"] = 0.into();
    }
    out.push(v);
    let mut v = base.clone();
    v["cluster"]["target"] = "1.36.0-rc.1".into();
    v["plan"]["hops"] = serde_json::json!([{"from": "1.33.4", "to": "1.36.0-rc.1"}]);
    v["cluster"]["timeline"][1]["apiserverMin"] = "1.31.0".into();
    v["cluster"]["timeline"][1]["kubeletMin"] = "1.28.0".into();
    v["schedule"]["activeWindow"]["mustFinish"] = true.into();
    v["schedule"]["remainingSeconds"] = 60.into();
    out.push(v);
    let mut v = base;
    v["cluster"]["controlPlane"] = "1.35.1".into();
    v["schedule"]["suspended"] = true.into();
    out.push(v);
    out
}

#[test]
fn the_vm_agrees_with_the_interpreter() {
    let env = PolicyEnv::default_pack();
    assert!(
        env.uses_vm(),
        "the default pack should compile to RVM bytecode"
    );
    for (i, input) in variants().iter().enumerate() {
        let vm = env.evaluate_json(input).findings;
        let interp = env.evaluate_json_interpreted(input).findings;
        assert_eq!(vm, interp, "variant {i}");
    }
    // The variants do exercise the pack.
    let fired: std::collections::BTreeSet<String> = variants()
        .iter()
        .flat_map(|v| env.evaluate_json(v).findings)
        .map(|f| f.rule)
        .collect();
    for id in [
        "schedule.outside-window",
        "schedule.exclusion",
        "schedule.suspended",
        "controlplane.not-ready",
        "pdb.never-drainable",
        "skew.minor-skip",
        "skew.prerelease",
        "skew.minor-downgrade",
        "schedule.must-finish",
        "skew.kubelet-too-old",
        "skew.apiserver-skew",
    ] {
        assert!(fired.contains(id), "{id} never fired: {fired:?}");
    }
}

#[test]
fn the_environment_is_shared_across_threads() {
    let env: Arc<PolicyEnv> = PolicyEnv::default_pack();
    let input = Arc::new(example_input("2026-11-27T10:00:00Z"));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (env, input) = (env.clone(), input.clone());
            std::thread::spawn(move || gate::decide(&env, &input, &[]).verdict)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("thread"), Verdict::Defer);
    }
}

#[test]
fn five_thousand_nodes_gate_cleanly() {
    let spec: ClusterVersionSpec =
        yaml_serde::from_str("kubernetesVersion: 1.34.2\nmaxUnavailable: 10%\n").expect("spec");
    let sched: UpdateScheduleSpec = yaml_serde::from_str(
        "windows: [{schedule: '0 2 * * 6', duration: 4h, timeZone: Europe/Amsterdam}]",
    )
    .expect("schedule");
    let sched = schedule::Compiled::new(&sched).expect("schedule");
    let snap = snapshot::parse(&synth::kubectl_json(5_000, 10, 500, "1.33.4"), "synthetic")
        .expect("snapshot");
    let now = t("2026-11-28T02:30:00Z");
    let PassOutcome {
        input, decision: d, ..
    } = pass(PassInput {
        cluster: Cluster {
            name: "big",
            spec: &spec,
            schedule: Some(&sched),
            labels: None,
        },
        catalog: None,
        snapshot: &snap,
        policies: &PolicyEnv::default_pack(),
        config: &serde_json::json!({}),
        source: &Default::default(),
        now,
    })
    .expect("pass");
    assert_eq!(input.cluster.nodes.len(), 5_000);
    assert_eq!(input.cluster.timeline.len(), input.plan.stages.len());
    assert_eq!(d.verdict, Verdict::Allow, "{:?}", d.findings);
}
