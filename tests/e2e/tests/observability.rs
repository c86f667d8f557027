//! Prometheus alert rules and the Grafana dashboard (`charts/cupcake/files/`) with the
//! real promtool, built from the Prometheus Go module by
//! `tests/harness/build-promtool.sh`: `promtool check rules` and `promtool test rules`
//! on the alerts (`tests/e2e/tests/observability/alerts_test.yaml`), every dashboard
//! query parsed by promtool, every metric, label and label value the rules and the
//! dashboard name served by a running `cupcake run` that has just rolled a cluster out
//! from Git, and the chart's PrometheusRule and dashboard ConfigMap accepted by a real
//! apiserver (prometheus-operator's own PrometheusRule CRD).
//!
//! promtool comes from `CUPCAKE_PROMTOOL` or the cache `build-promtool.sh --print-bin`
//! names. A missing promtool skips these tests with a message, and fails them when
//! `CUPCAKE_REQUIRE_PROMTOOL=1` (as `tests/run-all.sh` sets).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use cupcake_api::crd::{DirectUpdate, Phase};
use cupcake_e2e::gitserver::{WorkClone, free_port, git};
use cupcake_e2e::private::{bin, kwok_cluster, simulated_agents};
use cupcake_e2e::{TestNamespace, kubectl, ok, repo, wait_for};
use kube::api::{Api, ListParams};

const RULES: &str = "charts/cupcake/files/prometheus-rules.yaml";
const DASHBOARD: &str = "charts/cupcake/files/grafana-dashboard.json";
const ALERT_TESTS: &str = "tests/e2e/tests/observability/alerts_test.yaml";
const DOC: &str = "docs/observability.md";

/// A tool binary named by `env` or printed by `script --print-bin`, or `None` (with the
/// reason on stderr) when it is absent and `require` is not set to 1.
fn tool(env: &str, script: &str, require: &str) -> Option<PathBuf> {
    let path = match std::env::var_os(env) {
        Some(p) => PathBuf::from(p),
        None => {
            let out = Command::new(repo().join(script))
                .arg("--print-bin")
                .output()
                .unwrap_or_else(|e| panic!("{script} --print-bin: {e}"));
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    if path.is_file() {
        return Some(path);
    }
    let why = format!(
        "{} not found (build it with {script}, or set {env})",
        path.display()
    );
    if std::env::var(require).as_deref() == Ok("1") {
        panic!("{why}; {require}=1 makes that a failure");
    }
    eprintln!("SKIPPED: {why}");
    None
}

fn promtool() -> Option<PathBuf> {
    static P: OnceLock<Option<PathBuf>> = OnceLock::new();
    P.get_or_init(|| {
        tool(
            "CUPCAKE_PROMTOOL",
            "tests/harness/build-promtool.sh",
            "CUPCAKE_REQUIRE_PROMTOOL",
        )
    })
    .clone()
}

fn helm() -> Option<PathBuf> {
    tool(
        "CUPCAKE_HELM",
        "tests/harness/build-helm.sh",
        "CUPCAKE_REQUIRE_HELM",
    )
}

fn run(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()))
}

