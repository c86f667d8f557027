//! The command line: `cupcake-agent --node-name N --executor kubeadm|simulate`
//! (one node's agent) and `cupcake-agent simulate --all-nodes` (every node's
//! simulated agent in one process). Usage errors and start-up failures exit 1.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use cupcake_api::common::GoDuration;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::assignment::Role;
use crate::backup::{self, BackupSettings, EtcdTarget, TlsFiles};
use crate::backup_stage::StageSettings;
use crate::executor::Executor;
use crate::executor::host::Host;
use crate::executor::kubeadm::{self, Kubeadm, PackageManager};
use crate::executor::simulate::{FailStep, Simulate};
use crate::watch::{Scope, Settings, run};

const DEFAULT_STATE_DIR: &str = "/var/lib/cupcake";

/// How host steps are carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExecutorKind {
    /// Real host changes under --host-root: repository, packages, `kubeadm upgrade`, kubelet restart (see `cupcake-agent steps`).
    Kubeadm,
    /// Pretend: wait per step, then set the node's kubelet version and its static pods' image tags (kwok clusters).
    Simulate,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// CUPCAKE node agent: runs the upgrade steps the rollout controller assigns to its node.
///
/// The agent watches its own Node for the assignment annotations
/// (cupcake.ricardomolendijk.com/operation-id, target-version, components,
/// upgrade-mode, status=pending), runs the steps with checkpoints under
/// --state-dir, and reports through the status, step and message annotations.
#[derive(Debug, Parser)]
#[command(
    name = "cupcake-agent",
    version,
    about,
    long_about,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true,
    // Like kubectl: a flag given twice takes its last value (wrappers append overrides).
    args_override_self = true
)]
pub struct Cli {
    /// Name of the node this agent runs on (the downward API's spec.nodeName).
    #[arg(long, env = "NODE_NAME", required = true)]
    pub node_name: Option<String>,
    /// How host steps are carried out.
    #[arg(long, value_enum, default_value_t = ExecutorKind::Kubeadm)]
    pub executor: ExecutorKind,
    /// Where checkpoints are kept (operation-<id>/ per assignment).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// The host's root filesystem, for the kubeadm executor (/host in the DaemonSet): host commands
    /// run as `chroot DIR …`, or with `/` as `nsenter --target 1 --mount --uts --ipc --net --pid -- …` (needs hostPID).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub host_root: PathBuf,
    /// Kubeadm executor: the kubelet's health URL checked by the verify step ("" to skip).
    #[arg(long, value_name = "URL", default_value = kubeadm::DEFAULT_KUBELET_HEALTHZ)]
    pub kubelet_healthz_url: String,
    /// Simulate executor: how long each step takes, its API changes included.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub step_duration: GoDuration,
    /// Simulate executor, for tests: fail the first step whose name contains NAME.
    #[arg(long, value_name = "NAME")]
    pub fail_step: Option<String>,
    /// With --fail-step: only on these nodes (default: this node).
    #[arg(
        long,
        value_name = "N,...",
        value_delimiter = ',',
        requires = "fail_step"
    )]
    pub fail_nodes: Vec<String>,
    /// Simulate executor, for tests: answer preflight requests with this many free bytes
    /// instead of measuring the state directory's filesystem (NODE=BYTES: only for that node; repeatable).
    #[arg(long, value_name = "[NODE=]BYTES", value_parser = disk_free)]
    pub report_disk_free: Vec<(String, u64)>,
    #[command(flatten)]
    pub backup: NodeBackupArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context to use (default: its current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Log format (level from RUST_LOG, default info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Act as the simulated agent of every matching node (kwok clusters, demos, benchmarks).
    #[command(args_override_self = true)]
    Simulate(SimulateArgs),
    /// Print the host steps and commands an assignment would run (the kubeadm executor's own list), without running them.
    #[command(args_override_self = true)]
    Steps(StepsArgs),
    /// Take, verify and upload an etcd snapshot now (the same code the backup stage runs).
    #[command(args_override_self = true)]
    Backup(BackupArgs),
    /// Run one assignment's host steps on this host now, without a cluster: the kubeadm executor
    /// with the agent's checkpoints and step logs; no Node is read or written. Run it again to
    /// resume after an interruption (an interrupted step runs again, done steps never) or to
    /// retry a failed step. For recovery by hand and tests.
    #[command(args_override_self = true)]
    Run(crate::operation::RunArgs),
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Act for every node matching --selector, each with checkpoints in <state-dir>/<node>/.
    #[arg(long, required = true)]
    pub all_nodes: bool,
    /// Label selector of the nodes to act for (default: all).
    #[arg(long, short = 'l')]
    pub selector: Option<String>,
    /// Root of the per-node checkpoint directories.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// How long each step takes, its API changes included.
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    pub step_duration: GoDuration,
    /// For tests: fail the first step whose name contains NAME (or whose id is NAME).
    #[arg(long, value_name = "NAME")]
    pub fail_step: Option<String>,
    /// With --fail-step: only on these nodes (default: every node).
    #[arg(
        long,
        value_name = "N,...",
        value_delimiter = ',',
        requires = "fail_step"
    )]
    pub fail_nodes: Vec<String>,
    /// For tests: answer preflight requests with this many free bytes instead of measuring
    /// the state directory's filesystem (NODE=BYTES: only for that node; repeatable).
    #[arg(long, value_name = "[NODE=]BYTES", value_parser = disk_free)]
    pub report_disk_free: Vec<(String, u64)>,
    #[command(flatten)]
    pub backup: NodeBackupArgs,
}

