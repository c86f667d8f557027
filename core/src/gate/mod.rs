//! The policy gate: every plan passes it before anything touches a cluster.
//!
//! ```text
//! plan (PlanOutcome) + schedule::evaluate(now) ─► input::PolicyInput ─► PolicyEnv::evaluate ─► Decision
//! ```
//!
//! A [`PolicyEnv`] is built once from the default pack (compiled into the
//! binary, see [`pack`]) plus the fleet repo's `policies/`, and is immutable:
//! share it behind an `Arc` and evaluate as often as needed. Rego runs on
//! regorus (compiled once, each evaluation on a clone of the prepared engine,
//! with a time limit); CEL rules from `*.cel.yaml` on the `cel` crate.
//!
//! Fail closed: a file that does not parse, a rule that errors or returns the
//! wrong shape, becomes a non-forceable deny (`policy.error`) naming the file
//! and, where known, line and column. Loading never fails because of policy
//! content; only unreadable files are IO errors.
//!
//! ```
//! use cupcake_core::gate::PolicyEnv;
//! let env = PolicyEnv::default_pack();
//! assert!(env.errors().is_empty());
//! ```

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cupcake_api::plan::{Decision, Finding, Severity};

pub mod cel;
pub mod input;
pub mod pack;
pub mod rego;
pub mod testing;

pub use cupcake_api::policy::PolicyInput;
pub use input::InputParts;

/// FNV-1a: object keys are short and trusted (they come from our own types),
/// so a cheap hash beats SipHash here.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// A `HashMap` hasher for short trusted strings (node names, object keys).
pub(crate) type FnvBuild = std::hash::BuildHasherDefault<Fnv>;

/// One policy file: its display path (used in findings and errors) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    pub path: String,
    pub text: String,
}

/// What a policy file is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Rego,
    RegoTest,
    Cel,
    CelTest,
}

impl SourceKind {
    /// Classify a file name; `None` for files the gate ignores (config, docs).
    pub fn of(path: &str) -> Option<Self> {
        if path.ends_with("_test.rego") {
            Some(Self::RegoTest)
        } else if path.ends_with(".rego") {
            Some(Self::Rego)
        } else if path.ends_with(".cel.test.yaml") || path.ends_with(".cel.test.yml") {
            Some(Self::CelTest)
        } else if path.ends_with(".cel.yaml") || path.ends_with(".cel.yml") {
            Some(Self::Cel)
        } else {
            None
        }
    }
}

/// A policy that failed to load or evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// The file (or files, comma-separated, when the error cannot be pinned on one).
    pub file: String,
    pub line: Option<u32>,
    pub col: Option<u32>,
    pub message: String,
}

/// How deep brackets (`(`, `[`, `{`) may nest in a policy file or expression. The Rego
/// parser recurses per level (3,000 levels overflowed the stack and aborted the whole
/// process) and regorus' compiler takes time exponential in the depth (an array nested
/// 16 deep took 5 s, each level doubling it), so deeper text is refused before it is
/// parsed. The default pack nests at most 8 deep (its tests), its rules 4.
pub const MAX_NESTING: usize = 12;

/// Where brackets nest deeper than [`MAX_NESTING`] in `text` (line, column), skipping
/// strings delimited by any of `quotes` (with `\` escapes) and `comment`-to-end-of-line.
pub(crate) fn too_deep(text: &str, quotes: &str, comment: Option<char>) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut in_comment = false;
    for (i, c) in text.char_indices() {
        if in_comment {
            in_comment = c != '\n';
        } else if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
        } else if Some(c) == comment {
            in_comment = true;
        } else if quotes.contains(c) {
            quote = Some(c);
        } else if "([{".contains(c) {
            depth += 1;
            if depth > MAX_NESTING {
                return Some(crate::yamlpos::line_col_of_byte(text, i));
            }
        } else if ")]}".contains(c) {
            depth = depth.saturating_sub(1);
        }
    }
    None
}

