//! `.github/actions/cupcake-plan/plan-changed.sh`, the heart of the PR plan action,
//! run for real: on a Git fleet repo with a base and a head commit, with the real
//! `cupcake` binary (comments off: posting is `--github-comment`, tested in
//! tests/github.rs against a mocked GitHub API).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{copy_dir, git, repo};

/// A fleet repo (the example fleet under `fleet/`) with a base commit; returns it and the base.
fn fleet_repo() -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("examples/fleet"), &tmp.path().join("fleet"));
    git(tmp.path(), &["init", "-q", "-b", "main"]);
    git(tmp.path(), &["add", "."]);
    git(tmp.path(), &["commit", "-q", "-m", "base"]);
    let base = git(tmp.path(), &["rev-parse", "HEAD"]);
    (tmp, base)
}

fn edit_and_commit(dir: &Path, rel: &str, edit: impl Fn(String) -> String) -> String {
    let f = dir.join(rel);
    std::fs::write(&f, edit(std::fs::read_to_string(&f).unwrap())).unwrap();
    git(dir, &["commit", "-q", "-am", "change"]);
    git(dir, &["rev-parse", "HEAD"])
}

fn plan_changed(
    dir: &Path,
    base: &str,
    head: &str,
    env: &[(&str, &str)],
) -> (Output, String, String) {
    let summary = dir.join("summary.md");
    let output = dir.join("output.txt");
    let out = Command::new(repo().join(".github/actions/cupcake-plan/plan-changed.sh"))
        .args(["fleet", base, head])
        .env("CUPCAKE", env!("CARGO_BIN_EXE_cupcake"))
        .env("CUPCAKE_COMMENT", "0")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("GITHUB_OUTPUT", &output)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap();
    let s = std::fs::read_to_string(&summary).unwrap_or_default();
    let o = std::fs::read_to_string(&output).unwrap_or_default();
    (out, s, o)
}

/// A PR that bumps one cluster plans that cluster only; its markdown (verdict and
/// Gantt forecast) lands in the job summary.
#[test]
fn only_the_changed_cluster_is_planned() {
    let (tmp, base) = fleet_repo();
    let head = edit_and_commit(tmp.path(), "fleet/clusters/demo/cluster.yaml", |t| {
        t.replace("maxUnavailable: 25%", "maxUnavailable: 50%")
    });
    let (out, summary, output) = plan_changed(tmp.path(), &base, &head, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(output.trim(), "clusters=demo");
    assert!(summary.contains("CUPCAKE plan for `demo`"), "{summary}");
    assert!(summary.contains("```mermaid\ngantt"), "{summary}");
    assert!(!summary.contains("`staging`"), "{summary}");
}

/// versions.yaml changes every plan: every cluster is planned. The staging cluster
/// has no snapshot, so its plan fails: the action fails, naming it, unless told never to.
#[test]
fn a_catalogue_change_plans_every_cluster_and_a_failed_plan_fails_the_job() {
    let (tmp, base) = fleet_repo();
    let head = edit_and_commit(tmp.path(), "fleet/versions.yaml", |t| {
        format!("{t}\n# touched\n")
    });
    let (out, summary, output) = plan_changed(tmp.path(), &base, &head, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(output.trim(), "clusters=demo staging");
    assert!(
        stdout.contains("::error::staging: cupcake plan failed (exit 1)"),
        "{stdout}"
    );
    assert!(summary.contains("CUPCAKE plan for `demo`"), "{summary}");
    let (out, _, _) = plan_changed(tmp.path(), &base, &head, &[("CUPCAKE_FAIL_ON", "never")]);
    assert!(out.status.success());
}

/// Nothing under clusters/ changed: nothing is planned, the job passes.
#[test]
fn a_pr_that_touches_no_cluster_plans_nothing() {
    let (tmp, base) = fleet_repo();
    std::fs::write(tmp.path().join("README.md"), "docs\n").unwrap();
    git(tmp.path(), &["add", "README.md"]);
    git(tmp.path(), &["commit", "-q", "-m", "docs"]);
    let head = git(tmp.path(), &["rev-parse", "HEAD"]);
    let (out, summary, output) = plan_changed(tmp.path(), &base, &head, &[]);
    assert!(out.status.success());
    assert_eq!(output.trim(), "clusters=");
    assert!(summary.is_empty());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no cluster changed"));
}
