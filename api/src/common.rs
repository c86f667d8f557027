//! Value types shared by the CRDs and the fleet-repo manifests.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Regex for durations in manifests: Go-style `90s`, `30m`, `4h`, `1h30m`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h|d))+$";

/// A duration written the way Kubernetes users write them (`1h30m`, `45s`, `2d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub std::time::Duration);

/// Why a string is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {0:?}: expected a number followed by a unit (ms, s, m, h, d), e.g. 90s, 30m, 1h30m"
)]
pub struct DurationError(pub String);

impl GoDuration {
    pub const fn from_secs(s: u64) -> Self {
        Self(std::time::Duration::from_secs(s))
    }
    pub fn as_secs(&self) -> u64 {
        self.0.as_secs()
    }
}

impl FromStr for GoDuration {
    type Err = DurationError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = || DurationError(input.to_string());
        let mut total_ms: u128 = 0;
        let mut rest = input.trim();
        if rest.is_empty() {
            return Err(err());
        }
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err());
            }
            let n: u128 = rest[..digits].parse().map_err(|_| err())?;
            rest = &rest[digits..];
            let (unit_ms, len) = if rest.starts_with("ms") {
                (1, 2)
            } else if rest.starts_with('s') {
                (1_000, 1)
            } else if rest.starts_with('m') {
                (60_000, 1)
            } else if rest.starts_with('h') {
                (3_600_000, 1)
            } else if rest.starts_with('d') {
                (86_400_000, 1)
            } else {
                return Err(err());
            };
            rest = &rest[len..];
            total_ms = total_ms
                .checked_add(n.checked_mul(unit_ms).ok_or_else(err)?)
                .ok_or_else(err)?;
        }
        let ms = u64::try_from(total_ms).map_err(|_| err())?;
        Ok(Self(std::time::Duration::from_millis(ms)))
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        if !ms.is_multiple_of(1000) {
            return write!(f, "{ms}ms");
        }
        let mut s = self.0.as_secs();
        let h = s / 3600;
        s %= 3600;
        let m = s / 60;
        s %= 60;
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for GoDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "description": "A duration: numbers with units ms, s, m, h, d (90s, 30m, 1h30m)."
        })
    }
}

/// An absolute count or a percentage (`3` or `"25%"`), like `maxUnavailable` in Deployments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntOrPercent {
    Int(u32),
    Percent(u32),
}

impl IntOrPercent {
    /// Resolve against a total: percentages round down but never below 1.
    pub fn resolve(&self, total: usize) -> usize {
        match *self {
            Self::Int(n) => (n as usize).max(1),
            Self::Percent(p) => (total * p as usize / 100).max(1),
        }
    }
}

impl fmt::Display for IntOrPercent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(n) => write!(f, "{n}"),
            Self::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Serialize for IntOrPercent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Int(n) => s.serialize_u32(*n),
            Self::Percent(_) => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrPercent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IntOrPercent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a positive integer or a percentage like \"25%\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                if v == 0 {
                    return Err(E::custom("must be at least 1"));
                }
                u32::try_from(v)
                    .map(IntOrPercent::Int)
                    .map_err(|_| E::custom("too large"))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                if v < 1 {
                    return Err(E::custom(format!("must be at least 1, got {v}")));
                }
                self.visit_u64(v as u64)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if let Some(p) = v.strip_suffix('%') {
                    let n: u32 = p
                        .parse()
                        .map_err(|_| E::custom(format!("invalid percentage {v:?}")))?;
                    if n == 0 || n > 100 {
                        return Err(E::custom(format!(
                            "percentage {v:?} must be between 1% and 100%"
                        )));
                    }
                    Ok(IntOrPercent::Percent(n))
                } else {
                    let n: i64 = v.parse().map_err(|_| {
                        E::custom(format!(
                            "invalid value {v:?}: expected an integer or a percentage like \"25%\""
                        ))
                    })?;
                    self.visit_i64(n)
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for IntOrPercent {
    fn schema_name() -> Cow<'static, str> {
        "IntOrPercent".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "x-kubernetes-int-or-string": true,
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": "^([1-9][0-9]?|100)%$"}
            ],
            "description": "A node count (at least 1) or a percentage of the in-scope workers (\"25%\", rounded down, at least 1 node)."
        })
    }
}

