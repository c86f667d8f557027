//! Rego with regorus: every `.rego` file of the pack in one engine, compiled
//! once; each evaluation clones the prepared engine (the compiled policy is
//! shared, not copied) and reads `data.cupcake.deny`, `warn` and `defer`.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use regorus::utils::limits::ExecutionTimerConfig;
use regorus::{Engine, Value};

use super::{PolicyError, PolicySource, RawFinding, RuleKind};

/// Wall-clock limit of one rule set's evaluation.
pub const EVAL_LIMIT: Duration = Duration::from_secs(2);

static LOCATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"--> ([^\n]+?):(\d+):(\d+)\n").expect("static regex"));
/// A string literal that looks like a rule id (`"org.no-fridays"`): where a finding's id is written.
static ID_LITERAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#""([A-Za-z][\w-]*(?:\.[\w-]+)+)""#).expect("static regex"));

/// Turn a regorus error (`\n--> file:line:col\n | code\n | ^\nerror: msg`) into a
/// [`PolicyError`] with its position and the caret excerpt kept in the message.
pub(crate) fn error_from(fallback_file: &str, e: &anyhow::Error) -> PolicyError {
    let text = format!("{e:#}");
    match LOCATION.captures(&text) {
        Some(c) => {
            let file = c[1].to_string();
            let line = c[2].parse().ok();
            let col = c[3].parse().ok();
            // Keep the excerpt with the caret, drop the `-->` line (the position is in front already).
            let rest = text[c.get(0).map_or(0, |m| m.end())..].trim_end().to_string();
            let rest = rest.lines().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n");
            let msg = text.lines().last().unwrap_or_default().trim().to_string();
            PolicyError { file, line, col, message: format!("{msg}\n{rest}") }
        }
        None => PolicyError { file: fallback_file.to_string(), line: None, col: None, message: text.trim().to_string() },
    }
}

/// Add every source to a fresh engine; files that do not parse are returned as errors.
pub(crate) fn engine_with(sources: &[&PolicySource]) -> (Engine, Vec<PolicyError>) {
    let mut engine = Engine::new();
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: EVAL_LIMIT,
        check_interval: NonZeroU32::new(64).unwrap_or(NonZeroU32::MIN),
    });
    let mut errors = Vec::new();
    for s in sources {
        if let Err(e) = engine.add_policy(s.path.clone(), s.text.clone()) {
            errors.push(error_from(&s.path, &e));
        }
    }
    (engine, errors)
}

/// `(package, rule name, file, line)` of every rule head in the engine's modules.
pub(crate) fn rule_heads(engine: &mut Engine) -> Vec<(String, String, String, u32)> {
    use regorus::ast::{Rule, RuleHead};
    let mut out = Vec::new();
    for m in engine.get_modules().iter() {
        let pkg = m.package.refr.span().text().trim_start_matches("data.").to_string();
        for r in &m.policy {
            let (refr, span) = match r.as_ref() {
                Rule::Spec { head, span, .. } => match head {
                    RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. } | RuleHead::Func { refr, .. } => (refr, span),
                },
                Rule::Default { refr, span, .. } => (refr, span),
            };
            let name = refr.span().text();
            // `deny contains x`, `a.b[c]`: the first segment names the rule.
            let name = name.split(['.', '[', ' ']).next().unwrap_or(name).to_string();
            out.push((pkg.clone(), name, span.source.get_path().clone(), span.line));
        }
    }
    out
}

/// The compiled Rego side of a pack.
#[derive(Debug, Clone)]
pub(crate) struct RegoPack {
    /// Prepared engine; cloned per evaluation.
    engine: Engine,
    /// Which of deny/warn/defer some file defines in `package cupcake`.
    defined: Vec<RuleKind>,
    /// Files defining each rule kind, for errors that cannot be pinned on one file.
    head_files: BTreeMap<RuleKind, Vec<String>>,
    /// Id-like string literals → the first file they appear in (default pack first).
    id_files: BTreeMap<String, String>,
}

