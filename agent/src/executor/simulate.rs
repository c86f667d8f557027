//! The simulate executor: for kwok clusters, demos and tests. Each step lasts
//! `--step-duration` in all: it does to the API objects what the real step would
//! do to them, then waits out the rest of the duration (a step whose API calls
//! take longer than that lasts as long as they do):
//!
//! - `kubeadm-upgrade-*` on a control-plane node: the image tag of its static
//!   pods `kube-apiserver-<node>`, `kube-controller-manager-<node>` and
//!   `kube-scheduler-<node>` in `kube-system` becomes `v<target>` (pods that do
//!   not exist are skipped; the container named like the component, else the
//!   first, is the one the snapshot reader looks at);
//! - `restart-kubelet` with `kubelet` among the components: the node's
//!   `status.nodeInfo.kubeletVersion` becomes `v<target>` (kwok keeps it);
//! - `verify`: reads both back;
//! - everything else only waits.
//!
//! `--fail-step NAME [--fail-nodes N,...]` makes the first step whose name
//! contains NAME (or whose id is NAME, e.g. `04-upgrade-kubelet-kubectl`) fail
//! on those nodes (every node without `--fail-nodes`), after its wait and without
//! changing anything.

use std::collections::BTreeSet;
use std::time::Duration;

use cupcake_api::KubeVersion;
use cupcake_api::common::{Component, GoDuration};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, Patch};
use serde_json::json;

use super::{Executor, Job, StepError, StepLog};
use crate::assignment::Role;
use crate::steps::{Step, StepKind, all_names};

/// The static pods kubeadm runs on a control-plane node, by component.
pub const STATIC_POD_COMPONENTS: [&str; 3] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// Namespace of the static pods' mirror pods.
const KUBE_SYSTEM: &str = "kube-system";

/// The simulate executor.
#[derive(Clone)]
pub struct Simulate {
    client: Client,
    step_duration: Duration,
    fail: Option<FailStep>,
}

impl std::fmt::Debug for Simulate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulate")
            .field("step_duration", &self.step_duration)
            .field("fail", &self.fail)
            .finish_non_exhaustive()
    }
}

impl Simulate {
    pub fn new(client: Client, step_duration: Duration, fail: Option<FailStep>) -> Self {
        Self {
            client,
            step_duration,
            fail,
        }
    }

    async fn preflight(&self, job: &Job<'_>, log: &mut StepLog) -> Result<(), StepError> {
        let node = Api::<Node>::all(self.client.clone())
            .get_opt(job.node)
            .await
            .map_err(kube_err(format!("reading node {}", job.node)))?
            .ok_or_else(|| StepError::Failed(format!("node {} not found", job.node)))?;
        log.line(&format!(
            "node {} ({}) runs kubelet {}; target {}",
            job.node,
            job.role,
            kubelet_version(&node).unwrap_or("(unknown)"),
            job.assignment.target
        ));
        Ok(())
    }

    async fn retag_static_pods(&self, job: &Job<'_>, log: &mut StepLog) -> Result<(), StepError> {
        let pods = Api::<Pod>::namespaced(self.client.clone(), KUBE_SYSTEM);
        let tag = job.assignment.target.with_v();
        for component in STATIC_POD_COMPONENTS {
            let name = format!("{component}-{}", job.node);
            let Some(pod) = pods
                .get_opt(&name)
                .await
                .map_err(kube_err(format!("reading pod {KUBE_SYSTEM}/{name}")))?
            else {
                log.line(&format!(
                    "no static pod {KUBE_SYSTEM}/{name}: nothing to retag"
                ));
                continue;
            };
            let Some((container, image)) = component_image(&pod, component) else {
                log.line(&format!(
                    "{KUBE_SYSTEM}/{name} has no container image: skipped"
                ));
                continue;
            };
            let new = retag(&image, &tag);
            if new == image {
                log.line(&format!("{KUBE_SYSTEM}/{name} already runs {image}"));
                continue;
            }
            // Strategic merge: containers merge by name, the other fields stay.
            pods.patch(
                &name,
                &crate::node::patch_params(),
                &Patch::Strategic(json!({
                    "spec": {"containers": [{"name": container, "image": new}]}
                })),
            )
            .await
            .map_err(kube_err(format!(
                "setting the image of {KUBE_SYSTEM}/{name}"
            )))?;
            log.line(&format!("{KUBE_SYSTEM}/{name}: {image} -> {new}"));
        }
        Ok(())
    }

