//! The backup stage, as the agent plays it: the rollout controller writes
//! `backup-request: <operationID>` on the stage's control-plane node; the agent
//! of that node takes the backup ([`crate::backup::run`]) and answers with
//! `backup-result: <BackupResult JSON>` for that operation id. The controller
//! copies a good result to `status.backupInfo` and only then starts the
//! control plane; a failed one (the reason in `message`) puts the DirectUpdate
//! in RequiresAttention.
//!
//! - A request is answered once: a `backup-result` for the same operation id
//!   (good or failed) means done. To try again after a failure, remove the
//!   `backup-result` annotation (the runbook's "Backups" section).
//! - The result is written only while the node still carries the request it
//!   answers (checked with the `resourceVersion` it is written against).
//! - The store: the `backup-store` annotation the controller writes with the
//!   request (the DirectUpdate's `spec.backup.storeRef`), else the agent's own
//!   `--backup-store`. Credentials always come from the agent's environment (its
//!   Secret). With neither, the agent answers with a failed result saying so: the
//!   controller stops with that reason instead of waiting.

use std::collections::BTreeMap;

use cupcake_api::labels;
use cupcake_api::protocol::BackupResult;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use tracing::{info, warn};

use crate::backup::{self, BackupSettings, EtcdTarget};
use crate::node::Written;

/// The operation id of a backup request this node has not answered yet.
pub fn wanted(annotations: &BTreeMap<String, String>) -> Option<String> {
    let op = annotations.get(labels::BACKUP_REQUEST)?.trim();
    if op.is_empty() {
        return None;
    }
    let answered = annotations
        .get(labels::BACKUP_RESULT)
        .and_then(|r| serde_json::from_str::<BackupResult>(r).ok())
        .is_some_and(|r| r.operation_id == op);
    (!answered).then(|| op.to_string())
}

/// How this agent takes backups: etcd, its own store, retention.
#[derive(Debug, Clone)]
pub struct StageSettings {
    pub etcd: EtcdTarget,
    /// `--backup-store`: used when the request names no store.
    pub store: Option<String>,
    /// Sub-directory per cluster under the store URL's path.
    pub cluster: Option<String>,
    /// Snapshots kept (0: all).
    pub keep: usize,
}

impl StageSettings {
    /// The settings of one backup of `node`: `store_ref` (the request's `backup-store`)
    /// before `--backup-store`; `Err` says why there is no store.
    pub fn for_request(
        &self,
        node: &str,
        store_ref: Option<&str>,
    ) -> Result<BackupSettings, String> {
        let store = store_ref
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| self.store.clone().filter(|s| !s.trim().is_empty()))
            .ok_or_else(|| {
                format!(
                    "the agent on {node} has no backup store: the DirectUpdate names none (spec.backup.storeRef) and the agent has no --backup-store (CUPCAKE_BACKUP_STORE)"
                )
            })?;
        Ok(BackupSettings {
            etcd: self.etcd.clone(),
            store,
            cluster: self.cluster.clone(),
            keep: self.keep,
            node: node.to_string(),
        })
    }
}

/// Take the backup `operation_id` asks for (or explain why this agent cannot)
/// and write the result on the node. `store_ref`: the request's `backup-store`.
pub async fn answer(
    api: &Api<Node>,
    node: &str,
    settings: &StageSettings,
    operation_id: &str,
    store_ref: Option<&str>,
) -> Result<Written, kube::Error> {
    info!(
        node,
        operation = operation_id,
        store = store_ref.unwrap_or("(--backup-store)"),
        "etcd backup requested"
    );
    let result = match settings.for_request(node, store_ref) {
        Ok(s) => backup::run(&s, operation_id).await.result,
        Err(message) => BackupResult {
            operation_id: operation_id.to_string(),
            ok: false,
            message: Some(message),
            ..BackupResult::default()
        },
    };
    let written = write(api, node, operation_id, &result).await?;
    match written {
        Written::Yes if result.ok => info!(node, operation = operation_id, "backup-result written"),
        Written::Yes => warn!(
            node,
            operation = operation_id,
            "failed backup-result written"
        ),
        Written::NotOurs => info!(
            node,
            operation = operation_id,
            "the backup request was withdrawn; result not written"
        ),
        Written::Gone => info!(node, "the node is gone"),
    }
    Ok(written)
}

/// Write `result` as the node's `backup-result` while `backup-request` still
/// names its operation.
pub async fn write(
    api: &Api<Node>,
    node: &str,
    operation_id: &str,
    result: &BackupResult,
) -> Result<Written, kube::Error> {
    let value = serde_json::to_string(result).unwrap_or_default();
    crate::node::write_answer(
        api,
        node,
        labels::BACKUP_REQUEST,
        labels::BACKUP_RESULT,
        operation_id,
        &value,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_wanted_until_answered_for_its_operation() {
        let mut a = BTreeMap::new();
        assert_eq!(wanted(&a), None);
        a.insert(labels::BACKUP_REQUEST.to_string(), "op-1".to_string());
        assert_eq!(wanted(&a).as_deref(), Some("op-1"));
        let old = BackupResult {
            operation_id: "op-0".into(),
            ok: true,
            ..BackupResult::default()
        };
        a.insert(
            labels::BACKUP_RESULT.to_string(),
            serde_json::to_string(&old).unwrap(),
        );
        assert_eq!(
            wanted(&a).as_deref(),
            Some("op-1"),
            "a result of another operation"
        );
        let failed = BackupResult {
            operation_id: "op-1".into(),
            ok: false,
            ..BackupResult::default()
        };
        a.insert(
            labels::BACKUP_RESULT.to_string(),
            serde_json::to_string(&failed).unwrap(),
        );
        assert_eq!(wanted(&a), None, "answered (failed) for this operation");
        a.insert(labels::BACKUP_RESULT.to_string(), "not json".to_string());
        assert_eq!(wanted(&a).as_deref(), Some("op-1"));
    }

    #[test]
    fn the_requests_store_comes_before_the_agents_own() {
        let s = StageSettings {
            etcd: EtcdTarget {
                endpoints: vec!["http://127.0.0.1:2379".into()],
                tls: None,
            },
            store: Some("file:///agent".into()),
            cluster: None,
            keep: 3,
        };
        let store = |r: Option<&str>| s.for_request("cp-1", r).map(|b| b.store);
        assert_eq!(store(Some("s3://b/p")).as_deref(), Ok("s3://b/p"));
        assert_eq!(store(Some("  ")).as_deref(), Ok("file:///agent"));
        assert_eq!(store(None).as_deref(), Ok("file:///agent"));
        let none = StageSettings {
            store: None,
            ..s.clone()
        };
        let e = none.for_request("cp-1", None).unwrap_err();
        assert!(
            e.contains("cp-1") && e.contains("spec.backup.storeRef"),
            "{e}"
        );
        assert_eq!(
            none.for_request("cp-1", Some("file:///x")).map(|b| b.node),
            Ok("cp-1".to_string())
        );
    }
}
