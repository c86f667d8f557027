//! Load and validate a fleet repo: `clusters/<name>/cluster.yaml`,
//! `clusters/<name>/schedule.yaml` and `versions.yaml`.
//!
//! Every error names the file, the line and column, and the field path, and a
//! load either returns everything or nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use cupcake_api::common::{CanarySpec, Strategy};
use cupcake_api::fleet::{
    API_VERSION, ClusterVersion, ClusterVersionSpec, Manifest, UpdateScheduleManifest,
    VersionCatalog, VersionCatalogSpec,
};
use cupcake_api::schedule::UpdateScheduleSpec;
use serde::de::DeserializeOwned;

use cupcake_core::gate::{PolicySource, SourceKind};
use cupcake_core::{schedule, yamlpos};

use crate::source::{self, FleetTree};

/// A fleet-repo file that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        /// Shown in the message, not chained: `{:#}` would repeat it.
        error: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Box<Invalid>),
    #[error(transparent)]
    Source(source::SourceError),
    #[error("cluster {name:?} not found: no {} (clusters in this fleet: {known})", path.display())]
    UnknownCluster {
        name: String,
        path: PathBuf,
        known: String,
    },
}

/// A validation error with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Field path, e.g. `spec.windows[0].schedule`; empty for the document itself.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

impl LoadError {
    fn invalid(file: &Path, text: &str, field: &str, message: impl Into<String>) -> Self {
        let pos = yamlpos::locate(text, &yamlpos::parse_path(field));
        Self::Invalid(Box::new(Invalid {
            file: file.to_path_buf(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            field: field.to_string(),
            message: message.into(),
        }))
    }
}

/// One cluster of the fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterDef {
    /// Folder name under `clusters/`.
    pub name: String,
    /// `clusters/<name>/cluster.yaml`, relative to the fleet root.
    pub path: PathBuf,
    pub version: ClusterVersion,
    pub schedule: Option<UpdateScheduleManifest>,
}

/// A loaded fleet (or the part of it one command needs).
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    pub root: PathBuf,
    pub clusters: BTreeMap<String, ClusterDef>,
    pub catalog: Option<VersionCatalog>,
}

impl Fleet {
    pub fn catalog_spec(&self) -> Option<&VersionCatalogSpec> {
        self.catalog.as_ref().map(|c| &c.spec)
    }
}

