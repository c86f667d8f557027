//! The `cupcake` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod plan;
mod policy;
mod run;
mod status;

pub use plan::{PlanArgs, Planned, plan_report};

use crate::observe::KubeArgs;
use crate::telemetry::{self, LogFormat};

/// CUPCAKE upgrades kubeadm Kubernetes clusters from Git, under policy.
#[derive(Debug, Parser)]
#[command(name = "cupcake", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr: text or json.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
    /// The DirectUpdate to apply — printed only when the verdict is allow.
    Yaml,
}

/// Output formats of `cupcake snapshot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SnapshotFormat {
    Yaml,
    Json,
}

/// `cupcake snapshot`: the live cluster as a kubectl `List` on `out`, page by page.
fn write_snapshot<W: std::io::Write>(
    kube: &crate::observe::KubeArgs,
    out: W,
    yaml: bool,
) -> anyhow::Result<usize> {
    let mut list = crate::snapshot::ListWriter::new(out, yaml)?;
    let n = block_on(async {
        let (client, server) = crate::observe::connect(kube).await?;
        crate::observe::write_snapshot(&client, &server, &mut list).await
    })??;
    list.finish()?;
    Ok(n)
}

/// Where `cupcake snapshot -f FILE` writes before renaming the file into place.
fn partial_path(p: &std::path::Path) -> PathBuf {
    let mut name = p.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".partial-{}", std::process::id()));
    p.with_file_name(name)
}

/// An RFC 3339 instant for flags like `--now`.
pub(crate) fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{e}: expected an RFC 3339 time like 2026-11-28T02:30:00Z"))
}

/// The error and its causes in one line, each cause once: a cause whose text the
/// message already carries is not repeated ("file: not found: not found").
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
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
    /// The output is the same `v1 List` that `kubectl get nodes,pods,pdb -A -o yaml` prints,
    /// written a list page (500 objects) at a time. With `-f FILE` it goes to
    /// `FILE.partial-<pid>`, renamed over FILE once complete: a failed snapshot leaves the
    /// old file.
    Snapshot {
        #[command(flatten)]
        kube: KubeArgs,
        /// Write to this file instead of stdout.
        #[arg(long = "output-file", short = 'f')]
        output_file: Option<PathBuf>,
        /// yaml or json.
        #[arg(short = 'o', long = "output", value_enum, default_value_t = SnapshotFormat::Yaml)]
        output: SnapshotFormat,
    },
    /// Test and evaluate policies (the default pack and the fleet repo's policies/).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Run the controller under a Lease: the rollout controller (DirectUpdates node by node),
    /// the ScheduledUpdate/UpdateSchedule controllers (unless --rollout-only), and with --repo
    /// the GitOps loop (status file, commit status, auto-update pull requests); serves
    /// /metrics, /healthz, /readyz and the GitHub webhook /hooks/github.
    Run(Box<run::RunArgs>),
    /// Every cluster at a glance: the status files on the status branch of a fleet repo.
    Status(status::StatusArgs),
    /// Print the version of this binary.
    Version,
    /// Print a shell completion script: `source <(cupcake completion bash)`.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// Run the CLI; returns the process exit code. Usage errors exit 1 (2 means denied).
pub fn main() -> ExitCode {
    // Installed as `kubectl-cupcake` (a kubectl plugin), help and errors say `kubectl cupcake`.
    let as_plugin = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .is_some_and(|n| n == "kubectl-cupcake");
    let mut command = <Cli as clap::CommandFactory>::command();
    if as_plugin {
        command = command.name("kubectl-cupcake").bin_name("kubectl cupcake");
    }
    let cli = match command
        .try_get_matches()
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m))
    {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let level = if matches!(cli.command, Command::Run(_)) {
        "info"
    } else {
        "warn"
    };
    telemetry::init(cli.log_format, level);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Plan(args) => plan::run(&args),
        Command::Policy(cmd) => policy::run(&cmd),
        Command::Run(args) => {
            let code = run::run(&args)?;
            Ok(code)
        }
        Command::Status(args) => status::run(&args),
        Command::Completion { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "cupcake", &mut std::io::stdout());
            Ok(0)
        }
        Command::Version => {
            println!("cupcake {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        Command::Snapshot {
            kube,
            output_file,
            output,
        } => {
            let yaml = output == SnapshotFormat::Yaml;
            match output_file {
                Some(p) => {
                    // Into a file beside it, renamed over it once complete: a failed
                    // snapshot leaves the old file (or none), never half a list.
                    let part = partial_path(&p);
                    let written = std::fs::File::create(&part)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", part.display()))
                        .and_then(|f| write_snapshot(&kube, std::io::BufWriter::new(f), yaml))
                        .and_then(|_| {
                            std::fs::rename(&part, &p)
                                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
                        });
                    if let Err(e) = written {
                        let _ = std::fs::remove_file(&part);
                        return Err(e);
                    }
                    eprintln!("wrote {}", p.display());
                }
                None => {
                    write_snapshot(&kube, std::io::stdout().lock(), yaml)?;
                }
            }
            Ok(0)
        }
    }
}
