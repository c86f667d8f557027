//! # cupcake-core
//!
//! CUPCAKE's decisions, and nothing else: values in, values out, `now` passed in.
//!
//! ```text
//! fleet tree + snapshot ─► plan ─► schedule::evaluate(now) ─► gate (Rego + CEL) ─► render
//!                          └────────────────────── pass ───────────────────────────┘
//! DirectUpdate status + observed nodes + now ─► rollout::next ─► the controller's next action
//! ```
//!
//! - [`pass`]: plan → schedule → gate → render in one call; `cupcake plan`, the
//!   GitOps loop, the tests and the benchmarks all call it;
//! - [`plan`]: hops, node order, batches, estimate (the planner);
//! - [`schedule`]: maintenance windows and exclusions at an instant;
//! - [`gate`]: the policy environment (Rego on regorus, CEL) and the verdict;
//! - [`render`]: the DirectUpdate for an approved plan, with a deterministic name;
//! - [`rollout`]: the next action of a running DirectUpdate.
//!
//! The crate depends on no kube client, async runtime, git or HTTP crate, and
//! reads no file, clock, environment or process: `clippy.toml` forbids it and
//! `tests/purity.rs` checks the dependency tree. The IO edges live in
//! `cupcake-reconciler` and `cupcake-agent`.
#![forbid(unsafe_code)]

pub mod autoupdate;
pub mod bundle;
pub mod gate;
pub mod pass;
pub mod plan;
pub mod render;
pub mod rollout;
pub mod schedule;
pub mod synth;
pub mod yamlpos;

pub use pass::{PassInput, PassOutcome, pass};
