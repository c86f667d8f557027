//! Preflight at the edge: before the first node of a DirectUpdate is touched, gather
//! what [`cupcake_core::rollout::preflight`] decides from — the API server's answer, the
//! nodes' pressure conditions, the air-gapped bundle ConfigMap, the agents' reports —
//! ask the agents for their reports (`preflight-request` node annotations), and write
//! the outcome: `status.preflightResults` once when every check passed (then the
//! rollout starts in the same round), or RequiresAttention naming the first failed
//! check, with a `PreflightFailed` Event, and nothing touched.
//!
//! State: the status (phase Pending with the "preflight: …" message while it runs,
//! then `preflightResults`) and the node annotations. The API server and bundle answers
//! and the start of the wait for reports are kept in memory per attempt: a restarted
//! controller asks again and waits again (at most [`REPORT_TIMEOUT`] more).
//! The request annotations are cleared once no attempt needs them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cupcake_api::crd::{DirectUpdate, DirectUpdateStatus, Phase};
use cupcake_api::labels;
use cupcake_api::plan::Stage;
use cupcake_api::snapshot::ClusterSnapshot;
use cupcake_core::rollout::preflight::{
    self, DEFAULT_MIN_DISK_FREE, ETCD_REQUESTED, Facts, Gate, Outcome, PRESSURE_CONDITIONS,
    REPORT_TIMEOUT,
};
use cupcake_core::rollout::{self, Decision, Event};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use kube::api::Api;
use kube::{Client, ResourceExt as _};
use serde_json::json;
use tracing::info;

use super::slim::CachedNode;
use super::{Context, Mine, publish, remember, slim, slimmed, write_status};

/// How many nodes are patched at once (requests, clean-up).
const CONCURRENCY: usize = 64;
/// How long the API server check waits for an answer.
const API_TIMEOUT: Duration = Duration::from_secs(10);

/// One preflight run of one DirectUpdate (a retry or a spec change starts another).
#[derive(Debug)]
pub(super) struct Attempt {
    du: String,
    op: String,
    generation: Option<i64>,
    since: Instant,
    api: Result<String, String>,
    bundle: Option<Result<(String, String), String>>,
    /// The bundle could not be read for a reason that may pass (an API error, not 404).
    bundle_transient: bool,
}

/// What the round does after preflight.
pub(super) enum Step {
    /// Go on to the rollout decision, with the DirectUpdate as last written (when
    /// preflight wrote its status).
    Proceed(Option<Arc<DirectUpdate>>),
    /// Stop this round; look again after this long (or on a watch event).
    Stop(Option<Duration>),
}

/// The namespace of a bare `bundleConfigMap` name: the controller's own.
pub(super) fn default_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| cupcake_api::bundle::DEFAULT_NAMESPACE.to_string())
}

/// The `package-source` annotation's value for the DirectUpdate's assignments.
pub(super) fn package_source(du: &DirectUpdate) -> Option<String> {
    preflight::bundle_ref(&du.spec, &default_namespace())?
        .ok()
        .map(|(ns, name)| format!("{ns}/{name}"))
}

async fn api_server(client: &Client) -> Result<String, String> {
    let check = async {
        let req = axum::http::Request::get("/readyz")
            .body(Vec::new())
            .map_err(|e| format!("building GET /readyz: {e}"))?;
        let ready = client
            .request_text(req)
            .await
            .map_err(|e| format!("GET /readyz: {e}"))?;
        if ready.trim() != "ok" {
            let head: String = ready.chars().take(300).collect();
            return Err(format!("GET /readyz answered {head:?}"));
        }
        let v = client
            .apiserver_version()
            .await
            .map_err(|e| format!("GET /version: {e}"))?;
        Ok(format!(
            "GET /readyz answered ok; the API server runs {}",
            v.git_version
        ))
    };
    tokio::time::timeout(API_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "the API server did not answer within {API_TIMEOUT:?}"
            ))
        })
}

/// The bundle ConfigMap as the check reads it: `(namespace/name, bundle.yaml)`, and
/// whether a failure may pass by itself (an API error rather than a missing ConfigMap).
async fn read_bundle(
    client: &Client,
    du: &DirectUpdate,
) -> (Option<Result<(String, String), String>>, bool) {
    let Some(reference) = preflight::bundle_ref(&du.spec, &default_namespace()) else {
        return (None, false);
    };
    let (ns, name) = match reference {
        Ok(r) => r,
        Err(e) => return (Some(Err(e)), false),
    };
    let key = cupcake_api::bundle::DATA_KEY;
    let got = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get_opt(&name)
        .await;
    let transient = got.is_err();
    let read = match got {
        Err(e) => Err(format!(
            "reading ConfigMap {ns}/{name} (spec.airGapped.bundleConfigMap): {e}"
        )),
        Ok(None) => Err(format!(
            "ConfigMap {ns}/{name} (spec.airGapped.bundleConfigMap) not found"
        )),
        Ok(Some(cm)) => match cm.data.and_then(|mut d| d.remove(key)) {
            None => Err(format!("ConfigMap {ns}/{name} has no data key {key}")),
            Some(text) => Ok((format!("{ns}/{name}"), text)),
        },
    };
    (Some(read), transient)
}

