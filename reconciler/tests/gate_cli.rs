//! The gate through the CLI: `cupcake plan` verdicts on the example fleet,
//! fleet policies, bad policies, and `cupcake policy test|eval`.

use std::path::Path;
use std::process::{Command, Output};

mod common;
use common::{copy_dir, repo};

fn cupcake(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cupcake"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("run cupcake")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A copy of the example fleet plus extra files (path relative to the fleet, content).
fn fleet_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_dir(&repo().join("examples/fleet"), tmp.path());
    for (p, c) in files {
        let f = tmp.path().join(p);
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        std::fs::write(f, c).expect("write");
    }
    tmp
}

fn plan_json(fleet: &Path, now: &str) -> (Option<i32>, serde_json::Value) {
    let out = cupcake(&[
        "plan",
        fleet.to_str().expect("utf8"),
        "--cluster",
        "demo",
        "--now",
        now,
        "-o",
        "json",
    ]);
    let v =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("not JSON: {}", text(&out)));
    (out.status.code(), v)
}

fn rules(v: &serde_json::Value) -> Vec<String> {
    v["decision"]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["rule"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn inside_the_saturday_window_the_demo_plan_is_allowed() {
    let (code, v) = plan_json(&repo().join("examples/fleet"), "2026-11-28T02:30:00Z");
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["decision"]["verdict"], "allow");
    assert!(v["decision"]["deferUntil"].is_null());
}

#[test]
fn outside_windows_the_plan_defers_until_the_next_window_start() {
    // Friday 10:00Z: the next opening is Saturday 02:00 Amsterdam = 01:00Z.
    let (code, v) = plan_json(&repo().join("examples/fleet"), "2026-11-27T10:00:00Z");
    assert_eq!(code, Some(3), "{v:#}");
    assert_eq!(v["decision"]["verdict"], "defer");
    assert_eq!(v["decision"]["deferUntil"], "2026-11-28T01:00:00Z");
    let f = &v["decision"]["findings"][0];
    assert_eq!(
        (f["rule"].as_str(), f["source"].as_str()),
        (
            Some("schedule.outside-window"),
            Some("policies/schedule.rego")
        )
    );
}

#[test]
fn the_year_end_freeze_defers_until_the_first_window_after_it() {
    let (code, v) = plan_json(&repo().join("examples/fleet"), "2026-12-27T02:00:00Z");
    assert_eq!(code, Some(3));
    assert_eq!(rules(&v), ["schedule.exclusion"]);
    // 2027-01-04 is a Monday; the next window is Saturday 2027-01-09 02:00 Amsterdam.
    assert_eq!(v["decision"]["deferUntil"], "2027-01-09T01:00:00Z");
}

#[test]
fn fleet_policies_add_to_the_default_pack_and_can_be_forced() {
    let rego = "package cupcake\n\ndeny contains {\"id\": \"org.no-saturdays\", \"msg\": \"not on Saturdays\", \"forceable\": true} if {\n  time.weekday(time.parse_rfc3339_ns(input.now)) == \"Saturday\"\n}\n";
    let fleet = fleet_with(&[("policies/org.rego", rego)]);
    let (code, v) = plan_json(fleet.path(), "2026-11-28T02:30:00Z");
    assert_eq!(code, Some(2), "{v:#}");
    let f = &v["decision"]["findings"][0];
    assert_eq!(f["rule"], "org.no-saturdays");
    assert!(
        f["source"]
            .as_str()
            .is_some_and(|s| s.ends_with("policies/org.rego")),
        "{f}"
    );
    assert_eq!(f["forceable"], true);
    // Forced in cluster.yaml: allowed, and the finding says so.
    let cv = fleet.path().join("clusters/demo/cluster.yaml");
    let t = std::fs::read_to_string(&cv)
        .expect("read")
        .replace("force: []", "force: [org.no-saturdays]");
    std::fs::write(&cv, t).expect("write");
    let (code, v) = plan_json(fleet.path(), "2026-11-28T02:30:00Z");
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["decision"]["findings"][0]["forced"], true);
}

