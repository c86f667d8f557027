//! `cupcake plan`: source → load → observe (snapshot or live) → `cupcake_core::pass`.

use std::path::PathBuf;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Args;
use cupcake_api::plan::Verdict;
use cupcake_core::pass::PassOutcome;

use super::Format;
use crate::observe::{self, KubeArgs};
use crate::present::{self, PlanReport};
use crate::report::github::{self, GitHub, GitHubAuth, Outcome};
use crate::snapshot;
use crate::source::{self, FleetTree};

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Fleet repository (a folder with clusters/<name>/cluster.yaml).
    pub fleet: PathBuf,
    /// Cluster to plan (folder name under clusters/).
    #[arg(long)]
    pub cluster: String,
    /// Observed cluster state: the output of `kubectl get nodes,pods,pdb -A -o yaml` (or -o json).
    /// Default: clusters/NAME/snapshot.yaml (or snapshot.json) of the fleet.
    #[arg(long, conflicts_with = "live")]
    pub snapshot: Option<PathBuf>,
    /// Plan against the live cluster instead of a snapshot file (kubeconfig as kubectl finds it:
    /// --kubeconfig, else $KUBECONFIG, else ~/.kube/config, else in-cluster; --context to pick one).
    /// Passing --kubeconfig or --context implies --live.
    #[arg(long)]
    pub live: bool,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Evaluate as of this time (RFC 3339, e.g. 2026-11-28T02:30:00Z); default now.
    #[arg(long, value_parser = super::parse_time)]
    pub now: Option<DateTime<Utc>>,
    /// Output format. `yaml` prints the DirectUpdate only when the verdict is allow.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Print the policy input document (JSON) instead of the plan, for
    /// `cupcake policy eval --input FILE --explain`.
    #[arg(long, conflicts_with = "output")]
    pub show_input: bool,
    /// Also post the markdown plan as a comment on pull request --pr of --github-repo, or
    /// update the one posted before (one comment per cluster, found by a hidden marker).
    /// Authentication: --github-token-file, else $GITHUB_TOKEN, or a GitHub App
    /// (--github-app-id, --github-app-key-file, --github-installation-id). The exit code
    /// stays the plan's; a GitHub error exits 1 (after the plan is printed).
    #[arg(long, requires_all = ["github_repo", "pr"], conflicts_with = "show_input")]
    pub github_comment: bool,
    /// GitHub repository OWNER/NAME of the pull request.
    #[arg(long, requires = "github_comment", value_name = "OWNER/NAME")]
    pub github_repo: Option<String>,
    /// Pull request number.
    #[arg(long, requires = "github_comment", value_name = "N")]
    pub pr: Option<u64>,
    /// File with the GitHub token (else $GITHUB_TOKEN).
    #[arg(long, requires = "github_comment", value_name = "FILE")]
    pub github_token_file: Option<PathBuf>,
    /// GitHub App id, to authenticate as the App's installation instead of with a token.
    #[arg(
        long,
        requires_all = ["github_comment", "github_app_key_file", "github_installation_id"],
        conflicts_with = "github_token_file",
        value_name = "ID"
    )]
    pub github_app_id: Option<u64>,
    /// The GitHub App's private key (PEM file).
    #[arg(long, requires = "github_app_id", value_name = "FILE")]
    pub github_app_key_file: Option<PathBuf>,
    /// The id of the GitHub App's installation on the repository's owner.
    #[arg(long, requires = "github_app_id", value_name = "ID")]
    pub github_installation_id: Option<u64>,
    /// GitHub API URL (GitHub Enterprise: https://HOST/api/v3).
    #[arg(long, requires = "github_comment", default_value = crate::report::github::DEFAULT_API, value_name = "URL")]
    pub github_api: String,
}

impl PlanArgs {
    fn is_live(&self) -> bool {
        self.live || self.kube.kubeconfig.is_some() || self.kube.context.is_some()
    }
}