fn disk_free(s: &str) -> Result<(String, u64), String> {
    crate::preflight::parse_disk_free(s)
}

/// How the node agent answers the rollout controller's `backup-request` (the
/// backup stage) and the etcd part of its `preflight-request`: where etcd is, where
/// snapshots go, how many are kept.
#[derive(Debug, Clone, Args)]
pub struct NodeBackupArgs {
    /// Backup stage: store URL for etcd snapshots (s3://bucket/prefix, gs://, az://, file:///dir),
    /// used when the request carries no backup-store annotation (the DirectUpdate's
    /// spec.backup.storeRef). With neither, a backup request is answered with a failed
    /// result. Credentials: the store's standard environment variables (AWS_ACCESS_KEY_ID, …).
    #[arg(long, value_name = "URL", env = "CUPCAKE_BACKUP_STORE")]
    pub backup_store: Option<String>,
    /// Backup stage: snapshots kept per store and cluster (0: all).
    #[arg(long, value_name = "N", default_value_t = backup::DEFAULT_KEEP)]
    pub backup_keep: usize,
    /// Backup stage: the cluster's directory under the store URL.
    #[arg(long, value_name = "NAME")]
    pub backup_cluster: Option<String>,
    /// Backup stage: etcd endpoints (the snapshot comes from the first that answers).
    #[arg(long, value_name = "URL,...", value_delimiter = ',', default_value = backup::DEFAULT_ENDPOINT)]
    pub etcd_endpoints: Vec<String>,
    /// Backup stage: etcd CA (default <host-root>/etc/kubernetes/pki/etcd/ca.crt).
    #[arg(long, value_name = "FILE")]
    pub etcd_cacert: Option<PathBuf>,
    /// Backup stage: etcd client certificate (default …/pki/etcd/healthcheck-client.crt).
    #[arg(long, value_name = "FILE", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// Backup stage: etcd client key (default …/pki/etcd/healthcheck-client.key).
    #[arg(long, value_name = "FILE", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
}

