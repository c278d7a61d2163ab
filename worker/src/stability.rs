//! The `stability` workload (Wortsman et al., arXiv 2309.14322): one trial trains the decoder at one
//! learning rate with the spec's interventions and records the signals of the two instabilities —
//! attention-logit growth (`attn/max_logit/L{i}`) and output-logit divergence (`out/logz_mean`) —
//! beside the losses.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use tch::{nn, Device};

use orrery_core::metrics as m;
use orrery_core::spec::{TrialConfig, MUP_BASE_WIDTH};

use crate::checkpoint::{self, Progress};
use crate::data::{self, Group, Split, VOCAB_SIZE};
use crate::model::{loss, Gpt, GptConfig};
use crate::optim::{lr_at, AdamW};
use crate::reporter::Reporter;

#[derive(Debug, Clone, PartialEq)]
pub enum TrialResult {
    Succeeded,
    /// Loss became NaN/inf or rose above its initial value after warm-up.
    Diverged(String),
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
}

pub struct RunEnv {
    pub device: Device,
    pub checkpoint_dir: Option<PathBuf>,
    /// Print one JSON progress line per logged step on stdout (read by the local executor).
    pub progress: bool,
}

/// Rows per probe batch: small, so measuring attention statistics stays cheap.
const PROBE_ROWS: usize = 8;

fn evaluate(model: &Gpt, eval: &[(String, Vec<data::Batch>)]) -> (f64, Vec<(String, f64)>) {
    tch::no_grad(|| {
        let per_group: Vec<(String, f64)> = eval
            .iter()
            .map(|(name, batches)| {
                let total: f64 = batches
                    .iter()
                    .map(|b| {
                        loss(&model.forward(&b.inputs), &b.targets, 0.0)
                            .ce
                            .double_value(&[])
                    })
                    .sum();
                (name.clone(), total / batches.len() as f64)
            })
            .collect();
        let mean = per_group.iter().map(|(_, l)| l).sum::<f64>() / per_group.len() as f64;
        (mean, per_group)
    })
}

fn log_eval(rep: &Reporter, step: i64, mean: f64, per_group: &[(String, f64)]) {
    rep.log(m::EVAL_LOSS, step, mean);
    for (g, l) in per_group {
        rep.log(&m::eval_group_loss(g), step, *l);
    }
}

fn log_probe(rep: &Reporter, model: &Gpt, probe: &tch::Tensor, step: i64) {
    let stats = model.probe(probe);
    for (i, a) in stats.attn.iter().enumerate() {
        rep.log(&m::attn_max_logit(i), step, a.max_logit);
        rep.log(&m::attn_mean_logit(i), step, a.mean_logit);
        rep.log(&m::attn_entropy(i), step, a.entropy);
    }
    rep.log(m::LOGZ_MEAN, step, stats.logz_mean);
    rep.log(m::LOGZ_STD, step, stats.logz_std);
    rep.log(m::LOGIT_RMS, step, stats.logit_rms);
}

fn model_config(cfg: &TrialConfig) -> GptConfig {
    let c = GptConfig::new(&cfg.model, VOCAB_SIZE, cfg.params.qk_layernorm);
    if cfg.params.mup_simple {
        c.with_mup(MUP_BASE_WIDTH)
    } else {
        c
    }
}

/// The group a parameter's RMS is reported under: `L{i}` for block i, `emb` for the token and
/// position embeddings, `head` for the final LayerNorm and the output projection.
fn rms_group(name: &str) -> String {
    match name.strip_prefix("blocks.") {
        Some(rest) => format!("L{}", rest.split('.').next().unwrap_or("?")),
        None if name.ends_with("_emb") => "emb".into(),
        None => "head".into(),
    }
}

/// Per group RMS of parameters, raw gradients (before clipping) and the step's update; and the
/// global gradient RMS over AdamW's ε (updates shrink as it nears 1).
fn log_rms(rep: &Reporter, opt: &AdamW, grad_sumsq: &[f64], update_sumsq: &[f64], step: i64) {
    let param_sumsq = opt.param_sumsq();
    let mut groups: BTreeMap<String, [f64; 4]> = BTreeMap::new();
    for (i, p) in opt.params.iter().enumerate() {
        let g = groups.entry(rms_group(&p.name)).or_default();
        g[0] += param_sumsq[i];
        g[1] += grad_sumsq.get(i).copied().unwrap_or(0.0);
        g[2] += update_sumsq.get(i).copied().unwrap_or(0.0);
        g[3] += p.tensor.numel() as f64;
    }
    let (mut all_sq, mut all_n) = (0.0, 0.0);
    for (group, [param, grad, update, n]) in &groups {
        rep.log(&m::rms("param", group), step, (param / n).sqrt());
        rep.log(&m::rms("grad", group), step, (grad / n).sqrt());
        rep.log(&m::rms("update", group), step, (update / n).sqrt());
        all_sq += grad;
        all_n += n;
    }
    rep.log(
        m::GRAD_RMS_OVER_EPS,
        step,
        (all_sq / all_n).sqrt() / opt.eps,
    );
}

