//! The in-cluster ScheduledUpdate and UpdateSchedule controllers (the original
//! CUPCAKE's resources, now real), in `cupcake run` unless `--rollout-only`.
//!
//! - A **ScheduledUpdate** creates its DirectUpdate at `spec.scheduleAt`, through
//!   the same planner and policy gate as the GitOps loop (`cupcake_core::pass`
//!   with the default policy pack, against the live cluster): allowed → the
//!   rendered DirectUpdate is created (owned by the ScheduledUpdate); deferred →
//!   it waits; denied → Failed, naming the rule. Its phase then follows the
//!   DirectUpdate (Executing → Completed / Failed / Cancelled).
//! - An **UpdateSchedule** with `spec.schedule` (crontab, UTC) and
//!   `spec.updatePolicy.targetVersionPattern` (e.g. `1.34.x`) creates one
//!   DirectUpdate per occurrence, inside its windows (`windows`,
//!   `maintenanceWindow`, `exclusions`, `suspended`), for the newest version of the
//!   version catalogue that matches the pattern. The catalogue is the ConfigMap
//!   [`CATALOG_CONFIGMAP`] (key `versions.yaml`, a `VersionCatalog` document) in the
//!   controller's namespace. Missed occurrences collapse into the latest.
//!
//! Like the GitOps loop, neither starts a DirectUpdate while another one runs:
//! they wait and say so in `status.message`. The decisions ([`decide_scheduled`],
//! [`pick_version`]) are pure; the reconcile around them is thin.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cupcake_api::KubeVersion;
use cupcake_api::crd::{
    DirectUpdate, DirectUpdateSpec, Phase, ScheduledUpdate, ScheduledUpdateStatus, UpdateSchedule,
};
use cupcake_api::fleet::{ClusterVersionSpec, VersionCatalog, VersionCatalogSpec};
use cupcake_api::plan::Verdict;
use cupcake_api::protocol::ScheduledUpdatePhase;
use cupcake_core::pass::{Cluster, PassInput};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::gate::PolicyEnv;
use crate::observe;

/// Field manager of everything these controllers write.
pub const FIELD_MANAGER: &str = "cupcake-schedules";
/// The version catalogue ConfigMap (in the controller's namespace), key `versions.yaml`.
pub const CATALOG_CONFIGMAP: &str = "cupcake-version-catalog";
/// The label naming the ScheduledUpdate or UpdateSchedule that created a DirectUpdate.
pub const CREATED_BY: &str = "cupcake.ricardomolendijk.com/created-by";

/// What a ScheduledUpdate should do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduledAction {
    /// Not due yet: look again at this instant.
    WaitUntil(DateTime<Utc>),
    /// Due: evaluate the gate and create the DirectUpdate.
    Gate,
    /// Due, but another DirectUpdate runs.
    WaitFor(String),
    /// Its DirectUpdate exists: mirror its phase.
    Follow(String),
    /// Nothing more to do (a final phase).
    Done,
}

/// The pure decision for one ScheduledUpdate.
pub fn decide_scheduled(
    su: &ScheduledUpdate,
    now: DateTime<Utc>,
    running: Option<&str>,
) -> ScheduledAction {
    let st = su.status.clone().unwrap_or_default();
    if let Some(name) = st.direct_update_name {
        return ScheduledAction::Follow(name);
    }
    if matches!(
        st.phase,
        Some(
            ScheduledUpdatePhase::Completed
                | ScheduledUpdatePhase::Failed
                | ScheduledUpdatePhase::Cancelled
        )
    ) {
        return ScheduledAction::Done;
    }
    if now < su.spec.schedule_at {
        return ScheduledAction::WaitUntil(su.spec.schedule_at);
    }
    match running {
        Some(other) => ScheduledAction::WaitFor(other.to_string()),
        None => ScheduledAction::Gate,
    }
}

