//! `cupcake status REPO`: every cluster at a glance, from the status files the
//! GitOps loop commits to the status branch.
//!
//! The age of a cluster's last report is the age of the newest status-branch commit
//! that changed its file. The reconciler commits only when the status changes, so a
//! steady, healthy cluster's report grows old: it says how long the status has been
//! what it is, not whether the reconciler is alive (its metrics and Lease say that).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Args;
use cupcake_api::status_file::StatusFile;
use serde::Serialize;

use crate::gitops::git::{Auth, Mirror};

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The fleet repository: a URL (https://, ssh://, git://, file://) or a local path
    /// (a working copy or a bare repository).
    pub repo: String,
    /// The branch the status files are committed to.
    #[arg(long, default_value = "cupcake/status")]
    pub status_branch: String,
    /// File with the token for https remotes.
    #[arg(long)]
    pub git_token_file: Option<PathBuf>,
    /// Output: text (a table) or json (the status files).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = StatusFormat::Text)]
    pub output: StatusFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
}

/// The status-branch commit that last changed a cluster's status file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastReport {
    /// The commit's id.
    pub commit: String,
    /// Its committer time.
    pub time: DateTime<Utc>,
}

/// One cluster: its status file and when it last changed.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    #[serde(flatten)]
    pub file: StatusFile,
    /// Absent only when the history walk stopped before finding the change
    /// (more than [`MAX_WALK`] commits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_report: Option<LastReport>,
}

/// JSON output: each cluster with the age of its last report at `now`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterStatusJson<'a> {
    #[serde(flatten)]
    status: &'a ClusterStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_report_age_seconds: Option<i64>,
}

/// How many status-branch commits are read to find each file's last change.
pub const MAX_WALK: usize = 20_000;

/// For each `status/<file>`: the newest commit (first-parent history from `tip`)
/// whose tree has a different blob there than its parent's.
fn last_changes(
    git_dir: &Path,
    tip: git2::Oid,
    files: &[String],
) -> anyhow::Result<BTreeMap<String, LastReport>> {
    let repo = git2::Repository::open_bare(git_dir)
        .map_err(|e| anyhow::anyhow!("{}: {}", git_dir.display(), e.message()))?;
    let blob = |c: &git2::Commit<'_>, f: &str| -> Option<git2::Oid> {
        c.tree()
            .ok()?
            .get_path(Path::new(&format!("status/{f}")))
            .ok()
            .map(|e| e.id())
    };
    let mut found = BTreeMap::new();
    let mut commit = repo
        .find_commit(tip)
        .map_err(|e| anyhow::anyhow!("status branch tip {tip}: {}", e.message()))?;
    for _ in 0..MAX_WALK {
        let parent = commit.parent(0).ok();
        for f in files {
            if found.contains_key(f) {
                continue;
            }
            let here = blob(&commit, f);
            let before = parent.as_ref().and_then(|p| blob(p, f));
            if here.is_some() && here != before {
                let t = commit.committer().when();
                found.insert(
                    f.clone(),
                    LastReport {
                        commit: commit.id().to_string(),
                        time: DateTime::from_timestamp(t.seconds(), 0).unwrap_or_default(),
                    },
                );
            }
        }
        match parent {
            Some(p) if found.len() < files.len() => commit = p,
            _ => break,
        }
    }
    Ok(found)
}

