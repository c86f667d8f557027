//! The verdict and forcing, table-driven: deny beats defer beats allow; only a
//! forceable deny whose id is in `force:` is forced; forcing never touches a
//! deny that cannot be forced, nor a warning or defer; aliases force both names
//! of one condition and nothing else. (Mutation testing, docs/testing.md,
//! found these were only tested through the reconciler's suites.)

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use chrono::{DateTime, Utc};
use cupcake_api::plan::{Decision, Finding, Severity, Verdict};
use cupcake_core::gate::expand_force;

fn f(rule: &str, severity: Severity, forceable: bool) -> Finding {
    Finding::planner(rule, severity, forceable, "m")
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[test]
fn verdict_and_forcing_table() {
    use Severity::{Defer, Deny, Warn};
    // (what, findings, force, verdict, rules marked forced)
    type Case = (
        &'static str,
        Vec<Finding>,
        &'static [&'static str],
        Verdict,
        &'static [&'static str],
    );
    let cases: Vec<Case> = vec![
        ("nothing", vec![], &[], Verdict::Allow, &[]),
        (
            "a warning alone allows",
            vec![f("w", Warn, false)],
            &[],
            Verdict::Allow,
            &[],
        ),
        (
            "a defer defers",
            vec![f("d", Defer, false), f("w", Warn, false)],
            &[],
            Verdict::Defer,
            &[],
        ),
        (
            "a deny denies",
            vec![f("x", Deny, true)],
            &[],
            Verdict::Deny,
            &[],
        ),
        (
            "deny beats defer",
            vec![f("x", Deny, false), f("d", Defer, false)],
            &[],
            Verdict::Deny,
            &[],
        ),
        (
            "a forced forceable deny allows",
            vec![f("x", Deny, true)],
            &["x"],
            Verdict::Allow,
            &["x"],
        ),
        (
            "forcing another id changes nothing",
            vec![f("x", Deny, true)],
            &["y"],
            Verdict::Deny,
            &[],
        ),
        (
            "a deny that cannot be forced stays denied",
            vec![f("x", Deny, false)],
            &["x"],
            Verdict::Deny,
            &[],
        ),
        (
            "forcing one deny leaves the other",
            vec![f("x", Deny, true), f("y", Deny, true)],
            &["x"],
            Verdict::Deny,
            &["x"],
        ),
        (
            "a forced deny then the defer",
            vec![f("x", Deny, true), f("d", Defer, false)],
            &["x"],
            Verdict::Defer,
            &["x"],
        ),
        (
            "forcing a warning marks nothing",
            vec![f("w", Warn, true)],
            &["w"],
            Verdict::Allow,
            &[],
        ),
        (
            "forcing a defer does not lift it",
            vec![f("d", Defer, true)],
            &["d"],
            Verdict::Defer,
            &[],
        ),
    ];
    for (what, findings, force, verdict, forced) in cases {
        let force: Vec<String> = force.iter().map(|s| s.to_string()).collect();
        let d = Decision::from_findings(findings, &force, None);
        assert_eq!(d.verdict, verdict, "{what}");
        let got: Vec<&str> = d
            .findings
            .iter()
            .filter(|f| f.forced)
            .map(|f| f.rule.as_str())
            .collect();
        assert_eq!(got, forced, "{what}");
        // Denies first, unforced before forced.
        let order: Vec<(Severity, bool)> =
            d.findings.iter().map(|f| (f.severity, f.forced)).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted, "{what}");
    }
}

#[test]
fn defer_until_is_the_latest_until_and_only_when_deferred() {
    let mut a = f("a", Severity::Defer, false);
    a.until = Some(t("2026-12-05T01:00:00Z"));
    let mut b = f("b", Severity::Defer, false);
    b.until = Some(t("2026-12-06T01:00:00Z"));
    let d = Decision::from_findings(vec![a.clone(), b.clone()], &[], None);
    assert_eq!(d.defer_until, Some(t("2026-12-06T01:00:00Z")));
    // A given time wins over the findings'.
    let d = Decision::from_findings(vec![a.clone()], &[], Some(t("2026-12-01T00:00:00Z")));
    assert_eq!(d.defer_until, Some(t("2026-12-01T00:00:00Z")));
    // Denied: no time to come back.
    let d = Decision::from_findings(vec![a, f("x", Severity::Deny, false)], &[], None);
    assert_eq!((d.verdict, d.defer_until), (Verdict::Deny, None));
}

