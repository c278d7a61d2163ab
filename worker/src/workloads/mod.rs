//! The workloads, one module each, every one a [`crate::train::Workload`] driven by the shared
//! loop. [`run`] is the registry: one line per workload, matching the trial's typed `params`.

pub mod aioli;
pub mod stability;

use tch::{nn, Device};

use orrery_core::spec::TrialConfig;
use orrery_core::workloads::aioli::Method;
use orrery_core::workloads::Params;

use crate::data::{self, Group};
use crate::model::{Gpt, GptConfig};
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
        Params::Aioli(p) if p.method == Method::Doremi => aioli::doremi::run(cfg, p, env, rep),
        Params::Aioli(p) => train::run(&mut aioli::Aioli::new(cfg, p, env.device)?, cfg, env, rep),
    }
}

/// What a workload that trains the decoder from scratch starts from.
pub struct FromScratch {
    /// The trial's data groups, each checked to be long enough for `seq_len`.
    pub groups: Vec<Group>,
    /// Holds the model's parameters (the optimizer takes every variable).
    pub vs: nn::VarStore,
    /// Initialised from `training.seed`.
    pub model: Gpt,
}

/// Loads the trial's data and builds the decoder `model` on `device`, seeded by `training.seed`.
pub fn from_scratch(
    cfg: &TrialConfig,
    model: GptConfig,
    device: Device,
) -> Result<FromScratch, TrainError> {
    let groups = data::load_groups(&cfg.data, cfg.model.seq_len as usize)?;
    tch::manual_seed(cfg.training.seed as i64);
    let vs = nn::VarStore::new(device);
    let model = Gpt::new(&vs.root(), model);
    Ok(FromScratch { groups, vs, model })
}
