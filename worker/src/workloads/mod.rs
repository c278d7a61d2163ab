//! The workloads, one module each, every one a [`crate::train::Workload`] driven by the shared
//! loop. [`run`] is the registry: one line per workload, matching the trial's typed `params`.

pub mod stability;

use orrery_core::spec::TrialConfig;
use orrery_core::workloads::Params;

use crate::train::reporter::Reporter;
use crate::train::{self, RunEnv, TrainError, TrialResult};

/// Runs the trial `cfg` describes with its workload.
pub fn run(cfg: &TrialConfig, env: &RunEnv, rep: &Reporter) -> Result<TrialResult, TrainError> {
    match &cfg.params {
        Params::Stability(p) => train::run(
            &mut stability::Stability::new(cfg, p, env.device)?,
            cfg,
            env,
            rep,
        ),
    }
}
