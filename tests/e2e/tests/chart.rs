//! The Helm chart (`charts/cupcake`) with the real tools: `helm` built from its Go
//! module (`tests/harness/build-helm.sh`), `helm lint --strict`, `helm template` of
//! every `ci/*-values.yaml` applied with `kubectl apply --dry-run=server`, an install
//! on a private control plane checked through RBAC (`kubectl auth can-i --as`), and
//! the own-node admission policy exercised with a pod-bound service-account token.
//!
//! helm comes from `CUPCAKE_HELM` or the cache `build-helm.sh --print-bin` names. A
//! missing helm skips these tests with a message, and fails them when
//! `CUPCAKE_REQUIRE_HELM=1` (as `tests/run-all.sh` sets).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cupcake_e2e::private::{PrivateCluster, kwok_cluster, outage};
use cupcake_e2e::{TestNamespace, kubectl, kwok_node, ok, repo, wait_for};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};

const CRDS: [&str; 3] = [
    "directupdates.yaml",
    "scheduledupdates.yaml",
    "updateschedules.yaml",
];

fn chart() -> PathBuf {
    repo().join("charts/cupcake")
}

/// Every `ci/*-values.yaml` of the chart, by file name.
fn values_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(chart().join("ci"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("-values.yaml"))
        .collect();
    v.sort();
    let names: Vec<String> = v
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "default-values.yaml",
        "production-values.yaml",
        "all-features-values.yaml",
    ] {
        assert!(names.iter().any(|n| n == want), "ci/{want} is missing");
    }
    v
}

/// The helm binary, or `None` (with the reason on stderr) when it is absent and not required.
fn helm() -> Option<PathBuf> {
    static HELM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = HELM.get_or_init(|| {
        let path = match std::env::var_os("CUPCAKE_HELM") {
            Some(p) => PathBuf::from(p),
            None => {
                let out = Command::new(repo().join("tests/harness/build-helm.sh"))
                    .arg("--print-bin")
                    .output()
                    .expect("tests/harness/build-helm.sh --print-bin");
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
            }
        };
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "helm not found at {} (build it with tests/harness/build-helm.sh, or set CUPCAKE_HELM)",
                path.display()
            ))
        }
    });
    match found {
        Ok(p) => Some(p.clone()),
        Err(e) if std::env::var("CUPCAKE_REQUIRE_HELM").as_deref() == Ok("1") => {
            panic!("{e}; CUPCAKE_REQUIRE_HELM=1 makes that a failure")
        }
        Err(e) => {
            // Past libtest's output capture, so a skip is seen even when the test "passes".
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {e}; CUPCAKE_REQUIRE_HELM=1 makes this a failure"
            );
            None
        }
    }
}

