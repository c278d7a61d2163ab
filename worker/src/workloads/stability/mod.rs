//! The `stability` workload (Wortsman et al., arXiv 2309.14322; `docs/workloads/stability.md`):
//! the decoder trained from scratch at one learning rate with the spec's interventions, measured by
//! the [`probes`] (attention logits, log Z) and the per-group [`rms`] at every log step.

pub mod probes;
pub mod rms;

use tch::{nn, Device, Tensor};

use orrery_core::spec::TrialConfig;
use orrery_core::workloads::stability::{self as s, StabilityParams, MUP_BASE_WIDTH};

use crate::data::{self, Batch, Split, TrainData, VOCAB_SIZE};
use crate::model::{loss, Gpt, GptConfig};
use crate::precision;
use crate::train::divergence::Divergence;
use crate::train::eval::{self, Evaluation};
use crate::train::optim::AdamW;
use crate::train::reporter::Reporter;
use crate::train::{StepLoss, TrainError, Update, Workload};

/// Rows per probe batch: small, so measuring attention statistics stays cheap.
const PROBE_ROWS: usize = 8;

pub struct Stability {
    params: StabilityParams,
    /// Kept for the optimizer, which takes every variable.
    vs: nn::VarStore,
    model: Gpt,
    train: TrainData,
    eval: Vec<(String, Vec<Batch>)>,
    probe: Tensor,
    seed: u64,
    batch_size: usize,
    seq_len: usize,
}

fn model_config(cfg: &TrialConfig, params: &StabilityParams, device: Device) -> GptConfig {
    let (_, compute) = precision::resolve(cfg.training.precision, device);
    let c = GptConfig::new(&cfg.model, VOCAB_SIZE, params.qk_layernorm).with_compute(compute);
    if params.mup_simple {
        c.with_mup(MUP_BASE_WIDTH)
    } else {
        c
    }
}

impl Stability {
    pub fn new(
        cfg: &TrialConfig,
        params: &StabilityParams,
        device: Device,
    ) -> Result<Self, TrainError> {
        let t = &cfg.training;
        let seq_len = cfg.model.seq_len as usize;
        let batch_size = t.batch_size as usize;
        let super::FromScratch { groups, vs, model } =
            super::from_scratch(cfg, model_config(cfg, params, device), device)?;
        let eval = eval::batches(&groups, Split::Validation, cfg, device);
        let probe_seed = cfg.data.seed ^ 0x70726f6265;
        let probe = data::train_batch(&groups, probe_seed, u64::MAX, PROBE_ROWS, seq_len, device);
        let train = TrainData::new(&groups, seq_len, device);
        Ok(Stability {
            train,
            params: params.clone(),
            vs,
            model,
            eval,
            probe: probe.inputs,
            seed: t.seed,
            batch_size,
            seq_len,
        })
    }
}

impl Workload for Stability {
    fn divergence(&self) -> Divergence {
        // Trained from scratch: a loss back above the random model's means it went backwards.
        Divergence::AboveInitial
    }

    fn optimizer(&self, t: &orrery_core::spec::TrainingSpec) -> AdamW {
        let mut opt = AdamW::over(&self.vs, t);
        if let Some(mult) = self.model.cfg.mup_width_mult {
            // μParam (simple): the hidden matrices learn at base_width/width of the schedule's rate.
            for p in &mut opt.params {
                if p.name.starts_with("blocks.") && p.tensor.dim() >= 2 {
                    p.lr_scale = mult;
                }
            }
        }
        opt
    }

    fn step_loss(&mut self, step: u64) -> Result<StepLoss, TrainError> {
        let (bs, t) = (self.batch_size, self.seq_len);
        let batch = self.train.batch(self.seed, step, bs);
        let l = loss(
            &self.model.forward(&batch.inputs),
            &batch.targets,
            self.params.z_loss,
        );
        Ok(StepLoss {
            total: l.total,
            parts: vec![(s::TRAIN_CE, l.ce), (s::TRAIN_Z_LOSS, l.z)],
            tokens: (bs * t) as u64,
        })
    }

    fn evaluate(&mut self) -> Evaluation {
        eval::evaluate(&self.model, &self.eval)
    }

    fn log_state(&mut self, step: i64, rep: &Reporter) {
        probes::log(rep, &probes::probe(&self.model, &self.probe), step);
    }

    fn log_update(&mut self, update: &Update<'_>, rep: &Reporter) {
        rms::log(rep, update);
    }
}
