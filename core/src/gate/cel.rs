//! CEL rules from `*.cel.yaml`: one expression per rule that must be true for
//! the plan to pass. Compiled once; each evaluation binds the input's
//! top-level keys (only those some expression references) as variables.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

use regex::Regex;
use std::sync::Arc;

use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Program, Value};
use cupcake_api::KubeVersion;
use cupcake_api::plan::Severity;
use serde::Deserialize;

use super::{PolicyError, PolicySource, RawFinding, RuleKind};
use crate::yamlpos;

/// The input document's top-level keys, each a CEL variable.
pub const VARIABLES: [&str; 6] = ["plan", "cluster", "schedule", "source", "now", "config"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CelFile {
    rules: Vec<CelRuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CelRuleSpec {
    id: String,
    expression: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    message_expression: Option<String>,
    action: Action,
    #[serde(default)]
    forceable: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Action {
    Deny,
    Warn,
    Defer,
}

#[derive(Debug)]
enum Message {
    Static(String),
    Expr(Program),
}

/// One compiled CEL rule.
#[derive(Debug)]
pub(crate) struct CelRule {
    pub id: String,
    pub file: String,
    pub line: Option<u32>,
    kind: RuleKind,
    forceable: bool,
    program: Program,
    message: Message,
    /// Expression texts, for the field analysis.
    sources: Vec<String>,
}

static FIELD_USE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(plan|cluster|schedule|source|now|config)\b(\s*\.\s*([A-Za-z_][A-Za-z0-9_]*))?")
        .expect("static regex")
});

/// Which input keys (and fields of them) the expressions use. Over-approximates:
/// a key used other than as `key.field` (passed whole, indexed, in a string) is taken whole.
fn field_uses<'a>(
    exprs: impl Iterator<Item = &'a str>,
) -> BTreeMap<&'static str, Option<BTreeSet<String>>> {
    let mut used: BTreeMap<&'static str, Option<BTreeSet<String>>> = BTreeMap::new();
    for e in exprs {
        for c in FIELD_USE.captures_iter(e) {
            let Some(var) = VARIABLES.iter().find(|v| **v == &c[1]) else {
                continue;
            };
            let entry = used.entry(var).or_insert_with(|| Some(BTreeSet::new()));
            match (c.get(3), entry.as_mut()) {
                (Some(field), Some(fields)) => {
                    fields.insert(field.as_str().to_string());
                }
                (None, _) => *entry = None,
                (Some(_), None) => {}
            }
        }
    }
    used
}

/// The compiled CEL side of a pack.
pub(crate) struct CelPack {
    env: Arc<Env>,
    pub rules: Vec<CelRule>,
    /// Input keys some rule references, and which of their fields (`None`: all);
    /// only these are converted per evaluation, so rules about the plan do not pay
    /// for converting 5,000 nodes.
    used: BTreeMap<&'static str, Option<BTreeSet<String>>>,
}

impl std::fmt::Debug for CelPack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CelPack")
            .field("rules", &self.rules)
            .field("used", &self.used)
            .finish_non_exhaustive()
    }
}

fn semver(f: &str, s: &str) -> Result<KubeVersion, ExecutionError> {
    KubeVersion::parse(s).map_err(|e| ExecutionError::function_error(f, e))
}

/// `semver_compare(a, b)`: -1, 0 or 1, SemVer order (a leading `v` is fine, pre-releases sort first).
fn semver_compare(a: Arc<String>, b: Arc<String>) -> Result<Value, ExecutionError> {
    let (a, b) = (semver("semver_compare", &a)?, semver("semver_compare", &b)?);
    Ok(Value::Int(a.cmp(&b) as i64))
}
fn semver_major(a: Arc<String>) -> Result<Value, ExecutionError> {
    Ok(Value::Int(semver("semver_major", &a)?.major as i64))
}
fn semver_minor(a: Arc<String>) -> Result<Value, ExecutionError> {
    Ok(Value::Int(semver("semver_minor", &a)?.minor as i64))
}
fn semver_patch(a: Arc<String>) -> Result<Value, ExecutionError> {
    Ok(Value::Int(semver("semver_patch", &a)?.patch as i64))
}
fn semver_valid(a: Arc<String>) -> bool {
    KubeVersion::parse(&a).is_ok()
}