/// Run helm with its config, cache and data in a directory of this test process
/// (nothing written under ~), against `kubeconfig` when given.
fn run_helm(helm: &Path, kubeconfig: Option<&Path>, args: &[&str]) -> Output {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    let home = HOME.get_or_init(|| tempfile::tempdir().unwrap()).path();
    let mut c = Command::new(helm);
    c.args(args)
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"));
    match kubeconfig {
        Some(k) => c.env("KUBECONFIG", k),
        // No cluster: `helm template` and `helm lint` must not need one.
        None => c.env("KUBECONFIG", "/nonexistent"),
    };
    c.output().expect("running helm")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `helm template` of the chart into a file.
fn template(helm: &Path, release: &str, ns: &str, extra: &[&str]) -> anyhow::Result<String> {
    let c = chart();
    let mut args = vec!["template", release, c.to_str().unwrap(), "--namespace", ns];
    args.extend_from_slice(extra);
    ok(
        &run_helm(helm, None, &args),
        &format!("helm template {extra:?}"),
    )
}

/// The chart's CRDs are the generated ones in `crds/`, byte for byte.
#[test]
fn chart_crds_are_the_generated_crds() {
    let mut in_chart: Vec<String> = std::fs::read_dir(chart().join("crds"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    in_chart.sort();
    assert_eq!(
        in_chart, CRDS,
        "charts/cupcake/crds/ must hold exactly the generated CRDs"
    );
    for f in CRDS {
        let generated = std::fs::read_to_string(repo().join("crds").join(f)).unwrap();
        let copied = std::fs::read_to_string(chart().join("crds").join(f)).unwrap();
        assert!(
            generated == copied,
            "charts/cupcake/crds/{f} is stale: run `cargo xtask gen` (it writes crds/ and charts/cupcake/crds/)"
        );
    }
}

#[test]
fn helm_lint_strict_passes_with_every_values_file() {
    let Some(helm) = helm() else { return };
    let c = chart();
    let out = run_helm(&helm, None, &["lint", "--strict", c.to_str().unwrap()]);
    ok(&out, "helm lint --strict (default values)").unwrap();
    for f in values_files() {
        let out = run_helm(
            &helm,
            None,
            &[
                "lint",
                "--strict",
                c.to_str().unwrap(),
                "-f",
                f.to_str().unwrap(),
            ],
        );
        ok(&out, &format!("helm lint --strict -f {}", f.display())).unwrap();
    }
}

/// The original chart's keys still work; values that would be ignored or unsafe are
/// refused at render time with the reason.
#[test]
fn seed_values_map_and_bad_values_are_refused_with_the_reason() {
    let Some(helm) = helm() else { return };
    // operator.replicaCount / operator.image / agent.hostPath / agent.tolerations / externalStore.*
    let y = template(
        &helm,
        "cupcake",
        "kube-system",
        &[
            "--set",
            "operator.replicaCount=3",
            "--set",
            "operator.image.repository=your-registry/cupcake",
            "--set",
            "operator.image.tag=0.1.0",
            "--set",
            "agent.hostPath=/data/cupcake",
            "--set",
            "externalStore.enabled=true",
            "--set",
            "externalStore.type=s3",
            "--set",
            "externalStore.s3.bucket=my-backups",
            "--set",
            "externalStore.s3.existingSecret=backup-store-credentials",
        ],
    )
    .unwrap();
    assert!(y.contains("replicas: 3"), "operator.replicaCount: {y}");
    assert!(y.contains("image: \"your-registry/cupcake:0.1.0\""), "{y}");
    assert!(y.contains("path: /data/cupcake"), "agent.hostPath: {y}");
    assert!(y.contains("--backup-store=s3://my-backups"), "{y}");
    // The seed's Secret layout: keys access-key and secret-key.
    assert!(
        y.contains(r#"secretKeyRef: {name: backup-store-credentials, key: "access-key"}"#),
        "{y}"
    );
    // Default release name "cupcake": the service accounts deps.md and the docs name.
    assert!(y.contains("name: cupcake-agent\n"), "{y}");
    assert!(
        y.contains("system:serviceaccount:kube-system:cupcake-agent"),
        "{y}"
    );

    let refused: &[(&[&str], &str)] = &[
        (
            &["--set", "externalStore.s3.accessKey=AKIA"],
            "externalStore.s3.accessKey/secretKey are not supported",
        ),
        (
            &["--set", "reconciler.replicaz=2"],
            "additional properties 'replicaz' not allowed",
        ),
        (
            &["--set", "agent.executor=ansible"],
            "value must be one of 'kubeadm', 'simulate'",
        ),
        (
            &["--set", "gitops.enabled=true", "--set", "gitops.cluster=a"],
            "gitops.enabled: set gitops.repo",
        ),
        (
            &[
                "--set",
                "gitops.enabled=true",
                "--set",
                "gitops.repo=ssh://git@example.com/fleet.git",
                "--set",
                "gitops.cluster=a",
                "--set",
                "gitops.auth.tokenSecret.name=t",
            ],
            "a token authenticates https remotes",
        ),
        (
            &["--set", "gitops.webhook.enabled=true"],
            "need gitops.enabled",
        ),
        (
            &[
                "--set",
                "gitops.enabled=true",
                "--set",
                "gitops.repo=https://example.com/f.git",
                "--set",
                "gitops.cluster=a",
                "--set",
                "reconciler.rolloutOnly=true",
            ],
            "--rollout-only runs no GitOps loop",
        ),
        (
            &[
                "--set",
                "externalStore.enabled=true",
                "--set",
                "externalStore.s3.bucket=b",
            ],
            "set externalStore.s3.existingSecret",
        ),
        (&["--set", "gitops.poll=soon"], "/gitops/poll"),
    ];
    for (args, want) in refused {
        let c = chart();
        let mut a = vec!["template", "cupcake", c.to_str().unwrap()];
        a.extend_from_slice(args);
        let out = run_helm(&helm, None, &a);
        assert!(!out.status.success(), "helm template {args:?} should fail");
        assert!(
            stderr(&out).contains(want),
            "helm template {args:?}: want {want:?} in\n{}",
            stderr(&out)
        );
    }
}

/// Each values file renders objects a real apiserver accepts (schemas, CEL of the
/// admission policy, RBAC, the ServiceMonitor against prometheus-operator's own CRD).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_values_file_passes_server_side_dry_run() {
    let Some(helm) = helm() else { return };
    let client = cupcake_e2e::client().await;
    // The chart's CRDs and prometheus-operator's ServiceMonitor CRD, for real (a dry-run
    // of a CRD registers no kind).
    let sm = Command::new(repo().join("tests/harness/build-helm.sh"))
        .arg("--print-crd-dir")
        .output()
        .unwrap();
    let sm_dir = String::from_utf8_lossy(&sm.stdout).trim().to_string();
    // all-features-values.yaml turns on the PrometheusRule too: its CRD comes with promtool.
    let pr = Command::new(repo().join("tests/harness/build-promtool.sh"))
        .arg("--print-crd-dir")
        .output()
        .unwrap();
    let pr_dir = String::from_utf8_lossy(&pr.stdout).trim().to_string();
    let have_pr = Path::new(&pr_dir)
        .join("monitoring.coreos.com_prometheusrules.yaml")
        .is_file();
    if !have_pr {
        let why =
            format!("no PrometheusRule CRD in {pr_dir} (run tests/harness/build-promtool.sh)");
        if std::env::var("CUPCAKE_REQUIRE_PROMTOOL").as_deref() == Ok("1") {
            panic!("{why}; CUPCAKE_REQUIRE_PROMTOOL=1 makes that a failure");
        }
        eprintln!("SKIPPED (values files enabling metrics.prometheusRule): {why}");
    }
    let c = chart();
    let mut dirs = vec![c.join("crds").to_str().unwrap().to_string(), sm_dir];
    if have_pr {
        dirs.push(pr_dir);
    }
    for dir in &dirs {
        ok(
            &kubectl(&["apply", "--server-side", "--force-conflicts", "-f", dir]),
            &format!("kubectl apply -f {dir}"),
        )
        .unwrap();
    }
    ok(
        &kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/directupdates.cupcake.ricardomolendijk.com",
            "crd/scheduledupdates.cupcake.ricardomolendijk.com",
            "crd/updateschedules.cupcake.ricardomolendijk.com",
            "crd/servicemonitors.monitoring.coreos.com",
        ]),
        "CRDs Established",
    )
    .unwrap();
    if have_pr {
        ok(
            &kubectl(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "crd/prometheusrules.monitoring.coreos.com",
            ]),
            "PrometheusRule CRD Established",
        )
        .unwrap();
    }
    for f in values_files() {
        let ns = TestNamespace::new(&client, "chart").await.unwrap();
        let y = template(&helm, "cupcake", &ns.name, &["-f", f.to_str().unwrap()]).unwrap();
        if !have_pr && y.contains("\nkind: PrometheusRule\n") {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rendered.yaml");
        std::fs::write(&file, &y).unwrap();
        let out = kubectl(&["apply", "--dry-run=server", "-f", file.to_str().unwrap()]);
        let stdout = ok(
            &out,
            &format!("kubectl apply --dry-run=server ({})", f.display()),
        )
        .unwrap();
        // Every rendered object was checked, not just the first.
        let objects = y.matches("\nkind: ").count();
        let accepted = stdout
            .lines()
            .filter(|l| l.contains("(server dry run)"))
            .count();
        assert_eq!(
            accepted,
            objects,
            "{}: {objects} objects rendered, {accepted} accepted:\n{stdout}",
            f.display()
        );
    }
}

/// A kubeconfig that authenticates with `token` against the cluster of `pc`.
fn token_kubeconfig(pc: &PrivateCluster, token: &str, path: &Path) -> PathBuf {
    let server = ok(
        &pc.kubectl(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ]),
        "server URL",
    )
    .unwrap();
    let ca = pc.dir.join("pki/ca.crt");
    let kc = format!(
        "apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: \"{server}\", certificate-authority: \"{}\"}}}}]
users: [{{name: agent, user: {{token: \"{token}\"}}}}]
contexts: [{{name: c, context: {{cluster: c, user: agent}}}}]
current-context: c
",
        ca.display()
    );
    std::fs::write(path, kc).unwrap();
    path.to_path_buf()
}

fn kubectl_as(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("kubectl on PATH")
}

/// The chart's own-node policy, for real: a token minted for a pod on node w-1 may
/// annotate w-1 and is refused on w-2 with the policy's message. The release name and
/// namespace are not the defaults, so the policy must name the release's service account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_node_policy_lets_the_agent_change_only_its_node() {
    let Some(helm) = helm() else { return };
    let (pc, _client) = kwok_cluster("chart-policy", 0, 2, "v1.34.2").await;
    let (release, ns, sa) = ("edge", "upgrades", "edge-cupcake-agent");
    let y = template(
        &helm,
        release,
        ns,
        &[
            "--show-only",
            "templates/agent-admission-policy.yaml",
            "--show-only",
            "templates/agent-rbac.yaml",
        ],
    )
    .unwrap();
    assert!(
        y.contains(&format!("system:serviceaccount:{ns}:{sa}")),
        "{y}"
    );
    ok(
        &pc.kubectl(&["create", "namespace", ns]),
        "create namespace",
    )
    .unwrap();
    pc.apply(&y);
    // The harness runs without the ServiceAccount admission plugin: name the account.
    pc.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: agent-w-1, namespace: {ns}}}
spec:
  serviceAccountName: {sa}
  nodeName: w-1
  tolerations: [{{operator: Exists}}]
  containers: [{{name: agent, image: example.invalid/cupcake-agent}}]
"
    ));
    let uid = ok(
        &pc.kubectl(&[
            "-n",
            ns,
            "get",
            "pod",
            "agent-w-1",
            "-o",
            "jsonpath={.metadata.uid}",
        ]),
        "pod uid",
    )
    .unwrap();
    let token = ok(
        &pc.kubectl(&[
            "-n",
            ns,
            "create",
            "token",
            sa,
            "--bound-object-kind",
            "Pod",
            "--bound-object-name",
            "agent-w-1",
            "--bound-object-uid",
            &uid,
        ]),
        "kubectl create token (pod-bound)",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let agent = token_kubeconfig(&pc, token.trim(), &dir.path().join("agent.kubeconfig"));

    // The token names the node.
    let who = ok(
        &kubectl_as(&agent, &["auth", "whoami", "-o", "json"]),
        "whoami",
    )
    .unwrap();
    assert!(
        who.contains("\"authentication.kubernetes.io/node-name\""),
        "{who}"
    );
    assert!(who.contains("\"w-1\""), "{who}");

    // Policies take effect shortly after creation: wait until the other node is refused,
    // probing with server-side dry runs (admission runs, nothing is stored), then try for real.
    let policy = format!("{release}-cupcake-agent-own-node");
    let annotate_w2 = |dry_run: bool| {
        let mut args = vec![
            "annotate",
            "node",
            "w-2",
            "--overwrite",
            "cupcake.ricardomolendijk.com/status=in-progress",
        ];
        if dry_run {
            args.push("--dry-run=server");
        }
        kubectl_as(&agent, &args)
    };
    wait_for(
        "the own-node policy refuses node w-2",
        Duration::from_secs(60),
        || async { (!annotate_w2(true).status.success()).then_some(()) },
    )
    .await;
    let out = annotate_w2(false);
    assert!(!out.status.success(), "the agent annotated another node");
    let refusal = stderr(&out);
    assert!(
        refusal.contains("agent on w-1 may not modify node w-2")
            && refusal.contains(&format!("ValidatingAdmissionPolicy '{policy}'")),
        "{refusal}"
    );
    // Its own node: annotations and status work.
    ok(
        &kubectl_as(
            &agent,
            &[
                "annotate",
                "node",
                "w-1",
                "--overwrite",
                "cupcake.ricardomolendijk.com/status=in-progress",
                "cupcake.ricardomolendijk.com/step=03-upgrade-kubeadm",
            ],
        ),
        "agent annotates its own node",
    )
    .unwrap();
    ok(
        &kubectl_as(
            &agent,
            &[
                "patch",
                "node",
                "w-1",
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"nodeInfo":{"kubeletVersion":"v1.35.0"}}}"#,
            ],
        ),
        "agent patches its own node's status",
    )
    .unwrap();
    let nodes = Api::<Node>::all(pc.client().await);
    let w1 = nodes.get("w-1").await.unwrap();
    assert_eq!(
        w1.metadata.annotations.as_ref().unwrap()["cupcake.ricardomolendijk.com/step"],
        "03-upgrade-kubeadm"
    );
    let w2 = nodes.get("w-2").await.unwrap();
    assert!(
        !w2.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("cupcake.ricardomolendijk.com/status"),
        "w-2 was changed"
    );
    // The status subresource of another node is refused too.
    let out = kubectl_as(
        &agent,
        &[
            "patch",
            "node",
            "w-2",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"nodeInfo":{"kubeletVersion":"v1.35.0"}}}"#,
        ],
    );
    assert!(
        stderr(&out).contains("agent on w-1 may not modify node w-2"),
        "{}",
        stderr(&out)
    );
    // restrictFields: on its own node, only cupcake annotations.
    for (args, want) in [
        (
            vec!["label", "node", "w-1", "example.com/x=y"],
            "agent on w-1 may not change the labels of node w-1",
        ),
        (
            vec!["annotate", "node", "w-1", "example.com/x=y"],
            "may change only cupcake.ricardomolendijk.com/ annotations of node w-1",
        ),
        (
            vec!["cordon", "w-1"],
            "may not change the spec (taints, unschedulable) of node w-1",
        ),
        (
            vec!["taint", "node", "w-1", "example.com/x=y:NoSchedule"],
            "may not change the spec (taints, unschedulable) of node w-1",
        ),
    ] {
        // (`kubectl cordon` exits 0 even when the server refuses: judge by the message
        // and by the node.)
        let out = kubectl_as(&agent, &args);
        assert!(
            stderr(&out).contains(want),
            "{args:?}: want {want:?}, got {}",
            stderr(&out)
        );
    }
    let w1 = nodes.get("w-1").await.unwrap();
    assert!(
        !w1.metadata
            .labels
            .unwrap_or_default()
            .contains_key("example.com/x")
            && !w1
                .metadata
                .annotations
                .unwrap_or_default()
                .contains_key("example.com/x"),
        "w-1's labels or annotations changed"
    );
    let spec = w1.spec.unwrap_or_default();
    assert_ne!(spec.unschedulable, Some(true), "w-1 was cordoned");
    assert!(
        spec.taints.unwrap_or_default().is_empty(),
        "w-1 was tainted"
    );
    // RBAC: no deleting nodes at all.
    let out = kubectl_as(&agent, &["delete", "node", "w-1", "--wait=false"]);
    assert!(
        stderr(&out).contains("cannot delete resource \"nodes\""),
        "{}",
        stderr(&out)
    );
    // A token that is not pod-bound carries no node: refused everywhere.
    let plain = ok(
        &pc.kubectl(&["-n", ns, "create", "token", sa]),
        "kubectl create token (not bound)",
    )
    .unwrap();
    let unbound = token_kubeconfig(&pc, plain.trim(), &dir.path().join("unbound.kubeconfig"));
    let out = kubectl_as(
        &unbound,
        &[
            "annotate",
            "node",
            "w-1",
            "--overwrite",
            "cupcake.ricardomolendijk.com/status=failed",
        ],
    );
    assert!(
        stderr(&out).contains("no node claim in the token"),
        "{}",
        stderr(&out)
    );

    // Under chaos (issue 13): the kube-apiserver is stopped and started again while the
    // agent keeps trying to annotate the other node. No attempt gets through — not
    // while the server comes up, not after — and the restarted server refuses by the
    // policy (so the loop did reach it).
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        let agent = agent.clone();
        std::thread::spawn(move || {
            let (mut through, mut refused_by_policy) = (Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) {
                let out = kubectl_as(
                    &agent,
                    &[
                        "annotate",
                        "node",
                        "w-2",
                        "--overwrite",
                        "cupcake.ricardomolendijk.com/status=failed",
                    ],
                );
                if out.status.success() {
                    through.push(String::from_utf8_lossy(&out.stdout).into_owned());
                } else if stderr(&out).contains("agent on w-1 may not modify node w-2") {
                    refused_by_policy += 1;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (through, refused_by_policy)
        })
    };
    let before = std::time::Instant::now();
    outage(&pc.dir, "kube-apiserver", Duration::from_secs(3)).await;
    wait_for(
        "the restarted kube-apiserver is ready",
        Duration::from_secs(120),
        || async {
            pc.kubectl(&["get", "--raw", "/readyz"])
                .status
                .success()
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let (through, refused_by_policy) = prober.join().unwrap();
    assert!(
        through.is_empty(),
        "the agent annotated w-2 around an apiserver restart ({:?} after it began): {through:?}",
        before.elapsed()
    );
    assert!(
        refused_by_policy > 0,
        "no attempt was refused by the policy after the restart: the probe proved nothing"
    );
    let w2 = Api::<Node>::all(pc.client().await)
        .get("w-2")
        .await
        .unwrap();
    assert!(
        !w2.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("cupcake.ricardomolendijk.com/status"),
        "w-2 was changed around the restart"
    );
}

/// `kubectl auth can-i` as a service account: true for yes.
fn can_i(pc: &PrivateCluster, sa: &str, args: &[&str]) -> bool {
    let who = format!("--as=system:serviceaccount:cupcake-system:{sa}");
    let mut a = vec!["auth", "can-i"];
    a.extend_from_slice(args);
    a.push(&who);
    let out = pc.kubectl(&a);
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        said == "yes" || said == "no",
        "kubectl auth can-i {args:?}: {said} {}",
        stderr(&out)
    );
    said == "yes"
}

/// `helm install` on a private control plane with a tainted control-plane node and a
/// worker: the objects are what the chart promises (images cannot be pulled here, so
/// the assertions are on objects and on RBAC).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_install_gives_each_component_exactly_its_rights() {
    let Some(helm) = helm() else { return };
    let pc = PrivateCluster::start("chart-install");
    let client = pc.client().await;
    let nodes = Api::<Node>::all(client.clone());
    for (name, cp) in [("cp-1", true), ("w-1", false)] {
        nodes
            .create(&PostParams::default(), &kwok_node(name, cp, "v1.34.2", &[]))
            .await
            .unwrap();
    }
    ok(
        &pc.kubectl(&["create", "namespace", "cupcake-system"]),
        "namespace",
    )
    .unwrap();
    let c = chart();
    let out = run_helm(
        &helm,
        Some(&pc.kubeconfig),
        &[
            "install",
            "cupcake",
            c.to_str().unwrap(),
            "--namespace",
            "cupcake-system",
            "--timeout",
            "2m",
        ],
    );
    let notes = ok(&out, "helm install").unwrap();
    assert!(notes.contains("STATUS: deployed"), "{notes}");
    assert!(
        notes.contains("ValidatingAdmissionPolicy cupcake-agent-own-node"),
        "{notes}"
    );
    assert!(
        notes.contains("pod-security.kubernetes.io/enforce=privileged"),
        "{notes}"
    );

    // The CRDs came from the chart's crds/.
    ok(
        &pc.kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/directupdates.cupcake.ricardomolendijk.com",
            "crd/scheduledupdates.cupcake.ricardomolendijk.com",
            "crd/updateschedules.cupcake.ricardomolendijk.com",
        ]),
        "CRDs installed by helm",
    )
    .unwrap();

    // The reconciler: 2 replicas, leader election in the release namespace, probes,
    // non-root with a read-only root FS and /tmp on an emptyDir.
    let d: serde_json::Value = serde_json::from_str(
        &ok(
            &pc.kubectl(&[
                "-n",
                "cupcake-system",
                "get",
                "deployment",
                "cupcake-reconciler",
                "-o",
                "json",
            ]),
            "get deployment",
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    let ctr = &pod["containers"][0];
    let args: Vec<&str> = ctr["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"run"), "{args:?}");
    assert!(
        args.contains(&"--lease-namespace=cupcake-system"),
        "{args:?}"
    );
    assert_eq!(ctr["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(ctr["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(ctr["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(ctr["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(ctr["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(
        ctr["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/tmp")
    );
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "tmp" && v["emptyDir"].is_object())
    );
    assert!(ctr["resources"]["requests"].is_object());

    // The agent: on every node (the control-plane taint tolerated), privileged only in
    // its one container, hostPID, checkpoints on the host, NODE_NAME from the downward API.
    let ds: serde_json::Value = serde_json::from_str(
        &ok(
            &pc.kubectl(&[
                "-n",
                "cupcake-system",
                "get",
                "daemonset",
                "cupcake-agent",
                "-o",
                "json",
            ]),
            "get daemonset",
        )
        .unwrap(),
    )
    .unwrap();
    let pod = &ds["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    assert_eq!(pod["containers"].as_array().unwrap().len(), 1);
    assert!(pod["initContainers"].is_null());
    assert_eq!(pod["containers"][0]["securityContext"]["privileged"], true);
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["hostPath"]["path"] == "/var/lib/cupcake")
    );
    assert!(
        pod["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "NODE_NAME"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName")
    );
    let on = wait_for(
        "an agent pod on each node",
        Duration::from_secs(90),
        || async {
            let out = pc.kubectl(&[
                "-n",
                "cupcake-system",
                "get",
                "pods",
                "-l",
                "app.kubernetes.io/component=agent",
                "-o",
                "jsonpath={.items[*].spec.nodeName}",
            ]);
            let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from)
                .collect();
            got.sort();
            (got == ["cp-1", "w-1"]).then_some(got)
        },
    )
    .await;
    assert_eq!(on, ["cp-1", "w-1"]);

    // RBAC, as each service account. (verb, resource, scope, expected)
    let agent: &[(&[&str], bool)] = &[
        (&["patch", "nodes"], true),
        (&["watch", "nodes"], true),
        (&["patch", "nodes", "--subresource=status"], true),
        (&["delete", "nodes"], false),
        (&["create", "nodes"], false),
        (&["update", "nodes"], false),
        (&["get", "pods", "-A"], false),
        (&["delete", "pods", "-A"], false),
        (&["create", "pods", "--subresource=eviction", "-A"], false),
        (&["get", "secrets", "-n", "cupcake-system"], false),
        (&["list", "secrets", "-A"], false),
        (&["get", "configmaps", "-n", "kube-system"], false),
        (
            &["patch", "directupdates.cupcake.ricardomolendijk.com"],
            false,
        ),
        (&["create", "events.events.k8s.io", "-A"], false),
    ];
    let reconciler: &[(&[&str], bool)] = &[
        (
            &["create", "pods", "--subresource=eviction", "-n", "default"],
            true,
        ),
        (&["list", "pods", "-A"], true),
        (&["delete", "pods", "-A"], false),
        (&["update", "pods", "-A"], false),
        (&["patch", "nodes"], true),
        (&["delete", "nodes"], false),
        (&["list", "poddisruptionbudgets.policy", "-A"], true),
        (&["delete", "poddisruptionbudgets.policy", "-A"], false),
        (
            &["create", "directupdates.cupcake.ricardomolendijk.com"],
            true,
        ),
        (
            &["patch", "directupdates.cupcake.ricardomolendijk.com"],
            true,
        ),
        (
            &["delete", "directupdates.cupcake.ricardomolendijk.com"],
            false,
        ),
        (
            &[
                "patch",
                "directupdates.cupcake.ricardomolendijk.com",
                "--subresource=status",
            ],
            true,
        ),
        (
            &["watch", "scheduledupdates.cupcake.ricardomolendijk.com"],
            true,
        ),
        (
            &[
                "patch",
                "updateschedules.cupcake.ricardomolendijk.com",
                "--subresource=status",
            ],
            true,
        ),
        (
            &["patch", "updateschedules.cupcake.ricardomolendijk.com"],
            false,
        ),
        (&["get", "secrets", "-n", "cupcake-system"], false),
        (&["list", "secrets", "-A"], false),
        (
            &[
                "get",
                "leases.coordination.k8s.io/cupcake",
                "-n",
                "cupcake-system",
            ],
            true,
        ),
        (
            &[
                "update",
                "leases.coordination.k8s.io/cupcake",
                "-n",
                "cupcake-system",
            ],
            true,
        ),
        (
            &[
                "update",
                "leases.coordination.k8s.io/kube-controller-manager",
                "-n",
                "kube-system",
            ],
            false,
        ),
        (
            &[
                "update",
                "leases.coordination.k8s.io/other",
                "-n",
                "cupcake-system",
            ],
            false,
        ),
        (
            &[
                "get",
                "configmaps/cupcake-version-catalog",
                "-n",
                "cupcake-system",
            ],
            true,
        ),
        (
            &["get", "configmaps/kube-root-ca.crt", "-n", "cupcake-system"],
            false,
        ),
        (&["list", "configmaps", "-n", "cupcake-system"], false),
        (&["create", "events.events.k8s.io", "-n", "default"], true),
        (
            &["create", "events.events.k8s.io", "-n", "kube-system"],
            false,
        ),
        (
            &["create", "clusterrolebindings.rbac.authorization.k8s.io"],
            false,
        ),
        (
            &[
                "patch",
                "validatingadmissionpolicies.admissionregistration.k8s.io",
            ],
            false,
        ),
        (
            &["delete", "customresourcedefinitions.apiextensions.k8s.io"],
            false,
        ),
    ];
    let mut wrong = Vec::new();
    for (sa, table) in [("cupcake-agent", agent), ("cupcake-reconciler", reconciler)] {
        for (args, want) in table {
            if can_i(&pc, sa, args) != *want {
                wrong.push(format!(
                    "{sa} {args:?}: want {}",
                    if *want { "yes" } else { "no" }
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "RBAC differs:\n{}", wrong.join("\n"));

    // The policy names this release's agent.
    let expr = ok(
        &pc.kubectl(&[
            "get",
            "validatingadmissionpolicy",
            "cupcake-agent-own-node",
            "-o",
            "jsonpath={.spec.matchConditions[0].expression}",
        ]),
        "the own-node policy",
    )
    .unwrap();
    assert!(
        expr.contains("system:serviceaccount:cupcake-system:cupcake-agent"),
        "{expr}"
    );

    // Uninstall removes every cluster-scoped object except the CRDs (Helm keeps those,
    // with the DirectUpdates in them).
    ok(
        &run_helm(
            &helm,
            Some(&pc.kubeconfig),
            &[
                "uninstall",
                "cupcake",
                "--namespace",
                "cupcake-system",
                "--wait",
            ],
        ),
        "helm uninstall",
    )
    .unwrap();
    for what in [
        "clusterrole/cupcake-agent",
        "clusterrole/cupcake-reconciler",
        "validatingadmissionpolicy/cupcake-agent-own-node",
        "validatingadmissionpolicybinding/cupcake-agent-own-node",
    ] {
        let out = pc.kubectl(&["get", what]);
        assert!(
            stderr(&out).contains("NotFound"),
            "{what} left after uninstall"
        );
    }
    ok(
        &pc.kubectl(&["get", "crd", "directupdates.cupcake.ricardomolendijk.com"]),
        "CRDs kept",
    )
    .unwrap();
}
