//! Fuzz targets over the reconciler's and core's parsers. Each takes raw bytes,
//! never panics on any of them (that is the property), and checks that an error
//! names where it comes from.
//!
//! Input formats (see docs/testing.md, "Fuzzing"):
//! - `fleet_loader`: first line a path in the fleet (`clusters/demo/schedule.yaml`,
//!   `versions.yaml`, `policies/config.yaml`, ...), the rest that file's bytes; the
//!   fleet also holds a valid `clusters/demo/cluster.yaml` unless the input replaces it.
//! - `snapshot`: the bytes of a snapshot file (kubectl's `-o yaml` / `-o json` List).
//! - `schedule`: first line the instant to evaluate at (RFC 3339), the rest an
//!   `UpdateSchedule` spec in YAML; every line is also tried as a cron string, a time
//!   zone and a time of day.
//! - `policy_input`: JSON `{"spec": ClusterVersionSpec, "snapshot": ClusterSnapshot,
//!   "config": {...}, "now": "RFC 3339"}`: planned and built into the policy input.
//! - `webhook`: first line the `X-Hub-Signature-256` value, the rest the body.

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use cupcake_api::crd::SourceRef;
use cupcake_api::fleet::ClusterVersionSpec;
use cupcake_api::schedule::UpdateScheduleSpec;
use cupcake_api::snapshot::ClusterSnapshot;
use cupcake_core::{gate, plan, schedule};
use cupcake_reconciler::source::FleetTree;

/// A `cluster.yaml` that loads.
pub const VALID_CLUSTER: &str = "apiVersion: cupcake.ricardomolendijk.com/v1\nkind: ClusterVersion\nmetadata:\n  name: demo\nspec:\n  kubernetesVersion: 1.34.2\n";

/// The secret the `webhook` target signs with.
pub const WEBHOOK_SECRET: &[u8] = b"fuzz-secret";

fn split_first_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// A fixed instant for inputs that give none.
fn default_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0)
        .single()
        .unwrap_or_default()
}

/// An instant from text, clamped to 2000..2100 (the clock's range, not chrono's).
fn instant(text: &[u8]) -> DateTime<Utc> {
    let lo = Utc
        .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let hi = Utc
        .with_ymd_and_hms(2100, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok())
        .map(|t| t.with_timezone(&Utc).clamp(lo, hi))
        .unwrap_or_else(default_now)
}

/// A fleet tree of one cluster `demo` plus the file of the input.
pub fn fleet_tree(data: &[u8]) -> FleetTree {
    let (path, body) = split_first_line(data);
    let path = String::from_utf8_lossy(path).trim().to_string();
    let mut files = std::collections::BTreeMap::new();
    files.insert(
        "clusters/demo/cluster.yaml".to_string(),
        VALID_CLUSTER.as_bytes().to_vec(),
    );
    // Paths as a Git tree or a directory walk yields them: relative, `/`-separated.
    if !path.is_empty()
        && !path.starts_with('/')
        && !path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        files.insert(path, body.to_vec());
    }
    FleetTree {
        files,
        origin: "fleet".into(),
        ..Default::default()
    }
}

/// Load the fleet's `demo` cluster the way `pipeline::load` does, without compiling
/// the policies (the Rego/CEL compilers are not ours to fuzz).
pub fn fleet_loader(data: &[u8]) {
    let tree = fleet_tree(data);
    let check = |e: String| {
        assert!(
            e.starts_with("fleet/"),
            "a load error must start with the file it is about: {e}"
        );
    };
    match cupcake_reconciler::load::cluster(&tree, "demo") {
        Ok(fleet) => {
            let Some(def) = fleet.clusters.get("demo") else {
                panic!("loaded fleet without the requested cluster");
            };
            if let Some(s) = &def.schedule {
                // The loader validated it: compiling must agree.
                match schedule::Compiled::new(&s.spec) {
                    Ok(c) => {
                        let _ = c.evaluate(default_now());
                    }
                    Err(e) => panic!("schedule validated by the loader fails to compile: {e}"),
                }
            }
        }
        Err(e) => check(e.to_string()),
    }
    if let Err(e) = cupcake_reconciler::load::policy_config(&tree) {
        check(e.to_string());
    }
    if let Err(e) = cupcake_reconciler::load::policy_sources(&tree) {
        check(e.to_string());
    }
}