/// The ScheduledUpdate phase that mirrors its DirectUpdate's (`None`: deleted).
pub fn follow_phase(du: Option<Phase>) -> ScheduledUpdatePhase {
    match du {
        Some(Phase::Succeeded) => ScheduledUpdatePhase::Completed,
        Some(Phase::Failed) => ScheduledUpdatePhase::Failed,
        Some(Phase::Cancelled) | None => ScheduledUpdatePhase::Cancelled,
        Some(Phase::Pending | Phase::InProgress | Phase::Paused | Phase::RequiresAttention) => {
            ScheduledUpdatePhase::Executing
        }
    }
}

/// The newest catalogue version matching a `targetVersionPattern` like `1.34.x`,
/// `1.34.*`, `1.x` or an exact `1.34.2`; pre-releases only when the pattern names one.
pub fn pick_version(
    catalog: &VersionCatalogSpec,
    pattern: &str,
) -> Result<Option<KubeVersion>, String> {
    let parts: Vec<&str> = pattern.trim().trim_start_matches('v').split('.').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "targetVersionPattern {pattern:?}: expected MAJOR.MINOR.x, MAJOR.x or an exact version"
        ));
    }
    let wild = |p: &str| p == "x" || p == "X" || p == "*";
    let mut fixed: Vec<u64> = Vec::new();
    let mut seen_wild = false;
    for p in &parts {
        if wild(p) {
            seen_wild = true;
            continue;
        }
        if seen_wild {
            return Err(format!(
                "targetVersionPattern {pattern:?}: a number after a wildcard"
            ));
        }
        if parts.len() == 3 && fixed.len() == 2 {
            // An exact version: the catalogue must hold it.
            let want: KubeVersion = pattern
                .trim()
                .parse()
                .map_err(|e| format!("targetVersionPattern {pattern:?}: {e}"))?;
            return Ok(catalog.versions.iter().find(|v| **v == want).cloned());
        }
        fixed.push(p.parse().map_err(|_| {
            format!("targetVersionPattern {pattern:?}: {p:?} is not a number or x")
        })?);
    }
    Ok(catalog
        .versions
        .iter()
        .filter(|v| v.pre.is_none())
        .filter(|v| {
            let have = [v.major, v.minor, v.patch];
            fixed.iter().zip(have.iter()).all(|(a, b)| a == b)
        })
        .max()
        .cloned())
}

/// The ClusterVersion spec a DirectUpdate spec asks for (seed-style fields).
pub fn cluster_spec_of(s: &DirectUpdateSpec) -> ClusterVersionSpec {
    ClusterVersionSpec {
        kubernetes_version: s.target_version.clone(),
        components: s.components.clone(),
        strategy: s.strategy,
        concurrency: Some(cupcake_api::common::IntOrPercent::Int(s.concurrency.max(1))),
        max_unavailable: None,
        canary: s.canary.clone().unwrap_or_default(),
        node_selector: s.node_selector.clone(),
        drain: s.drain.clone().unwrap_or_default(),
        backup: cupcake_api::fleet::BackupSpec {
            etcd: s.backup.as_ref().is_some_and(|b| b.etcd),
            store: s.backup.as_ref().and_then(|b| b.store_ref.clone()),
        },
        preflight_checks: s.preflight_checks,
        allow_prerelease: Default::default(),
        force: vec![],
        estimates: Default::default(),
    }
}

/// Shared clients and settings.
#[derive(Clone)]
pub struct Context {
    pub client: Client,
    /// The cluster as the plan reads it (the rollout controller's caches once ready).
    pub observer: crate::observe::Observer,
    /// Where the catalogue ConfigMap lives.
    pub namespace: String,
    /// The default policy pack, compiled when the first desired state is gated (a
    /// cluster without schedules never pays for it: about 4 MiB of heap and the code
    /// pages the compiler touches).
    pub policies: Arc<std::sync::OnceLock<Arc<PolicyEnv>>>,
}