/// The error for text refused by [`too_deep`].
pub(crate) fn too_deep_error(
    file: &str,
    at: (usize, usize),
    what: &str,
    limit: usize,
) -> PolicyError {
    PolicyError {
        file: file.to_string(),
        line: Some(at.0 as u32),
        col: Some(at.1 as u32),
        message: format!(
            "{what} nests brackets more than {limit} levels deep: refused before parsing"
        ),
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.col {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// The rule id of findings raised for broken policies.
pub const POLICY_ERROR: &str = cupcake_api::report::POLICY_ERROR;

impl PolicyError {
    /// The non-forceable deny a broken policy becomes.
    pub fn finding(&self) -> Finding {
        Finding {
            rule: POLICY_ERROR.to_string(),
            severity: Severity::Deny,
            forceable: false,
            forced: false,
            message: format!("policy failed, nothing is applied until it is fixed: {self}"),
            source: self.file.clone(),
            until: None,
        }
    }
}

/// deny | warn | defer: the three rule sets of `package cupcake`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleKind {
    Deny,
    Warn,
    Defer,
}

impl RuleKind {
    pub const ALL: [RuleKind; 3] = [RuleKind::Deny, RuleKind::Warn, RuleKind::Defer];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Warn => "warn",
            Self::Defer => "defer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The Rego rule path.
    pub fn path(&self) -> String {
        format!("data.cupcake.{}", self.as_str())
    }
}

/// A rule's result before the verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFinding {
    pub kind: RuleKind,
    pub id: String,
    pub msg: String,
    pub forceable: bool,
    pub until: Option<DateTime<Utc>>,
    pub source: String,
}

impl RawFinding {
    /// Read one element of a Rego deny/warn/defer set: `{"id", "msg"}` plus
    /// `"forceable"` (deny) or `"until"` (defer). Other keys are ignored.
    pub(crate) fn from_value(kind: RuleKind, v: &regorus::Value) -> Result<Self, String> {
        use regorus::Value;
        let expected = r#"expected an object {"id": string, "msg": string}"#;
        let Value::Object(o) = v else {
            return Err(expected.to_string());
        };
        let get = |k: &str| o.get(&Value::from(k));
        let string = |k: &str| -> Result<Option<String>, String> {
            match get(k) {
                None | Some(Value::Undefined) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.to_string())),
                Some(_) => Err(format!("\"{k}\" must be a string ({expected})")),
            }
        };
        let id = string("id")?
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format!("missing \"id\" ({expected})"))?;
        let msg = string("msg")?.ok_or_else(|| format!("missing \"msg\" ({expected})"))?;
        let forceable = match get("forceable") {
            None | Some(Value::Undefined) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("\"forceable\" must be a boolean".to_string()),
        };
        if forceable && kind != RuleKind::Deny {
            return Err(format!(
                "\"forceable\" is only meaningful on deny, not {}",
                kind.as_str()
            ));
        }
        let until = match string("until")? {
            None => None,
            Some(_) if kind != RuleKind::Defer => {
                return Err(format!("\"until\" is only meaningful on defer, not {}", kind.as_str()));
            }
            Some(s) => Some(
                DateTime::parse_from_rfc3339(&s)
                    .map_err(|e| format!("\"until\" must be an RFC 3339 time like 2026-11-28T02:00:00Z: {s:?}: {e}"))?
                    .with_timezone(&Utc),
            ),
        };
        Ok(Self {
            kind,
            id,
            msg,
            forceable,
            until,
            source: String::new(),
        })
    }

    fn into_finding(self) -> Finding {
        Finding {
            rule: self.id,
            severity: cel::severity(self.kind),
            forceable: self.forceable && self.kind == RuleKind::Deny,
            forced: false,
            message: self.msg,
            source: self.source,
            until: self.until,
        }
    }
}

/// Rule ids that report the same condition: forcing either forces both, so a user
/// never has to force one condition twice (once for the planner, once for the pack).
pub const FORCE_ALIASES: &[(&str, &str)] = &[
    ("planner.patch-downgrade", "skew.patch-downgrade"),
    ("planner.out-of-scope-skew", "skew.kubelet-too-old"),
];

