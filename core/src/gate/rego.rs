//! Rego with regorus: every `.rego` file of the pack in one engine, compiled
//! once, then compiled again to regorus' RVM bytecode. Each evaluation runs a
//! fresh VM on the shared program (several times faster than the tree-walking
//! interpreter) and reads `data.cupcake.deny`, `warn` and `defer`. The VM runs
//! only the default pack as shipped (verified against the interpreter and OPA):
//! it evaluates conflicting complete-rule values to undefined where the
//! interpreter reports an error, which would fail open on arbitrary policies.
//! Every other pack, and any VM run-time error, goes to the interpreter (a
//! clone of the prepared engine), so errors keep their `file:line:col`.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::{Program, RegoVM};
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
            let rest = text[c.get(0).map_or(0, |m| m.end())..]
                .trim_end()
                .to_string();
            let rest = rest
                .lines()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n");
            let msg = text.lines().last().unwrap_or_default().trim().to_string();
            PolicyError {
                file,
                line,
                col,
                message: format!("{msg}\n{rest}"),
            }
        }
        None => PolicyError {
            file: fallback_file.to_string(),
            line: None,
            col: None,
            message: text.trim().to_string(),
        },
    }
}

/// Whether `s` is a file of the default pack as shipped.
fn is_pack(path: &str, text: Option<&str>) -> bool {
    super::pack::FILES
        .iter()
        .any(|(p, t)| *p == path && text.is_none_or(|x| x == *t))
}

/// A Rego string literal (blanked out before looking for names).
static STRING: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#""(?:[^"\\]|\\.)*"|`[^`]*`"#).expect("static regex"));
static IDENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z_][A-Za-z0-9_]*").expect("static regex"));

/// The name of the rule or function defined at the start of `line`, if any.
fn head_name(line: &str) -> Option<&str> {
    if line.starts_with(|c: char| c.is_whitespace() || c == '#') {
        return None;
    }
    let m = IDENT.find(line).filter(|m| m.start() == 0)?;
    let name = m.as_str();
    let rest = line[m.end()..].trim_start();
    let is_head = rest.is_empty()
        || ["(", ":=", "=", "if", "contains", "[", "{"]
            .iter()
            .any(|t| rest.starts_with(t));
    (is_head && !matches!(name, "package" | "import" | "default")).then_some(name)
}

/// Where a word occurs in `text` outside comments: (line, col), 1-based.
fn find_word(text: &str, word: &str, definition: bool) -> Option<(u32, u32)> {
    for (i, line) in text.lines().enumerate() {
        let code = STRING.replace_all(
            line.split('#').next().unwrap_or_default(),
            |c: &regex::Captures<'_>| " ".repeat(c[0].len()),
        );
        let code = code.as_ref();
        if definition {
            if head_name(code) == Some(word) {
                return Some((i as u32 + 1, 1));
            }
            continue;
        }
        if head_name(code) == Some(word) {
            continue; // its own definition is not a use
        }
        if let Some(m) = IDENT.find_iter(code).find(|m| m.as_str() == word) {
            return Some((i as u32 + 1, m.start() as u32 + 1));
        }
    }
    None
}

