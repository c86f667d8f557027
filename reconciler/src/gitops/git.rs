//! The Git side of the loop, on libgit2 (`git2`): a bare mirror of the fleet
//! repository in a local directory, fetched with a deadline, read commit by
//! commit into a [`FleetTree`], and written to by commits built in memory (the
//! status branch, the auto-update branch) and pushed.
//!
//! Everything here blocks: callers run it in `spawn_blocking`. Every network
//! operation has a deadline: libgit2's transfer callbacks abort it when the
//! deadline passes, and the server timeouts set once at start ([`set_timeouts`])
//! end a connection that sends nothing at all.
//!
//! Credentials live only in [`Auth`] and the credential callback; URLs are shown
//! through [`redact_url`] everywhere, and error messages from libgit2 are passed
//! through it as well.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use git2::{Cred, CredentialType, FetchOptions, Oid, PushOptions, RemoteCallbacks, Repository};

use crate::source::{FleetTree, MAX_FILE_BYTES, redact_url};

/// The commit author and committer of everything CUPCAKE writes to Git.
pub const BOT_NAME: &str = "cupcake[bot]";
/// The bot's e-mail address.
pub const BOT_EMAIL: &str = "cupcake[bot]@users.noreply.github.com";

/// How the remote is authenticated.
#[derive(Clone, Default)]
pub enum Auth {
    /// No credentials (public remotes, file://, local paths).
    #[default]
    None,
    /// An HTTPS token (sent as the password of `x-access-token`, as GitHub expects).
    Token(String),
    /// An SSH private key file.
    SshKey(PathBuf),
}

/// The SSH host keys a remote may present (OpenSSH `known_hosts` format: plain
/// host patterns, `[host]:port` for other ports, `@revoked` honoured; hashed
/// entries (`|1|…`, from `ssh-keyscan -H`) are refused when loading, since they
/// cannot be matched without a SHA-1 HMAC we do not carry).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownHosts {
    entries: Vec<(Vec<String>, Vec<u8>, bool)>,
}

impl KnownHosts {
    /// Parse a known_hosts file's text; errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        use base64::Engine as _;
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let revoked = first == "@revoked";
            if first.starts_with('@') {
                if !revoked {
                    return Err(format!("line {}: marker {first} is not supported", i + 1));
                }
                first = fields.next().unwrap_or_default();
            }
            if first.starts_with('|') {
                return Err(format!(
                    "line {}: hashed host names are not supported; list the host in plain text (ssh-keyscan without -H)",
                    i + 1
                ));
            }
            let (Some(_kind), Some(key)) = (fields.next(), fields.next()) else {
                return Err(format!(
                    "line {}: expected `HOSTS KEYTYPE BASE64KEY`",
                    i + 1
                ));
            };
            let key = base64::engine::general_purpose::STANDARD
                .decode(key)
                .map_err(|e| format!("line {}: the key is not base64: {e}", i + 1))?;
            let hosts = first.split(',').map(|h| h.to_ascii_lowercase()).collect();
            entries.push((hosts, key, revoked));
        }
        if entries.is_empty() {
            return Err("no host keys".into());
        }
        Ok(Self { entries })
    }

    /// Whether `key` (the raw public key blob) is a known, unrevoked key of `host`
    /// (on `port`). `Err` says why not.
    pub fn check(&self, host: &str, port: Option<u16>, key: &[u8]) -> Result<(), String> {
        let host = host.to_ascii_lowercase();
        let names: Vec<String> = match port {
            Some(p) if p != 22 => vec![format!("[{host}]:{p}")],
            _ => vec![host.clone(), format!("[{host}]:22")],
        };
        let matches = |hosts: &Vec<String>| hosts.iter().any(|h| names.contains(h));
        if self
            .entries
            .iter()
            .any(|(h, k, revoked)| *revoked && matches(h) && k == key)
        {
            return Err(format!(
                "the host key of {} is revoked in the known_hosts file",
                names[0]
            ));
        }
        let mine: Vec<_> = self
            .entries
            .iter()
            .filter(|(h, _, r)| !r && matches(h))
            .collect();
        if mine.is_empty() {
            return Err(format!("{} is not in the known_hosts file", names[0]));
        }
        if mine.iter().any(|(_, k, _)| k == key) {
            Ok(())
        } else {
            Err(format!(
                "the host key of {} does not match the known_hosts file (a changed key, or someone in between)",
                names[0]
            ))
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
            Auth::SshKey(p) => write!(f, "SshKey({})", p.display()),
        }
    }
}

