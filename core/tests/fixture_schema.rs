//! Every input document the policy pack's tests feed its rules — each `with
//! input as …` of `policies/*_test.rego` (evaluated, so fixtures built with
//! `object.union` and helper functions count) and each `input` of the CEL
//! fixture files — is valid against `schemas/policy-input.schema.json`, read
//! strictly: every key present must exist in the schema at that place, with a
//! value of the right type. Keys may be missing (fixtures are partial on
//! purpose), so `required` is dropped. Without this, renaming an input field in
//! the Rust types would leave the rules reading a key that no longer exists:
//! they would stop firing while every test stays green. See docs/testing.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use cupcake_core::gate::pack::FILES;
use regorus::Engine;
use serde_json::Value;

/// The schema read strictly for partial documents: no `required`, and every
/// object that lists its properties refuses others.
fn strict_partial(mut v: Value) -> Value {
    fn go(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.remove("required");
                if o.contains_key("properties") && !o.contains_key("additionalProperties") {
                    o.insert("additionalProperties".into(), Value::Bool(false));
                }
                for (_, x) in o.iter_mut() {
                    go(x);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(go),
            _ => {}
        }
    }
    go(&mut v);
    v
}

fn validator() -> jsonschema::Validator {
    let text = include_str!("../../schemas/policy-input.schema.json");
    let schema = strict_partial(serde_json::from_str(text).unwrap());
    jsonschema::validator_for(&schema).unwrap()
}

/// Every problem of `doc`, as `at /json/pointer: message`.
fn problems(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect()
}

/// End of the Rego term starting at `s[0]`: brackets, parentheses and strings
/// balanced, ending at whitespace (or a comment) at depth 0.
fn term_end(s: &str) -> usize {
    let (mut depth, mut in_str, mut esc) = (0i32, false, false);
    for (i, c) in s.char_indices() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
            }
            c if (c.is_whitespace() || c == '#') && depth == 0 => return i,
            _ => {}
        }
    }
    s.len()
}

const CAPTURE: &str = "cupcake_fixture_capture";

/// `with input as X` → `with input as cupcake_fixture_capture("path:line", X)`,
/// which prints where the fixture is and X as JSON.
fn instrument(path: &str, text: &str) -> (String, usize) {
    const WITH: &str = "with input as ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut n = 0;
    while let Some(i) = rest.find(WITH) {
        let start = i + WITH.len();
        let end = start + term_end(&rest[start..]);
        out.push_str(&rest[..start]);
        let line = text.len() - rest.len() + start;
        let line = text[..line].lines().count();
        out.push_str(&format!(
            "{CAPTURE}(\"{path}:{line}\", {})",
            &rest[start..end]
        ));
        rest = &rest[end..];
        n += 1;
    }
    out.push_str(rest);
    (out, n)
}

/// Run every `test_` rule of the `(path, text)` Rego files with the default
/// pack's policies and return each fixture input: `(file:line, document)`.
fn rego_fixtures(tests: &[(String, String)]) -> Vec<(String, Value)> {
    let mut engine = Engine::new();
    engine.set_gather_prints(true);
    // gate::pack::FILES is the policies/ directory (a unit test there keeps them equal).
    for (path, text) in FILES {
        if path.ends_with(".rego") && !path.ends_with("_test.rego") {
            engine.add_policy((*path).into(), (*text).into()).unwrap();
        }
    }
    let mut packages = std::collections::BTreeSet::new();
    let mut expected = 0;
    let mut rules = Vec::new();
    for (path, text) in tests {
        let (text, n) = instrument(path, text);
        expected += n;
        let pkg = engine.add_policy(path.clone(), text.clone()).unwrap();
        packages.insert(pkg.clone());
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("test_") {
                let name = name.split([' ', '(']).next().unwrap();
                rules.push(format!("{pkg}.test_{name}"));
            }
        }
    }
    for pkg in &packages {
        let pkg = pkg.trim_start_matches("data.");
        engine
            .add_policy(
                format!("{CAPTURE}.rego"),
                format!("package {pkg}\n\n{CAPTURE}(at, x) := x if {{\n    print(at, json.marshal(x))\n}}\n"),
            )
            .unwrap();
    }
    for r in &rules {
        engine
            .eval_rule(r.clone())
            .unwrap_or_else(|e| panic!("{r}: {e}"));
    }
    let out: Vec<(String, Value)> = engine
        .take_prints()
        .unwrap()
        .into_iter()
        .map(|p| {
            // `<capture file>:<line>: <fixture path:line> <json>`
            let (_, rest) = p.split_once(": ").unwrap();
            let (at, json) = rest.split_once(' ').unwrap();
            (at.to_string(), serde_json::from_str(json).unwrap())
        })
        .collect();
    assert!(
        out.len() >= expected,
        "{} fixture inputs captured, {expected} `with input as` in the tests: a test rule was not run",
        out.len()
    );
    out
}

