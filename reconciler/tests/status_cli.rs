//! `cupcake status` on a real Git repository: the age of each cluster's last report
//! is the commit that last changed its status file, not the branch tip.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::Command;

fn git(dir: &Path, date: &str, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=cupcake[bot]",
            "-c",
            "user.email=bot@example.com",
        ])
        .args(args)
        .env("GIT_COMMITTER_DATE", date)
        .env("GIT_AUTHOR_DATE", date)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn write(dir: &Path, rel: &str, text: &str) {
    let f = dir.join(rel);
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(f, text).unwrap();
}

#[test]
fn each_cluster_reports_the_age_of_the_commit_that_last_changed_its_file() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    git(
        d,
        "2020-01-01T00:00:00Z",
        &["init", "-q", "-b", "cupcake/status"],
    );
    write(d, "status/demo.yaml", "cluster: demo\ndesired: 1.34.2\n");
    write(d, "status/other.yaml", "cluster: other\ndesired: 1.33.4\n");
    git(d, "2020-01-01T00:00:00Z", &["add", "."]);
    git(d, "2020-01-01T00:00:00Z", &["commit", "-q", "-m", "both"]);
    // Only `other` changes later; `demo`'s report stays the first commit.
    write(d, "status/other.yaml", "cluster: other\ndesired: 1.34.2\n");
    git(d, "2020-01-02T00:00:00Z", &["commit", "-q", "-am", "other"]);
    let other_commit = git(d, "2020-01-02T00:00:00Z", &["rev-parse", "HEAD"]);
    let demo_commit = git(d, "2020-01-02T00:00:00Z", &["rev-parse", "HEAD~1"]);

    let run = |o: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_cupcake"))
            .args(["status", d.to_str().unwrap(), "-o", o])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    let by = |c: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|r| r["cluster"] == c)
            .unwrap()
            .clone()
    };
    let (demo, other) = (by("demo"), by("other"));
    assert_eq!(demo["lastReport"]["commit"], demo_commit.as_str());
    assert_eq!(demo["lastReport"]["time"], "2020-01-01T00:00:00Z");
    assert_eq!(other["lastReport"]["commit"], other_commit.as_str());
    let (a, b) = (
        demo["lastReportAgeSeconds"].as_i64().unwrap(),
        other["lastReportAgeSeconds"].as_i64().unwrap(),
    );
    assert_eq!(a - b, 86_400, "demo's report is a day older than other's");
    assert_eq!(
        demo["desired"], "1.34.2",
        "the status file's own keys are kept"
    );

    let table = run("text");
    let header = table.lines().next().unwrap();
    assert!(header.contains("REPORTED"), "{table}");
    let demo_row = table.lines().find(|l| l.starts_with("demo ")).unwrap();
    assert!(
        demo_row.contains(&format!("{}d", a / 86_400)) && demo_row.contains(" ago"),
        "{demo_row}"
    );
}
