//! The binary's exit codes and messages for what it refuses before touching a cluster.

use std::process::{Command, Output};

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cupcake-agent"))
        .args(args)
        .env_remove("NODE_NAME")
        // Nothing here may reach a cluster: point at one that does not exist.
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .expect("cupcake-agent runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn usage_errors_exit_1() {
    for args in [
        &[][..], // no --node-name
        &["--node-name", "n", "--executor", "ansible"],
        &["--node-name", "n", "--step-duration", "soon"],
        &["simulate"],                                       // --all-nodes required
        &["simulate", "--all-nodes", "--fail-nodes", "w-1"], // needs --fail-step
        &["--bogus"],
    ] {
        let o = agent(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty(), "{args:?}: no message");
    }
}

#[test]
fn help_and_version_exit_0() {
    for args in [&["--help"][..], &["--version"], &["simulate", "--help"]] {
        let o = agent(args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn the_kubeadm_executor_needs_a_host_root_directory() {
    let state = tempfile::tempdir().unwrap();
    let o = agent(&[
        "--node-name",
        "n",
        "--executor",
        "kubeadm",
        "--state-dir",
        state.path().to_str().unwrap(),
        "--host-root",
        "/nonexistent/host",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--host-root /nonexistent/host: not a directory"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn steps_usage_errors_name_the_flag() {
    for (args, want) in [
        (
            &[
                "steps", "--role", "worker", "--first", "--from", "1.33.4", "--to", "1.34.2",
            ][..],
            "worker",
        ),
        (
            &[
                "steps", "--role", "worker", "--from", "1.34.2", "--to", "1.33.4",
            ],
            "does not downgrade",
        ),
        (
            &[
                "steps", "--role", "worker", "--from", "1.32.4", "--to", "1.34.2",
            ],
            "one minor at a time",
        ),
        (
            &[
                "steps",
                "--role",
                "worker",
                "--from",
                "1.33.4",
                "--to",
                "1.34.2",
                "--components",
                "kubeadm,helm",
            ],
            "--components",
        ),
        (&["steps", "--role", "worker", "--to", "1.34.2"], "--from"),
    ] {
        let o = agent(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn an_unknown_fail_step_is_a_start_error_naming_the_steps() {
    let state = tempfile::tempdir().unwrap();
    let o = agent(&[
        "simulate",
        "--all-nodes",
        "--state-dir",
        state.path().to_str().unwrap(),
        "--fail-step",
        "reboot",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("\"reboot\" matches no step") && e.contains("restart-kubelet"),
        "{e}"
    );
}

#[test]
fn an_unreachable_cluster_is_a_start_error() {
    let state = tempfile::tempdir().unwrap();
    let o = agent(&[
        "--node-name",
        "n",
        "--executor",
        "simulate",
        "--state-dir",
        state.path().to_str().unwrap(),
        "--kubeconfig",
        "/nonexistent/kubeconfig",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/kubeconfig"),
        "{}",
        stderr(&o)
    );
}
