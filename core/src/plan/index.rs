//! The observed cluster, indexed once per pass: nodes by name and in natural
//! order, which nodes are in scope, and PDB → pods → nodes with each PDB's
//! disruption budget. The planner batches workers from it and the gate input
//! summarises it (`cluster.nodes`, `cluster.pdbs`, `cluster.timeline`), so both
//! see the same matching. Sized for 5,000 nodes, 50,000 pods and 500 PDBs.

use std::collections::{BTreeMap, HashMap};

use cupcake_api::fleet::ClusterVersionSpec;
use cupcake_api::snapshot::ClusterSnapshot;

use super::natural_cmp;
use super::scope::in_scope;
use super::validate::Amount;
use crate::gate::FnvBuild;

/// What the index knows about one PodDisruptionBudget (same position as in the snapshot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdbFacts {
    /// Pods of the snapshot the selector matches, on any node and in any phase.
    pub pods: i64,
    /// Disruptions the PDB allows now: `status.disruptionsAllowed`; without a status
    /// (a hand-written snapshot), computed from the spec as if every matched pod were
    /// healthy. A budget [`validate`](super::validate) would refuse counts as 0.
    pub budget: i64,
    /// Nodes holding evictable pods of this PDB, in natural name order.
    pub nodes: Vec<usize>,
}

/// One cluster snapshot, indexed for the planner and the gate input.
#[derive(Debug)]
pub struct ClusterIndex<'a> {
    snapshot: &'a ClusterSnapshot,
    node_selector: &'a BTreeMap<String, String>,
    by_name: HashMap<&'a str, usize, FnvBuild>,
    in_scope: Vec<bool>,
    /// Node positions in natural name order.
    order: Vec<usize>,
    /// Where node i is in `order`.
    rank: Vec<usize>,
    /// node → [(pdb, evictable pods of that PDB on the node)], sorted by PDB.
    pods_on: Vec<Vec<(usize, i64)>>,
    pdbs: Vec<PdbFacts>,
}

impl<'a> ClusterIndex<'a> {
    /// Index `snapshot`, with the scope of `spec.nodeSelector`.
    pub fn new(spec: &'a ClusterVersionSpec, snapshot: &'a ClusterSnapshot) -> Self {
        let nodes = &snapshot.nodes;
        let by_name: HashMap<&str, usize, FnvBuild> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        let in_scope = nodes
            .iter()
            .map(|n| in_scope(&spec.node_selector, n))
            .collect();
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_by(|&a, &b| natural_cmp(&nodes[a].name, &nodes[b].name));
        let mut rank = vec![0; order.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i] = r;
        }
        let (pods_on, pdbs) = match_pdbs(snapshot, &by_name, &order);
        Self {
            snapshot,
            node_selector: &spec.node_selector,
            by_name,
            in_scope,
            order,
            rank,
            pods_on,
            pdbs,
        }
    }

    /// The indexed snapshot.
    pub fn snapshot(&self) -> &'a ClusterSnapshot {
        self.snapshot
    }

    /// Built from exactly these values (not copies of them).
    pub fn is_for(&self, spec: &ClusterVersionSpec, snapshot: &ClusterSnapshot) -> bool {
        std::ptr::eq(self.snapshot, snapshot)
            && std::ptr::eq(self.node_selector, &spec.node_selector)
    }

    /// Position of the node named `name` in `snapshot.nodes`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Node i is a control-plane node or a worker nodeSelector selects.
    pub fn in_scope(&self, i: usize) -> bool {
        self.in_scope[i]
    }

    /// Node positions in natural name order (`worker-2` before `worker-10`).
    pub fn natural_order(&self) -> &[usize] {
        &self.order
    }

    /// Where node i is in [`natural_order`](Self::natural_order).
    pub fn rank(&self, i: usize) -> usize {
        self.rank[i]
    }

    /// Per PDB, in snapshot order.
    pub fn pdbs(&self) -> &[PdbFacts] {
        &self.pdbs
    }

    /// `(pdb, evictable pods)` on the node named `name`, sorted by PDB.
    pub fn pods_on(&self, name: &str) -> &[(usize, i64)] {
        self.position(name)
            .map(|i| self.pods_on[i].as_slice())
            .unwrap_or(&[])
    }
}

