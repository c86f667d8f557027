//! Kubernetes release versions (`1.34.2`, `v1.34.2`, `1.35.0-rc.1`).
//!
//! The `semver` crate rejects the leading `v` Kubernetes uses everywhere, and
//! we only need major.minor.patch plus an optional pre-release, so this is a
//! small purpose-built type.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Regex every version string in a manifest must match (used in CRD and JSON schemas).
pub const VERSION_PATTERN: &str = r"^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$";

/// A Kubernetes release version. Ordering follows SemVer: `1.35.0-rc.1 < 1.35.0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KubeVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Pre-release part without the dash, e.g. `rc.1`; `None` for a release.
    pub pre: Option<String>,
}

/// Why a string is not a Kubernetes version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid Kubernetes version {input:?}: {reason} (expected MAJOR.MINOR.PATCH, e.g. 1.34.2 or v1.34.2)"
)]
pub struct VersionError {
    pub input: String,
    pub reason: &'static str,
}

/// How far a pre-release may go, from `allowPrerelease`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrereleaseKind {
    /// Release candidates (`-rc.N`).
    Rc,
    /// Alphas, betas and anything else.
    Other,
}

/// Bounds of each part: far beyond any Kubernetes release, small enough that nothing
/// computed from a version (hop lists, ranges) can grow without bound.
pub const MAX_MAJOR: u64 = 9;
pub const MAX_MINOR: u64 = 999;
pub const MAX_PATCH: u64 = 99_999;

impl KubeVersion {
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self {
            major,
            minor,
            patch,
            pre: None,
        }
    }

    /// Parse a version as Kubernetes prints it. Build metadata (`+k3s1`) and the
    /// vendor suffixes kubelets sometimes report after a `-` that does not start a
    /// SemVer pre-release are kept as pre-release text only when they look like one.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let err = |reason| VersionError {
            input: input.to_string(),
            reason,
        };
        let s = input.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        // Build metadata never affects ordering.
        let s = s.split('+').next().unwrap_or(s);
        let (core, pre) = match s.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (s, None),
        };
        let mut parts = core.split('.');
        let mut num = |what: &'static str| -> Result<u64, VersionError> {
            let p = parts.next().ok_or_else(|| err(what))?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(what));
            }
            if p.len() > 1 && p.starts_with('0') {
                return Err(err("leading zero in a numeric part"));
            }
            p.parse().map_err(|_| err("number too large"))
        };
        let major = num("missing or non-numeric major")?;
        let minor = num("missing or non-numeric minor")?;
        let patch = num("missing or non-numeric patch")?;
        if major > MAX_MAJOR || minor > MAX_MINOR || patch > MAX_PATCH {
            return Err(err(
                "number out of range (major at most 9, minor at most 999, patch at most 99999)",
            ));
        }
        if parts.next().is_some() {
            return Err(err("too many numeric parts"));
        }
        let pre = match pre {
            None => None,
            Some(p)
                if !p.is_empty()
                    && p.split('.').all(|id| {
                        !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    }) =>
            {
                Some(p.to_string())
            }
            Some(_) => return Err(err("malformed pre-release")),
        };
        Ok(Self {
            major,
            minor,
            patch,
            pre,
        })
    }

    /// Parse the tag of a container image (`registry.k8s.io/kube-apiserver:v1.33.4@sha256:…`).
    pub fn from_image(image: &str) -> Option<Self> {
        let without_digest = image.split('@').next()?;
        let (_, tag) = without_digest.rsplit_once(':')?;
        if tag.contains('/') {
            return None; // a registry port, not a tag
        }
        Self::parse(tag).ok()
    }

    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some()
    }

    /// The kind of pre-release, if this is one.
    pub fn prerelease_kind(&self) -> Option<PrereleaseKind> {
        self.pre.as_deref().map(|p| {
            if p.starts_with("rc") {
                PrereleaseKind::Rc
            } else {
                PrereleaseKind::Other
            }
        })
    }

    /// Same major and minor.
    pub fn same_minor(&self, other: &Self) -> bool {
        self.major == other.major && self.minor == other.minor
    }

    /// `self.minor - other.minor` for the same major (negative if older).
    pub fn minor_distance(&self, other: &Self) -> i64 {
        if self.major != other.major {
            // Kubernetes has had one major since 2015; treat another major as far away.
            return if self.major > other.major {
                1000
            } else {
                -1000
            };
        }
        self.minor as i64 - other.minor as i64
    }

    /// The `x.y.0` release of this minor.
    pub fn minor_base(&self) -> Self {
        Self::new(self.major, self.minor, 0)
    }

    /// The version with a leading `v`, as Kubernetes images and kubelets print it.
    pub fn with_v(&self) -> String {
        format!("v{self}")
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

impl FromStr for KubeVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn cmp_pre(a: &str, b: &str) -> Ordering {
    let mut ai = a.split('.');
    let mut bi = b.split('.');
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

impl Ord for KubeVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => cmp_pre(a, b),
            })
    }
}

impl PartialOrd for KubeVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for KubeVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KubeVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for KubeVersion {
    fn schema_name() -> Cow<'static, str> {
        "KubeVersion".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": VERSION_PATTERN,
            "description": "A Kubernetes version, MAJOR.MINOR.PATCH with an optional leading v and pre-release (1.34.2, v1.35.0-rc.1)."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_spellings() {
        let cases = [
            ("1.34.2", Some((1, 34, 2, None))),
            ("v1.34.2", Some((1, 34, 2, None))),
            ("v1.35.0-rc.1", Some((1, 35, 0, Some("rc.1")))),
            ("v1.33.4+k3s1", Some((1, 33, 4, None))),
            ("1.34", None),
            ("1.34.x", None),
            ("1.34.2.1", None),
            ("", None),
            ("v", None),
            ("1.034.2", None),
            ("1.34.2-", None),
            ("one.two.three", None),
        ];
        for (input, want) in cases {
            let got = KubeVersion::parse(input)
                .ok()
                .map(|v| (v.major, v.minor, v.patch, v.pre));
            let want = want
                .map(|(a, b, c, p): (u64, u64, u64, Option<&str>)| (a, b, c, p.map(String::from)));
            assert_eq!(got, want, "{input}");
        }
    }

    #[test]
    fn orders_prereleases_before_releases() {
        let v = |s| KubeVersion::parse(s).unwrap();
        assert!(v("1.35.0-rc.1") < v("1.35.0"));
        assert!(v("1.35.0-alpha.2") < v("1.35.0-beta.0"));
        assert!(v("1.35.0-rc.2") < v("1.35.0-rc.10"));
        assert!(v("1.34.10") > v("1.34.9"));
        assert_eq!(v("v1.34.2"), v("1.34.2"));
    }

    #[test]
    fn reads_image_tags() {
        let cases = [
            ("registry.k8s.io/kube-apiserver:v1.33.4", Some("1.33.4")),
            (
                "localhost:5000/kube-apiserver:v1.33.4@sha256:abc",
                Some("1.33.4"),
            ),
            ("localhost:5000/kube-apiserver", None),
            ("kube-apiserver:latest", None),
        ];
        for (image, want) in cases {
            assert_eq!(
                KubeVersion::from_image(image)
                    .map(|v| v.to_string())
                    .as_deref(),
                want,
                "{image}"
            );
        }
    }
}
