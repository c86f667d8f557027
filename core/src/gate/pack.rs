//! The default policy pack (`policies/` of this repository), compiled into the
//! binary. A test checks that this list and the directory agree.

use super::PolicySource;

/// `(path, text)` of every file of the default pack, tests and fixtures included.
pub const FILES: &[(&str, &str)] = &[
    (
        "policies/cupcake.rego",
        include_str!("../../../policies/cupcake.rego"),
    ),
    (
        "policies/skew.rego",
        include_str!("../../../policies/skew.rego"),
    ),
    (
        "policies/schedule.rego",
        include_str!("../../../policies/schedule.rego"),
    ),
    (
        "policies/pdb.rego",
        include_str!("../../../policies/pdb.rego"),
    ),
    (
        "policies/controlplane.rego",
        include_str!("../../../policies/controlplane.rego"),
    ),
    (
        "policies/readiness.rego",
        include_str!("../../../policies/readiness.rego"),
    ),
    (
        "policies/plan.cel.yaml",
        include_str!("../../../policies/plan.cel.yaml"),
    ),
    (
        "policies/fixtures_test.rego",
        include_str!("../../../policies/fixtures_test.rego"),
    ),
    (
        "policies/skew_test.rego",
        include_str!("../../../policies/skew_test.rego"),
    ),
    (
        "policies/schedule_test.rego",
        include_str!("../../../policies/schedule_test.rego"),
    ),
    (
        "policies/pdb_test.rego",
        include_str!("../../../policies/pdb_test.rego"),
    ),
    (
        "policies/controlplane_test.rego",
        include_str!("../../../policies/controlplane_test.rego"),
    ),
    (
        "policies/readiness_test.rego",
        include_str!("../../../policies/readiness_test.rego"),
    ),
    (
        "policies/plan.cel.test.yaml",
        include_str!("../../../policies/plan.cel.test.yaml"),
    ),
];

/// Every file of the default pack.
pub fn sources() -> Vec<PolicySource> {
    FILES
        .iter()
        .map(|(p, t)| PolicySource {
            path: (*p).to_string(),
            text: (*t).to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods)] // the test compares the compiled-in list with the repository
    fn list_matches_the_policies_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("policies/")
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(|n| format!("policies/{n}")))
            .filter(|p| super::super::SourceKind::of(p).is_some())
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = FILES.iter().map(|(p, _)| (*p).to_string()).collect();
        listed.sort();
        assert_eq!(listed, on_disk, "add new policy files to gate::pack::FILES");
    }
}
