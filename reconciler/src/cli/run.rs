//! `cupcake run`: the controller process — the rollout controller under a Lease,
//! and the metrics/health server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use k8s_controller::LeaderElection;
use tracing::{error, info};

use crate::observe::{self, KubeArgs};
use crate::server::{self, ServerState};
use crate::{gitops, rollout};

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Namespace of the leader-election Lease (default: the pod's namespace, else kube-system).
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// This replica's identity in the Lease (default: the hostname).
    #[arg(long)]
    pub identity: Option<String>,
    /// Address of /metrics, /healthz, /readyz (and /hooks/github with --repo).
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Run only the rollout controller (no GitOps loop, no schedule controllers).
    #[arg(long)]
    pub rollout_only: bool,
    /// Lease duration: a replica that cannot renew stops writing before another may take over.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// GitOps loop (with --repo).
    #[command(flatten)]
    pub gitops: GitOpsArgs,
}

/// The GitOps loop's flags (design.md "CLI"). Every one is used or refused: a flag
/// the given combination would not act on is an error, never silently ignored.
#[derive(Debug, Clone, Default, Args)]
pub struct GitOpsArgs {
    /// Fleet repository to follow (https://, ssh://, git://, file:// or a local path).
    #[arg(long)]
    pub repo: Option<String>,
    /// Branch of --repo to follow (default main).
    #[arg(long)]
    pub branch: Option<String>,
    /// Cluster of the fleet this controller runs.
    #[arg(long)]
    pub cluster: Option<String>,
    /// Fleet root inside the repository (default .).
    #[arg(long)]
    pub fleet_path: Option<String>,
    /// How often to fetch (default 60s).
    #[arg(long)]
    pub poll: Option<String>,
    /// File with the token for https remotes.
    #[arg(long)]
    pub git_token_file: Option<PathBuf>,
    /// File with the SSH key for ssh remotes.
    #[arg(long)]
    pub git_ssh_key_file: Option<PathBuf>,
    /// OpenSSH known_hosts file the ssh remote's host key must be in (default:
    /// libgit2's check against ~/.ssh/known_hosts).
    #[arg(long)]
    pub git_known_hosts_file: Option<PathBuf>,
    /// File with the GitHub webhook's HMAC secret.
    #[arg(long)]
    pub webhook_secret_file: Option<PathBuf>,
    /// Branch the status files are committed to (default cupcake/status).
    #[arg(long)]
    pub status_branch: Option<String>,
    /// GitHub repository (OWNER/NAME) for commit statuses and pull requests.
    #[arg(long)]
    pub github_repo: Option<String>,
    /// File with the GitHub token.
    #[arg(long)]
    pub github_token_file: Option<PathBuf>,
    /// GitHub API URL (default GitHub's).
    #[arg(long)]
    pub github_api: Option<String>,
    /// Authenticate as this GitHub App (with --github-app-key-file and
    /// --github-installation-id) instead of a token.
    #[arg(long)]
    pub github_app_id: Option<u64>,
    /// File with the GitHub App's private key (PEM).
    #[arg(long)]
    pub github_app_key_file: Option<PathBuf>,
    /// The App's installation on the fleet repository's owner.
    #[arg(long)]
    pub github_installation_id: Option<u64>,
}

