//! GitHub write-back over its REST API (octocrab): the commit status
//! `cupcake/<cluster>` on the desired-state commit, one plan comment per pull
//! request (found again by a hidden marker and updated, never duplicated), and the
//! auto-update pull request of a cluster (opened once, updated when the proposal
//! changes, never reopened or recreated once merged or closed for that version).
//!
//! Retries are ours alone: octocrab's retry layer is switched off (its default retries
//! 5xx three times, which would multiply with ours). Server errors and transport
//! errors are retried with bounded exponential backoff; rate limits (`429`, or `403`
//! with `x-ratelimit-remaining: 0` or `retry-after`) wait for `retry-after` /
//! `x-ratelimit-reset` when that is within [`Retry::max_wait`], and fail at once
//! (saying until when) when it is not; other client errors are not retried. Every
//! attempt, rate-limit waits included, counts against [`Retry::attempts`].
//!
//! Creating a comment or a pull request is not repeated blindly: a `POST` whose answer
//! was lost (a 5xx, a reset connection) may have been applied, so the whole operation
//! starts again from finding its marker, and writes only if still nothing is found.
//!
//! The token never appears in an error or a log line.

use std::path::Path;
use std::time::Duration;

use octocrab::Octocrab;
use serde_json::{Value, json};

use crate::report::status::CommitState;

/// GitHub's API.
pub const DEFAULT_API: &str = "https://api.github.com";

/// How calls are retried.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// First backoff; doubles each time.
    pub base: Duration,
    /// The longest single wait (backoff or rate-limit reset). A rate limit that resets
    /// later than this is an error at once, not a pointless early retry.
    pub max_wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 5,
            base: Duration::from_millis(500),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// How CUPCAKE authenticates to GitHub.
#[derive(Clone)]
pub enum GitHubAuth {
    /// A personal access token (classic or fine-grained) or an installation token.
    Token(String),
    /// A GitHub App installation: installation tokens are minted from the App's private
    /// key (a JWT) and renewed before they expire.
    App {
        app_id: u64,
        /// The App's private key, PEM.
        key_pem: String,
        installation_id: u64,
    },
}

impl std::fmt::Debug for GitHubAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitHubAuth::Token(_) => f.write_str("Token(<redacted>)"),
            GitHubAuth::App {
                app_id,
                installation_id,
                ..
            } => write!(
                f,
                "App {{ app_id: {app_id}, installation_id: {installation_id} }}"
            ),
        }
    }
}

/// Read a secret (a token, a private key) from a file, trimmed. A missing or empty
/// file is an error naming `flag` and the file, never the content.
pub fn read_secret_file(path: &Path, flag: &str) -> Result<String, String> {
    let s = std::fs::read_to_string(path).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
    let s = s.trim();
    if s.is_empty() {
        return Err(format!("{flag} {}: the file is empty", path.display()));
    }
    Ok(s.to_string())
}

/// `OWNER/NAME` split, or an error saying what was expected.
pub fn parse_repo(repo: &str) -> Result<(&str, &str), String> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    repo.split_once('/')
        .filter(|(o, n)| ok(o) && ok(n))
        .ok_or_else(|| format!("--github-repo {repo:?}: expected OWNER/NAME"))
}

/// A repository on GitHub and a token to write to it.
#[derive(Clone)]
pub struct GitHub {
    client: Octocrab,
    owner: String,
    repo: String,
    retry: Retry,
    /// The token, only to scrub it from error messages (belt and braces: GitHub does
    /// not echo it, a proxy in between might).
    secret: Option<String>,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("repo", &format!("{}/{}", self.owner, self.repo))
            .finish_non_exhaustive()
    }
}

/// What an idempotent write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Posted (a comment: its id) or opened (a pull request: its number).
    Created(u64),
    /// The existing one was changed.
    Updated(u64),
    /// The existing one already says this: nothing was written.
    Unchanged(u64),
    /// A pull request for this version was merged or closed: not reopened, not recreated.
    AlreadyDecided {
        number: u64,
        /// `merged` or `closed`.
        state: String,
    },
}

/// An auto-update pull request.
#[derive(Debug, Clone)]
pub struct UpdatePr {
    pub cluster: String,
    /// The proposed version (the pull request's marker records it).
    pub version: String,
    /// `cupcake/update-<cluster>`.
    pub head: String,
    pub base: String,
    pub title: String,
    /// Markdown (the plan and the verdict for the new version); the marker is added.
    pub body: String,
}