impl RegoPack {
    /// Compile the sources. Files that fail to parse or compile are dropped and returned
    /// as errors; the rest still evaluate (the errors deny on their own).
    pub(crate) fn build(sources: &[PolicySource]) -> (Option<Self>, Vec<PolicyError>) {
        let mut active: Vec<&PolicySource> = sources.iter().collect();
        let mut errors = Vec::new();
        // Each round drops at most one file blamed by a compile error; a handful of rounds at most.
        for _ in 0..=sources.len() {
            let (mut engine, parse_errors) = engine_with(&active);
            if !parse_errors.is_empty() {
                active.retain(|s| !parse_errors.iter().any(|e| e.file == s.path));
                errors.extend(parse_errors);
                continue;
            }
            if active.is_empty() {
                return (None, errors);
            }
            let heads = rule_heads(&mut engine);
            let mut head_files: BTreeMap<RuleKind, Vec<String>> = BTreeMap::new();
            for (pkg, name, file, _) in &heads {
                if let Some(kind) = RuleKind::parse(name).filter(|_| pkg == "cupcake") {
                    let v = head_files.entry(kind).or_default();
                    if !v.contains(file) {
                        v.push(file.clone());
                    }
                }
            }
            let defined: Vec<RuleKind> = head_files.keys().copied().collect();
            // Compiling surfaces errors that span files (conflicts, unsafe variables, unknown functions).
            let compiled = match defined.first() {
                Some(k) => engine.compile_with_entrypoint(&k.path().into()).map(|_| ()),
                None => Ok(()),
            };
            if let Err(e) = compiled {
                let err = error_from("policies", &e);
                let blamed = active.iter().position(|s| s.path == err.file);
                errors.push(err);
                match blamed {
                    Some(i) => {
                        active.remove(i);
                        continue;
                    }
                    None => return (None, errors),
                }
            }
            let mut id_files = BTreeMap::new();
            for s in &active {
                for c in ID_LITERAL.captures_iter(&s.text) {
                    id_files.entry(c[1].to_string()).or_insert_with(|| s.path.clone());
                }
            }
            return (Some(Self { engine, defined, head_files, id_files }), errors);
        }
        (None, errors)
    }

    /// Evaluate deny/warn/defer against `input`. Errors and malformed results become
    /// [`PolicyError`]s; well-formed results become raw findings with their source file.
    pub(crate) fn evaluate(&self, input: &Value) -> (Vec<RawFinding>, Vec<PolicyError>) {
        let mut findings = Vec::new();
        let mut errors = Vec::new();
        for kind in &self.defined {
            let mut engine = self.engine.clone();
            engine.set_input(input.clone());
            match engine.eval_rule(kind.path()) {
                Ok(v) => self.collect(*kind, &v, &mut findings, &mut errors),
                Err(e) => errors.push(error_from(&self.files_of(*kind), &e)),
            }
        }
        (findings, errors)
    }

    fn files_of(&self, kind: RuleKind) -> String {
        self.head_files.get(&kind).map(|v| v.join(", ")).unwrap_or_default()
    }

    fn collect(&self, kind: RuleKind, v: &Value, out: &mut Vec<RawFinding>, errors: &mut Vec<PolicyError>) {
        let items: Vec<&Value> = match v {
            Value::Undefined => return,
            Value::Set(s) => s.iter().collect(),
            other => {
                errors.push(PolicyError {
                    file: self.files_of(kind),
                    line: None,
                    col: None,
                    message: format!(
                        "{} must be a set of objects (`{} contains {{\"id\": …, \"msg\": …}} if {{ … }}`), got {}",
                        kind.path(),
                        kind.as_str(),
                        short(other)
                    ),
                });
                return;
            }
        };
        for item in items {
            match RawFinding::from_value(kind, item) {
                Ok(mut f) => {
                    f.source = self.id_files.get(&f.id).cloned().unwrap_or_else(|| self.files_of(kind));
                    out.push(f);
                }
                Err(why) => {
                    let file = match item {
                        Value::Object(o) => o
                            .get(&Value::from("id"))
                            .and_then(|id| id.as_string().ok())
                            .and_then(|id| self.id_files.get(id.as_ref()).cloned()),
                        _ => None,
                    };
                    errors.push(PolicyError {
                        file: file.unwrap_or_else(|| self.files_of(kind)),
                        line: None,
                        col: None,
                        message: format!("{} produced {}: {why}", kind.path(), short(item)),
                    });
                }
            }
        }
    }
}

/// A value as JSON, shortened for messages.
fn short(v: &Value) -> String {
    let s = v.to_json_str().unwrap_or_else(|_| format!("{v:?}"));
    if s.chars().count() > 200 { format!("{}…", s.chars().take(200).collect::<String>()) } else { s }
}
