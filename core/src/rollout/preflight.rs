//! Preflight: the checks a DirectUpdate runs once, before its first node is touched
//! (before the backup stage, any cordon, drain or assignment), when
//! `spec.preflightChecks` is true. Pure: the controller gathers what it observed
//! ([`Facts`]: the API server's answer, node conditions, the bundle ConfigMap, the
//! agents' `preflight-result` annotations) and this module decides.
//!
//! ```text
//! gate() ── Open ──────────────────────────────► rollout::next (the operation starts)
//!    │ Run                                          ▲
//!    ▼                                              │ passed: status.preflightResults, once
//! requests() → preflight-request on planned nodes   │
//! evaluate() ── Waiting (reports missing, < timeout) ─► look again
//!    └───────── Done(results) ── failed ──► RequiresAttention, nothing touched; gate() = Held
//!                                           until the retry annotation or a spec change
//! ```
//!
//! The check names are stable (docs/preflight.md): [`API_SERVER`], [`NODES_READY`],
//! [`NODE_PRESSURE`], [`DISK_SPACE`], [`PDBS_HEALTHY`], [`AIRGAP_BUNDLE`] (air-gapped
//! only), [`ETCD_HEALTHY`] (with `spec.backup.etcd` only), in that order.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cupcake_api::KubeVersion;
use cupcake_api::bundle::PackageBundle;
use cupcake_api::crd::{
    DirectUpdateSpec, DirectUpdateStatus, Phase, PreflightCheck, PreflightResults,
};
use cupcake_api::labels;
use cupcake_api::plan::{Stage, StageKind};
use cupcake_api::protocol::PreflightReport;
use cupcake_api::snapshot::ClusterSnapshot;

use super::{hops, human, pdb_key, pdbs_on};
use crate::plan::list_names;

/// The API server answers (`/readyz`, `/version`).
pub const API_SERVER: &str = "api-server";
/// Every planned node exists and is Ready.
pub const NODES_READY: &str = "nodes-ready";
/// No planned node has DiskPressure, MemoryPressure or PIDPressure.
pub const NODE_PRESSURE: &str = "node-pressure";
/// Each planned node's agent reported at least the minimum free disk space.
pub const DISK_SPACE: &str = "disk-space";
/// Every PDB covering pods on planned nodes has currentHealthy ≥ desiredHealthy.
pub const PDBS_HEALTHY: &str = "pdbs-healthy";
/// The air-gapped bundle lists every version and component the operation installs.
pub const AIRGAP_BUNDLE: &str = "airgap-bundle";
/// etcd, as the backup node's agent sees it: members answer, all started, no alarm.
pub const ETCD_HEALTHY: &str = "etcd-healthy";

/// The node conditions that fail [`NODE_PRESSURE`] when True.
pub const PRESSURE_CONDITIONS: [&str; 3] = ["DiskPressure", "MemoryPressure", "PIDPressure"];
/// Free space the agents must report on the filesystem holding `/var/lib` (2 GiB).
pub const DEFAULT_MIN_DISK_FREE: u64 = 2 << 30;
/// How long the controller waits for the agents' reports before failing [`DISK_SPACE`]
/// (and [`ETCD_HEALTHY`]) for the nodes that did not answer.
pub const REPORT_TIMEOUT: Duration = Duration::from_secs(120);
/// Annotation value of [`labels::PREFLIGHT_ETCD`] on the node asked for etcd's health.
pub const ETCD_REQUESTED: &str = "true";

/// What to do about preflight for a DirectUpdate now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Nothing to check (checks off, not air-gapped, a dry run), the checks passed, or the
    /// operation already started: go on to the rollout.
    Open,
    /// Run the checks. `all == false`: `preflightChecks` is off but the DirectUpdate is
    /// air-gapped, so only the bundle is checked (fail closed), and no results are recorded.
    Run { all: bool },
    /// A failed preflight holds the DirectUpdate in RequiresAttention until the `retry`
    /// annotation is set or the spec changes.
    Held,
}

