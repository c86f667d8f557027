//! Helpers shared by the reconciler's integration tests (each test binary uses some).
#![allow(dead_code, clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Run git in `dir` as a test author; its trimmed stdout. Panics with git's stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Copy the tree `from` to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// `(file, expected text)` pairs of an EXPECTATIONS file; every corpus file has one
/// line and every line a file.
pub fn expectations(dir: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(dir.join("EXPECTATIONS")).unwrap();
    let list: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (f, w) = l.split_once(": ").unwrap();
            (f.to_string(), w.to_string())
        })
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "EXPECTATIONS")
        .collect();
    files.sort();
    let mut named: Vec<String> = list.iter().map(|(f, _)| f.clone()).collect();
    named.sort();
    assert_eq!(
        files,
        named,
        "{}: every corpus file needs exactly one EXPECTATIONS line",
        dir.display()
    );
    list
}