fn pack_tests() -> Vec<(String, String)> {
    FILES
        .iter()
        .filter(|(p, _)| p.ends_with("_test.rego"))
        .map(|(p, t)| ((*p).to_string(), (*t).to_string()))
        .collect()
}

#[test]
fn every_rego_fixture_input_matches_the_schema() {
    let v = validator();
    let fixtures = rego_fixtures(&pack_tests());
    assert!(
        fixtures.len() >= 30,
        "only {} fixtures found",
        fixtures.len()
    );
    let mut bad = Vec::new();
    for (at, doc) in &fixtures {
        for p in problems(&v, doc) {
            bad.push(format!("{at}: {p}"));
        }
    }
    assert!(
        bad.is_empty(),
        "fixtures not matching the schema:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_cel_fixture_input_matches_the_schema() {
    let v = validator();
    let mut n = 0;
    let mut bad = Vec::new();
    for (name, text) in FILES {
        if !name.ends_with(".cel.test.yaml") {
            continue;
        }
        let doc: Value = yaml_serde::from_str(text).unwrap();
        for case in doc["cases"].as_array().unwrap() {
            n += 1;
            for p in problems(&v, &case["input"]) {
                bad.push(format!("{name} case {:?}: {p}", case["name"]));
            }
        }
    }
    assert!(n >= 4, "only {n} CEL fixture cases found");
    assert!(
        bad.is_empty(),
        "CEL fixtures not matching the schema:\n{}",
        bad.join("\n")
    );
}

/// The check can fail: a fixture with a renamed field (`kubeletVer` for
/// `kubeletVersion`, `upgradeKind` for `upgrade`), a wrong type, or an unknown
/// top-level key is reported with its JSON pointer.
#[test]
fn a_renamed_field_in_a_fixture_is_caught() {
    let v = validator();
    let test = r#"package cupcake_test

import data.cupcake

test_renamed if {
	inp := {"cluster": {"upgradeKind": "minor", "nodes": [{"name": "w-1", "kubeletVer": "1.33.4"}]}}
	count(cupcake.deny) == 0 with input as inp
}

test_wrong_type if {
	count(cupcake.deny) == 0 with input as {"plan": {"estimate": {"seconds": "ten"}}, "nowish": "x"}
}
"#;
    let fixtures = rego_fixtures(&[("policies/bad_test.rego".into(), test.into())]);
    let mut all: Vec<String> = fixtures.iter().flat_map(|(_, d)| problems(&v, d)).collect();
    all.sort();
    let want = [
        "/cluster",         // upgradeKind is not a property of cluster
        "/cluster/nodes/0", // kubeletVer is not a property of a node
        "/plan/estimate/seconds",
        "", // nowish at the top level
    ];
    for w in want {
        assert!(
            all.iter().any(|p| p.starts_with(&format!("at {w}: "))),
            "no problem reported at {w:?}: {all:#?}"
        );
    }
    assert!(all.iter().any(|p| p.contains("upgradeKind")), "{all:#?}");
    assert!(all.iter().any(|p| p.contains("kubeletVer")), "{all:#?}");
    assert!(all.iter().any(|p| p.contains("nowish")), "{all:#?}");
    // The same fixture with the right names passes.
    let good = test
        .replace("upgradeKind", "upgrade")
        .replace("kubeletVer", "kubeletVersion")
        .replace("\"ten\"", "10")
        .replace(", \"nowish\": \"x\"", "");
    let fixtures = rego_fixtures(&[("policies/good_test.rego".into(), good)]);
    let all: Vec<String> = fixtures.iter().flat_map(|(_, d)| problems(&v, d)).collect();
    assert!(all.is_empty(), "{all:#?}");
}