impl GitOpsArgs {
    /// The loop's configuration; `None` without `--repo`.
    fn config(&self, rollout_only: bool) -> anyhow::Result<Option<gitops::Config>> {
        let given = self.given();
        let Some(repo) = &self.repo else {
            if given.is_empty() {
                return Ok(None);
            }
            anyhow::bail!(
                "{} need --repo (the fleet repository to follow)",
                given.join(", ")
            );
        };
        let shown = crate::source::redact_url(repo);
        if rollout_only {
            anyhow::bail!("--rollout-only runs no GitOps loop: drop it or drop --repo {shown}");
        }
        let Some(cluster) = &self.cluster else {
            anyhow::bail!("--repo {shown} needs --cluster NAME (the fleet's folder clusters/NAME)");
        };
        let branch = self.branch.clone().unwrap_or_else(|| "main".into());
        let status_branch = self
            .status_branch
            .clone()
            .unwrap_or_else(|| "cupcake/status".into());
        if status_branch == branch {
            anyhow::bail!(
                "--status-branch {status_branch} is the followed --branch: status must never land where desired state is read"
            );
        }
        let poll = match &self.poll {
            Some(p) => parse_duration(p).map_err(|e| anyhow::anyhow!("--poll {p}: {e}"))?,
            None => Duration::from_secs(60),
        };
        if poll < Duration::from_secs(1) {
            anyhow::bail!(
                "--poll {}: must be at least 1s",
                self.poll.as_deref().unwrap_or("")
            );
        }
        let scheme = repo.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        let is_ssh = scheme.as_deref() == Some("ssh")
            || (scheme.is_none() && repo.contains('@') && repo.contains(':'));
        let is_http = matches!(scheme.as_deref(), Some("http" | "https"));
        let auth = match (&self.git_token_file, &self.git_ssh_key_file) {
            (Some(_), Some(_)) => {
                anyhow::bail!(
                    "--git-token-file and --git-ssh-key-file: give the one that fits --repo {shown}"
                )
            }
            (Some(f), None) => {
                if !is_http {
                    anyhow::bail!(
                        "--git-token-file {}: a token authenticates http(s) remotes, and --repo {shown} is not one",
                        f.display()
                    );
                }
                gitops::git::Auth::Token(read_secret(f, "--git-token-file")?)
            }
            (None, Some(f)) => {
                if !is_ssh {
                    anyhow::bail!(
                        "--git-ssh-key-file {}: a key authenticates ssh remotes, and --repo {shown} is not one",
                        f.display()
                    );
                }
                if !f.is_file() {
                    anyhow::bail!("--git-ssh-key-file {}: no such file", f.display());
                }
                gitops::git::Auth::SshKey(f.clone())
            }
            (None, None) => gitops::git::Auth::None,
        };
        let known_hosts = match &self.git_known_hosts_file {
            None => None,
            Some(f) if !is_ssh => anyhow::bail!(
                "--git-known-hosts-file {}: host keys are checked for ssh remotes, and --repo {shown} is not one",
                f.display()
            ),
            Some(f) => {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| anyhow::anyhow!("--git-known-hosts-file {}: {e}", f.display()))?;
                Some(
                    gitops::git::KnownHosts::parse(&text).map_err(|e| {
                        anyhow::anyhow!("--git-known-hosts-file {}: {e}", f.display())
                    })?,
                )
            }
        };
        let app = (
            self.github_app_id,
            &self.github_app_key_file,
            self.github_installation_id,
        );
        let app_given = app.0.is_some() || app.1.is_some() || app.2.is_some();
        let github = match (&self.github_repo, &self.github_token_file) {
            (None, None) if self.github_api.is_none() && !app_given => None,
            (None, _) => anyhow::bail!(
                "--github-token-file, --github-api and --github-app-* need --github-repo OWNER/NAME"
            ),
            (Some(_), Some(_)) if app_given => anyhow::bail!(
                "--github-token-file and --github-app-*: give a token or a GitHub App, not both"
            ),
            (Some(r), None) if !app_given => anyhow::bail!(
                "--github-repo {r} needs --github-token-file, or --github-app-id with --github-app-key-file and --github-installation-id"
            ),
            (Some(r), token) => {
                let auth = match (token, app) {
                    (Some(f), _) => crate::report::github::GitHubAuth::Token(read_secret(
                        f,
                        "--github-token-file",
                    )?),
                    (None, (Some(app_id), Some(key), Some(installation_id))) => {
                        crate::report::github::GitHubAuth::App {
                            app_id,
                            key_pem: read_secret(key, "--github-app-key-file")?,
                            installation_id,
                        }
                    }
                    (None, _) => anyhow::bail!(
                        "a GitHub App needs all of --github-app-id, --github-app-key-file and --github-installation-id"
                    ),
                };
                let api = self
                    .github_api
                    .clone()
                    .unwrap_or_else(|| crate::report::github::DEFAULT_API.to_string());
                Some(
                    crate::report::github::GitHub::connect(&api, r, auth, Default::default())
                        .map_err(|e| anyhow::anyhow!("{e}"))?,
                )
            }
        };
        use sha2::Digest as _;
        let key = hex::encode(&sha2::Sha256::digest(repo.as_bytes())[..8]);
        Ok(Some(gitops::Config {
            repo: repo.clone(),
            branch,
            cluster: cluster.clone(),
            fleet_path: gitops::git::normalize_path(self.fleet_path.as_deref().unwrap_or(".")),
            poll,
            auth,
            known_hosts,
            status_branch,
            mirror_dir: std::env::temp_dir().join(format!("cupcake-git-{key}")),
            git_timeout: Duration::from_secs(30),
            status_interval: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
            github,
        }))
    }

    /// The GitOps flags given, by name.
    fn given(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut flag = |set: bool, name: &'static str| {
            if set {
                out.push(name);
            }
        };
        flag(self.repo.is_some(), "--repo");
        flag(self.branch.is_some(), "--branch");
        flag(self.cluster.is_some(), "--cluster");
        flag(self.fleet_path.is_some(), "--fleet-path");
        flag(self.poll.is_some(), "--poll");
        flag(self.git_token_file.is_some(), "--git-token-file");
        flag(self.git_ssh_key_file.is_some(), "--git-ssh-key-file");
        flag(
            self.git_known_hosts_file.is_some(),
            "--git-known-hosts-file",
        );
        flag(self.webhook_secret_file.is_some(), "--webhook-secret-file");
        flag(self.status_branch.is_some(), "--status-branch");
        flag(self.github_repo.is_some(), "--github-repo");
        flag(self.github_token_file.is_some(), "--github-token-file");
        flag(self.github_api.is_some(), "--github-api");
        flag(self.github_app_id.is_some(), "--github-app-id");
        flag(self.github_app_key_file.is_some(), "--github-app-key-file");
        flag(
            self.github_installation_id.is_some(),
            "--github-installation-id",
        );
        out
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<cupcake_api::common::GoDuration>()
        .map(|d| d.0)
        .map_err(|e| e.to_string())
}

