//! Reading a 5,000-node snapshot (`kubectl get nodes,pods,pdb -A -o json|yaml`):
//! JSON, YAML through the fast path for kubectl's block style, and the same
//! YAML through the full parser (a `%YAML 1.1` directive sends it there), which
//! is what every YAML snapshot took before the fast path.
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
use cupcake_reconciler::{snapshot, synth};

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

criterion_group!(benches, bench);

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
