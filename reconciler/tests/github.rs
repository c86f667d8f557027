//! GitHub write-back against a mock of GitHub's API (wiremock: no GitHub is
//! reachable here): commit statuses, the one plan comment per pull request,
//! auto-update pull requests that are never duplicated or reopened, retries and
//! rate limits, and no token in errors.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use cupcake_reconciler::report::github::{
    GitHub, Outcome, Retry, UpdatePr, comment_marker, update_marker,
};
use cupcake_reconciler::report::status::CommitState;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "ghp_TESTTOKEN123";

fn fast() -> Retry {
    Retry {
        attempts: 3,
        base: Duration::from_millis(10),
        max_wait: Duration::from_secs(2),
    }
}

async fn gh(server: &MockServer) -> GitHub {
    GitHub::new(&server.uri(), "acme/fleet", TOKEN, fast()).unwrap()
}

async fn requests(server: &MockServer, m: &str, p: &str) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.method.as_str() == m && r.url.path() == p)
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

#[tokio::test]
async fn commit_status_carries_context_state_and_a_short_description() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/statuses/abc123"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&server)
        .await;
    let long = "denied: ".to_string() + &"x".repeat(300);
    gh(&server)
        .await
        .set_commit_status("abc123", "cupcake/demo", CommitState::Failure, &long)
        .await
        .unwrap();
    let got = requests(&server, "POST", "/repos/acme/fleet/statuses/abc123").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["context"], "cupcake/demo");
    assert_eq!(got[0]["state"], "failure");
    assert_eq!(got[0]["description"].as_str().unwrap().chars().count(), 140);
    let auth = server.received_requests().await.unwrap()[0]
        .headers
        .get("authorization")
        .cloned();
    assert_eq!(auth.unwrap().to_str().unwrap(), format!("Bearer {TOKEN}"));
}

#[tokio::test]
async fn the_plan_comment_is_found_on_a_later_page_and_updated_not_duplicated() {
    let server = MockServer::start().await;
    let others: Vec<Value> = (0..100)
        .map(|i| json!({"id": i, "body": format!("comment {i}")}))
        .collect();
    Mock::given(method("GET"))
        .and(path("/repos/acme/fleet/issues/7/comments"))
        .and(query_param("page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(others))
        .mount(&server)
        .await;
    let mine = format!("{}\nold plan", comment_marker("demo"));
    Mock::given(method("GET"))
        .and(path("/repos/acme/fleet/issues/7/comments"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 555, "body": mine}])))
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/fleet/issues/comments/555"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 555})))
        .mount(&server)
        .await;
    let g = gh(&server).await;
    assert_eq!(
        g.upsert_plan_comment(7, "demo", "new plan").await.unwrap(),
        Outcome::Updated(555)
    );
    assert!(
        requests(&server, "POST", "/repos/acme/fleet/issues/7/comments")
            .await
            .is_empty(),
        "a second comment"
    );
    let patched = requests(&server, "PATCH", "/repos/acme/fleet/issues/comments/555").await;
    assert!(patched[0]["body"].as_str().unwrap().ends_with("new plan"));
    // The same body again: no write at all.
    assert_eq!(
        g.upsert_plan_comment(7, "demo", "old plan").await.unwrap(),
        Outcome::Unchanged(555)
    );
    assert_eq!(
        requests(&server, "PATCH", "/repos/acme/fleet/issues/comments/555")
            .await
            .len(),
        1
    );
    // Another cluster's comment is a different one: posted.
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/issues/7/comments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 900})))
        .mount(&server)
        .await;
    assert_eq!(
        g.upsert_plan_comment(7, "staging", "plan").await.unwrap(),
        Outcome::Created(900)
    );
}

fn update(version: &str) -> UpdatePr {
    UpdatePr {
        cluster: "demo".into(),
        version: version.into(),
        head: "cupcake/update-demo".into(),
        base: "main".into(),
        title: format!("cupcake: upgrade demo to {version}"),
        body: format!("plan for {version}"),
    }
}

