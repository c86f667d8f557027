//! Which newer version an UpdateSchedule's `autoUpdate` proposes: a pure function
//! of the version catalogue, the cluster's desired version and the channel.
//!
//! - `patch`: the newest patch of the desired minor, when newer than the desired one;
//! - `minor`: the newest patch of the next minor when the catalogue has one, else
//!   the newest patch of the desired minor (a cluster on a minor with no successor
//!   yet still gets its patches).
//!
//! On `minor`, a newer patch of the desired minor is not proposed first: kubeadm
//! upgrades from any patch of a minor to any patch of the next, so `1.33.4 → 1.34.3`
//! is one upgrade where `1.33.4 → 1.33.5 → 1.34.3` would be two, and a cluster has one
//! auto-update pull request at a time — it proposes the furthest step the channel
//! allows. A minor is never skipped (`1.33 → 1.35` is not an upgrade kubeadm does):
//! when the catalogue lists 1.35 but not 1.34, `minor` stays on 1.33's patches.
//!
//! Pre-releases are never proposed, never anything older than the desired version, and
//! never a new major.

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
