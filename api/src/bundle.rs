//! The air-gapped package bundle: the contract between the ConfigMap named by a
//! DirectUpdate's `spec.airGapped.bundleConfigMap`, the controller (which checks it in
//! preflight and names it on each assignment with the `package-source` annotation) and the
//! agent (which installs from it). See docs/host-steps.md, "Air-gapped bundle".
//!
//! ```
//! use cupcake_api::bundle::PackageBundle;
//! use cupcake_api::common::Component;
//! let b = PackageBundle::from_yaml(r#"
//! apiVersion: cupcake.ricardomolendijk.com/v1
//! kind: PackageBundle
//! repository:
//!   apt: "file:///var/lib/cupcake/bundle/apt"
//! versions:
//!   "1.34.2": {kubeadm: "1.34.2-1.1", kubelet: "1.34.2-1.1", kubectl: "1.34.2-1.1"}
//! "#).unwrap();
//! let v = "1.34.2".parse().unwrap();
//! assert_eq!(b.package_version(&v, Component::Kubelet), Some("1.34.2-1.1"));
//! assert!(b.missing(&[v], &[Component::Kubeadm, Component::Containerd]).len() == 1);
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::KubeVersion;
use crate::common::Component;

/// ConfigMap data key holding the bundle manifest.
pub const DATA_KEY: &str = "bundle.yaml";
/// Optional ConfigMap binaryData key: the repository's signing key (OpenPGP, binary).
pub const KEYRING_KEY: &str = "keyring.gpg";
/// `kind` of the manifest.
pub const KIND: &str = "PackageBundle";
/// Namespace of a bare `bundleConfigMap` name when the controller has no `POD_NAMESPACE`.
pub const DEFAULT_NAMESPACE: &str = "cupcake-system";

/// `bundle.yaml`: where the packages are and which exact package version belongs to
/// each Kubernetes version. Unknown fields are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PackageBundle {
    /// Always `cupcake.ricardomolendijk.com/v1`.
    pub api_version: String,
    /// Always `PackageBundle`.
    pub kind: String,
    /// The package repositories the nodes install from.
    pub repository: BundleRepository,
    /// Kubernetes version → component → exact package version in the repository.
    pub versions: BTreeMap<KubeVersion, BTreeMap<Component, String>>,
}

/// Repositories of a bundle: at least one of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BundleRepository {
    /// A flat apt repository (`deb [signed-by=…] URL ./`): `file://` on the host or `http(s)://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apt: Option<String>,
    /// The `baseurl` of an rpm repository (dnf/yum): `file://` on the host or `http(s)://`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnf: Option<String>,
}

/// Why a `bundle.yaml` is not a usable bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Not YAML of the bundle's shape (unknown field, wrong type, bad version); the
    /// message carries the line and column.
    #[error("{0}")]
    Parse(String),
    /// Well-formed but wrong: names the field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

/// One (version, component) pair a bundle does not list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub version: KubeVersion,
    /// `None`: the version itself is missing.
    pub component: Option<Component>,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.component {
            None => write!(f, "version {}", self.version),
            Some(c) => write!(f, "{} for {}", component_name(c), self.version),
        }
    }
}

/// The lowercase name a component has in manifests and annotations.
pub fn component_name(c: Component) -> &'static str {
    match c {
        Component::Kubeadm => "kubeadm",
        Component::Kubelet => "kubelet",
        Component::Kubectl => "kubectl",
        Component::Containerd => "containerd",
    }
}

impl PackageBundle {
    /// Parse and check `bundle.yaml`. Errors carry the line and column (parse) or the field.
    pub fn from_yaml(text: &str) -> Result<Self, BundleError> {
        let b: PackageBundle =
            yaml_serde::from_str(text).map_err(|e| BundleError::Parse(e.to_string()))?;
        b.validate()?;
        Ok(b)
    }

