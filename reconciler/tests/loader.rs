//! Loader tests: the example fleet loads, and every file of the malformed
//! corpus (tests/corpus/load) fails with the expected message naming file,
//! line, column and field.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};

use cupcake_reconciler::load::{LoadError, load_cluster, load_fleet};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const VALID_CLUSTER: &str = "apiVersion: cupcake.ricardomolendijk.com/v1\nkind: ClusterVersion\nmetadata:\n  name: demo\nspec:\n  kubernetesVersion: 1.34.2\n";

#[test]
fn example_fleet_loads_every_cluster() {
    let fleet = load_fleet(&repo().join("examples/fleet")).unwrap();
    let names: Vec<&String> = fleet.clusters.keys().collect();
    assert_eq!(names, ["demo", "staging"]);
    let demo = &fleet.clusters["demo"];
    assert_eq!(demo.version.spec.kubernetes_version.to_string(), "1.34.2");
    assert!(
        demo.schedule
            .as_ref()
            .is_some_and(|s| s.spec.windows.len() == 2)
    );
    assert!(fleet.catalog.is_some());
}

#[test]
fn unknown_cluster_names_the_known_ones() {
    let err = load_cluster(&repo().join("examples/fleet"), "prod").unwrap_err();
    assert!(matches!(err, LoadError::UnknownCluster { .. }));
    assert!(err.to_string().contains("demo, staging"), "{err}");
}

#[test]
fn malformed_corpus_gives_precise_errors() {
    let dir = repo().join("reconciler/tests/corpus/load");
    let expectations = std::fs::read_to_string(dir.join("EXPECTATIONS")).unwrap();
    let mut checked = 0;
    for line in expectations
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (file, want) = line.split_once(": ").unwrap();
        let body = std::fs::read_to_string(dir.join(file)).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("clusters/demo")).unwrap();
        let target = if file.starts_with("cluster-") {
            "clusters/demo/cluster.yaml"
        } else if file.starts_with("schedule-") {
            "clusters/demo/schedule.yaml"
        } else {
            "versions.yaml"
        };
        if target != "clusters/demo/cluster.yaml" {
            std::fs::write(root.join("clusters/demo/cluster.yaml"), VALID_CLUSTER).unwrap();
        }
        std::fs::write(root.join(target), &body).unwrap();
        let err = load_cluster(root, "demo").expect_err(file).to_string();
        // Paths in messages are absolute; compare from the fleet root.
        let rel = err.replace(&format!("{}/", root.display()), "");
        assert!(rel.contains(want), "{file}:\n  got:  {rel}\n  want: {want}");
        assert!(
            rel.starts_with(target),
            "{file}: error does not start with the file name: {rel}"
        );
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} corpus files checked");
}