/// The hidden marker of a cluster's plan comment.
pub fn comment_marker(cluster: &str) -> String {
    format!("<!-- cupcake:plan cluster={cluster} -->")
}

/// The hidden marker of an auto-update pull request.
pub fn update_marker(cluster: &str, version: &str) -> String {
    format!("<!-- cupcake:update cluster={cluster} version={version} -->")
}

/// At most `max` characters, the last one an ellipsis when cut (never inside a
/// character).
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// GitHub caps a commit status description at 140 characters; it is one line.
pub fn description(s: &str) -> String {
    truncate(s.lines().next().unwrap_or("").trim_end(), 140)
}

/// Bodies compare equal as GitHub stores them (line endings, trailing blanks).
fn same_body(a: &str, b: &str) -> bool {
    a.replace("\r\n", "\n").trim_end() == b.replace("\r\n", "\n").trim_end()
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Get,
    Post,
    Patch,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Patch => "PATCH",
        }
    }
}

/// One failed attempt.
#[derive(Debug)]
struct Failed {
    /// What failed, without the call (added by the caller).
    message: String,
    /// Wait this long and try again; `None`: trying again would not help.
    retry_in: Option<Duration>,
}

impl GitHub {
    /// `repo` is `OWNER/NAME`; `api` GitHub's API URL (or a GitHub Enterprise one).
    /// Must be called inside a Tokio runtime.
    pub fn new(api: &str, repo: &str, token: &str, retry: Retry) -> Result<Self, String> {
        Self::connect(api, repo, GitHubAuth::Token(token.to_string()), retry)
    }