#[tokio::test]
async fn update_prs_are_opened_once_updated_after_and_never_reopened() {
    let server = MockServer::start().await;
    let g = gh(&server).await;
    // Nothing yet: opened.
    let closed = Mock::given(method("GET"))
        .and(path("/repos/acme/fleet/pulls"))
        .and(query_param("state", "closed"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount_as_scoped(&server)
        .await;
    let open = Mock::given(method("GET"))
        .and(path("/repos/acme/fleet/pulls"))
        .and(query_param("state", "open"))
        .and(query_param("head", "acme:cupcake/update-demo"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount_as_scoped(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/pulls"))
        .and(body_partial_json(
            json!({"head": "cupcake/update-demo", "base": "main"}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"number": 12})))
        .mount(&server)
        .await;
    assert_eq!(
        g.ensure_update_pr(&update("1.34.3")).await.unwrap(),
        Outcome::Created(12)
    );
    drop(open);
    // Open now: the catalogue moved on, the same PR is updated.
    let body = format!("{}\nplan for 1.34.3", update_marker("demo", "1.34.3"));
    let _open = Mock::given(method("GET"))
        .and(path("/repos/acme/fleet/pulls"))
        .and(query_param("state", "open"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!([{"number": 12, "title": "cupcake: upgrade demo to 1.34.3", "body": body}]),
        ))
        .mount_as_scoped(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/fleet/pulls/12"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"number": 12})))
        .mount(&server)
        .await;
    assert_eq!(
        g.ensure_update_pr(&update("1.34.3")).await.unwrap(),
        Outcome::Unchanged(12)
    );
    assert_eq!(
        g.ensure_update_pr(&update("1.34.4")).await.unwrap(),
        Outcome::Updated(12)
    );
    let patched = requests(&server, "PATCH", "/repos/acme/fleet/pulls/12").await;
    assert_eq!(patched.len(), 1);
    assert!(
        patched[0]["body"]
            .as_str()
            .unwrap()
            .contains(&update_marker("demo", "1.34.4"))
    );
    assert_eq!(
        requests(&server, "POST", "/repos/acme/fleet/pulls")
            .await
            .len(),
        1,
        "never a second PR"
    );
    drop(closed);
    // Merged for 1.34.4: not proposed again.
    Mock::given(method("GET"))
        .and(path("/repos/acme/fleet/pulls"))
        .and(query_param("state", "closed"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"number": 12, "merged_at": "2026-11-28T10:00:00Z", "body": update_marker("demo", "1.34.4")}])))
        .mount(&server)
        .await;
    assert_eq!(
        g.ensure_update_pr(&update("1.34.4")).await.unwrap(),
        Outcome::AlreadyDecided {
            number: 12,
            state: "merged".into()
        }
    );
    assert_eq!(
        requests(&server, "POST", "/repos/acme/fleet/pulls")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_retried_client_errors_are_not() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/statuses/s1"))
        .respond_with(ResponseTemplate::new(502).set_body_json(json!({"message": "bad gateway"})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/statuses/s1"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&server)
        .await;
    let g = gh(&server).await;
    g.set_commit_status("s1", "cupcake/demo", CommitState::Pending, "x")
        .await
        .unwrap();
    assert_eq!(
        requests(&server, "POST", "/repos/acme/fleet/statuses/s1")
            .await
            .len(),
        2
    );

    // Rate limited with retry-after: 1 → waited, then retried.
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/statuses/s2"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"message": "API rate limit exceeded"})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/statuses/s2"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 2})))
        .mount(&server)
        .await;
    let t = std::time::Instant::now();
    g.set_commit_status("s2", "cupcake/demo", CommitState::Pending, "x")
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "did not wait for retry-after"
    );

    // 401: one call, an error naming the call and not the token.
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/statuses/s3"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})),
        )
        .mount(&server)
        .await;
    let err = g
        .set_commit_status("s3", "cupcake/demo", CommitState::Pending, "x")
        .await
        .unwrap_err();
    assert!(
        err.contains("POST /repos/acme/fleet/statuses/s3") && err.contains("401"),
        "{err}"
    );
    assert!(!err.contains(TOKEN), "{err}");
    assert_eq!(
        requests(&server, "POST", "/repos/acme/fleet/statuses/s3")
            .await
            .len(),
        1,
        "a 401 was retried"
    );

    // Always 500: bounded attempts, then the error.
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/statuses/s4"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"message": "boom"})))
        .mount(&server)
        .await;
    assert!(
        g.set_commit_status("s4", "cupcake/demo", CommitState::Pending, "x")
            .await
            .is_err()
    );
    assert_eq!(
        requests(&server, "POST", "/repos/acme/fleet/statuses/s4")
            .await
            .len(),
        3
    );
}