impl NodeBackupArgs {
    /// The settings; TLS files default to kubeadm's under `host_root`.
    pub fn settings(&self, host_root: &std::path::Path) -> anyhow::Result<StageSettings> {
        let tls = tls_files(
            &self.etcd_endpoints,
            self.etcd_cacert.clone(),
            self.etcd_cert.clone(),
            self.etcd_key.clone(),
            host_root,
        )?;
        Ok(StageSettings {
            etcd: EtcdTarget {
                endpoints: self.etcd_endpoints.clone(),
                tls,
            },
            store: self.backup_store.clone().filter(|s| !s.trim().is_empty()),
            cluster: self.backup_cluster.clone(),
            keep: self.backup_keep,
        })
    }
}

/// Preflight settings: measure `disk` (reported as `shown`) unless `fixed` says otherwise.
fn preflight_settings(
    disk: PathBuf,
    shown: String,
    fixed: Vec<(String, u64)>,
    etcd: &StageSettings,
) -> crate::preflight::Settings {
    crate::preflight::Settings {
        disk_path: disk,
        disk_shown: shown,
        disk_fixed: fixed.into_iter().collect(),
        etcd: etcd.etcd.clone(),
    }
}

/// `cupcake-agent backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// etcd endpoints, e.g. https://127.0.0.1:2379 (the snapshot comes from the first that answers).
    #[arg(long, value_name = "URL,...", value_delimiter = ',', required = true)]
    pub endpoints: Vec<String>,
    /// etcd CA for https endpoints (default /etc/kubernetes/pki/etcd/ca.crt).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Client certificate (default /etc/kubernetes/pki/etcd/healthcheck-client.crt).
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client key (default /etc/kubernetes/pki/etcd/healthcheck-client.key).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Store URL: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix, file:///dir.
    /// Credentials from the environment (S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_ENDPOINT_URL; an http:// endpoint only when given there).
    #[arg(long, value_name = "URL")]
    pub store: String,
    /// The cluster's directory under the store URL (retention counts per directory).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Snapshots kept in that directory, this one included; older ones are deleted with their manifests (0: keep all).
    #[arg(long, value_name = "N", default_value_t = backup::DEFAULT_KEEP)]
    pub keep: usize,
    /// Node name recorded in the manifest (default: $NODE_NAME, else the hostname).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Operation id recorded in the manifest and the result (default manual-<time>).
    #[arg(long, value_name = "ID")]
    pub operation_id: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// `-o` of `cupcake-agent backup`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// TLS files for `endpoints`: given ones, else kubeadm's under `root` for https
/// endpoints; none for http ones.
fn tls_files(
    endpoints: &[String],
    cacert: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    root: &std::path::Path,
) -> anyhow::Result<Option<TlsFiles>> {
    let https = endpoints
        .iter()
        .filter(|e| e.starts_with("https://"))
        .count();
    for e in endpoints {
        if !e.starts_with("https://") && !e.starts_with("http://") {
            bail!("etcd endpoint {e:?}: expected https://host:port or http://host:port");
        }
    }
    if https > 0 && https < endpoints.len() {
        bail!("etcd endpoints mix https:// and http://");
    }
    if https == 0 {
        if cacert.is_some() || cert.is_some() {
            bail!("TLS files given for http:// etcd endpoints");
        }
        return Ok(None);
    }
    let default = TlsFiles::kubeadm(root);
    Ok(Some(match cacert {
        Some(ca) => TlsFiles {
            cacert: ca,
            cert,
            key,
        },
        None if cert.is_some() => TlsFiles {
            cacert: default.cacert,
            cert,
            key,
        },
        None => default,
    }))
}