/// The `force` list with aliases added.
pub fn expand_force(force: &[String]) -> Vec<String> {
    let mut out = force.to_vec();
    for (a, b) in FORCE_ALIASES {
        for (x, y) in [(a, b), (b, a)] {
            if force.iter().any(|f| f == x) && !out.iter().any(|f| f == y) {
                out.push((*y).to_string());
            }
        }
    }
    out
}

/// The immutable policy environment: compiled Rego and CEL plus the load errors.
#[derive(Debug)]
pub struct PolicyEnv {
    rego: Option<rego::RegoPack>,
    cel: cel::CelPack,
    errors: Vec<PolicyError>,
    files: Vec<String>,
}

/// What one evaluation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Findings of the rules that fired, then one deny per broken policy.
    pub findings: Vec<Finding>,
}

impl PolicyEnv {
    /// Compile the policy files (test files and fixtures are skipped). Never fails:
    /// broken files are recorded in [`errors`](Self::errors) and deny every evaluation.
    pub fn build(sources: &[PolicySource]) -> Self {
        let pick = |k: SourceKind| -> Vec<PolicySource> {
            sources
                .iter()
                .filter(|s| SourceKind::of(&s.path) == Some(k))
                .cloned()
                .collect()
        };
        let (rego, mut errors) = rego::RegoPack::build(&pick(SourceKind::Rego));
        let (cel, cel_errors) = cel::CelPack::build(&pick(SourceKind::Cel));
        errors.extend(cel_errors);
        let files = sources
            .iter()
            .filter(|s| {
                matches!(
                    SourceKind::of(&s.path),
                    Some(SourceKind::Rego | SourceKind::Cel)
                )
            })
            .map(|s| s.path.clone())
            .collect();
        Self {
            rego,
            cel,
            errors,
            files,
        }
    }

    /// The default pack alone.
    pub fn default_pack() -> Arc<Self> {
        Arc::new(Self::build(&pack::sources()))
    }

    /// The default pack plus the fleet repo's own policy files (`policies/…` of the fleet tree).
    pub fn with_fleet(fleet_sources: &[PolicySource]) -> Arc<Self> {
        let mut sources = pack::sources();
        sources.extend(fleet_sources.iter().cloned());
        Arc::new(Self::build(&sources))
    }

    /// Files that failed to load.
    pub fn errors(&self) -> &[PolicyError] {
        &self.errors
    }

    /// The policy files in the environment (default pack first).
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Every Rego deny/warn/defer definition as `(kind, file, line)` (for `--explain`).
    pub fn rego_rules(&self) -> Vec<(RuleKind, String, u32)> {
        self.rego
            .as_ref()
            .map(|r| r.heads.clone())
            .unwrap_or_default()
    }

    /// Whether the Rego rules run on regorus' VM (else on its interpreter).
    pub fn uses_vm(&self) -> bool {
        self.rego.as_ref().is_some_and(rego::RegoPack::uses_vm)
    }

    /// Rule ids and files of the CEL rules (for `--explain`).
    pub fn cel_rules(&self) -> Vec<(String, String)> {
        self.cel
            .rules
            .iter()
            .map(|r| (r.id.clone(), r.file.clone()))
            .collect()
    }

    /// Evaluate a typed input document.
    pub fn evaluate(&self, input: &PolicyInput) -> Evaluation {
        match serde_json::to_value(input) {
            Ok(v) => self.evaluate_json(&v),
            Err(e) => Evaluation {
                findings: vec![
                    PolicyError {
                        file: "input".into(),
                        line: None,
                        col: None,
                        message: format!("encoding the input: {e}"),
                    }
                    .finding(),
                ],
            },
        }
    }

    /// Evaluate an input document given as JSON (`cupcake policy eval --input`).
    pub fn evaluate_json(&self, input: &serde_json::Value) -> Evaluation {
        self.evaluate_with(input, true)
    }