/// Deserialize one manifest, mapping serde errors to file:line:col + field path.
pub fn parse_manifest<S: DeserializeOwned>(
    file: &Path,
    text: &str,
    kind: &str,
) -> Result<Manifest<S>, LoadError> {
    if text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---")
    {
        return Err(LoadError::invalid(
            file,
            text,
            "",
            format!("empty file: expected a {kind} manifest"),
        ));
    }
    if let Some(e) = too_deep(file, text) {
        return Err(e);
    }
    // Like kubectl, accept document separators around the one manifest; a second
    // manifest in the same file is an error (it would otherwise be ignored).
    let mut seen_content = false;
    let mut cut = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        let is_sep = t == "---" || t.starts_with("--- #") || t.starts_with("---\t");
        if is_sep {
            if seen_content && cut.is_none() {
                cut = Some(i);
            }
        } else if !t.is_empty() && !t.starts_with('#') {
            if let Some(at) = cut {
                return Err(LoadError::Invalid(Box::new(Invalid {
                    file: file.to_path_buf(),
                    line: Some(at + 1),
                    column: Some(1),
                    field: String::new(),
                    message: format!(
                        "a second YAML document starts here: one {kind} manifest per file"
                    ),
                })));
            }
            seen_content = true;
        }
    }
    let owned;
    let text = match cut {
        Some(at) => {
            owned = text.lines().take(at).collect::<Vec<_>>().join("\n") + "\n";
            owned.as_str()
        }
        None => text,
    };
    // Check what the file claims to be before judging its fields by that claim.
    #[derive(serde::Deserialize)]
    struct Header {
        #[serde(rename = "apiVersion")]
        api_version: Option<String>,
        kind: Option<String>,
    }
    if let Ok(h) = yaml_serde::from_str::<Header>(text) {
        if let Some(v) = h.api_version.as_deref().filter(|v| *v != API_VERSION) {
            return Err(LoadError::invalid(
                file,
                text,
                "apiVersion",
                format!("unsupported apiVersion {v:?}: expected {API_VERSION:?}"),
            ));
        }
        if let Some(k) = h.kind.as_deref().filter(|k| *k != kind) {
            return Err(LoadError::invalid(
                file,
                text,
                "kind",
                format!("kind {k:?} where {kind:?} was expected"),
            ));
        }
    }
    let de = yaml_serde::Deserializer::from_str(text);
    let parsed: Result<Manifest<S>, _> = serde_path_to_error::deserialize(de);
    let m = match parsed {
        Ok(m) => m,
        Err(e) => {
            let field = e.path().to_string();
            let field = if field == "." { String::new() } else { field };
            let inner = e.into_inner();
            let loc = inner.location();
            let mut msg = inner.to_string();
            // A tab where YAML wants spaces: the parser knows exactly where it is,
            // and the field it was in is no help.
            let tab = loc.as_ref().filter(|l| {
                msg.contains("tab character")
                    || text.get(l.index()..).is_some_and(|t| t.starts_with('\t'))
            });
            let tab_at = tab.map(|l| (l.line(), l.column()));
            let field = if tab_at.is_some() {
                String::new()
            } else {
                field
            };
            // yaml's message repeats the position; ours is in front already.
            if let Some(i) = msg.find(" at line ") {
                msg.truncate(i);
            }
            // The reader's errors (control characters) give a byte offset instead.
            let at_byte = at_position(&mut msg, text);
            // yaml also prefixes its own (coarser) path; ours is more precise.
            if let Some((prefix, rest)) = msg.split_once(": ")
                && !prefix.contains(' ')
                && field.starts_with(prefix)
            {
                msg = rest.to_string();
            }
            // chrono's parse errors say what is wrong but not what is right.
            const TIME_ERRORS: [&str; 5] = [
                "input contains invalid characters",
                "premature end of input",
                "trailing input",
                "input is out of range",
                "no possible date and time matching input",
            ];
            if TIME_ERRORS.iter().any(|t| msg.starts_with(t)) {
                msg.push_str(": expected an RFC 3339 time like 2026-12-20T00:00:00Z");
            }
            if tab_at.is_some() {
                msg.push_str(" (a tab: YAML indents with spaces only)");
            }
            // A struct field given twice: point at the second one, not the mapping.
            let repeat = msg
                .strip_prefix("duplicate field `")
                .and_then(|r| r.split_once('`'))
                .and_then(|(key, _)| {
                    yamlpos::locate_repeat(text, &yamlpos::parse_path(&field), key)
                });
            // Our locator knows exactly where a field is; yaml knows where parsing stopped.
            let exact = yamlpos::locate_exact(text, &yamlpos::parse_path(&field))
                .filter(|p| p.2 && !field.is_empty());
            let (line, column) = match (exact, loc) {
                _ if tab_at.is_some() => (tab_at.map(|p| p.0), tab_at.map(|p| p.1)),
                _ if at_byte.is_some() => (at_byte.map(|p| p.0), at_byte.map(|p| p.1)),
                _ if repeat.is_some() => (repeat.map(|p| p.0), repeat.map(|p| p.1)),
                (Some((l, c, _)), _) => (Some(l), Some(c)),
                (None, Some(l)) => (Some(l.line()), Some(l.column())),
                (None, None) => {
                    let p = yamlpos::locate(text, &yamlpos::parse_path(&field));
                    (p.map(|p| p.0), p.map(|p| p.1))
                }
            };
            return Err(LoadError::Invalid(Box::new(Invalid {
                file: file.to_path_buf(),
                line,
                column,
                field,
                message: msg,
            })));
        }
    };
    if let Some(e) = duplicate_key(file, text) {
        return Err(e);
    }
    if m.api_version != API_VERSION {
        return Err(LoadError::invalid(
            file,
            text,
            "apiVersion",
            format!(
                "unsupported apiVersion {:?}: expected {API_VERSION:?}",
                m.api_version
            ),
        ));
    }
    if m.kind != kind {
        return Err(LoadError::invalid(
            file,
            text,
            "kind",
            format!("kind {:?} where {kind:?} was expected", m.kind),
        ));
    }
    if m.metadata.name.trim().is_empty() {
        return Err(LoadError::invalid(
            file,
            text,
            "metadata.name",
            "must not be empty",
        ));
    }
    Ok(m)
}

