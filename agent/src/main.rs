//! `cupcake-agent`: the node agent (privileged DaemonSet).
//!
//! NOT BUILT YET: only the command line exists. The agent will watch its own
//! Node for the assignment annotations (`cupcake.ricardomolendijk.com/operation-id`,
//! `target-version`, `components`, `status=pending`), run the host steps with
//! on-disk checkpoints in `/var/lib/cupcake/operation-<id>/`, take the etcd
//! backup on control-plane nodes, and report through the `status` and `step`
//! annotations.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

/// How host steps are carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Executor {
    /// Real host changes: packages, `kubeadm upgrade`, kubelet restart.
    Kubeadm,
    /// Pretend: report each step and set the node's kubelet version (for kwok test clusters).
    Simulate,
}

/// CUPCAKE node agent — runs the upgrade steps on its own node.
///
/// Status: not built yet. This binary only parses its flags and exits with
/// code 2; the rollout controller and the agent come in their own issue.
#[derive(Debug, Parser)]
#[command(name = "cupcake-agent", version, about, long_about)]
struct Args {
    /// Name of the node this agent runs on (from the downward API).
    #[arg(long, env = "NODE_NAME")]
    node_name: String,
    /// How host steps are carried out.
    #[arg(long, value_enum, default_value_t = Executor::Kubeadm)]
    executor: Executor,
    /// Where checkpoints are kept.
    #[arg(long, default_value = "/var/lib/cupcake")]
    state_dir: PathBuf,
    /// kubeconfig (default: in-cluster).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    eprintln!(
        "cupcake-agent for node {} ({:?} executor, state in {}): the agent is not built yet; nothing was done",
        args.node_name,
        args.executor,
        args.state_dir.display()
    );
    let _ = args.kubeconfig;
    ExitCode::from(2)
}
