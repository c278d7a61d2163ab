//! Orrery's Kubernetes side: the `Experiment` and `Trial` custom resources, and the operator that
//! runs experiments as Pods through the same scheduling core as `orrery run`.

pub mod context;
pub mod crd;
pub mod experiment_controller;
pub mod leader;
pub mod pods;
pub mod telemetry;
pub mod trial_controller;
