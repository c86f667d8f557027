//! Worker batches: at most `concurrency`/`maxUnavailable` nodes, and never
//! more pods of one PDB than it allows to be disrupted. Each batch records
//! what ended it ([`BatchLimit`]), so the plan can say why it is that size.

use cupcake_api::common::{IntOrPercent, Strategy};
use cupcake_api::fleet::ClusterVersionSpec;
use cupcake_api::plan::BatchLimit;
use cupcake_api::snapshot::{IntOrString, Pdb};

use super::index::ClusterIndex;

/// A batch size and the setting it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limit {
    pub size: usize,
    /// Why a full batch is full.
    pub full: BatchLimit,
}

impl Limit {
    /// The canary batch: all canaries together.
    pub(crate) fn canary(n: usize) -> Self {
        Self {
            size: n,
            full: BatchLimit::canary(),
        }
    }
}

/// The batch size limit over `workers` in-scope workers (`None`: only PDBs limit it).
pub(crate) fn size(spec: &ClusterVersionSpec, workers: usize) -> Option<Limit> {
    let (v, setting) = match (spec.strategy, spec.concurrency, spec.max_unavailable) {
        (_, Some(v), _) => (v, format!("concurrency: {v}")),
        (_, None, Some(v)) => (v, format!("maxUnavailable: {v}")),
        (Strategy::Parallel, None, None) => return None,
        (Strategy::Rolling, None, None) => (IntOrPercent::Int(1), "strategy: rolling".into()),
        (Strategy::Canary, None, None) => (IntOrPercent::Int(1), "strategy: canary".into()),
    };
    let size = v.resolve(workers);
    Some(Limit {
        size,
        full: BatchLimit::concurrency(size, setting),
    })
}

/// `maxUnavailable 1` / `minAvailable 80%`: the PDB's own limit as written.
fn budget_text(pdb: &Pdb) -> String {
    let v = |x: &IntOrString| match x {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    };
    match (&pdb.max_unavailable, &pdb.min_available) {
        (Some(m), _) => format!("maxUnavailable {}", v(m)),
        (None, Some(m)) => format!("minAvailable {}", v(m)),
        (None, None) => "no budget set".to_string(),
    }
}

fn pdb_limit(index: &ClusterIndex<'_>, p: usize, alone: bool) -> BatchLimit {
    let facts = &index.pdbs()[p];
    match index.snapshot().pdbs.get(p) {
        Some(pdb) => BatchLimit::pdb(
            format!("{}/{}", pdb.namespace, pdb.name),
            budget_text(pdb),
            facts.budget,
            alone,
        ),
        None => BatchLimit::pdb(format!("#{p}"), String::new(), facts.budget, alone),
    }
}

/// Split ordered nodes into batches of at most `limit` nodes (None: no limit)
/// such that no batch holds more pods of a PDB than it allows to be disrupted.
/// A node that alone exceeds a budget goes alone (its drain waits on the PDB).
/// Returns the batches and, per batch, what ended it; `not_in_scope` workers
/// are named in the reason of a batch that simply ran out of nodes.
pub(crate) fn split(
    nodes: &[String],
    limit: Option<&Limit>,
    index: &ClusterIndex<'_>,
    not_in_scope: usize,
) -> (Vec<Vec<String>>, Vec<BatchLimit>) {
    let max = limit.map_or(usize::MAX, |l| l.size).max(1);
    let budget: Vec<i64> = index.pdbs().iter().map(|p| p.budget).collect();
    let mut remaining: Vec<(&String, &[(usize, i64)])> =
        nodes.iter().map(|n| (n, index.pods_on(n))).collect();
    let mut out = Vec::new();
    let mut why = Vec::new();
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
        // The first PDB that turned a node away from this batch.
        let mut blocked_by: Option<usize> = None;
        let mut reason = None;
        for (i, (node, pods)) in remaining.iter().enumerate() {
            if current.len() >= max {
                reason = limit.map(|l| l.full.clone());
                break;
            }
            let over = pods.iter().find(|(p, n)| used[*p] + n > budget[*p]);
            if over.is_none() || current.is_empty() {
                for (p, n) in pods.iter() {
                    if used[*p] == 0 {
                        touched.push(*p);
                    }
                    used[*p] += n;
                }
                current.push((*node).clone());
                taken[i] = true;
                if let Some((p, _)) = over {
                    // Over budget alone: nothing may join it.
                    reason = Some(pdb_limit(index, *p, true));
                    break;
                }
            } else if blocked_by.is_none() {
                blocked_by = over.map(|(p, _)| *p);
            }
        }
        let reason = match (reason, limit) {
            (Some(r), _) => r,
            // Full, and the stage ended with it: still the batch size.
            (None, Some(l)) if current.len() >= max => l.full.clone(),
            (None, _) => match blocked_by {
                Some(p) => pdb_limit(index, p, false),
                None => BatchLimit::remaining(not_in_scope),
            },
        };
        let mut i = 0;
        remaining.retain(|_| {
            let keep = !taken[i];
            i += 1;
            keep
        });
        out.push(current);
        why.push(reason);
    }
    (out, why)
}