    /// [`new`](Self::new) with either kind of authentication. Must be called inside a
    /// Tokio runtime.
    pub fn connect(api: &str, repo: &str, auth: GitHubAuth, retry: Retry) -> Result<Self, String> {
        let (owner, name) = parse_repo(repo)?;
        let api = api.trim_end_matches('/');
        if !(api.starts_with("https://") || api.starts_with("http://")) {
            return Err(format!(
                "--github-api {api:?}: expected an http(s) URL such as {DEFAULT_API}"
            ));
        }
        let builder = Octocrab::builder()
            .base_uri(api)
            .map_err(|_| format!("--github-api {api:?}: not a valid URL"))?
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)));
        let (client, secret) = match auth {
            GitHubAuth::Token(token) => {
                let token = token.trim().to_string();
                if token.is_empty() {
                    return Err("the GitHub token is empty".into());
                }
                let client = builder
                    .personal_token(token.clone())
                    .build()
                    .map_err(|e| format!("GitHub client for {api}: {}", first_line(&e)))?;
                (client, Some(token))
            }
            GitHubAuth::App {
                app_id,
                key_pem,
                installation_id,
            } => {
                let key = octocrab::EncodingKey::from_rsa_pem(key_pem.as_bytes()).map_err(|e| {
                    format!("the GitHub App private key: {e} (expected the PEM GitHub gave you)")
                })?;
                let client = builder
                    .app(app_id.into(), key)
                    .build()
                    .and_then(|app| app.installation(installation_id.into()))
                    .map_err(|e| {
                        format!(
                            "GitHub App {app_id}, installation {installation_id}: {}",
                            first_line(&e)
                        )
                    })?;
                (client, None)
            }
        };
        Ok(Self {
            client,
            owner: owner.to_string(),
            repo: name.to_string(),
            retry,
            secret,
        })
    }

    /// `OWNER/NAME`.
    pub fn repo(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }

    fn route(&self, rest: &str) -> String {
        format!("/repos/{}/{}/{rest}", self.owner, self.repo)
    }

    fn scrub(&self, s: String) -> String {
        match &self.secret {
            Some(t) if s.contains(t.as_str()) => s.replace(t.as_str(), "<redacted>"),
            _ => s,
        }
    }

    /// One request, no retry; the error names method and route.
    async fn attempt(
        &self,
        method: Method,
        route: &str,
        body: Option<&Value>,
        attempt: u32,
    ) -> Result<Value, Failed> {
        let result: Result<Value, octocrab::Error> = match method {
            Method::Get => self.client.get(route, None::<&()>).await,
            Method::Post => self.client.post(route, body).await,
            Method::Patch => self.client.patch(route, body).await,
        };
        result.map_err(|e| {
            let mut f = classify(&e, self.retry, attempt, chrono::Utc::now().timestamp());
            f.message = self.scrub(format!(
                "GitHub API {} {route}: {}",
                method.as_str(),
                f.message
            ));
            f
        })
    }

    /// After failed attempt number `attempt`: wait and return `Ok` to try again, or
    /// the error when it is not worth retrying or the attempts are used up.
    async fn pause(&self, failed: Failed, attempt: u32) -> Result<(), String> {
        match failed.retry_in {
            Some(wait) if attempt < self.retry.attempts => {
                tracing::info!(attempt, wait_ms = wait.as_millis() as u64, error = %failed.message, "GitHub API call failed; retrying");
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Some(_) if attempt > 1 => Err(format!("{} (after {attempt} attempts)", failed.message)),
            _ => Err(failed.message),
        }
    }

    /// A call that may be repeated as it is (reads, `PATCH`, commit statuses).
    async fn call(
        &self,
        method: Method,
        route: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(method, route, body, attempt).await {
                Ok(v) => return Ok(v),
                Err(f) => self.pause(f, attempt).await?,
            }
        }
    }

    /// Set the commit status `context` (`cupcake/<cluster>`) on `sha`.
    pub async fn set_commit_status(
        &self,
        sha: &str,
        context: &str,
        state: CommitState,
        desc: &str,
    ) -> Result<(), String> {
        self.set_commit_status_with_url(sha, context, state, desc, None)
            .await
    }

    /// [`set_commit_status`](Self::set_commit_status) with the link GitHub shows as
    /// "Details" (e.g. the DirectUpdate's dashboard or the CI run).
    pub async fn set_commit_status_with_url(
        &self,
        sha: &str,
        context: &str,
        state: CommitState,
        desc: &str,
        target_url: Option<&str>,
    ) -> Result<(), String> {
        let mut body =
            json!({"state": state.as_str(), "context": context, "description": description(desc)});
        if let Some(url) = target_url {
            body["target_url"] = json!(url);
        }
        // Repeating it is harmless: the newest status of a context is the one shown.
        self.call(
            Method::Post,
            &self.route(&format!("statuses/{sha}")),
            Some(&body),
        )
        .await
        .map(|_| ())
    }

    /// Every item of a paginated list.
    async fn list(&self, route: &str) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for page in 1..=100 {
            let sep = if route.contains('?') { '&' } else { '?' };
            let v = self
                .call(
                    Method::Get,
                    &format!("{route}{sep}per_page=100&page={page}"),
                    None,
                )
                .await?;
            let Some(items) = v.as_array() else {
                return Err(format!(
                    "GitHub API GET {route}: expected a list, got {}",
                    truncate(&v.to_string(), 100)
                ));
            };
            let n = items.len();
            out.extend(items.iter().cloned());
            if n < 100 {
                break;
            }
        }
        Ok(out)
    }

    /// The id and body of this cluster's plan comment on pull request `pr`, if any.
    /// Only a comment that starts with the marker counts: a reply quoting it does not.
    async fn find_comment(&self, pr: u64, marker: &str) -> Result<Option<(u64, String)>, String> {
        let comments = self
            .list(&self.route(&format!("issues/{pr}/comments")))
            .await?;
        Ok(comments.iter().find_map(|c| {
            let body = c["body"].as_str()?;
            let id = c["id"].as_u64()?;
            body.trim_start()
                .starts_with(marker)
                .then(|| (id, body.to_string()))
        }))
    }

    /// Post the plan as a comment on pull request `pr`, or update the one posted before
    /// for `cluster` (found by its marker on any page); an unchanged plan writes nothing.
    pub async fn upsert_plan_comment(
        &self,
        pr: u64,
        cluster: &str,
        markdown: &str,
    ) -> Result<Outcome, String> {
        let marker = comment_marker(cluster);
        let body = format!("{marker}\n{markdown}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some((id, old)) = self.find_comment(pr, &marker).await? {
                if same_body(&old, &body) {
                    return Ok(Outcome::Unchanged(id));
                }
                self.call(
                    Method::Patch,
                    &self.route(&format!("issues/comments/{id}")),
                    Some(&json!({"body": body})),
                )
                .await?;
                return Ok(Outcome::Updated(id));
            }
            let route = self.route(&format!("issues/{pr}/comments"));
            match self
                .attempt(Method::Post, &route, Some(&json!({"body": body})), attempt)
                .await
            {
                Ok(v) => return Ok(Outcome::Created(v["id"].as_u64().unwrap_or_default())),
                // It may have been posted: look again before posting again.
                Err(f) => self.pause(f, attempt).await?,
            }
        }
    }

    /// Whether a pull request for `version` of `cluster` was already merged or closed
    /// (then it is not proposed again).
    pub async fn update_decided(&self, pr: &UpdatePr) -> Result<Option<Outcome>, String> {
        let marker = update_marker(&pr.cluster, &pr.version);
        let prs = self
            .list(&self.route(&format!(
                "pulls?state=closed&head={}:{}",
                self.owner, pr.head
            )))
            .await?;
        Ok(prs
            .iter()
            .find(|p| p["body"].as_str().is_some_and(|b| b.contains(&marker)))
            .map(|p| Outcome::AlreadyDecided {
                number: p["number"].as_u64().unwrap_or_default(),
                state: if p["merged_at"].is_string() {
                    "merged".into()
                } else {
                    "closed".into()
                },
            }))
    }

    /// Open the auto-update pull request, or update the open one (title, body); never a
    /// second one, never again for a version whose pull request was merged or closed
    /// (nor is that one reopened). The branch `pr.head` must have been pushed before.
    pub async fn ensure_update_pr(&self, pr: &UpdatePr) -> Result<Outcome, String> {
        let body = format!("{}\n{}", update_marker(&pr.cluster, &pr.version), pr.body);
        let mut attempt = 0;
        loop {
            attempt += 1;
            if let Some(decided) = self.update_decided(pr).await? {
                return Ok(decided);
            }
            let open = self
                .list(&self.route(&format!("pulls?state=open&head={}:{}", self.owner, pr.head)))
                .await?;
            if let Some(number) = open.iter().find_map(|p| p["number"].as_u64()) {
                let p = open
                    .iter()
                    .find(|p| p["number"].as_u64() == Some(number))
                    .unwrap_or(&Value::Null);
                if p["title"].as_str() == Some(pr.title.as_str())
                    && p["body"].as_str().is_some_and(|b| same_body(b, &body))
                {
                    return Ok(Outcome::Unchanged(number));
                }
                self.call(
                    Method::Patch,
                    &self.route(&format!("pulls/{number}")),
                    Some(&json!({"title": pr.title, "body": body})),
                )
                .await?;
                return Ok(Outcome::Updated(number));
            }
            let created = self
                .attempt(
                    Method::Post,
                    &self.route("pulls"),
                    Some(
                        &json!({"title": pr.title, "head": pr.head, "base": pr.base, "body": body}),
                    ),
                    attempt,
                )
                .await;
            match created {
                Ok(v) => return Ok(Outcome::Created(v["number"].as_u64().unwrap_or_default())),
                // It may have been opened: look again before opening again.
                Err(f) => self.pause(f, attempt).await?,
            }
        }
    }
}

