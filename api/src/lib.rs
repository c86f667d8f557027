//! # cupcake-api
//!
//! The types every part of CUPCAKE shares, and nothing else: no IO.
//!
//! - [`bundle`]: the air-gapped package bundle (`bundle.yaml` in a ConfigMap);
//! - [`crd`]: the custom resources DirectUpdate, ScheduledUpdate and UpdateSchedule;
//! - [`fleet`]: fleet-repo manifests (`ClusterVersion`, `UpdateSchedule`, `VersionCatalog`);
//! - [`schedule`]: the maintenance-schedule model;
//! - [`snapshot`]: the observed cluster the planner reads;
//! - [`plan`]: the plan, findings and decision the planner and the policy gate produce;
//! - [`labels`]: label and annotation keys on nodes and CRs;
//! - [`protocol`]: the reconciler ↔ agent protocol (node phases, agent states, upgrade modes);
//! - published contracts: [`report`] (`cupcake plan -o json`), [`policy`] (the policy
//!   input), [`schedule::ScheduleEval`] (the schedule evaluation), [`status_file`].
//!
//! ```
//! use cupcake_api::KubeVersion;
//! let v: KubeVersion = "v1.34.2".parse().unwrap();
//! assert_eq!(v.to_string(), "1.34.2");
//! ```
#![forbid(unsafe_code)]

pub mod bundle;
pub mod common;
pub mod crd;
pub mod fleet;
pub mod labels;
pub mod plan;
pub mod policy;
pub mod protocol;
pub mod report;
pub mod schedule;
pub mod snapshot;
pub mod status_file;
pub mod version;

pub use version::{KubeVersion, VersionError};

/// API group of every CUPCAKE resource.
pub const GROUP: &str = "cupcake.ricardomolendijk.com";