/// Read a snapshot; a parsed one is validated as the planner would.
pub fn snapshot(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // read_file refuses non-UTF-8 before parsing (an io::Error naming the file)
    };
    match cupcake_reconciler::snapshot::parse(text, "snap.yaml") {
        Ok(s) => {
            let _ = plan::validate(&s);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("snap.yaml: "),
                "error without origin: {msg}"
            );
        }
    }
}

/// Parse, validate, compile and evaluate a schedule.
pub fn schedule(data: &[u8]) {
    let (now, body) = split_first_line(data);
    let now = instant(now);
    if let Ok(text) = std::str::from_utf8(body) {
        for line in text.lines().take(16) {
            let _ = schedule::parse_cron(line);
            let _ = schedule::parse_tz(Some(line));
            let _ = schedule::parse_time_of_day(line);
        }
        if let Ok(spec) = yaml_serde::from_str::<UpdateScheduleSpec>(text) {
            let valid = schedule::validate(&spec);
            match schedule::Compiled::new(&spec) {
                Ok(c) => {
                    assert!(valid.is_ok(), "compiled a schedule validate refuses");
                    let eval = c.evaluate(now);
                    let _ = c.evaluate(now + Duration::minutes(1));
                    let _ = c.due_attempt(now - Duration::days(400), now);
                    if let Some(next) = &eval.next_window {
                        assert!(next.start >= now, "next window {next:?} before {now}");
                        assert!(next.end > next.start, "empty window {next:?}");
                    }
                    if let Some(active) = &eval.active_window {
                        assert!(
                            active.start <= now && now < active.end,
                            "active window {active:?} does not hold {now}"
                        );
                    }
                }
                Err(e) => assert!(!e.field.is_empty() || !e.message.is_empty()),
            }
        }
    }
}

#[derive(serde::Deserialize)]
struct PolicyCase {
    spec: ClusterVersionSpec,
    snapshot: ClusterSnapshot,
    #[serde(default)]
    config: serde_json::Value,
    #[serde(default)]
    now: Option<String>,
}

/// Plan a cluster and build the policy input document from it (what the gate reads).
pub fn policy_input(data: &[u8]) {
    let Ok(case) = serde_json::from_slice::<PolicyCase>(data) else {
        return;
    };
    let now = instant(case.now.as_deref().unwrap_or("").as_bytes());
    if plan::validate(&case.snapshot).is_err() {
        return; // fail closed: no plan, no input (pass() returns the error)
    }
    let index = plan::ClusterIndex::new(&case.spec, &case.snapshot);
    let outcome = plan::plan_indexed(
        plan::PlanInput {
            spec: &case.spec,
            catalog: None,
            snapshot: &case.snapshot,
        },
        &index,
    );
    let sched = schedule::evaluate_compiled(None, now);
    let source = SourceRef::default();
    let input = gate::input::build(gate::InputParts {
        cluster: "demo",
        labels: None,
        spec: &case.spec,
        index: &index,
        outcome: &outcome,
        schedule: &sched,
        source: &source,
        now,
        config: &case.config,
    });
    assert_eq!(input.cluster.nodes.len(), case.snapshot.nodes.len());
    if let Err(e) = serde_json::to_value(&input) {
        panic!("the policy input does not encode: {e}");
    }
}

/// The webhook's pure parts: the HMAC check and the push body's `ref`.
pub fn webhook(data: &[u8]) {
    use hmac::{Hmac, Mac};
    let (sig, body) = split_first_line(data);
    let sig = std::str::from_utf8(sig).ok();
    let _ = cupcake_reconciler::server::signature_valid(WEBHOOK_SECRET, body, sig);
    let _ = cupcake_reconciler::server::push_ref(body);
    // The right signature is accepted, any other refused.
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(WEBHOOK_SECRET) else {
        panic!("HMAC takes any key length");
    };
    mac.update(body);
    let good = hex::encode(mac.finalize().into_bytes());
    assert!(cupcake_reconciler::server::signature_valid(
        WEBHOOK_SECRET,
        body,
        Some(&format!("sha256={good}"))
    ));
    if let Some(s) = sig {
        let right = s
            .strip_prefix("sha256=")
            .is_some_and(|h| h.trim().eq_ignore_ascii_case(&good));
        assert_eq!(
            cupcake_reconciler::server::signature_valid(WEBHOOK_SECRET, body, Some(s)),
            right,
            "signature {s:?}"
        );
    }
}
