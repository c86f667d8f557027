//! Snapshot data the planner would misread fails closed: `validate` names the
//! object, and `pass` returns `PassError::Snapshot` instead of a plan.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{mk_cluster, mk_spec, run};
use cupcake_api::snapshot::{IntOrString, Pdb, SelectorRequirement};
use cupcake_core::pass::PassError;
use cupcake_core::plan::{SnapshotDataError, validate};

fn s(x: &str) -> IntOrString {
    IntOrString::String(x.into())
}

#[test]
fn pdb_budgets_must_be_counts_or_percentages_up_to_100() {
    // (minAvailable, maxUnavailable, the error or None)
    let cases: &[(Option<IntOrString>, Option<IntOrString>, Option<&str>)] = &[
        (Some(IntOrString::Int(1)), None, None),
        (Some(IntOrString::Int(0)), None, None),
        (Some(s("50%")), None, None),
        (Some(s("0%")), None, None),
        (Some(s("100%")), None, None),
        (None, Some(s("25%")), None),
        (None, Some(IntOrString::Int(2)), None),
        (None, None, None),
        (
            Some(s("abc%")),
            None,
            Some(
                r#"PodDisruptionBudget shop/web: spec.minAvailable "abc%" is not a percentage like "50%""#,
            ),
        ),
        (
            Some(s("150%")),
            None,
            Some(r#"PodDisruptionBudget shop/web: spec.minAvailable "150%" is more than "100%""#),
        ),
        (
            None,
            Some(s("50")),
            Some(
                r#"PodDisruptionBudget shop/web: spec.maxUnavailable "50" is not a percentage like "50%""#,
            ),
        ),
        (
            None,
            Some(s("%")),
            Some(
                r#"PodDisruptionBudget shop/web: spec.maxUnavailable "%" is not a percentage like "50%""#,
            ),
        ),
        (
            None,
            Some(s("-5%")),
            Some(
                r#"PodDisruptionBudget shop/web: spec.maxUnavailable "-5%" is not a percentage like "50%""#,
            ),
        ),
        (
            None,
            Some(s("12.5%")),
            Some(
                r#"PodDisruptionBudget shop/web: spec.maxUnavailable "12.5%" is not a percentage like "50%""#,
            ),
        ),
        (
            None,
            Some(s("50%%")),
            Some(
                r#"PodDisruptionBudget shop/web: spec.maxUnavailable "50%%" is not a percentage like "50%""#,
            ),
        ),
        (
            None,
            Some(s("99999999999999999999%")),
            Some(
                r#"PodDisruptionBudget shop/web: spec.maxUnavailable "99999999999999999999%" is more than "100%""#,
            ),
        ),
        (
            Some(IntOrString::Int(-1)),
            None,
            Some("PodDisruptionBudget shop/web: spec.minAvailable -1 is negative"),
        ),
    ];
    for (min, max, want) in cases {
        let mut snap = mk_cluster(1, 2, "1.33.4");
        snap.pdbs[0].min_available = min.clone();
        snap.pdbs[0].max_unavailable = max.clone();
        let got = validate(&snap).err().map(|e| e.to_string());
        assert_eq!(
            got.as_deref(),
            *want,
            "minAvailable {min:?}, maxUnavailable {max:?}"
        );
    }
}

#[test]
fn selector_operators_must_be_kubernetes_ones() {
    let req = |op: &str| SelectorRequirement {
        key: "app".into(),
        operator: op.into(),
        values: if op.starts_with("In") || op.starts_with("NotIn") {
            vec!["web".into()]
        } else {
            vec![]
        },
    };
    let cases: &[(&str, Option<&str>)] = &[
        ("In", None),
        ("NotIn", None),
        ("Exists", None),
        ("DoesNotExist", None),
        (
            "Like",
            Some(
                r#"PodDisruptionBudget shop/web: spec.selector.matchExpressions[1].operator "Like" is not one of In, NotIn, Exists, DoesNotExist"#,
            ),
        ),
        // Operators are case-sensitive in Kubernetes.
        (
            "in",
            Some(
                r#"PodDisruptionBudget shop/web: spec.selector.matchExpressions[1].operator "in" is not one of In, NotIn, Exists, DoesNotExist"#,
            ),
        ),
        (
            "",
            Some(
                r#"PodDisruptionBudget shop/web: spec.selector.matchExpressions[1].operator "" is not one of In, NotIn, Exists, DoesNotExist"#,
            ),
        ),
    ];
    for (op, want) in cases {
        let mut snap = mk_cluster(1, 2, "1.33.4");
        let sel = snap.pdbs[0].selector.as_mut().unwrap();
        sel.match_expressions = vec![req("Exists"), req(op)];
        let got = validate(&snap).err().map(|e| e.to_string());
        assert_eq!(got.as_deref(), *want, "operator {op:?}");
    }
}

#[test]
fn the_first_bad_object_is_named_and_the_pass_fails_closed() {
    let mut snap = mk_cluster(1, 2, "1.33.4");
    let mut api: Pdb = snap.pdbs[0].clone();
    api.namespace = "apps".into();
    api.name = "api".into();
    api.min_available = Some(s("ten%"));
    api.status = None;
    snap.pdbs.push(api);
    let e = validate(&snap).unwrap_err();
    assert_eq!(
        e,
        SnapshotDataError::NotAPercentage {
            pdb: "apps/api".into(),
            field: "minAvailable",
            value: "ten%".into(),
        }
    );
    // Read as 0%, "ten%" would make every pod of the PDB disruptable; the pass refuses instead.
    match run(&mk_spec("kubernetesVersion: 1.34.2"), &snap) {
        Err(PassError::Snapshot(got)) => assert_eq!(got, e),
        Ok(out) => panic!("planned over bad data: {:?}", out.decision),
    }
}
