//! DoReMi (Xie et al., arXiv 2305.10429) as the Aioli paper runs it (HazyResearch/aioli
//! `trainer/doremi_trainer.py` and `scripts/*/doremi/`), all inside one trial:
//!
//! 1. **reference**: a model trained on the stratified mixture (`doremi.reference_steps`). Until
//!    trials can share checkpoints it is trained here; with the trial's seed it is exactly the
//!    stratified trial of that seed.
//! 2. **proxy** (`doremi.proxy_steps`): a fresh model trained on stratified batches with the loss
//!    Σᵢ wᵢ·Lᵢ, each group's mean loss on the batch weighted by w, which every step moves towards
//!    the groups the proxy is worst at compared with the reference: the excess loss
//!    max(Lᵢ − Lᵢ^ref, 0) on the same batch, log w ← log w + μ·excess, softmax, then smoothing
//!    w ← (1 − ε)·w + ε/m ([`reweight`]).
//! 3. **the trial's model**: trained statically on the proxy's weights averaged over its steps
//!    (after the prior, if any), with checkpoints and resume as any trial.
//!
//! The reference and proxy run through the shared loop with their metrics under
//! `doremi/reference/` and `doremi/proxy/`; they write no checkpoints, so a worker stopped during
//! them trains them again. Once the trial's model has a checkpoint, its mixture is in it
//! (`aioli.learned`) and a resume goes straight to it.

use tch::{nn, Device, Kind, Tensor};

use orrery_core::spec::{TrainingSpec, TrialConfig};
use orrery_core::workloads::aioli::{self as a, AioliParams, DoremiSettings, Method};

use super::{evaluate_mixing, Aioli};
use crate::data::{self, Split, TrainData, VOCAB_SIZE};
use crate::model::{Gpt, GptConfig};
use crate::precision;
use crate::train::divergence::Divergence;
use crate::train::eval::{self, Evaluation};
use crate::train::optim::AdamW;
use crate::train::reporter::Reporter;
use crate::train::{
    self, checkpoint, RunEnv, StepLoss, StepSpan, TrainError, TrialResult, Workload,
};

/// Runs a doremi trial: the reference, the proxy, then the trial's model on the proxy's average
/// weights (see the module's documentation).
pub fn run(
    cfg: &TrialConfig,
    params: &AioliParams,
    env: &RunEnv,
    rep: &Reporter,
) -> Result<TrialResult, TrainError> {
    let steps = cfg.training.steps;
    let (reference_steps, proxy_steps) = params.doremi.phase_steps(steps);
    let total = reference_steps + proxy_steps + steps;
    let env_at = |before, checkpoint_dir| RunEnv {
        device: env.device,
        checkpoint_dir,
        progress: env.progress,
        span: StepSpan {
            before,
            total: Some(total),
        },
        remote: env.remote.clone(),
        // The reference and the proxy start where the trial's model does.
        init_weights: env.init_weights.clone(),
    };
    let resumed = env
        .checkpoint_dir
        .as_deref()
        .is_some_and(|d| checkpoint::path(d).exists());
    let learned = if resumed {
        tracing::info!("doremi: the trial's model has a checkpoint, which holds its mixture; the reference and proxy are not trained again");
        None
    } else {
        let reference_cfg = with_steps(cfg, reference_steps);
        let stratified = AioliParams {
            method: Method::Stratified,
            proportions: None,
            prior_steps: 0,
            ..params.clone()
        };
        let mut reference = Aioli::new(&reference_cfg, &stratified, env.device)?;
        tracing::info!(
            steps = reference_steps,
            "doremi: training the reference model on the stratified mixture"
        );
        let scoped = rep.scoped(a::DOREMI_REFERENCE);
        if let TrialResult::Diverged(why) =
            train::run(&mut reference, &reference_cfg, &env_at(0, None), &scoped)?
        {
            return Ok(TrialResult::Diverged(format!(
                "DoReMi's reference model diverged: {why}"
            )));
        }
        let proxy_cfg = with_steps(cfg, proxy_steps);
        let mut proxy = Proxy::new(
            &proxy_cfg,
            &params.doremi,
            reference.into_model(),
            env.device,
        )?;
        tracing::info!(
            steps = proxy_steps,
            "doremi: training the proxy model against the reference"
        );
        let scoped = rep.scoped(a::DOREMI_PROXY);
        if let TrialResult::Diverged(why) = train::run(
            &mut proxy,
            &proxy_cfg,
            &env_at(reference_steps, None),
            &scoped,
        )? {
            return Ok(TrialResult::Diverged(format!(
                "DoReMi's proxy model diverged: {why}"
            )));
        }
        let w = proxy.average();
        tracing::info!(mixture = ?w, "doremi: the proxy's average weights, which the trial's model trains on");
        Some(w)
    };
    let mut model = Aioli::new(cfg, params, env.device)?;
    if let Some(w) = learned {
        model.set_learned(&w);
    }
    let env = env_at(reference_steps + proxy_steps, env.checkpoint_dir.clone());
    train::run(&mut model, cfg, &env, rep)
}

