//! Orrery's pure core. Everything that decides lives here, free of side effects, so the local
//! executor and the Kubernetes operator apply one set of rules:
//!
//! - [`spec`]: the experiment spec types; [`fields`]: the declarations of its trial-level fields;
//!   [`validate`]: reading a spec with precise errors; [`search`]: expanding it into trials;
//!   [`yaml`]: YAML with positions.
//! - [`workloads`]: each workload's typed params, metric names and analysis, and their registry.
//! - [`schedule`]: the trial/experiment state machine.
//! - [`metrics`]: the shared metric names; [`downsample`]: long series cut down for display,
//!   extremes kept.
//! - [`leaderboard`]: filtered, sorted, paginated views of a leaderboard.
//! - [`dto`]: the API's bodies; [`client`]: a small blocking HTTP client for workers.

pub mod client;
pub mod downsample;
pub mod dto;
pub mod fields;
pub mod leaderboard;
pub mod metrics;
pub mod mixture_space;
pub mod schedule;
pub mod schema;
pub mod search;
pub mod spec;
pub mod spill;
pub mod validate;
pub mod workloads;
pub mod yaml;

pub use validate::{load_spec, LoadedSpec, SpecError, SpecErrors};
