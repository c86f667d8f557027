//! Carry out the effects `cupcake_core::rollout::next` decided: node patches
//! (cordon, assignment with the air-gapped `package-source`, release, backup request
//! with `spec.backup.storeRef` as `backup-store`), drains through the eviction
//! API, and the DirectUpdate's `retry` annotation. Each is idempotent.

use std::collections::BTreeMap;

use cupcake_api::crd::DirectUpdate;
use cupcake_api::labels;
use cupcake_api::protocol::AgentStatus;
use cupcake_core::rollout::Effect;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::slim::CachedNode;
use super::{FIELD_MANAGER, Metrics};
use cupcake_api::common::DrainSpec;

/// An effect that failed (the decision is retried; its status is not written).
#[derive(Debug, thiserror::Error)]
#[error("{what}: {error}")]
pub struct EffectError {
    pub what: String,
    pub error: kube::Error,
}

fn err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> EffectError {
    let what = what.into();
    move |error| EffectError { what, error }
}

/// The clients effects use: `evict` has client retries off, so a PDB refusal (429)
/// comes back at once instead of after minutes of backoff.
#[derive(Clone)]
#[allow(missing_debug_implementations)] // kube::Client has no Debug
pub struct Clients {
    pub client: Client,
    pub evict: Client,
}

async fn patch_node(
    c: &Clients,
    node: &str,
    patch: serde_json::Value,
) -> Result<Option<Node>, EffectError> {
    Api::<Node>::all(c.client.clone())
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(Some)
        .map_err(err(format!("patching node {node}")))
}

/// What an effect did that the next one of the same node may need.
#[derive(Debug, Default)]
pub struct Done {
    /// The node as the API server has it after a node patch (the watch may deliver it
    /// after the next decision).
    pub node: Option<Node>,
    /// A drain: how many of the node's pods keep it from being empty (evicted now,
    /// or refused and waited for); DaemonSet, mirror and finished pods do not count.
    pub pods_left: Option<usize>,
}

impl From<Option<Node>> for Done {
    fn from(node: Option<Node>) -> Self {
        Done {
            node,
            pods_left: None,
        }
    }
}

/// Perform one effect. `cached` is the controller's copy of the effect's node, if it
/// has one; `pods_left` what this decision's drain of the node left (an assignment
/// `only_if_drained` is written only when it left nothing).
pub async fn perform(
    c: &Clients,
    du: &DirectUpdate,
    drain: &DrainSpec,
    effect: &Effect,
    cached: Option<&CachedNode>,
    pods_left: Option<usize>,
    metrics: &Metrics,
) -> Result<Done, EffectError> {
    match effect {
        Effect::Drain { node } => Ok(Done {
            node: None,
            pods_left: Some(drain_node(c, node, drain, metrics).await?),
        }),
        // Pods to wait for, or no drain before it: the next decision assigns the node.
        Effect::Assign {
            only_if_drained: true,
            ..
        } if pods_left != Some(0) => Ok(Done::default()),
        _ => write(c, du, effect, cached).await.map(Done::from),
    }
}

