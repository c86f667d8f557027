//! The `cupcake` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod plan;
mod policy;

pub use plan::{PlanArgs, plan_report};

/// CUPCAKE upgrades kubeadm Kubernetes clusters from Git, under policy.
#[derive(Debug, Parser)]
#[command(name = "cupcake", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Output formats of `cupcake plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable summary.
    Text,
    /// The JSON contract (cluster, revision, target, upToDate, current, plan, decision, directUpdate).
    Json,
    /// A pull-request comment: verdict first, then plan and findings.
    Markdown,
    /// The DirectUpdate that would be applied (nothing when up to date or denied).
    Yaml,
}

/// Output formats of `cupcake snapshot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SnapshotFormat {
    Yaml,
    Json,
}

/// Run a future on a fresh single-threaded runtime (the CLI is otherwise synchronous).
pub(crate) fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(f))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Plan the upgrade of one cluster of a fleet repo and show the verdict.
    ///
    /// Exit codes: 0 allowed or up to date, 2 denied, 3 deferred, 1 error.
    Plan(PlanArgs),
    /// Write the live cluster's nodes, pods and PDBs as a snapshot for `cupcake plan --snapshot`.
    ///
    /// The output is the same `v1 List` that `kubectl get nodes,pods,pdb -A -o yaml` prints.
    Snapshot {
        /// kubeconfig to use (default: in-cluster, then $KUBECONFIG, then ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Write to this file instead of stdout.
        #[arg(long = "out", short = 'f')]
        out: Option<PathBuf>,
        /// yaml or json.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = SnapshotFormat::Yaml)]
        output: SnapshotFormat,
    },
    /// Test and evaluate policies (the default pack and the fleet repo's policies/).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Write the generated CRDs (crds/) and JSON Schemas (schemas/) from the Rust types.
    Gen {
        /// Only check: exit 1 and name the files that are stale.
        #[arg(long)]
        check: bool,
        /// Repository root to write under.
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
}

/// Run the CLI; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Plan(args) => plan::run(&args),
        Command::Policy(cmd) => policy::run(&cmd),
        Command::Snapshot {
            kubeconfig,
            out,
            output,
        } => {
            let json = block_on(async {
                let client = crate::observe::client(kubeconfig.as_deref()).await?;
                crate::observe::snapshot_json(&client).await
            })??;
            let text = match output {
                SnapshotFormat::Json => json + "\n",
                SnapshotFormat::Yaml => {
                    let v: serde_json::Value = serde_json::from_str(&json)?;
                    yaml_serde::to_string(&v)?
                }
            };
            match out {
                Some(p) => {
                    std::fs::write(&p, text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                    eprintln!("wrote {}", p.display());
                }
                None => print!("{text}"),
            }
            Ok(0)
        }
        Command::Gen { check, root } => {
            use crate::artefacts;
            if check {
                let stale = artefacts::stale(&root).map_err(anyhow::Error::msg)?;
                if stale.is_empty() {
                    println!("generated files are fresh");
                    return Ok(0);
                }
                for p in &stale {
                    eprintln!("stale: {} (run `cupcake gen`)", p.display());
                }
                return Ok(1);
            }
            let changed = artefacts::write(&root).map_err(anyhow::Error::msg)?;
            for p in &changed {
                println!("wrote {}", p.display());
            }
            if changed.is_empty() {
                println!("generated files were already fresh");
            }
            Ok(0)
        }
    }
}
