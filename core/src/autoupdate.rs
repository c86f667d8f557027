//! Which newer version an UpdateSchedule's `autoUpdate` proposes: a pure function
//! of the version catalogue, the cluster's desired version and the channel.
//!
//! - `patch`: the newest patch of the desired minor, when newer than the desired one;
//! - `minor`: the newest patch of the next minor when the catalogue has one, else
//!   the newest patch of the desired minor (a cluster on a minor with no successor
//!   yet still gets its patches).
//!
//! Pre-releases are never proposed, and never anything older than the desired version.

use cupcake_api::KubeVersion;
use cupcake_api::fleet::VersionCatalogSpec;
use cupcake_api::schedule::Channel;

/// The version to propose, or `None` when the desired version is the newest allowed.
pub fn proposal(
    catalog: &VersionCatalogSpec,
    desired: &KubeVersion,
    channel: Channel,
) -> Option<KubeVersion> {
    let newest_of = |minor: u64| {
        catalog
            .versions
            .iter()
            .filter(|v| v.pre.is_none() && v.major == desired.major && v.minor == minor)
            .max()
            .cloned()
    };
    let same_minor = newest_of(desired.minor).filter(|v| v > desired);
    match channel {
        Channel::Patch => same_minor,
        Channel::Minor => newest_of(desired.minor + 1).or(same_minor),
    }
}
