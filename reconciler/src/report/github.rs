//! GitHub write-back over its REST API (octocrab): the commit status
//! `cupcake/<cluster>` on the desired-state commit, one plan comment per pull
//! request (found again by a hidden marker and updated, never duplicated), and the
//! auto-update pull request of a cluster (opened once, updated when the proposal
//! changes, never reopened or recreated once merged or closed for that version).
//!
//! Calls are retried with bounded exponential backoff on server errors and
//! transport errors, and wait for GitHub's rate-limit reset (`retry-after`,
//! `x-ratelimit-reset`) up to a cap; other client errors are not retried.
//! The token never appears in an error or a log line.

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
    /// The longest single wait (backoff or rate-limit reset).
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

/// A repository on GitHub and a token to write to it.
#[derive(Clone)]
pub struct GitHub {
    client: Octocrab,
    owner: String,
    repo: String,
    retry: Retry,
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
    Created(u64),
    Updated(u64),
    Unchanged(u64),
    /// A pull request for this version was merged or closed: not reopened, not recreated.
    AlreadyDecided {
        number: u64,
        state: String,
    },
}

/// An auto-update pull request.
#[derive(Debug, Clone)]
pub struct UpdatePr {
    pub cluster: String,
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

/// GitHub caps a commit status description at 140 characters.
pub fn description(s: &str) -> String {
    let one_line = s.lines().next().unwrap_or("");
    if one_line.chars().count() <= 140 {
        return one_line.to_string();
    }
    let mut out: String = one_line.chars().take(139).collect();
    out.push('…');
    out
}

impl GitHub {
    /// `repo` is `OWNER/NAME`; `api` GitHub's API URL (or a GitHub Enterprise one).
    pub fn new(api: &str, repo: &str, token: &str, retry: Retry) -> Result<Self, String> {
        Self::connect(api, repo, GitHubAuth::Token(token.to_string()), retry)
    }

