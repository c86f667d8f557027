//! Loader tests: the example fleet loads, and every file of the malformed
//! corpus (tests/corpus/load) fails with the expected message naming file,
//! line, column and field.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;

use cupcake_reconciler::load::{LoadError, load_cluster, load_fleet};

mod common;
use common::repo;

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
        // Every expectation pins the position: file:line:col (or the file, for an empty one).
        assert!(
            want.starts_with(target),
            "{file}: the expectation must start with the file and its position: {want}"
        );
        assert!(
            rel.starts_with(target),
            "{file}: error does not start with the file name: {rel}"
        );
        checked += 1;
    }
    assert!(checked >= 54, "only {checked} corpus files checked");
}

/// A fleet tree in memory: (path, text) pairs.
fn tree(files: &[(&str, &str)]) -> cupcake_reconciler::source::FleetTree {
    cupcake_reconciler::source::FleetTree {
        files: files
            .iter()
            .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
            .collect(),
        origin: PathBuf::from("fleet"),
        ..Default::default()
    }
}

const SCHEDULE: &str = "apiVersion: cupcake.ricardomolendijk.com/v1\nkind: UpdateSchedule\nmetadata:\n  name: demo\nspec:\n  windows:\n    - {days: [Sat], startTime: \"01:00\", endTime: \"05:00\"}\n";

/// Every input used or refused: stray files, names that do not match, contradictions.
#[test]
fn fail_closed_table() {
    let cluster_with = |extra: &str| format!("{VALID_CLUSTER}{extra}");
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "misnamed schedule file",
            vec![("clusters/demo/schedule.yml", SCHEDULE.into())],
            "fleet/clusters/demo/schedule.yml: CUPCAKE does not read this file (did you mean schedule.yaml?)",
        ),
        (
            "capitalised schedule file",
            vec![("clusters/demo/Schedule.yaml", SCHEDULE.into())],
            "fleet/clusters/demo/Schedule.yaml: CUPCAKE does not read this file (did you mean schedule.yaml?)",
        ),
        (
            "stray YAML",
            vec![("clusters/demo/extra.yaml", "a: 1\n".into())],
            "fleet/clusters/demo/extra.yaml: CUPCAKE does not read this file; rename it",
        ),
        (
            "cluster.yaml named for another cluster",
            vec![(
                "clusters/demo/cluster.yaml",
                VALID_CLUSTER.replace("name: demo", "name: prod"),
            )],
            "fleet/clusters/demo/cluster.yaml:4:3: metadata.name: \"prod\" does not match the cluster folder \"demo\"",
        ),
        (
            "schedule.yaml named for another cluster",
            vec![(
                "clusters/demo/schedule.yaml",
                SCHEDULE.replace("name: demo", "name: staging"),
            )],
            "fleet/clusters/demo/schedule.yaml:4:3: metadata.name: \"staging\" does not match",
        ),
        (
            "two manifests in one file",
            vec![(
                "clusters/demo/cluster.yaml",
                format!("{VALID_CLUSTER}---\n{VALID_CLUSTER}"),
            )],
            "fleet/clusters/demo/cluster.yaml:7:1: a second YAML document starts here: one ClusterVersion manifest per file",
        ),
        (
            "seed schedule in a fleet",
            vec![(
                "clusters/demo/schedule.yaml",
                format!("{SCHEDULE}  schedule: \"0 3 1 * *\"\n"),
            )],
            "spec.schedule: in a fleet repo the desired version comes from cluster.yaml",
        ),
        (
            "seed updatePolicy.strategy in a fleet",
            vec![(
                "clusters/demo/schedule.yaml",
                format!(
                    "{SCHEDULE}  updatePolicy: {{targetVersionPattern: 1.34.x, strategy: rolling}}\n"
                ),
            )],
            "spec.updatePolicy.strategy: how the cluster is upgraded is set in cluster.yaml: move this to spec.strategy",
        ),
        (
            "parallel with a batch size",
            vec![(
                "clusters/demo/cluster.yaml",
                cluster_with("  strategy: parallel\n  concurrency: 3\n"),
            )],
            "spec.concurrency: spec.strategy: parallel upgrades every worker at once",
        ),
        (
            "parallel with maxUnavailable",
            vec![(
                "clusters/demo/cluster.yaml",
                cluster_with("  strategy: parallel\n  maxUnavailable: 20%\n"),
            )],
            "spec.maxUnavailable: spec.strategy: parallel",
        ),
        (
            "canary strategy without the canary enabled",
            vec![(
                "clusters/demo/cluster.yaml",
                cluster_with("  strategy: canary\n  canary: {enabled: false, nodes: [w-1]}\n"),
            )],
            "spec.canary.enabled: spec.strategy: canary needs spec.canary.enabled: true",
        ),
        (
            "canary nodes and selector",
            vec![(
                "clusters/demo/cluster.yaml",
                cluster_with("  canary: {enabled: true, nodes: [w-1], selector: {pool: a}}\n"),
            )],
            "spec.canary.selector: spec.canary.nodes and spec.canary.selector both pick canary nodes",
        ),
    ];
    for (name, files, want) in cases {
        let mut all: Vec<(&str, String)> =
            vec![("clusters/demo/cluster.yaml", VALID_CLUSTER.into())];
        for (p, t) in files {
            all.retain(|(q, _)| *q != p);
            all.push((p, t));
        }
        let t = tree(
            &all.iter()
                .map(|(p, t)| (*p, t.as_str()))
                .collect::<Vec<_>>(),
        );
        let err = match cupcake_reconciler::load::cluster(&t, "demo") {
            Ok(_) => panic!("{name}: loaded, but should fail with {want:?}"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(want), "{name}:\n  got:  {err}\n  want: {want}");
    }
}

#[test]
fn canary_strategy_without_a_canary_section_loads() {
    let t = tree(&[(
        "clusters/demo/cluster.yaml",
        &format!("{VALID_CLUSTER}  strategy: canary\n"),
    )]);
    cupcake_reconciler::load::cluster(&t, "demo").unwrap();
}

#[test]
fn ignored_and_known_files_load() {
    let with_separators = format!("---\n{VALID_CLUSTER}---\n# end\n---\n");
    let t = tree(&[
        ("clusters/demo/cluster.yaml", with_separators.as_str()),
        ("clusters/demo/schedule.yaml", SCHEDULE),
        ("clusters/demo/snapshot.json", "{}"),
        ("clusters/demo/README.md", "# demo\n"),
        ("clusters/demo/notes/old.yaml", "a: 1\n"),
        (
            ".cupcakeignore",
            "# docs\nclusters/*/README.md\nclusters/demo/notes/*.yaml\n",
        ),
        (
            "README.md",
            "top-level files outside clusters/ are not CUPCAKE's business\n",
        ),
    ]);
    let f = cupcake_reconciler::load::cluster(&t, "demo").unwrap();
    assert!(f.clusters["demo"].schedule.is_some());
    // Without the ignore list, the README is refused.
    let t = tree(&[
        ("clusters/demo/cluster.yaml", VALID_CLUSTER),
        ("clusters/demo/README.md", "# demo\n"),
    ]);
    let err = cupcake_reconciler::load::cluster(&t, "demo")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("README.md") && err.contains(".cupcakeignore"),
        "{err}"
    );
}
