//! The host steps of one assignment, in order — the single list both executors
//! run and the checkpoint directory records.
//!
//! The list depends on the node's role, the upgrade mode and the components
//! (packages) to upgrade, and on nothing else: the same assignment always gives
//! the same list, so a restarted agent finds its checkpoints under the same names.
//!
//! | step | when | kubeadm executor ([`crate::executor::kubeadm`]) | simulate executor |
//! |---|---|---|---|
//! | `preflight` | always | package manager; installed versions (no downgrade, kubeadm one minor at a time); repository file pointed at the target minor, `apt-get update`, exact versions from `apt-cache madison` (`dnf list --showduplicates`) — a missing one puts the file back and fails; air-gapped: the bundle's repository and exact versions | reads the node |
//! | `upgrade-kubeadm-package` | `kubeadm` in components | unhold, install `kubeadm=VERSION`, hold (skipped when installed and held) | waits |
//! | `kubeadm-upgrade-apply` / `-node` | always | `kubeadm upgrade plan vX` + `kubeadm upgrade apply vX --yes` / `kubeadm upgrade node` (control plane: skipped when the static pods run vX) | retags the static pods of a control-plane node |
//! | `upgrade-containerd` | `containerd` in components | install the repositories' newest containerd, restart containerd (skipped when installed) | waits |
//! | `upgrade-kubelet-kubectl` (or `-kubelet`, `-kubectl`) | `kubelet` or `kubectl` in components | unhold, install, hold (skipped when installed and held) | waits |
//! | `restart-kubelet` | `kubelet` or `containerd` in components | `systemctl daemon-reload`, `systemctl restart kubelet` | sets `status.nodeInfo.kubeletVersion` |
//! | `verify` | always | binaries' versions, packages held, static pod tags, kubelet active and `/healthz` ok | reads the node and static pods back |
//!
//! `cupcake-agent steps` prints every command of this table for a role, mode,
//! versions and package manager, from the same code the executor runs.
//!
//! Steps are numbered by position (`01-preflight`, `02-…`); the number and name
//! together ([`Step::id`]) are what the `step` annotation and the checkpoint
//! files carry.
//!
//! ```
//! use cupcake_agent::assignment::Role;
//! use cupcake_agent::steps::plan;
//! use cupcake_api::common::Component;
//! use cupcake_api::protocol::UpgradeMode;
//! let ids: Vec<String> = plan(Role::Worker, UpgradeMode::Node, &[Component::Kubeadm, Component::Kubelet, Component::Kubectl])
//!     .unwrap()
//!     .iter()
//!     .map(|s| s.id())
//!     .collect();
//! assert_eq!(ids, ["01-preflight", "02-upgrade-kubeadm-package", "03-kubeadm-upgrade-node",
//!                  "04-upgrade-kubelet-kubectl", "05-restart-kubelet", "06-verify"]);
//! ```

use std::fmt;

use cupcake_api::common::Component;
use cupcake_api::protocol::UpgradeMode;

use crate::assignment::Role;

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepKind {
    /// Check the node can be upgraded.
    Preflight,
    /// Install the target's kubeadm package.
    UpgradeKubeadmPackage,
    /// `kubeadm upgrade apply` (first control-plane node of a hop) or `kubeadm upgrade node`.
    KubeadmUpgrade(UpgradeMode),
    /// Install the containerd package and restart containerd.
    UpgradeContainerd,
    /// Install the kubelet and/or kubectl packages of the target.
    UpgradeKubeletKubectl { kubelet: bool, kubectl: bool },
    /// Reload systemd and restart the kubelet: from here the node reports the new version.
    RestartKubelet,
    /// Check the node runs what it should.
    Verify,
}

impl StepKind {
    /// Every step kind, in the order they run (for `--fail-step` validation and docs).
    pub const ALL: [StepKind; 10] = [
        Self::Preflight,
        Self::UpgradeKubeadmPackage,
        Self::KubeadmUpgrade(UpgradeMode::Apply),
        Self::KubeadmUpgrade(UpgradeMode::Node),
        Self::UpgradeContainerd,
        Self::UpgradeKubeletKubectl {
            kubelet: true,
            kubectl: true,
        },
        Self::UpgradeKubeletKubectl {
            kubelet: true,
            kubectl: false,
        },
        Self::UpgradeKubeletKubectl {
            kubelet: false,
            kubectl: true,
        },
        Self::RestartKubelet,
        Self::Verify,
    ];

    /// The name in step ids, annotations and checkpoint files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Preflight => "preflight",
            Self::UpgradeKubeadmPackage => "upgrade-kubeadm-package",
            Self::KubeadmUpgrade(UpgradeMode::Apply) => "kubeadm-upgrade-apply",
            Self::KubeadmUpgrade(UpgradeMode::Node) => "kubeadm-upgrade-node",
            Self::UpgradeContainerd => "upgrade-containerd",
            Self::UpgradeKubeletKubectl {
                kubelet: true,
                kubectl: true,
            } => "upgrade-kubelet-kubectl",
            Self::UpgradeKubeletKubectl { kubelet: true, .. } => "upgrade-kubelet",
            Self::UpgradeKubeletKubectl { .. } => "upgrade-kubectl",
            Self::RestartKubelet => "restart-kubelet",
            Self::Verify => "verify",
        }
    }
}

