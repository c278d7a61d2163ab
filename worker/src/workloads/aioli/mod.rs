//! The `aioli` workload (arXiv 2411.05735; `docs/workloads/aioli.md`): the decoder trained from
//! scratch on a mixture of data groups, set by `stratified` (round-robin rows), `static` (the
//! given proportions) or `aioli`. Aioli's rounds follow the reference trainer
//! (HazyResearch/aioli `trainer/aioli_trainer.py`): after the optional prior, each round of
//! `update_steps` steps starts with LearnParams — `lp_rounds` random orders of the groups, a
//! segment of `lp_steps` steps on each group's one-hot-factor mixture, the validation losses
//! measured after each segment and their drops summed into Â — then Â is averaged, de-mixed (or
//! reduced to its diagonal), normalised, and the mixture updated by exponentiated gradient; the
//! rest of the round trains on it. LearnParams steps are training steps. The update maths is in
//! [`update`]; [`schedule`] says what each step does. `dml` trains statically on a mixture the
//! server resolved; [`doremi`] trains a reference and a proxy first, then this workload statically
//! on the proxy's average weights.

pub mod doremi;
pub mod schedule;
pub mod update;

use tch::{nn, Device, Kind, Tensor};

use orrery_core::spec::TrialConfig;
use orrery_core::workloads::aioli::{self as a, AioliParams, Method};

use crate::data::{self, Split, TrainData, VOCAB_SIZE};
use crate::model::{loss, Gpt, GptConfig};
use crate::precision;
use crate::train::divergence::Divergence;
use crate::train::eval::{self, Evaluation};
use crate::train::optim::AdamW;
use crate::train::reporter::Reporter;
use crate::train::{StepLoss, TrainError, Workload};

use schedule::{Phase, Schedule};

pub struct Aioli {
    params: AioliParams,
    vs: nn::VarStore,
    model: Gpt,
    train: TrainData,
    groups: Vec<String>,
    validation: Vec<(String, Vec<data::Batch>)>,
    test: Vec<(String, Vec<data::Batch>)>,
    schedule: Schedule,
    /// `proportions` in group order (static's mixture, aioli's prior).
    given: Option<Vec<f64>>,
    seed: u64,
    batch_size: usize,
    seq_len: usize,
    /// Checkpointed state (host f64 tensors, updated in place so a resume can restore them): the
    /// learned mixture; this round's Â sum so far; the validation losses after the last segment;
    /// the EMA's Ā (set from round 0 on).
    p: Tensor,
    a_sum: Tensor,
    l_prev: Tensor,
    a_bar: Tensor,
    /// doremi: the mixture after the prior (the proxy's average weights), checkpointed with the
    /// rest so a resumed trial need not train the proxy again.
    learned: Tensor,
    /// Metrics measured inside a step, logged when the step is done (`after_step`).
    pending: Vec<(String, i64, f64)>,
}

fn host(values: &[f64]) -> Tensor {
    Tensor::from_slice(values).to_kind(Kind::Double)
}

fn read(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.reshape([-1])).expect("a host f64 tensor converts")
}

fn write(t: &Tensor, values: &[f64]) {
    let mut t = t.shallow_clone();
    tch::no_grad(|| t.copy_(&host(values).view(t.size().as_slice())));
}

impl Aioli {
    pub fn new(
        cfg: &TrialConfig,
        params: &AioliParams,
        device: Device,
    ) -> Result<Self, TrainError> {
        let t = &cfg.training;
        let seq_len = cfg.model.seq_len as usize;
        let batch_size = t.batch_size as usize;
        let (_, compute) = precision::resolve(t.precision, device);
        let model = GptConfig::new(&cfg.model, VOCAB_SIZE, false).with_compute(compute);
        let super::FromScratch { groups, vs, model } = super::from_scratch(cfg, model, device)?;
        let names: Vec<String> = groups.iter().map(|g| g.name.clone()).collect();
        let m = names.len();
        let batches = |split| eval::batches(&groups, split, cfg, device);
        let (validation, test) = (batches(Split::Validation), batches(Split::Test));
        let given = params.proportions.as_ref().map(|mix| {
            names
                .iter()
                .map(|g| mix.get(g).copied().unwrap_or(0.0))
                .collect::<Vec<f64>>()
        });
        if params.method == Method::Dml && given.is_none() {
            let from = params.dml.from_experiment.clone().unwrap_or_default();
            return Err(crate::data::DataError::UnresolvedMixture(from).into());
        }
        // The mixture at step 0: the prior (held for prior_steps) or static's (dml's is static at
        // the law's optimum), else uniform (doremi's until `set_learned`).
        let start = match (&given, params.method) {
            (Some(p), _) if params.prior_steps > 0 => p.clone(),
            (Some(p), Method::Static | Method::Dml) => p.clone(),
            _ => vec![1.0 / m as f64; m],
        };
        let schedule = Schedule::new(&params.aioli, params.prior_steps, m, t.seed);
        Ok(Aioli {
            train: TrainData::new(&groups, seq_len, device),
            params: params.clone(),
            vs,
            model,
            groups: names,
            validation,
            test,
            schedule,
            given,
            seed: t.seed,
            batch_size,
            seq_len,
            p: host(&start),
            a_sum: host(&vec![0.0; m * m]),
            l_prev: host(&vec![0.0; m]),
            a_bar: host(&vec![0.0; m * m]),
            learned: host(&vec![1.0 / m as f64; m]),
            pending: Vec::new(),
        })
    }

