//! The committed CRDs and JSON Schemas are exactly what the api types generate.

#[test]
fn generated_files_are_fresh() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let stale = xtask::stale(&root).expect("generating artefacts");
    assert!(
        stale.is_empty(),
        "stale generated files (run `cargo xtask gen`): {stale:?}"
    );
}

/// `cargo xtask gen` writes the chart's CRDs too, and the chart holds no CRD
/// it does not generate (a leftover file would still be installed by Helm).
#[test]
fn the_chart_crds_are_generated_and_nothing_else() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let generated: Vec<String> = xtask::artefacts()
        .expect("generating artefacts")
        .into_iter()
        .filter(|a| a.path.starts_with("charts/cupcake/crds"))
        .map(|a| a.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(generated.len(), 3, "{generated:?}");
    for dir in xtask::CRD_DIRS {
        let mut present: Vec<String> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        present.sort();
        let mut want = generated.clone();
        want.sort();
        assert_eq!(present, want, "{dir}/ must hold exactly the generated CRDs");
    }
}
