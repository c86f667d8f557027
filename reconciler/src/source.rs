//! The source seam: where a fleet comes from. Every source yields one value, a
//! [`FleetTree`]: the fleet's files (relative to the fleet root) and their
//! provenance. [`load`](crate::load) and the policy environment read the tree,
//! never the disk, so the GitOps loop can feed a Git commit the same way
//! `cupcake plan` feeds a directory.
//!
//! [`dir`] reads a directory; its revision and repository come from the enclosing
//! Git repository through `git2` (no `git` subprocess). Repository URLs never
//! carry credentials past this module ([`redact_url`]), and a working tree with
//! uncommitted changes under the fleet is marked `dirty` instead of being stamped
//! with HEAD as if it were that commit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cupcake_api::crd::SourceRef;

/// Largest file a fleet may hold (a 5,000-node snapshot is about 21 MB).
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// A fleet's files and where they came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetTree {
    /// The repository's remote URL (credentials removed), when known.
    pub repository: Option<String>,
    /// The commit the files are from, when known.
    pub revision: Option<String>,
    /// The fleet root inside the repository (`""` for the repository root).
    pub path: String,
    /// The files differ from `revision` (uncommitted changes in a working tree).
    pub dirty: bool,
    /// File contents by path relative to the fleet root, `/`-separated.
    pub files: BTreeMap<String, Vec<u8>>,
    /// How the fleet root is shown in messages (the directory given, or `repo@rev`).
    pub origin: PathBuf,
}

/// A source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        /// Shown in the message, not chained: `{:#}` would repeat it.
        error: std::io::Error,
    },
    #[error("fleet directory {} does not exist", .0.display())]
    Missing(PathBuf),
    #[error("{}: not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("{}: {size} bytes is larger than the {max} bytes a fleet file may have", path.display(), max = MAX_FILE_BYTES)]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{}: reading the enclosing Git repository: {message}", path.display())]
    Git { path: PathBuf, message: String },
}

/// A file's bytes as text, without a UTF-8 byte-order mark (editors on Windows write
/// one); otherwise where the first byte that is not UTF-8 is, by line and column.
pub fn utf8_text(b: &[u8]) -> Result<&str, String> {
    let b = b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b);
    std::str::from_utf8(b).map_err(|e| {
        let good = std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or_default();
        let (line, col) = cupcake_core::yamlpos::line_col_of_byte(good, good.len());
        format!(
            "not UTF-8 text: invalid byte 0x{:02X} at line {line} column {col} (byte {}); save the file as UTF-8",
            b[e.valid_up_to()],
            e.valid_up_to()
        )
    })
}

impl FleetTree {
    /// A file's text; `None` when the tree has no such file. Non-UTF-8 content is an error
    /// naming the file.
    pub fn text(&self, rel: &str) -> Result<Option<&str>, std::io::Error> {
        match self.files.get(rel) {
            None => Ok(None),
            // A byte-order mark (editors on Windows write one) is not part of the text.
            Some(b) => utf8_text(b)
                .map(Some)
                .map_err(|m| std::io::Error::new(std::io::ErrorKind::InvalidData, m)),
        }
    }

    /// Whether the tree has this file.
    pub fn contains(&self, rel: &str) -> bool {
        self.files.contains_key(rel)
    }

    /// Files directly or indirectly under `dir/` (relative paths).
    pub fn under<'a>(&'a self, dir: &str) -> impl Iterator<Item = &'a str> + 'a {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        self.files
            .range(prefix.clone()..)
            .map(|(k, _)| k.as_str())
            .take_while(move |k| k.starts_with(&prefix))
    }

    /// How a file is named in messages: the origin joined with its relative path.
    pub fn display(&self, rel: &str) -> PathBuf {
        self.origin.join(rel)
    }

    /// The file's path inside the repository.
    pub fn repo_path(&self, rel: &str) -> String {
        if self.path.is_empty() || self.path == "." {
            rel.to_string()
        } else {
            format!("{}/{rel}", self.path.trim_end_matches('/'))
        }
    }

    /// Provenance of one file of the tree (what a rendered DirectUpdate records).
    pub fn source_ref(&self, rel: &str) -> SourceRef {
        SourceRef {
            repository: self.repository.clone(),
            revision: self.revision.clone(),
            path: Some(self.repo_path(rel)),
            dirty: self.dirty,
        }
    }
}

/// Remove user info (user names, passwords, tokens) from a URL. scp-like SSH
/// addresses (`git@host:org/repo`) carry only a user name and are kept as they are.
///
/// ```
/// use cupcake_reconciler::source::redact_url;
/// assert_eq!(redact_url("https://x-access-token:ghp_abc@github.com/o/r.git"), "https://github.com/o/r.git");
/// assert_eq!(redact_url("git@github.com:o/r.git"), "git@github.com:o/r.git");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => format!(
            "{}{}{}",
            &url[..scheme_end + 3],
            &authority[at + 1..],
            &rest[authority_end..]
        ),
        None => url.to_string(),
    }
}

