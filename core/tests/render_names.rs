//! The rendered DirectUpdate: its name is a stable, DNS-safe
//! `<cluster>-<target>-<hash>` that stays the same for the same desired state
//! (whatever commit it came from) and changes when anything that would run
//! changes; labels, annotations, strategy and canary say what the plan is.
//! Mutation testing (docs/testing.md) found the rendering only tested through
//! the reconciler's suites.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::BTreeMap;

use common::{mk_cluster, mk_spec, now};
use cupcake_api::common::Strategy;
use cupcake_api::crd::{DirectUpdate, SourceRef};
use cupcake_api::labels;
use cupcake_api::snapshot::ClusterSnapshot;
use cupcake_core::gate::PolicyEnv;
use cupcake_core::pass::{Cluster, PassInput, pass};

fn render(cluster: &str, spec: &str, snap: &ClusterSnapshot, source: &SourceRef) -> DirectUpdate {
    let spec = mk_spec(spec);
    let o = pass(PassInput {
        cluster: Cluster {
            name: cluster,
            spec: &spec,
            schedule: None,
            labels: None,
        },
        catalog: None,
        snapshot: snap,
        policies: &PolicyEnv::default_pack(),
        config: &serde_json::json!({}),
        source,
        now: now(),
    })
    .unwrap();
    o.direct_update
        .unwrap_or_else(|| panic!("{cluster}: no DirectUpdate: {:?}", o.decision))
}

fn name(cluster: &str, spec: &str) -> String {
    render(
        cluster,
        spec,
        &mk_cluster(1, 4, "1.33.4"),
        &SourceRef::default(),
    )
    .metadata
    .name
    .unwrap()
}

/// `<label>-1-34-2-<8 hex>`: the label part, checking the rest.
fn label_part(n: &str) -> &str {
    let (rest, hash) = n.rsplit_once('-').unwrap();
    assert_eq!(hash.len(), 8, "{n}: hash {hash}");
    assert!(
        hash.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{n}: hash {hash}"
    );
    rest.strip_suffix("-1-34-2").unwrap()
}

/// A Kubernetes label value / DNS-1123 label: lower-case alphanumerics and
/// '-', starting and ending alphanumeric, at most 63 characters.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[test]
fn cluster_names_become_dns_labels() {
    let long = "a".repeat(39) + "-tail-of-a-long-name";
    let (a39, x40, x60) = ("a".repeat(39), "x".repeat(40), "x".repeat(60));
    let cases = [
        ("prod-eu-1", "prod-eu-1"),
        ("Prod_EU.1", "prod-eu-1"),
        ("--edge--", "edge"),
        ("eu west 2", "eu-west-2"),
        ("___", "cluster"),
        ("", "cluster"),
        ("Ünïcode", "n-code"),
        (long.as_str(), a39.as_str()),
        (x60.as_str(), x40.as_str()),
    ];
    for (cluster, want) in cases {
        let du = render(
            cluster,
            "kubernetesVersion: 1.34.2",
            &mk_cluster(1, 4, "1.33.4"),
            &SourceRef::default(),
        );
        let n = du.metadata.name.clone().unwrap();
        assert_eq!(label_part(&n), want, "{cluster:?} -> {n}");
        let l = du.metadata.labels.clone().unwrap();
        assert_eq!(l[labels::CLUSTER], want, "{cluster:?}");
        assert!(is_dns_label(&l[labels::CLUSTER]), "{cluster:?} -> {l:?}");
        assert!(n.len() <= 63, "{n}");
    }
}