/// Everything a plan command computed: the pass and the report it prints.
#[derive(Debug)]
pub struct Planned {
    pub pass: PassOutcome,
    pub report: PlanReport,
    /// The time the pass was evaluated at (`--now` or the clock).
    pub now: DateTime<Utc>,
}

fn observed(
    args: &PlanArgs,
    tree: &FleetTree,
) -> anyhow::Result<cupcake_api::snapshot::ClusterSnapshot> {
    if args.is_live() {
        // Page by page into the snapshot's own rows: the same snapshot as
        // `cupcake snapshot`'s file would make, without building whole objects.
        let snap = super::block_on(async {
            let (client, server) = observe::connect(&args.kube).await?;
            observe::snapshot(&client, &server).await
        })??;
        return Ok(snap);
    }
    if let Some(p) = &args.snapshot {
        return Ok(snapshot::read_file(p)?);
    }
    let yaml = format!("clusters/{}/snapshot.yaml", args.cluster);
    let json = format!("clusters/{}/snapshot.json", args.cluster);
    let rel = if !tree.contains(&yaml) && tree.contains(&json) {
        json
    } else {
        yaml
    };
    match tree
        .text(&rel)
        .with_context(|| tree.display(&rel).display().to_string())?
    {
        Some(text) => Ok(snapshot::parse(
            text,
            &tree.display(&rel).display().to_string(),
        )?),
        None => anyhow::bail!(
            "no snapshot at {}: pass --snapshot FILE (the output of `kubectl get nodes,pods,pdb -A -o yaml`) or --live",
            tree.display(&rel).display()
        ),
    }
}

/// Run one pass for `cupcake plan` without printing anything.
pub fn plan_report(args: &PlanArgs) -> anyhow::Result<Planned> {
    let tree = source::dir(&args.fleet)?;
    let loaded = crate::pipeline::load(&tree, &args.cluster)?;
    let snapshot = observed(args, &tree)?;
    let now = args.now.unwrap_or_else(Utc::now);
    let crate::pipeline::Evaluated { pass, report } =
        crate::pipeline::evaluate(&tree, &loaded, &snapshot, now)?;
    Ok(Planned { pass, report, now })
}

/// Where the plan comment goes, checked before anything is planned.
struct CommentTarget {
    repo: String,
    pr: u64,
    auth: GitHubAuth,
}

/// `--github-comment`'s flags, or a usage error naming the one that is missing.
fn comment_target(args: &PlanArgs) -> anyhow::Result<Option<CommentTarget>> {
    if !args.github_comment {
        return Ok(None);
    }
    let Some(repo) = args.github_repo.clone() else {
        anyhow::bail!("--github-comment needs --github-repo OWNER/NAME");
    };
    github::parse_repo(&repo).map_err(anyhow::Error::msg)?;
    let Some(pr) = args.pr else {
        anyhow::bail!("--github-comment needs --pr N");
    };
    let secret = |f: &std::path::Path, flag: &str| {
        github::read_secret_file(f, flag).map_err(anyhow::Error::msg)
    };
    let auth = match (
        &args.github_token_file,
        args.github_app_id,
        &args.github_app_key_file,
        args.github_installation_id,
    ) {
        (Some(f), None, None, None) => GitHubAuth::Token(secret(f, "--github-token-file")?),
        (None, Some(app_id), Some(key), Some(installation_id)) => GitHubAuth::App {
            app_id,
            key_pem: secret(key, "--github-app-key-file")?,
            installation_id,
        },
        (None, None, None, None) => match std::env::var("GITHUB_TOKEN") {
            Ok(t) if !t.trim().is_empty() => GitHubAuth::Token(t.trim().to_string()),
            Ok(_) => anyhow::bail!(
                "--github-comment: $GITHUB_TOKEN is empty (give --github-token-file FILE or a GitHub App)"
            ),
            Err(_) => anyhow::bail!(
                "--github-comment needs a token: --github-token-file FILE or $GITHUB_TOKEN \
                 (or --github-app-id, --github-app-key-file and --github-installation-id)"
            ),
        },
        (Some(_), ..) => {
            anyhow::bail!(
                "--github-token-file and --github-app-*: give a token or a GitHub App, not both"
            )
        }
        _ => anyhow::bail!(
            "a GitHub App needs all of --github-app-id, --github-app-key-file and --github-installation-id"
        ),
    };
    Ok(Some(CommentTarget { repo, pr, auth }))
}