    /// doremi: the mixture to train on after the prior (from step 0 without one).
    pub fn set_learned(&mut self, w: &[f64]) {
        write(&self.learned, w);
        if self.params.prior_steps == 0 {
            write(&self.p, w);
        }
    }

    /// The trained model (DoReMi's reference, once trained).
    pub fn into_model(self) -> Gpt {
        self.model
    }

    /// Each group's validation loss now.
    fn losses(&self) -> Vec<f64> {
        eval::evaluate(&self.model, &self.validation)
            .per_group
            .into_iter()
            .map(|(_, l)| l)
            .collect()
    }

    /// Adds the drop of every group's loss since the last measurement to column `col` of Â's sum.
    fn record_segment(&mut self, col: usize) {
        let m = self.groups.len();
        let now = self.losses();
        let prev = read(&self.l_prev);
        let mut sum = read(&self.a_sum);
        for i in 0..m {
            sum[i * m + col] += prev[i] - now[i];
        }
        write(&self.a_sum, &sum);
        write(&self.l_prev, &now);
    }

    /// The end of a round's LearnParams at step `step`: Â, A and the new mixture.
    fn update_mixture(&mut self, step: u64) {
        let s = &self.params.aioli;
        let m = self.groups.len();
        let rounds = s.lp_rounds as f64;
        let a_hat: Vec<f64> = read(&self.a_sum).into_iter().map(|x| x / rounds).collect();
        let f = s.one_hot_factor;
        let mut am = if f == 1.0 {
            a_hat.clone()
        } else if s.diagonal {
            update::diagonal(&a_hat, m, f)
        } else {
            update::demix(&a_hat, m, f)
                .expect("the validator refuses one_hot_factor <= 1/groups, where W is singular")
        };
        if s.normalize_a {
            update::normalize(&mut am);
        }
        // Round 0's update starts from uniform (and the EMA from A itself).
        let first = self.schedule.round_of(step) == 0;
        let p = match s.ema {
            None => {
                // The first update starts from uniform, whatever the prior (as the reference does).
                let from = if first {
                    vec![1.0 / m as f64; m]
                } else {
                    read(&self.p)
                };
                update::eg_update(&from, &am, s.eta)
            }
            Some(ema) => {
                let prev = (!first).then(|| read(&self.a_bar));
                let (p, bar) = update::ema_update(&am, prev.as_deref(), ema, s.eta);
                write(&self.a_bar, &bar);
                p
            }
        };
        write(&self.p, &p);
        let at = step as i64;
        for (i, row) in self.groups.iter().enumerate() {
            for (j, col) in self.groups.iter().enumerate() {
                self.pending.push((a::mix_a(row, col), at, am[i * m + j]));
                self.pending
                    .push((a::mix_a_raw(row, col), at, a_hat[i * m + j]));
            }
        }
        self.queue_mixture(at);
        let fraction = self.schedule.lp_fraction(step);
        self.pending
            .push((a::LP_STEP_FRACTION.into(), at, fraction));
        tracing::info!(step, mixture = ?p, "aioli: mixture updated");
    }

    fn queue_mixture(&mut self, step: i64) {
        for (g, w) in self.groups.iter().zip(read(&self.p)) {
            self.pending.push((a::mix_p(g), step, w));
        }
    }

    fn flush(&mut self, rep: &Reporter) {
        for (name, step, v) in self.pending.drain(..) {
            rep.log(&name, step, v);
        }
    }

