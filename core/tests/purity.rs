//! `cupcake-core` stays pure: nothing in its dependency tree talks to a
//! cluster, a network, Git, or runs an async runtime. (Files, clocks and
//! processes are kept out by `core/clippy.toml`'s `disallowed-methods`.)

#![allow(clippy::disallowed_methods)] // a test of the build, not core code: it runs `cargo metadata`

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

/// Crates whose presence would mean IO crept into the core.
const FORBIDDEN: &[&str] = &[
    "kube-client",
    "kube-runtime",
    "tokio",
    "async-std",
    "git2",
    "gix",
    "hyper",
    "reqwest",
    "octocrab",
    "tonic",
    "etcd-client",
    "object_store",
    "axum",
    "tower",
    "rustls",
    "openssl",
];

#[test]
fn core_depends_on_no_io_crate() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata json");
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, Vec<(&str, bool)>> = meta["resolve"]["nodes"]
        .as_array()
        .expect("resolve")
        .iter()
        .map(|n| {
            let deps = n["deps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    // Only normal (non-dev, non-build) edges count.
                    let normal = d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null());
                    (d["pkg"].as_str().unwrap(), normal)
                })
                .collect();
            (n["id"].as_str().unwrap(), deps)
        })
        .collect();
    let core = names
        .iter()
        .find(|(_, n)| **n == "cupcake-core")
        .map(|(id, _)| *id)
        .expect("cupcake-core in metadata");
    let mut seen = BTreeSet::new();
    let mut stack = vec![core];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        for (dep, normal) in &nodes[id] {
            if *normal {
                stack.push(dep);
            }
        }
    }
    let tree: BTreeSet<&str> = seen.iter().map(|id| names[id]).collect();
    let bad: Vec<&&str> = FORBIDDEN.iter().filter(|f| tree.contains(**f)).collect();
    assert!(
        bad.is_empty(),
        "cupcake-core must stay pure, but its dependency tree has {bad:?}"
    );
    // The check itself sees the tree (it would pass vacuously on an empty one).
    assert!(
        tree.contains("regorus") && tree.contains("cupcake-api"),
        "{tree:?}"
    );
}