#[test]
fn force_aliases_add_the_other_name_only_when_one_is_listed() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &[]),
        (&["org.other"], &["org.other"]),
        (
            &["planner.patch-downgrade"],
            &["planner.patch-downgrade", "skew.patch-downgrade"],
        ),
        (
            &["skew.patch-downgrade"],
            &["skew.patch-downgrade", "planner.patch-downgrade"],
        ),
        (
            &["skew.patch-downgrade", "planner.patch-downgrade"],
            &["skew.patch-downgrade", "planner.patch-downgrade"],
        ),
        (
            &["skew.kubelet-too-old"],
            &["skew.kubelet-too-old", "planner.out-of-scope-skew"],
        ),
    ];
    for (force, want) in cases {
        assert_eq!(expand_force(&s(force)), s(want), "{force:?}");
    }
}

/// `force:` entries that force nothing are warned about: an id no rule has
/// (with near names), a planner rule that is never forceable, or a rule whose
/// deny fired unforceable. A forceable id, or an id whose only finding is not a
/// deny, gets no warning.
#[test]
fn force_entries_that_force_nothing_are_named() {
    use cupcake_core::gate::{FORCE_UNUSED, PolicyEnv, force_findings};
    use cupcake_core::plan::rules;
    let env = PolicyEnv::default_pack();
    let unforceable = rules::ALL.iter().find(|r| !r.forceable).unwrap().id;
    let forceable = rules::ALL.iter().find(|r| r.forceable).unwrap().id;
    let fired_deny = vec![f("controlplane.not-ready", Severity::Deny, false)];
    let fired_warn = vec![f("controlplane.not-ready", Severity::Warn, false)];
    let none: Vec<Finding> = vec![];
    let cases: Vec<(&str, &Vec<Finding>, Option<String>)> = vec![
        (
            "skew.kubelet-to-old",
            &none,
            Some("force: skew.kubelet-to-old names no rule, so it forces nothing".into()),
        ),
        (
            unforceable,
            &none,
            Some(format!("force: {unforceable} cannot be forced: its denies stand (fix the cause instead)")),
        ),
        (forceable, &none, None),
        (
            "controlplane.not-ready",
            &fired_deny,
            Some("force: controlplane.not-ready cannot be forced: its denies stand (fix the cause instead)".into()),
        ),
        ("controlplane.not-ready", &fired_warn, None),
    ];
    for (id, findings, want) in cases {
        let got = force_findings(&env, &[id.to_string()], findings);
        assert!(
            got.iter()
                .all(|w| w.rule == FORCE_UNUSED && w.severity == Severity::Warn)
        );
        let got: Option<String> = got.first().map(|w| w.message.clone());
        match (&got, &want) {
            (Some(g), Some(w)) => assert!(g.starts_with(w.as_str()), "{id}: {g:?} vs {w:?}"),
            _ => assert_eq!(got, want, "{id}"),
        }
    }
    // A prefix of a rule id suggests it.
    let got = force_findings(&env, &["skew.kubelet".into()], &none);
    assert!(
        got[0].message.contains("did you mean") && got[0].message.contains("skew.kubelet-too-old"),
        "{:?}",
        got[0].message
    );
    // A misspelling suggests the rule with the same last part.
    let got = force_findings(&env, &["org.kubelet-too-old".into()], &none);
    assert!(
        got[0]
            .message
            .ends_with("(did you mean skew.kubelet-too-old?)"),
        "{:?}",
        got[0].message
    );
}

/// kubeadm's kubelet skew: never newer than the apiserver; at most 3 minors
/// older from 1.25 on, 2 before (the boundary is the kubelet's minor).
#[test]
fn kubelet_skew_table() {
    use cupcake_core::plan::kubelet_skew_ok;
    let v = |s: &str| s.parse::<cupcake_api::KubeVersion>().unwrap();
    let cases = [
        ("1.34.2", "1.34.2", true),
        ("1.31.0", "1.34.2", true),
        ("1.30.9", "1.34.2", false),
        ("1.35.0", "1.34.2", false),
        ("1.25.0", "1.28.0", true),
        ("1.24.0", "1.27.0", false),
        ("1.24.0", "1.26.0", true),
        ("1.23.0", "1.26.0", false),
    ];
    for (kubelet, api, ok) in cases {
        assert_eq!(
            kubelet_skew_ok(&v(kubelet), &v(api)),
            ok,
            "kubelet {kubelet}, apiserver {api}"
        );
    }
}