/// Read the fleet at `root` (every file, `.git` excluded) and its Git provenance.
pub fn dir(root: &Path) -> Result<FleetTree, SourceError> {
    if !root.exists() {
        return Err(SourceError::Missing(root.to_path_buf()));
    }
    if !root.is_dir() {
        return Err(SourceError::NotADirectory(root.to_path_buf()));
    }
    let mut files = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let io = |error| SourceError::Io {
            path: d.clone(),
            error,
        };
        for e in std::fs::read_dir(&d).map_err(io)? {
            let e = e.map_err(io)?;
            let p = e.path();
            if e.file_name() == ".git" {
                continue;
            }
            let meta = std::fs::metadata(&p).map_err(|error| SourceError::Io {
                path: p.clone(),
                error,
            })?;
            if meta.is_dir() {
                stack.push(p);
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            if meta.len() > MAX_FILE_BYTES {
                return Err(SourceError::TooLarge {
                    path: p,
                    size: meta.len(),
                });
            }
            let bytes = std::fs::read(&p).map_err(|error| SourceError::Io {
                path: p.clone(),
                error,
            })?;
            let rel = p
                .strip_prefix(root)
                .unwrap_or(&p)
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            files.insert(rel, bytes);
        }
    }
    let mut tree = FleetTree {
        files,
        origin: root.to_path_buf(),
        ..FleetTree::default()
    };
    git_provenance(root, &mut tree)?;
    Ok(tree)
}

/// Fill revision, repository, path and dirty from the Git repository enclosing `root`;
/// leaves them empty outside a repository.
fn git_provenance(root: &Path, tree: &mut FleetTree) -> Result<(), SourceError> {
    let git_err = |e: git2::Error| SourceError::Git {
        path: root.to_path_buf(),
        message: e.message().to_string(),
    };
    let repo = match git2::Repository::discover(root) {
        Ok(r) => r,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(()),
        Err(e) => return Err(git_err(e)),
    };
    let Some(workdir) = repo.workdir() else {
        return Ok(());
    };
    let abs_root = root.canonicalize().map_err(|error| SourceError::Io {
        path: root.to_path_buf(),
        error,
    })?;
    let abs_work = workdir.canonicalize().map_err(|error| SourceError::Io {
        path: workdir.to_path_buf(),
        error,
    })?;
    let prefix = abs_root
        .strip_prefix(&abs_work)
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_default();
    tree.path = prefix.clone();
    // An unborn branch (no commit yet) has no revision; everything is uncommitted.
    let head = match repo.head() {
        Ok(h) => h.peel_to_commit().ok().map(|c| c.id().to_string()),
        Err(e) if e.code() == git2::ErrorCode::UnbornBranch => None,
        Err(e) => return Err(git_err(e)),
    };
    tree.revision = head;
    tree.repository = repo
        .find_remote("origin")
        .ok()
        .and_then(|r| r.url().ok().map(redact_url));
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false);
    if !prefix.is_empty() {
        opts.pathspec(format!("{prefix}/"));
    }
    let statuses = repo.statuses(Some(&mut opts)).map_err(git_err)?;
    tree.dirty = tree.revision.is_none() || !statuses.is_empty();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_every_form_of_user_info() {
        for (url, want) in [
            (
                "https://x-access-token:ghp_secret@github.com/o/r.git",
                "https://github.com/o/r.git",
            ),
            ("https://token@github.com/o/r", "https://github.com/o/r"),
            ("http://u:p@h:8080/r?x=1", "http://h:8080/r?x=1"),
            ("ssh://git@github.com/o/r.git", "ssh://github.com/o/r.git"),
            ("https://github.com/o/r.git", "https://github.com/o/r.git"),
            ("git@github.com:o/r.git", "git@github.com:o/r.git"),
            ("/srv/git/fleet.git", "/srv/git/fleet.git"),
            ("https://h/path@with-at", "https://h/path@with-at"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn under_lists_only_that_folder() {
        let tree = FleetTree {
            files: BTreeMap::from([
                ("clusters/a/cluster.yaml".to_string(), vec![]),
                ("clusters/a/x/y.yaml".to_string(), vec![]),
                ("clusters/ab/cluster.yaml".to_string(), vec![]),
                ("versions.yaml".to_string(), vec![]),
            ]),
            ..FleetTree::default()
        };
        let got: Vec<&str> = tree.under("clusters/a").collect();
        assert_eq!(got, ["clusters/a/cluster.yaml", "clusters/a/x/y.yaml"]);
    }
}
