//! `cupcake plan`: load → observe (snapshot) → plan → gate → render.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Args;
use cupcake_api::plan::Verdict;

use super::Format;
use crate::present::{self, PlanReport};
use crate::render::{self, Provenance};
use crate::{gate, load, observe, plan, schedule, snapshot};

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// Fleet repository (a folder with clusters/<name>/cluster.yaml).
    pub fleet: PathBuf,
    /// Cluster to plan (folder name under clusters/).
    #[arg(long)]
    pub cluster: String,
    /// Observed cluster state: the output of `kubectl get nodes,pods,pdb -A -o yaml` (or -o json).
    /// Default: clusters/NAME/snapshot.yaml.
    #[arg(long, conflicts_with = "kubeconfig")]
    pub snapshot: Option<PathBuf>,
    /// Plan against the live cluster of this kubeconfig instead of a snapshot file.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Evaluate as of this time (RFC 3339); default now.
    #[arg(long)]
    pub now: Option<DateTime<Utc>>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

/// Git revision and repo-relative path of `file`, when the fleet is a git checkout.
fn git_provenance(fleet: &Path, rel: &Path) -> Provenance {
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(fleet)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let Some(revision) = git(&["rev-parse", "HEAD"]) else {
        return Provenance {
            path: Some(rel.display().to_string()),
            ..Provenance::default()
        };
    };
    let prefix = git(&["rev-parse", "--show-prefix"]).unwrap_or_default();
    Provenance {
        repository: git(&["config", "--get", "remote.origin.url"]),
        revision: Some(revision),
        path: Some(format!("{prefix}{}", rel.display())),
    }
}

/// Compute the report for `cupcake plan` without printing it.
pub fn plan_report(args: &PlanArgs) -> anyhow::Result<PlanReport> {
    let fleet = load::load_cluster(&args.fleet, &args.cluster)?;
    let def = &fleet.clusters[&args.cluster];
    let snapshot = match &args.kubeconfig {
        Some(kubeconfig) => {
            let json = super::block_on(async {
                let client = observe::client(Some(kubeconfig)).await?;
                observe::snapshot_json(&client).await
            })??;
            snapshot::parse(&json, &format!("live cluster ({})", kubeconfig.display()))?
        }
        None => {
            let snap_path = args.snapshot.clone().unwrap_or_else(|| {
                args.fleet
                    .join("clusters")
                    .join(&args.cluster)
                    .join("snapshot.yaml")
            });
            if !snap_path.is_file() {
                anyhow::bail!(
                    "no snapshot at {}: pass --snapshot FILE (the output of `kubectl get nodes,pods,pdb -A -o yaml`) or --kubeconfig",
                    snap_path.display()
                );
            }
            snapshot::read_file(&snap_path)?
        }
    };
    let spec = &def.version.spec;
    let outcome = plan::plan(plan::PlanInput {
        spec,
        catalog: fleet.catalog_spec(),
        snapshot: &snapshot,
    });
    let now = args.now.unwrap_or_else(Utc::now);
    let source = git_provenance(&args.fleet, &def.path);
    let sched_spec = def.schedule.as_ref().map(|s| &s.spec);
    let schedule = schedule::evaluate(sched_spec, now).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}",
            args.fleet
                .join("clusters")
                .join(&args.cluster)
                .join("schedule.yaml")
                .display()
        )
    })?;
    let env = gate::PolicyEnv::for_fleet(&args.fleet)?;
    let config = gate::read_config(&args.fleet)?;
    let input = gate::PolicyInput::build(gate::InputParts {
        cluster: &args.cluster,
        spec,
        snapshot: &snapshot,
        outcome: &outcome,
        schedule: &schedule,
        source: &gate::input::SourceInput {
            repository: source.repository.clone(),
            revision: source.revision.clone(),
            path: source.path.clone(),
        },
        now,
        config: &config,
    });
    let decision = gate::decide(&env, &input, &outcome.findings);
    let direct_update = (!outcome.up_to_date && decision.verdict != Verdict::Deny)
        .then(|| render::direct_update(&args.cluster, spec, &outcome, &source));
    Ok(PlanReport {
        cluster: args.cluster.clone(),
        revision: source.revision.clone(),
        target: outcome.target.clone(),
        up_to_date: outcome.up_to_date,
        current: outcome.current,
        plan: outcome.plan,
        decision,
        direct_update,
    })
}

pub fn run(args: &PlanArgs) -> anyhow::Result<u8> {
    let report = plan_report(args)?;
    let out = match args.output {
        Format::Text => present::text(&report),
        Format::Markdown => present::markdown(&report),
        Format::Json => {
            serde_json::to_string_pretty(&report).context("encoding the report")? + "\n"
        }
        Format::Yaml => match &report.direct_update {
            Some(du) => yaml_serde::to_string(du).context("encoding the DirectUpdate")?,
            None => {
                eprintln!(
                    "no DirectUpdate: {}",
                    if report.up_to_date {
                        "the cluster is up to date"
                    } else {
                        "the plan is denied"
                    }
                );
                String::new()
            }
        },
    };
    print!("{out}");
    Ok(report.exit_code())
}