/// A Git operation failed. The message never carries credentials.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{op} {url}: {message}")]
    Remote {
        op: &'static str,
        url: String,
        message: String,
    },
    #[error("{op} {url}: no answer within {secs}s", secs = .after.as_secs())]
    Deadline {
        op: &'static str,
        url: String,
        after: Duration,
    },
    #[error("{op} {url}: branch {branch} does not exist on the remote")]
    NoBranch {
        op: &'static str,
        url: String,
        branch: String,
    },
    #[error("{op} {url}: the remote refused the update of {reference}: {reason}")]
    Rejected {
        op: &'static str,
        url: String,
        reference: String,
        reason: String,
    },
    #[error("local mirror {}: {message}", path.display())]
    Local { path: PathBuf, message: String },
    #[error("{what}: {message}")]
    Tree { what: String, message: String },
}

impl GitError {
    /// A push was refused because the remote branch moved (someone else pushed).
    pub fn is_conflict(&self) -> bool {
        match self {
            GitError::Rejected { reason, .. } => {
                let r = reason.to_ascii_lowercase();
                r.contains("fast-forward")
                    || r.contains("fast forward")
                    || r.contains("fetch first")
            }
            GitError::Remote { message, .. } => {
                let m = message.to_ascii_lowercase();
                m.contains("non-fastforward")
                    || m.contains("non-fast-forward")
                    || m.contains("fetch first")
                    || m.contains("not present locally")
            }
            _ => false,
        }
    }
}

/// Set libgit2's connect and read timeouts, once per process: a server that
/// accepts the connection and then sends nothing would otherwise hold a fetch
/// (and the blocking thread running it) for as long as the kernel keeps the socket.
#[allow(unsafe_code)]
pub fn set_timeouts(connect: Duration, read: Duration) {
    let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: libgit2 global options; called once at start, before any Git operation
    // runs on another thread (the documented requirement of git_libgit2_opts).
    unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms(connect));
        let _ = git2::opts::set_server_timeout_in_milliseconds(ms(read));
    }
}

/// What one network operation's callbacks learned: how often credentials were asked
/// for, and why a host key was refused (libgit2 replaces that reason with its own
/// generic message).
#[derive(Default)]
struct OpState {
    attempts: std::cell::Cell<u32>,
    host_key: std::cell::RefCell<Option<String>>,
}

/// A bare local mirror of one remote repository.
pub struct Mirror {
    repo: Repository,
    path: PathBuf,
    url: String,
    shown: String,
    auth: Auth,
    timeout: Duration,
    known_hosts: Option<KnownHosts>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("path", &self.path)
            .field("url", &self.shown)
            .field("auth", &self.auth)
            .finish()
    }
}

/// What a push of a generated commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// The branch already had exactly this content: no commit.
    Unchanged(Oid),
    /// A new commit is on the branch; `retries` non-fast-forward rejections were rebased.
    Committed { commit: Oid, retries: u32 },
}

/// A local path given as `--repo` becomes a `file://` URL libgit2 fetches from.
fn remote_url(repo: &str) -> String {
    if repo.contains("://") || looks_scp_like(repo) {
        return repo.to_string();
    }
    let p = Path::new(repo);
    let abs = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    format!("file://{}", abs.display())
}

/// `git@host:org/repo` (scp-like SSH).
fn looks_scp_like(s: &str) -> bool {
    match (s.find(':'), s.find('/')) {
        (Some(c), Some(sl)) => c < sl && !s.starts_with('/') && s[..c].contains('@'),
        (Some(_), None) => s.contains('@'),
        _ => false,
    }
}

