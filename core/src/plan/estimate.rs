//! How long the plan takes: per-step estimates from cluster.yaml times the batches.

use cupcake_api::fleet::StepEstimates;
use cupcake_api::plan::{Estimate, Stage, StageKind};

/// Backups and control-plane nodes one at a time; worker and canary batches each take one batch's time.
pub(crate) fn estimate(est: &StepEstimates, stages: &[Stage]) -> Estimate {
    let batch_seconds: Vec<u64> = stages
        .iter()
        .map(|s| match s.kind {
            StageKind::Backup => est.backup.as_secs(),
            StageKind::ControlPlane => est.control_plane_node.as_secs(),
            StageKind::Canary | StageKind::Workers => est.worker_batch.as_secs(),
        })
        .collect();
    let seconds = stages
        .iter()
        .zip(&batch_seconds)
        .map(|(s, per)| per * s.batches.len() as u64)
        .sum();
    Estimate {
        seconds,
        batch_seconds,
    }
}
