//! The GitOps loop's Git side on real repositories (bare repos over `file://`,
//! written by the `git` command line like a user would): fetch, read a commit
//! as a fleet, follow a rewritten branch, commit and push status with a rebase
//! when somebody else pushed in between, and never show a credential; the same
//! over git:// from a real `git daemon`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cupcake_reconciler::gitops::git::{Auth, Mirror, Pushed};
use cupcake_reconciler::pipeline;

mod common;
use common::git;

/// A bare remote and a working clone pushing to it.
struct Remote {
    _dir: tempfile::TempDir,
    bare: std::path::PathBuf,
    work: std::path::PathBuf,
}

impl Remote {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("fleet.git");
        let work = dir.path().join("work");
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
        );
        git(
            dir.path(),
            &["init", "-q", "-b", "main", work.to_str().unwrap()],
        );
        git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        Self {
            _dir: dir,
            bare,
            work,
        }
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.work.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn push(&self, msg: &str, branch: &str, force: bool) -> String {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "--allow-empty", "-m", msg]);
        let refspec = format!("{}HEAD:refs/heads/{branch}", if force { "+" } else { "" });
        git(&self.work, &["push", "-q", "origin", &refspec]);
        git(&self.work, &["rev-parse", "HEAD"])
    }

    fn mirror(&self, dir: &Path) -> Mirror {
        Mirror::open(
            dir,
            self.bare.to_str().unwrap(),
            Auth::None,
            Duration::from_secs(10),
        )
        .unwrap()
    }

    fn show(&self, branch: &str, rel: &str) -> Option<String> {
        let out = Command::new("git")
            .args([
                "--git-dir",
                self.bare.to_str().unwrap(),
                "show",
                &format!("{branch}:{rel}"),
            ])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }
}

const CLUSTER: &str = "apiVersion: cupcake.ricardomolendijk.com/v1
kind: ClusterVersion
metadata:
  name: demo
spec:
  kubernetesVersion: 1.34.2
";

#[test]
fn a_commit_reads_as_the_fleet_at_that_commit() {
    let r = Remote::new();
    r.write("fleets/prod/clusters/demo/cluster.yaml", CLUSTER);
    r.write("README.md", "outside the fleet root\n");
    let rev = r.push("first", "main", false);
    let cache = tempfile::tempdir().unwrap();
    let m = r.mirror(cache.path());
    let tip = m.fetch("main").unwrap();
    assert_eq!(tip.to_string(), rev);
    let tree = m.tree(tip, "./fleets/prod/").unwrap();
    assert_eq!(tree.revision.as_deref(), Some(rev.as_str()));
    assert_eq!(tree.path, "fleets/prod");
    assert!(!tree.dirty);
    assert_eq!(
        tree.files.keys().collect::<Vec<_>>(),
        ["clusters/demo/cluster.yaml"],
        "only the fleet root's files"
    );
    // Provenance names the file inside the repository.
    let src = tree.source_ref("clusters/demo/cluster.yaml");
    assert_eq!(
        src.path.as_deref(),
        Some("fleets/prod/clusters/demo/cluster.yaml")
    );
    // A fleet path the commit does not have is an error naming it.
    let err = m.tree(tip, "fleets/staging").unwrap_err().to_string();
    assert!(
        err.contains("fleet path fleets/staging does not exist"),
        "{err}"
    );
    // A branch the remote does not have is an error naming it.
    let err = m.fetch("release").unwrap_err().to_string();
    assert!(err.contains("branch release does not exist"), "{err}");
}

#[test]
fn an_invalid_file_at_a_commit_is_named_with_its_line() {
    let r = Remote::new();
    r.write(
        "clusters/demo/cluster.yaml",
        &CLUSTER.replace(
            "  kubernetesVersion: 1.34.2\n",
            "  kubernetesVersion: 1.34.2\n  strategy: sideways\n",
        ),
    );
    let tip = r.push("bad strategy", "main", false);
    let cache = tempfile::tempdir().unwrap();
    let m = r.mirror(cache.path());
    let oid = m.fetch("main").unwrap();
    assert_eq!(oid.to_string(), tip);
    let tree = m.tree(oid, ".").unwrap();
    let err = format!("{:#}", pipeline::load(&tree, "demo").unwrap_err());
    assert!(err.contains("clusters/demo/cluster.yaml:7:3"), "{err}");
    assert!(err.contains("strategy"), "{err}");
}