/// Whether `spec.airGapped.enabled`.
pub fn air_gapped(spec: &DirectUpdateSpec) -> bool {
    spec.air_gapped.as_ref().is_some_and(|a| a.enabled)
}

/// The gate for a DirectUpdate. A DirectUpdate whose operation started never runs
/// preflight again; one that failed it runs it again when `annotations` carry
/// [`labels::RETRY`] (any value) or `generation` moved past `status.observedGeneration`.
pub fn gate(
    spec: &DirectUpdateSpec,
    status: Option<&DirectUpdateStatus>,
    generation: Option<i64>,
    annotations: &BTreeMap<String, String>,
) -> Gate {
    let st = status.cloned().unwrap_or_default();
    if spec.dry_run || st.operation_id.is_some() {
        return Gate::Open;
    }
    if !spec.preflight_checks && !air_gapped(spec) {
        return Gate::Open;
    }
    if st.phase == Some(Phase::RequiresAttention) {
        let retry = annotations.contains_key(labels::RETRY);
        let changed = generation.is_some() && generation != st.observed_generation;
        return if retry || changed {
            Gate::Run {
                all: spec.preflight_checks,
            }
        } else {
            Gate::Held
        };
    }
    if spec.preflight_checks && st.preflight_results.as_ref().is_some_and(|r| r.passed) {
        return Gate::Open;
    }
    Gate::Run {
        all: spec.preflight_checks,
    }
}

/// Every node of the plan, once, in plan order.
pub fn planned_nodes(stages: &[Stage]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    stages
        .iter()
        .flat_map(|s| s.nodes())
        .filter(|n| seen.insert(n.as_str()))
        .cloned()
        .collect()
}

/// The node whose agent reports etcd's health: the backup stage's node, when
/// `spec.backup.etcd`.
pub fn etcd_node(spec: &DirectUpdateSpec, stages: &[Stage]) -> Option<String> {
    if !spec.backup.as_ref().is_some_and(|b| b.etcd) {
        return None;
    }
    stages
        .iter()
        .find(|s| s.kind == StageKind::Backup)
        .and_then(|s| s.nodes().next())
        .cloned()
}

/// A `preflight-request` to write on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub node: String,
    /// Also ask for etcd's health ([`labels::PREFLIGHT_ETCD`]).
    pub etcd: bool,
}

/// The requests missing on existing planned nodes: `preflight-request: <operation_id>`
/// on each, `preflight-etcd: true` on the backup node.
pub fn requests(
    operation_id: &str,
    spec: &DirectUpdateSpec,
    stages: &[Stage],
    cluster: &ClusterSnapshot,
    node_annotations: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<Request> {
    let etcd = etcd_node(spec, stages);
    let exists: BTreeSet<&str> = cluster.nodes.iter().map(|n| n.name.as_str()).collect();
    planned_nodes(stages)
        .into_iter()
        .filter(|n| exists.contains(n.as_str()))
        .filter_map(|node| {
            let want_etcd = etcd.as_deref() == Some(node.as_str());
            let a = node_annotations.get(&node);
            let get = |k: &str| a.and_then(|a| a.get(k)).map(String::as_str);
            let asked = get(labels::PREFLIGHT_REQUEST) == Some(operation_id)
                && (get(labels::PREFLIGHT_ETCD) == Some(ETCD_REQUESTED)) == want_etcd;
            (!asked).then_some(Request {
                node,
                etcd: want_etcd,
            })
        })
        .collect()
}

/// The agent's report on a node for `operation_id`: `None` when there is none for it
/// yet, `Some(Err)` when the annotation is not a report.
pub fn report(
    annotations: Option<&BTreeMap<String, String>>,
    operation_id: &str,
) -> Option<Result<PreflightReport, String>> {
    let raw = annotations?.get(labels::PREFLIGHT_RESULT)?;
    match serde_json::from_str::<PreflightReport>(raw) {
        Ok(r) if r.operation_id == operation_id => Some(Ok(r)),
        Ok(_) => None, // an older operation's
        Err(e) => Some(Err(format!("its preflight-result is not a report ({e})"))),
    }
}

/// Everything [`evaluate`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub operation_id: &'a str,
    pub spec: &'a DirectUpdateSpec,
    pub stages: &'a [Stage],
    pub cluster: &'a ClusterSnapshot,
    /// CUPCAKE's annotations of each node (the agents' `preflight-result`).
    pub node_annotations: &'a BTreeMap<String, BTreeMap<String, String>>,
    /// Per node, its [`PRESSURE_CONDITIONS`] that are True.
    pub pressure: &'a BTreeMap<String, Vec<String>>,
    /// What the API server answered: `Ok(detail)` or `Err(why not)`.
    pub api_server: &'a Result<String, String>,
    /// Air-gapped only: the bundle ConfigMap as read, `Ok((namespace/name, bundle.yaml))`
    /// or `Err(why it could not be read)`.
    pub bundle: Option<&'a Result<(String, String), String>>,
    /// Since the requests were written.
    pub waited: Duration,
    pub min_disk_free: u64,
    pub report_timeout: Duration,
}

