//! The default pack's Rego tests give the same result under `cupcake policy test`
//! (regorus) and under the real `opa test`.
//!
//! `opa` is looked up on PATH, then in the harness cache
//! (`${CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}/*/bin/opa`, built by
//! tests/harness/build.sh). Without it the test prints a skip note, or fails
//! when `CUPCAKE_REQUIRE_OPA=1`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::repo;

fn find_opa() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("opa");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let cache = std::env::var_os("CUPCAKE_HARNESS_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/cupcake-harness"))
        })?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(&cache)
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin/opa"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

/// `data.pkg.test_name` → passed, from `opa test --format json`.
fn opa_results(opa: &Path) -> BTreeMap<String, bool> {
    let out = Command::new(opa)
        .args(["test", "policies/", "--format", "json"])
        .current_dir(repo())
        .output()
        .expect("running opa");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "opa test output is not JSON ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v.as_array()
        .expect("an array of test results")
        .iter()
        .map(|t| {
            let name = format!(
                "{}.{}",
                t["package"].as_str().unwrap_or_default(),
                t["name"].as_str().unwrap_or_default()
            );
            let ok =
                !t["fail"].as_bool().unwrap_or(false) && t.get("error").is_none_or(|e| e.is_null());
            (name, ok)
        })
        .collect()
}

fn cupcake_results() -> (BTreeMap<String, bool>, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_cupcake"))
        .args(["policy", "test", "policies/", "--format", "json"])
        .current_dir(repo())
        .output()
        .expect("running cupcake");
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("cupcake policy test --format json");
    let map = v["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .filter(|t| t["name"].as_str().is_some_and(|n| n.starts_with("data.")))
        .map(|t| {
            (
                t["name"].as_str().unwrap_or_default().to_string(),
                t["outcome"] == "pass",
            )
        })
        .collect();
    (map, v)
}

#[test]
fn cupcake_and_opa_agree_on_every_test_of_the_default_pack() {
    let Some(opa) = find_opa() else {
        if std::env::var("CUPCAKE_REQUIRE_OPA").as_deref() == Ok("1") {
            panic!(
                "CUPCAKE_REQUIRE_OPA=1 but no opa binary: put opa on PATH or run tests/harness/build.sh (it builds ${{CUPCAKE_HARNESS_CACHE:-$HOME/.cache/cupcake-harness}}/<k8s-version>/bin/opa)"
            );
        }
        eprintln!(
            "SKIP: no opa on PATH or in the harness cache; set CUPCAKE_REQUIRE_OPA=1 to make this a failure"
        );
        return;
    };
    let opa_r = opa_results(&opa);
    let (ours, raw) = cupcake_results();
    assert!(
        opa_r.len() >= 40,
        "opa ran only {} tests: {opa_r:?}",
        opa_r.len()
    );
    assert_eq!(
        ours,
        opa_r,
        "cupcake policy test and {} disagree",
        opa.display()
    );
    assert!(ours.values().all(|ok| *ok), "failing tests: {raw:#}");
    assert_eq!(raw["errors"], serde_json::json!([]));
}

#[test]
fn opa_check_strict_accepts_the_pack() {
    let Some(opa) = find_opa() else {
        eprintln!("SKIP: no opa");
        return;
    };
    let out = Command::new(&opa)
        .args(["check", "--strict", "policies/"])
        .current_dir(repo())
        .output()
        .expect("opa check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The same decisions, not just the same test outcomes: for real inputs (the example fleet
/// at several instants and in awkward states), every deny/warn/defer of the Rego rules —
/// id and message — is the same from OPA and from `cupcake policy eval`, which runs the
/// shipped pack on regorus' VM.
#[test]
fn cupcake_and_opa_reach_the_same_findings_on_real_inputs() {
    let Some(opa) = find_opa() else {
        if std::env::var("CUPCAKE_REQUIRE_OPA").as_deref() == Ok("1") {
            panic!("CUPCAKE_REQUIRE_OPA=1 but no opa binary");
        }
        eprintln!("SKIP: no opa");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut inputs = Vec::new();
    for now in [
        "2026-11-28T02:30:00Z",
        "2026-11-27T10:00:00Z",
        "2026-12-27T02:00:00Z",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_cupcake"))
            .args([
                "plan",
                "examples/fleet",
                "--cluster",
                "demo",
                "--now",
                now,
                "--show-input",
            ])
            .current_dir(repo())
            .output()
            .expect("cupcake plan --show-input");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("input JSON");
        inputs.push(v);
    }
    // Awkward states: NotReady nodes, PDBs at zero, a kubelet ahead of the control plane.
    let mut v = inputs[0].clone();
    v["cluster"]["nodes"][0]["ready"] = false.into();
    v["cluster"]["nodes"][5]["ready"] = false.into();
    inputs.push(v);
    let mut v = inputs[0].clone();
    for p in v["cluster"]["pdbs"].as_array_mut().expect("pdbs") {
        p["disruptionsAllowed"] = 0.into();
    }
    inputs.push(v);
    let mut v = inputs[0].clone();
    v["cluster"]["target"] = "1.32.9".into();
    inputs.push(v);
    let mut compared = 0;
    for (i, input) in inputs.iter().enumerate() {
        let f = dir.path().join(format!("input-{i}.json"));
        std::fs::write(&f, serde_json::to_vec(input).expect("json")).expect("write");
        let out = Command::new(&opa)
            .args(["eval", "-f", "json", "-d", "policies/", "-i"])
            .arg(&f)
            .arg("data.cupcake")
            .current_dir(repo())
            .output()
            .expect("opa eval");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("opa eval JSON");
        let pkg = &v["result"][0]["expressions"][0]["value"];
        let mut theirs = std::collections::BTreeSet::new();
        for (kind, sev) in [("deny", "deny"), ("warn", "warn"), ("defer", "defer")] {
            for f in pkg[kind].as_array().cloned().unwrap_or_default() {
                theirs.insert((
                    sev.to_string(),
                    f["id"].as_str().unwrap_or_default().to_string(),
                    f["msg"].as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        let out = Command::new(env!("CARGO_BIN_EXE_cupcake"))
            .args(["policy", "eval", "-o", "json", "--input"])
            .arg(&f)
            .current_dir(repo())
            .output()
            .expect("cupcake policy eval");
        let d: serde_json::Value = serde_json::from_slice(&out.stdout).expect("decision JSON");
        let ours: std::collections::BTreeSet<(String, String, String)> = d["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| f["source"].as_str().is_some_and(|s| s.ends_with(".rego")))
            .map(|f| {
                (
                    f["severity"].as_str().unwrap_or_default().to_string(),
                    f["rule"].as_str().unwrap_or_default().to_string(),
                    f["message"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        assert_eq!(ours, theirs, "input {i}: cupcake (VM) and OPA disagree");
        compared += ours.len();
    }
    assert!(
        compared >= 5,
        "only {compared} findings compared: the inputs fire too little"
    );
}