impl Context {
    fn policies(&self) -> &PolicyEnv {
        self.policies.get_or_init(PolicyEnv::default_pack)
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// The outcome of gating one desired state.
enum Gated {
    Created(String),
    UpToDate,
    Deferred(Option<DateTime<Utc>>, String),
    Denied(String),
}

/// Plan + gate `spec` against the live cluster now, and create the DirectUpdate when allowed.
async fn gate_and_create(
    ctx: &Context,
    name: &str,
    spec: &ClusterVersionSpec,
    schedule: Option<&cupcake_core::schedule::Compiled>,
    catalog: Option<&VersionCatalogSpec>,
    owner: OwnerReference,
    dry_run: bool,
) -> Result<Gated, String> {
    let (snap, _) = ctx.observer.snapshot().await.map_err(|e| e.to_string())?;
    let source = cupcake_api::crd::SourceRef::default();
    let out = cupcake_core::pass(PassInput {
        cluster: Cluster {
            name,
            spec,
            schedule,
            labels: None,
        },
        catalog,
        snapshot: &snap,
        policies: ctx.policies(),
        config: &serde_json::json!({}),
        source: &source,
        now: Utc::now(),
    })
    .map_err(|e| e.to_string())?;
    let report = out.report(name);
    if report.up_to_date {
        return Ok(Gated::UpToDate);
    }
    let first = |sev| {
        report
            .decision
            .findings
            .iter()
            .find(|f| f.severity == sev && !f.forced)
            .map(|f| format!("{}: {}", f.rule, f.message))
            .unwrap_or_default()
    };
    match (report.decision.verdict, report.direct_update) {
        (Verdict::Deny, _) => Ok(Gated::Denied(first(cupcake_api::plan::Severity::Deny))),
        (Verdict::Defer, _) => Ok(Gated::Deferred(
            report.decision.defer_until,
            first(cupcake_api::plan::Severity::Defer),
        )),
        (Verdict::Allow, None) => Ok(Gated::UpToDate),
        (Verdict::Allow, Some(mut du)) => {
            du.spec.dry_run = dry_run;
            du.metadata.owner_references = Some(vec![owner]);
            du.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert(CREATED_BY.to_string(), name.to_string());
            du.status = None;
            let du_name = du.name_any();
            Api::<DirectUpdate>::all(ctx.client.clone())
                .patch(
                    &du_name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&du),
                )
                .await
                .map_err(|e| format!("creating DirectUpdate {du_name}: {e}"))?;
            Ok(Gated::Created(du_name))
        }
    }
}

fn owner_of<K: Resource<DynamicType = ()>>(obj: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).to_string(),
        kind: K::kind(&()).to_string(),
        name: obj.name_any(),
        uid: obj.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(false),
    }
}

async fn patch_status<K>(client: &Client, obj: &K, status: serde_json::Value) -> Result<(), String>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": obj.name_any()},
        "status": status,
    });
    Api::<K>::all(client.clone())
        .patch_status(
            &obj.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("status of {} {}: {e}", K::kind(&()), obj.name_any()))
}

/// The running DirectUpdate (not finished), if any.
fn running(dus: &Store<DirectUpdate>) -> Option<String> {
    dus.state()
        .iter()
        .find(|d| !crate::rollout::terminal(d))
        .map(|d| d.name_any())
}

