//! AdamW with the two weight-decay forms Wortsman et al. distinguish (coupled, as PyTorch's AdamW;
//! independent of the LR's size). Written out rather than taken from `tch::nn::AdamW` because tch
//! couples decay to the learning rate and hides the moments, which checkpoints and the per-group
//! RMS metrics need.

use tch::{Device, Kind, Tensor};

use orrery_core::spec::{TrainingSpec, WeightDecayMode};
use tch::nn::VarStore;

pub struct Param {
    pub name: String,
    pub tensor: Tensor,
    /// Matrices decay; gains (LayerNorm) do not.
    pub decay: bool,
    /// This parameter's learning rate relative to the schedule's (μParam scales hidden matrices).
    pub lr_scale: f64,
    pub m: Tensor,
    pub v: Tensor,
}

pub struct AdamW {
    pub params: Vec<Param>,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub mode: WeightDecayMode,
    /// The schedule's peak learning rate (η_max in independent decay).
    pub lr_max: f64,
    /// Optimizer steps taken (for bias correction).
    pub t: u64,
}

impl AdamW {
    /// Over every variable of `vs`, sorted by name (the order checkpoints and the gradient-norm
    /// sum follow).
    pub fn over(vs: &VarStore, t: &TrainingSpec) -> Self {
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        AdamW::new(named, t)
    }

    /// `named`: the model's parameters, in a fixed order (sorted by name).
    pub fn new(named: Vec<(String, Tensor)>, t: &TrainingSpec) -> Self {
        let params = named
            .into_iter()
            .map(|(name, tensor)| Param {
                decay: tensor.dim() >= 2,
                lr_scale: 1.0,
                m: tensor.zeros_like(),
                v: tensor.zeros_like(),
                name,
                tensor,
            })
            .collect();
        AdamW {
            params,
            beta1: t.beta1,
            beta2: t.beta2,
            eps: t.eps,
            weight_decay: t.weight_decay,
            mode: t.weight_decay_mode,
            lr_max: t.lr,
            t: 0,
        }
    }

    /// The parameters, in `params` order (what the loop differentiates the loss by).
    pub fn tensors(&self) -> Vec<&Tensor> {
        self.params.iter().map(|p| &p.tensor).collect()
    }

    /// Σθ² of each parameter, as one `[n]` tensor on the parameters' device.
    pub fn param_sumsq(&self) -> Tensor {
        tch::no_grad(|| sumsq_each(self.params.iter().map(|p| &p.tensor)))
    }

    /// Copies of the parameters, to measure a step's change against ([`AdamW::update_sumsq`]).
    pub fn snapshot(&self) -> Vec<Tensor> {
        tch::no_grad(|| self.params.iter().map(|p| p.tensor.copy()).collect())
    }

    /// Σ(Δθ)² of each parameter since `before` (a [`AdamW::snapshot`]), as one `[n]` tensor.
    pub fn update_sumsq(&self, before: &[Tensor]) -> Tensor {
        tch::no_grad(|| {
            let deltas: Vec<Tensor> = self
                .params
                .iter()
                .zip(before)
                .map(|(p, b)| &p.tensor - b)
                .collect();
            sumsq_each(deltas.iter())
        })
    }

    /// One update at learning rate `lr` (times each parameter's `lr_scale`, η below) with this
    /// step's gradients `grads` (in `params` order; an undefined one leaves its parameter alone):
    /// coupled (PyTorch AdamW): θ ← θ − η·λ·θ − η·u;
    /// independent (Wortsman et al.): θ ← θ − (η_t/η_max)·λ·θ − η·u, the schedule's multiplier only;
    /// with u = m̂ / (√v̂ + ε). In place: at most eight kernels and two temporaries per parameter, nothing
    /// read back to the host (checked against `torch.optim.AdamW` by `tests/adamw_parity.rs`).
    pub fn step(&mut self, grads: &[Tensor], lr: f64) {
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t as i32);
        let bc2_sqrt = (1.0 - self.beta2.powi(self.t as i32)).sqrt();
        let schedule = lr / self.lr_max;
        tch::no_grad(|| {
            for (p, g) in self.params.iter_mut().zip(grads) {
                if !g.defined() {
                    continue;
                }
                let lr = lr * p.lr_scale;
                let decay = match self.mode {
                    WeightDecayMode::Coupled => lr * self.weight_decay,
                    WeightDecayMode::Independent => schedule * self.weight_decay,
                };
                let _ = p.m.lerp_(g, 1.0 - self.beta1);
                let _ = p.v.lerp_(&g.square(), 1.0 - self.beta2);
                // θ −= (η/bc₁)·m / (√v/√bc₂ + ε), written as θ += m / d with
                // d = −(√v/√bc₂ + ε)·bc₁/η, because tch's addcdiv_ has no scalar factor.
                let step_size = lr / bc1;
                let mut d = p.v.sqrt();
                let _ = d.g_mul_scalar_(-1.0 / (bc2_sqrt * step_size));
                let _ = d.g_add_scalar_(-self.eps / step_size);
                if p.decay && decay != 0.0 {
                    let _ = p.tensor.g_mul_scalar_(1.0 - decay);
                }
                let _ = p.tensor.addcdiv_(&p.m, &d);
            }
        })
    }
}

