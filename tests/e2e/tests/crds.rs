//! The generated CRDs against a real apiserver: server-side apply, printer
//! columns, schema validation messages, `kubectl explain`, and the example CRs.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::Duration;

use cupcake_e2e::{client, cupcake, kubectl, ok, repo, wait_for};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};

const CRDS: [&str; 3] = ["directupdates", "scheduledupdates", "updateschedules"];

async fn install_crds() {
    let client = client().await;
    let api = Api::<CustomResourceDefinition>::all(client);
    for name in CRDS {
        let text = std::fs::read_to_string(repo().join(format!("crds/{name}.yaml"))).unwrap();
        let crd: CustomResourceDefinition = yaml_serde::from_str(&text).unwrap();
        let full = crd.metadata.name.clone().unwrap();
        api.patch(
            &full,
            &PatchParams::apply("cupcake-e2e").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
        wait_for(
            &format!("CRD {full} Established"),
            Duration::from_secs(30),
            || async {
                let c = api.get(&full).await.ok()?;
                let est = c
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                est.then_some(())
            },
        )
        .await;
    }
}

fn apply_stdin(yaml: &str, extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("obj.yaml");
    std::fs::write(&f, yaml).unwrap();
    let mut args = vec![
        "apply",
        "--server-side",
        "--field-manager=cupcake-e2e",
        "-f",
        f.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    kubectl(&args)
}

fn du(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: cupcake.ricardomolendijk.com/v1\nkind: DirectUpdate\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_install_validate_and_explain() {
    install_crds().await;

    // The example CRs are accepted.
    for f in [
        "directupdate-basic.yaml",
        "directupdate-canary.yaml",
        "directupdate-multistep.yaml",
        "scheduledupdate-basic.yaml",
        "updateschedule-monthly.yaml",
    ] {
        let path = repo().join("examples").join(f);
        let out = kubectl(&[
            "apply",
            "--server-side",
            "--field-manager=cupcake-e2e",
            "-f",
            path.to_str().unwrap(),
        ]);
        ok(&out, &format!("applying examples/{f}")).unwrap();
    }

    // Printer columns.
    let out = ok(&kubectl(&["get", "du"]), "kubectl get du").unwrap();
    let header = out.lines().next().unwrap();
    for col in ["NAME", "TARGET", "PHASE", "PROGRESS", "AGE"] {
        assert!(header.contains(col), "missing column {col}: {header}");
    }
    assert!(
        out.contains("upgrade-to-1-34-2") && out.contains("1.34.2"),
        "{out}"
    );

    // Invalid DirectUpdates are rejected with the schema's messages.
    let cases = [
        (
            "bad-version",
            "  targetVersion: \"1.34\"\n",
            "spec.targetVersion",
        ),
        (
            "bad-strategy",
            "  targetVersion: 1.34.2\n  strategy: yolo\n",
            "Unsupported value: \"yolo\"",
        ),
        (
            "negative-concurrency",
            "  targetVersion: 1.34.2\n  concurrency: -1\n",
            "should be greater than or equal to 1",
        ),
        (
            "missing-target",
            "  strategy: rolling\n",
            "spec.targetVersion: Required value",
        ),
        (
            "bad-duration",
            "  targetVersion: 1.34.2\n  nodeTimeout: soon\n",
            "spec.nodeTimeout",
        ),
    ];
    for (name, spec, want) in cases {
        let out = apply_stdin(&du(name, spec), &[]);
        assert!(!out.status.success(), "{name} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{name}: want {want:?} in:\n{err}");
    }
    let out = apply_stdin(&du("bad-version", "  targetVersion: \"1.34\"\n"), &[]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("should match"),
        "pattern message"
    );

    // kubectl explain shows the field docs. The apiserver publishes a new CRD's
    // OpenAPI a moment after it is Established, so poll until it is there.
    let out = wait_for(
        "kubectl explain directupdate.spec",
        Duration::from_secs(60),
        || async {
            let out = kubectl(&["explain", "directupdate.spec"]);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        },
    )
    .await;
    assert!(
        out.contains("targetVersion")
            && out.contains("Kubernetes version every selected node ends at"),
        "{out}"
    );
    assert!(out.contains("Kill switch"), "{out}");

    // What `cupcake plan -o yaml` renders passes server-side validation.
    let plan = cupcake(&[
        "plan",
        repo().join("examples/fleet").to_str().unwrap(),
        "--cluster",
        "demo",
        "--now",
        "2026-11-28T02:30:00Z",
        "-o",
        "yaml",
    ]);
    let rendered = ok(&plan, "cupcake plan -o yaml").unwrap();
    ok(
        &apply_stdin(&rendered, &["--dry-run=server"]),
        "server-side dry-run of the rendered DirectUpdate",
    )
    .unwrap();

    let _ = kubectl(&["delete", "du,su,us", "--all", "--wait=false"]);
}
