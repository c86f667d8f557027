//! `cupcake status REPO`: every cluster at a glance, from the status files the
//! GitOps loop commits to the status branch.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use cupcake_api::status_file::StatusFile;

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

/// Read every `status/*.yaml` of the status branch. A file that does not parse is an
/// error naming it (a status no one can read is not a status).
pub fn read(args: &StatusArgs) -> anyhow::Result<Vec<StatusFile>> {
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
    let tree = mirror.tree(tip, "status")?;
    let _ = std::fs::remove_dir_all(&cache);
    let mut out = Vec::new();
    for (rel, bytes) in &tree.files {
        if !rel.ends_with(".yaml") || rel.contains('/') {
            continue;
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| anyhow::anyhow!("status/{rel} on {}: {e}", args.status_branch))?;
        let f: StatusFile = yaml_serde::from_str(text)
            .map_err(|e| anyhow::anyhow!("status/{rel} on {}: {e}", args.status_branch))?;
        out.push(f);
    }
    Ok(out)
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("cupcake-status-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// One line per cluster.
pub fn table(files: &[StatusFile]) -> String {
    let mut rows = vec![[
        "CLUSTER".to_string(),
        "DESIRED".into(),
        "CONTROL PLANE".into(),
        "VERDICT".into(),
        "DIRECTUPDATE".into(),
        "PHASE".into(),
        "PROGRESS".into(),
        "REVISION".into(),
        "ERROR".into(),
    ]];
    for f in files {
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
            f.error
                .as_deref()
                .or(du.and_then(|d| d.message.as_deref()))
                .map(|e| e.lines().next().unwrap_or("").to_string())
                .unwrap_or_default(),
        ]);
    }
    let widths: Vec<usize> = (0..9)
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

pub fn run(args: &StatusArgs) -> anyhow::Result<u8> {
    let files = read(args)?;
    match args.output {
        StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&files)?),
        StatusFormat::Text => print!("{}", table(&files)),
    }
    Ok(0)
}
