//! `cupcake policy test`: run the `test_` rules of Rego test files like `opa
//! test` does (a test passes when it evaluates to true; false or undefined
//! fails; an error is an error; `todo_test_` rules are skipped), and the CEL
//! fixture files (`*.cel.test.yaml`: an input document and the ids of the
//! rules that must fire) against the rules of the matching `*.cel.yaml`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use regex::Regex;
use regorus::Value;
use serde::{Deserialize, Serialize};

use super::{PolicyEnv, PolicyError, PolicySource, SourceKind, rego};

/// The outcome of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Error,
    Skip,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::Error => "ERROR",
            Self::Skip => "SKIPPED",
        }
    }
}

/// One test's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TestResult {
    /// `data.cupcake_test.test_x` for Rego; `file#case name` for CEL fixtures.
    pub name: String,
    /// The file the test is in.
    pub file: String,
    /// Line of the test rule (Rego) or 0.
    pub line: u32,
    pub outcome: Outcome,
    /// Why it failed or errored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(rename = "durationNs")]
    pub duration_ns: u128,
}

/// All results of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TestReport {
    pub tests: Vec<TestResult>,
    /// Files that failed to load (each also counts as an error).
    pub errors: Vec<String>,
}

impl TestReport {
    pub fn count(&self, o: Outcome) -> usize {
        self.tests.iter().filter(|t| t.outcome == o).count()
    }

    /// Failures and errors, load errors included.
    pub fn failed(&self) -> usize {
        self.count(Outcome::Fail) + self.count(Outcome::Error) + self.errors.len()
    }

    /// `N passed, N failed` (plus errors and skips when there are any).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} passed, {} failed",
            self.count(Outcome::Pass),
            self.count(Outcome::Fail)
        );
        let errors = self.count(Outcome::Error) + self.errors.len();
        if errors > 0 {
            s.push_str(&format!(", {errors} errors"));
        }
        let skipped = self.count(Outcome::Skip);
        if skipped > 0 {
            s.push_str(&format!(", {skipped} skipped"));
        }
        s
    }

    /// opa-test-like text: one line per test, then the summary.
    pub fn text(&self, verbose: bool) -> String {
        let mut o = String::new();
        for e in &self.errors {
            o.push_str(&format!("ERROR {e}\n"));
        }
        for t in &self.tests {
            if !verbose && t.outcome == Outcome::Pass {
                continue;
            }
            o.push_str(&format!(
                "{:<7} {} ({}:{}) ({:.1?})\n",
                t.outcome.as_str(),
                t.name,
                t.file,
                t.line,
                Duration::from_nanos(t.duration_ns as u64)
            ));
            if let Some(m) = &t.message {
                for l in m.lines() {
                    o.push_str(&format!("        {l}\n"));
                }
            }
        }
        o.push_str(&"-".repeat(80));
        o.push('\n');
        o.push_str(&self.summary());
        o.push('\n');
        o
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixtures {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    input: serde_json::Value,
    #[serde(default)]
    expect: Vec<String>,
}

/// Run every test of `sources`; `filter` selects tests by name like `opa test --run`.
pub fn run(sources: &[PolicySource], filter: Option<&Regex>) -> TestReport {
    let mut report = TestReport::default();
    run_rego(sources, filter, &mut report);
    run_cel(sources, filter, &mut report);
    report
}

fn run_rego(sources: &[PolicySource], filter: Option<&Regex>, report: &mut TestReport) {
    let rego: Vec<&PolicySource> = sources
        .iter()
        .filter(|s| {
            matches!(
                SourceKind::of(&s.path),
                Some(SourceKind::Rego | SourceKind::RegoTest)
            )
        })
        .collect();
    if !rego
        .iter()
        .any(|s| SourceKind::of(&s.path) == Some(SourceKind::RegoTest))
    {
        return;
    }
    let (mut engine, errors) = rego::engine_with(&rego);
    report
        .errors
        .extend(errors.iter().map(PolicyError::to_string));
    let mut seen = BTreeSet::new();
    let tests: Vec<(String, String, u32)> = rego::rule_heads(&mut engine)
        .into_iter()
        .filter(|(_, name, _, _)| name.starts_with("test_") || name.starts_with("todo_test_"))
        .filter_map(|(pkg, name, file, line)| {
            let path = format!("data.{pkg}.{name}");
            seen.insert(path.clone()).then_some((path, file, line))
        })
        .collect();
    for (path, file, line) in tests {
        if filter.is_some_and(|re| !re.is_match(&path)) {
            continue;
        }
        let start = Instant::now();
        let (outcome, message) = if path
            .rsplit('.')
            .next()
            .is_some_and(|n| n.starts_with("todo_test_"))
        {
            (Outcome::Skip, None)
        } else {
            let mut e = engine.clone();
            e.set_input(Value::Undefined);
            match e.eval_rule(path.clone()) {
                Ok(Value::Bool(true)) => (Outcome::Pass, None),
                Ok(Value::Undefined) => (Outcome::Fail, None),
                Ok(other) => (
                    Outcome::Fail,
                    Some(format!(
                        "evaluated to {}",
                        other.to_json_str().unwrap_or_default()
                    )),
                ),
                Err(err) => (
                    Outcome::Error,
                    Some(rego::error_from(&file, &err).to_string()),
                ),
            }
        };
        report.tests.push(TestResult {
            name: path,
            file,
            line,
            outcome,
            message,
            duration_ns: start.elapsed().as_nanos(),
        });
    }
}

fn run_cel(sources: &[PolicySource], filter: Option<&Regex>, report: &mut TestReport) {
    for fx in sources
        .iter()
        .filter(|s| SourceKind::of(&s.path) == Some(SourceKind::CelTest))
    {
        let rules_path = fx.path.replace(".cel.test.", ".cel.");
        let Some(rules) = sources.iter().find(|s| s.path == rules_path) else {
            report.errors.push(format!(
                "{}: no rule file {rules_path} next to the fixtures",
                fx.path
            ));
            continue;
        };
        let fixtures: Fixtures = match yaml_serde::from_str(&fx.text) {
            Ok(f) => f,
            Err(e) => {
                report.errors.push(format!("{}: not a CEL fixture file (`cases: [{{name, input, expect: [rule ids]}}]`): {e}", fx.path));
                continue;
            }
        };
        let env = PolicyEnv::build(std::slice::from_ref(rules));
        if !env.errors().is_empty() {
            report
                .errors
                .extend(env.errors().iter().map(PolicyError::to_string));
            continue;
        }
        for c in fixtures.cases {
            let name = format!("{}#{}", fx.path, c.name);
            if filter.is_some_and(|re| !re.is_match(&name)) {
                continue;
            }
            let start = Instant::now();
            let (found, errors) = env.evaluate_cel_file(&c.input, &rules.path);
            let got: BTreeSet<String> = found.into_iter().map(|f| f.id).collect();
            let want: BTreeSet<String> = c.expect.into_iter().collect();
            let (outcome, message) = if !errors.is_empty() {
                (
                    Outcome::Error,
                    Some(
                        errors
                            .iter()
                            .map(PolicyError::to_string)
                            .collect::<Vec<_>>()
                            .join("\n"),
                    ),
                )
            } else if got == want {
                (Outcome::Pass, None)
            } else {
                (
                    Outcome::Fail,
                    Some(format!("expected {want:?} to fire, got {got:?}")),
                )
            };
            report.tests.push(TestResult {
                name,
                file: fx.path.clone(),
                line: 0,
                outcome,
                message,
                duration_ns: start.elapsed().as_nanos(),
            });
        }
    }
}
