//! `mk_*` builders shared by the core's pass-level tests.
#![allow(dead_code)] // each test file uses some of them

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cupcake_api::KubeVersion;
use cupcake_api::fleet::ClusterVersionSpec;
use cupcake_api::snapshot::{
    ClusterSnapshot, ControlPlaneComponents, IntOrString, LabelSelector, Node, Pdb, PdbStatus, Pod,
    Role,
};
use cupcake_core::gate::PolicyEnv;
use cupcake_core::pass::{Cluster, PassError, PassInput, PassOutcome, pass};

pub fn v(s: &str) -> KubeVersion {
    s.parse().unwrap()
}

pub fn now() -> DateTime<Utc> {
    "2026-11-28T02:30:00Z".parse().unwrap()
}

pub fn mk_node(name: &str, role: Role, ver: &str) -> Node {
    Node {
        name: name.into(),
        labels: BTreeMap::new(),
        role,
        kubelet_version: v(ver),
        ready: true,
        unschedulable: false,
        taints: vec![],
        control_plane: (role == Role::ControlPlane).then(|| ControlPlaneComponents {
            apiserver: Some(v(ver)),
            controller_manager: Some(v(ver)),
            scheduler: Some(v(ver)),
            etcd: None,
        }),
    }
}

pub fn mk_pod(ns: &str, name: &str, node: &str, app: &str) -> Pod {
    Pod {
        namespace: ns.into(),
        name: name.into(),
        node: node.into(),
        labels: BTreeMap::from([("app".to_string(), app.to_string())]).into(),
        owner_kind: Some("ReplicaSet".into()),
        phase: "Running".into(),
    }
}

/// A PDB selecting `app`, with a status allowing `allowed` disruptions.
pub fn mk_pdb(ns: &str, app: &str, allowed: i64) -> Pdb {
    Pdb {
        namespace: ns.into(),
        name: app.into(),
        selector: Some(LabelSelector {
            match_labels: BTreeMap::from([("app".into(), app.into())]),
            match_expressions: vec![],
        }),
        min_available: Some(IntOrString::Int(1)),
        max_unavailable: None,
        status: Some(PdbStatus {
            disruptions_allowed: allowed,
            current_healthy: 2,
            desired_healthy: 1,
            expected_pods: 2,
        }),
    }
}

/// `cps` control-plane nodes and `workers` workers at `ver`; a 2-replica `web`
/// in namespace `shop` on w-1 and w-2 whose PDB allows one disruption.
pub fn mk_cluster(cps: usize, workers: usize, ver: &str) -> ClusterSnapshot {
    let mut nodes: Vec<Node> = (1..=cps)
        .map(|i| mk_node(&format!("cp-{i}"), Role::ControlPlane, ver))
        .collect();
    nodes.extend((1..=workers).map(|i| mk_node(&format!("w-{i}"), Role::Worker, ver)));
    ClusterSnapshot {
        nodes,
        pods: vec![
            mk_pod("shop", "web-0", "w-1", "web"),
            mk_pod("shop", "web-1", "w-2", "web"),
            mk_pod("kube-system", "coredns-0", "w-3", "coredns"),
        ],
        pdbs: vec![mk_pdb("shop", "web", 1)],
    }
}

pub fn mk_spec(yaml: &str) -> ClusterVersionSpec {
    yaml_serde::from_str(yaml).unwrap()
}

/// One pass with the default pack, no schedule, at [`now`].
pub fn run(
    spec: &ClusterVersionSpec,
    snapshot: &ClusterSnapshot,
) -> Result<PassOutcome, PassError> {
    pass(PassInput {
        cluster: Cluster {
            name: "test",
            spec,
            schedule: None,
            labels: None,
        },
        catalog: None,
        snapshot,
        policies: &PolicyEnv::default_pack(),
        config: &serde_json::json!({}),
        source: &Default::default(),
        now: now(),
    })
}