async fn reconcile_scheduled(
    ctx: &Context,
    su: &ScheduledUpdate,
    dus: &Store<DirectUpdate>,
) -> Option<DateTime<Utc>> {
    let now = Utc::now();
    let st = su.status.clone().unwrap_or_default();
    let mut next = ScheduledUpdateStatus {
        scheduled_for: Some(su.spec.schedule_at),
        ..st.clone()
    };
    let mut wake = None;
    match decide_scheduled(su, now, running(dus).as_deref()) {
        ScheduledAction::Done => return None,
        ScheduledAction::WaitUntil(t) => {
            next.phase = Some(ScheduledUpdatePhase::Scheduled);
            next.message = Some(format!("creates its DirectUpdate at {}", t.to_rfc3339()));
            wake = Some(t);
        }
        ScheduledAction::WaitFor(other) => {
            next.phase = Some(ScheduledUpdatePhase::Scheduled);
            next.message = Some(format!(
                "due; waiting: DirectUpdate {other} runs first (one at a time per cluster)"
            ));
        }
        ScheduledAction::Follow(name) => {
            let du = dus.state().into_iter().find(|d| d.name_any() == name);
            let phase = du
                .as_ref()
                .and_then(|d| d.status.as_ref())
                .and_then(|s| s.phase);
            let p = if du.is_some() {
                follow_phase(phase.or(Some(Phase::Pending)))
            } else {
                follow_phase(None)
            };
            next.phase = Some(p);
            next.message = Some(match (&du, phase) {
                (None, _) => format!("DirectUpdate {name} was deleted"),
                (Some(_), Some(ph)) => format!("DirectUpdate {name} is {ph:?}"),
                (Some(_), None) => format!("DirectUpdate {name} created"),
            });
        }
        ScheduledAction::Gate => {
            let spec = cluster_spec_of(&su.spec.update);
            match gate_and_create(
                ctx,
                &su.name_any(),
                &spec,
                None,
                None,
                owner_of(su),
                su.spec.update.dry_run,
            )
            .await
            {
                Ok(Gated::Created(name)) => {
                    info!(scheduledupdate = %su.name_any(), directupdate = %name, "created the DirectUpdate");
                    next.phase = Some(ScheduledUpdatePhase::Executing);
                    next.executed_at = Some(now);
                    next.direct_update_name = Some(name.clone());
                    next.message = Some(format!("created DirectUpdate {name}"));
                }
                Ok(Gated::UpToDate) => {
                    next.phase = Some(ScheduledUpdatePhase::Completed);
                    next.message = Some(format!(
                        "the cluster is already at {}: nothing to do",
                        su.spec.update.target_version
                    ));
                }
                Ok(Gated::Deferred(until, why)) => {
                    next.phase = Some(ScheduledUpdatePhase::Scheduled);
                    next.message = Some(match until {
                        Some(t) => format!("deferred until {}: {why}", t.to_rfc3339()),
                        None => format!("deferred: {why}"),
                    });
                    wake = until;
                }
                Ok(Gated::Denied(why)) => {
                    next.phase = Some(ScheduledUpdatePhase::Failed);
                    next.message = Some(format!("denied: {why}"));
                }
                Err(e) => {
                    warn!(scheduledupdate = %su.name_any(), error = %e, "gating failed; retrying");
                    next.message = Some(format!("cannot evaluate the gate yet: {e}"));
                    wake = Some(now + chrono::Duration::seconds(10));
                }
            }
        }
    }
    if next != st
        && let Err(e) = patch_status(
            &ctx.client,
            su,
            serde_json::to_value(&next).unwrap_or_default(),
        )
        .await
    {
        warn!(error = %e, "writing status");
    }
    wake
}

async fn catalog(ctx: &Context) -> Result<Option<VersionCatalogSpec>, String> {
    let cm = match Api::<ConfigMap>::namespaced(ctx.client.clone(), &ctx.namespace)
        .get_opt(CATALOG_CONFIGMAP)
        .await
    {
        Ok(Some(cm)) => cm,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(format!(
                "ConfigMap {}/{CATALOG_CONFIGMAP}: {e}",
                ctx.namespace
            ));
        }
    };
    let Some(text) = cm.data.as_ref().and_then(|d| d.get("versions.yaml")) else {
        return Err(format!(
            "ConfigMap {}/{CATALOG_CONFIGMAP} has no key versions.yaml",
            ctx.namespace
        ));
    };
    let doc: VersionCatalog = yaml_serde::from_str(text).map_err(|e| {
        format!(
            "ConfigMap {}/{CATALOG_CONFIGMAP} versions.yaml: {e}",
            ctx.namespace
        )
    })?;
    Ok(Some(doc.spec))
}

