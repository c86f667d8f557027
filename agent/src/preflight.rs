//! The preflight report, as the agent plays it: before the first node of a
//! DirectUpdate is touched, the rollout controller writes
//! `preflight-request: <operationID>` on every planned node (and
//! `preflight-etcd: true` on the backup node); the agent answers with
//! `preflight-result: <PreflightReport JSON>`:
//!
//! - `diskFreeBytes`: bytes available to unprivileged writers on the filesystem holding
//!   `diskPath` (statvfs `f_bavail × f_frsize`): `<host-root>/var/lib` for the kubeadm
//!   executor (reported as `/var/lib`), the state directory for the simulate executor,
//!   or the value of `--report-disk-free` (tests);
//! - `etcd`, when asked: the member list and the alarm list from the backup stage's
//!   etcd endpoint (same endpoints and TLS files as the backup), else `null`;
//! - `error`: what could not be measured.
//!
//! A request is answered once per operation id (again if it asks for etcd and the
//! answer has none); the answer is written only while the node still carries that
//! request (checked against the `resourceVersion` it is written with). The controller
//! clears both when the preflight is over.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use cupcake_api::labels;
use cupcake_api::protocol::{EtcdHealth, PreflightReport};
use etcd_client::{AlarmAction, AlarmType};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use tracing::info;

use crate::backup::{self, EtcdTarget};
use crate::node::Written;

/// How long the etcd health check may take.
const ETCD_TIMEOUT: Duration = Duration::from_secs(20);

/// What the agent measures.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The path whose filesystem is measured.
    pub disk_path: PathBuf,
    /// The path as reported (`/var/lib` on the host, not `/host/var/lib`).
    pub disk_shown: String,
    /// `--report-disk-free`: a fixed answer instead of measuring, per node (`""`: every node).
    pub disk_fixed: BTreeMap<String, u64>,
    /// etcd, as the backup stage reaches it.
    pub etcd: EtcdTarget,
}

/// A request this node has not answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub operation_id: String,
    pub etcd: bool,
}

/// The preflight request on a node that still needs an answer.
pub fn wanted(annotations: &BTreeMap<String, String>) -> Option<Wanted> {
    let op = annotations.get(labels::PREFLIGHT_REQUEST)?.trim();
    if op.is_empty() {
        return None;
    }
    let etcd = annotations
        .get(labels::PREFLIGHT_ETCD)
        .is_some_and(|v| v.trim() == "true");
    let answered = annotations
        .get(labels::PREFLIGHT_RESULT)
        .and_then(|r| serde_json::from_str::<PreflightReport>(r).ok())
        .is_some_and(|r| r.operation_id == op && (!etcd || r.etcd.is_some()));
    (!answered).then(|| Wanted {
        operation_id: op.to_string(),
        etcd,
    })
}

