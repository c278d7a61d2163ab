//! The training machinery every workload shares: the LR [`schedule`], the [`optim`]izer, the
//! [`eval`]uation of a language model, [`checkpoint`]s and resume (uploaded to and fetched from the
//! API: [`remote`]), the [`divergence`] rules, the metric [`reporter`], and the loop itself
//! ([`run`]), which drives any [`Workload`].
//!
//! A workload supplies what differs — how a step's gradients are made, how it evaluates, what it
//! measures and which divergence rule applies — and the loop does the rest the same way for all:
//! step counting, the LR of each step, gradient clipping, the optimizer step, `log_every` and
//! `eval_every`, progress lines, checkpoints every `checkpoint_every` steps and resume from them.
//!
//! The hot loop never waits for the device: the loss, the gradient norm (clipping uses it on the
//! device) and the non-finite check stay there, and are read back in one transfer at log steps;
//! evaluations and checkpoints read the non-finite flag when they run.

pub mod checkpoint;
pub mod divergence;
pub mod eval;
pub mod init_from;
pub mod optim;
pub mod remote;
pub mod reporter;
pub mod schedule;

use std::io::Write;
use std::path::PathBuf;

use tch::{Device, Tensor};

use orrery_core::metrics as m;
use orrery_core::spec::{TrainingSpec, TrialConfig};

use checkpoint::Progress;
use divergence::{Divergence, NonFinite};
use eval::Evaluation;
use optim::{AdamW, GradNorms};
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
    /// The `model.init_from` weights do not fit the model: a bad configuration, not retried.
    #[error("model.init_from: {0}")]
    Init(String),
}

/// Where and how a trial runs.
pub struct RunEnv {
    pub device: Device,
    pub checkpoint_dir: Option<PathBuf>,
    /// Print one JSON progress line per logged step on stdout (read by the local executor).
    pub progress: bool,
    /// Where this run's steps fall among the trial's, for the progress lines.
    pub span: StepSpan,
    /// The API's artifact store, when the worker has an API: each checkpoint is uploaded there
    /// and the final weights too. Only for a run with a `checkpoint_dir` (the trial's own model,
    /// not DoReMi's reference or proxy).
    pub remote: Option<std::sync::Arc<remote::Remote>>,
    /// The weights a fresh run starts from (`model.init_from`: another trial's final model,
    /// downloaded); a run resumed from its checkpoint ignores them.
    pub init_weights: Option<PathBuf>,
}

/// A trial that trains several models one after the other (DoReMi: a reference, a proxy, then
/// its own) reports one count over all of them: this run's step `s` is the trial's step
/// `before + s` of `total`. The default is a trial of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepSpan {
    pub before: u64,
    /// All the trial's steps; `None`: this run's.
    pub total: Option<u64>,
}

/// The loss of one training step, with the parts of it to log beside `train/loss`. All stay on
/// the device; the loop reads them at log steps only.
pub struct StepLoss {
    /// What was minimised.
    pub total: Tensor,
    /// `(metric name, value)` pairs logged at log steps, e.g. `train/ce`.
    pub parts: Vec<(&'static str, Tensor)>,
    /// Tokens the step trained on (`tokens_seen` adds them up).
    pub tokens: u64,
}

/// What a workload's [`Workload::log_update`] sees at a log step (read back in one transfer).
pub struct Update<'a> {
    /// The step just taken (1-based).
    pub step: i64,
    pub opt: &'a AdamW,
    /// Σg² of each parameter's gradient before clipping, in `opt.params` order.
    pub grad_sumsq: &'a [f64],
    /// Σ(Δθ)² of each parameter's change in this step, in `opt.params` order.
    pub update_sumsq: &'a [f64],
    /// Σθ² of each parameter after the step, in `opt.params` order.
    pub param_sumsq: &'a [f64],
}

/// One workload's part of training. [`run`] calls it; everything else is shared.
pub trait Workload {
    /// How this workload recognises a diverged run.
    fn divergence(&self) -> Divergence;

    /// The optimizer over its trainable parameters; checkpoints save and restore exactly these.
    fn optimizer(&self, t: &TrainingSpec) -> AdamW;

    /// Step `step`'s (0-based) loss, with its autograd graph.
    fn step_loss(&mut self, step: u64) -> Result<StepLoss, TrainError>;

