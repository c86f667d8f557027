//! The planner: a pure function from desired state (ClusterVersion), the
//! version catalogue and an observed cluster to an upgrade plan and the
//! planner's own findings.
//!
//! Rules, in the order they apply:
//! - the control plane moves one minor per hop; intermediate hops go to the
//!   newest patch of that minor in `versions.yaml` (without one, `x.y.0`);
//! - workers move as few times as possible: the control plane advances as far
//!   as the kubelet skew policy allows, then the kubelets that would fall out
//!   of skew move once, to the control plane's version; a last pass moves
//!   every worker to the target;
//! - control-plane nodes go one at a time (the first runs `kubeadm upgrade
//!   apply`), then canaries as a batch of their own, then worker batches sized
//!   by `concurrency`/`maxUnavailable` and never holding more pods of one PDB
//!   than it allows to be disrupted.
//!
//! [`plan`] runs the steps in that order, one module each: [`scope`], current
//! versions, checks, hops, canary, batches, stages, estimate. Its findings are
//! the [`rules`]; [`validate`] refuses snapshot data it would misread, and
//! [`ClusterIndex`] is the cluster indexed once for the planner and the gate input.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use cupcake_api::KubeVersion;
use cupcake_api::fleet::{ClusterVersionSpec, VersionCatalogSpec};
use cupcake_api::plan::{CurrentVersions, Finding, Plan, StageKind};
use cupcake_api::snapshot::ClusterSnapshot;

mod batches;
mod canary;
mod checks;
mod current;
mod estimate;
mod hops;
pub mod index;
pub mod rules;
pub mod scope;
mod stages;
mod validate;

pub use index::{ClusterIndex, PdbFacts};
pub use validate::{SnapshotDataError, validate};

/// Everything the planner reads.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub spec: &'a ClusterVersionSpec,
    pub catalog: Option<&'a VersionCatalogSpec>,
    pub snapshot: &'a ClusterSnapshot,
}

/// What the planner returns.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOutcome {
    pub current: CurrentVersions,
    pub target: KubeVersion,
    /// The control plane and every in-scope node already run the target.
    pub up_to_date: bool,
    pub plan: Plan,
    /// Canary nodes chosen for this plan.
    pub canaries: Vec<String>,
    /// Resolved worker batch size limit (`None`: only PDBs limit it).
    pub batch_size: Option<usize>,
    pub findings: Vec<Finding>,
}

/// How many nodes are listed in a finding's message before "and N more".
const LIST_LIMIT: usize = 5;

/// Join names, abbreviating long lists.
pub fn list_names<S: AsRef<str>>(names: &[S]) -> String {
    let shown: Vec<&str> = names.iter().take(LIST_LIMIT).map(AsRef::as_ref).collect();
    let mut s = shown.join(", ");
    if names.len() > LIST_LIMIT {
        s.push_str(&format!(" and {} more", names.len() - LIST_LIMIT));
    }
    s
}

