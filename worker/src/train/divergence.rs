//! When a run has diverged. `Diverged` is a result, not a failure (an LR sweep needs it), so the
//! rule is the workload's: a model trained from scratch starts at ℓ₀ ≈ ln(vocabulary), and an
//! evaluation loss above ℓ₀ after warm-up means training went backwards; a fine-tuned model starts
//! far below that, so there only a loss above ln(vocabulary) — worse than uniform guessing — does.
//! A mixture may starve a group (weight 0 never trains on it: its loss can rise far above ℓ₀ while
//! the rest improve), so a mixing workload counts training as gone backwards only when even its
//! best group is above ℓ₀. Either way a non-finite loss or gradient norm is divergence.

use tch::{Device, Kind, Tensor};

use super::eval::Evaluation;

/// How a workload recognises a diverged run from its evaluation loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Divergence {
    /// Above the loss at initialisation (ℓ₀), once warm-up is over: training from scratch.
    AboveInitial,
    /// Above ln(vocab), the loss of a uniform prediction: fine-tuning, where ℓ₀ is already low.
    AboveUniform { vocab: i64 },
    /// Every group's loss above ℓ₀ (the mean of the groups' losses at initialisation), once
    /// warm-up is over: training from scratch on a mixture, which may starve a group.
    BestGroupAboveInitial,
}

impl Divergence {
    /// Why evaluation `e` at (1-based) `step` means divergence, or `None`. `initial`: ℓ₀ (the
    /// mean evaluation loss at step 0); `warmup_steps`: the schedule's warm-up, during which a
    /// loss above ℓ₀ is allowed (the LR is still rising and the loss may bump up before it falls).
    pub fn check(
        self,
        e: &Evaluation,
        initial: f64,
        step: u64,
        warmup_steps: u64,
    ) -> Option<String> {
        let eval = e.mean;
        if !eval.is_finite() {
            return Some(format!("eval loss {eval} at step {step} is not finite"));
        }
        match self {
            Divergence::BestGroupAboveInitial if step > warmup_steps => {
                let (group, best) = e
                    .per_group
                    .iter()
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(g, l)| (g.as_str(), *l))
                    .unwrap_or(("all", eval));
                (best > initial).then(|| format!(
                    "every group's eval loss at step {step} is above the initial {initial:.4} (the lowest: {group}, {best:.4})"
                ))
            }
            Divergence::AboveInitial if step > warmup_steps && eval > initial => Some(format!(
                "eval loss {eval:.4} at step {step} is above its initial value {initial:.4}"
            )),
            Divergence::AboveUniform { vocab } if eval > (vocab as f64).ln() => Some(format!(
                "eval loss {eval:.4} at step {step} is above ln({vocab}) = {:.4}, a uniform guess's",
                (vocab as f64).ln()
            )),
            _ => None,
        }
    }
}

/// The first training step whose loss or gradient norm was not finite, tracked on the device so
/// the loop need not read either back every step: it asks [`NonFinite::first`] where it reads
/// anyway (log, evaluation and checkpoint steps). Steps after the first bad one train on NaNs;
/// the loop stops at its next read, before any evaluation or checkpoint sees them.
pub struct NonFinite {
    /// The 1-based step, or 0 while every step was finite (an `int64` scalar on the device).
    first: Tensor,
}

impl NonFinite {
    pub fn new(device: Device) -> Self {
        NonFinite {
            first: Tensor::zeros([], (Kind::Int64, device)),
        }
    }

    /// Notes (1-based) step `step`'s loss and gradient norm, without a sync.
    pub fn record(&mut self, step: u64, loss: &Tensor, grad_norm: &Tensor) {
        tch::no_grad(|| {
            let bad = loss
                .isfinite()
                .logical_and(&grad_norm.isfinite())
                .logical_not()
                .logical_and(&self.first.eq(0));
            // `first` is 0 wherever `bad` holds, so adding bad·step sets it (no host-to-device copy).
            let _ = self.first.g_add_(&(bad.to_kind(Kind::Int64) * step as i64));
        })
    }

