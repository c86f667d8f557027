//! `cupcake policy test` and `cupcake policy eval`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use cupcake_api::plan::Decision;
use regex::Regex;

use crate::gate::{self, PolicyEnv, PolicySource, RuleKind, SourceKind, testing};
use crate::{load, source};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run the `test_` rules of `*_test.rego` files like `opa test`, and the CEL fixtures (`*.cel.test.yaml`).
    ///
    /// Without DIR, tests the default pack built into this binary. Exit 1 when a test fails.
    Test(TestArgs),
    /// Evaluate the policy pack on an input document and print the decision.
    ///
    /// Exit codes like `cupcake plan`: 0 allow, 2 deny, 3 defer, 1 error.
    Eval(EvalArgs),
}

/// Output formats of `cupcake policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PolicyFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Directories (or files) of policies and tests; default: the built-in pack.
    pub dirs: Vec<PathBuf>,
    /// Only run tests whose name (`data.pkg.test_x`, or `file#case` for CEL) matches this regex.
    #[arg(long)]
    pub run: Option<String>,
    /// Output format: text or json.
    #[arg(short = 'o', long = "output", alias = "format", value_enum, default_value_t = PolicyFormat::Text)]
    pub format: PolicyFormat,
    /// Also load the built-in default pack (for fleet tests that use its rules).
    #[arg(long)]
    pub with_default_pack: bool,
    /// List passing tests too.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The input document (JSON or YAML), shaped like schemas/policy-input.schema.json.
    #[arg(long)]
    pub input: PathBuf,
    /// A fleet repo whose policies/ is added to the default pack.
    #[arg(long)]
    pub fleet: Option<PathBuf>,
    /// Further policy directories to add.
    #[arg(long = "policies")]
    pub policies: Vec<PathBuf>,
    /// Show every rule that was evaluated and which fired.
    #[arg(long)]
    pub explain: bool,
    /// Output format: text or json.
    #[arg(short = 'o', long = "output", alias = "format", value_enum, default_value_t = PolicyFormat::Text)]
    pub format: PolicyFormat,
}

