//! `cupcake` CLI tests on the example fleet: output contracts and exit codes.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cupcake(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cupcake"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

/// Inside the demo cluster's Saturday window (03:30 in Amsterdam).
const IN_WINDOW: &str = "2026-11-28T02:30:00Z";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// A copy of the example fleet with `edit` applied to demo's cluster.yaml.
fn fleet_with(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("examples/fleet"), tmp.path());
    let f = tmp.path().join("clusters/demo/cluster.yaml");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, edit(text)).unwrap();
    tmp
}

#[test]
fn json_output_follows_the_contract() {
    let out = cupcake(&[
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["cluster"], "demo");
    assert_eq!(j["target"], "1.34.2");
    assert_eq!(j["upToDate"], false);
    assert!(
        j.get("revision").is_some(),
        "revision key present (null outside git)"
    );
    assert_eq!(j["current"]["controlPlane"], "1.33.4");
    assert_eq!(j["current"]["apiservers"]["cp-1"], "1.33.4");
    assert_eq!(j["current"]["kubelets"]["1.33.4"], 12);
    assert_eq!(
        j["plan"]["hops"],
        serde_json::json!([{"from": "1.33.4", "to": "1.34.2"}])
    );
    let kinds: Vec<&str> = j["plan"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["backup", "control-plane", "canary", "workers"]);
    assert_eq!(
        j["plan"]["stages"][1]["batches"],
        serde_json::json!([["cp-1"], ["cp-2"], ["cp-3"]])
    );
    assert_eq!(
        j["plan"]["stages"][2]["batches"],
        serde_json::json!([["worker-1"]])
    );
    assert!(j["plan"]["estimate"]["seconds"].as_u64().unwrap() > 0);
    assert_eq!(j["decision"]["verdict"], "allow");
    assert!(j["decision"]["deferUntil"].is_null());
    assert!(j["decision"]["findings"].is_array());
    let du = &j["directUpdate"];
    assert_eq!(du["kind"], "DirectUpdate");
    assert_eq!(du["apiVersion"], "cupcake.ricardomolendijk.com/v1");
    assert_eq!(du["spec"]["targetVersion"], "1.34.2");
    assert_eq!(du["spec"]["upgradePath"], serde_json::json!(["1.34.2"]));
    assert_eq!(
        du["metadata"]["labels"]["cupcake.ricardomolendijk.com/cluster"],
        "demo"
    );
    // Workers never share a batch with more pods of a PDB than it allows (web allows 1: worker-2..4).
    let workers = &j["plan"]["stages"][3]["batches"];
    for b in workers.as_array().unwrap() {
        let names: Vec<&str> = b
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        let web = names
            .iter()
            .filter(|n| ["worker-2", "worker-3", "worker-4"].contains(n))
            .count();
        assert!(web <= 1, "batch {names:?} drains two web pods");
    }
}

#[test]
fn rendering_is_deterministic() {
    let a = cupcake(&[
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "yaml",
    ]);
    let b = cupcake(&[
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "yaml",
    ]);
    assert_eq!(a.stdout, b.stdout);
    let du: serde_json::Value = yaml_serde::from_slice(&a.stdout).unwrap();
    assert_eq!(du["kind"], "DirectUpdate");
    let name = du["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("demo-1-34-2-") && name.len() == "demo-1-34-2-".len() + 8,
        "{name}"
    );
}

#[test]
fn text_and_markdown_lead_with_the_verdict() {
    let out = cupcake(&[
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("Cluster demo: 1.33.4 → 1.34.2\n"),
        "{text}"
    );
    assert!(text.contains("Verdict: ALLOWED"), "{text}");
    assert!(
        text.contains("control-plane") && text.contains("[cp-1] [cp-2] [cp-3]"),
        "{text}"
    );
    let out = cupcake(&[
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "markdown",
    ]);
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(
        md.starts_with("### ✅ CUPCAKE plan for `demo`: **ALLOWED**"),
        "{md}"
    );
    assert!(md.contains("| # | stage | version | nodes |"), "{md}");
}

#[test]
fn denied_plans_exit_2_without_a_direct_update() {
    let fleet = fleet_with(|t| t.replace("kubernetesVersion: 1.34.2", "kubernetesVersion: 1.32.9"));
    let p = fleet.path().to_str().unwrap();
    let out = cupcake(&[
        "plan",
        p,
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["decision"]["verdict"], "deny");
    assert!(j["directUpdate"].is_null());
    let rules: Vec<&str> = j["decision"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.iter().any(|r| r.contains("downgrade")), "{rules:?}");
    // -o yaml prints nothing on stdout and says why on stderr.
    let out = cupcake(&[
        "plan",
        p,
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("denied"));
}

#[test]
fn forcing_a_forceable_deny_allows_the_plan() {
    let fleet = fleet_with(|t| {
        t.replace("kubernetesVersion: 1.34.2", "kubernetesVersion: 1.33.2")
            .replace("force: []", "force: [planner.patch-downgrade]")
    });
    let out = cupcake(&[
        "plan",
        fleet.path().to_str().unwrap(),
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "json",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = j["decision"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "planner.patch-downgrade")
        .cloned()
        .unwrap();
    assert_eq!(f["forced"], true);
    assert_ne!(j["decision"]["verdict"], "deny");
}

#[test]
fn up_to_date_cluster_exits_0_without_a_direct_update() {
    let fleet =
        fleet_with(|t| t.replace("kubernetesVersion: 1.34.2", "kubernetesVersion: v1.33.4"));
    let out = cupcake(&[
        "plan",
        fleet.path().to_str().unwrap(),
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["upToDate"], true);
    assert!(j["directUpdate"].is_null());
    assert_eq!(j["plan"]["stages"], serde_json::json!([]));
}

#[test]
fn errors_exit_1_and_name_the_problem() {
    let fleet = fleet_with(|t| t.replace("strategy: rolling", "strategy: sideways"));
    let out = cupcake(&["plan", fleet.path().to_str().unwrap(), "--cluster", "demo"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("clusters/demo/cluster.yaml:12:3:")
            && err.contains("spec.strategy: unknown variant `sideways`"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = cupcake(&[
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--snapshot",
        "Cargo.toml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Cargo.toml"));

    let out = cupcake(&["plan", "examples/fleet", "--cluster", "staging"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no snapshot at"));
}