#[test]
fn name_is_stable_and_independent_of_the_commit() {
    let snap = mk_cluster(1, 4, "1.33.4");
    let a = render(
        "prod",
        "kubernetesVersion: 1.34.2",
        &snap,
        &SourceRef::default(),
    );
    let b = render(
        "prod",
        "kubernetesVersion: 1.34.2",
        &snap,
        &SourceRef {
            repository: Some("https://git.example/fleet.git".into()),
            revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
            path: Some("clusters/prod/cluster.yaml".into()),
            dirty: false,
        },
    );
    let c = render(
        "prod",
        "kubernetesVersion: 1.34.2",
        &snap,
        &SourceRef {
            revision: Some("fedcba9876543210fedcba9876543210fedcba98".into()),
            ..SourceRef::default()
        },
    );
    assert_eq!(a.metadata.name, b.metadata.name);
    assert_eq!(a.metadata.name, c.metadata.name);
    assert_eq!(
        a.metadata.labels.as_ref().unwrap()[labels::PLAN_HASH],
        b.metadata.labels.as_ref().unwrap()[labels::PLAN_HASH]
    );
    assert!(
        a.metadata
            .name
            .as_ref()
            .unwrap()
            .starts_with("prod-1-34-2-")
    );
    // The hash label is the name's hash part.
    let n = b.metadata.name.clone().unwrap();
    assert_eq!(
        n.rsplit_once('-').unwrap().1,
        b.metadata.labels.as_ref().unwrap()[labels::PLAN_HASH]
    );
    // What it came from is recorded, but only when known.
    assert_eq!(a.spec.source, None);
    assert_eq!(a.metadata.annotations, None);
    assert_eq!(c.spec.source.as_ref().unwrap().revision, c_rev());
    assert_eq!(
        b.metadata.annotations.clone().unwrap(),
        BTreeMap::from([
            (
                labels::SOURCE_REPOSITORY.to_string(),
                "https://git.example/fleet.git".to_string()
            ),
            (
                labels::SOURCE_REVISION.to_string(),
                "0123456789abcdef0123456789abcdef01234567".to_string()
            ),
            (
                labels::SOURCE_PATH.to_string(),
                "clusters/prod/cluster.yaml".to_string()
            ),
        ])
    );
    assert_eq!(
        c.metadata.annotations.clone().unwrap(),
        BTreeMap::from([(
            labels::SOURCE_REVISION.to_string(),
            "fedcba9876543210fedcba9876543210fedcba98".to_string()
        )])
    );
    assert_eq!(
        a.metadata.labels.clone().unwrap(),
        BTreeMap::from([
            (labels::CLUSTER.to_string(), "prod".to_string()),
            (labels::MANAGED_BY.to_string(), "cupcake".to_string()),
            (
                labels::PLAN_HASH.to_string(),
                n.rsplit_once('-').unwrap().1.to_string()
            ),
        ])
    );
}

fn c_rev() -> Option<String> {
    Some("fedcba9876543210fedcba9876543210fedcba98".into())
}

#[test]
fn name_changes_when_what_would_run_changes() {
    let base = "kubernetesVersion: 1.34.2";
    let variants = [
        ("another cluster", "prod-2", base),
        (
            "concurrency",
            "prod",
            "kubernetesVersion: 1.34.2\nconcurrency: 2",
        ),
        (
            "drain timeout",
            "prod",
            "kubernetesVersion: 1.34.2\ndrain: {timeout: 3m}",
        ),
        (
            "node selector",
            "prod",
            "kubernetesVersion: 1.34.2\nnodeSelector: {pool: a}",
        ),
        (
            "strategy",
            "prod",
            "kubernetesVersion: 1.34.2\nstrategy: parallel",
        ),
        (
            "canary",
            "prod",
            "kubernetesVersion: 1.34.2\ncanary: {enabled: true, nodes: [w-2]}",
        ),
        (
            "preflight checks",
            "prod",
            "kubernetesVersion: 1.34.2\npreflightChecks: false",
        ),
    ];
    let first = name("prod", base);
    assert_eq!(name("prod", base), first, "same input, same name");
    let mut seen = vec![label_hash(&first)];
    for (what, cluster, spec) in variants {
        let n = name(cluster, spec);
        let h = label_hash(&n);
        assert!(!seen.contains(&h), "{what}: {n} repeats a hash ({seen:?})");
        seen.push(h);
    }
}

fn label_hash(n: &str) -> String {
    n.rsplit_once('-').unwrap().1.to_string()
}

#[test]
fn strategy_and_canary_table() {
    // (spec, strategy, canary nodes, concurrency)
    let cases: [(&str, Strategy, Option<Vec<&str>>, u32); 5] = [
        ("kubernetesVersion: 1.34.2", Strategy::Rolling, None, 1),
        (
            "kubernetesVersion: 1.34.2\ncanary: {enabled: true, nodes: [w-2]}",
            Strategy::Canary,
            Some(vec!["w-2"]),
            1,
        ),
        (
            "kubernetesVersion: 1.34.2\nstrategy: canary\ncanary: {enabled: true, nodes: [w-3]}",
            Strategy::Canary,
            Some(vec!["w-3"]),
            1,
        ),
        (
            "kubernetesVersion: 1.34.2\nconcurrency: 3",
            Strategy::Rolling,
            None,
            3,
        ),
        // Parallel: as many as the largest batch (web's PDB keeps w-1 and w-2 apart).
        (
            "kubernetesVersion: 1.34.2\nstrategy: parallel",
            Strategy::Parallel,
            None,
            3,
        ),
    ];
    for (spec, strategy, canary, concurrency) in cases {
        let du = render(
            "prod",
            spec,
            &mk_cluster(1, 4, "1.33.4"),
            &SourceRef::default(),
        );
        assert_eq!(du.spec.strategy, strategy, "{spec}");
        assert_eq!(
            du.spec.canary.as_ref().map(|c| c.nodes.clone()),
            canary.map(|v| v.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            "{spec}"
        );
        if let Some(c) = &du.spec.canary {
            assert!(c.enabled, "{spec}");
        }
        assert_eq!(du.spec.concurrency, concurrency, "{spec}");
    }
}