    /// What step `step` trains on: `None` for round-robin rows, else a mixture. Aioli's
    /// measurements at segment boundaries happen here, before the step's gradient.
    fn mixture_for(&mut self, step: u64) -> Option<Vec<f64>> {
        if step < self.params.prior_steps {
            return self.given.clone();
        }
        if step == self.params.prior_steps && step > 0 {
            // The prior is over: stratified's rows are round-robin again; doremi trains on its
            // learned mixture.
            let m = self.groups.len();
            let next = match self.params.method {
                Method::Stratified => Some(vec![1.0 / m as f64; m]),
                Method::Doremi => Some(read(&self.learned)),
                _ => None,
            };
            if let Some(p) = next {
                write(&self.p, &p);
                self.queue_mixture(step as i64);
            }
        }
        match self.params.method {
            Method::Stratified => None,
            Method::Static | Method::Dml | Method::Doremi => Some(read(&self.p)),
            Method::Aioli => match self.schedule.phase(step) {
                Phase::Prior => self.given.clone(),
                Phase::Segment {
                    segment,
                    within,
                    order,
                } => {
                    if within == 0 {
                        if segment == 0 {
                            let l0 = self.losses();
                            write(&self.l_prev, &l0);
                            write(&self.a_sum, &vec![0.0; self.groups.len().pow(2)]);
                        } else {
                            self.record_segment(order[segment - 1]);
                        }
                    }
                    let m = self.groups.len();
                    Some(update::segment_mixture(
                        m,
                        order[segment],
                        self.params.aioli.one_hot_factor,
                    ))
                }
                Phase::Train { first, last_probe } => {
                    if first {
                        if let Some(col) = last_probe {
                            self.record_segment(col);
                            self.update_mixture(step);
                        }
                    }
                    Some(read(&self.p))
                }
            },
        }
    }
}

impl Workload for Aioli {
    fn divergence(&self) -> Divergence {
        // A mixture with a zero weight starves a group, whose loss then climbs while the others
        // learn; that run is a bad mixture, not a diverged one.
        Divergence::BestGroupAboveInitial
    }

    fn optimizer(&self, t: &orrery_core::spec::TrainingSpec) -> AdamW {
        AdamW::over(&self.vs, t)
    }

    fn step_loss(&mut self, step: u64) -> Result<StepLoss, TrainError> {
        let batch = match self.mixture_for(step) {
            None => self.train.batch(self.seed, step, self.batch_size),
            Some(p) => self.train.mixed_batch(self.seed, step, self.batch_size, &p),
        };
        let l = loss(&self.model.forward(&batch.inputs), &batch.targets, 0.0);
        Ok(StepLoss {
            total: l.total,
            parts: Vec::new(),
            tokens: (self.batch_size * self.seq_len) as u64,
        })
    }

    fn evaluate(&mut self) -> Evaluation {
        evaluate_mixing(&self.model, &self.validation)
    }

    fn log_state(&mut self, step: i64, rep: &Reporter) {
        if step == 0 {
            self.queue_mixture(0);
        }
        self.flush(rep);
    }

    fn after_step(&mut self, _step: i64, rep: &Reporter) {
        self.flush(rep);
    }

    fn finish(&mut self, step: i64, rep: &Reporter) {
        let e = eval::evaluate(&self.model, &self.test);
        for (g, l) in &e.per_group {
            rep.log(&a::test_ppl(g), step, l.exp());
        }
        rep.log(a::TEST_AVG_PPL, step, mean_ppl(&e.per_group));
        if self.params.method == Method::Aioli {
            let fraction = self.schedule.lp_fraction(step as u64);
            self.pending
                .push((a::LP_STEP_FRACTION.into(), step, fraction));
        }
        self.flush(rep);
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut state = vec![
            ("aioli.p", &self.p),
            ("aioli.a_sum", &self.a_sum),
            ("aioli.l_prev", &self.l_prev),
            ("aioli.a_bar", &self.a_bar),
        ];
        if self.params.method == Method::Doremi {
            state.push(("aioli.learned", &self.learned));
        }
        state
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.shallow_clone()))
            .collect()
    }
}

/// A mixing trial's evaluation: each group's validation loss and their mean perplexity (the
/// objective, `eval/avg_ppl`).
fn evaluate_mixing(model: &Gpt, validation: &[(String, Vec<data::Batch>)]) -> Evaluation {
    let mut e = eval::evaluate(model, validation);
    let ppl = mean_ppl(&e.per_group);
    e.extra.push((a::EVAL_AVG_PPL.into(), ppl));
    e
}

/// Mean over groups of exp(loss).
fn mean_ppl(per_group: &[(String, f64)]) -> f64 {
    per_group.iter().map(|(_, l)| l.exp()).sum::<f64>() / per_group.len() as f64
}