/// What [`evaluate`] decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Reports are still missing from these nodes, within the timeout.
    Waiting { missing: Vec<String> },
    /// Every check has a result.
    Done(PreflightResults),
}

fn check(name: &str, passed: bool, message: String) -> PreflightCheck {
    PreflightCheck {
        name: name.to_string(),
        passed,
        message: Some(message),
    }
}

/// Bytes as GiB with one decimal (MiB below 1 GiB).
pub fn size(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

/// Evaluate every check, or say which reports are still awaited.
pub fn evaluate(f: &Facts<'_>) -> Outcome {
    let planned = planned_nodes(f.stages);
    let by_name: BTreeMap<&str, &cupcake_api::snapshot::Node> = f
        .cluster
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n))
        .collect();
    let existing: Vec<&String> = planned
        .iter()
        .filter(|n| by_name.contains_key(n.as_str()))
        .collect();
    let reports: BTreeMap<&str, Result<PreflightReport, String>> = existing
        .iter()
        .filter_map(|n| {
            report(f.node_annotations.get(n.as_str()), f.operation_id).map(|r| (n.as_str(), r))
        })
        .collect();
    let missing: Vec<String> = existing
        .iter()
        .filter(|n| !reports.contains_key(n.as_str()))
        .map(|n| n.to_string())
        .collect();
    let timed_out = f.waited >= f.report_timeout;
    if !missing.is_empty() && !timed_out {
        return Outcome::Waiting { missing };
    }
    let no_report = |n: &str| {
        format!(
            "{n}: no report within {} (is cupcake-agent running on it?)",
            human(f.report_timeout)
        )
    };

    let mut checks = Vec::new();
    checks.push(match f.api_server {
        Ok(detail) => check(API_SERVER, true, detail.clone()),
        Err(why) => check(API_SERVER, false, why.clone()),
    });

    // nodes-ready
    let absent: Vec<&String> = planned
        .iter()
        .filter(|n| !by_name.contains_key(n.as_str()))
        .collect();
    let not_ready: Vec<&String> = existing
        .iter()
        .copied()
        .filter(|n| by_name.get(n.as_str()).is_some_and(|x| !x.ready))
        .collect();
    checks.push(if absent.is_empty() && not_ready.is_empty() {
        check(
            NODES_READY,
            true,
            format!("all {} planned nodes are Ready", planned.len()),
        )
    } else {
        let mut parts = Vec::new();
        if !not_ready.is_empty() {
            parts.push(format!("not Ready: {}", list_names(&not_ready)));
        }
        if !absent.is_empty() {
            parts.push(format!("do not exist: {}", list_names(&absent)));
        }
        check(NODES_READY, false, parts.join("; "))
    });

    // node-pressure
    let pressed: Vec<String> = existing
        .iter()
        .filter_map(|n| {
            let c = f.pressure.get(n.as_str()).filter(|c| !c.is_empty())?;
            Some(format!("{n} has {}", c.join(", ")))
        })
        .collect();
    checks.push(if pressed.is_empty() {
        check(
            NODE_PRESSURE,
            true,
            format!("no planned node reports {}", PRESSURE_CONDITIONS.join(", ")),
        )
    } else {
        check(NODE_PRESSURE, false, list_names(&pressed))
    });

    // disk-space
    let mut low = Vec::new();
    let mut lowest: Option<(u64, &str, String)> = None;
    for n in &existing {
        match reports.get(n.as_str()) {
            None => low.push(no_report(n)),
            Some(Err(e)) => low.push(format!("{n}: {e}")),
            Some(Ok(r)) => {
                let path = r.disk_path.clone().unwrap_or_else(|| "/var/lib".into());
                match (r.disk_free_bytes, &r.error) {
                    (Some(b), _) if b < f.min_disk_free => low.push(format!(
                        "{n} has {} free on {path} (needs {})",
                        size(b),
                        size(f.min_disk_free)
                    )),
                    (Some(b), _) => {
                        if lowest.as_ref().is_none_or(|l| b < l.0) {
                            lowest = Some((b, n.as_str(), path));
                        }
                    }
                    (None, Some(e)) => low.push(format!("{n}: the agent could not measure: {e}")),
                    (None, None) => low.push(format!("{n}: the agent reported no disk space")),
                }
            }
        }
    }
    checks.push(if low.is_empty() {
        check(
            DISK_SPACE,
            true,
            match lowest {
                Some((b, n, path)) => format!(
                    "every planned node has at least {} free (lowest: {n}, {} on {path})",
                    size(f.min_disk_free),
                    size(b)
                ),
                None => "no planned node to check".to_string(),
            },
        )
    } else {
        check(DISK_SPACE, false, list_names(&low))
    });

    // pdbs-healthy
    let mut pdbs = BTreeMap::new();
    for n in &existing {
        for p in pdbs_on(f.cluster, n) {
            pdbs.entry(pdb_key(p)).or_insert(p);
        }
    }
    let unhealthy: Vec<String> = pdbs
        .iter()
        .filter_map(|(k, p)| match p.status {
            None => Some(format!("PodDisruptionBudget {k} has no status yet")),
            Some(s) if s.current_healthy < s.desired_healthy => Some(format!(
                "PodDisruptionBudget {k} has {} healthy pods, wants {}",
                s.current_healthy, s.desired_healthy
            )),
            Some(_) => None,
        })
        .collect();
    checks.push(if unhealthy.is_empty() {
        check(
            PDBS_HEALTHY,
            true,
            if pdbs.is_empty() {
                "no PodDisruptionBudget covers pods on the planned nodes".to_string()
            } else {
                format!(
                    "{} PodDisruptionBudget(s) covering pods on the planned nodes are healthy",
                    pdbs.len()
                )
            },
        )
    } else {
        check(PDBS_HEALTHY, false, list_names(&unhealthy))
    });

    if air_gapped(f.spec) {
        let read = f
            .bundle
            .cloned()
            .unwrap_or_else(|| Err("the bundle ConfigMap was not read".to_string()));
        checks.push(bundle_check(f.spec, f.stages, &read));
    }

    if let Some(node) = etcd_node(f.spec, f.stages) {
        checks.push(match reports.get(node.as_str()) {
            _ if !by_name.contains_key(node.as_str()) => {
                check(ETCD_HEALTHY, false, format!("node {node} does not exist"))
            }
            None => check(ETCD_HEALTHY, false, no_report(&node)),
            Some(Err(e)) => check(ETCD_HEALTHY, false, format!("{node}: {e}")),
            Some(Ok(r)) => etcd_check(&node, r),
        });
    }

    Outcome::Done(PreflightResults {
        passed: checks.iter().all(|c| c.passed),
        checks,
    })
}

