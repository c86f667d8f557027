//! The docs run: every `cupcake` command in a shell block of README.md and docs/*.md
//! parses with today's CLI (and the offline ones run), every Rego and CEL example
//! compiles and its tests pass, every manifest example loads as its kind.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use cupcake_reconciler::cli::Cli;
use cupcake_reconciler::gate::{PolicySource, pack, testing};

mod common;
use common::repo;

/// (file, first line, language, text) of every fenced block.
fn blocks() -> Vec<(String, usize, String, String)> {
    let mut files = vec![repo().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.strip_prefix(repo()).unwrap_or(&f).display().to_string();
        let mut cur: Option<(usize, String, String)> = None;
        for (i, line) in text.lines().enumerate() {
            if let Some(rest) = line.trim_start().strip_prefix("```") {
                match cur.take() {
                    Some((start, lang, body)) => out.push((name.clone(), start, lang, body)),
                    None => cur = Some((i + 1, rest.trim().to_string(), String::new())),
                }
            } else if let Some((_, _, body)) = cur.as_mut() {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    out
}

/// Split a shell command line into words (single and double quotes; no expansion).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// `cupcake …` invocations of a shell block (comments, pipes and redirections cut off).
fn cupcake_commands(body: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in body.replace("\\\n", " ").lines() {
        let line = match line.find(" #") {
            Some(i) => &line[..i],
            None => line,
        };
        for seg in line.split(['|', ';']).flat_map(|s| s.split("&&")) {
            let seg = seg.split(['>', '<']).next().unwrap_or("").trim();
            let seg = seg
                .strip_prefix("cargo run -q --bin cupcake -- ")
                .map(|r| format!("cupcake {r}"))
                .unwrap_or_else(|| seg.to_string());
            if seg.starts_with("cupcake ") {
                out.push(words(&seg));
            }
        }
    }
    out
}

#[test]
fn every_documented_command_parses_and_offline_plans_run() {
    let mut parsed = 0;
    for (file, line, lang, body) in blocks() {
        if !matches!(lang.as_str(), "sh" | "bash" | "console" | "") {
            continue;
        }
        for argv in cupcake_commands(&body) {
            if let Err(e) = Cli::try_parse_from(&argv) {
                panic!("{file}:{line}: `{}` does not parse:\n{e}", argv.join(" "));
            }
            parsed += 1;
            // The offline plans of the example fleet run for real.
            if argv.get(1).map(String::as_str) == Some("plan")
                && argv.get(2).map(String::as_str) == Some("examples/fleet")
            {
                let out = Command::new(env!("CARGO_BIN_EXE_cupcake"))
                    .args(&argv[1..])
                    .current_dir(repo())
                    .output()
                    .unwrap();
                assert!(
                    matches!(out.status.code(), Some(0 | 2 | 3)),
                    "{file}:{line}: `{}` failed:\n{}",
                    argv.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    assert!(parsed >= 8, "only {parsed} documented commands found");
}

#[test]
fn every_documented_policy_compiles_and_its_tests_pass() {
    let mut sources = pack::sources();
    let mut n_rego = 0;
    let mut cel_rules = 0;
    for (file, line, lang, body) in blocks() {
        let name = format!("{}-{line}", file.replace(['/', '.'], "_"));
        if lang == "rego" {
            let suffix = if body.contains("package cupcake_test") || body.contains("test_") {
                "_test.rego"
            } else {
                ".rego"
            };
            sources.push(PolicySource {
                path: format!("doc/{name}{suffix}"),
                text: body,
            });
            n_rego += 1;
        } else if lang == "yaml" && body.trim_start().starts_with("rules:") {
            sources.push(PolicySource {
                path: format!("doc/{name}.cel.yaml"),
                text: body,
            });
            cel_rules += 1;
        } else if lang == "yaml" && body.trim_start().starts_with("cases:") {
            // A CEL fixture documents the rules block before it: pair them by order.
            sources.push(PolicySource {
                path: format!("doc/fixture-{cel_rules}.cel.test.yaml"),
                text: body,
            });
        }
    }
    // Fixtures are named after their rule file.
    let rule_files: Vec<String> = sources
        .iter()
        .filter(|s| s.path.starts_with("doc/") && s.path.ends_with(".cel.yaml"))
        .map(|s| s.path.clone())
        .collect();
    for s in sources.iter_mut() {
        if let Some(i) = s
            .path
            .strip_prefix("doc/fixture-")
            .and_then(|r| r.strip_suffix(".cel.test.yaml"))
            .and_then(|i| i.parse::<usize>().ok())
        {
            let rules = &rule_files[i - 1];
            s.path = rules.replace(".cel.yaml", ".cel.test.yaml");
        }
    }
    assert!(n_rego >= 2 && cel_rules >= 1, "doc examples not found");
    let env = cupcake_reconciler::gate::PolicyEnv::build(&sources);
    assert!(
        env.errors().is_empty(),
        "doc policies do not compile: {:?}",
        env.errors()
    );
    let report = testing::run(&sources, None);
    let doc_tests: Vec<_> = report
        .tests
        .iter()
        .filter(|t| t.file.starts_with("doc/"))
        .collect();
    assert!(
        !doc_tests.is_empty(),
        "no doc test ran: {}",
        report.text(true)
    );
    assert_eq!(report.failed(), 0, "{}", report.text(false));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

#[test]
fn every_documented_manifest_loads_as_its_kind() {
    use cupcake_api::crd::{DirectUpdate, ScheduledUpdate, UpdateSchedule};
    use cupcake_api::fleet::{ClusterVersionSpec, UpdateScheduleManifest, VersionCatalogSpec};
    use cupcake_reconciler::load::parse_manifest;
    let mut loaded = 0;
    for (file, line, lang, body) in blocks() {
        // A manifest: our apiVersion at the top level (not a fragment quoting it, like a
        // Flux health check's `- apiVersion: … kind: DirectUpdate`).
        if lang != "yaml"
            || !body
                .lines()
                .any(|l| l.trim_end() == "apiVersion: cupcake.ricardomolendijk.com/v1")
        {
            continue;
        }
        let kind = body
            .lines()
            .find_map(|l| l.strip_prefix("kind: "))
            .unwrap_or("")
            .trim()
            .to_string();
        let at = PathBuf::from(format!("{file}:{line}"));
        let ok = match kind.as_str() {
            "ClusterVersion" => parse_manifest::<ClusterVersionSpec>(&at, &body, &kind)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            "UpdateSchedule" if body.contains("windows") || body.contains("exclusions") => {
                parse_manifest::<cupcake_api::schedule::UpdateScheduleSpec>(&at, &body, &kind)
                    .map(|m| {
                        let _: UpdateScheduleManifest = m;
                    })
                    .map_err(|e| e.to_string())
            }
            "VersionCatalog" => parse_manifest::<VersionCatalogSpec>(&at, &body, &kind)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            "DirectUpdate" => yaml_serde::from_str::<DirectUpdate>(&body)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            "ScheduledUpdate" => yaml_serde::from_str::<ScheduledUpdate>(&body)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            "UpdateSchedule" => yaml_serde::from_str::<UpdateSchedule>(&body)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            "PackageBundle" => cupcake_api::bundle::PackageBundle::from_yaml(&body)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            other => Err(format!("unknown kind {other:?}")),
        };
        if let Err(e) = ok {
            panic!("{file}:{line}: a {kind} example does not load:\n{e}\n{body}");
        }
        loaded += 1;
    }
    assert!(loaded >= 1, "no manifest examples found");
}
