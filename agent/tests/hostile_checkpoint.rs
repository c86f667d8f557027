//! Hostile checkpoint directories (issue 13): every case of `tests/corpus/checkpoint/`
//! (truncated, garbage, future-version metadata, impossible step files, foreign files,
//! symbolic links to secrets and devices) is opened as `operation-op1` and must fail
//! with the error its `EXPECTATIONS` line gives, naming the path, without a panic and
//! without changing anything in the directory.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{TimeZone as _, Utc};
use cupcake_agent::assignment::Role;
use cupcake_agent::checkpoint::{Checkpoint, Metadata};
use cupcake_api::common::Component;
use cupcake_api::protocol::UpgradeMode;

fn want() -> Metadata {
    Metadata {
        operation_id: "op1".into(),
        target_version: "1.34.2".parse().unwrap(),
        components: vec![Component::Kubeadm, Component::Kubelet],
        mode: UpgradeMode::Node,
        node: "w-1".into(),
        role: Role::Worker,
        steps: vec!["01-a".into(), "02-b".into(), "03-c".into()],
        started: Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap(),
    }
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/checkpoint")
}

fn lines(file: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (a, b) = l
                .split_once(if l.contains(" -> ") { " -> " } else { ": " })
                .unwrap();
            (a.to_string(), b.to_string())
        })
        .collect()
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == ".keep" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// Every entry under `dir` (not following links): file contents, link targets, dirs.
fn state(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let t = e.file_type().unwrap();
        let v = if t.is_symlink() {
            format!("-> {}", std::fs::read_link(&p).unwrap().display())
        } else if t.is_dir() {
            out.extend(state(&p));
            "dir".to_string()
        } else {
            String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned()
        };
        out.insert(p, v);
    }
    out
}

#[test]
fn hostile_checkpoint_directories_are_refused_and_left_alone() {
    let dir = corpus();
    let cases = lines(&dir.join("EXPECTATIONS"));
    let links = lines(&dir.join("LINKS"));
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut named: Vec<String> = cases.iter().map(|(c, _)| c.clone()).collect();
    named.sort();
    assert_eq!(
        on_disk, named,
        "every case directory needs one EXPECTATIONS line"
    );
    let mut failures = Vec::new();
    for (case, expected) in &cases {
        let root = tempfile::tempdir().unwrap();
        let op = root.path().join("operation-op1");
        copy(&dir.join(case), &op);
        for (at, to) in &links {
            if let Some(name) = at.strip_prefix(&format!("{case}/")) {
                std::os::unix::fs::symlink(to, op.join(name)).unwrap();
            }
        }
        let before = state(root.path());
        let got = match Checkpoint::open(root.path(), &want()) {
            Ok((cp, _)) => format!("opened: {} steps done", cp.done()),
            Err(e) => e.to_string(),
        };
        if std::env::var_os("CUPCAKE_CORPUS_PRINT").is_some() {
            println!("{case}: {got}");
        }
        if !got.contains(op.to_str().unwrap()) || !got.contains(expected.as_str()) {
            failures.push(format!(
                "{case}:\n  got:  {got}\n  want: {expected} (and the path)"
            ));
        }
        let after = state(root.path());
        if before != after {
            failures.push(format!(
                "{case}: the directory changed:\n  before: {before:?}\n  after:  {after:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(cases.len() >= 35, "only {} checkpoint cases", cases.len());
}

/// Regression (issue 13): a `failed` marker that is a link to a secret is refused, never
/// read (its text would end up in the node's `message` annotation).
#[test]
fn a_linked_failed_marker_is_never_read() {
    let root = tempfile::tempdir().unwrap();
    let secret = root.path().join("secret");
    std::fs::write(&secret, "hunter2").unwrap();
    let (cp, _) = Checkpoint::open(root.path(), &want()).unwrap();
    std::os::unix::fs::symlink(&secret, cp.dir().join("failed")).unwrap();
    let e = Checkpoint::open(root.path(), &want())
        .unwrap_err()
        .to_string();
    assert!(e.contains("failed: a symbolic link"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
}