/// JSON to CEL. Integers become `int` whenever they fit (serde would make
/// non-negative ones `uint`, and CEL does not mix the two in arithmetic).
pub(crate) fn to_cel(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::UInt(u),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::String(Arc::new(s.clone())),
        J::Array(a) => Value::List(Arc::new(a.iter().map(to_cel).collect())),
        J::Object(o) => {
            let m: HashMap<Key, Value> = o
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            Value::Map(Map { map: Arc::new(m) })
        }
    }
}

/// A context with the CUPCAKE functions and no variables.
fn context(env: &Arc<Env>) -> Context<'static, 'static> {
    let mut ctx = Context::with_env(env.clone());
    // Names are ours and unique: declaration conflicts cannot happen, so errors are ignored.
    let _ = ctx.add_function("semver_compare", semver_compare);
    let _ = ctx.add_function("semver_major", semver_major);
    let _ = ctx.add_function("semver_minor", semver_minor);
    let _ = ctx.add_function("semver_patch", semver_patch);
    let _ = ctx.add_function("semver_valid", semver_valid);
    ctx
}

fn parse_error(file: &str, text: &str, field: &str, e: &cel::ParseErrors) -> PolicyError {
    let at = yamlpos::locate(text, &yamlpos::parse_path(field));
    // CEL positions are within the expression: report the expression's own line,
    // and the column inside it in the message.
    let detail = e
        .errors
        .iter()
        .map(|x| format!("{}:{}: {}", x.pos.0, x.pos.1, x.msg))
        .collect::<Vec<_>>()
        .join("; ");
    PolicyError {
        file: file.to_string(),
        line: at.map(|p| p.0 as u32),
        col: at.map(|p| p.1 as u32),
        message: format!("{field}: invalid CEL (expression line:col {detail})"),
    }
}