    /// Like [`evaluate_json`](Self::evaluate_json) with Rego on the interpreter only
    /// (the reference the VM is checked against, and what `cupcake policy test` uses).
    pub fn evaluate_json_interpreted(&self, input: &serde_json::Value) -> Evaluation {
        self.evaluate_with(input, false)
    }

    fn evaluate_with(&self, input: &serde_json::Value, use_vm: bool) -> Evaluation {
        let mut raw = Vec::new();
        let mut errors = self.errors.clone();
        if let Some(r) = &self.rego {
            let (f, e) = r.evaluate(&rego::to_rego(input), use_vm);
            raw.extend(f);
            errors.extend(e);
        }
        if !self.cel.is_empty() {
            let (f, e) = self.cel.evaluate(input, None);
            raw.extend(f);
            errors.extend(e);
        }
        let mut findings: Vec<Finding> = raw.into_iter().map(RawFinding::into_finding).collect();
        findings.sort_by(|a, b| {
            (a.severity, &a.rule, &a.message).cmp(&(b.severity, &b.rule, &b.message))
        });
        findings.dedup();
        findings.extend(errors.iter().map(PolicyError::finding));
        Evaluation { findings }
    }

    /// CEL findings of one file's rules only (CEL fixtures).
    pub(crate) fn evaluate_cel_file(
        &self,
        input: &serde_json::Value,
        file: &str,
    ) -> (Vec<RawFinding>, Vec<PolicyError>) {
        self.cel.evaluate(input, Some(file))
    }
}

/// The gate's verdict: planner findings plus policy findings, forced by the cluster's
/// `force` list (with [`FORCE_ALIASES`]), deny > defer > allow. `deferUntil` is the
/// latest `until` of the defers (the schedule rules set it to the next window start).
pub fn decide(env: &PolicyEnv, input: &PolicyInput, planner_findings: &[Finding]) -> Decision {
    let mut findings = planner_findings.to_vec();
    findings.extend(env.evaluate(input).findings);
    findings.extend(force_findings(env, &input.cluster.force, &findings));
    Decision::from_findings(findings, &expand_force(&input.cluster.force), None)
}

/// The rule id of findings about `force:` entries that force nothing.
pub const FORCE_UNUSED: &str = "gate.force-ineffective";

