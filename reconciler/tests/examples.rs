//! The example CRs in examples/ stay valid for the CRD types (the apiserver
//! check against the generated CRDs is in the end-to-end tests).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;

use cupcake_api::crd::{DirectUpdate, ScheduledUpdate, UpdateSchedule};

fn read(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(name),
    )
    .unwrap()
}

#[test]
fn example_crs_parse_as_their_types() {
    for f in [
        "directupdate-basic.yaml",
        "directupdate-canary.yaml",
        "directupdate-multistep.yaml",
    ] {
        let du: DirectUpdate =
            yaml_serde::from_str(&read(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(du.spec.target_version.to_string(), "1.34.2", "{f}");
    }
    let su: ScheduledUpdate = yaml_serde::from_str(&read("scheduledupdate-basic.yaml")).unwrap();
    assert_eq!(su.spec.update.concurrency, 1);
    let us: UpdateSchedule = yaml_serde::from_str(&read("updateschedule-monthly.yaml")).unwrap();
    assert_eq!(us.spec.inner.schedule.as_deref(), Some("0 3 1 * *"));
    cupcake_reconciler::schedule::validate(&us.spec.inner).unwrap();
}
