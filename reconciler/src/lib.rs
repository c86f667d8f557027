//! # cupcake-reconciler
//!
//! The reconciler and the `cupcake` CLI: CUPCAKE's IO edges, in flow order.
//!
//! ```text
//! source ─► load ─► observe ─► cupcake_core::pass (plan → schedule → gate → render) ─► apply ─► rollout ─► report
//! ```
//!
//! The decisions are pure and live in [`cupcake_core`] (re-exported here as
//! [`plan`], [`schedule`], [`gate`], [`render`]); this crate reads fleets
//! ([`source`], [`load`]), clusters ([`observe`], [`snapshot`]) and presents
//! results ([`present`], [`cli`]).
#![deny(unsafe_code)]

pub mod cli;
pub mod gitops;
pub mod load;
pub mod observe;
pub mod pipeline;
pub mod present;
pub mod report;
pub mod rollout;
pub mod schedules;
pub mod server;
pub mod snapshot;
pub mod source;
pub mod telemetry;

pub use cupcake_core::{gate, plan, render, schedule, synth, yamlpos};