/// Σx² of each tensor (0 for an undefined one), stacked into one `[n]` tensor.
fn sumsq_each<'a>(ts: impl Iterator<Item = &'a Tensor>) -> Tensor {
    let sums: Vec<Tensor> = ts
        .map(|t| {
            if t.defined() {
                // Summed in f64: a norm of millions of squares loses digits in f32.
                t.square().sum(Kind::Double)
            } else {
                Tensor::zeros([], (Kind::Double, Device::Cpu))
            }
        })
        .collect();
    let device = sums.iter().map(|s| s.device()).find(|d| *d != Device::Cpu);
    let sums: Vec<Tensor> = match device {
        Some(d) => sums.into_iter().map(|s| s.to_device(d)).collect(),
        None => sums,
    };
    Tensor::stack(&sums, 0)
}

/// The gradient norms of one step, kept on the device: each parameter's Σg² (for the per-group
/// RMS metrics, read at log steps) and the global norm (clipping and `train/grad_norm`).
pub struct GradNorms {
    /// `[n]`, in `params` order.
    pub sumsq: Tensor,
    /// The global L2 norm, a 0-dimensional tensor.
    pub norm: Tensor,
}

impl GradNorms {
    pub fn of(grads: &[Tensor]) -> Self {
        tch::no_grad(|| {
            let sumsq = sumsq_each(grads.iter());
            let norm = sumsq.sum(Kind::Double).sqrt();
            GradNorms { sumsq, norm }
        })
    }

    /// Scales `grads` so their global norm is at most `max_norm` (0: no clipping), as PyTorch's
    /// `clip_grad_norm_` does: by min(1, max_norm / (norm + 1e-6)), computed on the device, so the
    /// host never waits for the norm.
    pub fn clip(&self, grads: &mut [Tensor], max_norm: f64) {
        if max_norm <= 0.0 {
            return;
        }
        tch::no_grad(|| {
            let coef = (self.norm.g_add_scalar(1e-6).reciprocal() * max_norm).clamp_max(1.0);
            for g in grads.iter_mut().filter(|g| g.defined()) {
                let _ = g.g_mul_(&coef);
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn spec(mode: WeightDecayMode) -> TrainingSpec {
        TrainingSpec {
            lr: 0.1,
            weight_decay: 0.5,
            weight_decay_mode: mode,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            ..TrainingSpec::default()
        }
    }

    fn one_step(mode: WeightDecayMode, lr: f64) -> f64 {
        scaled_step(mode, lr, 1.0)
    }

    fn scaled_step(mode: WeightDecayMode, lr: f64, lr_scale: f64) -> f64 {
        let w = Tensor::from_slice(&[2.0f64, 0.0, 0.0, 0.0])
            .view([2, 2])
            .set_requires_grad(true);
        let mut opt = AdamW::new(vec![("w".into(), w.shallow_clone())], &spec(mode));
        opt.params[0].lr_scale = lr_scale;
        let loss = (&w * 3.0).sum(Kind::Double); // gradient 3 everywhere
        let grads = Tensor::run_backward(&[loss], &opt.tensors(), false, false);
        let before = opt.snapshot();
        opt.step(&grads, lr);
        let measured =
            Vec::<f64>::try_from(opt.update_sumsq(&before).to_kind(Kind::Double)).unwrap();
        let w00 = w.double_value(&[0, 0]);
        // Only w[0,0] is non-zero, so it carries the whole update (the others move by −lr·u).
        let u = 3.0 / (3.0 + 1e-8);
        let expected = (w00 - 2.0).powi(2) + 3.0 * (lr * lr_scale * u).powi(2);
        assert!(
            (measured[0] - expected).abs() < 1e-12,
            "{measured:?} vs {expected}"
        );
        w00
    }

    #[test]
    fn decay_forms_by_hand() {
        // First Adam step: m̂ = g, v̂ = g², u = g/(|g| + ε) ≈ 1.
        let u = 3.0 / (3.0 + 1e-8);
        // coupled at lr 0.1: 2·(1 − 0.1·0.5) − 0.1·u
        assert!((one_step(WeightDecayMode::Coupled, 0.1) - (2.0 * 0.95 - 0.1 * u)).abs() < 1e-12);
        // independent at lr 0.05 (half the peak 0.1): 2·(1 − 0.5·0.5) − 0.05·u
        assert!(
            (one_step(WeightDecayMode::Independent, 0.05) - (2.0 * 0.75 - 0.05 * u)).abs() < 1e-12
        );
        // coupled at lr 0.05: 2·(1 − 0.05·0.5) − 0.05·u
        assert!(
            (one_step(WeightDecayMode::Coupled, 0.05) - (2.0 * 0.975 - 0.05 * u)).abs() < 1e-12
        );
    }

    #[test]
    fn mup_lr_scale_scales_the_step_and_coupled_decay_only() {
        let u = 3.0 / (3.0 + 1e-8);
        // coupled, lr 0.1 × scale 0.5: exactly the coupled step at lr 0.05
        let coupled = scaled_step(WeightDecayMode::Coupled, 0.1, 0.5);
        assert!((coupled - (2.0 * 0.975 - 0.05 * u)).abs() < 1e-12);
        // independent, lr 0.05 (half the peak) × scale 0.5: decay follows the schedule alone
        let independent = scaled_step(WeightDecayMode::Independent, 0.05, 0.5);
        assert!((independent - (2.0 * 0.75 - 0.025 * u)).abs() < 1e-12);
    }
}
