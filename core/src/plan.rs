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

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use cupcake_api::KubeVersion;
use cupcake_api::common::{AllowPrerelease, IntOrPercent, Strategy};
use cupcake_api::fleet::{ClusterVersionSpec, VersionCatalogSpec};
use cupcake_api::plan::{
    CurrentVersions, Estimate, Finding, Hop, Plan, Severity, Stage, StageKind,
};
use cupcake_api::snapshot::{ClusterSnapshot, IntOrString, Node, Role};

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

/// Per-PDB disruption budgets and the evictable pods each node holds.
struct PdbIndex<'a> {
    /// Disruptions each PDB allows now.
    budget: Vec<i64>,
    /// `namespace/name` of each PDB.
    names: Vec<String>,
    /// node → [(pdb index, pods of that PDB on the node)], sorted by PDB.
    per_node: HashMap<&'a str, Vec<(usize, i64)>>,
}

fn resolve_int_or_string(v: &IntOrString, total: i64, round_up: bool) -> i64 {
    match v {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let p: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            if round_up {
                (total * p + 99) / 100
            } else {
                total * p / 100
            }
        }
    }
}

impl<'a> PdbIndex<'a> {
    fn build(snapshot: &'a ClusterSnapshot) -> Self {
        let mut by_ns: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, p) in snapshot.pdbs.iter().enumerate() {
            by_ns.entry(p.namespace.as_str()).or_default().push(i);
        }
        let mut matched = vec![0i64; snapshot.pdbs.len()];
        let mut per_node: HashMap<&'a str, Vec<(usize, i64)>> = HashMap::new();
        for pod in &snapshot.pods {
            let Some(cands) = by_ns.get(pod.namespace.as_str()) else {
                continue;
            };
            let counts = pod.evictable() && !pod.node.is_empty();
            for &i in cands {
                let pdb = &snapshot.pdbs[i];
                if pdb
                    .selector
                    .as_ref()
                    .is_some_and(|s| s.matches(&pod.labels))
                {
                    matched[i] += 1;
                    if counts {
                        per_node.entry(pod.node.as_str()).or_default().push((i, 1));
                    }
                }
            }
        }
        // Merge repeated (pdb, 1) entries into counts.
        for v in per_node.values_mut() {
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
        let budget = snapshot
            .pdbs
            .iter()
            .enumerate()
            .map(|(i, p)| match &p.status {
                Some(s) => s.disruptions_allowed,
                // No status (a hand-written snapshot): assume every matched pod is healthy.
                None => {
                    let total = matched[i];
                    if let Some(min) = &p.min_available {
                        (total - resolve_int_or_string(min, total, true)).max(0)
                    } else if let Some(max) = &p.max_unavailable {
                        resolve_int_or_string(max, total, true).max(0)
                    } else {
                        0
                    }
                }
            })
            .collect();
        let names = snapshot
            .pdbs
            .iter()
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect();
        Self {
            budget,
            names,
            per_node,
        }
    }