/// Flow collections nested deeper than the parser handles in linear time: refused
/// with their position before parsing (see [`yamlpos::MAX_FLOW_DEPTH`]).
fn too_deep(file: &Path, text: &str) -> Option<LoadError> {
    let (line, column) = yamlpos::too_deep(text)?;
    Some(LoadError::Invalid(Box::new(Invalid {
        file: file.to_path_buf(),
        line: Some(line),
        column: Some(column),
        field: String::new(),
        message: format!(
            "flow collections ([...] or {{...}}) nested more than {} levels deep",
            yamlpos::MAX_FLOW_DEPTH
        ),
    })))
}

/// A YAML reader error ending in ` at position N` (a byte offset): the offset is
/// removed from `msg`, the character named, and its line and column returned.
pub(crate) fn at_position(msg: &mut String, text: &str) -> Option<(usize, usize)> {
    let i = msg.find(" at position ")?;
    let at: usize = msg[i + " at position ".len()..].trim().parse().ok()?;
    msg.truncate(i);
    if let Some(c) = text.get(at..).and_then(|t| t.chars().next()) {
        msg.push_str(&format!(" (found U+{:04X})", c as u32));
    }
    Some(yamlpos::line_col_of_byte(text, at))
}

/// A key given twice in one mapping. Struct fields are checked while parsing; this
/// catches maps (`metadata.labels`, `nodeSelector`, `policies/config.yaml`), where the
/// second value would silently replace the first.
fn duplicate_key(file: &Path, text: &str) -> Option<LoadError> {
    let e = yaml_serde::from_str::<yaml_serde::Value>(text).err()?;
    let full = e.to_string();
    let i = full.find("duplicate entry")?;
    let field = full[..i].trim_end_matches(": ").to_string();
    let field = if field.contains(' ') {
        String::new()
    } else {
        field
    };
    let mut message = full[i..].to_string();
    if let Some(j) = message.find(" at line ") {
        message.truncate(j);
    }
    // yaml points at the mapping (or the first key); the repeat is what to fix.
    let repeat = message
        .strip_prefix("duplicate entry with key \"")
        .and_then(|r| r.split_once('"'))
        .and_then(|(key, _)| yamlpos::locate_repeat(text, &yamlpos::parse_path(&field), key));
    let loc = e.location();
    let (line, column) = match (repeat, loc) {
        (Some((l, c)), _) => (Some(l), Some(c)),
        (None, Some(l)) => (Some(l.line()), Some(l.column())),
        (None, None) => (None, None),
    };
    Some(LoadError::Invalid(Box::new(Invalid {
        file: file.to_path_buf(),
        line,
        column,
        field,
        message: format!("{message}: each key may appear once"),
    })))
}

/// Semantic checks of a ClusterVersion beyond its schema.
pub fn validate_cluster(
    file: &Path,
    text: &str,
    spec: &ClusterVersionSpec,
) -> Result<(), LoadError> {
    if spec.concurrency.is_some() && spec.max_unavailable.is_some() {
        return Err(LoadError::invalid(
            file,
            text,
            "spec.maxUnavailable",
            "set either concurrency or maxUnavailable, not both",
        ));
    }
    let CanarySpec {
        enabled,
        nodes,
        selector,
        count,
    } = &spec.canary;
    let batch_field = if spec.concurrency.is_some() {
        Some("spec.concurrency")
    } else if spec.max_unavailable.is_some() {
        Some("spec.maxUnavailable")
    } else {
        None
    };
    if spec.strategy == Strategy::Parallel
        && let Some(f) = batch_field
    {
        return Err(LoadError::invalid(
            file,
            text,
            f,
            format!(
                "spec.strategy: parallel upgrades every worker at once (as far as PDBs allow) and contradicts {f}: remove {f}, or use strategy: rolling"
            ),
        ));
    }
    // Only an explicit `enabled: false` contradicts `strategy: canary`; without a canary
    // section the planner picks the first in-scope worker.
    let explicit_off = !*enabled
        && yaml_serde::from_str::<serde_json::Value>(text)
            .ok()
            .is_some_and(|v| v.pointer("/spec/canary/enabled").is_some());
    if spec.strategy == Strategy::Canary && explicit_off {
        return Err(LoadError::invalid(
            file,
            text,
            "spec.canary.enabled",
            "spec.strategy: canary needs spec.canary.enabled: true (with canary nodes or a selector)",
        ));
    }
    if !nodes.is_empty() && selector.is_some() {
        return Err(LoadError::invalid(
            file,
            text,
            "spec.canary.selector",
            "spec.canary.nodes and spec.canary.selector both pick canary nodes: keep one",
        ));
    }
    if *enabled && nodes.is_empty() && selector.is_none() {
        return Err(LoadError::invalid(
            file,
            text,
            "spec.canary",
            "canary is enabled but names no nodes and no selector",
        ));
    }
    if count.is_some() && selector.is_none() {
        return Err(LoadError::invalid(
            file,
            text,
            "spec.canary.count",
            "count needs a selector",
        ));
    }
    if let Some(i) = spec.force.iter().position(|f| f.trim().is_empty()) {
        return Err(LoadError::invalid(
            file,
            text,
            &format!("spec.force[{i}]"),
            "empty rule id",
        ));
    }
    if spec.components.is_empty() {
        return Err(LoadError::invalid(
            file,
            text,
            "spec.components",
            "must list at least one component",
        ));
    }
    Ok(())
}

