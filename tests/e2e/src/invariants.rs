//! Invariants the rollout tests sample while a rollout runs.

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams};

/// Every PodDisruptionBudget of `api` whose controller has caught up with its spec
/// (`observedGeneration` = `generation`) and that has fewer healthy pods than it
/// requires, as `name: H healthy < D desired`. A list that fails (the apiserver
/// stopped on purpose, say) reports nothing: the next sample looks again.
pub async fn pdb_violations(api: &Api<PodDisruptionBudget>) -> Vec<String> {
    let Ok(l) = api.list(&ListParams::default()).await else {
        return Vec::new();
    };
    l.items
        .into_iter()
        .filter_map(|p| {
            let s = p.status?;
            (s.observed_generation == p.metadata.generation
                && s.current_healthy < s.desired_healthy)
                .then(|| {
                    format!(
                        "{}: {} healthy < {} desired",
                        p.metadata.name.unwrap_or_default(),
                        s.current_healthy,
                        s.desired_healthy
                    )
                })
        })
        .collect()
}