/// The effects that write an object (every one but the drain).
async fn write(
    c: &Clients,
    du: &DirectUpdate,
    effect: &Effect,
    cached: Option<&CachedNode>,
) -> Result<Option<Node>, EffectError> {
    match effect {
        Effect::Cordon {
            node,
            admin_cordoned,
        } => patch_node(
            c,
            node,
            json!({
                "metadata": {"annotations": {labels::ADMIN_CORDONED: admin_cordoned.to_string()}},
                "spec": {"unschedulable": true},
            }),
        )
        .await,
        Effect::Drain { .. } => Ok(None), // `perform` drains
        Effect::Assign {
            node,
            operation_id,
            target,
            components,
            mode,
            ..
        } => {
            let comps = components
                .iter()
                .map(|c| {
                    serde_json::to_value(c)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(",");
            let api = Api::<Node>::all(c.client.clone());
            // The cached copy first, then the API server's: the patch carries the
            // resourceVersion it was checked against, so it applies only to the node
            // as it was checked (an agent that wrote meanwhile makes it a conflict,
            // and the node is read and checked again).
            let mut seen = cached.map(|n| n.metadata.clone());
            let mut attempts = 0;
            loop {
                attempts += 1;
                let n = match seen.take() {
                    Some(n) => n,
                    None => {
                        api.get_metadata(node)
                            .await
                            .map_err(err(format!("reading node {node}")))?
                            .metadata
                    }
                };
                let none = BTreeMap::new();
                let a = n.annotations.as_ref().unwrap_or(&none);
                if a.get(labels::OPERATION_ID) == Some(operation_id)
                    && a.get(labels::TARGET_VERSION) == Some(&target.to_string())
                    && a.get(labels::STATUS).map(String::as_str)
                        != Some(AgentStatus::Failed.as_str())
                {
                    return Ok(None); // this exact assignment is there: the agent owns `status` now
                }
                // New, changed, or a retry of a failed one (the agent resumes at its first step not done).
                let patch = json!({"metadata": {
                    "resourceVersion": n.resource_version,
                    "annotations": {
                        labels::OPERATION_ID: operation_id,
                        labels::TARGET_VERSION: target.to_string(),
                        labels::COMPONENTS: comps,
                        labels::UPGRADE_MODE: mode.as_str(),
                        labels::STATUS: AgentStatus::Pending.as_str(),
                        labels::STEP: null,
                        labels::MESSAGE: null,
                        labels::PACKAGE_SOURCE: super::preflight::package_source(du),
                    },
                }});
                match patch_node(c, node, patch).await {
                    Err(EffectError {
                        error: kube::Error::Api(s),
                        ..
                    }) if s.code == 409 && attempts < 3 => continue,
                    r => return r,
                }
            }
        }
        Effect::Release { node, uncordon } => {
            let mut ann: BTreeMap<&str, serde_json::Value> = labels::NODE_ASSIGNMENT
                .iter()
                .map(|k| (*k, serde_json::Value::Null))
                .collect();
            ann.insert(labels::ADMIN_CORDONED, serde_json::Value::Null);
            let mut patch = json!({"metadata": {"annotations": ann}});
            if *uncordon {
                patch["spec"] = json!({"unschedulable": false});
            }
            patch_node(c, node, patch).await
        }
        Effect::RequestBackup { node, operation_id } => {
            // `spec.backup.storeRef` goes with the request; the agent uses it instead of
            // its own `--backup-store` (a null clears one left from an earlier operation).
            let store = du
                .spec
                .backup
                .as_ref()
                .and_then(|b| b.store_ref.as_deref())
                .map(str::trim)
                .filter(|s| !s.is_empty());
            patch_node(
                c,
                node,
                json!({"metadata": {"annotations": {
                    labels::BACKUP_REQUEST: operation_id,
                    labels::BACKUP_STORE: store,
                }}}),
            )
            .await
        }
        Effect::ClearRetry => {
            let api = Api::<DirectUpdate>::all(c.client.clone());
            api.patch(
                &du.name_any(),
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Merge(&json!({"metadata": {"annotations": {labels::RETRY: null}}})),
            )
            .await
            .map(|_| None)
            .map_err(err(format!(
                "clearing {} on {}",
                labels::RETRY,
                du.name_any()
            )))
        }
    }
}

/// Why a drain leaves this pod where it is for good (DaemonSet, mirror and finished
/// pods: an empty node may still have them), if it does.
fn stays(p: &Pod) -> Option<&'static str> {
    let refs = p.metadata.owner_references.as_deref().unwrap_or_default();
    let controller = refs.iter().find(|r| r.controller == Some(true));
    if controller.is_some_and(|r| r.kind == "DaemonSet") {
        return Some("DaemonSet pod (skipped)");
    }
    if p.annotations().contains_key("kubernetes.io/config.mirror") {
        return Some("mirror pod (skipped)");
    }
    if matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    ) {
        return Some("finished pod (skipped)");
    }
    None
}

/// Whether a drain may evict this pod, or why not.
pub fn eviction_refusal(p: &Pod, drain: &DrainSpec) -> Option<&'static str> {
    if let Some(why) = stays(p) {
        return Some(why);
    }
    let refs = p.metadata.owner_references.as_deref().unwrap_or_default();
    let controller = refs.iter().find(|r| r.controller == Some(true));
    if p.metadata.deletion_timestamp.is_some() {
        return Some("terminating");
    }
    let empty_dir = p
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|v| v.iter().any(|v| v.empty_dir.is_some()));
    if empty_dir && !drain.delete_empty_dir_data {
        return Some("uses emptyDir and drain.deleteEmptyDirData is false");
    }
    if controller.is_none() && !drain.force {
        return Some("not managed by a controller and drain.force is false");
    }
    None
}

/// One drain pass: ask the eviction API for every evictable pod on the node. Returns
/// how many pods keep the node from being empty: evicted now (they still terminate),
/// refused by a PDB, or not evictable (terminating, emptyDir, no controller).
async fn drain_node(
    c: &Clients,
    node: &str,
    drain: &DrainSpec,
    metrics: &Metrics,
) -> Result<usize, EffectError> {
    let pods = Api::<Pod>::all(c.client.clone())
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .map_err(err(format!("listing pods on {node}")))?;
    let mut left = 0;
    for p in pods.items {
        if stays(&p).is_some() {
            continue;
        }
        left += 1;
        if eviction_refusal(&p, drain).is_some() {
            continue;
        }
        let ns = p.namespace().unwrap_or_default();
        let api = Api::<Pod>::namespaced(c.evict.clone(), &ns);
        let mut params = EvictParams::default();
        if let Some(g) = drain.grace_period_seconds {
            params.delete_options = Some(kube::api::DeleteParams {
                grace_period_seconds: u32::try_from(g).ok(),
                ..Default::default()
            });
        }
        match api.evict(&p.name_any(), &params).await {
            Ok(_) => metrics.evictions.inc(),
            // 429: a PodDisruptionBudget refuses now; the next pass tries again.
            Err(kube::Error::Api(s)) if s.code == 429 => metrics.evictions_blocked.inc(),
            Err(kube::Error::Api(s)) if s.code == 404 => left -= 1, // gone already
            Err(e) => return Err(err(format!("evicting {ns}/{}", p.name_any()))(e)),
        }
    }
    Ok(left)
}