    /// Step `step`'s loss and its gradients with respect to `params` (in that order; undefined
    /// for a parameter the loss does not use). By default autograd of [`Workload::step_loss`],
    /// returned rather than accumulated into `.grad`, so no step zeroes or adds gradient buffers;
    /// a workload that makes its gradients another way (per-sample clipping) overrides this. The
    /// loop clips them and steps the optimizer afterwards.
    fn gradients(
        &mut self,
        step: u64,
        params: &[&Tensor],
    ) -> Result<(StepLoss, Vec<Tensor>), TrainError> {
        let l = self.step_loss(step)?;
        let grads = Tensor::f_run_backward(&[&l.total], params, false, false)?;
        Ok((l, grads))
    }

    /// Evaluates the model as it is now.
    fn evaluate(&mut self) -> Evaluation;

    /// Metrics of the model's state, at step 0 of a fresh run and at every log step.
    fn log_state(&mut self, _step: i64, _rep: &Reporter) {}

    /// Metrics of the step's update (gradients and changes), at every log step.
    fn log_update(&mut self, _update: &Update<'_>, _rep: &Reporter) {}

    /// Called after every step's update (before its logging, evaluation and checkpoint), with the
    /// 1-based step just taken: for metrics a workload measured inside the step (they are then
    /// in the reporter before any checkpoint of that step).
    fn after_step(&mut self, _step: i64, _rep: &Reporter) {}

    /// Called once when the last step has been taken and evaluated (not for a diverged run):
    /// final measurements such as test-split metrics, at step `step`.
    fn finish(&mut self, _step: i64, _rep: &Reporter) {}

    /// Tensors beyond the optimizer's that a checkpoint must keep (e.g. mixture weights), by name;
    /// a resume copies the saved values back into these same tensors.
    fn state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }
}

/// Reads scalar and vector tensors back to the host in one transfer: each is flattened and
/// converted to f64 on its device, all are concatenated, and the result is split again.
pub fn read_back(parts: &[&Tensor]) -> Vec<Vec<f64>> {
    tch::no_grad(|| {
        let flat: Vec<Tensor> = parts
            .iter()
            .map(|t| t.detach().to_kind(tch::Kind::Double).reshape([-1]))
            .collect();
        let lens: Vec<usize> = flat.iter().map(|t| t.numel()).collect();
        let all = Vec::<f64>::try_from(Tensor::cat(&flat, 0).to_device(Device::Cpu))
            .expect("a flat f64 tensor converts to a Vec");
        let mut out = Vec::with_capacity(parts.len());
        let mut at = 0;
        for n in lens {
            out.push(all[at..at + n].to_vec());
            at += n;
        }
        out
    })
}

/// The training loop's own pace, printed when the last step is taken: wall time per step from the
/// end of the first [`Pace::WARM_UP`] steps of this attempt (allocations, kernel selection) to the
/// end of the last step's update, log steps, evaluations and checkpoints on the way included, the
/// final evaluation not. `scripts/bench-worker.sh` reads this line.
struct Pace {
    warm_at: u64,
    /// When step `warm_at` ended.
    since: Option<std::time::Instant>,
    tokens: u64,
}

impl Pace {
    const WARM_UP: u64 = 3;

    fn new(start_step: u64) -> Self {
        Pace {
            warm_at: start_step + Self::WARM_UP,
            since: None,
            tokens: 0,
        }
    }

    fn stepped(&mut self, step: u64, tokens: u64, last: bool, device: Device) {
        if step == self.warm_at {
            sync(device);
            self.since = Some(std::time::Instant::now());
        } else if self.since.is_some() {
            self.tokens += tokens;
        }
        if let (true, Some(t0)) = (last, self.since) {
            sync(device);
            let secs = t0.elapsed().as_secs_f64();
            let steps = step - self.warm_at;
            if steps > 0 {
                tracing::info!(
                    steps,
                    seconds = format!("{secs:.3}"),
                    ms_per_step = format!("{:.2}", 1000.0 * secs / steps as f64),
                    tokens_per_s = format!("{:.0}", self.tokens as f64 / secs),
                    "training pace after the first {} steps",
                    Self::WARM_UP
                );
            }
        }
    }
}

/// Waits for the device's queued work (a no-op on the CPU, where ops run as they are called).
fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
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
    let mut writer = checkpoint::Writer::default();
    let result = train(w, cfg, env, rep, &mut writer);
    // Whatever ended the run, the checkpoint being written is finished first.
    let written = writer.wait();
    let result = result?;
    written?;
    Ok(result)
}