/// How worker nodes are rolled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Batches of `concurrency` (or `maxUnavailable`) nodes, one batch at a time.
    #[default]
    Rolling,
    /// Batches as large as the PodDisruptionBudgets allow.
    Parallel,
    /// Canary nodes first as their own batch, then rolling batches.
    Canary,
}

/// A host component the agent upgrades.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    Kubeadm,
    Kubelet,
    Kubectl,
    Containerd,
}

/// The components upgraded when a manifest does not list them.
pub fn default_components() -> Vec<Component> {
    vec![Component::Kubeadm, Component::Kubelet, Component::Kubectl]
}

/// Canary nodes: upgraded first, as a batch of their own, in every worker pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanarySpec {
    /// Turn the canary batch on.
    #[serde(default)]
    pub enabled: bool,
    /// Canary nodes by name. Takes precedence over `selector`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Pick canary nodes by label instead of by name (the first `count` matches, by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<BTreeMap<String, String>>,
    /// How many nodes the selector picks (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub count: Option<u32>,
}

/// How nodes are drained before their kubelet is upgraded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrainSpec {
    /// Give up draining a node after this long and report the blocking pods (default 10m).
    #[serde(default = "default_drain_timeout")]
    pub timeout: GoDuration,
    /// Grace period for evicted pods, in seconds; unset uses each pod's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub grace_period_seconds: Option<i64>,
    /// Evict pods that use emptyDir volumes (their data is lost).
    #[serde(default = "yes")]
    pub delete_empty_dir_data: bool,
    /// Leave DaemonSet pods running (they would be recreated anyway).
    #[serde(default = "yes")]
    pub ignore_daemon_sets: bool,
    /// Also delete pods that no controller manages (they are not recreated).
    #[serde(default)]
    pub force: bool,
}

fn yes() -> bool {
    true
}

fn default_drain_timeout() -> GoDuration {
    GoDuration::from_secs(600)
}

impl Default for DrainSpec {
    fn default() -> Self {
        Self {
            timeout: default_drain_timeout(),
            grace_period_seconds: None,
            delete_empty_dir_data: true,
            ignore_daemon_sets: true,
            force: false,
        }
    }
}

/// Pre-release targets a cluster accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AllowPrerelease {
    /// Releases only.
    #[default]
    None,
    /// Release candidates (`-rc.N`) too.
    Rc,
    /// Any pre-release (alpha, beta, rc).
    All,
}

impl AllowPrerelease {
    /// Whether a version is acceptable as a target under this setting.
    pub fn permits(&self, v: &crate::KubeVersion) -> bool {
        use crate::version::PrereleaseKind;
        match (self, v.prerelease_kind()) {
            (_, None) => true,
            (Self::None, Some(_)) => false,
            (Self::Rc, Some(PrereleaseKind::Rc)) => true,
            (Self::Rc, Some(PrereleaseKind::Other)) => false,
            (Self::All, Some(_)) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        let cases = [
            ("90s", Some(90)),
            ("30m", Some(1800)),
            ("1h30m", Some(5400)),
            ("2d", Some(172800)),
            ("4h", Some(14400)),
            ("", None),
            ("h", None),
            ("10", None),
            ("1x", None),
            ("-5m", None),
        ];
        for (s, want) in cases {
            assert_eq!(
                s.parse::<GoDuration>().ok().map(|d| d.as_secs()),
                want,
                "{s}"
            );
        }
        assert_eq!("5400s".parse::<GoDuration>().unwrap().to_string(), "1h30m");
    }

    #[test]
    fn percentages_round_down_to_at_least_one() {
        let cases = [
            (IntOrPercent::Percent(25), 10, 2),
            (IntOrPercent::Percent(10), 5, 1),
            (IntOrPercent::Percent(100), 7, 7),
            (IntOrPercent::Int(3), 2, 3),
            (IntOrPercent::Percent(33), 9, 2),
        ];
        for (v, total, want) in cases {
            assert_eq!(v.resolve(total), want, "{v} of {total}");
        }
    }

    #[test]
    fn int_or_percent_rejects_nonsense() {
        for bad in ["0", "-1", "\"0%\"", "\"150%\"", "\"abc\""] {
            assert!(serde_json::from_str::<IntOrPercent>(bad).is_err(), "{bad}");
        }
        assert_eq!(
            serde_json::from_str::<IntOrPercent>("\"25%\"").unwrap(),
            IntOrPercent::Percent(25)
        );
        assert_eq!(
            serde_json::from_str::<IntOrPercent>("4").unwrap(),
            IntOrPercent::Int(4)
        );
    }
}