/// Order names the way people count: `worker-2` before `worker-10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let nx = x.iter().take_while(|b| b.is_ascii_digit()).count();
                let ny = y.iter().take_while(|b| b.is_ascii_digit()).count();
                let (dx, dy) = (&x[..nx], &y[..ny]);
                let tx = dx.iter().skip_while(|b| **b == b'0').count();
                let ty = dy.iter().skip_while(|b| **b == b'0').count();
                let o = tx.cmp(&ty).then_with(|| dx[nx - tx..].cmp(&dy[ny - ty..]));
                if o != Ordering::Equal {
                    return o;
                }
                x = &x[nx..];
                y = &y[ny..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

/// Kubernetes' kubelet skew policy: never newer than the apiserver, at most
/// 3 minors older (2 when the kubelet's minor is below 25).
pub fn kubelet_skew_ok(kubelet: &KubeVersion, apiserver: &KubeVersion) -> bool {
    let behind = apiserver.minor_distance(kubelet);
    let max = if kubelet.minor < 25 { 2 } else { 3 };
    (0..=max).contains(&behind)
}

/// Compute the plan. Run [`validate`] on the snapshot first (`pass` does): a PDB
/// budget it would refuse is taken here as allowing no disruption.
pub fn plan(input: PlanInput<'_>) -> PlanOutcome {
    plan_indexed(input, &ClusterIndex::new(input.spec, input.snapshot))
}

/// [`plan`] with the cluster already indexed (`pass` builds the index once for the
/// planner and the gate input). An index built from other values is rebuilt.
pub fn plan_indexed(input: PlanInput<'_>, index: &ClusterIndex<'_>) -> PlanOutcome {
    let PlanInput {
        spec,
        catalog,
        snapshot,
    } = input;
    let own;
    let index = if index.is_for(spec, snapshot) {
        index
    } else {
        own = ClusterIndex::new(spec, snapshot);
        &own
    };
    let target = spec.kubernetes_version.clone();
    let mut findings = Vec::new();
    let scope = scope::Scope::new(index);
    let current = current::versions(&scope, &snapshot.nodes, &mut findings);
    let Some(cp) = current.control_plane.clone() else {
        findings.push(rules::NO_CONTROL_PLANE.finding(
            "the snapshot has no control-plane node (label node-role.kubernetes.io/control-plane): CUPCAKE upgrades kubeadm clusters and needs to see their control plane",
        ));
        return PlanOutcome::unplanned(current, target, findings);
    };
    let Some(downgrade) = checks::target(spec, &target, &cp, catalog, &mut findings) else {
        return PlanOutcome::unplanned(current, target, findings);
    };
    checks::apiservers(&current.apiservers, &cp, &target, downgrade, &mut findings);
    checks::kubelets(index, &cp, &target, downgrade, &mut findings);
    let hops = hops::hops(
        &current.apiservers,
        &cp,
        &target,
        downgrade,
        catalog,
        &mut findings,
    );
    checks::inputs(spec, index, scope.workers.len(), &mut findings);
    let canaries = canary::choose(spec, &scope.workers, &mut findings);
    let limit = batches::size(spec, scope.workers.len());
    let batch_size = limit.as_ref().map(|l| l.size);
    let all_workers = snapshot
        .nodes
        .iter()
        .filter(|n| n.role == cupcake_api::snapshot::Role::Worker)
        .count();
    let stages = stages::sequence(&stages::StageInput {
        index,
        scope: &scope,
        apiservers: &current.apiservers,
        hops: &hops,
        cp: &cp,
        target: &target,
        downgrade,
        backup: spec.backup.etcd,
        canaries: &canaries,
        batch_size: limit,
        not_in_scope: all_workers.saturating_sub(scope.workers.len()),
    });
    let estimate = estimate::estimate(&spec.estimates, &stages);
    let up_to_date = hops.is_empty() && stages.is_empty() && !downgrade;
    PlanOutcome {
        current,
        target,
        up_to_date,
        plan: Plan {
            hops,
            stages,
            estimate,
        },
        canaries,
        batch_size,
        findings,
    }
}

impl PlanOutcome {
    /// No plan: the findings say why.
    fn unplanned(current: CurrentVersions, target: KubeVersion, findings: Vec<Finding>) -> Self {
        Self {
            current,
            target,
            up_to_date: false,
            plan: Plan::default(),
            canaries: Vec::new(),
            batch_size: None,
            findings,
        }
    }
}

/// Node names in a plan, in order, without repeats.
pub fn ordered_nodes(plan: &Plan) -> Vec<String> {
    let mut seen = BTreeSet::new();
    plan.stages
        .iter()
        .filter(|s| s.kind != StageKind::Backup)
        .flat_map(|s| s.nodes())
        .filter(|n| seen.insert((*n).clone()))
        .cloned()
        .collect()
}