    /// [`new`](Self::new) with either kind of authentication. Must be called inside a
    /// Tokio runtime.
    pub fn connect(api: &str, repo: &str, auth: GitHubAuth, retry: Retry) -> Result<Self, String> {
        let (owner, name) = repo
            .split_once('/')
            .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
            .ok_or_else(|| format!("--github-repo {repo:?}: expected OWNER/NAME"))?;
        let builder = Octocrab::builder()
            .base_uri(api)
            .map_err(|e| format!("--github-api {api}: {e}"))?
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)));
        let client = match auth {
            GitHubAuth::Token(token) => {
                if token.trim().is_empty() {
                    return Err("the GitHub token is empty".into());
                }
                builder
                    .personal_token(token.trim().to_string())
                    .build()
                    .map_err(|e| format!("GitHub client for {api}: {e}"))?
            }
            GitHubAuth::App {
                app_id,
                key_pem,
                installation_id,
            } => {
                let key = octocrab::EncodingKey::from_rsa_pem(key_pem.as_bytes()).map_err(|e| {
                    format!("the GitHub App private key: {e} (expected the PEM GitHub gave you)")
                })?;
                builder
                    .app(app_id.into(), key)
                    .build()
                    .and_then(|app| app.installation(installation_id.into()))
                    .map_err(|e| {
                        format!("GitHub App {app_id}, installation {installation_id}: {e}")
                    })?
            }
        };
        Ok(Self {
            client,
            owner: owner.to_string(),
            repo: name.to_string(),
            retry,
        })
    }

    fn route(&self, rest: &str) -> String {
        format!("/repos/{}/{}/{rest}", self.owner, self.repo)
    }

    /// One API call, retried as the module says; the error names method and route.
    async fn call(&self, method: &str, route: &str, body: Option<&Value>) -> Result<Value, String> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result: Result<Value, octocrab::Error> = match method {
                "GET" => self.client.get(route, None::<&()>).await,
                "POST" => self.client.post(route, body).await,
                "PATCH" => self.client.patch(route, body).await,
                _ => unreachable!("only GET, POST and PATCH are used"),
            };
            let err = match result {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let (retryable, wait, message) = classify(&err, self.retry, attempt);
            if !retryable || attempt >= self.retry.attempts {
                return Err(format!("GitHub API {method} {route}: {message}"));
            }
            tracing::info!(%method, %route, attempt, wait_ms = wait.as_millis() as u64, error = %message, "GitHub API call failed; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Set the commit status `context` on `sha`.
    pub async fn set_commit_status(
        &self,
        sha: &str,
        context: &str,
        state: CommitState,
        desc: &str,
    ) -> Result<(), String> {
        let body =
            json!({"state": state.as_str(), "context": context, "description": description(desc)});
        self.call("POST", &self.route(&format!("statuses/{sha}")), Some(&body))
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
                    "GET",
                    &format!("{route}{sep}per_page=100&page={page}"),
                    None,
                )
                .await?;
            let items = v.as_array().cloned().unwrap_or_default();
            let n = items.len();
            out.extend(items);
            if n < 100 {
                break;
            }
        }
        Ok(out)
    }

    /// Post the plan as a comment on pull request `pr`, or update the one posted before.
    pub async fn upsert_plan_comment(
        &self,
        pr: u64,
        cluster: &str,
        markdown: &str,
    ) -> Result<Outcome, String> {
        let marker = comment_marker(cluster);
        let body = format!("{marker}\n{markdown}");
        let comments = self
            .list(&self.route(&format!("issues/{pr}/comments")))
            .await?;
        let mine = comments
            .iter()
            .find(|c| c["body"].as_str().is_some_and(|b| b.contains(&marker)));
        match mine {
            Some(c) => {
                let id = c["id"].as_u64().unwrap_or_default();
                if c["body"].as_str() == Some(body.as_str()) {
                    return Ok(Outcome::Unchanged(id));
                }
                self.call(
                    "PATCH",
                    &self.route(&format!("issues/comments/{id}")),
                    Some(&json!({"body": body})),
                )
                .await?;
                Ok(Outcome::Updated(id))
            }
            None => {
                let v = self
                    .call(
                        "POST",
                        &self.route(&format!("issues/{pr}/comments")),
                        Some(&json!({"body": body})),
                    )
                    .await?;
                Ok(Outcome::Created(v["id"].as_u64().unwrap_or_default()))
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
    /// second one, never again for a version whose pull request was merged or closed.
    /// The branch `pr.head` must have been pushed before.
    pub async fn ensure_update_pr(&self, pr: &UpdatePr) -> Result<Outcome, String> {
        if let Some(decided) = self.update_decided(pr).await? {
            return Ok(decided);
        }
        let body = format!("{}\n{}", update_marker(&pr.cluster, &pr.version), pr.body);
        let open = self
            .list(&self.route(&format!("pulls?state=open&head={}:{}", self.owner, pr.head)))
            .await?;
        if let Some(p) = open.first() {
            let number = p["number"].as_u64().unwrap_or_default();
            if p["title"].as_str() == Some(pr.title.as_str())
                && p["body"].as_str() == Some(body.as_str())
            {
                return Ok(Outcome::Unchanged(number));
            }
            self.call(
                "PATCH",
                &self.route(&format!("pulls/{number}")),
                Some(&json!({"title": pr.title, "body": body})),
            )
            .await?;
            return Ok(Outcome::Updated(number));
        }
        let v = self
            .call(
                "POST",
                &self.route("pulls"),
                Some(&json!({"title": pr.title, "head": pr.head, "base": pr.base, "body": body})),
            )
            .await?;
        Ok(Outcome::Created(v["number"].as_u64().unwrap_or_default()))
    }
}

/// Whether an error is worth retrying, how long to wait first, and its message.
fn classify(err: &octocrab::Error, retry: Retry, attempt: u32) -> (bool, Duration, String) {
    let backoff = retry
        .base
        .saturating_mul(1u32 << (attempt - 1).min(16))
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
                    .map(str::to_string)
            };
            let message = format!("{} {}", status, source.message);
            let exhausted = header("x-ratelimit-remaining").as_deref() == Some("0");
            let retry_after = header("retry-after").and_then(|s| s.parse::<u64>().ok());
            if status == 429 || (status == 403 && (exhausted || retry_after.is_some())) {
                let wait = match (retry_after, source.rate_limit_reset) {
                    (Some(s), _) => Duration::from_secs(s),
                    (None, Some(reset)) => {
                        let now = chrono::Utc::now().timestamp().max(0) as u64;
                        Duration::from_secs(reset.saturating_sub(now))
                    }
                    (None, None) => backoff,
                };
                return (
                    true,
                    wait.min(retry.max_wait),
                    format!("{message} (rate limited)"),
                );
            }
            (status >= 500, backoff, message)
        }
        // Transport errors (connection refused, timeouts) are retried; the rest are not.
        octocrab::Error::Hyper { .. } | octocrab::Error::Service { .. } => {
            (true, backoff, err.to_string())
        }
        other => (false, backoff, other.to_string()),
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
    }

    #[test]
    fn repositories_are_owner_slash_name() {
        for bad in ["", "owner", "owner/", "/name", "a/b/c"] {
            assert!(
                GitHub::new(DEFAULT_API, bad, "t", Retry::default()).is_err(),
                "{bad}"
            );
        }
        assert!(GitHub::new(DEFAULT_API, "o/r", " ", Retry::default()).is_err());
    }
}
