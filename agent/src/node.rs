//! The agent's view of its Node, and its only writes to it: merge patches of
//! the protocol annotations (`status`, `step`, `message`).
//!
//! Every report is guarded: it is written only while the node still carries
//! the assignment the agent acted on (same `operation-id` and `target-version`),
//! and with the `resourceVersion` it was checked against, so a report never
//! lands on an assignment the controller cleared or replaced in between (the
//! apiserver refuses a stale write with 409 and the check runs again).

use std::collections::BTreeMap;
use std::time::Duration;

use cupcake_api::labels;
use cupcake_api::protocol::AgentStatus;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt as _;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::checkpoint::one_line;

/// Field manager of every write the agent makes.
pub const FIELD_MANAGER: &str = "cupcake-agent";

/// Longest `message` annotation written (the rest is cut, with an ellipsis).
const MAX_MESSAGE: usize = 1000;

/// Patch parameters with the agent's field manager.
pub fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    }
}

/// What the agent needs of a Node: its name, labels (role) and annotations (assignment).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The resourceVersion the annotations were read at.
    pub resource_version: Option<String>,
}

impl NodeView {
    pub fn of<K: kube::Resource>(obj: &K) -> Self {
        Self {
            name: obj.meta().name.clone().unwrap_or_default(),
            labels: obj.meta().labels.clone().unwrap_or_default(),
            annotations: obj.meta().annotations.clone().unwrap_or_default(),
            resource_version: obj.meta().resource_version.clone(),
        }
    }
}

/// The node's annotations as the agent last read or wrote them, with their
/// resourceVersion. A report checks its guard against this copy and sends that
/// resourceVersion, so it needs no read of its own; if anyone wrote the node since,
/// the API server refuses the patch (409) and the report reads the node and checks
/// again — the same guarantee as reading first, one round trip less on the way
/// from an assignment to its first step and from the last step to `completed`.
#[derive(Debug, Default)]
pub struct Latest(std::sync::Mutex<Option<(String, BTreeMap<String, String>)>>);

impl Latest {
    /// The copy a reconcile was called with (read from the API server just before).
    pub fn of(view: &NodeView) -> Self {
        let known = view
            .resource_version
            .clone()
            .map(|rv| (rv, view.annotations.clone()));
        Self(std::sync::Mutex::new(known))
    }

    /// The copy, once: a conflict or a failed write leaves none, and the next
    /// attempt reads the node.
    /// The resourceVersion of the copy, if one is known (none while a write is under way
    /// or after one failed).
    pub fn resource_version(&self) -> Option<String> {
        self.0
            .lock()
            .ok()
            .and_then(|k| k.as_ref().map(|(rv, _)| rv.clone()))
    }

    fn take(&self) -> Option<(String, BTreeMap<String, String>)> {
        self.0.lock().map(|mut k| k.take()).unwrap_or(None)
    }

    fn set(&self, meta: &kube::api::ObjectMeta) {
        if let (Ok(mut k), Some(rv)) = (self.0.lock(), meta.resource_version.clone()) {
            *k = Some((rv, meta.annotations.clone().unwrap_or_default()));
        }
    }
}

/// Read a node's metadata now (not from a watch cache): decisions are made on
/// what the apiserver says after the agent's own last write.
pub async fn read(api: &Api<Node>, name: &str) -> Result<Option<NodeView>, kube::Error> {
    Ok(api.get_metadata_opt(name).await?.map(|m| NodeView::of(&m)))
}

/// What a report says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// `status=in-progress`, no message, and `step=<the step about to run>` when known.
    Started { step: Option<String> },
    /// `step=<id>`: the step now running.
    Step(String),
    /// `status=completed`, `step=<last step>`, no message.
    Completed { last_step: Option<String> },
    /// `status=failed`, `message=<one line>`, and `step=<failed step>` when known.
    Failed {
        step: Option<String>,
        message: String,
    },
}

impl Report {
    /// The annotations this report sets (`null` removes one).
    pub fn annotations(&self) -> Value {
        let mut a = serde_json::Map::new();
        let mut set = |k: &str, v: Value| {
            a.insert(k.to_string(), v);
        };
        match self {
            Self::Started { step } => {
                set(labels::STATUS, json!(AgentStatus::InProgress.as_str()));
                set(labels::MESSAGE, Value::Null);
                if let Some(s) = step {
                    set(labels::STEP, json!(s));
                }
            }
            Self::Step(id) => set(labels::STEP, json!(id)),
            Self::Completed { last_step } => {
                set(labels::STATUS, json!(AgentStatus::Completed.as_str()));
                set(labels::MESSAGE, Value::Null);
                if let Some(s) = last_step {
                    set(labels::STEP, json!(s));
                }
            }
            Self::Failed { step, message } => {
                set(labels::STATUS, json!(AgentStatus::Failed.as_str()));
                set(labels::MESSAGE, json!(short(&one_line(message))));
                if let Some(s) = step {
                    set(labels::STEP, json!(s));
                }
            }
        }
        Value::Object(a)
    }
}

fn short(s: &str) -> String {
    if s.len() <= MAX_MESSAGE {
        return s.to_string();
    }
    let mut end = MAX_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The assignment a report belongs to: the raw `operation-id` and
/// `target-version` annotations the agent acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    operation_id: Option<String>,
    target: Option<String>,
}

impl Guard {
    pub fn of(annotations: &BTreeMap<String, String>) -> Self {
        Self {
            operation_id: annotations.get(labels::OPERATION_ID).cloned(),
            target: annotations.get(labels::TARGET_VERSION).cloned(),
        }
    }

