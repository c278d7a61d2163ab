//! The training machinery every workload shares: the LR [`schedule`], the [`optim`]izer, the
//! [`eval`]uation of a language model, [`checkpoint`]s and resume, the [`divergence`] rules, the
//! metric [`reporter`], and the loop itself ([`run`]), which drives any [`Workload`].
//!
//! A workload supplies what differs — how a step's gradients are made, how it evaluates, what it
//! measures and which divergence rule applies — and the loop does the rest the same way for all:
//! step counting, the LR of each step, gradient clipping, the optimizer step, `log_every` and
//! `eval_every`, progress lines, checkpoints every `checkpoint_every` steps and resume from them.

pub mod checkpoint;
pub mod divergence;
pub mod eval;
pub mod optim;
pub mod reporter;
pub mod schedule;

use std::io::Write;
use std::path::PathBuf;

use tch::{Device, Tensor};

use orrery_core::metrics as m;
use orrery_core::spec::{TrainingSpec, TrialConfig};

use checkpoint::Progress;
use divergence::Divergence;
use eval::Evaluation;
use optim::AdamW;
use reporter::Reporter;

#[derive(Debug, Clone, PartialEq)]
pub enum TrialResult {
    Succeeded,
    /// The workload's divergence rule fired (or a loss or gradient norm became non-finite).
    Diverged(String),
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The trial's data cannot be had: a bad configuration, not retried.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

/// Where and how a trial runs.
pub struct RunEnv {
    pub device: Device,
    pub checkpoint_dir: Option<PathBuf>,
    /// Print one JSON progress line per logged step on stdout (read by the local executor).
    pub progress: bool,
}

/// The loss of one training step, with the parts of it to log beside `train/loss`.
pub struct StepLoss {
    /// What was minimised.
    pub total: Tensor,
    /// `(metric name, value)` pairs logged at log steps, e.g. `train/ce`.
    pub parts: Vec<(&'static str, Tensor)>,
    /// Tokens the step trained on (`tokens_seen` adds them up).
    pub tokens: u64,
}

/// What a workload's [`Workload::log_update`] sees at a log step.
pub struct Update<'a> {
    /// The step just taken (1-based).
    pub step: i64,
    pub opt: &'a AdamW,
    /// Σg² of each parameter's gradient before clipping, in `opt.params` order.
    pub grad_sumsq: &'a [f64],
    /// Σ(Δθ)² of each parameter's change in this step, in `opt.params` order.
    pub update_sumsq: &'a [f64],
}

/// One workload's part of training. [`run`] calls it; everything else is shared.
pub trait Workload {
    /// How this workload recognises a diverged run.
    fn divergence(&self) -> Divergence;

    /// The optimizer over its trainable parameters; checkpoints save and restore exactly these.
    fn optimizer(&self, t: &TrainingSpec) -> AdamW;

    /// Computes step `step`'s (0-based) loss and leaves its gradients in the parameters (the loop
    /// has zeroed them; it clips them and steps the optimizer afterwards).
    fn step_gradients(&mut self, step: u64) -> Result<StepLoss, TrainError>;

    /// Evaluates the model as it is now.
    fn evaluate(&mut self) -> Evaluation;

    /// Metrics of the model's state, at step 0 of a fresh run and at every log step.
    fn log_state(&mut self, _step: i64, _rep: &Reporter) {}

    /// Metrics of the step's update (gradients and changes), at every log step.
    fn log_update(&mut self, _update: &Update<'_>, _rep: &Reporter) {}

    /// Tensors beyond the optimizer's that a checkpoint must keep (e.g. mixture weights), by name;
    /// a resume copies the saved values back into these same tensors.
    fn state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
}

fn progress_line(step: u64, steps: u64, loss: f64) {
    let line = serde_json::json!({"event": "progress", "step": step, "steps": steps, "loss": loss.is_finite().then_some(loss)});
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Trains `w` for `cfg.training.steps` steps (from its checkpoint, if `env` has one), reporting
/// every metric through `rep`.
pub fn run(
    w: &mut impl Workload,
    cfg: &TrialConfig,
    env: &RunEnv,
    rep: &Reporter,
) -> Result<TrialResult, TrainError> {
    let t = &cfg.training;
    let mut opt = w.optimizer(t);
    let resumed = match &env.checkpoint_dir {
        Some(dir) => checkpoint::load(dir, &mut opt, &w.state())?,
        None => None,
    };
    let mut progress = match resumed {
        Some(p) => {
            tracing::info!(step = p.step, "resumed from checkpoint");
            p
        }
        None => {
            let e0 = w.evaluate();
            eval::log(rep, 0, &e0);
            w.log_state(0, rep);
            Progress {
                step: 0,
                tokens_seen: 0,
                initial_eval_loss: e0.mean,
            }
        }
    };
    rep.log(m::RESUMED_FROM, progress.step as i64, progress.step as f64);
    let eval_every = t.effective_eval_every();
    let divergence = w.divergence();

    while progress.step < t.steps {
        let lr = schedule::lr_at(t, progress.step);
        opt.zero_grad();
        let l = w.step_gradients(progress.step)?;
        let log_now = (progress.step + 1) % t.log_every == 0 || progress.step + 1 == t.steps;
        let grad_sumsq = opt.grad_sumsq();
        let grad_norm = opt.clip_grad_norm(&grad_sumsq, t.grad_clip);
        let total = l.total.double_value(&[]);
        progress.step += 1;
        progress.tokens_seen += l.tokens;
        let done = progress.step as i64;
        if let Some(why) = divergence::non_finite_step(total, grad_norm, progress.step) {
            rep.log(m::TRAIN_LOSS, done, total);
            rep.log(m::GRAD_NORM, done, grad_norm);
            return Ok(TrialResult::Diverged(why));
        }
        let update_sumsq = opt.step(lr, log_now);

        let last = progress.step == t.steps;
        if log_now {
            rep.log(m::TRAIN_LOSS, done, total);
            for (name, part) in &l.parts {
                rep.log(name, done, part.double_value(&[]));
            }
            rep.log(m::LR, done, lr);
            rep.log(m::GRAD_NORM, done, grad_norm);
            rep.log(m::TOKENS_SEEN, done, progress.tokens_seen as f64);
            w.log_state(done, rep);
            let update = Update {
                step: done,
                opt: &opt,
                grad_sumsq: &grad_sumsq,
                update_sumsq: &update_sumsq,
            };
            w.log_update(&update, rep);
            if env.progress {
                progress_line(progress.step, t.steps, total);
            }
        }
        if progress.step % eval_every == 0 || last {
            let e = w.evaluate();
            eval::log(rep, done, &e);
            let initial = progress.initial_eval_loss;
            if let Some(why) = divergence.check(e.mean, initial, progress.step, t.warmup_steps) {
                return Ok(TrialResult::Diverged(why));
            }
        }
        if let Some(dir) = &env.checkpoint_dir {
            if t.checkpoint_every > 0 && progress.step % t.checkpoint_every == 0 && !last {
                rep.barrier();
                checkpoint::save(dir, &opt, progress, &w.state())?;
            }
        }
    }
    Ok(TrialResult::Succeeded)
}