    async fn restart_kubelet(&self, job: &Job<'_>, log: &mut StepLog) -> Result<(), StepError> {
        if !job.assignment.components.contains(&Component::Kubelet) {
            log.line("kubelet is not among the components: its version stays");
            return Ok(());
        }
        let v = job.assignment.target.with_v();
        Api::<Node>::all(self.client.clone())
            .patch_status(
                job.node,
                &crate::node::patch_params(),
                &Patch::Merge(json!({"status": {"nodeInfo": {"kubeletVersion": v}}})),
            )
            .await
            .map_err(kube_err(format!(
                "setting status.nodeInfo.kubeletVersion of node {}",
                job.node
            )))?;
        log.line(&format!("node {} now reports kubelet {v}", job.node));
        Ok(())
    }

    async fn verify(&self, job: &Job<'_>, log: &mut StepLog) -> Result<(), StepError> {
        let target = &job.assignment.target;
        if job.assignment.components.contains(&Component::Kubelet) {
            let node = Api::<Node>::all(self.client.clone())
                .get_opt(job.node)
                .await
                .map_err(kube_err(format!("reading node {}", job.node)))?
                .ok_or_else(|| StepError::Failed(format!("node {} not found", job.node)))?;
            let got = kubelet_version(&node).unwrap_or("");
            if got.parse::<KubeVersion>().ok().as_ref() != Some(target) {
                return Err(StepError::Failed(format!(
                    "node {} reports kubelet {got:?}, want {}",
                    job.node,
                    target.with_v()
                )));
            }
            log.line(&format!("kubelet {got}: ok"));
        }
        if job.role == Role::ControlPlane {
            let pods = Api::<Pod>::namespaced(self.client.clone(), KUBE_SYSTEM);
            for component in STATIC_POD_COMPONENTS {
                let name = format!("{component}-{}", job.node);
                let Some(pod) = pods
                    .get_opt(&name)
                    .await
                    .map_err(kube_err(format!("reading pod {KUBE_SYSTEM}/{name}")))?
                else {
                    continue;
                };
                let image = component_image(&pod, component)
                    .map(|(_, i)| i)
                    .unwrap_or_default();
                if KubeVersion::from_image(&image).as_ref() != Some(target) {
                    return Err(StepError::Failed(format!(
                        "{KUBE_SYSTEM}/{name} runs {image:?}, want tag {}",
                        target.with_v()
                    )));
                }
                log.line(&format!("{KUBE_SYSTEM}/{name} {image}: ok"));
            }
        }
        Ok(())
    }
}

impl Executor for Simulate {
    fn name(&self) -> &'static str {
        "simulate"
    }

    async fn run_step(
        &self,
        job: &Job<'_>,
        step: &Step,
        log: &mut StepLog,
    ) -> Result<(), StepError> {
        log.line(&format!(
            "simulating {} for {}",
            step.kind.name(),
            GoDuration(self.step_duration)
        ));
        // The step's changes count toward its duration, as a real step's API calls do:
        // a benchmark's lower bound is steps x duration, whatever the API server's latency.
        let end = tokio::time::Instant::now() + self.step_duration;
        if let Some(f) = &self.fail
            && f.hits(job.node, step)
        {
            tokio::time::sleep_until(end).await;
            return Err(StepError::Failed(format!(
                "simulated failure (--fail-step {})",
                f.pattern
            )));
        }
        let done = match step.kind {
            StepKind::Preflight => self.preflight(job, log).await,
            StepKind::KubeadmUpgrade(_) if job.role == Role::ControlPlane => {
                self.retag_static_pods(job, log).await
            }
            StepKind::RestartKubelet => self.restart_kubelet(job, log).await,
            StepKind::Verify => self.verify(job, log).await,
            _ => {
                log.line("nothing to change on a simulated node");
                Ok(())
            }
        };
        tokio::time::sleep_until(end).await;
        done
    }
}

/// `--fail-step NAME [--fail-nodes N,...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailStep {
    pattern: String,
    /// `None`: every node.
    nodes: Option<BTreeSet<String>>,
}

/// `--fail-step` names no step any plan has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--fail-step {pattern:?} matches no step (steps: {steps})", steps = all_names().join(", "))]
pub struct UnknownFailStep {
    pub pattern: String,
}

