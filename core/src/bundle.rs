//! The air-gapped package bundle (`airGapped.bundleConfigMap`, data key `bundle.yaml`,
//! `kind: PackageBundle`; contract in docs/host-steps.md "Air-gapped bundle").
//!
//! There is one parser, [`cupcake_api::bundle`], shared by the controller (the
//! `airgap-bundle` preflight check) and the agent (the kubeadm executor's package
//! source): use `PackageBundle::from_yaml`, `package_version` and `missing` from here
//! rather than writing a second one.

pub use cupcake_api::bundle::*;
