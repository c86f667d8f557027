//! The GitOps loop end to end: a real Git server (lighttpd + `git http-backend`,
//! Basic auth), a private control plane with kwok nodes, `cupcake run --repo …`
//! and the simulated agents. A user pushes to the fleet repo; the cluster
//! upgrades; the status branch and the metrics say what happened.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::time::{Duration, Instant};

use cupcake_api::crd::{DirectUpdate, Phase};
use cupcake_e2e::gitserver::{GitServer, WorkClone, free_port};
use cupcake_e2e::private::{PrivateCluster, Proc, bin, kwok_cluster, simulated_agents};
use cupcake_e2e::wait_for;
use hmac::{Hmac, Mac};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use sha2::Sha256;

const STATUS_BRANCH: &str = "cupcake/status";
const STATUS_FILE: &str = "status/demo.yaml";

const CATALOG: &str = "apiVersion: cupcake.ricardomolendijk.com/v1
kind: VersionCatalog
metadata:
  name: kubernetes
spec:
  versions: [1.33.4, 1.34.0, 1.34.2]
";

fn cluster_yaml(version: &str) -> String {
    format!(
        "apiVersion: cupcake.ricardomolendijk.com/v1
kind: ClusterVersion
metadata:
  name: demo
spec:
  kubernetesVersion: {version}
  components: [kubeadm, kubelet, kubectl]
  drain:
    timeout: 1m
  backup:
    etcd: false
"
    )
}

/// A running `cupcake run --repo …` and how to talk to it.
struct Loop {
    proc: Proc,
    port: u16,
    secret: String,
}