/// `cupcake plan --github-comment` posts the markdown plan once, then updates it, and
/// keeps the plan's exit code; without a token it is a usage error naming the flag.
#[tokio::test]
async fn plan_posts_and_then_updates_one_comment() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/issues/42/comments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 77})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/fleet/issues/42/comments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let repo_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let uri = server.uri();
    let run = move |extra: &[&str]| {
        let mut args = vec![
            "plan",
            "examples/fleet",
            "--cluster",
            "demo",
            "--now",
            "2026-11-28T02:30:00Z",
            "--github-comment",
            "--github-repo",
            "acme/fleet",
            "--pr",
            "42",
            "--github-api",
            &uri,
        ];
        args.extend_from_slice(extra);
        std::process::Command::new(env!("CARGO_BIN_EXE_cupcake"))
            .args(&args)
            .current_dir(&repo_root)
            .env_remove("GITHUB_TOKEN")
            .output()
            .unwrap()
    };
    let token_arg = token.to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking({
        let run = run.clone();
        let t = token_arg.clone();
        move || run(&["--github-token-file", &t])
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("posted the plan for demo on acme/fleet#42 (comment 77)")
    );
    let posted = requests(&server, "POST", "/repos/acme/fleet/issues/42/comments").await;
    let body = posted[0]["body"].as_str().unwrap().to_string();
    assert!(
        body.starts_with(&comment_marker("demo")) && body.contains("ALLOWED"),
        "{body}"
    );

    // Second run: the comment exists (with an older plan) → updated, not posted again.
    Mock::given(method("GET"))
        .and(path("/repos/acme/fleet/issues/42/comments"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!([{"id": 77, "body": format!("{}\nold", comment_marker("demo"))}]),
            ),
        )
        .mount(&server)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/fleet/issues/comments/77"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 77})))
        .mount(&server)
        .await;
    let out = tokio::task::spawn_blocking({
        let run = run.clone();
        let t = token_arg.clone();
        move || run(&["--github-token-file", &t])
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        requests(&server, "POST", "/repos/acme/fleet/issues/42/comments")
            .await
            .len(),
        1
    );
    assert_eq!(
        requests(&server, "PATCH", "/repos/acme/fleet/issues/comments/77")
            .await
            .len(),
        1
    );

    // No token anywhere: a usage error, exit 1, nothing sent.
    let before = server.received_requests().await.unwrap().len();
    let out = tokio::task::spawn_blocking(move || run(&[])).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--github-token-file FILE or $GITHUB_TOKEN")
    );
    assert_eq!(server.received_requests().await.unwrap().len(), before);
}