/// `cfg` with `steps` training steps (the warm-up and the rest of the schedule as given).
fn with_steps(cfg: &TrialConfig, steps: u64) -> TrialConfig {
    let mut c = cfg.clone();
    c.training.steps = steps;
    c
}

/// One DoReMi update of the weights `w` (m entries) from the excess losses (≥ 0): log w + μ·excess,
/// renormalised by a softmax, then mixed with the uniform mixture: (1 − ε)·w + ε/m.
pub fn reweight(w: &Tensor, excess: &Tensor, step_size: f64, smoothing: f64) -> Tensor {
    let m = w.numel() as f64;
    let logits = w.log() + excess * step_size;
    logits.softmax(0, Kind::Double) * (1.0 - smoothing) + smoothing / m
}

/// Each group's mean token loss in a stratified batch: row r of the batch is group `rows[r]`, and
/// `counts[g]` rows are group g's. `[m]`, f32, on the device.
fn group_losses(logits: &Tensor, targets: &Tensor, rows: &Tensor, counts: &Tensor) -> Tensor {
    let (b, t, v) = logits.size3().expect("logits are [batch, seq_len, vocab]");
    let logp = logits.view([-1, v]).log_softmax(-1, Kind::Float);
    let nll = -logp.gather(1, &targets.view([-1, 1]), false).view([b, t]);
    let per_row = nll.mean_dim(1, false, Kind::Float);
    counts.zeros_like().index_add(0, rows, &per_row) / counts
}

/// DoReMi's proxy: a fresh model trained on stratified batches with the excess-loss weighted loss.
pub struct Proxy {
    vs: nn::VarStore,
    model: Gpt,
    reference: Gpt,
    train: TrainData,
    validation: Vec<(String, Vec<data::Batch>)>,
    groups: Vec<String>,
    /// Each row's group in a stratified batch ([`data::round_robin_group`]) and each group's
    /// number of rows.
    rows: Tensor,
    counts: Tensor,
    settings: DoremiSettings,
    seed: u64,
    batch_size: usize,
    seq_len: usize,
    /// On the device, f64: the weights now, their sum over the steps so far, the last excess.
    w: Tensor,
    w_sum: Tensor,
    excess: Tensor,
}

impl Proxy {
    pub fn new(
        cfg: &TrialConfig,
        settings: &DoremiSettings,
        reference: Gpt,
        device: Device,
    ) -> Result<Self, TrainError> {
        let t = &cfg.training;
        let seq_len = cfg.model.seq_len as usize;
        let batch_size = t.batch_size as usize;
        let (_, compute) = precision::resolve(t.precision, device);
        let model = GptConfig::new(&cfg.model, VOCAB_SIZE, false).with_compute(compute);
        let super::super::FromScratch { groups, vs, model } =
            super::super::from_scratch(cfg, model, device)?;
        let m = groups.len();
        let validation = eval::batches(&groups, Split::Validation, cfg, device);
        let row_group: Vec<i64> = (0..batch_size)
            .map(|r| data::round_robin_group(r, m) as i64)
            .collect();
        let counts: Vec<f32> = (0..m)
            .map(|g| row_group.iter().filter(|&&x| x == g as i64).count() as f32)
            .collect();
        let uniform = Tensor::full([m as i64], 1.0 / m as f64, (Kind::Double, device));
        Ok(Proxy {
            train: TrainData::new(&groups, seq_len, device),
            groups: groups.iter().map(|g| g.name.clone()).collect(),
            vs,
            model,
            reference,
            validation,
            rows: Tensor::from_slice(&row_group).to_device(device),
            counts: Tensor::from_slice(&counts).to_device(device),
            settings: settings.clone(),
            seed: t.seed,
            batch_size,
            seq_len,
            w_sum: uniform.zeros_like(),
            excess: uniform.zeros_like(),
            w: uniform,
        })
    }

    /// The weights averaged over the steps taken (each step's weights sum to 1, so their sum's
    /// total is the number of steps).
    pub fn average(&self) -> Vec<f64> {
        let avg = &self.w_sum / self.w_sum.sum(Kind::Double);
        Vec::<f64>::try_from(avg.to_device(Device::Cpu)).expect("an f64 vector converts")
    }
}