/// Match every pod against the PDBs of its namespace.
fn match_pdbs(
    snapshot: &ClusterSnapshot,
    by_name: &HashMap<&str, usize, FnvBuild>,
    order: &[usize],
) -> (Vec<Vec<(usize, i64)>>, Vec<PdbFacts>) {
    // Candidate PDBs per pod without testing every selector of the namespace: PDBs are
    // indexed by one of their matchLabels (key, value); those without matchLabels are
    // tested against every pod of their namespace.
    #[derive(Default)]
    struct NsIndex<'a> {
        by_label: HashMap<&'a str, HashMap<&'a str, Vec<usize>>>,
        scan: Vec<usize>,
    }
    let mut by_ns: HashMap<&str, NsIndex<'_>> = HashMap::new();
    for (i, p) in snapshot.pdbs.iter().enumerate() {
        let ix = by_ns.entry(p.namespace.as_str()).or_default();
        match p
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.iter().next())
        {
            Some((k, v)) => ix
                .by_label
                .entry(k.as_str())
                .or_default()
                .entry(v.as_str())
                .or_default()
                .push(i),
            None if p.selector.is_some() => ix.scan.push(i),
            None => {} // a null selector selects nothing
        }
    }
    let mut matched = vec![0i64; snapshot.pdbs.len()];
    let mut pods_on: Vec<Vec<(usize, i64)>> = vec![Vec::new(); snapshot.nodes.len()];
    let mut cands = Vec::new();
    for pod in &snapshot.pods {
        let Some(ix) = by_ns.get(pod.namespace.as_str()) else {
            continue;
        };
        cands.clear();
        for (k, values) in &ix.by_label {
            if let Some(v) = pod.labels.get(*k).and_then(|v| values.get(v.as_str())) {
                cands.extend_from_slice(v);
            }
        }
        cands.extend_from_slice(&ix.scan);
        // Only pods a drain evicts count against a node's batch.
        let node = (pod.evictable() && !pod.node.is_empty())
            .then(|| by_name.get(pod.node.as_str()).copied())
            .flatten();
        for &i in &cands {
            if snapshot.pdbs[i]
                .selector
                .as_ref()
                .is_some_and(|s| s.matches(&pod.labels))
            {
                matched[i] += 1;
                if let Some(n) = node {
                    pods_on[n].push((i, 1));
                }
            }
        }
    }
    // Merge repeated (pdb, 1) entries into counts.
    for v in &mut pods_on {
        v.sort_unstable_by_key(|e| e.0);
        v.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                earlier.1 += later.1;
                true
            } else {
                false
            }
        });
    }
    let mut nodes: Vec<Vec<usize>> = vec![Vec::new(); snapshot.pdbs.len()];
    for &n in order {
        for &(p, _) in &pods_on[n] {
            nodes[p].push(n);
        }
    }
    let pdbs = snapshot
        .pdbs
        .iter()
        .zip(matched)
        .zip(nodes)
        .map(|((p, pods), nodes)| {
            let budget = match &p.status {
                Some(s) => s.disruptions_allowed,
                None => {
                    let amount = |v| Amount::parse(v).map(|a| a.of(pods));
                    // A budget validate() refuses lets nothing be disrupted.
                    let allowed = if let Some(min) = &p.min_available {
                        amount(min).map(|min| pods - min)
                    } else if let Some(max) = &p.max_unavailable {
                        amount(max)
                    } else {
                        Ok(0)
                    };
                    allowed.unwrap_or(0).max(0)
                }
            };
            PdbFacts {
                pods,
                budget,
                nodes,
            }
        })
        .collect();
    (pods_on, pdbs)
}