/// As a GitHub App: an installation token is minted with the App's JWT and used for the
/// calls; a key that is not a PEM private key is refused up front.
#[tokio::test]
async fn a_github_app_mints_an_installation_token() {
    use cupcake_reconciler::report::github::GitHubAuth;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("app.pem");
    let out = std::process::Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/app/installations/77/access_tokens"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "token": "ghs_INSTALLATION", "expires_at": "2099-01-01T00:00:00Z", "permissions": {"statuses": "write"}, "repository_selection": "all"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/statuses/abc"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&server)
        .await;
    let auth = GitHubAuth::App {
        app_id: 12345,
        key_pem: std::fs::read_to_string(&key).unwrap(),
        installation_id: 77,
    };
    assert!(!format!("{auth:?}").contains("PRIVATE KEY"));
    let g = GitHub::connect(&server.uri(), "acme/fleet", auth, fast()).unwrap();
    g.set_commit_status("abc", "cupcake/demo", CommitState::Success, "ok")
        .await
        .unwrap();
    let reqs = server.received_requests().await.unwrap();
    let mint = reqs
        .iter()
        .find(|r| r.url.path() == "/app/installations/77/access_tokens")
        .expect("a token was minted");
    let jwt = mint
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(jwt.starts_with("Bearer ey"), "the App's JWT: {jwt}");
    let status = reqs
        .iter()
        .find(|r| r.url.path() == "/repos/acme/fleet/statuses/abc")
        .unwrap();
    assert!(
        status
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("ghs_INSTALLATION"),
        "the call used the installation token"
    );
    let bad = GitHubAuth::App {
        app_id: 1,
        key_pem: "not a key".into(),
        installation_id: 2,
    };
    let err = GitHub::connect(&server.uri(), "acme/fleet", bad, fast()).unwrap_err();
    assert!(err.contains("private key"), "{err}");
}

#[tokio::test]
async fn commit_status_links_details_and_cuts_the_description_on_a_character() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/statuses/abc"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&server)
        .await;
    let g = gh(&server).await;
    let long = "deferred: 🚀".repeat(40);
    g.set_commit_status_with_url(
        "abc",
        "cupcake/demo",
        CommitState::Pending,
        &long,
        Some("https://ci.example/run/1"),
    )
    .await
    .unwrap();
    g.set_commit_status("abc", "cupcake/demo", CommitState::Success, "ok")
        .await
        .unwrap();
    let got = requests(&server, "POST", "/repos/acme/fleet/statuses/abc").await;
    let d = got[0]["description"].as_str().unwrap();
    assert_eq!(d.chars().count(), 140);
    assert!(
        d.ends_with('…') && long.starts_with(d.trim_end_matches('…')),
        "{d}"
    );
    assert_eq!(got[0]["target_url"], "https://ci.example/run/1");
    assert_eq!(got[0]["state"], "pending");
    assert!(got[1].get("target_url").is_none(), "{}", got[1]);
    assert_eq!(got[1]["description"], "ok");
}

/// GitHub Enterprise serves the API under a path: every call keeps it.
#[tokio::test]
async fn an_enterprise_api_path_is_kept() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/v3/repos/acme/fleet/statuses/abc"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&server)
        .await;
    let g = GitHub::new(
        &format!("{}/api/v3/", server.uri()),
        "acme/fleet",
        TOKEN,
        fast(),
    )
    .unwrap();
    g.set_commit_status("abc", "cupcake/demo", CommitState::Success, "ok")
        .await
        .unwrap();
}

