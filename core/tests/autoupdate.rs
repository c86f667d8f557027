//! The auto-update proposal, table-driven.
use cupcake_api::fleet::VersionCatalogSpec;
use cupcake_api::schedule::Channel;
use cupcake_core::autoupdate::proposal;

#[test]
fn proposals_follow_the_channel() {
    let catalog = VersionCatalogSpec {
        versions: [
            "1.33.4",
            "1.33.5",
            "1.34.0",
            "1.34.2",
            "1.34.3",
            "1.35.0-rc.1",
            "1.36.0",
        ]
        .iter()
        .map(|v| v.parse().expect("version"))
        .collect(),
    };
    for (desired, channel, want) in [
        ("1.33.4", Channel::Patch, Some("1.33.5")),
        ("1.33.5", Channel::Patch, None),
        ("1.33.4", Channel::Minor, Some("1.34.3")),
        ("1.34.2", Channel::Patch, Some("1.34.3")),
        // No 1.35 release (only an rc): minor falls back to the newest patch.
        ("1.34.2", Channel::Minor, Some("1.34.3")),
        ("1.34.3", Channel::Minor, None),
        // Never backwards, never a pre-release.
        ("1.34.9", Channel::Patch, None),
        ("1.35.0-rc.1", Channel::Patch, None),
        // A minor the catalogue does not list at all.
        ("1.32.0", Channel::Patch, None),
        ("1.32.0", Channel::Minor, Some("1.33.5")),
        // Newest minor of the catalogue: minor gets its patches, then nothing.
        ("1.36.0", Channel::Minor, None),
        ("1.35.1", Channel::Minor, Some("1.36.0")),
    ] {
        let got = proposal(&catalog, &desired.parse().expect("desired"), channel);
        assert_eq!(
            got.map(|v| v.to_string()),
            want.map(str::to_string),
            "{desired} {channel:?}"
        );
    }
}

/// A minor is never skipped, a pre-release of the next minor is not a release, and a
/// new major is not a minor step.
#[test]
fn minor_never_skips_a_minor() {
    let catalog = VersionCatalogSpec {
        versions: ["1.33.4", "1.33.6", "1.35.2", "1.36.0-alpha.1", "2.0.0"]
            .iter()
            .map(|v| v.parse().expect("version"))
            .collect(),
    };
    for (desired, channel, want) in [
        // No 1.34 in the catalogue: 1.35 is two minors away.
        ("1.33.4", Channel::Minor, Some("1.33.6")),
        ("1.33.6", Channel::Minor, None),
        ("1.35.2", Channel::Minor, None),
        ("1.35.2", Channel::Patch, None),
        ("1.35.0", Channel::Patch, Some("1.35.2")),
    ] {
        let got = proposal(&catalog, &desired.parse().expect("desired"), channel);
        assert_eq!(
            got.map(|v| v.to_string()),
            want.map(str::to_string),
            "{desired} {channel:?}"
        );
    }
    let empty = VersionCatalogSpec { versions: vec![] };
    assert_eq!(
        proposal(&empty, &"1.33.4".parse().expect("v"), Channel::Minor),
        None
    );
}