fn progress_line(step: u64, steps: u64, loss: f64) {
    let line = serde_json::json!({"event": "progress", "step": step, "steps": steps, "loss": loss.is_finite().then_some(loss)});
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

pub fn run(cfg: &TrialConfig, env: &RunEnv, rep: &Reporter) -> Result<TrialResult, TrainError> {
    let t = &cfg.training;
    let seq_len = cfg.model.seq_len as usize;
    let groups: Vec<Group> = data::load_groups(&cfg.data, seq_len)?;
    tch::manual_seed(t.seed as i64);
    let vs = nn::VarStore::new(env.device);
    let model = Gpt::new(&vs.root(), model_config(cfg));
    let mut named: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut opt = AdamW::new(named, t);
    if let Some(mult) = model.cfg.mup_width_mult {
        // μParam (simple): the hidden matrices learn at base_width/width of the schedule's rate.
        for p in &mut opt.params {
            if p.name.starts_with("blocks.") && p.tensor.dim() >= 2 {
                p.lr_scale = mult;
            }
        }
    }

    let bs = t.batch_size as usize;
    let eval: Vec<(String, Vec<data::Batch>)> = groups
        .iter()
        .map(|g| {
            (
                g.name.clone(),
                data::eval_batches(
                    g,
                    Split::Validation,
                    t.eval_batches as usize,
                    bs,
                    seq_len,
                    env.device,
                ),
            )
        })
        .collect();
    let probe = data::train_batch(
        &groups,
        cfg.data.seed ^ 0x70726f6265,
        u64::MAX,
        PROBE_ROWS,
        seq_len,
        env.device,
    )
    .inputs;

    let resumed = match &env.checkpoint_dir {
        Some(dir) => checkpoint::load(dir, &mut opt)?,
        None => None,
    };
    let mut progress = match resumed {
        Some(p) => {
            tracing::info!(step = p.step, "resumed from checkpoint");
            p
        }
        None => {
            let (l0, per_group) = evaluate(&model, &eval);
            log_eval(rep, 0, l0, &per_group);
            log_probe(rep, &model, &probe, 0);
            Progress {
                step: 0,
                tokens_seen: 0,
                initial_eval_loss: l0,
            }
        }
    };
    rep.log(m::RESUMED_FROM, progress.step as i64, progress.step as f64);
    let eval_every = t.effective_eval_every();
    let tokens_per_step = (bs * seq_len) as u64;

    while progress.step < t.steps {
        let step = progress.step;
        let lr = lr_at(t, step);
        let batch = data::train_batch(&groups, t.seed, step, bs, seq_len, env.device);
        opt.zero_grad();
        let l = loss(
            &model.forward(&batch.inputs),
            &batch.targets,
            cfg.params.z_loss,
        );
        l.total.backward();
        let log_now = (progress.step + 1) % t.log_every == 0 || progress.step + 1 == t.steps;
        let grad_sumsq = opt.grad_sumsq();
        let grad_norm = opt.clip_grad_norm(&grad_sumsq, t.grad_clip);
        let total = l.total.double_value(&[]);
        progress.step += 1;
        progress.tokens_seen += tokens_per_step;
        let done = progress.step as i64;
        if !total.is_finite() || !grad_norm.is_finite() {
            rep.log(m::TRAIN_LOSS, done, total);
            rep.log(m::GRAD_NORM, done, grad_norm);
            return Ok(TrialResult::Diverged(format!(
                "non-finite loss {total} or gradient norm {grad_norm} at step {done}"
            )));
        }
        let update_sumsq = opt.step(lr, log_now);

        let last = progress.step == t.steps;
        if log_now {
            rep.log(m::TRAIN_LOSS, done, total);
            rep.log(m::TRAIN_CE, done, l.ce.double_value(&[]));
            rep.log(m::TRAIN_Z_LOSS, done, l.z.double_value(&[]));
            rep.log(m::LR, done, lr);
            rep.log(m::GRAD_NORM, done, grad_norm);
            rep.log(m::TOKENS_SEEN, done, progress.tokens_seen as f64);
            log_probe(rep, &model, &probe, done);
            log_rms(rep, &opt, &grad_sumsq, &update_sumsq, done);
            if env.progress {
                progress_line(progress.step, t.steps, total);
            }
        }
        if progress.step % eval_every == 0 || last {
            let (ev, per_group) = evaluate(&model, &eval);
            log_eval(rep, done, ev, &per_group);
            let past_warmup = progress.step > t.warmup_steps;
            if !ev.is_finite() || (past_warmup && ev > progress.initial_eval_loss) {
                return Ok(TrialResult::Diverged(format!(
                    "eval loss {ev:.4} at step {done} is above its initial value {:.4}",
                    progress.initial_eval_loss
                )));
            }
        }
        if let Some(dir) = &env.checkpoint_dir {
            if t.checkpoint_every > 0 && progress.step % t.checkpoint_every == 0 && !last {
                rep.barrier();
                checkpoint::save(dir, &opt, progress)?;
            }
        }
    }
    Ok(TrialResult::Succeeded)
}
