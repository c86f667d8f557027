//! # cupcake-reconciler
//!
//! The reconciler and the `cupcake` CLI. One pass per cluster:
//!
//! ```text
//! fleet repo ─► load ─► observe (snapshot) ─► plan ─► gate ─► render ─► apply ─► rollout ─► report
//! ```
//!
//! [`plan`], [`render`] and [`schedule`] are pure functions of their inputs
//! (including `now`); IO stays at the edges ([`load`], [`snapshot`], [`cli`]).
#![forbid(unsafe_code)]

pub mod artefacts;
pub mod cli;
pub mod gate;
pub mod load;
pub mod observe;
pub mod plan;
pub mod present;
pub mod render;
pub mod schedule;
pub mod snapshot;
pub mod synth;
pub mod yamlpos;