    pub fn holds(&self, annotations: &BTreeMap<String, String>) -> bool {
        *self == Self::of(annotations)
    }
}

/// What became of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// The node no longer carries the assignment: nothing written.
    NotOurs,
    /// The node is gone.
    Gone,
}

/// Write `report` on node `name` if `guard` still holds, checked against `latest`
/// (then updated from the API server's answer). Conflicts are retried at once,
/// other errors a few times with backoff (kube's client already retries 429/503/504).
pub async fn write(
    api: &Api<Node>,
    name: &str,
    guard: &Guard,
    report: &Report,
    latest: &Latest,
) -> Result<Written, kube::Error> {
    guarded_patch(
        api,
        name,
        |a| guard.holds(a),
        report.annotations(),
        "report",
        Some(latest),
    )
    .await
}

/// Write `value` as the node's `answer` annotation while its `request` annotation still
/// names `operation_id` (the backup and preflight exchanges).
pub async fn write_answer(
    api: &Api<Node>,
    node: &str,
    request: &str,
    answer: &str,
    operation_id: &str,
    value: &str,
) -> Result<Written, kube::Error> {
    guarded_patch(
        api,
        node,
        |a| a.get(request).map(|s| s.trim()) == Some(operation_id),
        json!({ answer: value }),
        answer,
        None,
    )
    .await
}

/// Merge `annotations` into node `name` with its resourceVersion as a precondition,
/// while `holds` says its current annotations still allow it: checked against
/// `latest` when it has a copy that allows it, else against the node read now.
/// Conflicts are retried at once (10 times), other errors 4 times with a growing pause.
async fn guarded_patch(
    api: &Api<Node>,
    name: &str,
    holds: impl Fn(&BTreeMap<String, String>) -> bool,
    annotations: serde_json::Value,
    what: &str,
    latest: Option<&Latest>,
) -> Result<Written, kube::Error> {
    let mut conflicts = 0;
    let mut failures = 0;
    let mut delay = Duration::from_millis(200);
    loop {
        let attempt = async {
            let known = latest.and_then(Latest::take).filter(|(_, a)| holds(a));
            let (rv, current) = match known {
                Some(k) => k,
                None => {
                    let Some(meta) = api.get_metadata_opt(name).await? else {
                        return Ok(Written::Gone);
                    };
                    let rv = meta.resource_version().unwrap_or_default();
                    (rv, meta.metadata.annotations.unwrap_or_default())
                }
            };
            if !holds(&current) {
                return Ok(Written::NotOurs);
            }
            let body = json!({"metadata": {
                "resourceVersion": rv,
                "annotations": &annotations,
            }});
            let written = api
                .patch_metadata(name, &patch_params(), &Patch::Merge(&body))
                .await?;
            if let Some(l) = latest {
                l.set(&written.metadata);
            }
            Ok(Written::Yes)
        };
        match attempt.await {
            Ok(w) => return Ok(w),
            Err(kube::Error::Api(s)) if s.is_conflict() && conflicts < 10 => conflicts += 1,
            Err(e) if failures < 4 => {
                failures += 1;
                tracing::warn!(
                    node = name,
                    "writing the {what} failed, retrying in {delay:?}: {e}"
                );
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_set_exactly_their_annotations() {
        assert_eq!(
            Report::Started { step: None }.annotations(),
            json!({labels::STATUS: "in-progress", labels::MESSAGE: null})
        );
        assert_eq!(
            Report::Started {
                step: Some("01-preflight".into())
            }
            .annotations(),
            json!({labels::STATUS: "in-progress", labels::MESSAGE: null, labels::STEP: "01-preflight"})
        );
        assert_eq!(
            Report::Step("02-upgrade-kubeadm-package".into()).annotations(),
            json!({labels::STEP: "02-upgrade-kubeadm-package"})
        );
        assert_eq!(
            Report::Completed {
                last_step: Some("06-verify".into())
            }
            .annotations(),
            json!({labels::STATUS: "completed", labels::MESSAGE: null, labels::STEP: "06-verify"})
        );
        assert_eq!(
            Report::Failed {
                step: Some("04-upgrade-kubelet-kubectl".into()),
                message: "step 04 failed:\n  boom".into()
            }
            .annotations(),
            json!({labels::STATUS: "failed", labels::MESSAGE: "step 04 failed: boom", labels::STEP: "04-upgrade-kubelet-kubectl"})
        );
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let m = "é".repeat(MAX_MESSAGE);
        let v = Report::Failed {
            step: None,
            message: m,
        }
        .annotations();
        let s = v[labels::MESSAGE].as_str().unwrap();
        assert!(s.len() <= MAX_MESSAGE + '…'.len_utf8() && s.ends_with('…'));
    }

    #[test]
    fn the_guard_holds_only_for_the_same_operation_and_target() {
        let a = |op: &str, t: &str| {
            BTreeMap::from([
                (labels::OPERATION_ID.to_string(), op.to_string()),
                (labels::TARGET_VERSION.to_string(), t.to_string()),
                (labels::STATUS.to_string(), "pending".to_string()),
            ])
        };
        let g = Guard::of(&a("op", "1.34.2"));
        assert!(g.holds(&a("op", "1.34.2")));
        assert!(!g.holds(&a("op", "1.35.0")));
        assert!(!g.holds(&a("op2", "1.34.2")));
        assert!(!g.holds(&BTreeMap::new()));
    }
}