/// One step of an assignment: its 1-based position and what it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Step {
    pub number: usize,
    pub kind: StepKind,
}

impl Step {
    /// `03-kubeadm-upgrade-node`: the `step` annotation and the checkpoint file stem.
    pub fn id(&self) -> String {
        format!("{:02}-{}", self.number, self.kind.name())
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id())
    }
}

/// Why an assignment has no step list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "upgrade mode apply is for the first control-plane node of a hop, and this node is a worker (no node-role.kubernetes.io/control-plane label)"
    )]
    ApplyOnWorker,
    #[error("no component to upgrade")]
    NoComponents,
}

/// The steps of an assignment, in order.
pub fn plan(
    role: Role,
    mode: UpgradeMode,
    components: &[Component],
) -> Result<Vec<Step>, PlanError> {
    if components.is_empty() {
        return Err(PlanError::NoComponents);
    }
    if mode == UpgradeMode::Apply && role == Role::Worker {
        return Err(PlanError::ApplyOnWorker);
    }
    let has = |c: Component| components.contains(&c);
    let (kubelet, kubectl) = (has(Component::Kubelet), has(Component::Kubectl));
    let kinds = [
        Some(StepKind::Preflight),
        has(Component::Kubeadm).then_some(StepKind::UpgradeKubeadmPackage),
        // Components are packages; the control plane (or the kubelet configuration on
        // workers) moves with `kubeadm upgrade` even when the kubeadm package is
        // installed some other way.
        Some(StepKind::KubeadmUpgrade(mode)),
        has(Component::Containerd).then_some(StepKind::UpgradeContainerd),
        (kubelet || kubectl).then_some(StepKind::UpgradeKubeletKubectl { kubelet, kubectl }),
        (kubelet || has(Component::Containerd)).then_some(StepKind::RestartKubelet),
        Some(StepKind::Verify),
    ];
    Ok(kinds
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, kind)| Step {
            number: i + 1,
            kind,
        })
        .collect())
}

/// Every step name any plan can contain, in order, without duplicates.
pub fn all_names() -> Vec<&'static str> {
    StepKind::ALL.iter().map(|k| k.name()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Component::*;

    fn ids(role: Role, mode: UpgradeMode, comps: &[Component]) -> Vec<String> {
        plan(role, mode, comps)
            .unwrap()
            .iter()
            .map(Step::id)
            .collect()
    }

    #[test]
    fn step_lists_by_role_mode_and_components() {
        let cases: &[(Role, UpgradeMode, &[Component], &[&str])] = &[
            (
                Role::ControlPlane,
                UpgradeMode::Apply,
                &[Kubeadm, Kubelet, Kubectl],
                &[
                    "01-preflight",
                    "02-upgrade-kubeadm-package",
                    "03-kubeadm-upgrade-apply",
                    "04-upgrade-kubelet-kubectl",
                    "05-restart-kubelet",
                    "06-verify",
                ],
            ),
            (
                Role::ControlPlane,
                UpgradeMode::Node,
                &[Kubeadm, Kubelet, Kubectl, Containerd],
                &[
                    "01-preflight",
                    "02-upgrade-kubeadm-package",
                    "03-kubeadm-upgrade-node",
                    "04-upgrade-containerd",
                    "05-upgrade-kubelet-kubectl",
                    "06-restart-kubelet",
                    "07-verify",
                ],
            ),
            (
                Role::Worker,
                UpgradeMode::Node,
                &[Kubelet],
                &[
                    "01-preflight",
                    "02-kubeadm-upgrade-node",
                    "03-upgrade-kubelet",
                    "04-restart-kubelet",
                    "05-verify",
                ],
            ),
            (
                Role::Worker,
                UpgradeMode::Node,
                &[Kubectl],
                &[
                    "01-preflight",
                    "02-kubeadm-upgrade-node",
                    "03-upgrade-kubectl",
                    "04-verify",
                ],
            ),
            (
                Role::Worker,
                UpgradeMode::Node,
                &[Containerd],
                &[
                    "01-preflight",
                    "02-kubeadm-upgrade-node",
                    "03-upgrade-containerd",
                    "04-restart-kubelet",
                    "05-verify",
                ],
            ),
        ];
        for (role, mode, comps, want) in cases {
            assert_eq!(ids(*role, *mode, comps), *want, "{role} {mode} {comps:?}");
        }
    }

    #[test]
    fn component_order_does_not_change_the_list() {
        assert_eq!(
            ids(
                Role::Worker,
                UpgradeMode::Node,
                &[Kubectl, Kubelet, Kubeadm]
            ),
            ids(
                Role::Worker,
                UpgradeMode::Node,
                &[Kubeadm, Kubelet, Kubectl]
            )
        );
    }

    #[test]
    fn apply_on_a_worker_and_no_components_are_refused() {
        assert_eq!(
            plan(Role::Worker, UpgradeMode::Apply, &[Kubeadm]),
            Err(PlanError::ApplyOnWorker)
        );
        assert_eq!(
            plan(Role::ControlPlane, UpgradeMode::Node, &[]),
            Err(PlanError::NoComponents)
        );
    }

    #[test]
    fn every_kind_has_a_distinct_name() {
        let names = all_names();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "{names:?}");
    }
}