/// `cupcake-agent backup`: take, verify, upload, print; exit 1 when it failed.
fn backup_now(args: BackupArgs) -> anyhow::Result<()> {
    let tls = tls_files(
        &args.endpoints,
        args.cacert,
        args.cert,
        args.key,
        std::path::Path::new("/"),
    )?;
    let node = args
        .node_name
        .or_else(|| std::env::var("NODE_NAME").ok())
        .filter(|n| !n.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_default();
    let settings = BackupSettings {
        etcd: EtcdTarget {
            endpoints: args.endpoints,
            tls,
        },
        store: args.store,
        cluster: args.cluster,
        keep: args.keep,
        node,
    };
    let op = args
        .operation_id
        .unwrap_or_else(|| backup::manual_operation_id(chrono::Utc::now()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = rt.block_on(backup::run(&settings, &op));
    rt.shutdown_background();
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).context("encoding the result")?
        ),
        Output::Text if report.result.ok => {
            let r = &report.result;
            println!(
                "etcd snapshot verified: {}",
                r.location.as_deref().unwrap_or_default()
            );
            println!("  size:      {} bytes", r.size_bytes);
            println!("  sha256:    {}", r.sha256.as_deref().unwrap_or_default());
            println!("  revision:  {}", r.revision.unwrap_or_default());
            if let Some(t) = r.timestamp {
                println!("  taken:     {}", t.to_rfc3339());
            }
            println!(
                "  manifest:  {}",
                report.manifest.as_deref().unwrap_or_default()
            );
            for p in &report.pruned {
                println!("  pruned:    {p}");
            }
            for w in &report.warnings {
                println!("  warning:   {w}");
            }
        }
        Output::Text => {}
    }
    if report.result.ok {
        Ok(())
    } else {
        bail!(
            "etcd backup failed: {}",
            report
                .result
                .message
                .as_deref()
                .unwrap_or("no reason given")
        )
    }
}

/// `--role` of `cupcake-agent steps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    ControlPlane,
    Worker,
}

/// `--mode` of `cupcake-agent steps` (the same as `--first` for apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    Apply,
    Node,
}