fn etcd_check(node: &str, r: &PreflightReport) -> PreflightCheck {
    let Some(e) = &r.etcd else {
        return check(
            ETCD_HEALTHY,
            false,
            format!("the agent on {node} did not report etcd's health"),
        );
    };
    if let Some(err) = &e.error {
        return check(
            ETCD_HEALTHY,
            false,
            format!("etcd at {} (from {node}): {err}", e.endpoint),
        );
    }
    let mut bad = Vec::new();
    if e.members.is_empty() && e.unstarted.is_empty() {
        bad.push("the member list is empty".to_string());
    }
    if !e.unstarted.is_empty() {
        bad.push(format!("members not started: {}", list_names(&e.unstarted)));
    }
    if !e.alarms.is_empty() {
        bad.push(format!("alarms: {}", list_names(&e.alarms)));
    }
    if bad.is_empty() {
        check(
            ETCD_HEALTHY,
            true,
            format!(
                "{} member(s) started, no alarm (etcd at {} from {node})",
                e.members.len(),
                e.endpoint
            ),
        )
    } else {
        check(
            ETCD_HEALTHY,
            false,
            format!("etcd at {} (from {node}): {}", e.endpoint, bad.join("; ")),
        )
    }
}

/// Where the bundle ConfigMap is (`(namespace, name)`), when the DirectUpdate is
/// air-gapped: `Some(Err)` names what is wrong with `spec.airGapped`.
pub fn bundle_ref(
    spec: &DirectUpdateSpec,
    default_namespace: &str,
) -> Option<Result<(String, String), String>> {
    let a = spec.air_gapped.as_ref().filter(|a| a.enabled)?;
    Some(match a.bundle_config_map.as_deref().map(str::trim) {
        None | Some("") => Err(
            "spec.airGapped.enabled is true but spec.airGapped.bundleConfigMap is not set: name the ConfigMap holding bundle.yaml (NAME or NAMESPACE/NAME)"
                .to_string(),
        ),
        Some(r) => cupcake_api::bundle::config_map_ref(r, default_namespace),
    })
}