/// An error regorus places in a default-pack file while fleet files are loaded:
/// the pack passes its own tests (and OPA's) alone, so a fleet file caused it —
/// by redefining a rule or function the failing pack line uses, or by calling a
/// pack function with a value it cannot take. Re-point the error at that fleet
/// file and line, keeping the pack position in the message; when no fleet line
/// can be found, name the fleet files. Errors elsewhere are returned as they are.
pub(crate) fn blame_fleet(err: PolicyError, sources: &[&PolicySource]) -> PolicyError {
    let fleet: Vec<&PolicySource> = sources
        .iter()
        .copied()
        .filter(|s| !is_pack(&s.path, Some(&s.text)) && s.path.ends_with(".rego"))
        .collect();
    if fleet.is_empty() || !is_pack(&err.file, None) {
        return err;
    }
    let pack_text = super::pack::FILES
        .iter()
        .find(|(p, _)| *p == err.file)
        .map_or("", |(_, t)| *t);
    let lines: Vec<&str> = pack_text.lines().collect();
    let at = err.line.map_or(0, |l| l as usize);
    // The rule the error is in, and every name on the failing line.
    let enclosing = (1..=at.min(lines.len()))
        .rev()
        .find_map(|l| head_name(lines[l - 1]));
    let on_line: Vec<&str> = lines
        .get(at.wrapping_sub(1))
        .map(|l| IDENT.find_iter(l).map(|m| m.as_str()).collect())
        .unwrap_or_default();
    let own = |n: &str| RuleKind::parse(n).is_none() && n != "input" && n != "data";
    let pos = match (err.line, err.col) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", err.file),
        (Some(l), None) => format!("{}:{l}", err.file),
        _ => err.file.clone(),
    };
    let (first, excerpt) = err.message.split_once('\n').unwrap_or((&err.message, ""));
    let redefined = enclosing
        .into_iter()
        .chain(on_line.iter().copied())
        .filter(|n| own(n));
    for name in redefined {
        for f in &fleet {
            if let Some((line, col)) = find_word(&f.text, name, true) {
                return PolicyError {
                    file: f.path.clone(),
                    line: Some(line),
                    col: Some(col),
                    message: format!(
                        "{first} — raised in the default pack at {pos}, which uses `{name}`; this file defines `{name}` too (rename your rule)\n{excerpt}"
                    ),
                };
            }
        }
    }
    if let Some(name) = enclosing.filter(|n| own(n)) {
        for f in &fleet {
            if let Some((line, col)) = find_word(&f.text, name, false) {
                return PolicyError {
                    file: f.path.clone(),
                    line: Some(line),
                    col: Some(col),
                    message: format!(
                        "{first} — raised in the default pack's `{name}` at {pos}, called here\n{excerpt}"
                    ),
                };
            }
        }
    }
    let files: Vec<&str> = fleet.iter().map(|f| f.path.as_str()).collect();
    PolicyError {
        file: files.join(", "),
        line: None,
        col: None,
        message: format!(
            "{first} — raised in the default pack at {pos}, which passes its tests alone: one of the fleet's policy files causes it\n{excerpt}"
        ),
    }
}

/// A rule that always exists: regorus compiles towards an entry point that must exist,
/// and a pack need not define all of deny/warn/defer.
const ANCHOR_PATH: &str = "data.cupcake_internal.anchor";
const ANCHOR: &str = "package cupcake_internal\n\nanchor := true\n";

/// The time limit of one evaluation, for the interpreter and the VM.
fn timer() -> ExecutionTimerConfig {
    ExecutionTimerConfig {
        limit: EVAL_LIMIT,
        check_interval: NonZeroU32::new(64).unwrap_or(NonZeroU32::MIN),
    }
}

/// Instruction budget of the VM per entry point (the time limit is the real bound).
const MAX_INSTRUCTIONS: usize = 500_000_000;

type KeyCache<'a> = HashMap<&'a str, Value, super::FnvBuild>;

/// JSON to a regorus value, sharing one allocation per distinct object key
/// (a 5,000-node input repeats the same dozen keys tens of thousands of times).
pub(crate) fn to_rego(v: &serde_json::Value) -> Value {
    fn go<'a>(v: &'a serde_json::Value, keys: &mut KeyCache<'a>) -> Value {
        use serde_json::Value as J;
        match v {
            J::Null => Value::Null,
            J::Bool(b) => Value::from(*b),
            J::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Value::from(i),
                (None, Some(u)) => Value::from(u),
                _ => Value::from(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::from(s.as_str()),
            J::Array(a) => Value::from(a.iter().map(|x| go(x, keys)).collect::<Vec<_>>()),
            J::Object(o) => {
                let mut m = BTreeMap::new();
                for (k, x) in o {
                    let key = keys
                        .entry(k.as_str())
                        .or_insert_with(|| Value::from(k.as_str()))
                        .clone();
                    m.insert(key, go(x, keys));
                }
                Value::from(m)
            }
        }
    }
    go(v, &mut KeyCache::default())
}