impl CelPack {
    pub(crate) fn build(sources: &[PolicySource]) -> (Self, Vec<PolicyError>) {
        let env = Arc::new(Env::stdlib());
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        let mut ids = BTreeSet::new();
        for s in sources {
            if let Some(at) = crate::yamlpos::too_deep(&s.text) {
                errors.push(super::too_deep_error(
                    &s.path,
                    at,
                    "the YAML",
                    yamlpos::MAX_FLOW_DEPTH,
                ));
                continue;
            }
            let file = match yaml_serde::from_str::<CelFile>(&s.text) {
                Ok(f) => f,
                Err(e) => {
                    let loc = e.location();
                    errors.push(PolicyError {
                        file: s.path.clone(),
                        line: loc.as_ref().map(|l| l.line() as u32),
                        col: loc.as_ref().map(|l| l.column() as u32),
                        message: format!(
                            "not a CEL rule file ({}); expected `rules: [{{id, expression, message | messageExpression, action: deny|warn|defer, forceable}}]`",
                            e.to_string().split(" at line ").next().unwrap_or_default()
                        ),
                    });
                    continue;
                }
            };
            for (i, r) in file.rules.into_iter().enumerate() {
                let at = |field: &str| format!("rules[{i}].{field}");
                let pos = |field: &str| yamlpos::locate(&s.text, &yamlpos::parse_path(&at(field)));
                let bad = |field: &str, message: String| {
                    let p = pos(field);
                    PolicyError {
                        file: s.path.clone(),
                        line: p.map(|p| p.0 as u32),
                        col: p.map(|p| p.1 as u32),
                        message,
                    }
                };
                if r.id.trim().is_empty() {
                    errors.push(bad("id", format!("{}: empty rule id", at("id"))));
                    continue;
                }
                if !ids.insert(r.id.clone()) {
                    errors.push(bad(
                        "id",
                        format!("{}: duplicate rule id {:?}", at("id"), r.id),
                    ));
                    continue;
                }
                let deep = std::iter::once((&r.expression, "expression"))
                    .chain(
                        r.message_expression
                            .iter()
                            .map(|m| (m, "messageExpression")),
                    )
                    .find(|(t, _)| super::too_deep(t, "'\"", None).is_some());
                if let Some((_, field)) = deep {
                    let p = yamlpos::locate(&s.text, &yamlpos::parse_path(&at(field)));
                    errors.push(super::too_deep_error(
                        &s.path,
                        p.unwrap_or((1, 1)),
                        &at(field),
                        super::MAX_NESTING,
                    ));
                    continue;
                }
                let program = match env.compile(&r.expression) {
                    Ok(p) => p,
                    Err(e) => {
                        errors.push(parse_error(&s.path, &s.text, &at("expression"), &e));
                        continue;
                    }
                };
                let mut texts = vec![r.expression.clone()];
                texts.extend(r.message_expression.clone());
                let message = match (r.message, r.message_expression) {
                    (Some(m), None) => Message::Static(m),
                    (None, Some(m)) => match env.compile(&m) {
                        Ok(p) => Message::Expr(p),
                        Err(e) => {
                            errors.push(parse_error(
                                &s.path,
                                &s.text,
                                &at("messageExpression"),
                                &e,
                            ));
                            continue;
                        }
                    },
                    _ => {
                        errors.push(bad(
                            "id",
                            format!(
                                "{}: give exactly one of message and messageExpression",
                                at("id")
                            ),
                        ));
                        continue;
                    }
                };
                let kind = match r.action {
                    Action::Deny => RuleKind::Deny,
                    Action::Warn => RuleKind::Warn,
                    Action::Defer => RuleKind::Defer,
                };
                rules.push(CelRule {
                    id: r.id,
                    file: s.path.clone(),
                    line: pos("id").map(|p| p.0 as u32),
                    kind,
                    forceable: r.forceable,
                    program,
                    message,
                    sources: texts,
                });
            }
        }
        let used = field_uses(
            rules
                .iter()
                .flat_map(|r| r.sources.iter().map(String::as_str)),
        );
        (Self { env, rules, used }, errors)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Evaluate every rule; `only` restricts to rules of one file (fixtures).
    pub(crate) fn evaluate(
        &self,
        input: &serde_json::Value,
        only: Option<&str>,
    ) -> (Vec<RawFinding>, Vec<PolicyError>) {
        let mut findings = Vec::new();
        let mut errors = Vec::new();
        let rules: Vec<&CelRule> = self
            .rules
            .iter()
            .filter(|r| only.is_none_or(|f| r.file == f))
            .collect();
        if rules.is_empty() {
            return (findings, errors);
        }
        let mut ctx = context(&self.env);
        for (key, fields) in &self.used {
            let v = match (input.get(*key), fields) {
                (None, _) => Value::Null,
                (Some(serde_json::Value::Object(o)), Some(fields)) => {
                    let m: HashMap<Key, Value> = fields
                        .iter()
                        .filter_map(|f| {
                            o.get(f)
                                .map(|x| (Key::String(Arc::new(f.clone())), to_cel(x)))
                        })
                        .collect();
                    Value::Map(Map { map: Arc::new(m) })
                }
                (Some(v), _) => to_cel(v),
            };
            ctx.add_variable_from_value(*key, v);
        }
        for r in rules {
            let err = |message: String| PolicyError {
                file: r.file.clone(),
                line: r.line,
                col: None,
                message,
            };
            match r.program.execute(&ctx) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => {
                    let msg = match &r.message {
                        Message::Static(m) => m.clone(),
                        Message::Expr(p) => match p.execute(&ctx) {
                            Ok(Value::String(s)) => s.to_string(),
                            Ok(other) => {
                                errors.push(err(format!("rule {}: messageExpression must return a string, got {other:?}", r.id)));
                                continue;
                            }
                            Err(e) => {
                                errors.push(err(format!(
                                    "rule {}: messageExpression failed: {e}",
                                    r.id
                                )));
                                continue;
                            }
                        },
                    };
                    findings.push(RawFinding {
                        kind: r.kind,
                        id: r.id.clone(),
                        msg,
                        forceable: r.forceable,
                        until: None,
                        source: r.file.clone(),
                    });
                }
                Ok(other) => errors.push(err(format!(
                    "rule {}: expression must return a bool (true passes), got {other:?}",
                    r.id
                ))),
                Err(e) => errors.push(err(format!("rule {}: evaluation failed: {e}", r.id))),
            }
        }
        (findings, errors)
    }
}

/// Severity of a CEL/Rego rule kind.
pub(crate) fn severity(kind: RuleKind) -> Severity {
    match kind {
        RuleKind::Deny => Severity::Deny,
        RuleKind::Warn => Severity::Warn,
        RuleKind::Defer => Severity::Defer,
    }
}
