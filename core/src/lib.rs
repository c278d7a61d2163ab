//! Orrery's pure core. Everything that decides lives here, free of side effects, so the local
//! executor and the Kubernetes operator apply one set of rules:
//!
//! - [`spec`]: the experiment spec types; [`validate`]: reading a spec with precise errors;
//!   [`search`]: expanding it into trials; [`yaml`]: YAML with positions.
//! - [`schedule`]: the trial/experiment state machine.
//! - [`metrics`]: metric names; [`analysis`]: LR sensitivity and friends; [`downsample`]: long
//!   series cut down for display, extremes kept.
//! - [`leaderboard`]: filtered, sorted, paginated views of a leaderboard.
//! - [`dto`]: the API's bodies; [`client`]: a small blocking HTTP client for workers.

pub mod analysis;
pub mod client;
pub mod downsample;
pub mod dto;
pub mod leaderboard;
pub mod metrics;
pub mod schedule;
pub mod schema;
pub mod search;
pub mod spec;
pub mod spill;
pub mod validate;
pub mod yaml;

pub use validate::{load_spec, LoadedSpec, SpecError, SpecErrors};
