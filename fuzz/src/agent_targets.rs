//! Fuzz target over the agent's checkpoint reader.
//!
//! Input format: the bytes of `metadata.json`, then entries separated by a NUL byte,
//! each `name` + `\x01` + content. A name ending in `/` is a directory, a content
//! starting with `->` makes a symbolic link to the rest. Names are reduced to one
//! path segment (`[A-Za-z0-9._@-]`), written into `<tmp>/operation-op1/`, and the
//! directory is opened for the assignment of [`want`].

use std::path::Path;

use chrono::{TimeZone as _, Utc};
use cupcake_agent::assignment::Role;
use cupcake_agent::checkpoint::{Checkpoint, Metadata};
use cupcake_api::common::Component;
use cupcake_api::protocol::UpgradeMode;

/// The assignment every fuzzed directory is opened for.
pub fn want() -> Metadata {
    Metadata {
        operation_id: "op1".into(),
        target_version: cupcake_api::KubeVersion::new(1, 34, 2),
        components: vec![Component::Kubeadm, Component::Kubelet],
        mode: UpgradeMode::Node,
        node: "w-1".into(),
        role: Role::Worker,
        steps: vec!["01-a".into(), "02-b".into(), "03-c".into()],
        started: Utc
            .with_ymd_and_hms(2026, 11, 28, 2, 0, 0)
            .single()
            .unwrap_or_default(),
    }
}

fn segment(name: &[u8]) -> Option<String> {
    let s: String = String::from_utf8_lossy(name)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._@-".contains(*c))
        .take(64)
        .collect();
    (!s.is_empty() && s != "." && s != "..").then_some(s)
}

/// Write the directory an input describes under `root` (best effort: an entry the
/// file system refuses is skipped).
pub fn materialise(root: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = root.join("operation-op1");
    std::fs::create_dir_all(&dir)?;
    let mut parts = data.split(|b| *b == 0);
    if let Some(meta) = parts.next() {
        std::fs::write(dir.join("metadata.json"), meta)?;
    }
    for entry in parts.take(32) {
        let (name, content) = match entry.iter().position(|b| *b == 1) {
            Some(i) => (&entry[..i], &entry[i + 1..]),
            None => (entry, &[][..]),
        };
        let is_dir = name.ends_with(b"/");
        let Some(name) = segment(name) else { continue };
        let path = dir.join(&name);
        let _ = if is_dir {
            std::fs::create_dir_all(&path)
        } else if let Some(to) = content.strip_prefix(b"->") {
            let to = String::from_utf8_lossy(to).trim().to_string();
            let _ = std::fs::remove_file(&path);
            std::os::unix::fs::symlink(to, &path)
        } else {
            std::fs::write(&path, content)
        };
    }
    Ok(())
}

/// Open a fuzzed checkpoint directory: never a panic; an error names a path.
pub fn checkpoint(data: &[u8]) {
    let Ok(tmp) = tempfile::tempdir() else { return };
    if materialise(tmp.path(), data).is_err() {
        return;
    }
    match Checkpoint::open(tmp.path(), &want()) {
        Ok((cp, _)) => {
            assert!(cp.done() <= 3);
            assert!(!cp.is_completed() || cp.done() == 3);
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&tmp.path().display().to_string()),
                "error without its path: {msg}"
            );
        }
    }
}
