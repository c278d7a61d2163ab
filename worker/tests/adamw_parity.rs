//! The worker's AdamW and gradient clipping against PyTorch's (`torch.optim.AdamW`, default foreach
//! path, and `torch.nn.utils.clip_grad_norm_`), run by `adamw_reference.py` with the project's
//! `.venv` python on the same initial weights and the same gradient sequence: after several steps
//! at a changing learning rate, with decayed matrices and undecayed gains and one step clipped,
//! the weights and both moments agree to ≤ 1e-10 relative error (f64).

mod common;

use tch::{Device, Kind, Tensor};

use orrery_core::spec::{TrainingSpec, WeightDecayMode};
use orrery_worker::train::optim::{AdamW, GradNorms};

#[test]
fn adamw_and_clipping_match_pytorch() {
    tch::manual_seed(11);
    let opts = (Kind::Double, Device::Cpu);
    let shapes: [(&str, &[i64]); 3] = [("a.w", &[6, 4]), ("b.gain", &[4]), ("c.w", &[3, 5])];
    let named: Vec<(String, Tensor)> = shapes
        .iter()
        .map(|(n, s)| (n.to_string(), Tensor::randn(*s, opts)))
        .collect();
    let spec = TrainingSpec {
        lr: 0.05,
        weight_decay: 0.1,
        weight_decay_mode: WeightDecayMode::Coupled,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        ..TrainingSpec::default()
    };
    let mut out: Vec<(String, Tensor)> = named
        .iter()
        .map(|(n, t)| (format!("init.{n}"), t.copy()))
        .collect();
    let mut opt = AdamW::new(named, &spec);
    let lrs = [0.01, 0.05, 0.03, 0.02, 0.005];
    let max_norm = 1.0;
    for (step, lr) in lrs.iter().enumerate() {
        // Step 2's gradients are large, so clipping acts there; the others stay below max_norm.
        let scale = if step == 2 { 50.0 } else { 0.05 };
        let mut grads: Vec<Tensor> = opt
            .params
            .iter()
            .map(|p| p.tensor.randn_like() * scale)
            .collect();
        for (p, g) in opt.params.iter().zip(&grads) {
            out.push((format!("grad.{step}.{}", p.name), g.copy()));
        }
        let norms = GradNorms::of(&grads);
        norms.clip(&mut grads, max_norm);
        out.push((format!("norm.{step}"), norms.norm.copy()));
        opt.step(&grads, *lr);
    }
    for p in &opt.params {
        out.push((format!("final.{}", p.name), p.tensor.copy()));
        out.push((format!("m.{}", p.name), p.m.copy()));
        out.push((format!("v.{}", p.name), p.v.copy()));
    }
    out.push(("lrs".into(), Tensor::from_slice(&lrs)));
    out.push((
        "cfg".into(),
        Tensor::from_slice(&[0.9, 0.95, 1e-8, 0.1, max_norm]),
    ));
    common::check_with_pytorch("adamw_reference.py", &out);
}
