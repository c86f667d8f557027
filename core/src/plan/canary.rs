//! Canary nodes: upgraded first, as a batch of their own, in every worker pass.

use std::collections::BTreeSet;

use cupcake_api::common::Strategy;
use cupcake_api::fleet::ClusterVersionSpec;
use cupcake_api::plan::Finding;
use cupcake_api::snapshot::Node;

use super::{list_names, rules};

/// The canaries among the in-scope `workers` (natural order): the listed nodes,
/// else the first `count` matching the selector, else the first worker.
pub(crate) fn choose(
    spec: &ClusterVersionSpec,
    workers: &[&Node],
    findings: &mut Vec<Finding>,
) -> Vec<String> {
    let canary_on = spec.canary.enabled || spec.strategy == Strategy::Canary;
    let canaries: Vec<String> = if !canary_on {
        Vec::new()
    } else if !spec.canary.nodes.is_empty() {
        let worker_names: BTreeSet<&str> = workers.iter().map(|n| n.name.as_str()).collect();
        let (found, missing): (Vec<&String>, Vec<&String>) = spec
            .canary
            .nodes
            .iter()
            .partition(|n| worker_names.contains(n.as_str()));
        if !missing.is_empty() {
            findings.push(rules::CANARY_MISSING.finding(format!(
                "canary node(s) {} are not in-scope workers of this cluster and are ignored",
                list_names(&missing)
            )));
        }
        found.into_iter().cloned().collect()
    } else if let Some(sel) = &spec.canary.selector {
        let count = spec.canary.count.unwrap_or(1) as usize;
        workers
            .iter()
            .filter(|n| sel.iter().all(|(k, v)| n.labels.get(k) == Some(v)))
            .take(count)
            .map(|n| n.name.clone())
            .collect()
    } else {
        workers
            .first()
            .map(|n| vec![n.name.clone()])
            .unwrap_or_default()
    };
    if canary_on && canaries.is_empty() && !workers.is_empty() {
        findings.push(rules::CANARY_MISSING.finding(
            "canary is enabled but no in-scope worker matches; the plan has no canary batch",
        ));
    }
    canaries
}