/// `cupcake-agent steps`.
#[derive(Debug, Args)]
pub struct StepsArgs {
    /// The node's role.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// The first control-plane node of the hop: `kubeadm upgrade apply` (else `kubeadm upgrade node`).
    #[arg(long)]
    pub first: bool,
    /// The upgrade-mode annotation's value instead of --first: apply or node.
    #[arg(long, value_enum, conflicts_with = "first")]
    pub mode: Option<ModeArg>,
    /// The version the node runs now.
    #[arg(long, value_name = "V")]
    pub from: cupcake_api::KubeVersion,
    /// The target of the hop.
    #[arg(long, value_name = "V")]
    pub to: cupcake_api::KubeVersion,
    /// The host's package manager.
    #[arg(long, value_enum, default_value_t = PackageManager::Apt)]
    pub package_manager: PackageManager,
    /// Components to upgrade (the components annotation).
    #[arg(long, value_name = "C,...", default_value = "kubeadm,kubelet,kubectl")]
    pub components: String,
    /// Air-gapped: the package bundle (a bundle.yaml, the ConfigMap's data) the node installs from:
    /// its repository and exact versions instead of pkgs.k8s.io's.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// With --bundle: the bundle has a keyring.gpg (written to the keyring the repository names).
    #[arg(long, requires = "bundle")]
    pub bundle_keyring: bool,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// `cupcake-agent steps`: print what the kubeadm executor would run.
fn print_steps(a: StepsArgs) -> anyhow::Result<()> {
    use cupcake_api::protocol::UpgradeMode;
    let role = match a.role {
        RoleArg::ControlPlane => Role::ControlPlane,
        RoleArg::Worker => Role::Worker,
    };
    let mode = match (a.first, a.mode) {
        (true, _) | (false, Some(ModeArg::Apply)) => UpgradeMode::Apply,
        _ => UpgradeMode::Node,
    };
    let components = crate::assignment::parse_components(&a.components)
        .map_err(|e| anyhow::anyhow!("--components {:?}: {e}", a.components))?;
    if a.from > a.to {
        bail!(
            "--from {} is above --to {}: CUPCAKE does not downgrade",
            a.from,
            a.to
        );
    }
    if a.from.major != a.to.major || a.to.minor > a.from.minor + 1 {
        bail!(
            "--from {} --to {}: kubeadm upgrades one minor at a time; each hop of the upgrade path has its own steps",
            a.from,
            a.to
        );
    }
    let steps = crate::steps::plan(role, mode, &components)
        .map_err(|e| anyhow::anyhow!("--role {role} with {mode}: {e}"))?;
    let bundle = match &a.bundle {
        Some(f) => {
            let mut b = kubeadm::LoadedBundle::from_files(f, None)
                .map_err(|e| anyhow::anyhow!("--bundle: {e}"))?;
            if a.bundle_keyring {
                b.keyring = Some(Vec::new());
            }
            Some(b)
        }
        None => None,
    };
    let plan = kubeadm::Plan {
        pm: a.package_manager,
        role,
        mode,
        target: &a.to,
        components: &components,
        bundle: bundle.as_ref(),
    };
    kubeadm::check_bundle(&plan).map_err(|e| anyhow::anyhow!("--bundle: {e}"))?;
    let docs = kubeadm::describe(&steps, &plan, Some(&a.from));
    let comps = components
        .iter()
        .map(|c| crate::assignment::component_name(*c))
        .collect::<Vec<_>>();
    match a.output {
        Output::Json => {
            let doc = serde_json::json!({
                "role": role,
                "mode": mode.as_str(),
                "from": a.from.to_string(),
                "to": a.to.to_string(),
                "packageManager": a.package_manager,
                "components": comps,
                "bundle": bundle.as_ref().map(|b| b.source.clone()),
                "steps": docs,
            });
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Output::Text => {
            println!(
                "Host steps of a {role} node ({}), {} -> {}, {}, components {}.",
                match mode {
                    UpgradeMode::Apply =>
                        "kubeadm upgrade apply: the first control-plane node of the hop",
                    UpgradeMode::Node => "kubeadm upgrade node",
                },
                a.from,
                a.to,
                a.package_manager,
                comps.join(",")
            );
            println!(
                "Commands run on the host: chroot into --host-root, or nsenter into PID 1's namespaces when --host-root is /."
            );
            match &bundle {
                Some(b) => println!(
                    "Air-gapped: packages from the package bundle {} at its exact versions.",
                    b.source
                ),
                None => println!(
                    "VERSION ({}-REV) is the exact version the repository lists for {}, found in preflight, never assumed.",
                    a.to, a.to
                ),
            }
            for s in &docs {
                println!("\n{}", s.id);
                for act in &s.actions {
                    println!("  # {}", act.what);
                    if let Some(skip) = &act.skipped_when {
                        println!("  # changes nothing when: {skip}");
                    }
                    for c in &act.commands {
                        println!("    $ {c}");
                    }
                }
            }
        }
    }
    Ok(())
}

/// The binary's `main`.
pub fn main() -> ExitCode {
    install_crypto_provider();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version print to stdout and succeed; every usage error exits 1.
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let format = cli.global.log_format;
    init_logs(format);
    match start(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match format {
                LogFormat::Text => eprintln!("cupcake-agent: {e:#}"),
                LogFormat::Json => tracing::error!("{e:#}"),
            }
            ExitCode::from(1)
        }
    }
}

fn start(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    match cli.command {
        Some(Command::Steps(a)) => print_steps(a),
        Some(Command::Backup(b)) => backup_now(b),
        Some(Command::Run(r)) => crate::operation::run_offline(r),
        Some(Command::Simulate(s)) => {
            let fail = fail_step(s.fail_step.as_deref(), &s.fail_nodes)?;
            let duration = s.step_duration.0;
            let backup = s.backup.settings(std::path::Path::new("/"))?;
            let preflight = preflight_settings(
                s.state_dir.clone(),
                s.state_dir.display().to_string(),
                s.report_disk_free,
                &backup,
            );
            serve(
                &global,
                s.state_dir,
                Scope::Nodes {
                    selector: s.selector.filter(|s| !s.trim().is_empty()),
                },
                Settings { backup, preflight },
                move |client| Simulate::new(client, duration, fail),
            )
        }
        None => {
            let node = cli.node_name.unwrap_or_default();
            if node.trim().is_empty() {
                bail!("--node-name (or NODE_NAME) is empty");
            }
            match cli.executor {
                ExecutorKind::Kubeadm => {
                    if cli.fail_step.is_some() {
                        bail!("--fail-step needs --executor simulate");
                    }
                    if !cli.report_disk_free.is_empty() {
                        bail!("--report-disk-free needs --executor simulate");
                    }
                    let host = Host::new(&cli.host_root)?;
                    let healthz =
                        Some(cli.kubelet_healthz_url.clone()).filter(|u| !u.trim().is_empty());
                    let backup = cli.backup.settings(&cli.host_root)?;
                    let preflight = preflight_settings(
                        cli.host_root.join("var/lib"),
                        "/var/lib".to_string(),
                        Vec::new(),
                        &backup,
                    );
                    serve(
                        &global,
                        cli.state_dir,
                        Scope::Node(node),
                        Settings { backup, preflight },
                        move |client| {
                            Kubeadm::new(host, healthz)
                                .with_bundles(kubeadm::BundleSource::Kube(client))
                        },
                    )
                }
                ExecutorKind::Simulate => {
                    let nodes = if cli.fail_nodes.is_empty() {
                        vec![node.clone()]
                    } else {
                        cli.fail_nodes
                    };
                    let fail = fail_step(cli.fail_step.as_deref(), &nodes)?;
                    let duration = cli.step_duration.0;
                    let backup = cli.backup.settings(&cli.host_root)?;
                    let preflight = preflight_settings(
                        cli.state_dir.clone(),
                        cli.state_dir.display().to_string(),
                        cli.report_disk_free,
                        &backup,
                    );
                    serve(
                        &global,
                        cli.state_dir,
                        Scope::Node(node),
                        Settings { backup, preflight },
                        move |client| Simulate::new(client, duration, fail),
                    )
                }
            }
        }
    }
}

fn fail_step(name: Option<&str>, nodes: &[String]) -> anyhow::Result<Option<FailStep>> {
    name.map(|n| FailStep::new(n, nodes))
        .transpose()
        .map_err(anyhow::Error::from)
}

/// Connect, then run the watch until SIGTERM/SIGINT.
fn serve<E: Executor>(
    global: &GlobalArgs,
    state_dir: PathBuf,
    scope: Scope,
    settings: Settings,
    executor: impl FnOnce(Client) -> E,
) -> anyhow::Result<()> {
    let b = &settings.backup;
    match &b.store {
        Some(store) => {
            tracing::info!(%store, keep = b.keep, endpoints = ?b.etcd.endpoints, "backup requests are answered (a request's backup-store comes first)")
        }
        None => tracing::info!(
            keep = b.keep,
            endpoints = ?b.etcd.endpoints,
            "no --backup-store: backup requests are answered with their backup-store, else with a failed result"
        ),
    }
    tracing::info!(disk = %settings.preflight.disk_path.display(), "preflight requests are answered");
    let settings = Arc::new(settings);
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating the state directory {}", state_dir.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = rt.block_on(async {
        let client = client(global).await?;
        let executor = Arc::new(executor(client.clone()));
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            let sig = signal().await;
            tracing::info!("{sig}: finishing the running steps, starting no new ones");
            let _ = tx.send(true);
            // Keep the sender alive: a closed channel would read as a stop request anyway.
            std::future::pending::<()>().await;
        });
        run(client, executor, state_dir, scope, settings, rx).await;
        tracing::info!("stopped");
        Ok(())
    });
    // Every worker has finished (or was given up on after the grace period):
    // nothing left is worth waiting for.
    rt.shutdown_background();
    result
}