/// `force:` entries that cannot do what the user expects: an id no rule has (a typo
/// forces nothing), or a rule whose denies cannot be forced. Warnings — the denies
/// stand either way — so nobody believes a deny was overridden when it was not.
pub fn force_findings(env: &PolicyEnv, force: &[String], findings: &[Finding]) -> Vec<Finding> {
    let known: std::collections::BTreeSet<&str> = crate::plan::rules::ALL
        .iter()
        .map(|r| r.id)
        .chain(env.rego.iter().flat_map(|r| r.ids()))
        .chain(env.cel.rules.iter().map(|r| r.id.as_str()))
        .chain(FORCE_ALIASES.iter().flat_map(|(a, b)| [*a, *b]))
        .collect();
    let warn = |message: String| Finding {
        rule: FORCE_UNUSED.to_string(),
        severity: Severity::Warn,
        forceable: false,
        forced: false,
        message,
        source: "cluster.yaml".to_string(),
        until: None,
    };
    let mut out = Vec::new();
    for id in force {
        if !known.contains(id.as_str()) {
            let near: Vec<&str> = known
                .iter()
                .copied()
                .filter(|k| {
                    let (kp, ip) = (k.split('.').next_back(), id.split('.').next_back());
                    kp == ip || k.contains(id.as_str()) || id.contains(k)
                })
                .take(3)
                .collect();
            out.push(warn(format!(
                "force: {id} names no rule, so it forces nothing{}",
                if near.is_empty() {
                    String::new()
                } else {
                    format!(" (did you mean {}?)", near.join(", "))
                }
            )));
            continue;
        }
        let static_no = crate::plan::rules::by_id(id).is_some_and(|r| !r.forceable);
        let fired_no = findings
            .iter()
            .any(|f| &f.rule == id && f.severity == Severity::Deny && !f.forceable);
        if static_no || fired_no {
            out.push(warn(format!(
                "force: {id} cannot be forced: its denies stand (fix the cause instead)"
            )));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(files: &[(&str, &str)]) -> PolicyEnv {
        PolicyEnv::build(
            &files
                .iter()
                .map(|(p, t)| PolicySource {
                    path: p.to_string(),
                    text: t.to_string(),
                })
                .collect::<Vec<_>>(),
        )
    }

    fn input() -> serde_json::Value {
        serde_json::json!({"plan": {"hops": [], "stages": [], "estimate": {"seconds": 0}}, "cluster": {"target": "1.34.2"},
            "schedule": {}, "source": {}, "now": "2026-11-27T10:00:00Z", "config": {}})
    }

    #[test]
    fn default_pack_loads_cleanly() {
        let e = PolicyEnv::default_pack();
        assert!(e.errors().is_empty(), "{:?}", e.errors());
        assert!(e.files().iter().any(|f| f.ends_with("skew.rego")));
    }

    #[test]
    fn rego_findings_carry_their_file() {
        let e = env(&[(
            "org/fridays.rego",
            "package cupcake\n\ndeny contains {\"id\": \"org.no-fridays\", \"msg\": \"no upgrades on Fridays\", \"forceable\": true} if {\n  time.weekday(time.parse_rfc3339_ns(input.now)) == \"Friday\"\n}\n",
        )]);
        let f = e.evaluate_json(&input()).findings;
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].rule.as_str(), f[0].source.as_str(), f[0].forceable),
            ("org.no-fridays", "org/fridays.rego", true)
        );
    }

    #[test]
    fn broken_rego_denies_with_position() {
        let e = env(&[(
            "org/broken.rego",
            "package cupcake\n\ndeny contains x if {\n  x := \n}\n",
        )]);
        assert_eq!(e.errors().len(), 1);
        let err = &e.errors()[0];
        assert_eq!(err.file, "org/broken.rego");
        assert!(err.line.is_some() && err.col.is_some(), "{err:?}");
        let f = e.evaluate_json(&input()).findings;
        assert_eq!(
            (f[0].rule.as_str(), f[0].severity, f[0].forceable),
            (POLICY_ERROR, Severity::Deny, false)
        );
        assert!(
            f[0].message.contains("org/broken.rego:"),
            "{}",
            f[0].message
        );
    }

    #[test]
    fn wrong_shape_denies_naming_the_file() {
        let e = env(&[(
            "org/shape.rego",
            "package cupcake\n\ndeny contains \"just a string\" if true\n",
        )]);
        let f = e.evaluate_json(&input()).findings;
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].rule.as_str(), f[0].source.as_str()),
            (POLICY_ERROR, "org/shape.rego")
        );
        assert!(
            f[0].message.contains("expected an object"),
            "{}",
            f[0].message
        );
        let e = env(&[(
            "org/until.rego",
            "package cupcake\n\ndefer contains {\"id\": \"x\", \"msg\": \"m\", \"until\": \"tomorrow\"} if true\n",
        )]);
        let f = e.evaluate_json(&input()).findings;
        assert!(
            f[0].message.contains("RFC 3339") && f[0].source == "org/until.rego",
            "{f:?}"
        );
    }

    #[test]
    fn runtime_errors_deny() {
        let e = env(&[(
            "org/conflict.rego",
            "package cupcake\n\nx := 1 if true\nx := 2 if true\n\ndeny contains {\"id\": \"a\", \"msg\": \"m\"} if x == 1\n",
        )]);
        let f = e.evaluate_json(&input()).findings;
        assert!(
            f.iter()
                .any(|f| f.rule == POLICY_ERROR && f.source.contains("org/conflict.rego")),
            "{f:?}"
        );
    }

    #[test]
    fn cel_rules_pass_when_true() {
        let e = env(&[(
            "org/rules.cel.yaml",
            "rules:\n  - id: org.target-134\n    expression: \"semver_compare(cluster.target, '1.34.0') >= 0\"\n    message: target must be 1.34 or newer\n    action: deny\n  - id: org.always\n    expression: \"false\"\n    messageExpression: \"'now is ' + now\"\n    action: warn\n",
        )]);
        assert!(e.errors().is_empty(), "{:?}", e.errors());
        let f = e.evaluate_json(&input()).findings;
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].rule.as_str(), f[0].message.as_str()),
            ("org.always", "now is 2026-11-27T10:00:00Z")
        );
        let mut old = input();
        old["cluster"]["target"] = "v1.33.9".into();
        let f = e.evaluate_json(&old).findings;
        assert!(
            f.iter()
                .any(|f| f.rule == "org.target-134" && f.severity == Severity::Deny),
            "{f:?}"
        );
    }

    #[test]
    fn broken_cel_denies_naming_the_file_and_line() {
        let e = env(&[(
            "org/bad.cel.yaml",
            "rules:\n  - id: org.bad\n    expression: \"plan.stages.all(s, \"\n    message: m\n    action: deny\n",
        )]);
        assert_eq!(e.errors().len(), 1, "{:?}", e.errors());
        let err = &e.errors()[0];
        assert_eq!((err.file.as_str(), err.line), ("org/bad.cel.yaml", Some(3)));
        let e = env(&[(
            "org/bad.cel.yaml",
            "rules:\n  - id: org.bad\n    expression: \"1 + 1\"\n    message: m\n    action: deny\n",
        )]);
        let f = e.evaluate_json(&input()).findings;
        assert!(
            f[0].rule == POLICY_ERROR && f[0].message.contains("must return a bool"),
            "{f:?}"
        );
        let e = env(&[(
            "org/bad.cel.yaml",
            "rules:\n  - id: org.bad\n    expresion: \"true\"\n    action: deny\n",
        )]);
        assert!(
            e.errors()[0].message.contains("not a CEL rule file"),
            "{:?}",
            e.errors()
        );
    }

    #[test]
    fn force_aliases_work_both_ways() {
        let f = expand_force(&["skew.patch-downgrade".to_string()]);
        assert!(f.contains(&"planner.patch-downgrade".to_string()));
        let f = expand_force(&["planner.out-of-scope-skew".to_string()]);
        assert!(f.contains(&"skew.kubelet-too-old".to_string()));
    }

    /// Regression (issue 13): 3,000 nested brackets in a fleet's Rego file overflowed
    /// the stack and aborted the process; now the file is refused, and the deepest
    /// nesting allowed still compiles (quickly: compile time doubles per level).
    #[test]
    fn deeply_nested_policies_are_refused_not_crashing() {
        let src = |depth: usize| PolicySource {
            path: "fleet/policies/deep.rego".into(),
            text: format!(
                "package cupcake\n\nx := {}1{}\n",
                "[".repeat(depth),
                "]".repeat(depth)
            ),
        };
        let env = PolicyEnv::build(&[src(3000)]);
        let e = env
            .errors()
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            e.contains("fleet/policies/deep.rego:3:") && e.contains("more than 12 levels"),
            "{e}"
        );
        let env = PolicyEnv::build(&[src(MAX_NESTING)]);
        assert!(env.errors().is_empty(), "{:?}", env.errors());
        assert_eq!(
            super::too_deep("# [[[[\n\"[[[[\" `[[[`", "\"`", Some('#')),
            None
        );
    }

    /// Regression (issue 13): a recursive function overflowed the stack when evaluated.
    #[test]
    fn recursive_functions_are_refused_not_crashing() {
        let env = PolicyEnv::build(&[PolicySource {
            path: "fleet/policies/loop.rego".into(),
            text: "package cupcake\n\nf(x) := f(x + 1)\n\ndeny contains {\"id\": \"l.f\", \"msg\": sprintf(\"%v\", [f(1)])} if true\n".into(),
        }]);
        let e = env
            .errors()
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            e.contains("fleet/policies/loop.rego:3:1") && e.contains("function f calls itself"),
            "{e}"
        );
        let pack = PolicyEnv::default_pack();
        assert!(pack.errors().is_empty(), "{:?}", pack.errors());
    }
}