fn both(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn yaml(path: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every rule of the rules file: (alert name, expr, labels, annotations).
fn alerts() -> Vec<serde_json::Value> {
    let f = yaml(RULES);
    f["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .collect()
}

/// Every `expr` of the dashboard (panel targets and annotation queries), with the panel
/// title, and Grafana's interval variables replaced by durations promtool can parse.
fn dashboard_exprs() -> Vec<(String, String)> {
    fn walk(v: &serde_json::Value, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                let title = m
                    .get("title")
                    .or_else(|| m.get("name"))
                    .and_then(|t| t.as_str())
                    .unwrap_or(title);
                if let Some(e) = m.get("expr").and_then(|e| e.as_str()) {
                    out.push((title.to_string(), e.to_string()));
                }
                for x in m.values() {
                    walk(x, title, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, title, out)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(repo().join(DASHBOARD)).unwrap();
    let d: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"));
    let mut out = Vec::new();
    walk(&d, "dashboard", &mut out);
    for (title, e) in &mut out {
        for (var, value) in [
            ("$__rate_interval", "2m"),
            ("$__interval", "1m"),
            ("$__range", "1h"),
        ] {
            *e = e.replace(var, value);
        }
        assert!(
            !e.contains('$'),
            "{DASHBOARD}: panel {title:?}: a variable promtool cannot check: {e}"
        );
    }
    out
}

/// The metric names in a PromQL expression, each with the label matchers after it
/// (`name{a="b", c=~"d|e"}` → ("name", [("a", "=", "b"), ("c", "=~", "d|e")])).
type Selector = (String, Vec<(String, String, String)>);
fn selectors(expr: &str) -> Vec<Selector> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
        if expr[i..].starts_with("cupcake_") && (i == 0 || !word(b[i - 1])) {
            let start = i;
            while i < b.len() && word(b[i]) {
                i += 1;
            }
            let name = expr[start..i].to_string();
            let mut matchers = Vec::new();
            if i < b.len() && b[i] == b'{' {
                let end = i + expr[i..].find('}').expect("unclosed {");
                for m in expr[i + 1..end].split(',').filter(|m| !m.trim().is_empty()) {
                    let op_at = m.find(['=', '!']).expect("a matcher");
                    let label = m[..op_at].trim().to_string();
                    let rest = &m[op_at..];
                    let op_len = if rest.starts_with("=~")
                        || rest.starts_with("!=")
                        || rest.starts_with("!~")
                    {
                        2
                    } else {
                        1
                    };
                    let value = rest[op_len..].trim().trim_matches('"').to_string();
                    matchers.push((label, rest[..op_len].to_string(), value));
                }
                i = end;
            }
            out.push((name, matchers));
        } else {
            i += 1;
        }
    }
    out
}

/// The label names an expression groups or matches by (`by (..)`, `without (..)`,
/// `on (..)`, `ignoring (..)`).
fn grouping_labels(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for kw in ["by", "without", "on", "ignoring"] {
        let mut rest = expr;
        while let Some(at) = rest.find(&format!("{kw} (")) {
            let ok_before = at == 0 || !rest.as_bytes()[at - 1].is_ascii_alphanumeric();
            let open = at + kw.len() + 1;
            let close = open + rest[open..].find(')').unwrap();
            if ok_before {
                out.extend(
                    rest[open + 1..close]
                        .split(',')
                        .map(|l| l.trim().to_string())
                        .filter(|l| !l.is_empty()),
                );
            }
            rest = &rest[close..];
        }
    }
    out
}

/// `promtool check rules` passes; `promtool test rules` passes; every alert is seen
/// firing by at least one case; and a rule changed against its tests is caught.
#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let out = run(&promtool, &["check", "rules", RULES]);
    let text = both(&out);
    assert!(
        out.status.success(),
        "promtool check rules {RULES}:\n{text}"
    );
    let alerts = alerts();
    assert!(
        text.contains(&format!("SUCCESS: {} rules found", alerts.len())),
        "{text}"
    );

    let out = run(&promtool, &["test", "rules", ALERT_TESTS]);
    assert!(
        out.status.success(),
        "promtool test rules {ALERT_TESTS}:\n{}",
        both(&out)
    );

    // Every alert fires in some case (an alert no case fires could be dead).
    let tests = yaml(ALERT_TESTS);
    let fired: BTreeSet<&str> = tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().unwrap())
        .filter(|c| c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()))
        .map(|c| c["alertname"].as_str().unwrap())
        .collect();
    let doc = std::fs::read_to_string(repo().join(DOC)).unwrap();
    for a in &alerts {
        let name = a["alert"].as_str().unwrap();
        assert!(fired.contains(name), "{ALERT_TESTS}: no case fires {name}");
        let sev = a["labels"]["severity"].as_str().unwrap_or("");
        assert!(
            ["critical", "warning", "info"].contains(&sev),
            "{name}: severity {sev:?}"
        );
        for k in ["summary", "description", "runbook_url"] {
            assert!(a["annotations"][k].is_string(), "{name}: no annotation {k}");
        }
        // The runbook link points at this alert's section of docs/observability.md.
        let url = a["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = name.to_lowercase();
        assert!(
            url.ends_with(&format!("/{DOC}#{anchor}")),
            "{name}: runbook_url {url}"
        );
        assert!(
            doc.lines()
                .any(|l| l.starts_with("### ") && l[4..].trim() == name),
            "{DOC} has no `### {name}` section (the alert's runbook_url points there)"
        );
    }

    // The tests can fail: CupcakeRolloutStuck waiting 5m instead of 15m is caught.
    let dir = tempfile::tempdir().unwrap();
    let rules = std::fs::read_to_string(repo().join(RULES)).unwrap();
    let (head, tail) = rules.split_once("alert: CupcakeRolloutStuck").unwrap();
    let changed = format!(
        "{head}alert: CupcakeRolloutStuck{}",
        tail.replacen("for: 15m", "for: 5m", 1)
    );
    std::fs::write(dir.path().join("rules.yaml"), changed).unwrap();
    let t = std::fs::read_to_string(repo().join(ALERT_TESTS))
        .unwrap()
        .replace(
            "../../../../charts/cupcake/files/prometheus-rules.yaml",
            "rules.yaml",
        );
    std::fs::write(dir.path().join("test.yaml"), t).unwrap();
    let out = Command::new(&promtool)
        .args(["test", "rules", "test.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = both(&out);
    assert_eq!(out.status.code(), Some(1), "a changed rule passed:\n{text}");
    assert!(
        text.contains("alertname: CupcakeRolloutStuck"),
        "the failure names the alert:\n{text}"
    );
}

/// Every query of the dashboard parses: written as recording rules and checked with
/// `promtool check rules`; a broken query would be refused the same way.
#[test]
fn every_dashboard_query_parses_with_promtool() {
    let Some(promtool) = promtool() else { return };
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 20, "{} queries", exprs.len());
    let check = |exprs: &[(String, String)]| {
        let rules: Vec<serde_json::Value> = exprs
            .iter()
            .enumerate()
            .map(|(i, (_, e))| serde_json::json!({"record": format!("cupcake_dashboard:query_{i}"), "expr": e}))
            .collect();
        let file = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dashboard-rules.yaml");
        std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap()).unwrap();
        run(&promtool, &["check", "rules", path.to_str().unwrap()])
    };
    let out = check(&exprs);
    assert!(
        out.status.success(),
        "a dashboard query does not parse:\n{}\nqueries:\n{exprs:#?}",
        both(&out)
    );
    let mut broken = exprs.clone();
    broken[0].1.push(')');
    let out = check(&broken);
    assert!(!out.status.success(), "promtool accepted {:?}", broken[0].1);

    // Panels are usable: each names the dashboard's datasource variable, ids are unique.
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join(DASHBOARD)).unwrap()).unwrap();
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().unwrap() {
        assert!(
            ids.insert(p["id"].as_i64().unwrap()),
            "duplicate panel id {}",
            p["id"]
        );
        if p["type"] != "row" {
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "panel {}",
                p["title"]
            );
            assert!(
                p["targets"].as_array().is_some_and(|t| !t.is_empty()),
                "panel {} has no query",
                p["title"]
            );
        }
    }
}