/// Add every source to a fresh engine; files that do not parse are returned as errors.
pub(crate) fn engine_with(sources: &[&PolicySource]) -> (Engine, Vec<PolicyError>) {
    let mut engine = Engine::new();
    if let Err(e) = engine.add_policy("<cupcake>".to_string(), ANCHOR.to_string()) {
        return (engine, vec![error_from("<cupcake>", &e)]);
    }
    engine.set_execution_timer_config(timer());
    let mut errors = Vec::new();
    for s in sources {
        match engine.add_policy(s.path.clone(), s.text.clone()) {
            Err(e) => errors.push(error_from(&s.path, &e)),
            Ok(pkg) => {
                let is_rules = super::SourceKind::of(&s.path) == Some(super::SourceKind::Rego);
                if is_rules && pkg != "data.cupcake" {
                    let line = s
                        .text
                        .lines()
                        .position(|l| l.trim_start().starts_with("package "))
                        .map(|i| i as u32 + 1);
                    errors.push(PolicyError {
                        file: s.path.clone(),
                        line,
                        col: line.map(|_| 1),
                        message: format!(
                            "package {}: CUPCAKE evaluates rules only in `package cupcake`; rules in another package would never run (tests may live in any package, in *_test.rego files)",
                            pkg.trim_start_matches("data.")
                        ),
                    });
                }
                errors.extend(unsupported_builtins(s));
                errors.extend(recursive_functions(s));
            }
        }
    }
    (engine, errors)
}

/// Builtins regorus accepts but does not carry out (they evaluate to undefined, so a rule
/// using one would silently never fire): refused with their position.
const STUBBED_BUILTINS: &[&str] = &["http.send"];

static CALL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b([a-z_][A-Za-z0-9_]*(?:\.[a-z_][A-Za-z0-9_]*)+)\s*\(").expect("static regex")
});

fn unsupported_builtins(s: &PolicySource) -> Vec<PolicyError> {
    let mut out = Vec::new();
    for (i, line) in s.text.lines().enumerate() {
        let code = line.split('#').next().unwrap_or("");
        for c in CALL.captures_iter(code) {
            let name = &c[1];
            if STUBBED_BUILTINS.contains(&name) {
                out.push(PolicyError {
                    file: s.path.clone(),
                    line: Some(i as u32 + 1),
                    col: c.get(1).map(|m| m.start() as u32 + 1),
                    message: format!(
                        "{name} is not supported by CUPCAKE's Rego engine (regorus evaluates it to undefined, so this rule would never fire); policies must decide from `input` and `data` alone"
                    ),
                });
            }
        }
    }
    out
}

static FN_CALL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^A-Za-z0-9_.])([a-z_][A-Za-z0-9_]*)\s*\(").expect("static regex")
});

/// Functions of one file that call themselves, directly or through each other. Rego
/// forbids recursion; regorus detects it for rules but not for functions, and
/// `f(x) := f(x + 1)` overflowed the stack and aborted the process. Functions are
/// found by their heads at the start of a line (how `opa fmt` writes them), calls by
/// name in the lines up to the next head.
fn recursive_functions(s: &PolicySource) -> Vec<PolicyError> {
    let lines: Vec<&str> = s
        .text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect();
    // (name, first line) of each function head, and the calls in its body.
    let mut defs: BTreeMap<String, u32> = BTreeMap::new();
    let mut calls: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (i, line) in lines.iter().enumerate() {
        let starts_head = line.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
        let mut body = *line;
        if starts_head {
            current = FN_CALL
                .captures(line)
                .filter(|c| c.get(1).is_some_and(|m| m.start() == 0))
                .map(|c| c[1].to_string());
            if let Some(name) = &current {
                defs.entry(name.clone()).or_insert(i as u32 + 1);
                body = &line[name.len()..];
            }
        }
        if let Some(name) = &current {
            let set = calls.entry(name.clone()).or_default();
            set.extend(FN_CALL.captures_iter(body).map(|c| c[1].to_string()));
        }
    }
    let mut out = Vec::new();
    for (name, line) in &defs {
        // Is `name` reachable from itself?
        let mut seen = std::collections::BTreeSet::new();
        let mut todo: Vec<&String> = calls.get(name).into_iter().flatten().collect();
        let mut cyclic = false;
        while let Some(n) = todo.pop() {
            if n == name {
                cyclic = true;
                break;
            }
            if defs.contains_key(n) && seen.insert(n) {
                todo.extend(calls.get(n).into_iter().flatten());
            }
        }
        if cyclic {
            out.push(PolicyError {
                file: s.path.clone(),
                line: Some(*line),
                col: Some(1),
                message: format!(
                    "function {name} calls itself (directly or through other functions): Rego does not allow recursion"
                ),
            });
        }
    }
    out
}