/// Post (or update) the plan comment; says what it did on stderr.
fn github_comment(
    args: &PlanArgs,
    target: CommentTarget,
    report: &PlanReport,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let CommentTarget { repo, pr, auth } = target;
    let markdown = present::markdown(report, now);
    let outcome = super::block_on(async {
        let gh = GitHub::connect(&args.github_api, &repo, auth, Default::default())
            .map_err(anyhow::Error::msg)?;
        gh.upsert_plan_comment(pr, &args.cluster, &markdown)
            .await
            .map_err(anyhow::Error::msg)
    })??;
    let cluster = &args.cluster;
    match outcome {
        Outcome::Created(id) => {
            eprintln!("posted the plan for {cluster} on {repo}#{pr} (comment {id})")
        }
        Outcome::Updated(id) => {
            eprintln!("updated the plan for {cluster} on {repo}#{pr} (comment {id})")
        }
        Outcome::Unchanged(id) => {
            eprintln!("the plan for {cluster} on {repo}#{pr} is unchanged (comment {id})")
        }
        Outcome::AlreadyDecided { .. } => {}
    }
    Ok(())
}

pub fn run(args: &PlanArgs) -> anyhow::Result<u8> {
    let _span = tracing::info_span!("plan", cluster = %args.cluster).entered();
    let comment = comment_target(args)?;
    let Planned { report, pass, now } = plan_report(args)?;
    if args.show_input {
        println!(
            "{}",
            serde_json::to_string_pretty(&pass.input).context("encoding the policy input")?
        );
        return Ok(report.exit_code());
    }
    tracing::debug!(verdict = ?report.decision.verdict, "pass done");
    let out = match args.output {
        Format::Text => present::text(&report),
        Format::Markdown => present::markdown(&report, now),
        Format::Json => {
            serde_json::to_string_pretty(&report).context("encoding the report")? + "\n"
        }
        Format::Yaml => match (&report.direct_update, report.decision.verdict) {
            (Some(du), Verdict::Allow) => {
                yaml_serde::to_string(du).context("encoding the DirectUpdate")?
            }
            _ => {
                eprintln!("no DirectUpdate: {}", no_update_reason(&report));
                String::new()
            }
        },
    };
    print!("{out}");
    // After the plan is printed: a CI log shows it even when GitHub fails.
    if let Some(target) = comment {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        github_comment(args, target, &report, now)?;
    }
    Ok(report.exit_code())
}

/// Why `-o yaml` printed nothing (on stderr, so a pipe into kubectl applies nothing).
fn no_update_reason(report: &PlanReport) -> String {
    if report.up_to_date {
        return "the cluster is up to date".to_string();
    }
    let first = report
        .decision
        .findings
        .iter()
        .find(|f| match report.decision.verdict {
            Verdict::Deny => f.severity == cupcake_api::plan::Severity::Deny && !f.forced,
            _ => f.severity == cupcake_api::plan::Severity::Defer,
        })
        .map(|f| format!(" ({}: {})", f.rule, f.message))
        .unwrap_or_default();
    match report.decision.verdict {
        Verdict::Deny => format!("the plan is denied{first}"),
        Verdict::Defer => match report.decision.defer_until {
            Some(t) => format!(
                "the plan is deferred until {}{first}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => format!("the plan is deferred{first}"),
        },
        Verdict::Allow => "nothing to apply".to_string(),
    }
}