async fn signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// A client for the cluster the flags name, like kubectl: `--kubeconfig` (else
/// `$KUBECONFIG`, else `~/.kube/config`, else in-cluster) and `--context`.
async fn client(args: &GlobalArgs) -> anyhow::Result<Client> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    // kube's config errors print their cause in their own message: flatten them
    // (no source chain) so `{:#}` does not say it twice.
    let config = match (&args.kubeconfig, &args.context) {
        (Some(p), _) => {
            let kc = Kubeconfig::read_from(p)
                .map_err(|e| anyhow::anyhow!("reading kubeconfig {}: {e}", p.display()))?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| anyhow::anyhow!("using kubeconfig {}: {e}", p.display()))?
        }
        (None, Some(c)) => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| anyhow::anyhow!("using context {c} of the default kubeconfig: {e}"))?,
        (None, None) => Config::infer().await.map_err(|e| {
            anyhow::anyhow!("no usable kubeconfig (in-cluster, $KUBECONFIG or ~/.kube/config): {e}")
        })?,
    };
    Client::try_from(config).map_err(|e| anyhow::anyhow!("building the Kubernetes client: {e}"))
}

/// Use aws-lc-rs for TLS everywhere (one crypto provider in the process).
pub fn install_crypto_provider() {
    // Err means a provider is installed already, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cupcake-agent").chain(args.iter().copied()))
    }

    #[test]
    fn node_agent_flags() {
        let c = parse(&[
            "--node-name",
            "w-1",
            "--executor",
            "simulate",
            "--step-duration",
            "250ms",
            "--kubeconfig",
            "/k",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(c.node_name.as_deref(), Some("w-1"));
        assert_eq!(c.executor, ExecutorKind::Simulate);
        assert_eq!(c.step_duration.0, std::time::Duration::from_millis(250));
        assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(c.global.log_format, LogFormat::Json);
        assert!(c.command.is_none());
    }

    #[test]
    fn simulate_all_nodes_flags_with_global_flags_after_the_subcommand() {
        let c = parse(&[
            "simulate",
            "--all-nodes",
            "--kubeconfig",
            "/k",
            "--state-dir",
            "/s",
            "--fail-step",
            "kubelet",
            "--fail-nodes",
            "w-1,w-2",
        ])
        .unwrap();
        assert_eq!(c.global.kubeconfig, Some(PathBuf::from("/k")));
        let Some(Command::Simulate(s)) = c.command else {
            panic!("not simulate");
        };
        assert!(s.all_nodes);
        assert_eq!(s.state_dir, PathBuf::from("/s"));
        assert_eq!(s.fail_nodes, ["w-1", "w-2"]);
    }

    #[test]
    fn a_repeated_flag_takes_its_last_value() {
        let c = parse(&[
            "simulate",
            "--all-nodes",
            "--step-duration",
            "100ms",
            "--step-duration",
            "400ms",
        ])
        .unwrap();
        let Some(Command::Simulate(s)) = c.command else {
            panic!("not simulate");
        };
        assert_eq!(s.step_duration.0, std::time::Duration::from_millis(400));
        let c = parse(&[
            "--node-name",
            "a",
            "--node-name",
            "b",
            "--executor",
            "simulate",
        ])
        .unwrap();
        assert_eq!(c.node_name.as_deref(), Some("b"));
    }

    #[test]
    fn usage_errors() {
        for args in [
            &["simulate"][..],                                   // --all-nodes is required
            &["simulate", "--all-nodes", "--fail-nodes", "w-1"], // needs --fail-step
            &["--node-name", "n", "--executor", "ansible"],      // unknown executor
            &["--node-name", "n", "--step-duration", "soon"],    // bad duration
            &["--node-name", "n", "simulate", "--all-nodes"],    // one or the other
        ] {
            assert!(parse(args).is_err(), "{args:?} parsed");
        }
    }
}