impl FailStep {
    /// Check `pattern` against every step name (a part of a name, or a whole id like `04-upgrade-kubelet`).
    pub fn new(pattern: &str, nodes: &[String]) -> Result<Self, UnknownFailStep> {
        let names = all_names();
        let by_name = !pattern.is_empty() && names.iter().any(|n| n.contains(pattern));
        let by_id = pattern.split_once('-').is_some_and(|(num, name)| {
            num.len() == 2 && num.bytes().all(|b| b.is_ascii_digit()) && names.contains(&name)
        });
        if !by_name && !by_id {
            return Err(UnknownFailStep {
                pattern: pattern.to_string(),
            });
        }
        Ok(Self {
            pattern: pattern.to_string(),
            nodes: (!nodes.is_empty()).then(|| nodes.iter().cloned().collect()),
        })
    }

    /// Whether `step` fails on `node`.
    pub fn hits(&self, node: &str, step: &Step) -> bool {
        self.nodes.as_ref().is_none_or(|n| n.contains(node))
            && (step.kind.name().contains(&self.pattern) || step.id() == self.pattern)
    }
}

/// The container the snapshot reader takes a static pod's version from (named
/// like the component, else the first) and its image.
fn component_image(pod: &Pod, component: &str) -> Option<(String, String)> {
    let spec = pod.spec.as_ref()?;
    let c = spec
        .containers
        .iter()
        .find(|c| c.name == component)
        .or(spec.containers.first())?;
    Some((c.name.clone(), c.image.clone()?))
}

fn kubelet_version(node: &Node) -> Option<&str> {
    node.status
        .as_ref()?
        .node_info
        .as_ref()
        .map(|i| i.kubelet_version.as_str())
}

/// `registry.k8s.io/kube-apiserver:v1.33.4@sha256:…` → `registry.k8s.io/kube-apiserver:<tag>`
/// (a digest pins the old image, so it goes).
pub fn retag(image: &str, tag: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    let repo = match without_digest[last_slash..].rfind(':') {
        Some(colon) => &without_digest[..last_slash + colon],
        None => without_digest,
    };
    format!("{repo}:{tag}")
}

fn kube_err(what: String) -> impl FnOnce(kube::Error) -> StepError {
    move |error| StepError::Kube { what, error }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cupcake_api::protocol::UpgradeMode;

    #[test]
    fn retag_replaces_the_tag_and_drops_a_digest() {
        let cases = [
            (
                "registry.k8s.io/kube-apiserver:v1.33.4",
                "registry.k8s.io/kube-apiserver:v1.34.2",
            ),
            (
                "registry.k8s.io/kube-apiserver:v1.33.4@sha256:abc",
                "registry.k8s.io/kube-apiserver:v1.34.2",
            ),
            (
                "localhost:5000/kube-scheduler",
                "localhost:5000/kube-scheduler:v1.34.2",
            ),
            (
                "localhost:5000/kube-scheduler:v1.33.4",
                "localhost:5000/kube-scheduler:v1.34.2",
            ),
            ("kube-scheduler", "kube-scheduler:v1.34.2"),
        ];
        for (from, want) in cases {
            assert_eq!(retag(from, "v1.34.2"), want, "{from}");
        }
    }

    fn step(number: usize, kind: StepKind) -> Step {
        Step { number, kind }
    }

    #[test]
    fn fail_step_matches_part_of_a_name_or_a_whole_id_on_the_listed_nodes() {
        let kubelet = step(
            4,
            StepKind::UpgradeKubeletKubectl {
                kubelet: true,
                kubectl: true,
            },
        );
        let restart = step(5, StepKind::RestartKubelet);
        let pre = step(1, StepKind::Preflight);
        let f = FailStep::new("kubelet", &["w-2".into()]).unwrap();
        assert!(f.hits("w-2", &kubelet));
        assert!(f.hits("w-2", &restart));
        assert!(!f.hits("w-2", &pre));
        assert!(!f.hits("w-1", &kubelet));
        let all = FailStep::new("05-restart-kubelet", &[]).unwrap();
        assert!(all.hits("any", &restart));
        assert!(!all.hits("any", &kubelet));
        let apply = FailStep::new("kubeadm-upgrade-apply", &[]).unwrap();
        assert!(apply.hits("cp", &step(3, StepKind::KubeadmUpgrade(UpgradeMode::Apply))));
        assert!(!apply.hits("cp", &step(3, StepKind::KubeadmUpgrade(UpgradeMode::Node))));
    }

    #[test]
    fn an_unknown_fail_step_is_refused_with_the_step_names() {
        for bad in ["reboot", "", "4-verify", "xx-verify"] {
            let e = FailStep::new(bad, &[]).unwrap_err().to_string();
            assert!(
                e.contains("matches no step") && e.contains("restart-kubelet"),
                "{e}"
            );
        }
    }
}