/// Free bytes for unprivileged writers on the filesystem holding `path`.
pub fn free_bytes(path: &std::path::Path) -> Result<u64, String> {
    let s = rustix::fs::statvfs(path).map_err(|e| format!("statvfs {}: {e}", path.display()))?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// etcd's members and alarms from the first endpoint that answers.
pub async fn etcd_health(target: &EtcdTarget) -> EtcdHealth {
    let first = target.endpoints.first().cloned().unwrap_or_default();
    let check = async {
        let (mut c, endpoint, _) = backup::connect(target)
            .await
            .map_err(|e| (first.clone(), e.to_string()))?;
        let failed = |what: &str, e: etcd_client::Error| {
            (
                endpoint.clone(),
                format!("{what}: {}", backup::etcd_message(&e)),
            )
        };
        let members = c
            .member_list()
            .await
            .map_err(|e| failed("member list", e))?;
        let alarms = c
            .alarm(AlarmAction::Get, AlarmType::None, None)
            .await
            .map_err(|e| failed("alarm list", e))?;
        let mut h = EtcdHealth {
            endpoint: endpoint.clone(),
            ..EtcdHealth::default()
        };
        for m in members.members() {
            if m.name().is_empty() {
                // A member added but never started has no name yet.
                h.unstarted.push(m.peer_urls().join(","));
            } else {
                h.members.push(m.name().to_string());
            }
        }
        for a in alarms.alarms() {
            if a.alarm() != AlarmType::None {
                h.alarms.push(format!(
                    "{} on member {:x}",
                    a.alarm().as_str_name(),
                    a.member_id()
                ));
            }
        }
        Ok::<_, (String, String)>(h)
    };
    match tokio::time::timeout(ETCD_TIMEOUT, check).await {
        Ok(Ok(h)) => h,
        Ok(Err((endpoint, error))) => EtcdHealth {
            endpoint,
            error: Some(backup::redact(&error)),
            ..EtcdHealth::default()
        },
        Err(_) => EtcdHealth {
            endpoint: first,
            error: Some(format!("no answer within {ETCD_TIMEOUT:?}")),
            ..EtcdHealth::default()
        },
    }
}

/// The report for `node`.
pub async fn report(settings: &Settings, node: &str, want: &Wanted) -> PreflightReport {
    let fixed = settings
        .disk_fixed
        .get(node)
        .or_else(|| settings.disk_fixed.get(""))
        .copied();
    let (disk_free_bytes, error) = match fixed {
        Some(b) => (Some(b), None),
        None => match free_bytes(&settings.disk_path) {
            Ok(b) => (Some(b), None),
            Err(e) => (None, Some(e)),
        },
    };
    let etcd = if want.etcd {
        Some(etcd_health(&settings.etcd).await)
    } else {
        None
    };
    PreflightReport {
        operation_id: want.operation_id.clone(),
        disk_free_bytes,
        disk_path: Some(settings.disk_shown.clone()),
        etcd,
        error,
    }
}

/// Measure and write the answer to `want` on `node`.
pub async fn answer(
    api: &Api<Node>,
    node: &str,
    settings: &Settings,
    want: &Wanted,
) -> Result<Written, kube::Error> {
    let r = report(settings, node, want).await;
    info!(
        node,
        operation = %want.operation_id,
        disk_free = r.disk_free_bytes,
        etcd = r.etcd.is_some(),
        "preflight report"
    );
    let written = write(api, node, &want.operation_id, &r).await?;
    if written != Written::Yes {
        info!(
            node,
            "the preflight request was withdrawn; report not written"
        );
    }
    Ok(written)
}

/// Write `report` as the node's `preflight-result` while `preflight-request` still
/// names its operation.
pub async fn write(
    api: &Api<Node>,
    node: &str,
    operation_id: &str,
    report: &PreflightReport,
) -> Result<Written, kube::Error> {
    let value = serde_json::to_string(report).unwrap_or_default();
    crate::node::write_answer(
        api,
        node,
        labels::PREFLIGHT_REQUEST,
        labels::PREFLIGHT_RESULT,
        operation_id,
        &value,
    )
    .await
}

/// Parse one `--report-disk-free` value: `BYTES` (every node) or `NODE=BYTES`.
pub fn parse_disk_free(s: &str) -> Result<(String, u64), String> {
    let (node, bytes) = match s.split_once('=') {
        Some((n, b)) => (n.trim(), b.trim()),
        None => ("", s.trim()),
    };
    let b = bytes
        .parse::<u64>()
        .map_err(|_| format!("{s:?}: expected BYTES or NODE=BYTES (a whole number of bytes)"))?;
    Ok((node.to_string(), b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn result(op: &str, etcd: bool) -> String {
        serde_json::to_string(&PreflightReport {
            operation_id: op.into(),
            disk_free_bytes: Some(1),
            etcd: etcd.then(EtcdHealth::default),
            ..PreflightReport::default()
        })
        .unwrap_or_default()
    }

    #[test]
    fn a_request_is_wanted_until_answered_for_its_operation_and_etcd() {
        assert_eq!(wanted(&ann(&[])), None);
        let req = (labels::PREFLIGHT_REQUEST, "op-1");
        let want = |etcd| {
            Some(Wanted {
                operation_id: "op-1".into(),
                etcd,
            })
        };
        assert_eq!(wanted(&ann(&[req])), want(false));
        let old = result("op-0", false);
        assert_eq!(
            wanted(&ann(&[req, (labels::PREFLIGHT_RESULT, &old)])),
            want(false)
        );
        let done = result("op-1", false);
        assert_eq!(
            wanted(&ann(&[req, (labels::PREFLIGHT_RESULT, &done)])),
            None
        );
        // Asked for etcd after a report without it: wanted again.
        let etcd = (labels::PREFLIGHT_ETCD, "true");
        assert_eq!(
            wanted(&ann(&[req, etcd, (labels::PREFLIGHT_RESULT, &done)])),
            want(true)
        );
        let with = result("op-1", true);
        assert_eq!(
            wanted(&ann(&[req, etcd, (labels::PREFLIGHT_RESULT, &with)])),
            None
        );
    }

    #[test]
    fn disk_free_values_parse() {
        assert_eq!(parse_disk_free("1073741824"), Ok((String::new(), 1 << 30)));
        assert_eq!(parse_disk_free("w-2=5"), Ok(("w-2".into(), 5)));
        assert!(parse_disk_free("1Gi").is_err());
        assert!(parse_disk_free("w-2=").is_err());
    }

    #[test]
    fn the_state_dir_filesystem_has_free_space() {
        let d = std::env::temp_dir();
        assert!(free_bytes(&d).is_ok_and(|b| b > 0));
        let e = free_bytes(std::path::Path::new("/no/such/dir")).unwrap_err();
        assert!(e.contains("statvfs /no/such/dir"), "{e}");
    }
}
