//! Gate decisions per second with the default pack (100 and 5,000 nodes), and
//! plan + gate on the 5,000-node snapshot (target: under 100 ms).
//!
//! `cargo bench -p cupcake-reconciler --bench gate`

// The same allocator as the `cupcake` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use cupcake_api::fleet::ClusterVersionSpec;
use cupcake_api::schedule::UpdateScheduleSpec;
use cupcake_core::pass::{Cluster, PassInput, pass};
use cupcake_reconciler::gate::{self, PolicyEnv};
use cupcake_reconciler::{snapshot, synth};

fn spec() -> ClusterVersionSpec {
    yaml_serde::from_str("kubernetesVersion: 1.34.2\nmaxUnavailable: 10%\ncanary: {enabled: true, nodes: [node-1]}\n")
        .expect("static spec")
}

fn sched() -> UpdateScheduleSpec {
    yaml_serde::from_str(
        "windows: [{schedule: '0 2 * * 6', duration: 4h, timeZone: Europe/Amsterdam}]\n\
         exclusions: [{start: '2026-12-20T00:00:00Z', end: '2027-01-04T00:00:00Z', scope: minor}]",
    )
    .expect("static schedule")
}

fn bench(c: &mut Criterion) {
    let env = PolicyEnv::default_pack();
    assert!(env.errors().is_empty());
    let spec = spec();
    let sched = cupcake_reconciler::schedule::Compiled::new(&sched()).expect("static schedule");
    let now: DateTime<Utc> = "2026-11-28T02:30:00Z".parse().expect("now");
    let config = serde_json::json!({});
    let source = Default::default();
    for (nodes, pods, pdbs) in [(100, 10, 10), (5_000, 10, 500)] {
        let json = synth::kubectl_json(nodes, pods, pdbs, "1.33.4");
        let snap = snapshot::parse(&json, "bench").expect("parse");
        let run = || {
            pass(PassInput {
                cluster: Cluster {
                    name: "bench",
                    spec: &spec,
                    schedule: Some(&sched),
                    labels: None,
                },
                catalog: None,
                snapshot: &snap,
                policies: &env,
                config: &config,
                source: &source,
                now,
            })
            .expect("pass")
        };
        let out = run();
        let (input, outcome) = (&out.input, &out.outcome);
        let d = &out.decision;
        eprintln!(
            "{nodes} nodes: verdict {:?}, {} findings, input {} KB",
            d.verdict,
            d.findings.len(),
            serde_json::to_vec(input).map(|v| v.len()).unwrap_or(0) / 1000
        );

        // Plain figures, independent of criterion's statistics.
        let n = if nodes <= 100 { 2_000 } else { 20 };
        let t = Instant::now();
        for _ in 0..n {
            black_box(gate::decide(&env, black_box(input), &outcome.findings));
        }
        let per = t.elapsed() / n;
        eprintln!(
            "{nodes} nodes: gate decision {per:?} -> {:.0} decisions/s on one core",
            1.0 / per.as_secs_f64()
        );
        let t = Instant::now();
        let m = if nodes <= 100 { 200 } else { 10 };
        for _ in 0..m {
            black_box(run());
        }
        eprintln!(
            "{nodes} nodes: one pass (plan + schedule + input + gate + render) {:?}",
            t.elapsed() / m
        );

        let mut g = c.benchmark_group(format!("gate-{nodes}-nodes"));
        g.sample_size(20);
        g.bench_function("decide", |b| {
            b.iter(|| gate::decide(&env, black_box(input), &outcome.findings))
        });
        g.bench_function("pass", |b| b.iter(|| black_box(run())));
        g.finish();
    }
    let t = Instant::now();
    black_box(PolicyEnv::default_pack());
    eprintln!("building the default pack environment: {:?}", t.elapsed());
}

criterion_group!(benches, bench);
criterion_main!(benches);
