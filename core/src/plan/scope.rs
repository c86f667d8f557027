//! Which nodes the plan may touch: every control-plane node, and the workers
//! `nodeSelector` selects.

use std::collections::BTreeMap;

use cupcake_api::snapshot::{Node, Role};

use super::index::ClusterIndex;

/// Control-plane nodes are always in scope (the control plane moves as a whole);
/// workers when they carry every `nodeSelector` label.
pub fn in_scope(node_selector: &BTreeMap<String, String>, n: &Node) -> bool {
    n.role == Role::ControlPlane
        || node_selector
            .iter()
            .all(|(k, v)| n.labels.get(k) == Some(v))
}

/// The in-scope nodes, by role.
#[derive(Debug, Clone)]
pub(crate) struct Scope<'a> {
    /// Every control-plane node, in natural name order.
    pub control_plane: Vec<&'a Node>,
    /// In-scope workers, in natural name order.
    pub workers: Vec<&'a Node>,
}

impl<'a> Scope<'a> {
    pub fn new(index: &ClusterIndex<'a>) -> Self {
        let nodes = &index.snapshot().nodes;
        let ordered = |role: Role| -> Vec<&'a Node> {
            index
                .natural_order()
                .iter()
                .filter(|&&i| nodes[i].role == role && index.in_scope(i))
                .map(|&i| &nodes[i])
                .collect()
        };
        Self {
            control_plane: ordered(Role::ControlPlane),
            workers: ordered(Role::Worker),
        }
    }
}