impl Loop {
    fn start(pc: &PrivateCluster, srv: &GitServer, extra: &[&str]) -> Self {
        let token = pc.dir.join("git-token");
        std::fs::write(&token, format!("{}\n", srv.token)).unwrap();
        let secret = "e2e-webhook-secret".to_string();
        let secret_file = pc.dir.join("webhook-secret");
        std::fs::write(&secret_file, &secret).unwrap();
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let url = srv.url("fleet");
        let mut args = vec![
            "run",
            "--kubeconfig",
            pc.kubeconfig.to_str().unwrap(),
            "--listen",
            &listen,
            "--lease-namespace",
            "default",
            "--identity",
            "gitops-e2e",
            "--lease-duration",
            "6s",
            "--repo",
            &url,
            "--cluster",
            "demo",
            "--git-token-file",
            token.to_str().unwrap(),
            "--webhook-secret-file",
            secret_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        // An https server's test CA, trusted the way OpenSSL (under libgit2) reads it.
        let env: Vec<(&str, &std::path::Path)> = srv
            .ca
            .as_deref()
            .map(|ca| ("SSL_CERT_FILE", ca))
            .into_iter()
            .collect();
        let proc = pc.spawn_env(&bin("cupcake"), &args, "cupcake-gitops.log", &env);
        Self { proc, port, secret }
    }

    /// POST a GitHub push event for `branch`, signed with `key` (`None`: no signature).
    fn webhook(&self, branch: &str, key: Option<&str>) -> u16 {
        static DELIVERY: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let id = DELIVERY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.deliver(&format!("delivery-{id}"), branch, key, "")
    }

    /// POST a push event with this delivery id (and `padding` appended to the JSON body).
    fn deliver(&self, delivery: &str, branch: &str, key: Option<&str>, padding: &str) -> u16 {
        let body = format!(r#"{{"ref":"refs/heads/{branch}","after":"0","pad":"{padding}"}}"#);
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
            .args([
                "-H",
                "X-GitHub-Event: push",
                "-H",
                "Content-Type: application/json",
            ])
            .args(["-H", &format!("X-GitHub-Delivery: {delivery}")]);
        if let Some(key) = key {
            let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
            mac.update(body.as_bytes());
            let sig = hex::encode(mac.finalize().into_bytes());
            cmd.args(["-H", &format!("X-Hub-Signature-256: sha256={sig}")]);
        }
        // The body on stdin: large bodies do not fit a command line.
        let mut child = cmd
            .args([
                "--data-binary",
                "@-",
                &format!("http://127.0.0.1:{}/hooks/github", self.port),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write as _;
            let _ = child.stdin.take().unwrap().write_all(body.as_bytes());
        }
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
    }

    /// One sample of a metric (summed over its labels matching `label`).
    fn metric(&self, name: &str, label: &str) -> f64 {
        let out = std::process::Command::new("curl")
            .args(["-s", &format!("http://127.0.0.1:{}/metrics", self.port)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with(name) && l.contains(label))
            .filter(|l| l[name.len()..].starts_with([' ', '{']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    fn tail(&self) -> String {
        let out = self.proc.output();
        let lines: Vec<&str> = out.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

async fn direct_updates(client: &Client) -> Vec<DirectUpdate> {
    Api::<DirectUpdate>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Wait until the status file on the status branch satisfies `ok`; returns it.
async fn status_file(
    work: &WorkClone,
    l: &Loop,
    what: &str,
    timeout: Duration,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = work.remote_file(STATUS_BRANCH, STATUS_FILE)
            && ok(&s)
        {
            return s;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for the status file to show {what}; it is:\n{}\ncupcake log:\n{}",
                work.remote_file(STATUS_BRANCH, STATUS_FILE)
                    .unwrap_or_default(),
                l.tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_du_phase(client: &Client, l: &Loop, name: &str, phase: Phase, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let du = Api::<DirectUpdate>::all(client.clone())
            .get(name)
            .await
            .ok();
        if du
            .as_ref()
            .and_then(|d| d.status.as_ref())
            .and_then(|s| s.phase)
            == Some(phase)
        {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {name} in {phase:?}: {:#?}\n{}",
                du.and_then(|d| d.status),
                l.tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Push → DirectUpdate within moments of the webhook → rollout → status file and
/// metrics; then a bad signature, malformed YAML, a denied target and a foreign
/// commit on the status branch, each reported and none of them applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_push_upgrades_the_cluster_and_git_shows_it() {
    let (pc, client) = kwok_cluster("gitops-hook", 1, 2, "v1.33.4").await;
    let srv = GitServer::start("tok-e2e-hook");
    srv.create_repo("fleet");
    let work = WorkClone::new(&srv.auth_url("fleet"));
    work.write("versions.yaml", CATALOG);
    work.write("clusters/demo/cluster.yaml", &cluster_yaml("1.33.4"));
    let first = work.commit_push("demo at 1.33.4", "main");
    let state = tempfile::tempdir().unwrap();
    let _agents = simulated_agents(&pc, state.path(), &[]);
    let l = Loop::start(&pc, &srv, &["--poll", "60s"]);

    // Up to date at start: the status file says so, nothing is applied.
    let s = status_file(
        &work,
        &l,
        "the first revision, up to date",
        Duration::from_secs(60),
        |s| s.contains(&format!("revision: {first}")) && s.contains("desired: 1.33.4"),
    )
    .await;
    assert!(!s.contains("directUpdate"), "{s}");
    assert!(direct_updates(&client).await.is_empty());

    // A signed webhook after the bump: the DirectUpdate follows at once.
    work.write("clusters/demo/cluster.yaml", &cluster_yaml("1.34.2"));
    let bump = work.commit_push("bump demo to 1.34.2", "main");
    let pushed = Instant::now();
    assert_eq!(l.webhook("main", Some(&l.secret)), 202);
    let du = wait_for(
        "a DirectUpdate after the webhook",
        Duration::from_secs(20),
        || async { direct_updates(&client).await.into_iter().next() },
    )
    .await;
    let latency = pushed.elapsed();
    eprintln!("push → DirectUpdate with the webhook: {latency:?}");
    assert!(
        latency < Duration::from_secs(10),
        "took {latency:?} with a 60s poll: the webhook did not trigger"
    );
    let src = du.spec.source.clone().expect("provenance");
    assert_eq!(src.revision.as_deref(), Some(bump.as_str()));
    assert_eq!(
        src.repository.as_deref(),
        Some(srv.url("fleet").as_str()),
        "no credentials in provenance"
    );
    assert_eq!(src.path.as_deref(), Some("clusters/demo/cluster.yaml"));
    assert_eq!(du.spec.target_version.to_string(), "1.34.2");
    let name = du.name_any();
    wait_du_phase(
        &client,
        &l,
        &name,
        Phase::Succeeded,
        Duration::from_secs(120),
    )
    .await;
    let s = status_file(&work, &l, "Succeeded", Duration::from_secs(30), |s| {
        s.contains("phase: Succeeded") && s.contains(&format!("revision: {bump}"))
    })
    .await;
    assert!(s.contains(&format!("name: {name}")), "{s}");
    assert!(s.contains("verdict: allow"), "{s}");
    // The bump was planned from the rollout controller's watch caches, not a new list.
    assert!(
        l.metric(
            "cupcake_gitops_evaluation_duration_seconds_count",
            "cluster_from=\"cache\""
        ) >= 1.0,
        "no evaluation from the caches:\n{}",
        l.tail()
    );
    assert!(
        !s.contains("tok-e2e-hook"),
        "the token leaked into the status file:\n{s}"
    );

    // A bad or missing signature: 401, counted, no fetch.
    let fetches = l.metric("cupcake_git_fetches_total", "");
    assert_eq!(l.webhook("main", Some("wrong secret")), 401);
    assert_eq!(l.webhook("main", None), 401);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        l.metric("cupcake_git_fetches_total", ""),
        fetches,
        "a refused webhook fetched"
    );
    assert_eq!(
        l.metric("cupcake_webhook_requests_total", "unauthorized"),
        2.0
    );
    // A replayed delivery (same X-GitHub-Delivery, valid signature) is refused, and so is
    // a body over 1 MiB; neither fetches.
    assert_eq!(l.deliver("replay-1", "main", Some(&l.secret), ""), 202);
    let fetches = l.metric("cupcake_git_fetches_total", "");
    assert_eq!(l.deliver("replay-1", "main", Some(&l.secret), ""), 409);
    assert_eq!(l.metric("cupcake_webhook_requests_total", "replayed"), 1.0);
    let big = "x".repeat(2 * 1024 * 1024);
    assert_eq!(l.deliver("big-1", "main", Some(&l.secret), &big), 413);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        l.metric("cupcake_git_fetches_total", "") <= fetches + 1.0,
        "a replay or an oversize body fetched"
    );
    // A push to another branch is ignored.
    assert_eq!(l.webhook("feature", Some(&l.secret)), 202);
    assert_eq!(l.metric("cupcake_webhook_requests_total", "ignored"), 1.0);

    // Malformed YAML: the status file names file and line, nothing is applied, the
    // previous DirectUpdate is untouched.
    let before = Api::<DirectUpdate>::all(client.clone())
        .get(&name)
        .await
        .unwrap();
    work.write(
        "clusters/demo/cluster.yaml",
        &cluster_yaml("1.34.2")
            .replace("  drain:\n    timeout: 1m\n", "  drain:\n  timeout: [1m\n"),
    );
    let broken = work.commit_push("broken yaml", "main");
    assert_eq!(l.webhook("main", Some(&l.secret)), 202);
    let s = status_file(&work, &l, "the load error", Duration::from_secs(20), |s| {
        s.contains(&format!("revision: {broken}")) && s.contains("error:")
    })
    .await;
    assert!(
        s.contains("clusters/demo/cluster.yaml:"),
        "names the file and line:\n{s}"
    );
    let dus = direct_updates(&client).await;
    assert_eq!(dus.len(), 1, "nothing applied");
    assert_eq!(
        dus[0].metadata.generation, before.metadata.generation,
        "the previous DirectUpdate is untouched"
    );

    // A target not in the catalogue is denied: the status names the rule.
    work.write("clusters/demo/cluster.yaml", &cluster_yaml("1.35.1"));
    let denied = work.commit_push("1.35.1", "main");
    assert_eq!(l.webhook("main", Some(&l.secret)), 202);
    let s = status_file(&work, &l, "the deny", Duration::from_secs(20), |s| {
        s.contains(&format!("revision: {denied}")) && s.contains("verdict: deny")
    })
    .await;
    assert!(s.contains("target-not-in-catalog"), "names the rule:\n{s}");
    assert_eq!(
        direct_updates(&client).await.len(),
        1,
        "a denied target is not applied"
    );

    // Somebody else commits to the status branch: our next status lands on top and theirs stays.
    let other = WorkClone::new(&srv.auth_url("fleet"));
    cupcake_e2e::gitserver::git(other.path(), &["fetch", "-q", "origin", STATUS_BRANCH]);
    cupcake_e2e::gitserver::git(other.path(), &["checkout", "-q", "-b", "st", "FETCH_HEAD"]);
    other.write("status/other.yaml", "cluster: other\n");
    other.commit_push("someone else's status", STATUS_BRANCH);
    work.write("clusters/demo/cluster.yaml", &cluster_yaml("1.34.2"));
    let back = work.commit_push("back to 1.34.2", "main");
    assert_eq!(l.webhook("main", Some(&l.secret)), 202);
    status_file(&work, &l, "the revert", Duration::from_secs(20), |s| {
        s.contains(&format!("revision: {back}")) && !s.contains("error:")
    })
    .await;
    assert_eq!(
        work.remote_file(STATUS_BRANCH, "status/other.yaml")
            .as_deref(),
        Some("cluster: other\n"),
        "the other commit on the status branch was lost"
    );
    // The followed branch never receives status.
    assert!(work.remote_file("main", STATUS_FILE).is_none());
    assert_eq!(
        direct_updates(&client).await.len(),
        1,
        "up to date: nothing new applied"
    );

    // `cupcake status` shows every cluster of the status branch at a glance.
    let out = std::process::Command::new(bin("cupcake"))
        .args(["status", &srv.url("fleet"), "--git-token-file"])
        .arg(pc.dir.join("git-token"))
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("demo "))
        .unwrap_or_else(|| panic!("no demo row:\n{table}"));
    for want in ["1.34.2", "allow", name.as_str(), "Succeeded", &back[..7]] {
        assert!(row.contains(want), "{want} missing from: {row}");
    }
    assert!(table.lines().any(|l| l.starts_with("other ")), "{table}");

    // No secret in the controller's log, the status branch or any Event.
    let log = l.proc.output();
    assert!(!log.is_empty());
    for secret in [srv.token.as_str(), l.secret.as_str()] {
        assert!(!log.contains(secret), "a secret reached the log");
        let events = pc.kubectl(&["get", "events", "-A", "-o", "json"]);
        assert!(
            !String::from_utf8_lossy(&events.stdout).contains(secret),
            "a secret reached an Event"
        );
        assert!(!table.contains(secret));
    }
    let history = cupcake_e2e::gitserver::git(
        work.path(),
        &["log", "-p", "refs/remotes/peek/cupcake/status"],
    );
    assert!(
        !history.contains(&srv.token) && !history.contains(&l.secret),
        "a secret reached the status branch"
    );
}

/// Over HTTPS (a test CA, a token): without a webhook the loop polls; a deferred plan
/// is applied when its window opens; an unreachable remote backs off, is counted and
/// reported, and the loop recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_defers_and_rides_out_a_remote_outage() {
    let (pc, client) = kwok_cluster("gitops-poll", 1, 1, "v1.33.4").await;
    let mut srv = GitServer::start_tls("tok-e2e-poll");
    srv.create_repo("fleet");
    assert!(srv.url("fleet").starts_with("https://"));
    let work = WorkClone::trusting(&srv.auth_url("fleet"), srv.ca.as_deref());
    work.write(
        "versions.yaml",
        &CATALOG.replace("1.34.2]", "1.34.2, 1.34.3]"),
    );
    work.write("clusters/demo/cluster.yaml", &cluster_yaml("1.33.4"));
    // A freeze that ends in 25 seconds.
    let end_s = (chrono::Utc::now() + chrono::Duration::seconds(25))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let end: chrono::DateTime<chrono::Utc> = end_s.parse().unwrap();
    work.write(
        "clusters/demo/schedule.yaml",
        &format!(
            "apiVersion: cupcake.ricardomolendijk.com/v1
kind: UpdateSchedule
metadata:
  name: demo
spec:
  exclusions:
    - start: \"2026-01-01T00:00:00Z\"
      end: \"{end_s}\"
      scope: all
      reason: e2e freeze
"
        ),
    );
    work.commit_push("demo at 1.33.4, frozen", "main");
    let state = tempfile::tempdir().unwrap();
    let _agents = simulated_agents(&pc, state.path(), &["--step-duration", "600ms"]);
    let l = Loop::start(&pc, &srv, &["--poll", "2s"]);
    status_file(&work, &l, "up to date", Duration::from_secs(60), |s| {
        s.contains("desired: 1.33.4")
    })
    .await;

    // Deferred while frozen: reported, not applied; applied when the freeze ends.
    work.write("clusters/demo/cluster.yaml", &cluster_yaml("1.34.0"));
    let bump = work.commit_push("bump to 1.34.0", "main");
    let s = status_file(&work, &l, "the deferral", Duration::from_secs(20), |s| {
        s.contains(&format!("revision: {bump}")) && s.contains("verdict: defer")
    })
    .await;
    assert!(s.contains("deferUntil:"), "{s}");
    if chrono::Utc::now() < end - chrono::Duration::seconds(2) {
        assert!(
            direct_updates(&client).await.is_empty(),
            "applied during the freeze"
        );
    }
    let du = wait_for(
        "the DirectUpdate once the freeze ends",
        Duration::from_secs(60),
        || async { direct_updates(&client).await.into_iter().next() },
    )
    .await;
    assert!(chrono::Utc::now() >= end, "applied before the freeze ended");

    // A new target while that one runs waits for it, and the status file says so.
    work.write("clusters/demo/cluster.yaml", &cluster_yaml("1.34.2"));
    let next = work.commit_push("bump to 1.34.2 while 1.34.0 runs", "main");
    let s = status_file(
        &work,
        &l,
        "the new target waiting",
        Duration::from_secs(30),
        |s| s.contains(&format!("revision: {next}")) && s.contains("waiting: DirectUpdate"),
    )
    .await;
    assert!(s.contains(&du.name_any()), "names the running one:\n{s}");
    assert_eq!(
        direct_updates(&client).await.len(),
        1,
        "never two DirectUpdates for one cluster at once"
    );
    wait_du_phase(
        &client,
        &l,
        &du.name_any(),
        Phase::Succeeded,
        Duration::from_secs(120),
    )
    .await;
    let waited = wait_for(
        "the waiting target applied",
        Duration::from_secs(30),
        || async {
            direct_updates(&client)
                .await
                .into_iter()
                .find(|d| d.spec.target_version.to_string() == "1.34.2")
        },
    )
    .await;
    wait_du_phase(
        &client,
        &l,
        &waited.name_any(),
        Phase::Succeeded,
        Duration::from_secs(120),
    )
    .await;

    // A push without a webhook is picked up by the poll.
    work.write("clusters/demo/cluster.yaml", &cluster_yaml("1.34.3"));
    work.commit_push("bump to 1.34.3", "main");
    let pushed = Instant::now();
    let du2 = wait_for(
        "the polled DirectUpdate",
        Duration::from_secs(30),
        || async {
            direct_updates(&client)
                .await
                .into_iter()
                .find(|d| d.spec.target_version.to_string() == "1.34.3")
        },
    )
    .await;
    let latency = pushed.elapsed();
    eprintln!("push → DirectUpdate by polling every 2s: {latency:?}");
    assert!(
        latency < Duration::from_secs(2 + 8),
        "took {latency:?} with a 2s poll"
    );
    wait_du_phase(
        &client,
        &l,
        &du2.name_any(),
        Phase::Succeeded,
        Duration::from_secs(120),
    )
    .await;

    // The remote goes down: fetches fail, are counted, back off; the cluster keeps its state.
    srv.halt();
    let errors_at_halt = l.metric("cupcake_git_fetches_total", "result=\"error\"");
    wait_for("failed fetches", Duration::from_secs(20), || async {
        (l.metric("cupcake_git_fetches_total", "result=\"error\"") >= errors_at_halt + 2.0)
            .then_some(())
    })
    .await;
    assert_eq!(l.metric("cupcake_git_source_up", ""), 0.0);
    let window_start = l.metric("cupcake_git_fetches_total", "result=\"error\"");
    tokio::time::sleep(Duration::from_secs(12)).await;
    let in_window = l.metric("cupcake_git_fetches_total", "result=\"error\"") - window_start;
    assert!(
        in_window <= 4.0,
        "{in_window} failed fetches in 12s with a 2s poll: no backoff"
    );
    assert_eq!(
        direct_updates(&client).await.len(),
        3,
        "the last good state stays"
    );
    srv.resume();
    wait_for(
        "the loop to reach the remote again",
        Duration::from_secs(60),
        || async { (l.metric("cupcake_git_source_up", "") == 1.0).then_some(()) },
    )
    .await;
    // And it reports again: a new commit reaches the status file.
    let rev = work.commit_push("after the outage", "main");
    status_file(
        &work,
        &l,
        "the revision after the outage",
        Duration::from_secs(30),
        |s| s.contains(&format!("revision: {rev}")) && !s.contains("error:"),
    )
    .await;
}

async fn github_requests(
    mock: &wiremock::MockServer,
    m: &str,
    path_prefix: &str,
) -> Vec<serde_json::Value> {
    mock.received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == m && r.url.path().starts_with(path_prefix))
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null))
        .collect()
}

/// With GitHub (its API mocked by wiremock, the only mock): the commit status
/// `cupcake/demo` on the desired-state commit, and an auto-update pull request for the
/// newer patch in the catalogue, on a branch with the bump — updated, not duplicated,
/// when the catalogue moves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_commit_status_and_one_auto_update_pull_request() {
    use wiremock::matchers::{method, path, path_regex, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let (pc, _client) = kwok_cluster("gitops-github", 1, 1, "v1.33.4").await;
    let srv = GitServer::start("tok-e2e-gh");
    srv.create_repo("fleet");
    let work = WorkClone::new(&srv.auth_url("fleet"));
    work.write(
        "versions.yaml",
        &CATALOG.replace("[1.33.4, 1.34.0, 1.34.2]", "[1.33.4, 1.33.5, 1.34.2]"),
    );
    work.write("clusters/demo/cluster.yaml", &cluster_yaml("1.33.4"));
    work.write(
        "clusters/demo/schedule.yaml",
        "apiVersion: cupcake.ricardomolendijk.com/v1
kind: UpdateSchedule
metadata:
  name: demo
spec:
  autoUpdate: {enabled: true, channel: patch, pullRequest: true}
",
    );
    let first = work.commit_push("demo at 1.33.4 with auto-update", "main");

    let gh = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex("^/repos/acme/fleet/statuses/[0-9a-f]{40}$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"id": 1})))
        .mount(&gh)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/fleet/pulls"))
        .and(query_param("state", "closed"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([])))
        .mount(&gh)
        .await;
    let no_open = Mock::given(method("GET"))
        .and(path("/repos/acme/fleet/pulls"))
        .and(query_param("state", "open"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([])))
        .mount_as_scoped(&gh)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/fleet/pulls"))
        .respond_with(ResponseTemplate::new(201).set_body_json(serde_json::json!({"number": 3})))
        .mount(&gh)
        .await;
    Mock::given(method("PATCH"))
        .and(path("/repos/acme/fleet/pulls/3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"number": 3})))
        .mount(&gh)
        .await;
    let gh_token = pc.dir.join("github-token");
    std::fs::write(&gh_token, "ghp_E2ETOKEN\n").unwrap();
    let api = gh.uri();
    let l = Loop::start(
        &pc,
        &srv,
        &[
            "--poll",
            "2s",
            "--github-repo",
            "acme/fleet",
            "--github-token-file",
            gh_token.to_str().unwrap(),
            "--github-api",
            &api,
        ],
    );

    // The commit status: success (up to date) on the desired-state commit.
    wait_for("the commit status", Duration::from_secs(60), || async {
        let posted =
            github_requests(&gh, "POST", &format!("/repos/acme/fleet/statuses/{first}")).await;
        posted
            .into_iter()
            .find(|b| b["state"] == "success")
            .map(|b| {
                assert_eq!(b["context"], "cupcake/demo");
                assert!(
                    b["description"].as_str().unwrap().contains("up to date"),
                    "{b}"
                );
            })
    })
    .await;

    // The auto-update PR for 1.33.5: its branch carries the bump, its body the plan.
    let pr = wait_for(
        "the auto-update pull request",
        Duration::from_secs(60),
        || async {
            github_requests(&gh, "POST", "/repos/acme/fleet/pulls")
                .await
                .into_iter()
                .next()
        },
    )
    .await;
    assert_eq!(pr["head"], "cupcake/update-demo");
    assert_eq!(pr["base"], "main");
    let body = pr["body"].as_str().unwrap().to_string();
    assert!(
        body.contains("<!-- cupcake:update cluster=demo version=1.33.5 -->"),
        "{body}"
    );
    assert!(
        body.contains("1.33.5") && body.contains("ALLOWED"),
        "the plan and verdict:\n{body}"
    );
    let bumped = work
        .remote_file("cupcake/update-demo", "clusters/demo/cluster.yaml")
        .unwrap();
    assert_eq!(bumped, cluster_yaml("1.33.5"), "only the version changed");
    let s = status_file(&work, &l, "the proposal", Duration::from_secs(30), |s| {
        s.contains("pullRequest: 3")
    })
    .await;
    assert!(
        s.contains("autoUpdate:") && s.contains("version: 1.33.5"),
        "{s}"
    );

    // The catalogue moves on: the same PR is updated (never a second one), the branch follows.
    drop(no_open);
    Mock::given(method("GET"))
        .and(path("/repos/acme/fleet/pulls"))
        .and(query_param("state", "open"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!([
            {"number": 3, "title": "cupcake: upgrade demo to 1.33.5", "body": body}
        ])))
        .mount(&gh)
        .await;
    work.write(
        "versions.yaml",
        &CATALOG.replace(
            "[1.33.4, 1.34.0, 1.34.2]",
            "[1.33.4, 1.33.5, 1.33.6, 1.34.2]",
        ),
    );
    work.commit_push("1.33.6 released", "main");
    let patched = wait_for(
        "the pull request updated",
        Duration::from_secs(60),
        || async {
            github_requests(&gh, "PATCH", "/repos/acme/fleet/pulls/3")
                .await
                .into_iter()
                .next()
        },
    )
    .await;
    assert!(
        patched["body"].as_str().unwrap().contains("version=1.33.6"),
        "{patched}"
    );
    assert_eq!(
        github_requests(&gh, "POST", "/repos/acme/fleet/pulls")
            .await
            .len(),
        1,
        "a second pull request"
    );
    assert_eq!(
        work.remote_file("cupcake/update-demo", "clusters/demo/cluster.yaml")
            .unwrap(),
        cluster_yaml("1.33.6")
    );
    assert!(
        !l.proc.output().contains("ghp_E2ETOKEN"),
        "the GitHub token reached the log"
    );
}
