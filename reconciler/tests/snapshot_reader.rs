//! Snapshot reader tests on the shapes `kubectl get nodes,pods,pdb -A -o yaml|json` prints.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};

use cupcake_api::snapshot::Role;
use cupcake_reconciler::snapshot::{parse, read_file};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fleet/clusters/demo/snapshot.yaml")
}

#[test]
fn reads_the_example_kubectl_list() {
    let s = read_file(&example()).unwrap();
    assert_eq!(s.nodes.len(), 12);
    let cps: Vec<&str> = s
        .nodes
        .iter()
        .filter(|n| n.role == Role::ControlPlane)
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(cps, ["cp-1", "cp-2", "cp-3"]);
    for n in s.nodes.iter().filter(|n| n.role == Role::ControlPlane) {
        let c = n.control_plane.as_ref().expect("static pods attached");
        assert_eq!(c.apiserver.as_ref().unwrap().to_string(), "1.33.4");
        assert_eq!(c.controller_manager.as_ref().unwrap().to_string(), "1.33.4");
        assert_eq!(c.etcd.as_deref(), Some("3.5.21-0"));
        assert!(
            n.taints
                .iter()
                .any(|t| t.key == "node-role.kubernetes.io/control-plane")
        );
    }
    assert!(
        s.nodes
            .iter()
            .all(|n| n.ready && n.kubelet_version.to_string() == "1.33.4")
    );
    assert_eq!(s.pdbs.len(), 5);
    let web = s.pdbs.iter().find(|p| p.name == "web").unwrap();
    assert_eq!(web.status.unwrap().disruptions_allowed, 1);
    assert_eq!(web.status.unwrap().expected_pods, 3);
    let owners = |k: &str| {
        s.pods
            .iter()
            .filter(|p| p.owner_kind.as_deref() == Some(k))
            .count()
    };
    assert_eq!(owners("Node"), 12, "static pods are owned by their node");
    assert_eq!(owners("DaemonSet"), 12 + 9);
    assert_eq!(owners("ReplicaSet"), 2 + 3 + 4 + 2 + 3);
}

#[test]
fn json_output_reads_the_same_as_yaml() {
    let text = std::fs::read_to_string(example()).unwrap();
    let value: serde_json::Value = yaml_serde::from_str(&text).unwrap();
    let json = serde_json::to_string_pretty(&value).unwrap();
    assert_eq!(
        parse(&json, "snapshot.json").unwrap(),
        parse(&text, "snapshot.yaml").unwrap()
    );
}

#[test]
fn truncated_and_foreign_input_is_a_clear_error() {
    let text = std::fs::read_to_string(example()).unwrap();
    let value: serde_json::Value = yaml_serde::from_str(&text).unwrap();
    let json = serde_json::to_string_pretty(&value).unwrap();
    // (input, origin, expected text in the error)
    let half_yaml: String = text
        .lines()
        .take(text.lines().count() / 2)
        .collect::<Vec<_>>()
        .join("\n");
    let cases: Vec<(String, &str, &str)> = vec![
        (half_yaml, "half.yaml", "half.yaml: no `kind` at the top level: the file looks truncated"),
        (json[..json.len() / 2].to_string(), "half.json", "(the file looks truncated)"),
        (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n".into(),
            "deploy.yaml",
            "kind \"Deployment\" is not a list",
        ),
        ("apiVersion: v1\nitems: []\nkind: List\n".into(), "empty.yaml", "the snapshot holds no Node"),
        ("".into(), "nothing.yaml", "empty snapshot"),
        ("items: [\n".into(), "broken.yaml", "broken.yaml: line "),
        (
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Node\n  metadata:\n    name: n1\n".into(),
            "nostatus.yaml",
            "items[0] (Node n1): status.nodeInfo.kubeletVersion missing",
        ),
        (
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Node\n  metadata:\n    name: n1\n  status:\n    nodeInfo:\n      kubeletVersion: banana\n".into(),
            "badversion.yaml",
            "items[0] (Node n1): status.nodeInfo.kubeletVersion: invalid Kubernetes version \"banana\"",
        ),
        (
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: p\n".into(),
            "nons.yaml",
            "items[0] (Pod p): metadata.namespace missing",
        ),
        (
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: policy/v1beta1\n  kind: PodDisruptionBudget\n  metadata:\n    name: p\n    namespace: x\n".into(),
            "oldpdb.yaml",
            "use policy/v1",
        ),
    ];
    for (input, origin, want) in cases {
        let err = parse(&input, origin).expect_err(origin).to_string();
        assert!(
            err.contains(want),
            "{origin}:\n  got:  {err}\n  want: {want}"
        );
    }
}

#[test]
fn yaml_and_json_of_a_large_cluster_read_the_same() {
    // The block-style YAML kubectl prints takes a fast path; it must read as JSON does.
    let json = cupcake_reconciler::synth::kubectl_json(300, 6, 30, "1.33.4");
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let yaml = yaml_serde::to_string(&value).unwrap();
    let s = parse(&yaml, "big.yaml").unwrap();
    assert_eq!(s, parse(&json, "big.json").unwrap());
    assert_eq!(s.nodes.len(), 300);
}

#[test]
fn yaml_cut_mid_line_names_the_file_and_line() {
    let text = std::fs::read_to_string(example()).unwrap();
    // Cut inside a quoted scalar, as an interrupted `kubectl ... > file` can.
    let at = text.find("ttl: '").unwrap() + "ttl: '".len();
    let line = text[..at].lines().count();
    let err = parse(&text[..at], "cut.yaml").unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("cut.yaml: line {line} column ")),
        "{err}"
    );
}

#[test]
fn legacy_master_label_and_kubectl_single_kind_lists() {
    let text = r#"{"apiVersion":"v1","kind":"List","metadata":{"resourceVersion":""},"items":[
      {"apiVersion":"v1","kind":"Node","metadata":{"name":"m1","labels":{"node-role.kubernetes.io/master":""}},
       "spec":{"unschedulable":true},
       "status":{"conditions":[{"type":"Ready","status":"False"}],"nodeInfo":{"kubeletVersion":"v1.24.17"}}}
    ]}"#;
    let s = parse(text, "t.json").unwrap();
    assert_eq!(s.nodes[0].role, Role::ControlPlane);
    assert!(!s.nodes[0].ready && s.nodes[0].unschedulable);
    // Any other kind is refused, not skipped (fail closed: a `kubectl get all` has no PDBs).
    let with_service = text.replace(
        "}}}\n    ]}",
        "}}},\n      {\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"s\",\"namespace\":\"d\"}}\n    ]}",
    );
    assert_ne!(with_service, text);
    assert_eq!(
        parse(&with_service, "t.json").unwrap_err().to_string(),
        "t.json: items[1] (Service s): a snapshot holds Nodes, Pods and PodDisruptionBudgets only; make it with `kubectl get nodes,pods,pdb -A -o yaml`"
    );
    // NodeList (from API clients) is accepted too.
    let list = r#"{"apiVersion":"v1","kind":"NodeList","items":[{"metadata":{"name":"w"},"status":{"nodeInfo":{"kubeletVersion":"v1.33.1"}}}]}"#;
    assert_eq!(
        parse(list, "nodes.json").unwrap().nodes[0].role,
        Role::Worker
    );
}