/// `(package, rule name, file, line)` of one rule.
pub(crate) type RuleHead = (String, String, String, u32);

/// Every rule in the engine, sorted by file and line.
/// Compiling is how regorus exposes its rule table (its AST types are private);
/// a compile error yields no heads (the caller reports the error from its own compile).
/// Compiles `engine` in place, so its clones share the prepared policy.
pub(crate) fn rule_heads(engine: &mut Engine) -> Vec<RuleHead> {
    rule_heads_compiled(engine).0
}

fn rule_heads_compiled(engine: &mut Engine) -> (Vec<RuleHead>, Option<regorus::CompiledPolicy>) {
    let Ok(compiled) = engine.compile_with_entrypoint(&ANCHOR_PATH.into()) else {
        return (Vec::new(), None);
    };
    let mut out = Vec::new();
    for (path, rules) in compiled.get_rules() {
        let path = path.trim_start_matches("data.");
        let Some((pkg, name)) = path.rsplit_once('.') else {
            continue;
        };
        for r in rules {
            let span = r.span();
            out.push((
                pkg.to_string(),
                name.to_string(),
                span.source.get_path().clone(),
                span.line,
            ));
        }
    }
    out.sort_by(|a, b| (&a.2, a.3).cmp(&(&b.2, b.3)));
    (out, Some(compiled))
}

/// The compiled Rego side of a pack.
#[derive(Debug, Clone)]
pub(crate) struct RegoPack {
    /// Prepared engine; cloned per evaluation when the VM cannot be used.
    engine: Engine,
    /// The pack as RVM bytecode with deny/warn/defer as entry points, when the RVM compiles it.
    program: Option<std::sync::Arc<Program>>,
    /// Which of deny/warn/defer some file defines in `package cupcake`.
    defined: Vec<RuleKind>,
    /// Files defining each rule kind, for errors that cannot be pinned on one file.
    head_files: BTreeMap<RuleKind, Vec<String>>,
    /// Every deny/warn/defer definition: kind, file, line (for `--explain`).
    pub(crate) heads: Vec<(RuleKind, String, u32)>,
    /// Id-like string literals → the first file they appear in (default pack first).
    id_files: BTreeMap<String, String>,
    /// The compiled files, to pin an error raised in the default pack on the fleet file causing it.
    sources: Vec<PolicySource>,
}