impl Mirror {
    /// Open (or create) the mirror of `repo` in `dir`.
    pub fn open(dir: &Path, repo: &str, auth: Auth, timeout: Duration) -> Result<Self, GitError> {
        let local = |e: git2::Error| GitError::Local {
            path: dir.to_path_buf(),
            message: e.message().to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| GitError::Local {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let repo_handle = match Repository::open_bare(dir) {
            Ok(r) => r,
            Err(_) => Repository::init_bare(dir).map_err(local)?,
        };
        let url = remote_url(repo);
        Ok(Mirror {
            repo: repo_handle,
            path: dir.to_path_buf(),
            shown: redact_url(repo),
            url,
            auth,
            timeout,
            known_hosts: None,
        })
    }

    /// Check SSH host keys against these (instead of libgit2's default,
    /// `~/.ssh/known_hosts`).
    pub fn with_known_hosts(mut self, known: KnownHosts) -> Self {
        self.known_hosts = Some(known);
        self
    }

    /// The port of an `ssh://host:port/…` URL.
    fn ssh_port(&self) -> Option<u16> {
        let rest = self.url.split_once("://")?.1;
        let authority = rest.split('/').next()?;
        let hostport = authority.rsplit('@').next()?;
        hostport.rsplit_once(':')?.1.parse().ok()
    }

    /// The repository as shown in messages and provenance (credentials removed).
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    fn callbacks<'a>(&'a self, deadline: Instant, op: &'a OpState) -> RemoteCallbacks<'a> {
        let attempts = &op.attempts;
        let mut cb = RemoteCallbacks::new();
        let auth = self.auth.clone();
        cb.credentials(move |_url, username, allowed| {
            // libgit2 asks again after a refused credential: give up instead of looping.
            let n = attempts.get() + 1;
            attempts.set(n);
            if n > 3 {
                return Err(git2::Error::from_str("authentication failed (credentials refused)"));
            }
            match &auth {
                Auth::Token(t) if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
                    Cred::userpass_plaintext("x-access-token", t)
                }
                Auth::SshKey(key) if allowed.contains(CredentialType::SSH_KEY) => {
                    Cred::ssh_key(username.unwrap_or("git"), None, key, None)
                }
                _ if allowed.contains(CredentialType::USERNAME) => {
                    Cred::username(username.unwrap_or("git"))
                }
                Auth::None => Err(git2::Error::from_str(
                    "the remote asks for credentials: give --git-token-file (https) or --git-ssh-key-file (ssh)",
                )),
                _ => Err(git2::Error::from_str(
                    "the remote asks for a kind of credential that was not given",
                )),
            }
        });
        if let Some(known) = self.known_hosts.clone() {
            let port = self.ssh_port();
            cb.certificate_check(move |cert, host| {
                match cert.as_hostkey().and_then(|h| h.hostkey()) {
                    Some(key) => known
                        .check(host, port, key)
                        .map(|()| git2::CertificateCheckStatus::CertificateOk)
                        .map_err(|m| {
                            *op.host_key.borrow_mut() = Some(m.clone());
                            git2::Error::from_str(&m)
                        }),
                    // TLS certificates: libgit2's (OpenSSL's) own verification.
                    None => Ok(git2::CertificateCheckStatus::CertificatePassthrough),
                }
            });
        }
        cb.transfer_progress(move |_| Instant::now() < deadline);
        cb.sideband_progress(move |_| Instant::now() < deadline);
        cb
    }

    fn remote_err(
        &self,
        op: &'static str,
        e: &git2::Error,
        deadline: Instant,
        state: &OpState,
    ) -> GitError {
        if let Some(reason) = state.host_key.borrow().clone() {
            return GitError::Remote {
                op,
                url: self.shown.clone(),
                message: format!("host key check: {reason}"),
            };
        }
        if Instant::now() >= deadline {
            return GitError::Deadline {
                op,
                url: self.shown.clone(),
                after: self.timeout,
            };
        }
        GitError::Remote {
            op,
            url: self.shown.clone(),
            // libgit2 may quote the URL it was given: never let credentials through.
            message: scrub(e.message(), &self.url, &self.shown),
        }
    }

    /// Fetch `branch` and return its tip. `Ok(None)` when the remote has no such branch
    /// and `missing_ok` (the status branch before its first commit).
    fn fetch_ref(
        &self,
        op: &'static str,
        branch: &str,
        missing_ok: bool,
    ) -> Result<Option<Oid>, GitError> {
        let deadline = Instant::now() + self.timeout;
        let state = OpState::default();
        let mut remote = self
            .repo
            .remote_anonymous(&self.url)
            .map_err(|e| self.remote_err(op, &e, deadline, &state))?;
        let local_ref = format!("refs/remotes/origin/{branch}");
        let refspec = format!("+refs/heads/{branch}:{local_ref}");
        let mut fo = FetchOptions::new();
        fo.remote_callbacks(self.callbacks(deadline, &state));
        fo.download_tags(git2::AutotagOption::None);
        fo.prune(git2::FetchPrune::Off);
        // Fetching a branch the remote does not have is not an error in libgit2; a
        // deleted branch must not leave a stale tip behind, so drop ours first.
        let previous = self.repo.refname_to_id(&local_ref).ok();
        remote
            .fetch(&[&refspec], Some(&mut fo), None)
            .map_err(|e| self.remote_err(op, &e, deadline, &state))?;
        let advertised = remote
            .list()
            .map(|heads| {
                heads
                    .iter()
                    .any(|h| h.name() == format!("refs/heads/{branch}"))
            })
            .unwrap_or(true);
        if !advertised {
            if previous.is_some()
                && let Ok(mut r) = self.repo.find_reference(&local_ref)
            {
                let _ = r.delete();
            }
            return if missing_ok {
                Ok(None)
            } else {
                Err(GitError::NoBranch {
                    op,
                    url: self.shown.clone(),
                    branch: branch.to_string(),
                })
            };
        }
        self.repo
            .refname_to_id(&local_ref)
            .map(Some)
            .map_err(|e| GitError::Local {
                path: self.path.clone(),
                message: e.message().to_string(),
            })
    }

    /// Fetch the desired-state branch; its tip.
    pub fn fetch(&self, branch: &str) -> Result<Oid, GitError> {
        self.fetch_ref("fetching", branch, false)
            .map(|o| o.expect("missing_ok is false"))
    }

    /// Whether `new` descends from `old` (false after a force push that rewrote history).
    pub fn descends(&self, new: Oid, old: Oid) -> bool {
        new == old || self.repo.graph_descendant_of(new, old).unwrap_or(false)
    }

    /// The fleet at `commit`, rooted at `fleet_path` inside the repository.
    pub fn tree(&self, commit: Oid, fleet_path: &str) -> Result<FleetTree, GitError> {
        let what = format!("{}@{}", self.shown, short(commit));
        let terr = |m: String| GitError::Tree {
            what: what.clone(),
            message: m,
        };
        let c = self
            .repo
            .find_commit(commit)
            .map_err(|e| terr(e.message().to_string()))?;
        let root = c.tree().map_err(|e| terr(e.message().to_string()))?;
        let prefix = normalize_path(fleet_path);
        let sub = if prefix.is_empty() {
            root
        } else {
            let entry = root
                .get_path(Path::new(&prefix))
                .map_err(|_| terr(format!("fleet path {prefix} does not exist in this commit")))?;
            entry
                .to_object(&self.repo)
                .and_then(|o| o.peel_to_tree())
                .map_err(|_| terr(format!("fleet path {prefix} is not a directory")))?
        };
        let mut files = BTreeMap::new();
        let mut problem = None;
        sub.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
            if entry.kind() != Some(git2::ObjectType::Blob) {
                return git2::TreeWalkResult::Ok;
            }
            let rel = format!("{dir}{}", entry.name().unwrap_or(""));
            match self.repo.find_blob(entry.id()) {
                Ok(b) if (b.size() as u64) > MAX_FILE_BYTES => {
                    problem = Some(format!(
                        "{rel}: {} bytes is larger than the {MAX_FILE_BYTES} bytes a fleet file may have",
                        b.size()
                    ));
                    git2::TreeWalkResult::Abort
                }
                Ok(b) => {
                    files.insert(rel, b.content().to_vec());
                    git2::TreeWalkResult::Ok
                }
                Err(e) => {
                    problem = Some(format!("{rel}: {}", e.message()));
                    git2::TreeWalkResult::Abort
                }
            }
        })
        .map_err(|e| terr(e.message().to_string()))?;
        if let Some(p) = problem {
            return Err(terr(p));
        }
        Ok(FleetTree {
            repository: Some(self.shown.clone()),
            revision: Some(commit.to_string()),
            path: if prefix.is_empty() {
                String::new()
            } else {
                prefix.clone()
            },
            dirty: false,
            files,
            origin: PathBuf::from(prefix),
        })
    }

    /// Commit `files` (repository paths → content; `None` deletes) on top of `branch`'s
    /// remote tip (or of `base` when the branch does not exist yet) and push it. With
    /// `replace`, the commit is built on `base` and force-pushed (a branch only CUPCAKE
    /// writes, like the auto-update branch). A non-fast-forward rejection refetches
    /// the branch and rebuilds the commit on its new tip, up to `max_retries` times:
    /// other people's commits on the branch are kept.
    pub fn commit_and_push(
        &self,
        branch: &str,
        base: Option<Oid>,
        files: &BTreeMap<String, Option<Vec<u8>>>,
        message: &str,
        replace: bool,
        max_retries: u32,
    ) -> Result<Pushed, GitError> {
        self.commit_and_push_observed(branch, base, files, message, replace, max_retries, &|_| {})
    }

    /// [`commit_and_push`](Self::commit_and_push), calling `before_push(attempt)` between
    /// building a commit and pushing it: the window in which somebody else's push makes
    /// ours non-fast-forward (tests use it to make that race happen).
    #[allow(clippy::too_many_arguments)]
    pub fn commit_and_push_observed(
        &self,
        branch: &str,
        base: Option<Oid>,
        files: &BTreeMap<String, Option<Vec<u8>>>,
        message: &str,
        replace: bool,
        max_retries: u32,
        before_push: &dyn Fn(u32),
    ) -> Result<Pushed, GitError> {
        let mut retries = 0;
        loop {
            let tip = self.fetch_ref("fetching", branch, true)?;
            let parent = if replace { base } else { tip.or(base) };
            let commit = self.build_commit(parent, files, message)?;
            let Some(commit) = commit else {
                return Ok(Pushed::Unchanged(
                    parent.expect("an unchanged commit has a parent"),
                ));
            };
            if replace && tip.is_some_and(|t| self.same_tree(t, commit)) {
                return Ok(Pushed::Unchanged(tip.expect("checked")));
            }
            before_push(retries);
            match self.push(branch, commit, replace) {
                Ok(()) => return Ok(Pushed::Committed { commit, retries }),
                Err(e) if e.is_conflict() && retries < max_retries => {
                    retries += 1;
                    tracing::info!(
                        branch,
                        retries,
                        "push refused (the branch moved): rebuilding on the new tip"
                    );
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn same_tree(&self, a: Oid, b: Oid) -> bool {
        match (self.repo.find_commit(a), self.repo.find_commit(b)) {
            (Ok(a), Ok(b)) => a.tree_id() == b.tree_id(),
            _ => false,
        }
    }

    /// A commit with `files` applied to `parent`'s tree; `None` when that changes nothing.
    fn build_commit(
        &self,
        parent: Option<Oid>,
        files: &BTreeMap<String, Option<Vec<u8>>>,
        message: &str,
    ) -> Result<Option<Oid>, GitError> {
        let local = |e: git2::Error| GitError::Local {
            path: self.path.clone(),
            message: e.message().to_string(),
        };
        let parent_commit = parent
            .map(|p| self.repo.find_commit(p))
            .transpose()
            .map_err(local)?;
        let base_tree = match &parent_commit {
            Some(c) => c.tree().map_err(local)?,
            None => {
                let empty = self
                    .repo
                    .treebuilder(None)
                    .map_err(local)?
                    .write()
                    .map_err(local)?;
                self.repo.find_tree(empty).map_err(local)?
            }
        };
        let mut update = git2::build::TreeUpdateBuilder::new();
        for (path, content) in files {
            match content {
                Some(bytes) => {
                    let blob = self.repo.blob(bytes).map_err(local)?;
                    update.upsert(path.as_str(), blob, git2::FileMode::Blob);
                }
                None => {
                    update.remove(path.as_str());
                }
            }
        }
        let tree_id = update
            .create_updated(&self.repo, &base_tree)
            .map_err(local)?;
        if parent_commit.is_some() && tree_id == base_tree.id() {
            return Ok(None);
        }
        let tree = self.repo.find_tree(tree_id).map_err(local)?;
        let sig = git2::Signature::now(BOT_NAME, BOT_EMAIL).map_err(local)?;
        let parents: Vec<&git2::Commit> = parent_commit.iter().collect();
        self.repo
            .commit(None, &sig, &sig, message, &tree, &parents)
            .map(Some)
            .map_err(local)
    }

    fn push(&self, branch: &str, commit: Oid, force: bool) -> Result<(), GitError> {
        let deadline = Instant::now() + self.timeout;
        let state = OpState::default();
        let local = |e: git2::Error| GitError::Local {
            path: self.path.clone(),
            message: e.message().to_string(),
        };
        let tmp = format!("refs/cupcake/push/{branch}");
        self.repo
            .reference(&tmp, commit, true, "cupcake push")
            .map_err(local)?;
        let mut remote = self
            .repo
            .remote_anonymous(&self.url)
            .map_err(|e| self.remote_err("pushing to", &e, deadline, &state))?;
        let rejected = std::cell::RefCell::new(None::<(String, String)>);
        let mut cb = self.callbacks(deadline, &state);
        cb.push_update_reference(|reference, status| {
            if let Some(s) = status {
                *rejected.borrow_mut() = Some((reference.to_string(), s.to_string()));
            }
            Ok(())
        });
        let mut po = PushOptions::new();
        po.remote_callbacks(cb);
        let spec = format!("{}{tmp}:refs/heads/{branch}", if force { "+" } else { "" });
        let result = remote.push(&[&spec], Some(&mut po));
        drop(po);
        if let Ok(mut r) = self.repo.find_reference(&tmp) {
            let _ = r.delete();
        }
        result.map_err(|e| self.remote_err("pushing to", &e, deadline, &state))?;
        if let Some((reference, reason)) = rejected.into_inner() {
            return Err(GitError::Rejected {
                op: "pushing to",
                url: self.shown.clone(),
                reference,
                reason,
            });
        }
        // Keep the remote-tracking ref in step so the next build starts from what we pushed.
        let _ = self.repo.reference(
            &format!("refs/remotes/origin/{branch}"),
            commit,
            true,
            "cupcake push",
        );
        Ok(())
    }
}

/// `a/b/` and `./a//b` → `a/b`; `.` → ``.
pub fn normalize_path(p: &str) -> String {
    p.split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Seven hex digits, like `git log --oneline`.
pub fn short(oid: Oid) -> String {
    oid.to_string().chars().take(7).collect()
}

/// Replace the URL as given (it may hold credentials) with its redacted form.
fn scrub(message: &str, url: &str, shown: &str) -> String {
    let mut m = message.replace(url, shown);
    // libgit2 sometimes prints the URL without the scheme or with user info only.
    if let Some((_, rest)) = url.split_once("://")
        && let Some((userinfo, _)) = rest.split_once('@')
        && !userinfo.is_empty()
        && !userinfo.contains('/')
    {
        m = m.replace(userinfo, "<redacted>");
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_become_file_urls_and_urls_stay() {
        assert!(remote_url("/tmp").starts_with("file:///"));
        assert_eq!(remote_url("https://h/o/r.git"), "https://h/o/r.git");
        assert_eq!(
            remote_url("git@github.com:o/r.git"),
            "git@github.com:o/r.git"
        );
        assert!(looks_scp_like("git@github.com:o/r.git"));
        assert!(!looks_scp_like("/srv/a:b/repo"));
    }

    #[test]
    fn scrub_removes_user_info_from_messages() {
        let url = "https://x-access-token:ghp_secret@h/o/r.git";
        let shown = redact_url(url);
        let m = scrub(&format!("failed to fetch {url}: 401"), url, &shown);
        assert!(!m.contains("ghp_secret"), "{m}");
        let m = scrub("user x-access-token:ghp_secret refused", url, &shown);
        assert!(!m.contains("ghp_secret"), "{m}");
    }

    #[test]
    fn known_hosts_match_host_port_and_key() {
        use base64::Engine as _;
        let k1 = base64::engine::general_purpose::STANDARD.encode(b"key-one");
        let k2 = base64::engine::general_purpose::STANDARD.encode(b"key-two");
        let text = format!(
            "# comment\ngithub.com,140.82.121.4 ssh-ed25519 {k1}\n[git.example.com]:2222 ssh-rsa {k2}\n@revoked old.example.com ssh-rsa {k1}\nold.example.com ssh-rsa {k1}\n"
        );
        let kh = KnownHosts::parse(&text).expect("parses");
        assert_eq!(kh.check("github.com", None, b"key-one"), Ok(()));
        assert_eq!(kh.check("GitHub.com", Some(22), b"key-one"), Ok(()));
        assert!(
            kh.check("github.com", None, b"key-two")
                .unwrap_err()
                .contains("does not match")
        );
        assert_eq!(kh.check("git.example.com", Some(2222), b"key-two"), Ok(()));
        assert!(
            kh.check("git.example.com", None, b"key-two")
                .unwrap_err()
                .contains("not in the known_hosts")
        );
        assert!(
            kh.check("old.example.com", None, b"key-one")
                .unwrap_err()
                .contains("revoked")
        );
        assert!(
            KnownHosts::parse("|1|abc=|def= ssh-rsa AAAA\n")
                .unwrap_err()
                .contains("hashed")
        );
        assert!(
            KnownHosts::parse("host ssh-rsa\n")
                .unwrap_err()
                .contains("line 1")
        );
        assert!(
            KnownHosts::parse("host ssh-rsa !!!\n")
                .unwrap_err()
                .contains("base64")
        );
        assert!(KnownHosts::parse("# nothing\n").is_err());
    }

    #[test]
    fn normalize_path_drops_dots_and_empty_parts() {
        assert_eq!(normalize_path("."), "");
        assert_eq!(normalize_path("./fleet//prod/"), "fleet/prod");
    }
}
