//! The control plane's path to the target: one minor per hop, intermediate
//! hops to the newest patch of their minor in `versions.yaml` (without one,
//! `x.y.0`, with a warning).

use std::collections::BTreeMap;

use cupcake_api::KubeVersion;
use cupcake_api::common::AllowPrerelease;
use cupcake_api::fleet::VersionCatalogSpec;
use cupcake_api::plan::{Finding, Hop};

use super::rules;

/// The hops from control plane `cp` to `target`; none when every apiserver already runs it.
pub(crate) fn hops(
    apiservers: &BTreeMap<String, KubeVersion>,
    cp: &KubeVersion,
    target: &KubeVersion,
    downgrade: bool,
    catalog: Option<&VersionCatalogSpec>,
    findings: &mut Vec<Finding>,
) -> Vec<Hop> {
    let mut hops: Vec<Hop> = Vec::new();
    if target.same_minor(cp) || downgrade {
        if apiservers.values().any(|v| v != target) {
            hops.push(Hop {
                from: cp.clone(),
                to: target.clone(),
            });
        }
        return hops;
    }
    let mut from = cp.clone();
    let mut missing = Vec::new();
    for m in cp.minor + 1..=target.minor {
        let to = if m == target.minor {
            target.clone()
        } else {
            match catalog.and_then(|c| c.latest_patch(target.major, m, AllowPrerelease::None)) {
                Some(v) => v.clone(),
                None => {
                    let v = KubeVersion::new(target.major, m, 0);
                    missing.push(v.to_string());
                    v
                }
            }
        };
        hops.push(Hop {
            from: from.clone(),
            to: to.clone(),
        });
        from = to;
    }
    if !missing.is_empty() {
        findings.push(rules::NO_CATALOG.finding(format!(
            "{} has no release of the intermediate minor(s); the plan uses {}. Add the releases to versions.yaml to hop to their newest patches",
            if catalog.is_some() {
                "versions.yaml"
            } else {
                "there is no versions.yaml, so CUPCAKE"
            },
            missing.join(", ")
        )));
    }
    hops
}
