//! `cupcake` CLI tests on the example fleet: output contracts and exit codes.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{copy_dir, git, repo};

fn cupcake(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cupcake"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

/// Inside the demo cluster's Saturday window (03:30 in Amsterdam).
const IN_WINDOW: &str = "2026-11-28T02:30:00Z";

/// A copy of the example fleet with `edit` applied to demo's cluster.yaml.
fn fleet_with(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo().join("examples/fleet"), tmp.path());
    let f = tmp.path().join("clusters/demo/cluster.yaml");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, edit(text)).unwrap();
    tmp
}

#[test]
fn json_output_follows_the_contract() {
    let out = cupcake(&[
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["cluster"], "demo");
    assert_eq!(j["target"], "1.34.2");
    assert_eq!(j["upToDate"], false);
    assert!(
        j.get("revision").is_some(),
        "revision key present (null outside git)"
    );
    assert_eq!(j["current"]["controlPlane"], "1.33.4");
    assert_eq!(j["current"]["apiservers"]["cp-1"], "1.33.4");
    assert_eq!(j["current"]["kubelets"]["1.33.4"], 12);
    assert_eq!(
        j["plan"]["hops"],
        serde_json::json!([{"from": "1.33.4", "to": "1.34.2"}])
    );
    let kinds: Vec<&str> = j["plan"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["backup", "control-plane", "canary", "workers"]);
    assert_eq!(
        j["plan"]["stages"][1]["batches"],
        serde_json::json!([["cp-1"], ["cp-2"], ["cp-3"]])
    );
    assert_eq!(
        j["plan"]["stages"][2]["batches"],
        serde_json::json!([["worker-1"]])
    );
    assert!(j["plan"]["estimate"]["seconds"].as_u64().unwrap() > 0);
    assert_eq!(j["decision"]["verdict"], "allow");
    assert!(j["decision"]["deferUntil"].is_null());
    assert!(j["decision"]["findings"].is_array());
    let du = &j["directUpdate"];
    assert_eq!(du["kind"], "DirectUpdate");
    assert_eq!(du["apiVersion"], "cupcake.ricardomolendijk.com/v1");
    assert_eq!(du["spec"]["targetVersion"], "1.34.2");
    assert_eq!(du["spec"]["upgradePath"], serde_json::json!(["1.34.2"]));
    assert_eq!(
        du["metadata"]["labels"]["cupcake.ricardomolendijk.com/cluster"],
        "demo"
    );
    // Workers never share a batch with more pods of a PDB than it allows (web allows 1: worker-2..4).
    let workers = &j["plan"]["stages"][3]["batches"];
    for b in workers.as_array().unwrap() {
        let names: Vec<&str> = b
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        let web = names
            .iter()
            .filter(|n| ["worker-2", "worker-3", "worker-4"].contains(n))
            .count();
        assert!(web <= 1, "batch {names:?} drains two web pods");
    }
}

#[test]
fn rendering_is_deterministic() {
    let a = cupcake(&[
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "yaml",
    ]);
    let b = cupcake(&[
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "yaml",
    ]);
    assert_eq!(a.stdout, b.stdout);
    let du: serde_json::Value = yaml_serde::from_slice(&a.stdout).unwrap();
    assert_eq!(du["kind"], "DirectUpdate");
    let name = du["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("demo-1-34-2-") && name.len() == "demo-1-34-2-".len() + 8,
        "{name}"
    );
}

#[test]
fn text_and_markdown_lead_with_the_verdict() {
    let out = cupcake(&[
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("Cluster demo: 1.33.4 → 1.34.2\n"),
        "{text}"
    );
    assert!(text.contains("Verdict: ALLOWED"), "{text}");
    assert!(
        text.contains("control-plane") && text.contains("[cp-1] [cp-2] [cp-3]"),
        "{text}"
    );
    let out = cupcake(&[
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "markdown",
    ]);
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(
        md.starts_with("### ✅ CUPCAKE plan for `demo`: **ALLOWED**"),
        "{md}"
    );
    assert!(md.contains("| # | stage | version | nodes |"), "{md}");
}

#[test]
fn denied_plans_exit_2_without_a_direct_update() {
    let fleet = fleet_with(|t| t.replace("kubernetesVersion: 1.34.2", "kubernetesVersion: 1.32.9"));
    let p = fleet.path().to_str().unwrap();
    let out = cupcake(&[
        "plan",
        p,
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["decision"]["verdict"], "deny");
    assert!(j["directUpdate"].is_null());
    let rules: Vec<&str> = j["decision"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.iter().any(|r| r.contains("downgrade")), "{rules:?}");
    // -o yaml prints nothing on stdout and says why on stderr.
    let out = cupcake(&[
        "plan",
        p,
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("denied"));
}

#[test]
fn forcing_a_forceable_deny_allows_the_plan() {
    let fleet = fleet_with(|t| {
        t.replace("kubernetesVersion: 1.34.2", "kubernetesVersion: 1.33.0")
            .replace("force: []", "force: [planner.patch-downgrade]")
    });
    let out = cupcake(&[
        "plan",
        fleet.path().to_str().unwrap(),
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "json",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = j["decision"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "planner.patch-downgrade")
        .cloned()
        .unwrap();
    assert_eq!(f["forced"], true);
    assert_ne!(j["decision"]["verdict"], "deny");
}

#[test]
fn up_to_date_cluster_exits_0_without_a_direct_update() {
    let fleet =
        fleet_with(|t| t.replace("kubernetesVersion: 1.34.2", "kubernetesVersion: v1.33.4"));
    let out = cupcake(&[
        "plan",
        fleet.path().to_str().unwrap(),
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["upToDate"], true);
    assert!(j["directUpdate"].is_null());
    assert_eq!(j["plan"]["stages"], serde_json::json!([]));
}

#[test]
fn errors_exit_1_and_name_the_problem() {
    let fleet = fleet_with(|t| t.replace("strategy: rolling", "strategy: sideways"));
    let out = cupcake(&["plan", fleet.path().to_str().unwrap(), "--cluster", "demo"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("clusters/demo/cluster.yaml:12:3:")
            && err.contains("spec.strategy: unknown variant `sideways`"),
        "{err}"
    );
    assert!(out.stdout.is_empty());

    let out = cupcake(&[
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--snapshot",
        "Cargo.toml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Cargo.toml"));

    let out = cupcake(&["plan", "examples/fleet", "--cluster", "staging"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no snapshot at"));
}

/// Provenance from the enclosing Git repository: the commit, the path, the remote
/// without its token, and `dirty` when the working tree differs from the commit.
#[test]
fn provenance_records_the_commit_never_a_token_and_marks_dirty_trees() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("ops/fleet");
    copy_dir(&repo().join("examples/fleet"), &fleet);
    git(tmp.path(), &["init", "-q", "-b", "main"]);
    git(tmp.path(), &["add", "."]);
    git(tmp.path(), &["commit", "-qm", "fleet"]);
    git(
        tmp.path(),
        &[
            "remote",
            "add",
            "origin",
            "https://x-access-token:ghp_SECRET123@github.com/acme/fleet.git",
        ],
    );
    let plan = |args: &[&str]| -> (serde_json::Value, String) {
        let mut a = vec![
            "plan",
            fleet.to_str().unwrap(),
            "--cluster",
            "demo",
            "--now",
            IN_WINDOW,
        ];
        a.extend_from_slice(args);
        let out = cupcake(&a);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (serde_json::from_str(&text).unwrap_or_default(), text)
    };
    let (j, text) = plan(&["-o", "json"]);
    assert!(
        !text.contains("ghp_SECRET123"),
        "token leaked into the output"
    );
    let src = &j["directUpdate"]["spec"]["source"];
    assert_eq!(src["repository"], "https://github.com/acme/fleet.git");
    assert_eq!(src["path"], "ops/fleet/clusters/demo/cluster.yaml");
    assert_eq!(src["revision"].as_str().unwrap().len(), 40);
    assert!(src.get("dirty").is_none(), "clean tree: {src}");
    let (_, yaml) = plan(&["-o", "yaml"]);
    assert!(!yaml.contains("ghp_SECRET123") && yaml.contains("github.com/acme/fleet.git"));
    // An uncommitted edit under the fleet: the provenance says so.
    std::fs::write(
        fleet.join("clusters/demo/cluster.yaml"),
        std::fs::read_to_string(fleet.join("clusters/demo/cluster.yaml")).unwrap() + "# edited\n",
    )
    .unwrap();
    let (j, _) = plan(&["-o", "json"]);
    assert_eq!(j["directUpdate"]["spec"]["source"]["dirty"], true);
}

/// `-o yaml` never prints a DirectUpdate that is not allowed now: piping it into
/// `kubectl apply` must not start an upgrade outside the window.
#[test]
fn yaml_output_only_when_allowed() {
    // Friday 10:00 UTC: outside the demo cluster's windows → deferred.
    let out = cupcake(&[
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--now",
        "2026-11-27T10:00:00Z",
        "-o",
        "yaml",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("deferred until"), "{err}");
    let out = cupcake(&[
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--now",
        IN_WINDOW,
        "-o",
        "yaml",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("kind: DirectUpdate"));
}

/// Usage errors exit 1: exit 2 means "denied" to CI scripts.
#[test]
fn usage_errors_exit_1() {
    for args in [
        vec!["plan"],
        vec!["plan", "examples/fleet", "--cluster", "demo", "--bogus"],
        vec!["plan", "examples/fleet", "--cluster", "demo", "-o", "xml"],
        vec!["frobnicate"],
    ] {
        let out = cupcake(&args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = cupcake(&["completion", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("show-input"),
            "{shell}"
        );
    }
    assert_eq!(cupcake(&["completion", "tcsh"]).status.code(), Some(1));
    let out = cupcake(&["version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cupcake "));
    let out = cupcake(&["plan", "/nonexistent/fleet", "--cluster", "demo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("fleet directory /nonexistent/fleet does not exist")
    );
}

fn plan_in(fleet: &Path, now: &str, output: &[&str]) -> (Option<i32>, String) {
    let mut a = vec![
        "plan",
        fleet.to_str().unwrap(),
        "--cluster",
        "demo",
        "--now",
        now,
    ];
    a.extend_from_slice(output);
    let out = cupcake(&a);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// The output says why: forceable denies are marked, a DirectUpdate not allowed now is
/// what "would" be created, every batch is listed in the PR comment.
#[test]
fn output_explains_the_decision() {
    let fleet = fleet_with(|t| t.replace("kubernetesVersion: 1.34.2", "kubernetesVersion: 1.33.2"));
    let (code, text) = plan_in(fleet.path(), IN_WINDOW, &[]);
    assert_eq!(code, Some(2));
    assert!(
        text.contains("planner.patch-downgrade [forceable]"),
        "{text}"
    );
    let (_, md) = plan_in(fleet.path(), IN_WINDOW, &["-o", "markdown"]);
    assert!(
        md.contains("DENY [forceable] | `planner.patch-downgrade`"),
        "{md}"
    );
    // Deferred: no DirectUpdate is created, the one that would be is named.
    let (code, text) = plan_in(&repo().join("examples/fleet"), "2026-11-27T10:00:00Z", &[]);
    assert_eq!(code, Some(3));
    assert!(
        text.contains("DirectUpdate: none now (would create demo-1-34-2-"),
        "{text}"
    );
    // The window, in its own time zone and UTC.
    assert!(
        text.contains("Window: closed; the next (windows[0]) opens 2026-11-28 02:00 Europe/Amsterdam (01:00 UTC)"),
        "{text}"
    );
    // Allowed: it is named; the markdown lists every batch, folded.
    let (_, text) = plan_in(&repo().join("examples/fleet"), IN_WINDOW, &[]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("DirectUpdate: demo-1-34-2-")),
        "{text}"
    );
    assert!(
        text.contains("Window: open now (windows[0]), closes 2026-11-28 06:00 Europe/Amsterdam (05:00 UTC), in 2h30m"),
        "{text}"
    );
    let (_, md) = plan_in(
        &repo().join("examples/fleet"),
        IN_WINDOW,
        &["-o", "markdown"],
    );
    assert!(
        md.contains("<details><summary>Every batch</summary>"),
        "{md}"
    );
    for w in ["worker-2", "worker-3", "worker-7"] {
        assert!(md.contains(w), "{w} missing from {md}");
    }
    // Which limit shaped each batch: per batch in markdown, summed per stage in text.
    for line in [
        "- stage 3 (canary 1.34.2), batch 1: worker-1 — limited by canary",
        "- stage 4 (workers 1.34.2), batch 1: worker-2, worker-6 — limited by batch size 2 (maxUnavailable: 25%)",
        "- stage 4 (workers 1.34.2), batch 4: worker-7 — limited by PDB data/redis (maxUnavailable 34%, allows 1 now)",
        "- stage 4 (workers 1.34.2), batch 5: worker-9 — limited by remaining nodes",
    ] {
        assert!(md.lines().any(|l| l == line), "{line:?} missing from {md}");
    }
    assert!(
        text.lines().any(|l| l.trim()
            == "batch size limited by: batch size 2 (maxUnavailable: 25%) (×3), PDB data/redis (maxUnavailable 34%, allows 1 now) (×1), remaining nodes (×1)"),
        "{text}"
    );
}

/// `--show-input` prints the policy input; `policy eval` of it reaches the same verdict.
#[test]
fn show_input_feeds_policy_eval() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.json");
    for (now, verdict) in [(IN_WINDOW, "allow"), ("2026-11-27T10:00:00Z", "defer")] {
        let out = cupcake(&[
            "plan",
            "examples/fleet",
            "--cluster",
            "demo",
            "--now",
            now,
            "--show-input",
        ]);
        std::fs::write(&input, &out.stdout).unwrap();
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(j["now"], now);
        assert_eq!(j["cluster"]["name"], "demo");
        let out = cupcake(&[
            "policy",
            "eval",
            "--input",
            input.to_str().unwrap(),
            "--fleet",
            "examples/fleet",
            "-o",
            "json",
        ]);
        let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(d["verdict"], verdict, "{now}: {d}");
    }
}

/// The rendered name is a function of the whole spec: any change to what would run is a
/// new DirectUpdate; a new commit with the same desired state is the same one.
#[test]
fn the_rendered_name_changes_with_anything_in_its_spec() {
    let name = |fleet: &Path| -> String {
        let (_, y) = plan_in(fleet, IN_WINDOW, &["-o", "yaml"]);
        let du: serde_json::Value = yaml_serde::from_str(&y).unwrap();
        du["metadata"]["name"].as_str().unwrap().to_string()
    };
    let base = name(&repo().join("examples/fleet"));
    for edit in [
        |t: String| t.replace("timeout: 10m", "timeout: 20m"),
        |t: String| {
            t.replace(
                "components: [kubeadm, kubelet, kubectl]",
                "components: [kubeadm, kubelet]",
            )
        },
        |t: String| t.replace("preflightChecks: true", "preflightChecks: false"),
    ] {
        let f = fleet_with(edit);
        assert_ne!(
            name(f.path()),
            base,
            "a changed spec must render a new name"
        );
    }
    // A copy (different path, same spec): same name.
    let f = fleet_with(|t| t);
    assert_eq!(name(f.path()), base);
}

/// Errors say what is wrong once, name the file or flag, and show an example.
#[test]
fn errors_are_clear_and_not_repeated() {
    let out = cupcake(&[
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--snapshot",
        "/nonexistent/snap.yaml",
    ]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("/nonexistent/snap.yaml"), "{err}");
    assert_eq!(
        err.matches("No such file or directory").count(),
        1,
        "repeated cause: {err}"
    );
    let out = cupcake(&[
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--now",
        "yesterday",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("like 2026-11-28T02:30:00Z"));
    let empty = tempfile::tempdir().unwrap();
    let out = cupcake(&["policy", "test", empty.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no tests found in"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cupcake(&["policy", "test", "--run", "no-such-test"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("matches --run"));
}

/// `cupcake run` takes the GitOps flags of the design and refuses every combination it
/// would not act on, before touching any cluster or remote; a token in --repo is never echoed.
#[test]
fn run_refuses_gitops_flags_it_would_not_act_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty-token");
    std::fs::write(&empty, "\n").expect("write");
    let token = dir.path().join("token");
    std::fs::write(&token, "ghp_FILETOKEN\n").expect("write");
    let empty = empty.to_str().expect("utf-8");
    let token = token.to_str().expect("utf-8");
    let secret_repo = "https://x-access-token:ghp_SECRET@github.com/o/fleet.git";
    let cases: &[(&[&str], &str)] = &[
        (&["--branch", "main"], "--branch need --repo"),
        (
            &["--webhook-secret-file", "/nonexistent"],
            "--webhook-secret-file need --repo",
        ),
        (
            &["--repo", secret_repo, "--cluster", "demo", "--rollout-only"],
            "--rollout-only runs no GitOps loop",
        ),
        (&["--repo", secret_repo], "needs --cluster NAME"),
        (
            &[
                "--repo",
                "/srv/fleet",
                "--cluster",
                "demo",
                "--status-branch",
                "main",
            ],
            "status must never land where desired state is read",
        ),
        (
            &[
                "--repo",
                "/srv/fleet",
                "--cluster",
                "demo",
                "--branch",
                "prod",
                "--status-branch",
                "prod",
            ],
            "--status-branch prod is the followed --branch",
        ),
        (
            &[
                "--repo",
                "/srv/fleet",
                "--cluster",
                "demo",
                "--poll",
                "500ms",
            ],
            "--poll 500ms: must be at least 1s",
        ),
        (
            &[
                "--repo",
                "/srv/fleet",
                "--cluster",
                "demo",
                "--poll",
                "soon",
            ],
            "--poll soon:",
        ),
        (
            &[
                "--repo",
                "ssh://git@h/o/r.git",
                "--cluster",
                "demo",
                "--git-token-file",
                token,
            ],
            "a token authenticates http(s) remotes",
        ),
        (
            &[
                "--repo",
                secret_repo,
                "--cluster",
                "demo",
                "--git-ssh-key-file",
                token,
            ],
            "a key authenticates ssh remotes",
        ),
        (
            &[
                "--repo",
                secret_repo,
                "--cluster",
                "demo",
                "--git-token-file",
                token,
                "--git-ssh-key-file",
                token,
            ],
            "give the one that fits",
        ),
        (
            &[
                "--repo",
                secret_repo,
                "--cluster",
                "demo",
                "--git-token-file",
                empty,
            ],
            "the file is empty",
        ),
        (
            &[
                "--repo",
                secret_repo,
                "--cluster",
                "demo",
                "--git-known-hosts-file",
                token,
            ],
            "host keys are checked for ssh remotes",
        ),
        (
            &[
                "--repo",
                "ssh://git@h/o/r.git",
                "--cluster",
                "demo",
                "--git-known-hosts-file",
                empty,
            ],
            "no host keys",
        ),
        (
            &[
                "--repo",
                "/srv/fleet",
                "--cluster",
                "demo",
                "--github-repo",
                "acme/fleet",
            ],
            "--github-repo acme/fleet needs --github-token-file",
        ),
        (
            &[
                "--repo",
                "/srv/fleet",
                "--cluster",
                "demo",
                "--github-api",
                "http://127.0.0.1:1",
            ],
            "need --github-repo OWNER/NAME",
        ),
        (
            &[
                "--repo",
                "/srv/fleet",
                "--cluster",
                "demo",
                "--github-repo",
                "acme",
                "--github-token-file",
                token,
            ],
            "expected OWNER/NAME",
        ),
        (
            &[
                "--repo",
                "/srv/fleet",
                "--cluster",
                "demo",
                "--github-repo",
                "acme/fleet",
                "--github-app-id",
                "5",
            ],
            "a GitHub App needs all of --github-app-id, --github-app-key-file and --github-installation-id",
        ),
        (
            &[
                "--repo",
                "/srv/fleet",
                "--cluster",
                "demo",
                "--github-repo",
                "acme/fleet",
                "--github-token-file",
                token,
                "--github-app-id",
                "5",
            ],
            "give a token or a GitHub App, not both",
        ),
        (
            &[
                "--repo",
                "/srv/fleet",
                "--cluster",
                "demo",
                "--github-repo",
                "acme/fleet",
                "--github-app-id",
                "5",
                "--github-installation-id",
                "9",
                "--github-app-key-file",
                token,
            ],
            "the GitHub App private key",
        ),
        (
            &[
                "--repo",
                "/srv/fleet",
                "--cluster",
                "demo",
                "--webhook-secret-file",
                "/nonexistent/secret",
            ],
            "--webhook-secret-file /nonexistent/secret:",
        ),
    ];
    for (flags, want) in cases {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        let out = cupcake(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {err}");
        assert!(err.contains(want), "{flags:?}: want {want:?}, got {err}");
        assert!(!err.contains("ghp_SECRET"), "token echoed: {err}");
        assert!(
            !err.contains("ghp_FILETOKEN"),
            "token file content echoed: {err}"
        );
    }
    let help = String::from_utf8_lossy(&cupcake(&["run", "--help"]).stdout).to_string();
    for flag in [
        "--kubeconfig",
        "--context",
        "--lease-namespace",
        "--identity",
        "--listen",
        "--rollout-only",
        "--repo",
        "--branch",
        "--cluster",
        "--fleet-path",
        "--poll",
        "--git-token-file",
        "--git-ssh-key-file",
        "--webhook-secret-file",
        "--status-branch",
        "--github-repo",
        "--github-token-file",
        "--github-api",
    ] {
        assert!(help.contains(flag), "cupcake run --help lacks {flag}");
    }
}

/// Installed as `kubectl-cupcake`, the binary is a kubectl plugin: `kubectl cupcake plan …`
/// works and its help says so.
#[test]
fn answers_as_a_kubectl_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("kubectl-cupcake");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_cupcake"), &plugin).unwrap();
    let help = Command::new(&plugin).arg("--help").output().unwrap();
    assert!(
        String::from_utf8_lossy(&help.stdout).contains("Usage: kubectl cupcake"),
        "{}",
        String::from_utf8_lossy(&help.stdout)
    );
    let out = Command::new(&plugin)
        .args([
            "plan",
            "examples/fleet",
            "--cluster",
            "demo",
            "--now",
            IN_WINDOW,
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ALLOWED"));
    // Through kubectl itself when it is on PATH (the harness's build).
    if let Ok(kubectl) = which("kubectl") {
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new(kubectl)
            .args(["cupcake", "version"])
            .env("PATH", path)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("cupcake {}", env!("CARGO_PKG_VERSION"))
        );
    }
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// A snapshot that cannot be taken (no API server answers) exits 1 naming the
/// server, and leaves the file it would have replaced as it was, with no half-written
/// list beside it.
#[test]
fn a_failed_snapshot_leaves_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n\
             users: [{{name: u, user: {{}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let file = dir.path().join("snap.yaml");
    std::fs::write(&file, "the old snapshot\n").unwrap();
    for format in ["yaml", "json"] {
        let out = cupcake(&[
            "snapshot",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "-o",
            format,
            "-f",
            file.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{format}: {stderr}");
        assert!(
            stderr.contains("listing nodes") && stderr.contains(&format!("127.0.0.1:{port}")),
            "{format}: the error names what failed and where: {stderr}"
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "the old snapshot\n"
        );
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names.len(),
            2,
            "{format}: nothing left beside the file: {names:?}"
        );
    }
}
