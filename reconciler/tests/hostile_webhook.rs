//! Hostile webhook requests (issue 13): every case of `tests/corpus/webhook/` is sent
//! over a real socket to `cupcake run`'s router (`server::router`, served by axum) and
//! must get the status and answer its `EXPECTATIONS` line gives; none of them wakes
//! the GitOps loop (the webhook's `Notify` holds no permit afterwards). A valid push
//! to the followed branch does wake it (the control case).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use futures::FutureExt as _;
use hmac::{Hmac, Mac};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Notify;

use cupcake_reconciler::server::{ServerState, Webhook, router};

const SECRET: &[u8] = b"hostile-test-secret";

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn serve() -> (std::net::SocketAddr, Arc<Notify>) {
    let notify = Arc::new(Notify::new());
    let requests = prometheus::IntCounterVec::new(
        prometheus::Opts::new("cupcake_webhook_requests_total", "test"),
        &["result"],
    )
    .unwrap();
    let state = ServerState {
        registry: prometheus::Registry::new(),
        ready: Arc::new(AtomicBool::new(true)),
        webhook: Some(Webhook {
            secret: Arc::new(SECRET.to_vec()),
            branch: "main".into(),
            notify: notify.clone(),
            requests,
            seen: Default::default(),
        }),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await });
    (addr, notify)
}

/// One raw HTTP/1.1 request; the status code and the body of the answer.
async fn send(
    addr: std::net::SocketAddr,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, String) {
    let mut req = format!(
        "POST /hooks/github HTTP/1.1\r\nHost: cupcake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    // The server may answer (413) before reading all of an oversized body.
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// A corpus case: headers (with the test directives applied) and the body.
fn request(raw: &[u8]) -> (Vec<(String, String)>, Vec<u8>, bool) {
    let split = raw.windows(2).position(|w| w == b"\n\n").unwrap();
    let (head, body) = (&raw[..split], &raw[split + 2..]);
    let mut body = body.to_vec();
    let mut twice = false;
    let mut headers = Vec::new();
    for line in String::from_utf8_lossy(head).lines() {
        let (k, v) = line.split_once(": ").unwrap();
        match k {
            "X-Test-Body-Bytes" => body = vec![b'a'; v.parse().unwrap()],
            "X-Test-Send-Twice" => twice = true,
            _ => headers.push((k.to_string(), v.to_string())),
        }
    }
    for (_, v) in headers.iter_mut() {
        if v == "VALID" {
            *v = sign(&body);
        } else if let Some(other) = v.strip_prefix("VALID-FOR ") {
            *v = sign(other.as_bytes());
        }
    }
    (headers, body, twice)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_webhook_requests_are_refused_and_wake_nothing() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/webhook");
    let text = std::fs::read_to_string(dir.join("EXPECTATIONS")).unwrap();
    let cases: Vec<(&str, &str)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_once(": ").unwrap())
        .collect();
    let on_disk = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "http")
        })
        .count();
    assert_eq!(
        on_disk,
        cases.len(),
        "every case needs one EXPECTATIONS line"
    );
    let mut failures = Vec::new();
    for (file, want) in &cases {
        let (status, answer) = want.split_once(' ').unwrap_or((want, ""));
        let (addr, notify) = serve().await;
        let (headers, body, twice) = request(&std::fs::read(dir.join(file)).unwrap());
        let mut got = send(addr, &headers, &body).await;
        if twice {
            // The first delivery is accepted and wakes the loop; take that wake-up.
            assert_eq!(got.0, 202, "{file}: first delivery: {got:?}");
            assert!(
                notify.notified().now_or_never().is_some(),
                "{file}: first delivery did not wake"
            );
            got = send(addr, &headers, &body).await;
        }
        if got.0.to_string() != status || !got.1.contains(answer) {
            failures.push(format!(
                "{file}:\n  got:  {} {}\n  want: {want}",
                got.0,
                got.1.trim()
            ));
        }
        if notify.notified().now_or_never().is_some() {
            failures.push(format!("{file}: woke the GitOps loop"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(cases.len() >= 20, "only {} webhook cases", cases.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_push_to_the_branch_wakes_the_loop() {
    let (addr, notify) = serve().await;
    let body = br#"{"ref":"refs/heads/main"}"#;
    let headers = vec![
        ("X-GitHub-Event".to_string(), "push".to_string()),
        ("X-GitHub-Delivery".to_string(), "d-ok".to_string()),
        ("X-Hub-Signature-256".to_string(), sign(body)),
    ];
    let (status, answer) = send(addr, &headers, body).await;
    assert_eq!((status, answer.trim()), (202, "fetching"));
    assert!(notify.notified().now_or_never().is_some());
}