fn read_path(p: &Path) -> anyhow::Result<Vec<PolicySource>> {
    if p.is_dir() {
        let tree = source::dir(p)?;
        return tree
            .files
            .keys()
            .filter(|rel| SourceKind::of(rel).is_some())
            .map(|rel| -> anyhow::Result<PolicySource> {
                Ok(PolicySource {
                    path: tree.display(rel).display().to_string(),
                    text: tree
                        .text(rel)
                        .with_context(|| tree.display(rel).display().to_string())?
                        .unwrap_or_default()
                        .to_string(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>();
    }
    let text = std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?;
    Ok(vec![PolicySource {
        path: p.display().to_string(),
        text,
    }])
}

pub fn run(cmd: &PolicyCommand) -> anyhow::Result<u8> {
    match cmd {
        PolicyCommand::Test(a) => test(a),
        PolicyCommand::Eval(a) => eval(a),
    }
}

fn test(a: &TestArgs) -> anyhow::Result<u8> {
    let filter = a
        .run
        .as_deref()
        .map(Regex::new)
        .transpose()
        .context("--run")?;
    let mut sources = Vec::new();
    if a.dirs.is_empty() || a.with_default_pack {
        sources.extend(gate::pack::sources());
    }
    for d in &a.dirs {
        sources.extend(read_path(d)?);
    }
    let report = testing::run(&sources, filter.as_ref());
    match a.format {
        PolicyFormat::Text => print!("{}", report.text(a.verbose)),
        PolicyFormat::Json => {
            let v = serde_json::json!({
                "tests": report.tests,
                "errors": report.errors,
                "passed": report.count(testing::Outcome::Pass),
                "failed": report.count(testing::Outcome::Fail),
                "errored": report.count(testing::Outcome::Error) + report.errors.len(),
                "skipped": report.count(testing::Outcome::Skip),
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
    if report.tests.is_empty() && report.errors.is_empty() {
        let where_ = if a.dirs.is_empty() {
            "the built-in pack".to_string()
        } else {
            a.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &a.run {
            Some(re) => eprintln!("no test in {where_} matches --run {re:?}"),
            None => eprintln!(
                "no tests found in {where_}: tests are rules named test_* (in *_test.rego files) and cases of *.cel.test.yaml fixtures"
            ),
        }
        return Ok(1);
    }
    Ok(if report.failed() > 0 { 1 } else { 0 })
}

fn eval(a: &EvalArgs) -> anyhow::Result<u8> {
    let text =
        std::fs::read_to_string(&a.input).with_context(|| format!("{}", a.input.display()))?;
    let input: serde_json::Value = yaml_serde::from_str(&text)
        .with_context(|| format!("{}: not JSON or YAML", a.input.display()))?;
    if !input.is_object() {
        anyhow::bail!(
            "{}: the input document must be an object {{plan, cluster, schedule, source, now, config}}",
            a.input.display()
        );
    }
    let mut sources = gate::pack::sources();
    if let Some(f) = &a.fleet {
        let tree = source::dir(f)?;
        sources.extend(load::policy_sources(&tree)?);
    }
    for d in &a.policies {
        sources.extend(read_path(d)?);
    }
    let env = PolicyEnv::build(&sources);
    let eval = env.evaluate_json(&input);
    let force: Vec<String> = input
        .pointer("/cluster/force")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let decision = Decision::from_findings(eval.findings, &gate::expand_force(&force), None);
    match a.format {
        PolicyFormat::Json => {
            let mut v = serde_json::to_value(&decision)?;
            if a.explain {
                v["rules"] = explain_rules(&env);
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        PolicyFormat::Text => print!("{}", text_decision(&env, &decision, a.explain)),
    }
    Ok(decision.exit_code())
}

fn explain_rules(env: &PolicyEnv) -> serde_json::Value {
    let rego: Vec<serde_json::Value> = env
        .rego_rules()
        .into_iter()
        .map(|(k, f, l)| serde_json::json!({"language": "rego", "kind": k.as_str(), "file": f, "line": l}))
        .collect();
    let cel = env
        .cel_rules()
        .into_iter()
        .map(|(id, f)| serde_json::json!({"language": "cel", "id": id, "file": f}));
    serde_json::Value::Array(rego.into_iter().chain(cel).collect())
}

fn text_decision(env: &PolicyEnv, d: &Decision, explain: bool) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = write!(o, "Verdict: {}", d.verdict.as_str().to_uppercase());
    if let Some(t) = d.defer_until {
        let _ = write!(
            o,
            " until {}",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    o.push('\n');
    if d.findings.is_empty() {
        o.push_str("No rule fired.\n");
    }
    for f in &d.findings {
        let tag = match (f.severity, f.forced) {
            (cupcake_api::plan::Severity::Deny, true) => "FORCED",
            (cupcake_api::plan::Severity::Deny, false) => "DENY",
            (cupcake_api::plan::Severity::Defer, _) => "DEFER",
            (cupcake_api::plan::Severity::Warn, _) => "WARN",
        };
        let force = if f.severity == cupcake_api::plan::Severity::Deny && f.forceable && !f.forced {
            " [forceable]"
        } else {
            ""
        };
        let until = f
            .until
            .map(|t| {
                format!(
                    " [until {}]",
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {tag:<6} {}{force}{until} ({}): {}",
            f.rule, f.source, f.message
        );
    }
    if explain {
        let fired: std::collections::BTreeSet<(&str, &str)> = d
            .findings
            .iter()
            .map(|f| (f.source.as_str(), f.rule.as_str()))
            .collect();
        o.push_str("\nRules evaluated:\n");
        for file in env.files() {
            let rego: Vec<(RuleKind, u32)> = env
                .rego_rules()
                .into_iter()
                .filter(|(_, f, _)| f == file)
                .map(|(k, _, l)| (k, l))
                .collect();
            let cel: Vec<String> = env
                .cel_rules()
                .into_iter()
                .filter(|(_, f)| f == file)
                .map(|(id, _)| id)
                .collect();
            if rego.is_empty() && cel.is_empty() {
                continue;
            }
            let ids: Vec<&str> = fired
                .iter()
                .filter(|(f, _)| f == file)
                .map(|(_, id)| *id)
                .collect();
            let _ = writeln!(
                o,
                "  {file}: {}{} -> {}",
                if rego.is_empty() {
                    String::new()
                } else {
                    format!(
                        "{} Rego definition(s) ({})",
                        rego.len(),
                        rego.iter()
                            .map(|(k, l)| format!("{}@{l}", k.as_str()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                if cel.is_empty() {
                    String::new()
                } else {
                    format!("CEL rules {}", cel.join(", "))
                },
                if ids.is_empty() {
                    "nothing fired".to_string()
                } else {
                    format!("fired {}", ids.join(", "))
                }
            );
        }
        for e in env.errors() {
            let _ = writeln!(o, "  load error: {e}");
        }
    }
    o
}