#[test]
fn fleet_cel_rules_run_with_semver() {
    let cel = "rules:\n  - id: org.min-134\n    expression: \"semver_compare(cluster.target, '1.35.0') >= 0\"\n    messageExpression: \"'target ' + cluster.target + ' is below our 1.35 baseline'\"\n    action: deny\n";
    let fleet = fleet_with(&[("policies/org.cel.yaml", cel)]);
    let (code, v) = plan_json(fleet.path(), "2026-11-28T02:30:00Z");
    assert_eq!(code, Some(2));
    assert_eq!(
        v["decision"]["findings"][0]["message"],
        "target 1.34.2 is below our 1.35 baseline"
    );
}

#[test]
fn broken_policies_deny_naming_the_file_and_position() {
    for (file, content, needle) in [
        (
            "policies/broken.rego",
            "package cupcake\n\ndeny contains x if {\n  x := \n}\n",
            "policies/broken.rego:",
        ),
        (
            "policies/broken.cel.yaml",
            "rules:\n  - id: org.x\n    expression: \"plan.stages.all(s,\"\n    message: m\n    action: deny\n",
            "policies/broken.cel.yaml:3",
        ),
        (
            "policies/shape.rego",
            "package cupcake\n\nwarn contains 42 if true\n",
            "expected an object",
        ),
        (
            "policies/other.rego",
            "package org.rules\n\ndeny contains {\"id\": \"org.x\", \"msg\": \"m\"} if true\n",
            "policies/other.rego:1:1: package org.rules: CUPCAKE evaluates rules only in `package cupcake`",
        ),
        (
            "policies/http.rego",
            "package cupcake\n\ndeny contains {\"id\": \"org.cmdb\", \"msg\": \"m\"} if {\n  r := http.send({\"method\": \"get\", \"url\": \"http://cmdb\"})\n  r.status_code != 200\n}\n",
            "policies/http.rego:4:8: http.send is not supported",
        ),
        (
            "policies/unknown.rego",
            "package cupcake\n\ndeny contains {\"id\": \"org.y\", \"msg\": \"m\"} if crypto.sha256(\"a\") == \"b\"\n",
            "could not find function crypto.sha256",
        ),
    ] {
        let fleet = fleet_with(&[(file, content)]);
        let (code, v) = plan_json(fleet.path(), "2026-11-28T02:30:00Z");
        // A broken policy is an error for CI (exit 1); the verdict stays deny.
        assert_eq!(code, Some(1), "{file}: {v:#}");
        assert_eq!(v["decision"]["verdict"], "deny", "{file}");
        let f = v["decision"]["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["rule"] == "policy.error")
            .cloned();
        let f = f.unwrap_or_else(|| panic!("{file}: no policy.error in {v:#}"));
        assert!(
            f["source"].as_str().is_some_and(|s| s.ends_with(file)),
            "{file}: {f}"
        );
        assert!(
            f["message"].as_str().is_some_and(|m| m.contains(needle)),
            "{file}: {f}"
        );
        assert!(v["directUpdate"].is_null(), "nothing is applied");
    }
}

#[test]
fn bad_schedules_are_clear_errors_naming_the_file() {
    for (sched, needle) in [
        (
            "windows: [{schedule: '0 0 2 * * 6', duration: 4h}]",
            "expected 5 fields",
        ),
        (
            "windows: [{schedule: '0 2 * * 6', duration: 4h, timeZone: Europe/Amsterdm}]",
            "unknown time zone",
        ),
    ] {
        let body = format!(
            "apiVersion: cupcake.ricardomolendijk.com/v1\nkind: UpdateSchedule\nmetadata: {{name: demo}}\nspec:\n  {sched}\n"
        );
        let fleet = fleet_with(&[("clusters/demo/schedule.yaml", &body)]);
        let out = cupcake(&[
            "plan",
            fleet.path().to_str().expect("utf8"),
            "--cluster",
            "demo",
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let t = text(&out);
        assert!(t.contains("schedule.yaml") && t.contains(needle), "{t}");
    }
}

#[test]
fn policy_test_runs_the_default_pack_like_opa() {
    let out = cupcake(&["policy", "test"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains(" passed, 0 failed"), "{t}");
    let out = cupcake(&[
        "policy",
        "test",
        "policies/",
        "--run",
        "test_minor_skip",
        "-v",
    ]);
    let t = text(&out);
    assert!(
        t.contains("PASS    data.cupcake_test.test_minor_skip_is_mandatory"),
        "{t}"
    );
    assert!(t.contains("2 passed, 0 failed"), "{t}");
}

#[test]
fn policy_test_reports_failures_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("x_test.rego"),
        "package x_test\n\ntest_ok if 1 == 1\n\ntest_bad if 1 == 2\n\ntest_err if {\n  x := 1 / 0\n  x == 1\n}\n",
    )
    .expect("write");
    let out = cupcake(&["policy", "test", dir.path().to_str().expect("utf8")]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("FAIL    data.x_test.test_bad"), "{t}");
    assert!(t.contains("1 passed, 1 failed"), "{t}");
}

#[test]
fn policy_eval_explains_which_rules_fired() {
    let input = repo().join("tests/policy/outside-window.json");
    let out = cupcake(&[
        "policy",
        "eval",
        "--input",
        input.to_str().expect("utf8"),
        "--explain",
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(
        t.contains("Verdict: DEFER until 2026-12-05T01:00:00Z"),
        "{t}"
    );
    assert!(
        t.contains("policies/schedule.rego:") && t.contains("fired schedule.outside-window"),
        "{t}"
    );
    assert!(
        t.contains("policies/skew.rego:") && t.contains("nothing fired"),
        "{t}"
    );
}

/// The seed's updatePolicy.targetVersionPattern gates the plan; its maintenanceWindow is a window.
#[test]
fn seed_schedule_fields_gate_the_plan() {
    let sched = std::fs::read_to_string(repo().join("examples/fleet/clusters/demo/schedule.yaml"))
        .expect("schedule");
    let with = |extra: &str| {
        sched.replace(
            "  suspended: false",
            &format!("  suspended: false\n{extra}"),
        )
    };
    let fleet = fleet_with(&[(
        "clusters/demo/schedule.yaml",
        &with("  updatePolicy: {targetVersionPattern: 1.33.x}"),
    )]);
    let (code, v) = plan_json(fleet.path(), "2026-11-28T02:30:00Z");
    assert_eq!(code, Some(2), "{v:#}");
    assert!(
        v["decision"]["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|f| f["rule"] == "schedule.target-version-pattern" && f["forceable"] == true),
        "{v:#}"
    );
    let fleet = fleet_with(&[(
        "clusters/demo/schedule.yaml",
        &with("  updatePolicy: {targetVersionPattern: 1.34.x}"),
    )]);
    assert_eq!(plan_json(fleet.path(), "2026-11-28T02:30:00Z").0, Some(0));
    // maintenanceWindow is one more window: Friday 10:30 UTC is inside 10:00–11:00.
    let fleet = fleet_with(&[(
        "clusters/demo/schedule.yaml",
        &with("  maintenanceWindow: {start: \"10:00\", end: \"11:00\", timezone: UTC}"),
    )]);
    assert_eq!(plan_json(fleet.path(), "2026-11-27T10:30:00Z").0, Some(0));
    assert_eq!(plan_json(fleet.path(), "2026-11-27T12:30:00Z").0, Some(3));
}

/// `force:` can only override forceable denies: listing a deny that cannot be forced
/// leaves the plan denied (and says so), and an id no rule has is reported.
#[test]
fn force_never_overrides_an_unforceable_deny_and_typos_are_reported() {
    let cluster = std::fs::read_to_string(repo().join("examples/fleet/clusters/demo/cluster.yaml"))
        .expect("cluster");
    let downgrade = cluster
        .replace("kubernetesVersion: 1.34.2", "kubernetesVersion: 1.32.9")
        .replace(
            "force: []",
            "force: [planner.minor-downgrade, skew.minor-downgrade, planer.patch-downgrade]",
        );
    let fleet = fleet_with(&[("clusters/demo/cluster.yaml", &downgrade)]);
    let (code, v) = plan_json(fleet.path(), "2026-11-28T02:30:00Z");
    assert_eq!(code, Some(2), "{v:#}");
    assert_eq!(v["decision"]["verdict"], "deny");
    let findings = v["decision"]["findings"].as_array().expect("findings");
    assert!(
        findings
            .iter()
            .any(|f| f["rule"] == "planner.minor-downgrade" && f["forced"] == false),
        "{v:#}"
    );
    let warns: Vec<&str> = findings
        .iter()
        .filter(|f| f["rule"] == "gate.force-ineffective")
        .filter_map(|f| f["message"].as_str())
        .collect();
    assert!(
        warns
            .iter()
            .any(|m| m.contains("planner.minor-downgrade cannot be forced")),
        "{warns:?}"
    );
    assert!(
        warns
            .iter()
            .any(|m| m.contains("skew.minor-downgrade cannot be forced")),
        "{warns:?}"
    );
    assert!(
        warns
            .iter()
            .any(|m| m.contains("planer.patch-downgrade names no rule")
                && m.contains("did you mean")),
        "{warns:?}"
    );
}

/// Rules people write can match on the cluster's and the nodes' labels.
#[test]
fn rules_see_cluster_and_node_labels() {
    let fleet = fleet_with(&[(
        "policies/prod.rego",
        "package cupcake\n\ndeny contains {\"id\": \"org.prod-needs-approval\", \"msg\": \"production needs an approval\", \"forceable\": true} if {\n  input.cluster.labels.environment == \"production\"\n}\n\nwarn contains {\"id\": \"org.worker-label\", \"msg\": n.name} if {\n  some n in input.cluster.nodes\n  n.labels[\"kubernetes.io/hostname\"] == \"worker-3\"\n}\n",
    )]);
    let (code, v) = plan_json(fleet.path(), "2026-11-28T02:30:00Z");
    assert_eq!(code, Some(2), "{v:#}");
    let ids: Vec<&str> = v["decision"]["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    assert!(ids.contains(&"org.prod-needs-approval"), "{ids:?}");
    assert!(ids.contains(&"org.worker-label"), "{ids:?}");
}

/// Issue 8 (Deliver 4): a rule error names the user's file (and line where the
/// engine gives one), never a default-pack file — also when the error is raised
/// inside a pack function the fleet file calls or breaks by redefining it —
/// through `cupcake plan` and `cupcake policy eval --fleet` alike.
#[test]
fn rule_errors_name_the_fleet_file_not_the_pack() {
    // (what, file, content, expected "file:line[:col]: " after the fleet root, expected text)
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        (
            "type error",
            "policies/org.rego",
            "package cupcake\n\ndeny contains {\"id\": \"org.t\", \"msg\": \"x\"} if {\n    x := input.plan.estimate.seconds + \"a\"\n    x > 1\n}\n",
            "policies/org.rego:4:41: ",
            "`add` expects numeric argument",
        ),
        (
            "conflicting values of a complete rule",
            "policies/org.rego",
            "package cupcake\n\nlevel := 1 if input.now\nlevel := 2 if input.now\n\ndeny contains {\"id\": \"org.c\", \"msg\": \"x\"} if level == 1\n",
            "policies/org.rego:4:1: ",
            "rule conflicts with rule at",
        ),
        (
            "division by zero",
            "policies/org.rego",
            "package cupcake\n\ndeny contains {\"id\": \"org.d\", \"msg\": \"x\"} if {\n    r := 10 / 0\n    r > 1\n}\n",
            "policies/org.rego:4:13: ",
            "divide by zero",
        ),
        (
            "a pack function called with a value it cannot take",
            "policies/org.rego",
            "package cupcake\n\ndeny contains {\"id\": \"org.minor\", \"msg\": \"x\"} if {\n    minor(\"1.x.0\") > 30\n}\n",
            "policies/org.rego:4:5: ",
            "raised in the default pack's `minor` at policies/cupcake.rego:9:36, called here",
        ),
        (
            "a pack function redefined with another arity",
            "policies/org.rego",
            "package cupcake\n\nminor(v) := 99\n\ndeny contains {\"id\": \"org.m\", \"msg\": \"x\"} if minor(\"1.2.3\") > 5\n",
            "policies/org.rego:3:1: ",
            "this file defines `minor` too (rename your rule)",
        ),
        (
            "a pack rule redefined",
            "policies/org.rego",
            "package cupcake\n\ncp_ready := 7\n\ndeny contains {\"id\": \"org.cp\", \"msg\": \"x\"} if cp_ready > 5\n",
            "policies/org.rego:3:1: ",
            "rule conflicts with rule at policies/controlplane.rego",
        ),
        (
            "a finding of the wrong shape",
            "policies/org.rego",
            "package cupcake\n\nwarn contains x if {\n    x := 5\n}\n",
            "policies/org.rego: ",
            "data.cupcake.warn produced 5: expected an object",
        ),
        (
            "CEL index out of range",
            "policies/org.cel.yaml",
            "rules:\n  - id: org.cel-bad\n    expression: \"plan.stages[99].kind == 'workers'\"\n    message: boom\n    action: deny\n",
            "policies/org.cel.yaml:2: ",
            "rule org.cel-bad: evaluation failed",
        ),
    ];
    for (what, file, content, pos, msg) in cases {
        let fleet = fleet_with(&[(file, content)]);
        let root = format!("{}/", fleet.path().display());
        let check = |how: &str, code: Option<i32>, v: &serde_json::Value| {
            assert_eq!(
                code,
                Some(1),
                "{what} ({how}): a broken policy exits 1: {v:#}"
            );
            assert_eq!(v["decision"]["verdict"], "deny", "{what} ({how})");
            let errs: Vec<&serde_json::Value> = v["decision"]["findings"]
                .as_array()
                .expect("findings")
                .iter()
                .filter(|f| f["rule"] == "policy.error")
                .collect();
            assert_eq!(errs.len(), 1, "{what} ({how}): {errs:#?}");
            let f = errs[0];
            assert_eq!(f["source"], format!("{root}{file}"), "{what} ({how})");
            let m = f["message"].as_str().expect("message");
            let want = format!("policy failed, nothing is applied until it is fixed: {root}{pos}");
            assert!(
                m.starts_with(&want),
                "{what} ({how}): {m:?} should start with {want:?}"
            );
            assert!(m.contains(msg), "{what} ({how}): {m:?} lacks {msg:?}");
        };
        let (code, v) = plan_json(fleet.path(), "2026-11-28T02:30:00Z");
        check("plan", code, &v);
        // The same input through `policy eval --fleet`.
        let input = fleet.path().join("input.json");
        let out = cupcake(&[
            "plan",
            fleet.path().to_str().expect("utf8"),
            "--cluster",
            "demo",
            "--now",
            "2026-11-28T02:30:00Z",
            "--show-input",
        ]);
        std::fs::write(&input, &out.stdout).expect("write input");
        let out = cupcake(&[
            "policy",
            "eval",
            "--input",
            input.to_str().expect("utf8"),
            "--fleet",
            fleet.path().to_str().expect("utf8"),
            "-o",
            "json",
        ]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{what}: policy eval not JSON: {}", text(&out)));
        let v = if v.get("decision").is_some() {
            v
        } else {
            serde_json::json!({"decision": v})
        };
        check("policy eval", out.status.code(), &v);
    }
}