    /// The first non-finite step so far (a read: one sync).
    pub fn first(&self) -> Option<u64> {
        NonFinite::step_of(self.first.int64_value(&[]) as f64)
    }

    /// The flag, for a caller that reads it back with other values in one transfer and decodes
    /// it with [`NonFinite::step_of`].
    pub fn flag(&self) -> &Tensor {
        &self.first
    }

    /// The first non-finite step from the flag's value as read back.
    pub fn step_of(flag: f64) -> Option<u64> {
        (flag > 0.0).then_some(flag as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An evaluation of mean `mean` (over one group).
    fn ev(mean: f64) -> Evaluation {
        Evaluation {
            mean,
            per_group: vec![("all".into(), mean)],
            extra: Vec::new(),
        }
    }

    #[test]
    fn a_mixture_diverges_only_when_every_group_went_backwards() {
        let r = Divergence::BestGroupAboveInitial;
        let e = |losses: &[f64]| Evaluation {
            mean: losses.iter().sum::<f64>() / losses.len() as f64,
            per_group: losses
                .iter()
                .enumerate()
                .map(|(i, l)| (format!("g{i}"), *l))
                .collect(),
            extra: Vec::new(),
        };
        // A starved group far above ℓ₀ while another learns: not divergence (the mean is 7.5).
        assert_eq!(r.check(&e(&[2.0, 13.0]), 5.5, 100, 30), None);
        let why = r.check(&e(&[5.7, 13.0]), 5.5, 100, 30).unwrap();
        assert!(why.contains("the lowest: g0, 5.7000"), "{why}");
        assert_eq!(r.check(&e(&[5.7, 13.0]), 5.5, 30, 30), None);
        assert!(r.check(&e(&[f64::NAN, 1.0]), 5.5, 10, 30).is_some());
    }

    #[test]
    fn from_scratch_diverges_above_the_initial_loss_after_warm_up() {
        let r = Divergence::AboveInitial;
        assert_eq!(r.check(&ev(5.0), 5.5, 100, 30), None);
        assert!(r
            .check(&ev(5.6), 5.5, 100, 30)
            .unwrap()
            .contains("above its initial value 5.5000"));
        // During warm-up a bump above ℓ₀ is allowed; at the last warm-up step too.
        assert_eq!(r.check(&ev(5.6), 5.5, 30, 30), None);
        assert!(r.check(&ev(5.6), 5.5, 31, 30).is_some());
        assert!(r
            .check(&ev(f64::NAN), 5.5, 10, 30)
            .unwrap()
            .contains("not finite"));
        assert!(r.check(&ev(f64::INFINITY), 5.5, 100, 0).is_some());
    }

    #[test]
    fn fine_tuning_diverges_only_above_a_uniform_guess() {
        let r = Divergence::AboveUniform { vocab: 256 };
        // ℓ₀ of a fine-tuned model is low: rising above it is not divergence.
        assert_eq!(r.check(&ev(2.0), 0.8, 100, 0), None);
        assert_eq!(r.check(&ev(5.5), 0.8, 100, 0), None); // ln 256 ≈ 5.545
        assert!(r.check(&ev(5.6), 0.8, 100, 0).unwrap().contains("ln(256)"));
        assert!(r.check(&ev(f64::NAN), 0.8, 1, 0).is_some());
    }

    #[test]
    fn non_finite_steps_are_caught_without_a_read_per_step() {
        let mut nf = NonFinite::new(Device::Cpu);
        let t = |v: f64| Tensor::from(v);
        nf.record(1, &t(3.0), &t(1.0));
        nf.record(2, &t(2.5), &t(0.5));
        assert_eq!(nf.first(), None);
        nf.record(3, &t(2.0), &t(f64::INFINITY));
        nf.record(4, &t(f64::NAN), &t(f64::NAN));
        nf.record(5, &t(1.0), &t(1.0));
        assert_eq!(nf.first(), Some(3), "the first bad step is kept");
        assert_eq!(NonFinite::step_of(nf.flag().double_value(&[])), Some(3));
        let mut loss = NonFinite::new(Device::Cpu);
        loss.record(7, &t(f64::NAN), &t(1.0));
        assert_eq!(loss.first(), Some(7));
    }
}