    fn pods_on(&self, node: &str) -> &[(usize, i64)] {
        self.per_node.get(node).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Split ordered nodes into batches of at most `limit` nodes (None: no limit)
/// such that no batch holds more pods of a PDB than it allows to be disrupted.
/// A node that alone exceeds a budget goes alone (its drain waits on the PDB).
fn batch(nodes: &[String], limit: Option<usize>, pdbs: &PdbIndex<'_>) -> Vec<Vec<String>> {
    let limit = limit.unwrap_or(usize::MAX).max(1);
    let mut remaining: Vec<(&String, &[(usize, i64)])> =
        nodes.iter().map(|n| (n, pdbs.pods_on(n))).collect();
    let mut out = Vec::new();
    let mut used = vec![0i64; pdbs.budget.len()];
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
            let fits = pods.iter().all(|(p, n)| used[*p] + n <= pdbs.budget[*p]);
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

/// Compute the plan.
pub fn plan(input: PlanInput<'_>) -> PlanOutcome {
    let PlanInput {
        spec,
        catalog,
        snapshot,
    } = input;
    let target = spec.kubernetes_version.clone();
    let mut findings = Vec::new();

    let in_scope = |n: &Node| {
        n.role == Role::ControlPlane
            || spec
                .node_selector
                .iter()
                .all(|(k, v)| n.labels.get(k) == Some(v))
    };
    let cp_nodes: Vec<&Node> = {
        let mut v: Vec<&Node> = snapshot
            .nodes
            .iter()
            .filter(|n| n.role == Role::ControlPlane)
            .collect();
        v.sort_by(|a, b| natural_cmp(&a.name, &b.name));
        v
    };
    let workers: Vec<&Node> = {
        let mut v: Vec<&Node> = snapshot
            .nodes
            .iter()
            .filter(|n| n.role == Role::Worker && in_scope(n))
            .collect();
        v.sort_by(|a, b| natural_cmp(&a.name, &b.name));
        v
    };
    let out_of_scope: Vec<&Node> = snapshot.nodes.iter().filter(|n| !in_scope(n)).collect();

    // Current versions.
    let mut apiservers: BTreeMap<String, KubeVersion> = cp_nodes
        .iter()
        .filter_map(|n| {
            n.control_plane
                .as_ref()?
                .apiserver
                .clone()
                .map(|v| (n.name.clone(), v))
        })
        .collect();
    if apiservers.is_empty() && !cp_nodes.is_empty() {
        findings.push(Finding::planner(
            "planner.no-static-pods",
            Severity::Warn,
            false,
            "no kube-apiserver static pods found in kube-system; the control-plane nodes' kubelet versions stand in for the apiserver versions",
        ));
        apiservers = cp_nodes
            .iter()
            .map(|n| (n.name.clone(), n.kubelet_version.clone()))
            .collect();
    }
    let mut kubelets: BTreeMap<String, usize> = BTreeMap::new();
    for n in &snapshot.nodes {
        *kubelets.entry(n.kubelet_version.to_string()).or_default() += 1;
    }
    let control_plane = apiservers.values().min().cloned();
    let current = CurrentVersions {
        control_plane: control_plane.clone(),
        apiservers: apiservers.clone(),
        kubelets,
    };

    let empty = |findings: Vec<Finding>, current: CurrentVersions| PlanOutcome {
        current,
        target: target.clone(),
        up_to_date: false,
        plan: Plan::default(),
        canaries: Vec::new(),
        batch_size: None,
        findings,
    };

    let Some(cp) = control_plane else {
        findings.push(Finding::planner(
            "planner.no-control-plane",
            Severity::Deny,
            false,
            "the snapshot has no control-plane node (label node-role.kubernetes.io/control-plane): CUPCAKE upgrades kubeadm clusters and needs to see their control plane",
        ));
        return empty(findings, current);
    };

    // Target sanity.
    if !spec.allow_prerelease.permits(&target) {
        findings.push(Finding::planner(
            "planner.prerelease",
            Severity::Deny,
            false,
            format!(
                "target {target} is a pre-release; set allowPrerelease: {} in cluster.yaml to accept it",
                if target.prerelease_kind() == Some(cupcake_api::version::PrereleaseKind::Rc) { "rc" } else { "all" }
            ),
        ));
        return empty(findings, current);
    }
    if target.minor_distance(&cp) < 0 {
        findings.push(Finding::planner(
            "planner.minor-downgrade",
            Severity::Deny,
            false,
            format!("target {target} is an older minor than the control plane ({cp}): kubeadm cannot downgrade a minor version; restore from an etcd backup instead"),
        ));
        return empty(findings, current);
    }
    let downgrade = target < cp;
    if downgrade {
        findings.push(Finding::planner(
            "planner.patch-downgrade",
            Severity::Deny,
            true,
            format!("target {target} is older than the control plane ({cp}); patch downgrades are possible but unusual: add planner.patch-downgrade to force in cluster.yaml if you mean it"),
        ));
    }
    let newest_api = apiservers
        .values()
        .max()
        .cloned()
        .unwrap_or_else(|| cp.clone());
    if newest_api.minor_distance(&cp) > 1 {
        findings.push(Finding::planner(
            "planner.apiserver-skew",
            Severity::Warn,
            false,
            format!("kube-apiservers are more than one minor apart ({cp} to {newest_api}); finish the interrupted upgrade first"),
        ));
    } else if newest_api != cp {
        findings.push(Finding::planner(
            "planner.mixed-apiservers",
            Severity::Warn,
            false,
            format!(
                "kube-apiservers run different versions ({}); planning from the oldest, {cp}",
                apiservers
                    .iter()
                    .map(|(n, v)| format!("{n} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if newest_api > target && !downgrade {
        let ahead: Vec<&String> = apiservers
            .iter()
            .filter(|(_, v)| **v > target)
            .map(|(n, _)| n)
            .collect();
        findings.push(Finding::planner(
            "planner.apiserver-newer-than-target",
            Severity::Deny,
            false,
            format!("kube-apiserver on {} is newer than the target {target}; raise the target or restore those nodes", list_names(&ahead)),
        ));
    }

    // Readiness.
    let cp_not_ready: Vec<&str> = cp_nodes
        .iter()
        .filter(|n| !n.ready)
        .map(|n| n.name.as_str())
        .collect();
    if !cp_not_ready.is_empty() {
        findings.push(Finding::planner(
            "planner.control-plane-not-ready",
            Severity::Deny,
            false,
            format!("control-plane node(s) {} are NotReady; upgrading another control-plane node now risks etcd quorum. Fix them first", list_names(&cp_not_ready)),
        ));
    }
    let w_not_ready: Vec<&str> = workers
        .iter()
        .filter(|n| !n.ready)
        .map(|n| n.name.as_str())
        .collect();
    if !w_not_ready.is_empty() {
        findings.push(Finding::planner(
            "planner.node-not-ready",
            Severity::Defer,
            false,
            format!("{} in-scope node(s) NotReady: {}; the upgrade waits until they are Ready or removed", w_not_ready.len(), list_names(&w_not_ready)),
        ));
    }

    // Kubelets newer than the control plane, or than the target.
    let mut newer_than_target = Vec::new();
    let mut newer_than_api = Vec::new();
    let mut out_of_skew = Vec::new();
    for n in snapshot
        .nodes
        .iter()
        .filter(|n| in_scope(n) && n.role == Role::Worker)
    {
        if n.kubelet_version.minor_distance(&target) > 0
            || (!downgrade && n.kubelet_version > target)
        {
            newer_than_target.push(n.name.as_str());
        } else if n.kubelet_version.minor_distance(&cp) > 0 {
            newer_than_api.push(n.name.as_str());
        } else if !kubelet_skew_ok(&n.kubelet_version, &cp) {
            out_of_skew.push(n.name.as_str());
        }
    }
    if !newer_than_target.is_empty() {
        findings.push(Finding::planner(
            "planner.kubelet-newer-than-target",
            Severity::Deny,
            false,
            format!("kubelet on {} is newer than the target {target}; CUPCAKE does not downgrade kubelets", list_names(&newer_than_target)),
        ));
    }
    if !newer_than_api.is_empty() {
        findings.push(Finding::planner(
            "planner.kubelet-newer-than-apiserver",
            Severity::Warn,
            false,
            format!("kubelet on {} is newer than the oldest kube-apiserver ({cp}), which the skew policy forbids; the control-plane upgrade fixes it", list_names(&newer_than_api)),
        ));
    }
    if !out_of_skew.is_empty() {
        findings.push(Finding::planner(
            "planner.kubelet-out-of-skew",
            Severity::Warn,
            false,
            format!("kubelet on {} is already more minors behind the control plane ({cp}) than the skew policy allows; the plan moves it first", list_names(&out_of_skew)),
        ));
    }
    let stuck: Vec<&str> = out_of_scope
        .iter()
        .filter(|n| !kubelet_skew_ok(&n.kubelet_version, &target))
        .map(|n| n.name.as_str())
        .collect();
    if !stuck.is_empty() {
        findings.push(Finding::planner(
            "planner.out-of-scope-skew",
            Severity::Deny,
            true,
            format!("node(s) {} are outside nodeSelector and their kubelets would fall out of the skew policy with a {target} control plane; widen nodeSelector, upgrade them separately, or force planner.out-of-scope-skew", list_names(&stuck)),
        ));
    }

    // Hops.
    let mut hops: Vec<Hop> = Vec::new();
    let cp_needs_hop = apiservers.values().any(|v| *v != target);
    if target.same_minor(&cp) || downgrade {
        if cp_needs_hop {
            hops.push(Hop {
                from: cp.clone(),
                to: target.clone(),
            });
        }
    } else {
        let mut from = cp.clone();
        let mut missing = Vec::new();
        for m in cp.minor + 1..=target.minor {
            let to = if m == target.minor {
                target.clone()
            } else {
                match catalog.and_then(|c| c.latest_patch(target.major, m, AllowPrerelease::None)) {
                    Some(v) => v.clone(),
                    None => {
                        let v = KubeVersion::new(target.major, m, 0);
                        missing.push(v.to_string());
                        v
                    }
                }
            };
            hops.push(Hop {
                from: from.clone(),
                to: to.clone(),
            });
            from = to;
        }
        if !missing.is_empty() {
            findings.push(Finding::planner(
                "planner.no-catalog",
                Severity::Warn,
                false,
                format!(
                    "{} has no release of the intermediate minor(s); the plan uses {}. Add the releases to versions.yaml to hop to their newest patches",
                    if catalog.is_some() { "versions.yaml" } else { "there is no versions.yaml, so CUPCAKE" },
                    missing.join(", ")
                ),
            ));
        }
    }

    // Canaries.
    let canary_on = spec.canary.enabled || spec.strategy == Strategy::Canary;
    let worker_names: BTreeSet<&str> = workers.iter().map(|n| n.name.as_str()).collect();
    let canaries: Vec<String> = if !canary_on {
        Vec::new()
    } else if !spec.canary.nodes.is_empty() {
        let (found, missing): (Vec<&String>, Vec<&String>) = spec
            .canary
            .nodes
            .iter()
            .partition(|n| worker_names.contains(n.as_str()));
        if !missing.is_empty() {
            findings.push(Finding::planner(
                "planner.canary-missing",
                Severity::Warn,
                false,
                format!(
                    "canary node(s) {} are not in-scope workers of this cluster and are ignored",
                    list_names(&missing)
                ),
            ));
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
        findings.push(Finding::planner(
            "planner.canary-missing",
            Severity::Warn,
            false,
            "canary is enabled but no in-scope worker matches; the plan has no canary batch",
        ));
    }

    // Batch size.
    let batch_size = match (spec.strategy, spec.concurrency.or(spec.max_unavailable)) {
        (_, Some(v)) => Some(v.resolve(workers.len())),
        (Strategy::Parallel, None) => None,
        (_, None) => Some(IntOrPercent::Int(1).resolve(workers.len())),
    };

    let pdbs = PdbIndex::build(snapshot);

    // Stages.
    let mut stages: Vec<Stage> = Vec::new();
    let mut worker_ver: Vec<(String, KubeVersion)> = workers
        .iter()
        .map(|n| (n.name.clone(), n.kubelet_version.clone()))
        .collect();
    let mut cp_state: Vec<(String, KubeVersion, KubeVersion)> = cp_nodes
        .iter()
        .map(|n| {
            let api = apiservers
                .get(&n.name)
                .cloned()
                .unwrap_or_else(|| n.kubelet_version.clone());
            (n.name.clone(), api, n.kubelet_version.clone())
        })
        .collect();
    let needs = |v: &KubeVersion, to: &KubeVersion| if downgrade { v > to } else { v < to };

    let worker_pass = |stages: &mut Vec<Stage>, names: Vec<String>, version: &KubeVersion| {
        let (canary, rest): (Vec<String>, Vec<String>) =
            names.into_iter().partition(|n| canaries.contains(n));
        if !canary.is_empty() {
            let limit = Some(canary.len());
            stages.push(Stage {
                kind: StageKind::Canary,
                version: version.clone(),
                batches: batch(&canary, limit, &pdbs),
            });
        }
        if !rest.is_empty() {
            stages.push(Stage {
                kind: StageKind::Workers,
                version: version.clone(),
                batches: batch(&rest, batch_size, &pdbs),
            });
        }
    };

    let mut cp_ver = cp.clone();
    for hop in &hops {
        // Kubelets that would fall out of skew with the next control plane move first.
        let violators: Vec<String> = worker_ver
            .iter()
            .filter(|(_, k)| !kubelet_skew_ok(k, &hop.to) && *k < cp_ver)
            .map(|(n, _)| n.clone())
            .collect();
        if !violators.is_empty() {
            let moving: BTreeSet<&String> = violators.iter().collect();
            for (n, k) in &mut worker_ver {
                if moving.contains(n) {
                    *k = cp_ver.clone();
                }
            }
            worker_pass(&mut stages, violators, &cp_ver);
        }
        let movers: Vec<String> = cp_state
            .iter()
            .filter(|(_, api, kubelet)| needs(api, &hop.to) || needs(kubelet, &hop.to))
            .map(|(n, _, _)| n.clone())
            .collect();
        if spec.backup.etcd
            && let Some(first) = movers.first().or(cp_state.first().map(|c| &c.0))
        {
            stages.push(Stage {
                kind: StageKind::Backup,
                version: hop.to.clone(),
                batches: vec![vec![first.clone()]],
            });
        }
        if !movers.is_empty() {
            stages.push(Stage {
                kind: StageKind::ControlPlane,
                version: hop.to.clone(),
                batches: movers.iter().map(|n| vec![n.clone()]).collect(),
            });
        }
        for (n, api, kubelet) in &mut cp_state {
            if movers.contains(n) {
                *api = hop.to.clone();
                *kubelet = hop.to.clone();
            }
        }
        cp_ver = hop.to.clone();
    }
    // Control-plane kubelets left behind without a hop (the apiservers are already at the target).
    let cp_kubelets: Vec<String> = cp_state
        .iter()
        .filter(|(_, _, k)| needs(k, &target))
        .map(|(n, _, _)| n.clone())
        .collect();
    if !cp_kubelets.is_empty() {
        stages.push(Stage {
            kind: StageKind::ControlPlane,
            version: target.clone(),
            batches: cp_kubelets.iter().map(|n| vec![n.clone()]).collect(),
        });
    }
    let last: Vec<String> = worker_ver
        .iter()
        .filter(|(_, k)| needs(k, &target))
        .map(|(n, _)| n.clone())
        .collect();
    if !last.is_empty() {
        worker_pass(&mut stages, last, &target);
    }

    // PDBs that allow no disruption but cover pods on nodes the plan drains.
    let drained: BTreeSet<&String> = stages
        .iter()
        .filter(|s| s.kind != StageKind::Backup)
        .flat_map(|s| s.nodes())
        .collect();
    let mut blocked: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for node in &drained {
        for (p, _) in pdbs.pods_on(node) {
            if pdbs.budget[*p] <= 0 {
                blocked.entry(*p).or_default().push(node.as_str());
            }
        }
    }
    for (p, nodes) in blocked {
        let mut nodes = nodes;
        nodes.sort_by(|a, b| natural_cmp(a, b));
        findings.push(Finding::planner(
            "planner.pdb-blocked",
            Severity::Defer,
            false,
            format!(
                "PodDisruptionBudget {} allows 0 disruptions and covers pods on {} node(s) to drain ({}); the drain would stall. Scale the workload up or relax the budget",
                pdbs.names[p],
                nodes.len(),
                list_names(&nodes)
            ),
        ));
    }

    let est = &spec.estimates;
    let seconds = stages
        .iter()
        .map(|s| {
            let per = match s.kind {
                StageKind::Backup => est.backup.as_secs(),
                StageKind::ControlPlane => est.control_plane_node.as_secs(),
                StageKind::Canary | StageKind::Workers => est.worker_batch.as_secs(),
            };
            per * s.batches.len() as u64
        })
        .sum();

    let up_to_date = hops.is_empty() && stages.is_empty() && !downgrade;
    PlanOutcome {
        current,
        target,
        up_to_date,
        plan: Plan {
            hops,
            stages,
            estimate: Estimate { seconds },
        },
        canaries,
        batch_size,
        findings,
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
