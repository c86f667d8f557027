//! Reading a 5,000-node snapshot (`kubectl get nodes,pods,pdb -A -o json|yaml`):
//! JSON, YAML through the fast path for kubectl's block style, and the same
//! YAML through the full parser (a `%YAML 1.1` directive sends it there), which
//! is what every YAML snapshot took before the fast path.
//!
//! Group `objects-1000-nodes`: the rollout controller's snapshot of its caches
//! (1,000 nodes, 10 pods each, 100 PDBs) — printed as a List and read back (what
//! every round did before) against `snapshot::from_objects`.
//!
//! `cargo bench -p cupcake-reconciler --bench snapshot`
//!
//! With `-- --write DIR` it writes DIR/big.json and DIR/big.yaml instead, for
//! timing the whole `cupcake plan --snapshot` process (docs/performance.md).

use std::hint::black_box;

// The same allocator as the `cupcake` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, criterion_group};
use cupcake_api::snapshot::ClusterSnapshot;
use cupcake_reconciler::{snapshot, synth};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

/// The 5,000-node cluster of `benches/plan.rs`, as kubectl prints it in JSON and YAML.
fn snapshots() -> (String, String) {
    let json = synth::kubectl_json(5_000, 10, 500, "1.33.4");
    let value: serde_json::Value = serde_json::from_str(&json).expect("json");
    let yaml = yaml_serde::to_string(&value).expect("yaml");
    (json, yaml)
}

fn bench(c: &mut Criterion) {
    let (json, yaml) = snapshots();
    let full = format!("%YAML 1.1\n---\n{yaml}");
    eprintln!(
        "5000 nodes: {:.1} MB JSON, {:.1} MB YAML",
        json.len() as f64 / 1e6,
        yaml.len() as f64 / 1e6
    );
    let expected = snapshot::parse(&json, "bench").expect("parse json");
    assert_eq!(
        snapshot::parse(&yaml, "bench").expect("parse yaml"),
        expected
    );
    assert_eq!(
        snapshot::parse(&full, "bench").expect("parse full"),
        expected
    );

    let mut g = c.benchmark_group("snapshot-5000-nodes");
    g.sample_size(10);
    g.bench_function("json", |b| {
        b.iter(|| snapshot::parse(black_box(&json), "bench").expect("parse"))
    });
    g.bench_function("yaml", |b| {
        b.iter(|| snapshot::parse(black_box(&yaml), "bench").expect("parse"))
    });
    g.bench_function("yaml-full-parser", |b| {
        b.iter(|| snapshot::parse(black_box(&full), "bench").expect("parse"))
    });
    g.finish();
}

/// Typed objects of a synthetic cluster (the owner references get the fields
/// k8s-openapi requires and the synthetic JSON leaves out).
fn objects(nodes: usize) -> (Vec<Node>, Vec<Pod>, Vec<PodDisruptionBudget>) {
    let json = synth::kubectl_json(nodes, 10, nodes / 10, "1.33.4");
    let mut list: serde_json::Value = serde_json::from_str(&json).expect("json");
    let (mut n, mut p, mut b) = (Vec::new(), Vec::new(), Vec::new());
    for mut item in list["items"].as_array_mut().expect("items").drain(..) {
        for o in item["metadata"]["ownerReferences"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            o["apiVersion"] = "apps/v1".into();
            o["uid"] = "u".into();
        }
        match item["kind"].as_str() {
            Some("Node") => n.push(serde_json::from_value(item).expect("node")),
            Some("Pod") => p.push(serde_json::from_value(item).expect("pod")),
            _ => b.push(serde_json::from_value(item).expect("pdb")),
        }
    }
    (n, p, b)
}

/// What the controller did each round before `from_objects`.
fn through_json(nodes: &[Node], pods: &[Pod], pdbs: &[PodDisruptionBudget]) -> ClusterSnapshot {
    let mut items = Vec::new();
    items.extend(nodes.iter().map(|x| serde_json::to_value(x).expect("node")));
    items.extend(pods.iter().map(|x| serde_json::to_value(x).expect("pod")));
    items.extend(pdbs.iter().map(|x| serde_json::to_value(x).expect("pdb")));
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    snapshot::parse(&list.to_string(), "bench").expect("parse")
}

fn bench_objects(c: &mut Criterion) {
    let (nodes, pods, pdbs) = objects(1_000);
    let typed = || snapshot::from_objects(&nodes, &pods, &pdbs, "bench").expect("typed");
    assert_eq!(typed(), through_json(&nodes, &pods, &pdbs));
    let mut g = c.benchmark_group("objects-1000-nodes");
    g.sample_size(10);
    g.bench_function("through-json", |b| {
        b.iter(|| through_json(black_box(&nodes), &pods, &pdbs))
    });
    g.bench_function("from-objects", |b| b.iter(typed));
    g.finish();
}

criterion_group!(benches, bench, bench_objects);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--write") {
        let dir = std::path::PathBuf::from(args.get(i + 1).expect("--write DIR"));
        let (json, yaml) = snapshots();
        std::fs::write(dir.join("big.json"), json).expect("write big.json");
        std::fs::write(dir.join("big.yaml"), yaml).expect("write big.yaml");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
