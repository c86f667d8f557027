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

#[test]
fn node_names_must_be_ones_kubernetes_accepts_and_unique() {
    let long = "n".repeat(254);
    let cases: &[(&str, Option<String>)] = &[
        ("w-9", None),
        ("ip-10-0-0-1.eu-west-1.compute.internal", None),
        ("a", None),
        (&long[..253], None),
        ("", Some(r#"Node "": metadata.name is empty"#.into())),
        (
            &long,
            Some(format!(
                r#"Node "{}… (254 characters)": metadata.name is longer than 253 characters"#,
                "n".repeat(64)
            )),
        ),
        (
            "Worker_1",
            Some(r#"Node "Worker_1": metadata.name is not a DNS subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"#.into()),
        ),
        (
            "w-1.",
            Some(r#"Node "w-1.": metadata.name is not a DNS subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"#.into()),
        ),
        (
            "-w",
            Some(r#"Node "-w": metadata.name is not a DNS subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)"#.into()),
        ),
        (
            "w\u{1b}[31m",
            Some("Node \"w\\u{1b}[31m\": metadata.name is not a DNS subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)".into()),
        ),
        // The name of another node of the cluster: listed twice.
        (
            "cp-1",
            Some("Node cp-1: listed twice (a node name is unique in a cluster)".into()),
        ),
    ];
    for (name, want) in cases {
        let mut snap = mk_cluster(1, 2, "1.33.4");
        snap.nodes[2].name = (*name).to_string();
        let got = validate(&snap).err().map(|e| e.to_string());
        assert_eq!(got.as_deref(), want.as_deref(), "node name {name:?}");
    }
}

#[test]
fn pdb_status_counts_are_never_negative_and_pdbs_unique() {
    let fields = [
        "disruptionsAllowed",
        "currentHealthy",
        "desiredHealthy",
        "expectedPods",
    ];
    for field in fields {
        let mut snap = mk_cluster(1, 2, "1.33.4");
        let st = snap.pdbs[0].status.as_mut().unwrap();
        match field {
            "disruptionsAllowed" => st.disruptions_allowed = -5,
            "currentHealthy" => st.current_healthy = -5,
            "desiredHealthy" => st.desired_healthy = -5,
            _ => st.expected_pods = -5,
        }
        let got = validate(&snap).unwrap_err().to_string();
        assert_eq!(
            got,
            format!("PodDisruptionBudget shop/web: status.{field} -5 is negative")
        );
    }
    let mut snap = mk_cluster(1, 2, "1.33.4");
    let again = snap.pdbs[0].clone();
    snap.pdbs.push(again);
    assert_eq!(
        validate(&snap).unwrap_err().to_string(),
        "PodDisruptionBudget shop/web: listed twice (namespace/name is unique in a cluster)"
    );
    // Same name in another namespace is another PDB.
    let mut snap = mk_cluster(1, 2, "1.33.4");
    let mut other = snap.pdbs[0].clone();
    other.namespace = "other".into();
    snap.pdbs.push(other);
    assert_eq!(validate(&snap), Ok(()));
}