async fn reconcile_schedule(
    ctx: &Context,
    us: &UpdateSchedule,
    dus: &Store<DirectUpdate>,
) -> Option<DateTime<Utc>> {
    let now = Utc::now();
    let st = us.status.clone().unwrap_or_default();
    let mut next = st.clone();
    let spec = &us.spec.inner;
    let compiled = match cupcake_core::schedule::Compiled::new(spec) {
        Ok(c) => c,
        Err(e) => {
            next.message = Some(format!("invalid: {e}"));
            if next != st {
                let _ = patch_status(
                    &ctx.client,
                    us,
                    serde_json::to_value(&next).unwrap_or_default(),
                )
                .await;
            }
            return None;
        }
    };
    let eval = compiled.evaluate(now);
    next.next_window_start = eval.next_window.as_ref().map(|w| w.start);
    next.next_scheduled_time = eval.next_attempt;
    next.active = dus
        .state()
        .iter()
        .filter(|d| !crate::rollout::terminal(d))
        .filter(|d| d.labels().get(CREATED_BY).map(String::as_str) == Some(us.name_any().as_str()))
        .map(|d| d.name_any())
        .collect();
    let mut wake = eval.next_attempt;
    let pattern = spec
        .update_policy
        .as_ref()
        .and_then(|p| p.target_version_pattern.clone());
    let since = st
        .last_scheduled_time
        .or_else(|| {
            us.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| DateTime::<Utc>::from_timestamp(t.0.as_second(), 0).unwrap_or(now))
        })
        .unwrap_or(now);
    match (spec.schedule.as_ref(), pattern) {
        (None, _) => {
            next.message =
                Some("no spec.schedule: this UpdateSchedule only describes windows".into());
        }
        (Some(_), None) => {
            next.message = Some("spec.schedule needs spec.updatePolicy.targetVersionPattern (e.g. 1.34.x): nothing to upgrade to".into());
        }
        (Some(_), Some(pattern)) => {
            if let Some(occurrence) = compiled.due_attempt(since, now) {
                let action = if spec.suspended {
                    Err("suspended".to_string())
                } else if let Some(other) = running(dus) {
                    Err(format!(
                        "waiting: DirectUpdate {other} runs first (one at a time per cluster)"
                    ))
                } else {
                    Ok(())
                };
                match action {
                    Err(why) if why == "suspended" => {
                        next.last_scheduled_time = Some(occurrence);
                        next.message = Some(format!(
                            "occurrence {} skipped: suspended",
                            occurrence.to_rfc3339()
                        ));
                    }
                    Err(why) => {
                        next.message = Some(why);
                        wake = Some(now + chrono::Duration::seconds(30));
                    }
                    Ok(()) => match catalog(ctx).await {
                        Err(e) => {
                            next.message = Some(e);
                            wake = Some(now + chrono::Duration::seconds(30));
                        }
                        Ok(None) => {
                            next.message = Some(format!(
                                "no version catalogue: create ConfigMap {}/{CATALOG_CONFIGMAP} with key versions.yaml (a VersionCatalog)",
                                ctx.namespace
                            ));
                            wake = Some(now + chrono::Duration::seconds(30));
                        }
                        Ok(Some(cat)) => match pick_version(&cat, &pattern) {
                            Err(e) => next.message = Some(e),
                            Ok(None) => {
                                next.last_scheduled_time = Some(occurrence);
                                next.message =
                                    Some(format!("no catalogue version matches {pattern}"));
                            }
                            Ok(Some(version)) => {
                                let policy = spec.update_policy.clone().unwrap_or_default();
                                let du_spec: DirectUpdateSpec =
                                    serde_json::from_value(serde_json::json!({
                                        "targetVersion": version.to_string(),
                                    }))
                                    .expect("a DirectUpdate spec with only a valid target parses");
                                let mut cv = cluster_spec_of(&du_spec);
                                if !policy.components.is_empty() {
                                    cv.components = policy.components.clone();
                                }
                                if let Some(s) = policy.strategy {
                                    cv.strategy = s;
                                }
                                if let Some(c) = policy.concurrency {
                                    cv.concurrency =
                                        Some(cupcake_api::common::IntOrPercent::Int(c.max(1)));
                                }
                                if let Some(p) = policy.preflight_checks {
                                    cv.preflight_checks = p;
                                }
                                match gate_and_create(
                                    ctx,
                                    &us.name_any(),
                                    &cv,
                                    Some(&compiled),
                                    Some(&cat),
                                    owner_of(us),
                                    false,
                                )
                                .await
                                {
                                    Ok(Gated::Created(name)) => {
                                        info!(updateschedule = %us.name_any(), directupdate = %name, %occurrence, "created the DirectUpdate");
                                        next.last_scheduled_time = Some(occurrence);
                                        next.last_update_name = Some(name.clone());
                                        if !next.active.contains(&name) {
                                            next.active.push(name.clone());
                                        }
                                        next.message = Some(format!(
                                            "created DirectUpdate {name} for {version} (occurrence {})",
                                            occurrence.to_rfc3339()
                                        ));
                                    }
                                    Ok(Gated::UpToDate) => {
                                        next.last_scheduled_time = Some(occurrence);
                                        next.message = Some(format!(
                                            "already at {version} (newest matching {pattern})"
                                        ));
                                    }
                                    Ok(Gated::Deferred(until, why)) => {
                                        // Same occurrence, later: when its window opens.
                                        next.message = Some(format!(
                                            "occurrence {} waits: {why}",
                                            occurrence.to_rfc3339()
                                        ));
                                        wake = until.or(wake);
                                    }
                                    Ok(Gated::Denied(why)) => {
                                        next.last_scheduled_time = Some(occurrence);
                                        next.message = Some(format!(
                                            "occurrence {} denied: {why}",
                                            occurrence.to_rfc3339()
                                        ));
                                    }
                                    Err(e) => {
                                        next.message =
                                            Some(format!("cannot evaluate the gate yet: {e}"));
                                        wake = Some(now + chrono::Duration::seconds(10));
                                    }
                                }
                            }
                        },
                    },
                }
            }
        }
    }
    if next != st
        && let Err(e) = patch_status(
            &ctx.client,
            us,
            serde_json::to_value(&next).unwrap_or_default(),
        )
        .await
    {
        warn!(error = %e, "writing status");
    }
    wake
}

