//! The stages of a plan, in order: per hop, the kubelets that would fall out
//! of skew with the next control plane move first (to the current control
//! plane's version), then the etcd backup and the control-plane nodes one at a
//! time; control-plane kubelets left behind follow; a last pass moves every
//! worker to the target. Each worker pass puts its canaries first, in a batch
//! of their own.

use std::collections::{BTreeMap, BTreeSet};

use cupcake_api::KubeVersion;
use cupcake_api::plan::{Hop, Stage, StageKind};

use super::batches;
use super::index::ClusterIndex;
use super::kubelet_skew_ok;
use super::scope::Scope;

/// Everything the stage sequence depends on.
pub(crate) struct StageInput<'x> {
    pub index: &'x ClusterIndex<'x>,
    pub scope: &'x Scope<'x>,
    /// kube-apiserver version per control-plane node.
    pub apiservers: &'x BTreeMap<String, KubeVersion>,
    pub hops: &'x [Hop],
    /// The control plane's version now.
    pub cp: &'x KubeVersion,
    pub target: &'x KubeVersion,
    pub downgrade: bool,
    /// `backup.etcd`: an etcd backup before each hop's control-plane stage.
    pub backup: bool,
    pub canaries: &'x [String],
    pub batch_size: Option<batches::Limit>,
    /// Workers the `nodeSelector` leaves out.
    pub not_in_scope: usize,
}

/// A worker pass to `version`: canaries first, alone, then the rest in batches.
fn worker_pass(
    stages: &mut Vec<Stage>,
    input: &StageInput<'_>,
    names: Vec<String>,
    version: &KubeVersion,
) {
    let (canary, rest): (Vec<String>, Vec<String>) =
        names.into_iter().partition(|n| input.canaries.contains(n));
    if !canary.is_empty() {
        let limit = batches::Limit::canary(canary.len());
        let (batches, batch_limits) =
            batches::split(&canary, Some(&limit), input.index, input.not_in_scope);
        stages.push(Stage {
            kind: StageKind::Canary,
            version: version.clone(),
            batches,
            batch_limits,
        });
    }
    if !rest.is_empty() {
        let (batches, batch_limits) = batches::split(
            &rest,
            input.batch_size.as_ref(),
            input.index,
            input.not_in_scope,
        );
        stages.push(Stage {
            kind: StageKind::Workers,
            version: version.clone(),
            batches,
            batch_limits,
        });
    }
}

/// The stages, in order.
pub(crate) fn sequence(input: &StageInput<'_>) -> Vec<Stage> {
    let StageInput {
        scope,
        apiservers,
        hops,
        cp,
        target,
        downgrade,
        backup,
        ..
    } = *input;
    let mut stages: Vec<Stage> = Vec::new();
    let mut worker_ver: Vec<(String, KubeVersion)> = scope
        .workers
        .iter()
        .map(|n| (n.name.clone(), n.kubelet_version.clone()))
        .collect();
    let mut cp_state: Vec<(String, KubeVersion, KubeVersion)> = scope
        .control_plane
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

    let mut cp_ver = cp.clone();
    for hop in hops {
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
            worker_pass(&mut stages, input, violators, &cp_ver);
        }
        let movers: Vec<String> = cp_state
            .iter()
            .filter(|(_, api, kubelet)| needs(api, &hop.to) || needs(kubelet, &hop.to))
            .map(|(n, _, _)| n.clone())
            .collect();
        if backup && let Some(first) = movers.first().or(cp_state.first().map(|c| &c.0)) {
            stages.push(Stage {
                kind: StageKind::Backup,
                version: hop.to.clone(),
                batches: vec![vec![first.clone()]],
                batch_limits: Vec::new(),
            });
        }
        if !movers.is_empty() {
            stages.push(Stage {
                kind: StageKind::ControlPlane,
                version: hop.to.clone(),
                batches: movers.iter().map(|n| vec![n.clone()]).collect(),
                batch_limits: Vec::new(),
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
        .filter(|(_, _, k)| needs(k, target))
        .map(|(n, _, _)| n.clone())
        .collect();
    if !cp_kubelets.is_empty() {
        stages.push(Stage {
            kind: StageKind::ControlPlane,
            version: target.clone(),
            batches: cp_kubelets.iter().map(|n| vec![n.clone()]).collect(),
            batch_limits: Vec::new(),
        });
    }
    let last: Vec<String> = worker_ver
        .iter()
        .filter(|(_, k)| needs(k, target))
        .map(|(n, _)| n.clone())
        .collect();
    if !last.is_empty() {
        worker_pass(&mut stages, input, last, target);
    }
    stages
}
