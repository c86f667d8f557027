//! Load and validate a fleet repo: `clusters/<name>/cluster.yaml`,
//! `clusters/<name>/schedule.yaml` and `versions.yaml`.
//!
//! Every error names the file, the line and column, and the field path, and a
//! load either returns everything or nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use cupcake_api::common::CanarySpec;
use cupcake_api::fleet::{
    API_VERSION, ClusterVersion, ClusterVersionSpec, Manifest, UpdateScheduleManifest,
    VersionCatalog, VersionCatalogSpec,
};
use cupcake_api::schedule::UpdateScheduleSpec;
use serde::de::DeserializeOwned;

use crate::schedule;
use crate::yamlpos;

/// A fleet-repo file that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Box<Invalid>),
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

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })
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
            // yaml's message repeats the position; ours is in front already.
            if let Some(i) = msg.find(" at line ") {
                msg.truncate(i);
            }
            // yaml also prefixes its own (coarser) path; ours is more precise.
            if let Some((prefix, rest)) = msg.split_once(": ")
                && !prefix.contains(' ')
                && field.starts_with(prefix)
            {
                msg = rest.to_string();
            }
            // Our locator knows exactly where a field is; yaml knows where parsing stopped.
            let exact = yamlpos::locate_exact(text, &yamlpos::parse_path(&field))
                .filter(|p| p.2 && !field.is_empty());
            let (line, column) = match (exact, loc) {
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
    schedule::validate(spec).map_err(|e| LoadError::invalid(file, text, &e.field, e.message))
}

fn load_cluster_dir(root: &Path, name: &str) -> Result<ClusterDef, LoadError> {
    let rel = PathBuf::from("clusters").join(name).join("cluster.yaml");
    let file = root.join(&rel);
    if !file.is_file() {
        return Err(LoadError::UnknownCluster {
            name: name.to_string(),
            path: file,
            known: known_clusters(root).join(", "),
        });
    }
    let text = read(&file)?;
    let version: ClusterVersion = parse_manifest(&file, &text, "ClusterVersion")?;
    validate_cluster(&file, &text, &version.spec)?;
    let sched_file = root.join("clusters").join(name).join("schedule.yaml");
    let schedule = if sched_file.is_file() {
        let text = read(&sched_file)?;
        let s: UpdateScheduleManifest = parse_manifest(&sched_file, &text, "UpdateSchedule")?;
        validate_schedule(&sched_file, &text, &s.spec)?;
        Some(s)
    } else {
        None
    };
    Ok(ClusterDef {
        name: name.to_string(),
        path: rel,
        version,
        schedule,
    })
}

fn known_clusters(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("clusters"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("cluster.yaml").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    names.sort();
    if names.is_empty() {
        names.push("none".to_string());
    }
    names
}

fn load_catalog(root: &Path) -> Result<Option<VersionCatalog>, LoadError> {
    let file = root.join("versions.yaml");
    if !file.is_file() {
        return Ok(None);
    }
    let text = read(&file)?;
    let c: VersionCatalog = parse_manifest(&file, &text, "VersionCatalog")?;
    Ok(Some(c))
}

/// Load one cluster (and the catalogue) of the fleet at `root`.
pub fn load_cluster(root: &Path, name: &str) -> Result<Fleet, LoadError> {
    let catalog = load_catalog(root)?;
    let def = load_cluster_dir(root, name)?;
    Ok(Fleet {
        root: root.to_path_buf(),
        clusters: BTreeMap::from([(name.to_string(), def)]),
        catalog,
    })
}

/// Load every cluster of the fleet at `root`; the first invalid file fails the whole load.
pub fn load_fleet(root: &Path) -> Result<Fleet, LoadError> {
    let catalog = load_catalog(root)?;
    let mut clusters = BTreeMap::new();
    for name in known_clusters(root).into_iter().filter(|n| n != "none") {
        let def = load_cluster_dir(root, &name)?;
        clusters.insert(name, def);
    }
    Ok(Fleet {
        root: root.to_path_buf(),
        clusters,
        catalog,
    })
}
