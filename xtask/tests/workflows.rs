//! The GitHub Actions files in `.github/`: they parse, have what they promise
//! (CI: fmt, clippy, the one test command with the caches; the reusable plan
//! workflow: `workflow_call`, the permissions to comment; the composite action),
//! and every script or local action they name exists. actionlint (built from its Go
//! module by `tests/harness/build-actionlint.sh`) then checks them as GitHub would
//! (expressions, contexts, inputs, shellcheck-free shell). A missing actionlint skips
//! that test, and fails it when `CUPCAKE_REQUIRE_ACTIONLINT=1` (as run-all.sh sets).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every step of every job (or of a composite action).
fn steps(doc: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    if let Some(jobs) = doc["jobs"].as_object() {
        for j in jobs.values() {
            out.extend(j["steps"].as_array().into_iter().flatten());
        }
    }
    out.extend(doc["runs"]["steps"].as_array().into_iter().flatten());
    out
}

fn runs(doc: &Value) -> String {
    steps(doc)
        .iter()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

const FILES: [&str; 3] = [
    ".github/workflows/ci.yml",
    ".github/workflows/plan.yml",
    ".github/actions/cupcake-plan/action.yml",
];

#[test]
fn ci_runs_fmt_clippy_and_the_test_command_with_caches() {
    let ci = load(".github/workflows/ci.yml");
    assert!(ci["on"]["pull_request"].is_null() || ci["on"]["pull_request"].is_object());
    assert!(ci["on"].get("pull_request").is_some() && ci["on"].get("push").is_some());
    let all = runs(&ci);
    for want in [
        "cargo fmt --all -- --check",
        "cargo clippy --workspace --all-targets -- -D warnings",
        "cargo xtask gen --check",
        "tests/run-all.sh",
        "images/${{ matrix.image }}.Dockerfile",
    ] {
        assert!(all.contains(want), "ci.yml runs no {want:?}");
    }
    for image in ci["jobs"]["images"]["strategy"]["matrix"]["image"]
        .as_array()
        .unwrap()
    {
        let f = format!("images/{}.Dockerfile", image.as_str().unwrap());
        assert!(
            repo().join(&f).exists(),
            "ci.yml builds {f}, which does not exist"
        );
    }
    let cache = steps(&ci)
        .into_iter()
        .filter(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/cache@"))
        })
        .map(|s| s["with"]["path"].as_str().unwrap_or(""))
        .collect::<String>();
    for dir in [
        "~/.cache/cupcake-harness",
        "~/.cache/cupcake-target",
        "~/go/pkg/mod",
    ] {
        assert!(cache.contains(dir), "ci.yml does not cache {dir}");
    }
}

#[test]
fn the_plan_workflow_is_reusable_and_may_comment() {
    let plan = load(".github/workflows/plan.yml");
    let call = &plan["on"]["workflow_call"];
    assert!(call.is_object(), "plan.yml: on.workflow_call");
    for input in ["fleet-path", "cupcake-ref", "comment", "fail-on"] {
        assert!(call["inputs"][input].is_object(), "plan.yml: input {input}");
    }
    let perms = &plan["jobs"]["plan"]["permissions"];
    assert_eq!(perms["pull-requests"], "write");
    assert_eq!(perms["issues"], "write", "PR comments are issue comments");
    let checkout = steps(&plan)
        .into_iter()
        .find(|s| s["with"]["fetch-depth"] == 0)
        .expect("a full-history checkout: the diff against the base needs it");
    assert!(
        checkout["uses"]
            .as_str()
            .unwrap()
            .starts_with("actions/checkout@")
    );
    // The local action it uses is this repository's, checked out at .cupcake.
    let local: Vec<&str> = steps(&plan)
        .into_iter()
        .filter_map(|s| s["uses"].as_str())
        .filter(|u| u.starts_with("./"))
        .collect();
    assert_eq!(local, ["./.cupcake/.github/actions/cupcake-plan"]);
    let action = load(".github/actions/cupcake-plan/action.yml");
    assert_eq!(action["runs"]["using"], "composite");
    for (input, _) in plan["jobs"]["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("./")))
        .unwrap()["with"]
        .as_object()
        .unwrap()
    {
        assert!(
            action["inputs"][input].is_object(),
            "plan.yml passes {input}, which the action does not declare"
        );
    }
    let run = runs(&action);
    assert!(run.contains("$GITHUB_ACTION_PATH/plan-changed.sh"), "{run}");
    assert!(
        repo()
            .join(".github/actions/cupcake-plan/plan-changed.sh")
            .exists()
    );
    assert!(
        run.contains("--path \"$SRC/reconciler\" --bin cupcake"),
        "the action builds cupcake from its own source"
    );
}

/// Every `tests/…`, `images/…` or `.github/…` path a workflow runs exists.
#[test]
fn every_script_a_workflow_names_exists() {
    for f in FILES {
        let doc = load(f);
        for word in runs(&doc).split(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
            if ["tests/", ".github/"].iter().any(|p| word.starts_with(p)) && !word.contains("${{") {
                assert!(
                    repo().join(word).exists(),
                    "{f} runs {word}, which does not exist"
                );
            }
        }
    }
}

fn actionlint() -> Option<PathBuf> {
    let script = repo().join("tests/harness/build-actionlint.sh");
    let bin = PathBuf::from(
        String::from_utf8(
            Command::new(&script)
                .arg("--print-bin")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim(),
    );
    if bin.is_file() {
        return Some(bin);
    }
    if std::env::var("CUPCAKE_REQUIRE_ACTIONLINT").as_deref() == Ok("1") {
        panic!(
            "no actionlint at {} (run tests/harness/build-actionlint.sh)",
            bin.display()
        );
    }
    eprintln!("skipping: no actionlint (tests/harness/build-actionlint.sh builds it)");
    None
}

/// actionlint accepts every workflow (and with them, the action they use), and
/// refuses a broken one: the check is real.
#[test]
fn actionlint_accepts_the_workflows_and_refuses_a_broken_one() {
    let Some(bin) = actionlint() else { return };
    let out = Command::new(&bin)
        .args([
            "-no-color",
            ".github/workflows/ci.yml",
            ".github/workflows/plan.yml",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile_dir();
    let wf = dir.join(".github/workflows");
    std::fs::create_dir_all(&wf).unwrap();
    let ci = std::fs::read_to_string(repo().join(".github/workflows/ci.yml")).unwrap();
    std::fs::write(
        wf.join("ci.yml"),
        ci.replace(
            "${{ matrix.image }}.Dockerfile",
            "${{ matrix.imag }}.Dockerfile",
        ),
    )
    .unwrap();
    let out = Command::new(&bin)
        .args(["-no-color", ".github/workflows/ci.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a typo in a matrix key passed actionlint"
    );
    assert!(text.contains("imag"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempfile_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("cupcake-actionlint-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    // actionlint looks for the repository root (.git) to find .github/.
    std::fs::create_dir_all(d.join(".git")).unwrap();
    d
}
