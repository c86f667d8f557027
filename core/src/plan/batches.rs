//! Worker batches: at most `concurrency`/`maxUnavailable` nodes, and never
//! more pods of one PDB than it allows to be disrupted.

use cupcake_api::common::{IntOrPercent, Strategy};
use cupcake_api::fleet::ClusterVersionSpec;

use super::index::ClusterIndex;

/// The batch size limit over `workers` in-scope workers (`None`: only PDBs limit it).
pub(crate) fn size(spec: &ClusterVersionSpec, workers: usize) -> Option<usize> {
    match (spec.strategy, spec.concurrency.or(spec.max_unavailable)) {
        (_, Some(v)) => Some(v.resolve(workers)),
        (Strategy::Parallel, None) => None,
        (_, None) => Some(IntOrPercent::Int(1).resolve(workers)),
    }
}

/// Split ordered nodes into batches of at most `limit` nodes (None: no limit)
/// such that no batch holds more pods of a PDB than it allows to be disrupted.
/// A node that alone exceeds a budget goes alone (its drain waits on the PDB).
pub(crate) fn split(
    nodes: &[String],
    limit: Option<usize>,
    index: &ClusterIndex<'_>,
) -> Vec<Vec<String>> {
    let limit = limit.unwrap_or(usize::MAX).max(1);
    let budget: Vec<i64> = index.pdbs().iter().map(|p| p.budget).collect();
    let mut remaining: Vec<(&String, &[(usize, i64)])> =
        nodes.iter().map(|n| (n, index.pods_on(n))).collect();
    let mut out = Vec::new();
    let mut used = vec![0i64; budget.len()];
    let mut touched: Vec<usize> = Vec::new();
    let mut taken = Vec::with_capacity(remaining.len());
    while !remaining.is_empty() {
        for p in touched.drain(..) {
            used[p] = 0;
        }
        taken.clear();
        taken.resize(remaining.len(), false);
        let mut current = Vec::new();
        for (i, (node, pods)) in remaining.iter().enumerate() {
            if current.len() >= limit {
                break;
            }
            let fits = pods.iter().all(|(p, n)| used[*p] + n <= budget[*p]);
            if fits || current.is_empty() {
                for (p, n) in pods.iter() {
                    if used[*p] == 0 {
                        touched.push(*p);
                    }
                    used[*p] += n;
                }
                current.push((*node).clone());
                taken[i] = true;
                if !fits {
                    break; // over budget alone: nothing may join it
                }
            }
        }
        let mut i = 0;
        remaining.retain(|_| {
            let keep = !taken[i];
            i += 1;
            keep
        });
        out.push(current);
    }
    out
}
