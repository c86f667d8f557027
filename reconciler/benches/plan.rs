//! Parse + plan + render on synthetic clusters (the 5,000-node case is the
//! issue's target: under 100 ms in release on one core).
//!
//! `cargo bench -p cupcake-reconciler --bench plan`

use std::hint::black_box;

// The same allocator as the `cupcake` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, criterion_group, criterion_main};
use cupcake_api::fleet::ClusterVersionSpec;
use cupcake_reconciler::render::{Provenance, direct_update};
use cupcake_reconciler::{plan, snapshot, synth};

fn spec() -> ClusterVersionSpec {
    yaml_serde::from_str("kubernetesVersion: 1.34.2\nmaxUnavailable: 10%\ncanary: {enabled: true, nodes: [node-1]}\n")
        .expect("static spec")
}

fn bench(c: &mut Criterion) {
    let spec = spec();
    for (nodes, pods, pdbs) in [(100, 10, 10), (5_000, 10, 500)] {
        let json = synth::kubectl_json(nodes, pods, pdbs, "1.33.4");
        let yaml = {
            let v: serde_json::Value = serde_json::from_str(&json).expect("json");
            yaml_serde::to_string(&v).expect("yaml")
        };
        eprintln!(
            "{nodes} nodes: {} MB JSON, {} MB YAML",
            json.len() / 1_000_000,
            yaml.len() / 1_000_000
        );
        let snap = snapshot::parse(&json, "bench").expect("parse");
        let mut g = c.benchmark_group(format!("{nodes}-nodes"));
        g.sample_size(20);
        g.bench_function("parse-json", |b| {
            b.iter(|| snapshot::parse(black_box(&json), "bench").expect("parse"))
        });
        g.bench_function("parse-yaml", |b| {
            b.iter(|| snapshot::parse(black_box(&yaml), "bench").expect("parse"))
        });
        g.bench_function("plan", |b| {
            b.iter(|| {
                plan::plan(plan::PlanInput {
                    spec: &spec,
                    catalog: None,
                    snapshot: black_box(&snap),
                })
            })
        });
        g.bench_function("parse-json+plan+render", |b| {
            b.iter(|| {
                let snap = snapshot::parse(black_box(&json), "bench").expect("parse");
                let o = plan::plan(plan::PlanInput {
                    spec: &spec,
                    catalog: None,
                    snapshot: &snap,
                });
                direct_update("bench", &spec, &o, &Provenance::default())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