/// The first line of an error (octocrab appends backtraces on later lines).
fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or("").to_string()
}

/// An error and its causes on one line ("client error (Connect): tcp connect error:
/// Connection refused"): octocrab's own message hides why a connection failed.
fn with_causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = first_line(&err);
    let mut cause = err.source();
    while let Some(c) = cause {
        let c_text = first_line(&c);
        if !c_text.is_empty() && !out.contains(&c_text) {
            out.push_str(": ");
            out.push_str(&c_text);
        }
        cause = c.source();
    }
    out.strip_prefix("Service Error: ")
        .or_else(|| out.strip_prefix("Hyper Error: "))
        .unwrap_or(&out)
        .to_string()
}

/// GitHub's message, readable: an HTML error page (a proxy's 502) becomes the status's
/// reason, whitespace is folded, length capped.
fn github_message(e: &octocrab::GitHubError) -> String {
    let raw = e.message.trim();
    let message = if raw.is_empty() || raw.starts_with('<') {
        e.status_code
            .canonical_reason()
            .unwrap_or("error")
            .to_string()
    } else {
        truncate(&raw.split_whitespace().collect::<Vec<_>>().join(" "), 300)
    };
    // Validation errors carry the reason in `errors`: "A pull request already exists…",
    // "No commits between main and cupcake/update-demo", "description is too long".
    let details: Vec<String> = e
        .errors
        .iter()
        .flatten()
        .filter_map(|d| {
            if let Some(s) = d.as_str() {
                return Some(s.to_string());
            }
            if let Some(m) = d["message"].as_str() {
                return Some(m.to_string());
            }
            let parts: Vec<&str> = ["resource", "field", "code"]
                .iter()
                .filter_map(|k| d[*k].as_str())
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
        .collect();
    if details.is_empty() {
        format!("{} {message}", e.status_code.as_u16())
    } else {
        format!(
            "{} {message}: {}",
            e.status_code.as_u16(),
            truncate(&details.join("; "), 300)
        )
    }
}

/// Whether an error is worth retrying and after how long, and its message. `now` is
/// the Unix time (for `x-ratelimit-reset`).
fn classify(err: &octocrab::Error, retry: Retry, attempt: u32, now: i64) -> Failed {
    let backoff = retry
        .base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(retry.max_wait);
    match err {
        octocrab::Error::GitHub { source, .. } => {
            let status = source.status_code.as_u16();
            let header = |name: &str| {
                source
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .and_then(|v| v.to_str().ok())
                    .map(|s| s.trim().to_string())
            };
            let message = github_message(source);
            let exhausted = header("x-ratelimit-remaining").as_deref() == Some("0");
            let retry_after = header("retry-after").and_then(|s| s.parse::<u64>().ok());
            if status == 429 || (status == 403 && (exhausted || retry_after.is_some())) {
                let (wait, until) = match (retry_after, source.rate_limit_reset) {
                    (Some(s), _) => (Duration::from_secs(s), now.saturating_add(s as i64)),
                    (None, Some(reset)) if exhausted || status == 429 => {
                        let reset = i64::try_from(reset).unwrap_or(i64::MAX);
                        // The reset is whole seconds: one more so it has surely passed.
                        let secs = reset.saturating_sub(now).max(0) as u64 + 1;
                        (Duration::from_secs(secs), reset)
                    }
                    _ => (backoff, now.saturating_add(backoff.as_secs() as i64)),
                };
                let until = chrono::DateTime::from_timestamp(until, 0)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_else(|| "later".into());
                if wait > retry.max_wait {
                    return Failed {
                        message: format!(
                            "{message} (rate limited until {until}, later than the {} s this client waits)",
                            retry.max_wait.as_secs()
                        ),
                        retry_in: None,
                    };
                }
                return Failed {
                    message: format!("{message} (rate limited until {until})"),
                    retry_in: Some(wait),
                };
            }
            Failed {
                message,
                retry_in: (status >= 500).then_some(backoff),
            }
        }
        // Transport errors (connection refused or reset, timeouts) are retried.
        octocrab::Error::Hyper { .. } | octocrab::Error::Service { .. } => Failed {
            message: with_causes(err),
            retry_in: Some(backoff),
        },
        other => Failed {
            message: first_line(other),
            retry_in: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_fit_githubs_limit() {
        assert_eq!(description("short"), "short");
        assert_eq!(description("first line\nsecond"), "first line");
        let long = "é".repeat(300);
        let d = description(&long);
        assert_eq!(d.chars().count(), 140);
        assert!(d.ends_with('…'));
        let exactly = "x".repeat(140);
        assert_eq!(description(&exactly), exactly);
    }

    #[test]
    fn bodies_compare_as_github_stores_them() {
        assert!(same_body("a\r\nb\n", "a\nb"));
        assert!(!same_body("a\nb", "a\nc"));
    }

    #[test]
    fn repositories_are_owner_slash_name() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _in = rt.enter();
        for bad in ["", "owner", "owner/", "/name", "a/b/c", "a b/c", "o/r?x"] {
            let err = GitHub::new(DEFAULT_API, bad, "t", Retry::default()).unwrap_err();
            assert!(err.contains("expected OWNER/NAME"), "{bad}: {err}");
        }
        assert!(GitHub::new(DEFAULT_API, "o/r", " ", Retry::default()).is_err());
        assert!(GitHub::new("api.github.com", "o/r", "t", Retry::default()).is_err());
        assert!(GitHub::new(DEFAULT_API, "my-org/fleet.git_1", "t", Retry::default()).is_ok());
    }

    #[test]
    fn secret_files_are_trimmed_and_empty_ones_named() {
        let dir = std::env::temp_dir().join(format!("cupcake-gh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        std::fs::write(&f, "  ghp_x\n").unwrap();
        assert_eq!(
            read_secret_file(&f, "--github-token-file").unwrap(),
            "ghp_x"
        );
        std::fs::write(&f, "\n").unwrap();
        let err = read_secret_file(&f, "--github-token-file").unwrap_err();
        assert!(
            err.contains(&f.display().to_string()) && err.contains("empty"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