fn lease_namespace(args: &RunArgs) -> String {
    if let Some(ns) = &args.lease_namespace {
        return ns.clone();
    }
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "kube-system".to_string())
}

fn identity(args: &RunArgs) -> String {
    args.identity
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("cupcake-{}", std::process::id()))
}

/// A secret from a file: trimmed, non-empty. The error names the flag and the file,
/// never the content.
fn read_secret(path: &std::path::Path, flag: &str) -> anyhow::Result<String> {
    let s = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("{flag} {}: {e}", path.display()))?;
    let s = s.trim().to_string();
    if s.is_empty() {
        anyhow::bail!("{flag} {}: the file is empty", path.display());
    }
    Ok(s)
}

pub fn run(args: &RunArgs) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The GitHub client needs a runtime to exist when it is built.
    let _in_runtime = rt.enter();
    let gitops = args.gitops.config(args.rollout_only)?;
    let secret = match &args.gitops.webhook_secret_file {
        Some(f) => Some(read_secret(f, "--webhook-secret-file")?.into_bytes()),
        None => None,
    };
    if gitops.is_some() {
        gitops::git::set_timeouts(Duration::from_secs(10), Duration::from_secs(30));
    }
    rt.block_on(main(args.clone(), gitops, secret))
}

async fn main(
    args: RunArgs,
    gitops: Option<gitops::Config>,
    secret: Option<Vec<u8>>,
) -> anyhow::Result<u8> {
    let config = observe::config(&args.kube).await?;
    let registry = prometheus::Registry::new();
    let metrics = rollout::Metrics::new(&registry)?;
    let leader =
        prometheus::IntGauge::new("cupcake_leader", "1 while this replica holds the Lease")?;
    registry.register(Box::new(leader.clone()))?;
    let loop_metrics = match &gitops {
        Some(_) => Some(gitops::Metrics::new(&registry)?),
        None => None,
    };
    let wake = Arc::new(tokio::sync::Notify::new());
    let webhook = match (&gitops, secret, &loop_metrics) {
        (Some(g), Some(secret), Some(m)) => Some(server::Webhook {
            secret: Arc::new(secret),
            branch: g.branch.clone(),
            notify: wake.clone(),
            requests: m.webhooks.clone(),
            seen: Default::default(),
        }),
        _ => None,
    };
    let ready = Arc::new(AtomicBool::new(false));
    let server = tokio::spawn(server::serve(
        args.listen,
        ServerState {
            registry: registry.clone(),
            ready: ready.clone(),
            webhook,
        },
    ));
    let id = identity(&args);
    let ns = lease_namespace(&args);
    let ctx = rollout::Context::new(config.clone(), &id, metrics)?;
    let server_url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)?;
    let loop_client = client.clone();
    let observer = observe::Observer::new(client.clone(), server_url.clone());
    let schedules = (!args.rollout_only).then(|| crate::schedules::Context {
        client: client.clone(),
        observer: observer.clone(),
        namespace: ns.clone(),
        policies: Arc::default(),
    });
    let lease = LeaderElection::new(client, &ns, "cupcake", &id)
        .with_lease_duration(args.lease_duration)
        .with_renew_deadline(args.lease_duration * 2 / 3)
        .with_retry_period((args.lease_duration / 7).max(Duration::from_millis(500)));
    info!(identity = %id, namespace = %ns, "waiting for the lease cupcake");
    ready.store(true, Ordering::Relaxed);
    let work = async {
        leader.set(1);
        let schedules = async {
            if let Some(s) = schedules {
                crate::schedules::run(s).await;
            }
        };
        match (gitops, loop_metrics) {
            (Some(cfg), Some(m)) => {
                let commit_status = cfg.github.clone().map(|gh| {
                    let context = format!("cupcake/{}", cfg.cluster);
                    let sink: gitops::CommitStatusFn = Arc::new(move |sha, state, desc| {
                        let gh = gh.clone();
                        let context = context.clone();
                        Box::pin(
                            async move { gh.set_commit_status(&sha, &context, state, &desc).await },
                        )
                    });
                    sink
                });
                info!(identity = %id, repo = %crate::source::redact_url(&cfg.repo), branch = %cfg.branch, cluster = %cfg.cluster, "leading: starting the rollout controller, the schedule controllers and the GitOps loop");
                tokio::join!(
                    rollout::run(ctx, observer.clone()),
                    schedules,
                    gitops::run(cfg, loop_client, observer.clone(), wake, m, commit_status)
                );
            }
            _ => {
                info!(identity = %id, rollout_only = args.rollout_only, "leading: starting the rollout controller (and the schedule controllers unless --rollout-only)");
                tokio::join!(rollout::run(ctx, observer.clone()), schedules);
            }
        }
    };
    let outcome = tokio::select! {
        r = lease.with_lease(work) => match r {
            Some(()) => Ok(0),
            None => {
                leader.set(0);
                error!("lost the lease: exiting so that no write outlives it");
                Ok(1)
            }
        },
        _ = shutdown() => {
            info!("shutting down: releasing the lease");
            leader.set(0);
            lease.release().await;
            Ok(0)
        }
        r = server => {
            r.context("metrics server task")?.context("metrics server")?;
            Ok(1)
        }
    };
    outcome
}

async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return futures::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
