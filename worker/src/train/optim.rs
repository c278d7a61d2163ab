//! AdamW with the two weight-decay forms Wortsman et al. distinguish (coupled, as PyTorch's AdamW;
//! independent of the LR's size). Written out rather than taken from `tch::nn::AdamW` because tch
//! couples decay to the learning rate and hides the moments, which checkpoints and the per-group
//! RMS metrics need.

use tch::Tensor;

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

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.tensor.zero_grad();
        }
    }

    /// Σg² of each parameter's gradient (0 where it has none), in `params` order. This reads each
    /// sum back to the host: one device sync per parameter per step (the worker-performance issue
    /// replaces it with a norm kept on the device).
    pub fn grad_sumsq(&self) -> Vec<f64> {
        tch::no_grad(|| {
            self.params
                .iter()
                .map(|p| {
                    let g = p.tensor.grad();
                    if g.defined() {
                        g.square().sum(g.kind()).double_value(&[])
                    } else {
                        0.0
                    }
                })
                .collect()
        })
    }

    /// Σθ² of each parameter, in `params` order.
    pub fn param_sumsq(&self) -> Vec<f64> {
        tch::no_grad(|| {
            self.params
                .iter()
                .map(|p| p.tensor.square().sum(p.tensor.kind()).double_value(&[]))
                .collect()
        })
    }

    /// Scales gradients so their global norm is at most `max_norm`; returns the norm before.
    /// `grad_sumsq`: this step's [`AdamW::grad_sumsq`], which the caller also logs from, so the
    /// gradients are reduced once per step.
    pub fn clip_grad_norm(&mut self, grad_sumsq: &[f64], max_norm: f64) -> f64 {
        let norm = grad_sumsq.iter().sum::<f64>().sqrt();
        if max_norm > 0.0 && norm.is_finite() && norm > max_norm {
            let scale = max_norm / (norm + 1e-6);
            tch::no_grad(|| {
                for p in &self.params {
                    let mut g = p.tensor.grad();
                    if g.defined() {
                        g *= scale;
                    }
                }
            });
        }
        norm
    }

    /// One update at learning rate `lr` (times each parameter's `lr_scale`, η below):
    /// coupled (PyTorch AdamW): θ ← θ − η·λ·θ − η·u;
    /// independent (Wortsman et al.): θ ← θ − (η_t/η_max)·λ·θ − η·u, the schedule's multiplier only;
    /// with u = m̂ / (√v̂ + ε). With `measure`, returns each parameter's Σ(Δθ)² for this update
    /// (decay included), in `params` order, at one copy and one sync per parameter; else an empty
    /// list and no extra work.
    pub fn step(&mut self, lr: f64, measure: bool) -> Vec<f64> {
        self.t += 1;
        let bc1 = 1.0 - self.beta1.powi(self.t as i32);
        let bc2 = 1.0 - self.beta2.powi(self.t as i32);
        let schedule = lr / self.lr_max;
        let mut update_sumsq = Vec::new();
        tch::no_grad(|| {
            for p in &mut self.params {
                let g = p.tensor.grad();
                if !g.defined() {
                    if measure {
                        update_sumsq.push(0.0);
                    }
                    continue;
                }
                let before = measure.then(|| p.tensor.copy());
                p.m *= self.beta1;
                p.m += &g * (1.0 - self.beta1);
                p.v *= self.beta2;
                p.v += g.square() * (1.0 - self.beta2);
                let update = (&p.m / bc1) / ((&p.v / bc2).sqrt() + self.eps);
                let lr = lr * p.lr_scale;
                let decay = match self.mode {
                    WeightDecayMode::Coupled => lr * self.weight_decay,
                    WeightDecayMode::Independent => schedule * self.weight_decay,
                };
                if p.decay && decay != 0.0 {
                    p.tensor *= 1.0 - decay;
                }
                p.tensor -= update * lr;
                if let Some(before) = before {
                    let delta = &p.tensor - before;
                    update_sumsq.push(delta.square().sum(delta.kind()).double_value(&[]));
                }
            }
        });
        update_sumsq
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
        loss.backward();
        let measured = opt.step(lr, true);
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