/// Read every `status/*.yaml` of the status branch, each with its last report. A
/// file that does not parse is an error naming it (a status no one can read is not
/// a status).
pub fn read(args: &StatusArgs) -> anyhow::Result<Vec<ClusterStatus>> {
    let auth = match &args.git_token_file {
        Some(f) => Auth::Token(
            std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("--git-token-file {}: {e}", f.display()))?
                .trim()
                .to_string(),
        ),
        None => Auth::None,
    };
    let cache = tempfile_dir()?;
    let mirror = Mirror::open(&cache, &args.repo, auth, Duration::from_secs(30))?;
    let tip = mirror
        .fetch(&args.status_branch)
        .map_err(|e| anyhow::anyhow!("{e} (is `cupcake run --repo` following this repository?)"))?;
    let tree = mirror.tree(tip, "status");
    let names: Vec<String> = tree
        .as_ref()
        .map(|t| {
            t.files
                .keys()
                .filter(|rel| rel.ends_with(".yaml") && !rel.contains('/'))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let changes = last_changes(&cache, tip, &names);
    let _ = std::fs::remove_dir_all(&cache);
    let (tree, mut changes) = (tree?, changes?);
    let mut out = Vec::new();
    for rel in &names {
        let bytes = &tree.files[rel];
        let text = std::str::from_utf8(bytes)
            .map_err(|e| anyhow::anyhow!("status/{rel} on {}: {e}", args.status_branch))?;
        let f: StatusFile = yaml_serde::from_str(text)
            .map_err(|e| anyhow::anyhow!("status/{rel} on {}: {e}", args.status_branch))?;
        out.push(ClusterStatus {
            file: f,
            last_report: changes.remove(rel),
        });
    }
    Ok(out)
}

/// `3d4h`, `2h5m`, `7m`, `12s`: kubectl's AGE style (two units at most).
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (d, h, _) if d > 0 && h > 0 => format!("{d}d{h}h"),
        (d, _, _) if d > 0 => format!("{d}d"),
        (0, h, m) if h > 0 && m > 0 => format!("{h}h{m}m"),
        (0, h, _) if h > 0 => format!("{h}h"),
        (0, 0, m) if m > 0 => format!("{m}m"),
        _ => format!("{s}s"),
    }
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("cupcake-status-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// One line per cluster; `REPORTED` is the age at `now` of its last report.
pub fn table(statuses: &[ClusterStatus], now: DateTime<Utc>) -> String {
    let mut rows = vec![[
        "CLUSTER".to_string(),
        "DESIRED".into(),
        "CONTROL PLANE".into(),
        "VERDICT".into(),
        "DIRECTUPDATE".into(),
        "PHASE".into(),
        "PROGRESS".into(),
        "REVISION".into(),
        "REPORTED".into(),
        "ERROR".into(),
    ]];
    for st in statuses {
        let f = &st.file;
        let du = f.direct_update.as_ref();
        rows.push([
            f.cluster.clone(),
            f.desired
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            f.observed
                .as_ref()
                .and_then(|o| o.control_plane.as_ref())
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            f.decision
                .as_ref()
                .map(|d| format!("{:?}", d.verdict).to_lowercase())
                .unwrap_or_else(|| "-".into()),
            du.map(|d| d.name.clone()).unwrap_or_else(|| "-".into()),
            du.and_then(|d| d.phase)
                .map(|p| format!("{p:?}"))
                .unwrap_or_else(|| "-".into()),
            du.and_then(|d| d.progress.clone())
                .unwrap_or_else(|| "-".into()),
            f.revision
                .as_deref()
                .map(|r| r.chars().take(7).collect())
                .unwrap_or_else(|| "-".into()),
            st.last_report
                .as_ref()
                .map(|l| format!("{} ago", age((now - l.time).num_seconds())))
                .unwrap_or_else(|| format!("> {MAX_WALK} commits ago")),
            f.error
                .as_deref()
                .or(du.and_then(|d| d.message.as_deref()))
                .map(|e| e.lines().next().unwrap_or("").to_string())
                .unwrap_or_default(),
        ]);
    }
    let widths: Vec<usize> = (0..10)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The JSON output: the status files with `lastReport` and `lastReportAgeSeconds` added.
pub fn json(statuses: &[ClusterStatus], now: DateTime<Utc>) -> anyhow::Result<String> {
    let rows: Vec<ClusterStatusJson<'_>> = statuses
        .iter()
        .map(|s| ClusterStatusJson {
            status: s,
            last_report_age_seconds: s
                .last_report
                .as_ref()
                .map(|l| (now - l.time).num_seconds().max(0)),
        })
        .collect();
    Ok(serde_json::to_string_pretty(&rows)?)
}

pub fn run(args: &StatusArgs) -> anyhow::Result<u8> {
    let statuses = read(args)?;
    let now = Utc::now();
    match args.output {
        StatusFormat::Json => println!("{}", json(&statuses, now)?),
        StatusFormat::Text => print!("{}", table(&statuses, now)),
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        for (secs, want) in [
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (3599, "59m"),
            (3600, "1h"),
            (3720, "1h2m"),
            (86_400, "1d"),
            (90_000, "1d1h"),
            (-5, "0s"),
        ] {
            assert_eq!(age(secs), want, "{secs}s");
        }
    }
}