#[tokio::test]
async fn an_exhausted_rate_limit_waits_for_its_reset_or_fails_at_once_when_too_far() {
    let server = MockServer::start().await;
    let now = chrono::Utc::now().timestamp();
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/statuses/r1"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", (now + 1).to_string().as_str())
                .set_body_json(json!({"message": "API rate limit exceeded for user ID 1."})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/statuses/r1"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .mount(&server)
        .await;
    let g = gh(&server).await;
    let t = std::time::Instant::now();
    g.set_commit_status("r1", "cupcake/demo", CommitState::Pending, "x")
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "retried before the reset: {:?}",
        t.elapsed()
    );
    assert_eq!(
        requests(&server, "POST", "/repos/acme/fleet/statuses/r1")
            .await
            .len(),
        2
    );

    // Resets in an hour: more than this client waits (2 s here) → an error at once,
    // saying until when, without hammering the API.
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/statuses/r2"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", (now + 3600).to_string().as_str())
                .set_body_json(json!({"message": "API rate limit exceeded for user ID 1."})),
        )
        .mount(&server)
        .await;
    let t = std::time::Instant::now();
    let err = g
        .set_commit_status("r2", "cupcake/demo", CommitState::Pending, "x")
        .await
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(1));
    assert!(
        err.starts_with(
            "GitHub API POST /repos/acme/fleet/statuses/r2: 403 API rate limit exceeded"
        ) && err.contains("rate limited until"),
        "{err}"
    );
    assert_eq!(
        requests(&server, "POST", "/repos/acme/fleet/statuses/r2")
            .await
            .len(),
        1
    );

    // A plain 403 (no rate-limit headers) is a permission problem: not retried.
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/statuses/r3"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "4999")
                .set_body_json(json!({"message": "Resource not accessible by integration"})),
        )
        .mount(&server)
        .await;
    let err = g
        .set_commit_status("r3", "cupcake/demo", CommitState::Pending, "x")
        .await
        .unwrap_err();
    assert!(
        err.contains("403 Resource not accessible by integration"),
        "{err}"
    );
    assert_eq!(
        requests(&server, "POST", "/repos/acme/fleet/statuses/r3")
            .await
            .len(),
        1
    );
}

/// A 422 says why (GitHub puts it in `errors`), a proxy's HTML error page does not
/// flood the message.
#[tokio::test]
async fn errors_say_what_failed_and_why() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/fleet/pulls"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/pulls"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "Validation Failed",
            "errors": [{"resource": "PullRequest", "code": "custom", "message": "No commits between main and cupcake/update-demo"}],
            "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"
        })))
        .mount(&server)
        .await;
    let g = gh(&server).await;
    let err = g.ensure_update_pr(&update("1.34.3")).await.unwrap_err();
    assert_eq!(
        err,
        "GitHub API POST /repos/acme/fleet/pulls: 422 Validation Failed: No commits between main and cupcake/update-demo"
    );
    assert_eq!(
        requests(&server, "POST", "/repos/acme/fleet/pulls")
            .await
            .len(),
        1,
        "a 422 was retried"
    );

    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/statuses/h"))
        .respond_with(ResponseTemplate::new(502).set_body_string(format!(
            "<html><body>{}</body></html>",
            "bad gateway ".repeat(500)
        )))
        .mount(&server)
        .await;
    let err = g
        .set_commit_status("h", "cupcake/demo", CommitState::Pending, "x")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        "GitHub API POST /repos/acme/fleet/statuses/h: 502 Bad Gateway (after 3 attempts)"
    );
}

/// Nothing listens: retried with backoff, a bounded number of times, then an error
/// naming the call.
#[tokio::test]
async fn connection_errors_are_retried_a_bounded_number_of_times() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let g = GitHub::new(
        &format!("http://127.0.0.1:{port}"),
        "acme/fleet",
        TOKEN,
        fast(),
    )
    .unwrap();
    let t = std::time::Instant::now();
    let err = g
        .set_commit_status("abc", "cupcake/demo", CommitState::Pending, "x")
        .await
        .unwrap_err();
    assert!(
        err.starts_with("GitHub API POST /repos/acme/fleet/statuses/abc: ")
            && err.ends_with("(after 3 attempts)"),
        "{err}"
    );
    assert!(!err.contains(TOKEN), "{err}");
    // 10 ms + 20 ms of backoff, not octocrab's own retries on top.
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

