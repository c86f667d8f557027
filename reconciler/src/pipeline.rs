//! One cluster of a fleet tree through the pure pipeline: load → compile the
//! schedule and the policies → `cupcake_core::pass`. `cupcake plan` and the
//! GitOps loop both call [`evaluate`]; they differ only in where the tree and
//! the snapshot come from.

use chrono::{DateTime, Utc};
use cupcake_api::report::PlanReport;
use cupcake_api::snapshot::ClusterSnapshot;
use cupcake_core::pass::{Cluster, PassInput, PassOutcome};

use crate::gate::PolicyEnv;
use crate::load::{self, ClusterDef, Fleet};
use crate::source::FleetTree;

/// A loaded cluster definition: the part of a pass that does not depend on the
/// observed cluster. Load errors name the file, line and field.
#[derive(Debug)]
pub struct Loaded {
    pub fleet: Fleet,
    pub cluster: String,
    pub schedule: Option<crate::schedule::Compiled>,
    pub policies: std::sync::Arc<PolicyEnv>,
    pub config: serde_json::Value,
}

impl Loaded {
    /// The cluster's definition (`cluster.yaml`, `schedule.yaml`).
    pub fn def(&self) -> &ClusterDef {
        &self.fleet.clusters[&self.cluster]
    }
}

/// Load and validate one cluster of `tree`.
pub fn load(tree: &FleetTree, cluster: &str) -> anyhow::Result<Loaded> {
    let fleet = load::cluster(tree, cluster)?;
    let def = &fleet.clusters[cluster];
    let schedule = def
        .schedule
        .as_ref()
        .map(|s| crate::schedule::Compiled::new(&s.spec))
        .transpose()
        .map_err(|e| {
            let file = format!("clusters/{cluster}/schedule.yaml");
            anyhow::anyhow!("{}: {e}", tree.display(&file).display())
        })?;
    let policies = PolicyEnv::with_fleet(&load::policy_sources(tree)?);
    let config = load::policy_config(tree)?;
    Ok(Loaded {
        fleet,
        cluster: cluster.to_string(),
        schedule,
        policies,
        config,
    })
}

/// What one evaluation decided, and the report that presents it.
#[derive(Debug)]
pub struct Evaluated {
    pub pass: PassOutcome,
    pub report: PlanReport,
}

/// Plan, schedule, gate and render `loaded` against `snapshot` at `now`.
pub fn evaluate(
    tree: &FleetTree,
    loaded: &Loaded,
    snapshot: &ClusterSnapshot,
    now: DateTime<Utc>,
) -> anyhow::Result<Evaluated> {
    let def = loaded.def();
    let source = tree.source_ref(&def.path.to_string_lossy());
    let pass = cupcake_core::pass(PassInput {
        cluster: Cluster {
            name: &loaded.cluster,
            spec: &def.version.spec,
            schedule: loaded.schedule.as_ref(),
            labels: Some(&def.version.metadata.labels),
        },
        catalog: loaded.fleet.catalog_spec(),
        snapshot,
        policies: &loaded.policies,
        config: &loaded.config,
        source: &source,
        now,
    })
    .map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}",
            tree.display(&format!("clusters/{}", loaded.cluster))
                .display()
        )
    })?;
    let report = pass.report(&loaded.cluster);
    Ok(Evaluated { pass, report })
}