/// Run both controllers until the future is dropped.
pub async fn run(ctx: Context) {
    let notify = Arc::new(Notify::new());
    let (sus, w1) = observe::reflect(
        Api::<ScheduledUpdate>::all(ctx.client.clone()),
        watcher::Config::default(),
        observe::whole,
        observe::never_same,
        notify.clone(),
    );
    let (uss, w2) = observe::reflect(
        Api::<UpdateSchedule>::all(ctx.client.clone()),
        watcher::Config::default(),
        observe::whole,
        observe::never_same,
        notify.clone(),
    );
    // Their names and phases are read; a running one changes at every step of its nodes.
    let (dus, w3) = observe::reflect(
        Api::<DirectUpdate>::all(ctx.client.clone()),
        watcher::Config::default(),
        crate::rollout::slim::direct_update,
        observe::never_same,
        notify.clone(),
    );
    let work = async {
        let _ = tokio::join!(
            sus.wait_until_ready(),
            uss.wait_until_ready(),
            dus.wait_until_ready()
        );
        loop {
            let mut wake: Option<DateTime<Utc>> = None;
            let mut earliest = |t: Option<DateTime<Utc>>| {
                if let Some(t) = t {
                    wake = Some(wake.map_or(t, |w| w.min(t)));
                }
            };
            for su in sus.state() {
                earliest(reconcile_scheduled(&ctx, &su, &dus).await);
            }
            for us in uss.state() {
                earliest(reconcile_schedule(&ctx, &us, &dus).await);
            }
            let sleep = wake
                .map(|t| {
                    (t - Utc::now()).to_std().unwrap_or(Duration::ZERO) + Duration::from_millis(50)
                })
                .unwrap_or(Duration::from_secs(300))
                .min(Duration::from_secs(300));
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = notify.notified() => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    };
    tokio::select! {
        _ = w1 => warn!("the ScheduledUpdate watch ended"),
        _ = w2 => warn!("the UpdateSchedule watch ended"),
        _ = w3 => warn!("the DirectUpdate watch ended"),
        _ = work => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(vs: &[&str]) -> VersionCatalogSpec {
        VersionCatalogSpec {
            versions: vs.iter().map(|v| v.parse().expect("version")).collect(),
        }
    }

    #[test]
    fn patterns_pick_the_newest_matching_release() {
        let c = catalog(&[
            "1.33.4",
            "1.34.0",
            "1.34.2",
            "1.35.0-rc.1",
            "1.35.0",
            "1.34.10",
        ]);
        for (pattern, want) in [
            ("1.34.x", Some("1.34.10")),
            ("1.34.*", Some("1.34.10")),
            ("v1.33.x", Some("1.33.4")),
            ("1.x", Some("1.35.0")),
            ("1.34.2", Some("1.34.2")),
            ("1.34.3", None),
            ("1.36.x", None),
        ] {
            assert_eq!(
                pick_version(&c, pattern)
                    .expect(pattern)
                    .map(|v| v.to_string()),
                want.map(str::to_string),
                "{pattern}"
            );
        }
        for bad in ["", "1.x.3", "one.34.x", "1.34.x.1", "1..x"] {
            assert!(pick_version(&c, bad).is_err(), "{bad:?} should be refused");
        }
    }

    fn su(at: &str, status: Option<ScheduledUpdateStatus>) -> ScheduledUpdate {
        let mut su: ScheduledUpdate = serde_json::from_value(serde_json::json!({
            "apiVersion": "cupcake.ricardomolendijk.com/v1",
            "kind": "ScheduledUpdate",
            "metadata": {"name": "nightly"},
            "spec": {"scheduleAt": at, "targetVersion": "1.34.2"}
        }))
        .expect("su");
        su.status = status;
        su
    }

    #[test]
    fn scheduled_updates_wait_gate_or_follow() {
        let now: DateTime<Utc> = "2026-11-28T02:00:00Z".parse().expect("now");
        let later = "2026-11-28T03:00:00Z";
        assert_eq!(
            decide_scheduled(&su(later, None), now, None),
            ScheduledAction::WaitUntil(later.parse().expect("t"))
        );
        assert_eq!(
            decide_scheduled(&su("2026-11-28T01:00:00Z", None), now, None),
            ScheduledAction::Gate
        );
        assert_eq!(
            decide_scheduled(&su("2026-11-28T01:00:00Z", None), now, Some("other")),
            ScheduledAction::WaitFor("other".into())
        );
        let created = ScheduledUpdateStatus {
            direct_update_name: Some("du-1".into()),
            ..Default::default()
        };
        assert_eq!(
            decide_scheduled(
                &su("2026-11-28T01:00:00Z", Some(created)),
                now,
                Some("du-1")
            ),
            ScheduledAction::Follow("du-1".into())
        );
        let failed = ScheduledUpdateStatus {
            phase: Some(ScheduledUpdatePhase::Failed),
            ..Default::default()
        };
        assert_eq!(
            decide_scheduled(&su("2026-11-28T01:00:00Z", Some(failed)), now, None),
            ScheduledAction::Done
        );
        assert_eq!(
            follow_phase(Some(Phase::Succeeded)),
            ScheduledUpdatePhase::Completed
        );
        assert_eq!(
            follow_phase(Some(Phase::RequiresAttention)),
            ScheduledUpdatePhase::Executing
        );
        assert_eq!(follow_phase(None), ScheduledUpdatePhase::Cancelled);
    }
}
