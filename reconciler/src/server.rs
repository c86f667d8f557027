//! The HTTP endpoints of `cupcake run`: `/metrics` (Prometheus text),
//! `/healthz` (the process runs), `/readyz` (the controller is up: caches
//! synced or standing by for the lease), and with the GitOps loop the GitHub
//! webhook `/hooks/github`: a push to the followed branch, signed with the shared
//! secret (`X-Hub-Signature-256`, HMAC-SHA256, compared in constant time), starts a
//! turn at once. A bad or missing signature gets 401, is counted and triggers
//! nothing; without `--webhook-secret-file` the route answers 404.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;

/// Shared state of the endpoints.
#[derive(Debug, Clone)]
pub struct ServerState {
    pub registry: prometheus::Registry,
    pub ready: Arc<AtomicBool>,
    /// The GitHub push webhook, with the GitOps loop.
    pub webhook: Option<Webhook>,
}

/// What `/hooks/github` needs.
#[derive(Clone)]
pub struct Webhook {
    /// The shared HMAC secret.
    pub secret: Arc<Vec<u8>>,
    /// The followed branch: pushes to other refs are ignored.
    pub branch: String,
    /// Wakes the GitOps loop.
    pub notify: Arc<Notify>,
    /// `cupcake_webhook_requests_total{result}`.
    pub requests: prometheus::IntCounterVec,
    /// Delivery ids already received (`X-GitHub-Delivery`), newest last: a replayed
    /// delivery is refused.
    pub seen: Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
}

/// How many delivery ids are remembered for replay detection.
pub const REMEMBERED_DELIVERIES: usize = 4096;
/// The largest webhook body accepted (GitHub caps payloads at 25 MB, push events of a
/// fleet repo are far smaller; the loop only reads `ref`).
pub const MAX_WEBHOOK_BODY: usize = 1024 * 1024;

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("branch", &self.branch)
            .finish_non_exhaustive()
    }
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`;
/// the comparison takes the same time wherever the first difference is.
pub fn signature_valid(secret: &[u8], body: &[u8], signature: Option<&str>) -> bool {
    let Some(hex_sig) = signature.and_then(|s| s.strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The `ref` of a push event's JSON body (the only field the loop reads).
pub fn push_ref(body: &[u8]) -> Result<String, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Push {
        #[serde(rename = "ref")]
        reference: String,
    }
    serde_json::from_slice::<Push>(body).map(|p| p.reference)
}

async fn github_hook(
    State(s): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let Some(hook) = &s.webhook else {
        return (
            StatusCode::NOT_FOUND,
            "no webhook configured: start cupcake run with --repo and --webhook-secret-file\n"
                .into(),
        );
    };
    let count = |r: &str| hook.requests.with_label_values(&[r]).inc();
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !signature_valid(&hook.secret, &body, sig) {
        count("unauthorized");
        tracing::warn!(
            present = sig.is_some(),
            "webhook request with a bad or missing X-Hub-Signature-256: refused"
        );
        return (
            StatusCode::UNAUTHORIZED,
            "bad or missing X-Hub-Signature-256\n".into(),
        );
    }
    // A valid signature on a delivery already received is a replay.
    let Some(delivery) = headers
        .get("x-github-delivery")
        .and_then(|v| v.to_str().ok())
        .filter(|d| !d.is_empty() && d.len() <= 128)
    else {
        count("bad_request");
        return (
            StatusCode::BAD_REQUEST,
            "missing X-GitHub-Delivery\n".into(),
        );
    };
    {
        let mut seen = hook.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.iter().any(|d| d == delivery) {
            count("replayed");
            tracing::warn!(
                delivery,
                "webhook delivery received twice: refused as a replay"
            );
            return (StatusCode::CONFLICT, "delivery already received\n".into());
        }
        if seen.len() >= REMEMBERED_DELIVERIES {
            seen.pop_front();
        }
        seen.push_back(delivery.to_string());
    }
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match event {
        "ping" => {
            count("ignored");
            (StatusCode::OK, "pong\n".into())
        }
        "push" => {
            let Ok(reference) = push_ref(&body) else {
                count("bad_request");
                return (StatusCode::BAD_REQUEST, "push event without a ref\n".into());
            };
            if reference != format!("refs/heads/{}", hook.branch) {
                count("ignored");
                return (
                    StatusCode::ACCEPTED,
                    format!("ignored: {reference} is not the followed branch\n"),
                );
            }
            count("accepted");
            hook.notify.notify_one();
            (StatusCode::ACCEPTED, "fetching\n".into())
        }
        other => {
            count("ignored");
            (
                StatusCode::ACCEPTED,
                format!("ignored: event {other:?} is not a push\n"),
            )
        }
    }
}

async fn metrics(State(s): State<ServerState>) -> (StatusCode, String) {
    let mut out = String::new();
    match prometheus::TextEncoder::new().encode_utf8(&s.registry.gather(), &mut out) {
        Ok(()) => (StatusCode::OK, out),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding metrics: {e}\n"),
        ),
    }
}

async fn readyz(State(s): State<ServerState>) -> (StatusCode, &'static str) {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

/// The router (also used by tests without a socket).
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route(
            "/hooks/github",
            post(github_hook).layer(axum::extract::DefaultBodyLimit::max(MAX_WEBHOOK_BODY)),
        )
        .with_state(state)
}

/// Serve on `addr` until the future is dropped.
pub async fn serve(addr: SocketAddr, state: ServerState) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, webhook = state.webhook.is_some(), "serving /metrics /healthz /readyz /hooks/github");
    axum::serve(listener, router(state)).await
}

#[cfg(test)]
mod tests {
    use super::signature_valid;

    #[test]
    fn signatures_are_checked() {
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_valid(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            Some(good)
        ));
        assert!(!signature_valid(
            b"It's a Secret to Everybody",
            b"Hello, World?",
            Some(good)
        ));
        assert!(!signature_valid(
            b"another secret",
            b"Hello, World!",
            Some(good)
        ));
        assert!(!signature_valid(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            None
        ));
        assert!(!signature_valid(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            Some("sha1=757107ea")
        ));
        assert!(!signature_valid(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            Some("sha256=zz")
        ));
    }
}