/// A scrape: metric family types by name, and every sample's labels.
struct Scrape {
    families: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>)>,
}

fn parse_exposition(text: &str) -> Scrape {
    let mut families = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap();
            families.insert(name.to_string(), ty.to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let series = line.rsplit_once(' ').unwrap().0;
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap();
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            samples.push((name.to_string(), labels));
        }
    }
    Scrape { families, samples }
}

impl Scrape {
    /// The family a series name belongs to (`x_bucket` → histogram `x`).
    fn family(&self, name: &str) -> Option<&str> {
        if self.families.contains_key(name) {
            return Some(self.families.get_key_value(name).unwrap().0);
        }
        ["_bucket", "_sum", "_count"].iter().find_map(|s| {
            let base = name.strip_suffix(s)?;
            let (family, ty) = self.families.get_key_value(base)?;
            (ty == "histogram").then_some(family.as_str())
        })
    }

    fn label_values(&self, family: &str, label: &str) -> BTreeSet<&str> {
        self.samples
            .iter()
            .filter(|(n, _)| self.family(n) == Some(family))
            .filter_map(|(_, l)| l.get(label).map(String::as_str))
            .collect()
    }
}

/// Every metric the alert rules and the dashboard name is served by `cupcake run`, with
/// the labels and label values they select on — after a real rollout from Git, so the
/// families that appear only once something happened are there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_dashboard_name_only_metrics_cupcake_run_serves() {
    let Some(promtool) = promtool() else { return };
    let (pc, client) = kwok_cluster("observability", 1, 1, "v1.33.4").await;
    let remote = tempfile::tempdir().unwrap();
    let bare = remote.path().join("fleet.git");
    git(
        remote.path(),
        &["init", "-q", "--bare", "-b", "main", bare.to_str().unwrap()],
    );
    let url = format!("file://{}", bare.display());
    let work = WorkClone::new(&url);
    work.write(
        "versions.yaml",
        "apiVersion: cupcake.ricardomolendijk.com/v1\nkind: VersionCatalog\nmetadata:\n  name: kubernetes\nspec:\n  versions: [1.33.4, 1.34.2]\n",
    );
    work.write(
        "clusters/demo/cluster.yaml",
        "apiVersion: cupcake.ricardomolendijk.com/v1\nkind: ClusterVersion\nmetadata:\n  name: demo\nspec:\n  kubernetesVersion: 1.34.2\n  components: [kubeadm, kubelet, kubectl]\n  backup:\n    etcd: false\n",
    );
    work.commit_push("demo to 1.34.2", "main");
    let state = tempfile::tempdir().unwrap();
    let _agents = simulated_agents(&pc, state.path(), &[]);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let cupcake = pc.spawn(
        &bin("cupcake"),
        &[
            "run",
            "--kubeconfig",
            pc.kubeconfig.to_str().unwrap(),
            "--listen",
            &listen,
            "--lease-namespace",
            "default",
            "--identity",
            "observability-e2e",
            "--lease-duration",
            "6s",
            "--repo",
            &url,
            "--cluster",
            "demo",
            "--poll",
            "2s",
        ],
        "cupcake-run.log",
    );
    let scrape = || {
        let out = Command::new("curl")
            .args(["-sf", &format!("http://{listen}/metrics")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };

    // The loop applies a DirectUpdate from Git and the rollout finishes it.
    let dus = Api::<DirectUpdate>::all(client.clone());
    wait_for(
        "the DirectUpdate from Git to succeed",
        Duration::from_secs(180),
        || async {
            let l = dus.list(&ListParams::default()).await.ok()?;
            l.items
                .iter()
                .any(|d| d.status.as_ref().and_then(|s| s.phase) == Some(Phase::Succeeded))
                .then_some(())
        },
    )
    .await;
    let body = wait_for(
        "the node histograms of the finished rollout",
        Duration::from_secs(60),
        || async {
            let b = scrape();
            (b.contains("cupcake_node_upgrade_duration_seconds_bucket{")
                && b.contains("cupcake_node_phase_duration_seconds_bucket{"))
            .then_some(b)
        },
    )
    .await;
    let s = parse_exposition(&body);

    let mut used: Vec<(String, String)> = alerts()
        .iter()
        .map(|a| {
            (
                format!("{RULES} alert {}", a["alert"].as_str().unwrap()),
                a["expr"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    used.extend(
        dashboard_exprs()
            .into_iter()
            .map(|(t, e)| (format!("{DASHBOARD} panel {t:?}"), e)),
    );
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for (place, expr) in &used {
        let sels = selectors(expr);
        if sels.is_empty() {
            problems.push(format!("{place}: names no cupcake_ metric: {expr}"));
        }
        let mut labels: BTreeSet<String> = ["le", "job", "instance", "pod", "namespace"]
            .into_iter()
            .map(String::from)
            .collect();
        for (name, matchers) in sels {
            let Some(family) = s.family(&name) else {
                problems.push(format!("{place}: {name} is not served by cupcake run"));
                continue;
            };
            seen.insert(family.to_string());
            for (label, op, value) in matchers {
                let have = s.label_values(family, &label);
                if have.is_empty() {
                    problems.push(format!("{place}: {name} has no label {label}"));
                    continue;
                }
                let wanted: Vec<&str> = match op.as_str() {
                    "=" => vec![value.as_str()],
                    "=~" => value.split('|').collect(),
                    _ => vec![],
                };
                for w in wanted {
                    if !have.contains(w) {
                        problems.push(format!(
                            "{place}: {name}{{{label}=\"{w}\"}} is never served (values: {have:?})"
                        ));
                    }
                }
            }
            labels.extend(
                s.samples
                    .iter()
                    .filter(|(n, _)| s.family(n) == Some(family))
                    .flat_map(|(_, l)| l.keys().cloned()),
            );
        }
        for l in grouping_labels(expr) {
            if !labels.contains(&l) {
                problems.push(format!(
                    "{place}: groups by {l}, a label none of its metrics has"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\n/metrics:\n{body}\n{}",
        problems.join("\n"),
        cupcake.output()
    );
    // The dashboard covers every family cupcake serves (a new metric gets a panel).
    let unused: Vec<&String> = s
        .families
        .keys()
        .filter(|f| f.starts_with("cupcake_") && !seen.contains(*f))
        .collect();
    assert!(
        unused.is_empty(),
        "served but on no panel or alert: {unused:?}"
    );

    // And promtool reads the exposition as Prometheus would.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &body).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' check metrics < '{}'",
            promtool.display(),
            file.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}",
        both(&out)
    );
}

/// The chart's PrometheusRule (prometheus-operator's own CRD) and dashboard ConfigMap are
/// accepted by a real apiserver, carry the rules and the dashboard unchanged, and
/// `disabledAlerts`/`alertLabels` do what values.yaml says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_prometheusrule_and_dashboard_configmap_pass_server_side_dry_run() {
    let Some(helm) = helm() else { return };
    let crd_dir = Command::new(repo().join("tests/harness/build-promtool.sh"))
        .arg("--print-crd-dir")
        .output()
        .unwrap();
    let crd_dir = String::from_utf8_lossy(&crd_dir.stdout).trim().to_string();
    if !Path::new(&crd_dir)
        .join("monitoring.coreos.com_prometheusrules.yaml")
        .is_file()
    {
        let why =
            format!("no PrometheusRule CRD in {crd_dir} (run tests/harness/build-promtool.sh)");
        if std::env::var("CUPCAKE_REQUIRE_PROMTOOL").as_deref() == Ok("1") {
            panic!("{why}; CUPCAKE_REQUIRE_PROMTOOL=1 makes that a failure");
        }
        eprintln!("SKIPPED: {why}");
        return;
    }
    ok(
        &kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &crd_dir,
        ]),
        "kubectl apply the PrometheusRule CRD",
    )
    .unwrap();
    ok(
        &kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/prometheusrules.monitoring.coreos.com",
        ]),
        "PrometheusRule CRD Established",
    )
    .unwrap();
    let client = cupcake_e2e::client().await;
    let ns = TestNamespace::new(&client, "obs").await.unwrap();
    let template = |extra: &[&str]| {
        let mut args = vec![
            "template",
            "cupcake",
            "charts/cupcake",
            "--namespace",
            &ns.name,
            "--show-only",
            "templates/prometheusrule.yaml",
            "--show-only",
            "templates/grafana-dashboard.yaml",
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set",
            "metrics.grafanaDashboard.enabled=true",
        ];
        args.extend_from_slice(extra);
        run(&helm, &args)
    };
    let out = run(
        &helm,
        &[
            "lint",
            "--strict",
            "charts/cupcake",
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set",
            "metrics.grafanaDashboard.enabled=true",
        ],
    );
    ok(
        &out,
        "helm lint --strict with the PrometheusRule and the dashboard",
    )
    .unwrap();
    let out = template(&[]);
    let y = ok(&out, "helm template").unwrap();
    let docs: Vec<serde_json::Value> = y
        .split("\n---")
        .filter(|d| d.contains("kind:"))
        .map(|d| yaml_serde::from_str(d).unwrap())
        .collect();
    let rule = docs.iter().find(|d| d["kind"] == "PrometheusRule").unwrap();
    assert_eq!(
        rule["spec"],
        yaml(RULES),
        "the PrometheusRule carries the rules file unchanged"
    );
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        cm["data"]["cupcake.json"].as_str().unwrap().trim(),
        std::fs::read_to_string(repo().join(DASHBOARD))
            .unwrap()
            .trim()
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, &y).unwrap();
    let stdout = ok(
        &kubectl(&["apply", "--dry-run=server", "-f", file.to_str().unwrap()]),
        "kubectl apply --dry-run=server (PrometheusRule, dashboard ConfigMap)",
    )
    .unwrap();
    assert_eq!(stdout.matches("(server dry run)").count(), 2, "{stdout}");

    // disabledAlerts drops an alert, alertLabels reach every alert, a typo fails.
    let out = template(&[
        "--set",
        "metrics.prometheusRule.disabledAlerts={CupcakeAbsent}",
        "--set",
        "metrics.prometheusRule.alertLabels.team=platform",
    ]);
    let y = ok(&out, "helm template with disabledAlerts").unwrap();
    assert!(
        !y.contains("alert: CupcakeAbsent") && y.contains("alert: CupcakeNoLeader"),
        "{y}"
    );
    assert_eq!(
        y.matches("team: platform").count(),
        alerts().len() - 1,
        "{y}"
    );
    let out = template(&[
        "--set",
        "metrics.prometheusRule.disabledAlerts={CupcakeNoSuchAlert}",
    ]);
    assert!(!out.status.success());
    assert!(
        both(&out)
            .contains("\"CupcakeNoSuchAlert\" is not an alert of files/prometheus-rules.yaml"),
        "{}",
        both(&out)
    );
}