/// Semantic checks of an UpdateSchedule: cron strings, time zones, window forms, exclusions.
pub fn validate_schedule(
    file: &Path,
    text: &str,
    spec: &UpdateScheduleSpec,
) -> Result<(), LoadError> {
    schedule::validate(spec).map_err(|e| LoadError::invalid(file, text, &e.field, e.message))?;
    refuse_in_fleet_schedule(file, text, spec)
}

/// Fields of the original CUPCAKE's UpdateSchedule that a fleet repo's `schedule.yaml`
/// cannot honour: refused (never accepted and ignored), each saying what to use instead.
/// `maintenanceWindow` (a window) and `updatePolicy.targetVersionPattern` (a forceable
/// deny, `schedule.target-version-pattern`) are honoured.
fn refuse_in_fleet_schedule(
    file: &Path,
    text: &str,
    spec: &UpdateScheduleSpec,
) -> Result<(), LoadError> {
    if spec.schedule.is_some() {
        return Err(LoadError::invalid(
            file,
            text,
            "spec.schedule",
            "in a fleet repo the desired version comes from cluster.yaml, so there is no recurring upgrade to attempt: use spec.windows (when upgrades may start) and spec.autoUpdate (new versions proposed as pull requests); spec.schedule belongs to the in-cluster UpdateSchedule resource",
        ));
    }
    if let Some(p) = &spec.update_policy {
        for (set, field, instead) in [
            (!p.components.is_empty(), "components", "spec.components"),
            (p.strategy.is_some(), "strategy", "spec.strategy"),
            (p.concurrency.is_some(), "concurrency", "spec.concurrency"),
            (
                p.preflight_checks.is_some(),
                "preflightChecks",
                "spec.preflightChecks",
            ),
            (!p.labels.is_empty(), "labels", "metadata.labels"),
        ] {
            if set {
                return Err(LoadError::invalid(
                    file,
                    text,
                    &format!("spec.updatePolicy.{field}"),
                    format!(
                        "how the cluster is upgraded is set in cluster.yaml: move this to {instead} of clusters/<cluster>/cluster.yaml (only updatePolicy.targetVersionPattern applies in schedule.yaml)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn text_of<'t>(tree: &'t FleetTree, rel: &str) -> Result<&'t str, LoadError> {
    match tree.text(rel) {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(LoadError::Io {
            path: tree.display(rel),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        }),
        Err(error) => Err(LoadError::Io {
            path: tree.display(rel),
            error,
        }),
    }
}

fn load_cluster_def(tree: &FleetTree, name: &str) -> Result<ClusterDef, LoadError> {
    let rel = format!("clusters/{name}/cluster.yaml");
    if !tree.contains(&rel) {
        return Err(LoadError::UnknownCluster {
            name: name.to_string(),
            path: tree.display(&rel),
            known: known_clusters(tree).join(", "),
        });
    }
    check_cluster_files(tree, name)?;
    let file = tree.display(&rel);
    let text = text_of(tree, &rel)?;
    let version: ClusterVersion = parse_manifest(&file, text, "ClusterVersion")?;
    check_name(&file, text, &version.metadata.name, name)?;
    validate_cluster(&file, text, &version.spec)?;
    let sched_rel = format!("clusters/{name}/schedule.yaml");
    let schedule = if tree.contains(&sched_rel) {
        let sched_file = tree.display(&sched_rel);
        let text = text_of(tree, &sched_rel)?;
        let s: UpdateScheduleManifest = parse_manifest(&sched_file, text, "UpdateSchedule")?;
        check_name(&sched_file, text, &s.metadata.name, name)?;
        validate_schedule(&sched_file, text, &s.spec)?;
        Some(s)
    } else {
        None
    };
    Ok(ClusterDef {
        name: name.to_string(),
        path: PathBuf::from(rel),
        version,
        schedule,
    })
}

/// Files CUPCAKE reads in a cluster folder.
pub const CLUSTER_FILES: [&str; 4] = [
    "cluster.yaml",
    "schedule.yaml",
    "snapshot.yaml",
    "snapshot.json",
];

/// The fleet's list of files CUPCAKE must not complain about (paths relative to the
/// fleet root, one per line, `#` comments, `*` matching within one path segment).
pub const IGNORE_FILE: &str = ".cupcakeignore";

fn glob_match(pattern: &str, path: &str) -> bool {
    let (p, t): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    p.len() == t.len()
        && p.iter().zip(&t).all(|(p, t)| {
            let parts: Vec<&str> = p.split('*').collect();
            if parts.len() == 1 {
                return p == t;
            }
            let (first, last) = (parts[0], parts[parts.len() - 1]);
            if !t.starts_with(first) || !t.ends_with(last) || t.len() < first.len() + last.len() {
                return false;
            }
            let mut rest = &t[first.len()..t.len() - last.len()];
            for mid in &parts[1..parts.len() - 1] {
                match rest.find(mid) {
                    Some(i) => rest = &rest[i + mid.len()..],
                    None => return false,
                }
            }
            true
        })
}

fn ignored(tree: &FleetTree, rel: &str) -> bool {
    let Ok(Some(list)) = tree.text(IGNORE_FILE) else {
        return false;
    };
    list.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .any(|pat| glob_match(pat.trim_start_matches('/'), rel))
}

/// Every file in `clusters/<name>/` is one CUPCAKE reads, or listed in `.cupcakeignore`:
/// a misnamed `schedule.yml` silently skipped would mean no maintenance window at all.
fn check_cluster_files(tree: &FleetTree, name: &str) -> Result<(), LoadError> {
    let dir = format!("clusters/{name}");
    for rel in tree.under(&dir) {
        let file = &rel[dir.len() + 1..];
        if CLUSTER_FILES.contains(&file) || file == ".gitkeep" || ignored(tree, rel) {
            continue;
        }
        let lower = file.to_ascii_lowercase();
        let hint = CLUSTER_FILES
            .iter()
            .find(|known| {
                let stem = known.split('.').next().unwrap_or(known);
                lower.split('.').next() == Some(stem)
            })
            .map(|k| format!(" (did you mean {k}?)"))
            .unwrap_or_default();
        return Err(LoadError::Invalid(Box::new(Invalid {
            file: tree.display(rel),
            line: None,
            column: None,
            field: String::new(),
            message: format!(
                "CUPCAKE does not read this file{hint}; rename it, move it out of {dir}/, or list it in {IGNORE_FILE}. Files read here: {}",
                CLUSTER_FILES.join(", ")
            ),
        })));
    }
    Ok(())
}

/// `metadata.name` of a cluster's manifests is its folder name.
fn check_name(file: &Path, text: &str, got: &str, folder: &str) -> Result<(), LoadError> {
    if got == folder {
        return Ok(());
    }
    Err(LoadError::invalid(
        file,
        text,
        "metadata.name",
        format!(
            "{got:?} does not match the cluster folder {folder:?}: the folder name is the cluster's name"
        ),
    ))
}

/// Cluster folders of the tree (those with a `cluster.yaml`), sorted; `["none"]` when empty.
fn known_clusters(tree: &FleetTree) -> Vec<String> {
    let mut names: Vec<String> = tree
        .under("clusters")
        .filter_map(|p| {
            let rest = p.strip_prefix("clusters/")?;
            let (name, file) = rest.split_once('/')?;
            (file == "cluster.yaml").then(|| name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        names.push("none".to_string());
    }
    names
}

fn load_catalog(tree: &FleetTree) -> Result<Option<VersionCatalog>, LoadError> {
    let rel = "versions.yaml";
    if !tree.contains(rel) {
        return Ok(None);
    }
    let text = text_of(tree, rel)?;
    let c: VersionCatalog = parse_manifest(&tree.display(rel), text, "VersionCatalog")?;
    Ok(Some(c))
}

/// Read a fleet directory into a tree (see [`source::dir`]).
fn read_tree(root: &Path) -> Result<FleetTree, LoadError> {
    source::dir(root).map_err(LoadError::Source)
}

/// Load one cluster (and the catalogue) of a fleet tree.
pub fn cluster(tree: &FleetTree, name: &str) -> Result<Fleet, LoadError> {
    let catalog = load_catalog(tree)?;
    let def = load_cluster_def(tree, name)?;
    Ok(Fleet {
        root: tree.origin.clone(),
        clusters: BTreeMap::from([(name.to_string(), def)]),
        catalog,
    })
}

/// Load every cluster of a fleet tree; the first invalid file fails the whole load.
pub fn fleet(tree: &FleetTree) -> Result<Fleet, LoadError> {
    let catalog = load_catalog(tree)?;
    let mut clusters = BTreeMap::new();
    for name in known_clusters(tree).into_iter().filter(|n| n != "none") {
        let def = load_cluster_def(tree, &name)?;
        clusters.insert(name, def);
    }
    Ok(Fleet {
        root: tree.origin.clone(),
        clusters,
        catalog,
    })
}

/// Load one cluster (and the catalogue) of the fleet directory at `root`.
pub fn load_cluster(root: &Path, name: &str) -> Result<Fleet, LoadError> {
    cluster(&read_tree(root)?, name)
}

/// Load every cluster of the fleet directory at `root`.
pub fn load_fleet(root: &Path) -> Result<Fleet, LoadError> {
    fleet(&read_tree(root)?)
}

/// The fleet's own policy files (`policies/**.rego`, `*.cel.yaml` and their tests), sorted,
/// named as the tree shows them.
pub fn policy_sources(tree: &FleetTree) -> Result<Vec<PolicySource>, LoadError> {
    let mut out = Vec::new();
    for rel in tree.under("policies") {
        if SourceKind::of(rel).is_none() {
            continue;
        }
        out.push(PolicySource {
            path: tree.display(rel).display().to_string(),
            text: text_of(tree, rel)?.to_string(),
        });
    }
    Ok(out)
}

/// The fleet's `policies/config.yaml` (free-form settings for rules, `input.config`); `{}` without one.
pub fn policy_config(tree: &FleetTree) -> Result<serde_json::Value, LoadError> {
    let rel = "policies/config.yaml";
    let empty = serde_json::Value::Object(Default::default());
    let Some(text) = tree.text(rel).map_err(|error| LoadError::Io {
        path: tree.display(rel),
        error,
    })?
    else {
        return Ok(empty);
    };
    let file = tree.display(rel);
    if let Some(e) = too_deep(&file, text) {
        return Err(e);
    }
    let v: serde_json::Value = yaml_serde::from_str(text).map_err(|e| {
        let loc = e.location();
        let mut message = e.to_string();
        let at = at_position(&mut message, text);
        LoadError::Invalid(Box::new(Invalid {
            file: file.clone(),
            line: at.map(|p| p.0).or(loc.as_ref().map(|l| l.line())),
            column: at.map(|p| p.1).or(loc.as_ref().map(|l| l.column())),
            field: String::new(),
            message: format!("invalid YAML: {message}"),
        }))
    })?;
    if let Some(e) = duplicate_key(&file, text) {
        return Err(e);
    }
    match v {
        serde_json::Value::Object(_) => Ok(v),
        serde_json::Value::Null => Ok(empty),
        _ => Err(LoadError::Invalid(Box::new(Invalid {
            file,
            line: Some(1),
            column: Some(1),
            field: String::new(),
            message: "expected a mapping of settings".to_string(),
        }))),
    }
}