/// A POST whose answer was lost (502) may have been applied: the comment is looked for
/// again before posting again, so there is still one.
#[tokio::test]
async fn a_lost_answer_does_not_duplicate_the_comment() {
    let server = MockServer::start().await;
    let route = "/repos/acme/fleet/issues/9/comments";
    Mock::given(method("GET"))
        .and(path(route))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let posted = format!("{}\nthe plan", comment_marker("demo"));
    Mock::given(method("GET"))
        .and(path(route))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"id": 31, "body": posted.replace('\n', "\r\n")}])),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(ResponseTemplate::new(502).set_body_json(json!({"message": "Server Error"})))
        .mount(&server)
        .await;
    let g = gh(&server).await;
    assert_eq!(
        g.upsert_plan_comment(9, "demo", "the plan").await.unwrap(),
        Outcome::Unchanged(31)
    );
    assert_eq!(requests(&server, "POST", route).await.len(), 1);
    assert!(
        requests(&server, "PATCH", "/repos/acme/fleet/issues/comments/31")
            .await
            .is_empty()
    );
}

/// A comment that quotes the marker (someone replying) is not ours: ours is posted.
#[tokio::test]
async fn a_quoted_marker_is_not_our_comment() {
    let server = MockServer::start().await;
    let route = "/repos/acme/fleet/issues/5/comments";
    Mock::given(method("GET"))
        .and(path(route))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"id": 1, "body": format!("> {}\n> old plan\n\nwhy deferred?", comment_marker("demo"))}
        ])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(route))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 2})))
        .mount(&server)
        .await;
    let g = gh(&server).await;
    assert_eq!(
        g.upsert_plan_comment(5, "demo", "plan").await.unwrap(),
        Outcome::Created(2)
    );
    assert!(
        requests(&server, "PATCH", "/repos/acme/fleet/issues/comments/1")
            .await
            .is_empty()
    );
}

/// Closing a pull request declines that version: it is neither reopened nor opened
/// again; the next version gets a new pull request.
#[tokio::test]
async fn a_closed_pull_request_declines_its_version_only() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/fleet/pulls"))
        .and(query_param("state", "closed"))
        .and(query_param("head", "acme:cupcake/update-demo"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"number": 3, "merged_at": null, "state": "closed", "body": format!("{}\nplan", update_marker("demo", "1.34.3"))}
        ])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/fleet/pulls"))
        .and(query_param("state", "open"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/pulls"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"number": 4})))
        .mount(&server)
        .await;
    let g = gh(&server).await;
    assert_eq!(
        g.ensure_update_pr(&update("1.34.3")).await.unwrap(),
        Outcome::AlreadyDecided {
            number: 3,
            state: "closed".into()
        }
    );
    assert!(
        requests(&server, "POST", "/repos/acme/fleet/pulls")
            .await
            .is_empty()
    );
    assert!(
        requests(&server, "PATCH", "/repos/acme/fleet/pulls/3")
            .await
            .is_empty(),
        "reopened"
    );
    assert_eq!(
        g.ensure_update_pr(&update("1.34.4")).await.unwrap(),
        Outcome::Created(4)
    );
    let opened = requests(&server, "POST", "/repos/acme/fleet/pulls").await;
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0]["head"], "cupcake/update-demo");
    assert_eq!(opened[0]["title"], "cupcake: upgrade demo to 1.34.4");
    assert!(
        opened[0]["body"]
            .as_str()
            .unwrap()
            .starts_with(&update_marker("demo", "1.34.4"))
    );
}

fn cupcake_plan(uri: &str, extra: &[&str], env_token: Option<&str>) -> std::process::Output {
    let repo_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cupcake"));
    cmd.args([
        "plan",
        "examples/fleet",
        "--cluster",
        "demo",
        "--github-api",
        uri,
    ])
    .args(extra)
    .current_dir(repo_root)
    .env_remove("GITHUB_TOKEN");
    if let Some(t) = env_token {
        cmd.env("GITHUB_TOKEN", t);
    }
    cmd.output().unwrap()
}