    fn validate(&self) -> Result<(), BundleError> {
        let invalid = |field: &str, message: String| BundleError::Invalid {
            field: field.to_string(),
            message,
        };
        if self.api_version != crate::fleet::API_VERSION {
            return Err(invalid(
                "apiVersion",
                format!(
                    "{:?} is not {:?}",
                    self.api_version,
                    crate::fleet::API_VERSION
                ),
            ));
        }
        if self.kind != KIND {
            return Err(invalid("kind", format!("{:?} is not {KIND:?}", self.kind)));
        }
        if self.repository.apt.is_none() && self.repository.dnf.is_none() {
            return Err(invalid(
                "repository",
                "names no repository (set apt, dnf or both)".to_string(),
            ));
        }
        for (field, url) in [
            ("repository.apt", &self.repository.apt),
            ("repository.dnf", &self.repository.dnf),
        ] {
            if let Some(u) = url
                && !["file:///", "http://", "https://"]
                    .iter()
                    .any(|p| u.starts_with(p) && u.len() > p.len())
            {
                return Err(invalid(
                    field,
                    format!("{u:?} is not a file:///, http:// or https:// URL"),
                ));
            }
        }
        if self.versions.is_empty() {
            return Err(invalid("versions", "lists no version".to_string()));
        }
        for (v, pkgs) in &self.versions {
            for (c, p) in pkgs {
                if p.is_empty() || p.chars().any(|ch| ch.is_whitespace() || ch == '=') {
                    return Err(invalid(
                        &format!("versions.\"{v}\".{}", component_name(*c)),
                        format!(
                            "{p:?} is not an exact package version (e.g. \"{}.{}.{}-1.1\")",
                            v.major, v.minor, v.patch
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The exact package version of `component` for Kubernetes `version`.
    pub fn package_version(&self, version: &KubeVersion, component: Component) -> Option<&str> {
        self.versions
            .get(version)
            .and_then(|p| p.get(&component))
            .map(String::as_str)
    }

    /// What the bundle lacks to install `components` at each of `versions`, in order.
    pub fn missing(&self, versions: &[KubeVersion], components: &[Component]) -> Vec<Missing> {
        let mut out = Vec::new();
        for v in versions {
            match self.versions.get(v) {
                None => out.push(Missing {
                    version: v.clone(),
                    component: None,
                }),
                Some(p) => {
                    out.extend(
                        components
                            .iter()
                            .filter(|c| !p.contains_key(c))
                            .map(|c| Missing {
                                version: v.clone(),
                                component: Some(*c),
                            }),
                    )
                }
            }
        }
        out
    }
}

/// `namespace/name` of a bundle ConfigMap: `bundleConfigMap` as written, a bare name
/// taking `default_namespace`. Refuses an empty part or more than one `/`.
pub fn config_map_ref(value: &str, default_namespace: &str) -> Result<(String, String), String> {
    let v = value.trim();
    let (ns, name) = match v.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (default_namespace, v),
    };
    if ns.is_empty() || name.is_empty() || name.contains('/') {
        return Err(format!(
            "airGapped.bundleConfigMap {value:?} is not NAME or NAMESPACE/NAME"
        ));
    }
    Ok((ns.to_string(), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"apiVersion: cupcake.ricardomolendijk.com/v1
kind: PackageBundle
repository:
  apt: "file:///var/lib/cupcake/bundle/apt"
  dnf: "https://mirror.example/rpm"
versions:
  "1.33.6": {kubeadm: "1.33.6-1.1", kubelet: "1.33.6-1.1", kubectl: "1.33.6-1.1"}
  "v1.34.2": {kubeadm: "1.34.2-1.1", kubelet: "1.34.2-1.1", kubectl: "1.34.2-1.1", containerd: "1.7.27-1"}
"#;

    fn v(s: &str) -> KubeVersion {
        s.parse().expect("version")
    }

    #[test]
    fn good_bundle_parses_and_answers() {
        let b = PackageBundle::from_yaml(GOOD).expect("parses");
        assert_eq!(
            b.package_version(&v("1.34.2"), Component::Containerd),
            Some("1.7.27-1")
        );
        assert!(
            b.missing(
                &[v("1.33.6"), v("1.34.2")],
                &[Component::Kubeadm, Component::Kubelet]
            )
            .is_empty()
        );
        let m = b.missing(
            &[v("1.33.6"), v("1.34.3")],
            &[Component::Kubeadm, Component::Containerd],
        );
        let m: Vec<String> = m.iter().map(ToString::to_string).collect();
        assert_eq!(m, ["containerd for 1.33.6", "version 1.34.3"]);
    }

    #[test]
    fn bad_bundles_name_what_is_wrong() {
        let cases: &[(&str, &str)] = &[
            ("extra: 1\n", "unknown field `extra`"),
            ("kindd: x\n", "unknown field `kindd`"),
        ];
        for (extra, want) in cases {
            let text = format!("{GOOD}{extra}");
            let e = PackageBundle::from_yaml(&text)
                .expect_err(extra)
                .to_string();
            assert!(e.contains(want), "{extra:?}: {e}");
            assert!(e.contains("line"), "{extra:?}: no line in {e}");
        }
        let replace = |from: &str, to: &str| GOOD.replace(from, to);
        let cases: Vec<(String, &str)> = vec![
            (replace("kind: PackageBundle", "kind: Bundle"), "kind:"),
            (replace("  dnf:", "  yum:"), "unknown field `yum`"),
            (
                replace("cupcake.ricardomolendijk.com/v1", "v1"),
                "apiVersion:",
            ),
            (
                replace("file:///var/lib/cupcake/bundle/apt", "/var/lib/x"),
                "repository.apt:",
            ),
            (
                replace("\"1.7.27-1\"", "\"\""),
                "versions.\"1.34.2\".containerd:",
            ),
            (
                replace("kubectl: \"1.33.6-1.1\"", "kubelctl: \"1\""),
                "unknown variant `kubelctl`",
            ),
            (
                replace("\"1.33.6\":", "\"1.33\":"),
                "invalid Kubernetes version",
            ),
        ];
        for (text, want) in cases {
            let e = PackageBundle::from_yaml(&text).expect_err(want).to_string();
            assert!(e.contains(want), "want {want:?} in {e}");
        }
        let no_repo = "apiVersion: cupcake.ricardomolendijk.com/v1\nkind: PackageBundle\nrepository: {}\nversions: {\"1.34.2\": {kubeadm: \"1\"}}\n";
        let e = PackageBundle::from_yaml(no_repo)
            .expect_err("no repo")
            .to_string();
        assert!(e.contains("repository: names no repository"), "{e}");
    }

    #[test]
    fn config_map_refs() {
        assert_eq!(
            config_map_ref("bundle", "cupcake-system"),
            Ok(("cupcake-system".into(), "bundle".into()))
        );
        assert_eq!(
            config_map_ref("ops/bundle", "cupcake-system"),
            Ok(("ops".into(), "bundle".into()))
        );
        for bad in ["", "/b", "a/", "a/b/c"] {
            assert!(config_map_ref(bad, "x").is_err(), "{bad:?}");
        }
    }
}
