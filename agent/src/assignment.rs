//! The assignment the rollout controller writes on a node, read into types.
//!
//! The controller writes `operation-id`, `target-version`, `components`,
//! `upgrade-mode` and `status=pending` in one patch. Reading them is pure: a
//! map of annotations in, an [`Observed`] out, so every malformed value has a
//! unit test and a message naming its annotation.

use std::collections::BTreeMap;
use std::fmt;

use cupcake_api::common::Component;
use cupcake_api::labels;
use cupcake_api::protocol::{AgentStatus, UnknownValue, UpgradeMode};
use cupcake_api::{KubeVersion, VersionError};
use serde::{Deserialize, Serialize};

/// Every component the agent knows, in the order the controller writes them.
const COMPONENTS: [Component; 4] = [
    Component::Kubeadm,
    Component::Kubelet,
    Component::Kubectl,
    Component::Containerd,
];

/// What the node is to the upgrade: kubeadm runs different things on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the static control-plane pods (label `node-role.kubernetes.io/control-plane`,
    /// or the legacy `…/master`).
    ControlPlane,
    /// Everything else.
    Worker,
}

impl Role {
    /// The role a node's labels give it.
    pub fn of(node_labels: &BTreeMap<String, String>) -> Self {
        if node_labels.contains_key(labels::ROLE_CONTROL_PLANE)
            || node_labels.contains_key(labels::ROLE_MASTER)
        {
            Self::ControlPlane
        } else {
            Self::Worker
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ControlPlane => "control-plane",
            Self::Worker => "worker",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One unit of work for the agent: move this node to `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The DirectUpdate's `status.operationID`. Checked to be a safe file name:
    /// it names the checkpoint directory.
    pub operation_id: String,
    /// The version to reach (one hop of the upgrade path).
    pub target: KubeVersion,
    /// Packages to upgrade, without duplicates, in the order written.
    pub components: Vec<Component>,
    /// `kubeadm upgrade apply` or `kubeadm upgrade node`.
    pub mode: UpgradeMode,
    /// Air-gapped: the `package-source` annotation, the bundle ConfigMap
    /// (`namespace`, `name`) to install the packages from instead of the host's
    /// repositories (docs/host-steps.md, "Air-gapped bundle").
    pub package_source: Option<(String, String)>,
}

impl Assignment {
    /// `kubeadm,kubelet,kubectl` — the annotation's own spelling.
    pub fn components_str(&self) -> String {
        self.components
            .iter()
            .map(|c| component_name(*c))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for Assignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "operation {} to {} ({}, components {})",
            self.operation_id,
            self.target,
            self.mode,
            self.components_str()
        )
    }
}

/// Why a node's assignment annotations cannot be acted on. Every message names
/// the annotation and the allowed values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignmentError {
    #[error("annotation {key} is missing")]
    Missing { key: &'static str },
    #[error("annotation {key}: {error}", key = labels::TARGET_VERSION)]
    Version { error: VersionError },
    #[error(
        "annotation {key}: component {value:?} is not one of: {allowed}",
        key = labels::COMPONENTS,
        allowed = allowed_components()
    )]
    UnknownComponent { value: String },
    #[error("annotation {key}: component {value:?} is listed twice", key = labels::COMPONENTS)]
    DuplicateComponent { value: String },
    #[error("annotation {key} lists no component (allowed: {allowed})", key = labels::COMPONENTS, allowed = allowed_components())]
    NoComponents,
    #[error("annotation {key}: {error}", key = labels::UPGRADE_MODE)]
    Mode { error: UnknownValue },
    #[error(
        "annotation {key}: {value:?} is not a usable operation id (1 to 128 characters of A-Z, a-z, 0-9, '.', '_', '-'; it names a directory)",
        key = labels::OPERATION_ID
    )]
    OperationId { value: String },
    #[error(
        "annotation {key}: {value:?} is not NAMESPACE/NAME of the package bundle ConfigMap",
        key = labels::PACKAGE_SOURCE
    )]
    PackageSource { value: String },
}

/// What a node's annotations say to its agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// No `status` annotation: nothing is assigned (or the assignment was cleared).
    Unassigned,
    /// A `status` this agent does not know (perhaps from a newer controller): left alone.
    UnknownStatus(UnknownValue),
    /// An assignment in the given state. The assignment itself may be malformed.
    Assigned {
        status: AgentStatus,
        assignment: Result<Assignment, AssignmentError>,
    },
}

impl Observed {
    /// True when the agent has work to do or to report: `pending` or `in-progress`.
    pub fn wants_agent(&self) -> bool {
        matches!(
            self,
            Self::Assigned {
                status: AgentStatus::Pending | AgentStatus::InProgress,
                ..
            }
        )
    }
}

/// Read the protocol annotations of a node.
pub fn observe(annotations: &BTreeMap<String, String>) -> Observed {
    let Some(status) = annotations.get(labels::STATUS) else {
        return Observed::Unassigned;
    };
    let status = match status.parse::<AgentStatus>() {
        Ok(s) => s,
        Err(e) => return Observed::UnknownStatus(e),
    };
    Observed::Assigned {
        status,
        assignment: parse(annotations),
    }
}

/// Parse the assignment annotations (everything but `status`).
pub fn parse(annotations: &BTreeMap<String, String>) -> Result<Assignment, AssignmentError> {
    let get = |key: &'static str| {
        annotations
            .get(key)
            .map(|v| v.trim())
            .ok_or(AssignmentError::Missing { key })
    };
    let operation_id = get(labels::OPERATION_ID)?;
    if !is_safe_name(operation_id) {
        return Err(AssignmentError::OperationId {
            value: operation_id.to_string(),
        });
    }
    let target = get(labels::TARGET_VERSION)?
        .parse::<KubeVersion>()
        .map_err(|error| AssignmentError::Version { error })?;
    let components = parse_components(get(labels::COMPONENTS)?)?;
    let mode = get(labels::UPGRADE_MODE)?
        .parse::<UpgradeMode>()
        .map_err(|error| AssignmentError::Mode { error })?;
    let package_source = match annotations.get(labels::PACKAGE_SOURCE).map(|v| v.trim()) {
        None | Some("") => None,
        Some(v) => match v.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                Some((ns.to_string(), name.to_string()))
            }
            _ => {
                return Err(AssignmentError::PackageSource {
                    value: v.to_string(),
                });
            }
        },
    };
    Ok(Assignment {
        operation_id: operation_id.to_string(),
        target,
        components,
        mode,
        package_source,
    })
}

/// `kubeadm,kubelet,kubectl` → components. Blanks around names are ignored.
pub fn parse_components(value: &str) -> Result<Vec<Component>, AssignmentError> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let c = COMPONENTS
            .into_iter()
            .find(|c| component_name(*c) == item)
            .ok_or_else(|| AssignmentError::UnknownComponent {
                value: item.to_string(),
            })?;
        if out.contains(&c) {
            return Err(AssignmentError::DuplicateComponent {
                value: item.to_string(),
            });
        }
        out.push(c);
    }
    if out.is_empty() {
        return Err(AssignmentError::NoComponents);
    }
    Ok(out)
}

/// A component's wire name, as the api crate's serde spells it.
pub fn component_name(c: Component) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{c:?}").to_lowercase())
}

fn allowed_components() -> String {
    COMPONENTS
        .into_iter()
        .map(component_name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A string that is safe as one path component: `[A-Za-z0-9._-]{1,128}`, not `.` or `..`.
pub fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
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

    fn full() -> BTreeMap<String, String> {
        ann(&[
            (labels::OPERATION_ID, "3f1c-uid"),
            (labels::TARGET_VERSION, "1.34.2"),
            (labels::COMPONENTS, "kubeadm,kubelet,kubectl"),
            (labels::UPGRADE_MODE, "apply"),
            (labels::STATUS, "pending"),
        ])
    }

    #[test]
    fn a_complete_assignment_parses() {
        let Observed::Assigned { status, assignment } = observe(&full()) else {
            panic!("not assigned");
        };
        assert_eq!(status, AgentStatus::Pending);
        let a = assignment.unwrap();
        assert_eq!(a.operation_id, "3f1c-uid");
        assert_eq!(a.target, KubeVersion::new(1, 34, 2));
        assert_eq!(
            a.components,
            [Component::Kubeadm, Component::Kubelet, Component::Kubectl]
        );
        assert_eq!(a.mode, UpgradeMode::Apply);
        assert_eq!(a.components_str(), "kubeadm,kubelet,kubectl");
        assert_eq!(a.package_source, None);
        let mut air = full();
        air.insert(labels::PACKAGE_SOURCE.into(), "ops/bundle-1-34".into());
        let a = parse(&air).unwrap();
        assert_eq!(
            a.package_source,
            Some(("ops".to_string(), "bundle-1-34".to_string()))
        );
        air.insert(labels::PACKAGE_SOURCE.into(), String::new());
        assert_eq!(parse(&air).unwrap().package_source, None);
    }

    #[test]
    fn no_status_means_unassigned_and_an_unknown_status_is_left_alone() {
        let mut a = full();
        a.remove(labels::STATUS);
        assert_eq!(observe(&a), Observed::Unassigned);
        assert_eq!(observe(&BTreeMap::new()), Observed::Unassigned);
        a.insert(labels::STATUS.into(), "cancelled".into());
        let o = observe(&a);
        assert!(matches!(o, Observed::UnknownStatus(_)), "{o:?}");
        assert!(!o.wants_agent());
    }

    #[test]
    fn only_pending_and_in_progress_want_the_agent() {
        for (s, wants) in [
            ("pending", true),
            ("in-progress", true),
            ("completed", false),
            ("failed", false),
        ] {
            let mut a = full();
            a.insert(labels::STATUS.into(), s.into());
            assert_eq!(observe(&a).wants_agent(), wants, "{s}");
        }
    }

    /// Table: one broken annotation each, and words the message must contain.
    #[test]
    fn malformed_assignments_name_the_annotation_and_the_allowed_values() {
        let cases: &[(&str, Option<&str>, &[&str])] = &[
            (labels::OPERATION_ID, None, &["operation-id", "missing"]),
            (
                labels::OPERATION_ID,
                Some("../etc"),
                &["operation-id", "directory"],
            ),
            (labels::OPERATION_ID, Some(".."), &["operation-id"]),
            (labels::OPERATION_ID, Some(""), &["operation-id"]),
            (labels::TARGET_VERSION, None, &["target-version", "missing"]),
            (
                labels::TARGET_VERSION,
                Some("1.34"),
                &["target-version", "MAJOR.MINOR.PATCH"],
            ),
            (labels::COMPONENTS, None, &["components", "missing"]),
            (
                labels::COMPONENTS,
                Some(""),
                &[
                    "components",
                    "no component",
                    "kubeadm, kubelet, kubectl, containerd",
                ],
            ),
            (
                labels::COMPONENTS,
                Some("kubeadm,etcd"),
                &["\"etcd\"", "kubeadm, kubelet, kubectl, containerd"],
            ),
            (
                labels::COMPONENTS,
                Some("kubelet,kubelet"),
                &["\"kubelet\"", "twice"],
            ),
            (labels::UPGRADE_MODE, None, &["upgrade-mode", "missing"]),
            (
                labels::UPGRADE_MODE,
                Some("Apply"),
                &["upgrade-mode", "apply, node"],
            ),
            (
                labels::PACKAGE_SOURCE,
                Some("bundle"),
                &["package-source", "\"bundle\"", "NAMESPACE/NAME"],
            ),
            (labels::PACKAGE_SOURCE, Some("a/b/c"), &["package-source"]),
            (labels::PACKAGE_SOURCE, Some("/b"), &["package-source"]),
        ];
        for (key, value, words) in cases {
            let mut a = full();
            match value {
                Some(v) => a.insert(key.to_string(), v.to_string()),
                None => a.remove(*key),
            };
            let Observed::Assigned { assignment, .. } = observe(&a) else {
                panic!("{key}={value:?}: not assigned");
            };
            let e = assignment.unwrap_err().to_string();
            for w in *words {
                assert!(e.contains(w), "{key}={value:?}: {e:?} lacks {w:?}");
            }
        }
    }

    #[test]
    fn components_tolerate_blanks_and_keep_their_order() {
        assert_eq!(
            parse_components(" containerd , kubelet,").unwrap(),
            [Component::Containerd, Component::Kubelet]
        );
        assert_eq!(component_name(Component::Containerd), "containerd");
    }

    #[test]
    fn roles_come_from_either_control_plane_label() {
        assert_eq!(Role::of(&BTreeMap::new()), Role::Worker);
        assert_eq!(
            Role::of(&ann(&[(labels::ROLE_CONTROL_PLANE, "")])),
            Role::ControlPlane
        );
        assert_eq!(
            Role::of(&ann(&[(labels::ROLE_MASTER, "")])),
            Role::ControlPlane
        );
    }

    #[test]
    fn safe_names() {
        for ok in ["a", "3f1c-9a.b_c", "kwok-cp-1"] {
            assert!(is_safe_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "ü", &"x".repeat(129)] {
            assert!(!is_safe_name(bad), "{bad}");
        }
    }
}