/// A deferred plan still comments and still exits 3; `$GITHUB_TOKEN` works; a rejected
/// token exits 1 after printing the plan, without the token in the output; missing
/// flags and an empty token file are usage errors naming them, before any call.
#[tokio::test]
async fn plan_comment_keeps_the_exit_code_and_says_what_is_missing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/fleet/issues/8/comments"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/issues/8/comments"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 80})))
        .mount(&server)
        .await;
    let uri = server.uri();
    let pr8 = [
        "--github-comment",
        "--github-repo",
        "acme/fleet",
        "--pr",
        "8",
    ];
    // Friday 10:00 UTC: outside the demo cluster's windows → deferred, exit 3.
    let out = tokio::task::spawn_blocking({
        let uri = uri.clone();
        move || {
            let mut a = vec!["--now", "2026-11-27T10:00:00Z"];
            a.extend(pr8);
            cupcake_plan(&uri, &a, Some(TOKEN))
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("posted the plan for demo on acme/fleet#8 (comment 80)"),
        "{stderr}"
    );
    let posted = requests(&server, "POST", "/repos/acme/fleet/issues/8/comments").await;
    assert!(
        posted[0]["body"].as_str().unwrap().contains("DEFERRED"),
        "{}",
        posted[0]
    );
    let auth = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .find(|r| r.method.as_str() == "POST")
        .and_then(|r| r.headers.get("authorization").cloned())
        .unwrap();
    assert_eq!(
        auth.to_str().unwrap(),
        format!("Bearer {TOKEN}"),
        "not $GITHUB_TOKEN"
    );

    // A rejected token: the plan is printed, exit 1, the token nowhere.
    let bad = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(json!({"message": "Bad credentials"})),
        )
        .mount(&bad)
        .await;
    let bad_uri = bad.uri();
    let out = tokio::task::spawn_blocking(move || {
        let mut a = vec!["--now", "2026-11-28T02:30:00Z"];
        a.extend(pr8);
        cupcake_plan(&bad_uri, &a, Some(TOKEN))
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stdout.contains("ALLOWED"),
        "the plan was not printed: {stdout}"
    );
    assert!(
        stderr.contains("GitHub API GET /repos/acme/fleet/issues/8/comments")
            && stderr.contains("401 Bad credentials"),
        "{stderr}"
    );
    assert!(!stderr.contains(TOKEN) && !stdout.contains(TOKEN));
    assert_eq!(
        bad.received_requests().await.unwrap().len(),
        1,
        "a 401 was retried"
    );

    // Usage errors: exit 1, the missing flag named, nothing sent.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let empty = empty.to_str().unwrap().to_string();
    let before = server.received_requests().await.unwrap().len();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["--github-comment", "--github-repo", "acme/fleet"],
            "--pr".into(),
        ),
        (
            vec!["--github-comment", "--pr", "8"],
            "--github-repo".into(),
        ),
        (
            pr8.iter()
                .copied()
                .chain(["--github-token-file", &empty])
                .collect(),
            format!("--github-token-file {empty}: the file is empty"),
        ),
        (
            pr8.iter()
                .copied()
                .chain(["--github-app-id", "1"])
                .collect(),
            "--github-app-key-file".into(),
        ),
        (
            vec!["--github-comment", "--github-repo", "acme", "--pr", "8"],
            "expected OWNER/NAME".into(),
        ),
    ]
    .into_iter()
    .map(|(a, want)| (a.into_iter().map(String::from).collect(), want))
    .collect();
    for (args, want) in cases {
        let u = uri.clone();
        let a = args.clone();
        let out = tokio::task::spawn_blocking(move || {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            cupcake_plan(&u, &a, Some(TOKEN))
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(&want), "{args:?}: {stderr}");
    }
    assert_eq!(server.received_requests().await.unwrap().len(), before);
}