impl RegoPack {
    /// Id-like string literals of the Rego files: the rule ids they can report.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &str> {
        self.id_files.keys().map(String::as_str)
    }

    /// Compile the sources. Files that fail to parse or compile are dropped and returned
    /// as errors; the rest still evaluate (the errors deny on their own).
    pub(crate) fn build(sources: &[PolicySource]) -> (Option<Self>, Vec<PolicyError>) {
        let mut errors = Vec::new();
        let mut active: Vec<&PolicySource> = Vec::new();
        for s in sources {
            match super::too_deep(&s.text, "\"`", Some('#')) {
                Some(at) => errors.push(super::too_deep_error(
                    &s.path,
                    at,
                    "the file",
                    super::MAX_NESTING,
                )),
                None => active.push(s),
            }
        }
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
            // Compiling surfaces errors that span files (conflicts, unsafe variables, unknown functions).
            if let Err(e) = engine.compile_with_entrypoint(&ANCHOR_PATH.into()) {
                let err = blame_fleet(error_from("policies", &e), &active);
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
            let (heads, compiled) = rule_heads_compiled(&mut engine);
            let mut head_files: BTreeMap<RuleKind, Vec<String>> = BTreeMap::new();
            let mut kinds = Vec::new();
            for (pkg, name, file, line) in &heads {
                if let Some(kind) = RuleKind::parse(name).filter(|_| pkg == "cupcake") {
                    kinds.push((kind, file.clone(), *line));
                    let v = head_files.entry(kind).or_default();
                    if !v.contains(file) {
                        v.push(file.clone());
                    }
                }
            }
            let defined: Vec<RuleKind> = head_files.keys().copied().collect();
            let mut id_files = BTreeMap::new();
            for s in &active {
                for c in ID_LITERAL.captures_iter(&s.text) {
                    id_files
                        .entry(c[1].to_string())
                        .or_insert_with(|| s.path.clone());
                }
            }
            let entry: Vec<String> = defined.iter().map(RuleKind::path).collect();
            let entry: Vec<&str> = entry.iter().map(String::as_str).collect();
            // The VM only runs the default pack as shipped: it is checked against the
            // interpreter (tests/gate_engine.rs) and OPA, whereas the VM does not report
            // some errors the interpreter does (conflicting values of a complete rule
            // evaluate to undefined instead), which would fail open on arbitrary policies.
            let shipped = active.iter().all(|s| {
                super::pack::FILES
                    .iter()
                    .any(|(p, t)| *p == s.path && *t == s.text)
            });
            let program = compiled
                .filter(|_| shipped)
                .and_then(|c| Compiler::compile_from_policy(&c, &entry).ok());
            return (
                Some(Self {
                    engine,
                    program,
                    defined,
                    head_files,
                    heads: kinds,
                    id_files,
                    sources: active.iter().map(|s| (*s).clone()).collect(),
                }),
                errors,
            );
        }
        (None, errors)
    }

    /// Evaluate deny/warn/defer against `input`. Errors and malformed results become
    /// [`PolicyError`]s; well-formed results become raw findings with their source file.
    pub(crate) fn evaluate(
        &self,
        input: &Value,
        use_vm: bool,
    ) -> (Vec<RawFinding>, Vec<PolicyError>) {
        let mut findings = Vec::new();
        let mut errors = Vec::new();
        let mut vm = self.program.as_ref().filter(|_| use_vm).map(|p| {
            let mut vm = RegoVM::new();
            vm.load_program(p.clone());
            vm.set_max_instructions(MAX_INSTRUCTIONS);
            vm.set_execution_timer_config(Some(timer()));
            vm.set_input(input.clone());
            vm
        });
        for kind in &self.defined {
            let fast = vm
                .as_mut()
                .and_then(|vm| vm.execute_entry_point_by_name(&kind.path()).ok());
            let result = match fast {
                Some(v) => Ok(v),
                None => self.interpret(*kind, input),
            };
            match result {
                Ok(v) => self.collect(*kind, &v, &mut findings, &mut errors),
                Err(e) => {
                    let sources: Vec<&PolicySource> = self.sources.iter().collect();
                    errors.push(blame_fleet(error_from(&self.files_of(*kind), &e), &sources));
                }
            }
        }
        (findings, errors)
    }

    /// One rule set on the interpreter (errors carry file:line:col).
    pub(crate) fn interpret(&self, kind: RuleKind, input: &Value) -> anyhow::Result<Value> {
        let mut engine = self.engine.clone();
        engine.set_input(input.clone());
        engine.eval_rule(kind.path())
    }

    /// Whether the pack runs on the VM.
    pub(crate) fn uses_vm(&self) -> bool {
        self.program.is_some()
    }

    /// The files defining `kind`, for errors that cannot be pinned on one file. The
    /// default pack is tested against OPA in CI, so when other files define the rule
    /// too, they are the suspects.
    fn files_of(&self, kind: RuleKind) -> String {
        let all = self.head_files.get(&kind).cloned().unwrap_or_default();
        let default: Vec<&str> = super::pack::FILES.iter().map(|(p, _)| *p).collect();
        let others: Vec<&String> = all
            .iter()
            .filter(|f| !default.contains(&f.as_str()))
            .collect();
        if others.is_empty() {
            all.join(", ")
        } else {
            others
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    fn collect(
        &self,
        kind: RuleKind,
        v: &Value,
        out: &mut Vec<RawFinding>,
        errors: &mut Vec<PolicyError>,
    ) {
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
                    f.source = self
                        .id_files
                        .get(&f.id)
                        .cloned()
                        .unwrap_or_else(|| self.files_of(kind));
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
    if s.chars().count() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s
    }
}
