//! Parse, plan, and a whole pass (plan → schedule → gate → render) on synthetic
//! clusters (the 5,000-node case: parse + pass under 1 s on one core).
//!
//! `cargo bench -p cupcake-reconciler --bench plan`

use std::hint::black_box;

// The same allocator as the `cupcake` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, criterion_group, criterion_main};
use cupcake_api::fleet::ClusterVersionSpec;
use cupcake_core::pass::{Cluster, PassInput, pass};
use cupcake_reconciler::gate::PolicyEnv;
use cupcake_reconciler::{plan, snapshot, synth};

fn spec() -> ClusterVersionSpec {
    yaml_serde::from_str("kubernetesVersion: 1.34.2\nmaxUnavailable: 10%\ncanary: {enabled: true, nodes: [node-1]}\n")
        .expect("static spec")
}

fn bench(c: &mut Criterion) {
    let spec = spec();
    let env = PolicyEnv::default_pack();
    let config = serde_json::json!({});
    let now = "2026-11-28T02:30:00Z".parse().expect("now");
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
        g.bench_function("parse-json+pass", |b| {
            b.iter(|| {
                let snap = snapshot::parse(black_box(&json), "bench").expect("parse");
                pass(PassInput {
                    cluster: Cluster {
                        name: "bench",
                        spec: &spec,
                        schedule: None,
                        labels: None,
                    },
                    catalog: None,
                    snapshot: &snap,
                    policies: &env,
                    config: &config,
                    source: &Default::default(),
                    now,
                })
                .expect("pass")
                .direct_update
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