impl Workload for Proxy {
    fn divergence(&self) -> Divergence {
        Divergence::BestGroupAboveInitial
    }

    fn optimizer(&self, t: &TrainingSpec) -> AdamW {
        AdamW::over(&self.vs, t)
    }

    fn step_loss(&mut self, step: u64) -> Result<StepLoss, TrainError> {
        let batch = self.train.batch(self.seed, step, self.batch_size);
        let (rows, counts) = (&self.rows, &self.counts);
        let l = group_losses(
            &self.model.forward(&batch.inputs),
            &batch.targets,
            rows,
            counts,
        );
        let s = &self.settings;
        tch::no_grad(|| {
            let l_ref = group_losses(
                &self.reference.forward(&batch.inputs),
                &batch.targets,
                rows,
                counts,
            );
            // Every group has rows in a stratified batch (the validator asks batch_size ≥ groups),
            // so the reference trainer's fallback for a group missing from the batch never applies.
            let excess = (l.detach() - l_ref).to_kind(Kind::Double).clamp_min(0.0);
            let w = reweight(&self.w, &excess, s.step_size, s.smoothing);
            self.w.copy_(&w);
            self.excess.copy_(&excess);
            let _ = self.w_sum.g_add_(&w);
        });
        let total = (&l * self.w.to_kind(Kind::Float)).sum(Kind::Float);
        Ok(StepLoss {
            total,
            parts: Vec::new(),
            tokens: (self.batch_size * self.seq_len) as u64,
        })
    }

    fn evaluate(&mut self) -> Evaluation {
        evaluate_mixing(&self.model, &self.validation)
    }

    fn log_state(&mut self, step: i64, rep: &Reporter) {
        let read = train::read_back(&[&self.w, &self.excess]);
        for (i, g) in self.groups.iter().enumerate() {
            rep.log(&a::mix_p(g), step, read[0][i]);
            if step > 0 {
                rep.log(&a::mix_excess(g), step, read[1][i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_update_against_a_hand_computed_example() {
        // w = (1/2, 1/4, 1/4), excess = (0, ln 2, 0), μ = 1: log w + μ·excess = ln(1/2, 1/2, 1/4),
        // softmax → (0.4, 0.4, 0.2); ε = 0.1: 0.9·(0.4, 0.4, 0.2) + 0.1/3.
        let w = Tensor::from_slice(&[0.5, 0.25, 0.25]);
        let excess = Tensor::from_slice(&[0.0, 2f64.ln(), 0.0]);
        let got = Vec::<f64>::try_from(reweight(&w, &excess, 1.0, 0.1)).unwrap();
        let want = [0.36 + 0.1 / 3.0, 0.36 + 0.1 / 3.0, 0.18 + 0.1 / 3.0];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
        // No excess anywhere: the weights only drift towards uniform by the smoothing.
        let still = Vec::<f64>::try_from(reweight(&w, &excess.zeros_like(), 1.0, 0.0)).unwrap();
        assert!((still[0] - 0.5).abs() < 1e-12 && (still[1] - 0.25).abs() < 1e-12);
    }

    #[test]
    fn group_losses_average_each_groups_rows() {
        // Batch of 3 rows (groups 0, 1, 0), 2 tokens, vocab 2, logits 0 except where noted: a row
        // of uniform logits costs ln 2 per token; logits (+10, −10) on the target cost ~0.
        let mut logits = vec![0f32; 3 * 2 * 2];
        logits[0] = 10.0; // row 0, token 0 predicts class 0 (its target) with certainty
        logits[1] = -10.0;
        let logits = Tensor::from_slice(&logits).view([3, 2, 2]);
        let targets = Tensor::from_slice(&[0i64, 1, 0, 1, 1, 0]).view([3, 2]);
        let rows = Tensor::from_slice(&[0i64, 1, 0]);
        let counts = Tensor::from_slice(&[2f32, 1.0]);
        let got = Vec::<f32>::try_from(group_losses(&logits, &targets, &rows, &counts)).unwrap();
        let ln2 = 2f32.ln();
        // group 0: rows 0 (tokens ~0 and ln 2 → ln2/2) and 2 (ln 2): mean 3·ln2/4; group 1: ln 2.
        assert!((got[0] - 0.75 * ln2).abs() < 1e-4, "{got:?}");
        assert!((got[1] - ln2).abs() < 1e-6, "{got:?}");
    }
}