/// The versions an air-gapped operation installs: the target and every hop.
pub fn bundle_versions(spec: &DirectUpdateSpec, stages: &[Stage]) -> Vec<KubeVersion> {
    let mut v = hops(spec, stages);
    for s in stages {
        if !v.contains(&s.version) {
            v.push(s.version.clone());
        }
    }
    if !v.contains(&spec.target_version) {
        v.push(spec.target_version.clone());
    }
    v.sort();
    v
}

/// The [`AIRGAP_BUNDLE`] check: the ConfigMap was read, `bundle.yaml` parses, and it lists
/// every component of `spec.components` at every version of [`bundle_versions`].
pub fn bundle_check(
    spec: &DirectUpdateSpec,
    stages: &[Stage],
    read: &Result<(String, String), String>,
) -> PreflightCheck {
    let (reference, text) = match read {
        Ok(r) => r,
        Err(why) => return check(AIRGAP_BUNDLE, false, why.clone()),
    };
    let where_ = format!("{} in ConfigMap {reference}", cupcake_api::bundle::DATA_KEY);
    let bundle = match PackageBundle::from_yaml(text) {
        Ok(b) => b,
        Err(e) => return check(AIRGAP_BUNDLE, false, format!("{where_}: {e}")),
    };
    let versions = bundle_versions(spec, stages);
    let missing = bundle.missing(&versions, &spec.components);
    if missing.is_empty() {
        let vs: Vec<String> = versions.iter().map(ToString::to_string).collect();
        check(
            AIRGAP_BUNDLE,
            true,
            format!(
                "{where_} lists {} for {}",
                comps(&spec.components),
                vs.join(", ")
            ),
        )
    } else {
        let m: Vec<String> = missing.iter().map(ToString::to_string).collect();
        check(
            AIRGAP_BUNDLE,
            false,
            format!("{where_} lacks {}", list_names(&m)),
        )
    }
}

fn comps(c: &[cupcake_api::common::Component]) -> String {
    c.iter()
        .map(|c| cupcake_api::bundle::component_name(*c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The status message and Event text of a failed preflight: the first failed check.
pub fn failure_message(results: &PreflightResults) -> Option<String> {
    let c = results.checks.iter().find(|c| !c.passed)?;
    Some(format!(
        "preflight check {} failed: {}; no node was touched (fix it, then annotate the DirectUpdate {}=preflight or change its spec to check again)",
        c.name,
        c.message.as_deref().unwrap_or("no detail"),
        labels::RETRY
    ))
}

#[cfg(test)]
mod tests;