#[test]
fn a_rewritten_branch_is_followed_and_detected() {
    let r = Remote::new();
    r.write("clusters/demo/cluster.yaml", CLUSTER);
    let first = r.push("first", "main", false);
    let cache = tempfile::tempdir().unwrap();
    let m = r.mirror(cache.path());
    let a = m.fetch("main").unwrap();
    r.write("x", "1");
    r.push("second", "main", false);
    let b = m.fetch("main").unwrap();
    assert!(m.descends(b, a), "a normal push descends");
    // Rewrite history: a new root commit, force-pushed.
    git(&r.work, &["checkout", "-q", "--orphan", "rewrite"]);
    r.write("y", "2");
    let c_rev = r.push("rewritten", "main", true);
    let c = m.fetch("main").unwrap();
    assert_eq!(c.to_string(), c_rev);
    assert_ne!(c.to_string(), first);
    assert!(!m.descends(c, b), "a force push does not descend");
}

#[test]
fn status_commits_are_deterministic_and_survive_a_racing_push() {
    let r = Remote::new();
    r.write("clusters/demo/cluster.yaml", CLUSTER);
    r.push("fleet", "main", false);
    let cache = tempfile::tempdir().unwrap();
    let m = r.mirror(cache.path());
    let files = |text: &str| {
        BTreeMap::from([(
            "status/demo.yaml".to_string(),
            Some(text.as_bytes().to_vec()),
        )])
    };

    // First write creates the branch.
    let p = m
        .commit_and_push(
            "cupcake/status",
            None,
            &files("phase: Pending\n"),
            "status",
            false,
            5,
        )
        .unwrap();
    assert!(matches!(p, Pushed::Committed { retries: 0, .. }), "{p:?}");
    assert_eq!(
        r.show("cupcake/status", "status/demo.yaml").unwrap(),
        "phase: Pending\n"
    );
    let author = Command::new("git")
        .args([
            "--git-dir",
            r.bare.to_str().unwrap(),
            "log",
            "-1",
            "--format=%an <%ae>",
            "cupcake/status",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&author.stdout).trim(),
        "cupcake[bot] <cupcake[bot]@users.noreply.github.com>"
    );

    // The same content again: no commit.
    let p = m
        .commit_and_push(
            "cupcake/status",
            None,
            &files("phase: Pending\n"),
            "status",
            false,
            5,
        )
        .unwrap();
    assert!(matches!(p, Pushed::Unchanged(_)), "{p:?}");

    // Somebody pushes to the status branch between our build and our push: the push is
    // refused as non-fast-forward, rebuilt on their commit, and both changes are kept.
    let other = tempfile::tempdir().unwrap();
    let other_work = other.path().join("w");
    git(
        other.path(),
        &[
            "clone",
            "-q",
            "-b",
            "cupcake/status",
            r.bare.to_str().unwrap(),
            other_work.to_str().unwrap(),
        ],
    );
    let raced = std::cell::Cell::new(false);
    let p = m
        .commit_and_push_observed(
            "cupcake/status",
            None,
            &files("phase: InProgress\n"),
            "status",
            false,
            5,
            &|attempt| {
                if attempt == 0 && !raced.get() {
                    raced.set(true);
                    std::fs::create_dir_all(other_work.join("status")).unwrap();
                    std::fs::write(other_work.join("status/other.yaml"), "cluster: other\n")
                        .unwrap();
                    git(&other_work, &["add", "-A"]);
                    git(&other_work, &["commit", "-q", "-m", "someone else"]);
                    git(
                        &other_work,
                        &["push", "-q", "origin", "HEAD:refs/heads/cupcake/status"],
                    );
                }
            },
        )
        .unwrap();
    assert!(matches!(p, Pushed::Committed { retries: 1, .. }), "{p:?}");
    assert_eq!(
        r.show("cupcake/status", "status/demo.yaml").unwrap(),
        "phase: InProgress\n"
    );
    assert_eq!(
        r.show("cupcake/status", "status/other.yaml").unwrap(),
        "cluster: other\n",
        "their commit is kept"
    );
    let count = Command::new("git")
        .args([
            "--git-dir",
            r.bare.to_str().unwrap(),
            "rev-list",
            "--count",
            "cupcake/status",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&count.stdout).trim(),
        "3",
        "ours, theirs, ours on top"
    );
    // The followed branch is untouched by status writes.
    assert!(r.show("main", "status/demo.yaml").is_none());
}

