//! When a run has diverged. `Diverged` is a result, not a failure (an LR sweep needs it), so the
//! rule is the workload's: a model trained from scratch starts at ℓ₀ ≈ ln(vocabulary), and an
//! evaluation loss above ℓ₀ after warm-up means training went backwards; a fine-tuned model starts
//! far below that, so there only a loss above ln(vocabulary) — worse than uniform guessing — does.
//! Either way a non-finite loss or gradient norm is divergence.

/// How a workload recognises a diverged run from its evaluation loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Divergence {
    /// Above the loss at initialisation (ℓ₀), once warm-up is over: training from scratch.
    AboveInitial,
    /// Above ln(vocab), the loss of a uniform prediction: fine-tuning, where ℓ₀ is already low.
    AboveUniform { vocab: i64 },
}

impl Divergence {
    /// Why the evaluation loss `eval` at (1-based) `step` means divergence, or `None`.
    /// `initial`: ℓ₀; `warmup_steps`: the schedule's warm-up, during which a loss above ℓ₀ is
    /// allowed (the LR is still rising and the loss may bump up before it falls).
    pub fn check(self, eval: f64, initial: f64, step: u64, warmup_steps: u64) -> Option<String> {
        if !eval.is_finite() {
            return Some(format!("eval loss {eval} at step {step} is not finite"));
        }
        match self {
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

/// Why a training step's loss or gradient norm means divergence, or `None`.
pub fn non_finite_step(loss: f64, grad_norm: f64, step: u64) -> Option<String> {
    (!loss.is_finite() || !grad_norm.is_finite())
        .then(|| format!("non-finite loss {loss} or gradient norm {grad_norm} at step {step}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_scratch_diverges_above_the_initial_loss_after_warm_up() {
        let r = Divergence::AboveInitial;
        assert_eq!(r.check(5.0, 5.5, 100, 30), None);
        assert!(r
            .check(5.6, 5.5, 100, 30)
            .unwrap()
            .contains("above its initial value 5.5000"));
        // During warm-up a bump above ℓ₀ is allowed; at the last warm-up step too.
        assert_eq!(r.check(5.6, 5.5, 30, 30), None);
        assert!(r.check(5.6, 5.5, 31, 30).is_some());
        assert!(r
            .check(f64::NAN, 5.5, 10, 30)
            .unwrap()
            .contains("not finite"));
        assert!(r.check(f64::INFINITY, 5.5, 100, 0).is_some());
    }

    #[test]
    fn fine_tuning_diverges_only_above_a_uniform_guess() {
        let r = Divergence::AboveUniform { vocab: 256 };
        // ℓ₀ of a fine-tuned model is low: rising above it is not divergence.
        assert_eq!(r.check(2.0, 0.8, 100, 0), None);
        assert_eq!(r.check(5.5, 0.8, 100, 0), None); // ln 256 ≈ 5.545
        assert!(r.check(5.6, 0.8, 100, 0).unwrap().contains("ln(256)"));
        assert!(r.check(f64::NAN, 0.8, 1, 0).is_some());
    }

    #[test]
    fn non_finite_steps() {
        assert_eq!(non_finite_step(3.0, 1.0, 5), None);
        assert!(non_finite_step(f64::NAN, 1.0, 5).is_some());
        assert!(non_finite_step(3.0, f64::INFINITY, 5).is_some());
    }
}