/// Per node, its pressure conditions that are True.
fn pressure(nodes: &[Arc<CachedNode>]) -> BTreeMap<String, Vec<String>> {
    nodes
        .iter()
        .filter_map(|n| {
            let c: Vec<String> = PRESSURE_CONDITIONS
                .iter()
                .filter(|t| n.condition_true(t))
                .map(|t| t.to_string())
                .collect();
            (!c.is_empty()).then(|| (n.name_any(), c))
        })
        .collect()
}

/// Patch node annotations, concurrently, remembering our writes.
async fn patch_nodes(
    ctx: &Context,
    mine: &mut Mine,
    nodes: &[Arc<CachedNode>],
    patches: Vec<(String, serde_json::Value)>,
) -> Result<(), String> {
    if patches.is_empty() {
        return Ok(());
    }
    let api = Api::<Node>::all(ctx.clients.client.clone());
    let results: Vec<(String, Result<Node, kube::Error>)> = futures::stream::iter(patches)
        .map(|(name, patch)| {
            let api = api.clone();
            async move {
                let r = api
                    .patch(
                        &name,
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Merge(&patch),
                    )
                    .await;
                (name, r)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let by_name: BTreeMap<String, &Arc<CachedNode>> =
        nodes.iter().map(|n| (n.name_any(), n)).collect();
    let mut first_error = None;
    for (name, r) in results {
        match r {
            Ok(new) => {
                if let Some(old) = by_name.get(&name) {
                    remember(&mut mine.nodes, old, Arc::new(slim::node(new)));
                }
            }
            // A node deleted meanwhile needs nothing.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                first_error.get_or_insert(format!("patching node {name}: {e}"));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

const PREFLIGHT_ANNOTATIONS: [&str; 3] = [
    labels::PREFLIGHT_REQUEST,
    labels::PREFLIGHT_ETCD,
    labels::PREFLIGHT_RESULT,
];

/// Nodes cleared per round once no attempt needs the annotations: the rollout's own
/// first effects should not wait for a thousand clean-up patches.
const CLEAR_PER_ROUND: usize = CONCURRENCY;

/// Clear the preflight annotations on the nodes not part of the running attempt
/// (`keep`: its operation id), at most `limit` of them. Returns whether none is left.
pub(super) async fn clear_stale(
    ctx: &Context,
    mine: &mut Mine,
    nodes: &[Arc<CachedNode>],
    keep: Option<&str>,
    limit: usize,
) -> Result<bool, String> {
    let mut patches: Vec<(String, serde_json::Value)> = nodes
        .iter()
        .filter(|n| {
            let a = n.annotations();
            PREFLIGHT_ANNOTATIONS.iter().any(|k| a.contains_key(*k))
                && (keep.is_none() || a.get(labels::PREFLIGHT_REQUEST).map(String::as_str) != keep)
        })
        .map(|n| {
            let nulls: serde_json::Map<String, serde_json::Value> = PREFLIGHT_ANNOTATIONS
                .iter()
                .map(|k| (k.to_string(), serde_json::Value::Null))
                .collect();
            (n.name_any(), json!({"metadata": {"annotations": nulls}}))
        })
        .collect();
    let done = patches.len() <= limit;
    patches.truncate(limit);
    patch_nodes(ctx, mine, nodes, patches).await?;
    Ok(done)
}

/// Write `st` if it differs from what `du` holds; returns the DirectUpdate as written.
async fn write(
    ctx: &Context,
    mine: &mut Mine,
    du: &Arc<DirectUpdate>,
    st: &DirectUpdateStatus,
) -> Result<Arc<DirectUpdate>, String> {
    if du.status.as_ref() == Some(st) {
        return Ok(du.clone());
    }
    let new = write_status(ctx, du, st)
        .await
        .map_err(|e| format!("writing the preflight status: {e}"))?;
    let new = slimmed(new, slim::direct_update);
    remember(&mut mine.dus, du, new.clone());
    if du.status.as_ref().and_then(|s| s.phase) != st.phase {
        info!(directupdate = %du.name_any(), phase = ?st.phase, message = st.message.as_deref().unwrap_or(""), "phase changed");
    }
    Ok(new)
}

fn event(ctx: &Context, du: &DirectUpdate, st: &DirectUpdateStatus, e: Event) {
    publish(
        ctx,
        du,
        &Decision {
            status: st.clone(),
            effects: vec![],
            requeue_after: None,
            events: vec![e],
        },
    );
}

/// Clear the `retry` annotation that started this run (else a failure would re-run at
/// once); returns the DirectUpdate as it is then.
async fn clear_retry(
    ctx: &Context,
    mine: &mut Mine,
    du: Arc<DirectUpdate>,
) -> Result<Arc<DirectUpdate>, String> {
    if !du.annotations().contains_key(labels::RETRY) {
        return Ok(du);
    }
    let new = Api::<DirectUpdate>::all(ctx.clients.client.clone())
        .patch(
            &du.name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&json!({"metadata": {"annotations": {labels::RETRY: null}}})),
        )
        .await
        .map_err(|e| format!("clearing {} on {}: {e}", labels::RETRY, du.name_any()))?;
    let new = slimmed(new, slim::direct_update);
    remember(&mut mine.dus, &du, new.clone());
    Ok(new)
}

/// Preflight for the DirectUpdate that may run. `status` is the status the round
/// decides from (with the controller's plan in `stages` for a seed-style one).
#[allow(clippy::too_many_arguments)]
pub(super) async fn step(
    ctx: &Context,
    mine: &mut Mine,
    du: Arc<DirectUpdate>,
    status: Option<&DirectUpdateStatus>,
    stages: &[Stage],
    cluster: &ClusterSnapshot,
    node_ann: &BTreeMap<String, BTreeMap<String, String>>,
    nodes: &[Arc<CachedNode>],
    deleting: bool,
) -> Result<Step, String> {
    let empty = BTreeMap::new();
    let annotations = du.metadata.annotations.as_ref().unwrap_or(&empty);
    let gate = if deleting {
        Gate::Open // a deleted DirectUpdate is cancelled, not checked
    } else {
        preflight::gate(&du.spec, status, du.metadata.generation, annotations)
    };
    let Gate::Run { all } = gate else {
        mine.preflight = None;
        let cleared = clear_stale(ctx, mine, nodes, None, CLEAR_PER_ROUND).await?;
        return Ok(match gate {
            Gate::Held if cleared => Step::Stop(None),
            Gate::Held => Step::Stop(Some(Duration::ZERO)),
            _ => Step::Proceed(None),
        });
    };
    let name = du.name_any();
    let op = rollout::operation_id(du.metadata.uid.as_deref(), &name);
    let base = status.cloned().unwrap_or_default();
    let paused = du.spec.paused || annotations.get(labels::PAUSED).is_some_and(|v| v == "true");
    if paused {
        // Not started, so `next` must not start it (that would skip preflight later).
        mine.preflight = None;
        clear_stale(ctx, mine, nodes, None, usize::MAX).await?;
        let st = DirectUpdateStatus {
            phase: Some(Phase::Paused),
            message: Some(
                "paused (spec.paused) before preflight: no check has run, no node is touched"
                    .into(),
            ),
            ..base
        };
        write(ctx, mine, &du, &st).await?;
        return Ok(Step::Stop(None));
    }
    let fresh = mine
        .preflight
        .as_ref()
        .is_none_or(|a| a.du != name || a.op != op || a.generation != du.metadata.generation);
    if fresh {
        // Answers left from an earlier attempt of the same operation (a retry, a restarted
        // controller) must not count: clear them, then ask again from the next round on.
        clear_stale(ctx, mine, nodes, None, usize::MAX).await?;
        let api = if all {
            api_server(&ctx.clients.client).await
        } else {
            Ok(String::new())
        };
        let (bundle, bundle_transient) = read_bundle(&ctx.clients.client, &du).await;
        mine.preflight = Some(Attempt {
            du: name.clone(),
            op: op.clone(),
            generation: du.metadata.generation,
            since: Instant::now(),
            api,
            bundle,
            bundle_transient,
        });
        if all {
            return Ok(Step::Stop(Some(Duration::ZERO)));
        }
    }
    // preflightChecks off, air-gapped: only the bundle, nothing recorded.
    if !all {
        // A read that failed on an API error is tried again for a while.
        if let Some(a) = mine.preflight.as_mut()
            && a.bundle_transient
        {
            if a.since.elapsed() >= REPORT_TIMEOUT {
                a.bundle_transient = false;
            } else {
                (a.bundle, a.bundle_transient) = read_bundle(&ctx.clients.client, &du).await;
                if a.bundle_transient {
                    return Ok(Step::Stop(Some(rollout::POLL)));
                }
            }
        }
        let read = mine
            .preflight
            .as_ref()
            .and_then(|a| a.bundle.clone())
            .unwrap_or_else(|| Err("the bundle ConfigMap was not read".into()));
        let c = preflight::bundle_check(&du.spec, stages, &read);
        mine.preflight = None;
        if c.passed {
            return Ok(Step::Proceed(None));
        }
        let msg = format!(
            "air-gapped bundle check failed: {}; no node was touched (fix it, then annotate the DirectUpdate {}=preflight or change its spec to check again)",
            c.message.as_deref().unwrap_or("no detail"),
            labels::RETRY
        );
        let st = DirectUpdateStatus {
            phase: Some(Phase::RequiresAttention),
            message: Some(msg.clone()),
            preflight_results: None,
            ..base
        };
        let new = write(ctx, mine, &du, &st).await?;
        clear_retry(ctx, mine, new).await?;
        event(
            ctx,
            &du,
            &st,
            Event {
                reason: "PreflightFailed",
                message: msg,
                warning: true,
                node: None,
            },
        );
        return Ok(Step::Stop(None));
    }

    clear_stale(ctx, mine, nodes, Some(&op), usize::MAX).await?;
    let asks = preflight::requests(&op, &du.spec, stages, cluster, node_ann);
    let patches = asks
        .iter()
        .map(|r| {
            let etcd = if r.etcd {
                json!(ETCD_REQUESTED)
            } else {
                serde_json::Value::Null
            };
            (
                r.node.clone(),
                json!({"metadata": {"annotations": {
                    labels::PREFLIGHT_REQUEST: op,
                    labels::PREFLIGHT_ETCD: etcd,
                }}}),
            )
        })
        .collect();
    patch_nodes(ctx, mine, nodes, patches).await?;
    // An API server or ConfigMap read that failed is asked again while the agents'
    // reports may still come: an outage of a few seconds must not fail the preflight.
    if let Some(a) = mine.preflight.as_mut()
        && a.since.elapsed() < REPORT_TIMEOUT
    {
        if a.api.is_err() {
            a.api = api_server(&ctx.clients.client).await;
        }
        if a.bundle_transient {
            (a.bundle, a.bundle_transient) = read_bundle(&ctx.clients.client, &du).await;
        }
    }
    let Some((since, api, bundle)) = mine
        .preflight
        .as_ref()
        .map(|a| (a.since, a.api.clone(), a.bundle.clone()))
    else {
        return Ok(Step::Stop(Some(rollout::POLL)));
    };
    let press = pressure(nodes);
    let outcome = preflight::evaluate(&Facts {
        operation_id: &op,
        spec: &du.spec,
        stages,
        cluster,
        node_annotations: node_ann,
        pressure: &press,
        api_server: &api,
        bundle: bundle.as_ref(),
        waited: since.elapsed(),
        min_disk_free: DEFAULT_MIN_DISK_FREE,
        report_timeout: REPORT_TIMEOUT,
    });
    match outcome {
        Outcome::Waiting { .. } => {
            let agents = if preflight::etcd_node(&du.spec, stages).is_some() {
                "free disk space, and etcd's health from the backup node"
            } else {
                "free disk space"
            };
            let st = DirectUpdateStatus {
                phase: Some(Phase::Pending),
                message: Some(format!(
                    "preflight: checking; waiting for the agents' reports ({agents}) from {} node(s)",
                    preflight::planned_nodes(stages).len()
                )),
                preflight_results: None,
                ..base
            };
            let new = write(ctx, mine, &du, &st).await?;
            clear_retry(ctx, mine, new).await?;
            let left = REPORT_TIMEOUT.saturating_sub(since.elapsed());
            Ok(Step::Stop(Some(
                left.clamp(Duration::from_millis(100), rollout::POLL),
            )))
        }
        Outcome::Done(results) => {
            mine.preflight = None;
            if let Some(msg) = preflight::failure_message(&results) {
                let st = DirectUpdateStatus {
                    phase: Some(Phase::RequiresAttention),
                    message: Some(msg.clone()),
                    preflight_results: Some(results),
                    ..base
                };
                let new = write(ctx, mine, &du, &st).await?;
                clear_retry(ctx, mine, new).await?;
                event(
                    ctx,
                    &du,
                    &st,
                    Event {
                        reason: "PreflightFailed",
                        message: msg,
                        warning: true,
                        node: None,
                    },
                );
                return Ok(Step::Stop(None));
            }
            let msg = format!("preflight passed ({} checks)", results.checks.len());
            let st = DirectUpdateStatus {
                phase: Some(Phase::Pending),
                message: Some(msg.clone()),
                preflight_results: Some(results),
                ..base
            };
            let new = write(ctx, mine, &du, &st).await?;
            let new = clear_retry(ctx, mine, new).await?;
            event(
                ctx,
                &du,
                &st,
                Event {
                    reason: "PreflightPassed",
                    message: msg,
                    warning: false,
                    node: None,
                },
            );
            Ok(Step::Proceed(Some(new)))
        }
    }
}