#[test]
fn credentials_never_reach_an_error() {
    // A closed port: the connection is refused quickly.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://x-access-token:ghp_SECRET123@127.0.0.1:{port}/fleet.git");
    let cache = tempfile::tempdir().unwrap();
    let m = Mirror::open(
        cache.path(),
        &url,
        Auth::Token("ghp_OTHER456".into()),
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(!format!("{m:?}").contains("ghp_"), "{m:?}");
    assert_eq!(m.shown_url(), format!("http://127.0.0.1:{port}/fleet.git"));
    let err = m.fetch("main").unwrap_err().to_string();
    assert!(
        !err.contains("ghp_SECRET123") && !err.contains("ghp_OTHER456"),
        "{err}"
    );
    assert!(
        err.contains(&format!("127.0.0.1:{port}")),
        "names the server: {err}"
    );
}

/// A real `git daemon` serving the bare repository over git:// on a loopback port;
/// killed when dropped.
struct GitDaemon(std::process::Child);

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn git_daemon(base: &Path, push: bool) -> (GitDaemon, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new("git");
    cmd.args([
        "daemon",
        "--export-all",
        "--reuseaddr",
        "--listen=127.0.0.1",
        &format!("--port={port}"),
        &format!("--base-path={}", base.display()),
    ]);
    if push {
        cmd.arg("--enable=receive-pack");
    }
    let child = cmd
        .arg(base)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let daemon = GitDaemon(child);
    // Ready once it accepts connections.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "git daemon did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (daemon, port)
}

#[test]
fn a_git_protocol_remote_is_fetched_and_takes_status_pushes() {
    let r = Remote::new();
    r.write("clusters/demo/cluster.yaml", CLUSTER);
    let rev = r.push("fleet", "main", false);
    let base = r.bare.parent().unwrap();
    let (_daemon, port) = git_daemon(base, true);
    let url = format!("git://127.0.0.1:{port}/fleet.git");
    let cache = tempfile::tempdir().unwrap();
    let m = Mirror::open(cache.path(), &url, Auth::None, Duration::from_secs(10)).unwrap();
    let tip = m.fetch("main").unwrap();
    assert_eq!(tip.to_string(), rev);
    let tree = m.tree(tip, ".").unwrap();
    assert!(tree.files.contains_key("clusters/demo/cluster.yaml"));
    // A later push is seen by the next fetch.
    r.write(
        "clusters/demo/cluster.yaml",
        &CLUSTER.replace("1.34.2", "1.34.3"),
    );
    let rev2 = r.push("bump", "main", false);
    assert_eq!(m.fetch("main").unwrap().to_string(), rev2);
    // The status branch is pushed over the same protocol.
    let files = BTreeMap::from([(
        "status/demo.yaml".to_string(),
        Some(b"phase: Pending\n".to_vec()),
    )]);
    let p = m
        .commit_and_push("cupcake/status", None, &files, "status", false, 5)
        .unwrap();
    assert!(matches!(p, Pushed::Committed { .. }), "{p:?}");
    assert_eq!(
        r.show("cupcake/status", "status/demo.yaml").unwrap(),
        "phase: Pending\n"
    );
}

#[test]
fn a_git_protocol_remote_that_refuses_pushes_is_a_clear_error() {
    let r = Remote::new();
    r.write("clusters/demo/cluster.yaml", CLUSTER);
    r.push("fleet", "main", false);
    let (_daemon, port) = git_daemon(r.bare.parent().unwrap(), false);
    let url = format!("git://127.0.0.1:{port}/fleet.git");
    let cache = tempfile::tempdir().unwrap();
    let m = Mirror::open(cache.path(), &url, Auth::None, Duration::from_secs(10)).unwrap();
    m.fetch("main").unwrap();
    let files = BTreeMap::from([(
        "status/demo.yaml".to_string(),
        Some(b"phase: Pending\n".to_vec()),
    )]);
    let err = m
        .commit_and_push("cupcake/status", None, &files, "status", false, 5)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("pushing to git://127.0.0.1:{port}/fleet.git")),
        "says what failed and where: {err}"
    );
    assert!(r.show("cupcake/status", "status/demo.yaml").is_none());
}