fn train(
    w: &mut impl Workload,
    cfg: &TrialConfig,
    env: &RunEnv,
    rep: &Reporter,
    writer: &mut checkpoint::Writer,
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
            if let Some(file) = &env.init_weights {
                checkpoint::load_weights(file, &mut opt).map_err(TrainError::Init)?;
                tracing::info!(from = %file.display(), "started from the model.init_from weights");
            }
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
    let divergence = match (w.divergence(), cfg.init_from) {
        // A trial started from another's weights (`model.init_from`) starts far below the ℓ₀ of a
        // fresh model, and its loss may rise above its own start while the new schedule warms up
        // or the data changes: only worse than a uniform guess is divergence there.
        (Divergence::AboveInitial | Divergence::BestGroupAboveInitial, Some(_)) => {
            Divergence::AboveUniform {
                vocab: crate::data::VOCAB_SIZE,
            }
        }
        (d, _) => d,
    };

    let mut non_finite = NonFinite::new(env.device);
    let mut pace = Pace::new(progress.step);
    while progress.step < t.steps {
        let lr = schedule::lr_at(t, progress.step);
        let (l, mut grads) = w.gradients(progress.step, &opt.tensors())?;
        let norms = GradNorms::of(&grads);
        norms.clip(&mut grads, t.grad_clip);
        progress.step += 1;
        progress.tokens_seen += l.tokens;
        non_finite.record(progress.step, &l.total, &norms.norm);
        let done = progress.step as i64;
        let last = progress.step == t.steps;
        let log_now = progress.step % t.log_every == 0 || last;
        let eval_now = progress.step % eval_every == 0 || last;
        let checkpoint_now = env.checkpoint_dir.is_some()
            && t.checkpoint_every > 0
            && progress.step % t.checkpoint_every == 0
            && !last;
        let before = log_now.then(|| opt.snapshot());
        opt.step(&grads, lr);
        pace.stepped(progress.step, l.tokens, last, env.device);
        w.after_step(done, rep);

        if log_now {
            // Everything this log step reports, in one transfer: the loss, the norm, the
            // non-finite flag, the per-parameter sums, then the workload's loss parts.
            let update_sumsq = opt.update_sumsq(before.as_deref().unwrap_or_default());
            let param_sumsq = opt.param_sumsq();
            let mut parts: Vec<&Tensor> = vec![
                &l.total,
                &norms.norm,
                non_finite.flag(),
                &norms.sumsq,
                &update_sumsq,
                &param_sumsq,
            ];
            parts.extend(l.parts.iter().map(|(_, t)| t));
            let read = read_back(&parts);
            let (total, grad_norm) = (read[0][0], read[1][0]);
            rep.log(m::TRAIN_LOSS, done, total);
            rep.log(m::GRAD_NORM, done, grad_norm);
            if let Some(step) = NonFinite::step_of(read[2][0]) {
                let why = format!("non-finite loss or gradient norm at step {step} (at step {done}: loss {total}, gradient norm {grad_norm})");
                return Ok(TrialResult::Diverged(why));
            }
            for ((name, _), v) in l.parts.iter().zip(&read[6..]) {
                rep.log(name, done, v[0]);
            }
            rep.log(m::LR, done, lr);
            rep.log(m::TOKENS_SEEN, done, progress.tokens_seen as f64);
            w.log_state(done, rep);
            let update = Update {
                step: done,
                opt: &opt,
                grad_sumsq: &read[3],
                update_sumsq: &read[4],
                param_sumsq: &read[5],
            };
            w.log_update(&update, rep);
            if env.progress {
                let span = env.span;
                let of = span.total.unwrap_or(t.steps);
                progress_line(span.before + progress.step, of, total);
            }
        }
        if (eval_now || checkpoint_now) && !log_now {
            // Neither an evaluation nor a checkpoint may see a step that was not finite.
            if let Some(step) = non_finite.first() {
                return Ok(TrialResult::Diverged(format!(
                    "non-finite loss or gradient norm at step {step}"
                )));
            }
        }
        if eval_now {
            let e = w.evaluate();
            eval::log(rep, done, &e);
            let initial = progress.initial_eval_loss;
            if let Some(why) = divergence.check(&e, initial, progress.step, t.warmup_steps) {
                return Ok(TrialResult::Diverged(why));
            }
        }
        if checkpoint_now {
            if let Some(dir) = &env.checkpoint_dir {
                rep.barrier();
                writer.save(dir, &opt, progress, &w.state(), env.remote.clone())?;
            }
        }
    }
    if let (Some(dir), Some(remote)) = (&env.checkpoint_dir, &env.remote) {
        writer.wait()?;
        let file = checkpoint::save_weights(dir, &opt)?;
        remote.push_model(&file, progress.step);
    }
    w.finish(progress.step as i64, rep);
    Ok(TrialResult::Succeeded)
}
