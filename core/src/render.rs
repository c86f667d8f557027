//! Render an approved plan into the DirectUpdate the rollout controller runs.
//! Pure and deterministic: the same plan gives the same name and bytes.

use std::collections::BTreeMap;

use cupcake_api::common::Strategy;
use cupcake_api::crd::{BackupRef, DirectUpdate, DirectUpdateSpec, SourceRef};
use cupcake_api::fleet::ClusterVersionSpec;
use cupcake_api::labels;
use cupcake_api::plan::Plan;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sha2::{Digest, Sha256};

use crate::plan::PlanOutcome;

/// Short, stable hash of what the DirectUpdate does: the cluster and its whole spec
/// except the provenance (a new commit with the same desired state is the same
/// DirectUpdate; any change to what would run — target, stages, strategy, drain,
/// timeouts, components … — is a new one).
pub fn spec_hash(cluster: &str, spec: &DirectUpdateSpec) -> String {
    let mut h = Sha256::new();
    h.update(cluster.as_bytes());
    h.update(b"\0");
    let without_source = DirectUpdateSpec {
        source: None,
        ..spec.clone()
    };
    // serde_json of our own types cannot fail; fall back to Debug to stay total.
    let bytes = serde_json::to_vec(&without_source)
        .unwrap_or_else(|_| format!("{without_source:?}").into_bytes());
    h.update(&bytes);
    let digest = h.finalize();
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// A DNS-1123 label-safe form of a cluster name.
fn dns_label(s: &str) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    out = out.trim_matches('-').to_string();
    out.truncate(40);
    // A cut at a '-' must not leave a trailing '-' (a label value ends
    // alphanumeric, or the API server refuses the object).
    out.truncate(out.trim_end_matches('-').len());
    if out.is_empty() {
        "cluster".to_string()
    } else {
        out
    }
}

/// Deterministic DirectUpdate name: `<cluster>-<target>-<hash of the spec>`.
pub fn name(cluster: &str, spec: &DirectUpdateSpec) -> String {
    format!(
        "{}-{}-{}",
        dns_label(cluster),
        spec.target_version
            .to_string()
            .replace(['.', '+'], "-")
            .to_ascii_lowercase(),
        spec_hash(cluster, spec)
    )
}

/// The DirectUpdate for a plan.
pub fn direct_update(
    cluster: &str,
    spec: &ClusterVersionSpec,
    outcome: &PlanOutcome,
    source: &SourceRef,
) -> DirectUpdate {
    let plan: &Plan = &outcome.plan;
    let mut labels_map = BTreeMap::from([
        (labels::CLUSTER.to_string(), dns_label(cluster)),
        (labels::MANAGED_BY.to_string(), "cupcake".to_string()),
    ]);
    labels_map.retain(|_, v| !v.is_empty());
    let mut annotations = BTreeMap::new();
    if let Some(r) = &source.revision {
        annotations.insert(labels::SOURCE_REVISION.to_string(), r.clone());
    }
    if let Some(r) = &source.repository {
        annotations.insert(labels::SOURCE_REPOSITORY.to_string(), r.clone());
    }
    if let Some(p) = &source.path {
        annotations.insert(labels::SOURCE_PATH.to_string(), p.clone());
    }
    let canary = (!outcome.canaries.is_empty()).then(|| cupcake_api::common::CanarySpec {
        enabled: true,
        nodes: outcome.canaries.clone(),
        selector: None,
        count: None,
    });
    let concurrency = match outcome.batch_size {
        Some(n) => u32::try_from(n).unwrap_or(u32::MAX),
        // Parallel: as many nodes as the largest batch.
        None => plan
            .stages
            .iter()
            .flat_map(|s| s.batches.iter().map(Vec::len))
            .max()
            .unwrap_or(1) as u32,
    };
    let has_source = source != &SourceRef::default();
    let du_spec = DirectUpdateSpec {
        target_version: outcome.target.clone(),
        components: spec.components.clone(),
        strategy: if canary.is_some() && spec.strategy == Strategy::Rolling {
            Strategy::Canary
        } else {
            spec.strategy
        },
        concurrency: concurrency.max(1),
        canary,
        node_selector: spec.node_selector.clone(),
        preflight_checks: spec.preflight_checks,
        air_gapped: None,
        dry_run: false,
        operation_timeout: None,
        node_timeout: None,
        paused: false,
        upgrade_path: plan.hops.iter().map(|h| h.to.clone()).collect(),
        stages: plan.stages.clone(),
        backup: Some(BackupRef {
            etcd: spec.backup.etcd,
            store_ref: spec.backup.store.clone(),
        }),
        drain: Some(spec.drain.clone()),
        source: has_source.then(|| source.clone()),
    };
    labels_map.insert(labels::PLAN_HASH.to_string(), spec_hash(cluster, &du_spec));
    DirectUpdate {
        metadata: ObjectMeta {
            name: Some(name(cluster, &du_spec)),
            labels: Some(labels_map),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..ObjectMeta::default()
        },
        spec: du_spec,
        status: None,
    }
}
