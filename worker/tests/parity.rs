//! The model's forward loss and gradients match an independent PyTorch implementation
//! (`parity_reference.py`, run with the project's `.venv` python) on the same weights and batch, to
//! ≤ 1e-5 relative error, for both the fused (training) and explicit (probe) attention paths.

mod common;

use tch::{nn, Device, Kind, Tensor};

use orrery_worker::model::{loss, Gpt, GptConfig};
use orrery_worker::workloads::stability::probes::forward_explicit;

#[test]
fn forward_and_gradients_match_pytorch() {
    tch::manual_seed(7);
    let cfg = GptConfig {
        vocab: 256,
        layers: 2,
        d_model: 32,
        heads: 4,
        seq_len: 16,
        mlp_ratio: 4,
        qk_layernorm: true,
        // μParam's output multiplier (not 1, so a forgotten multiplier on either side shows).
        mup_width_mult: Some(0.5),
        compute: Kind::Float,
    };
    let z_coef = 1e-2; // large enough that a z-loss mistake shows
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = Gpt::new(&vs.root(), cfg);
    vs.double();
    // Perturb the LayerNorm gains away from 1 so they are tested as parameters too.
    tch::no_grad(|| {
        for (_, mut t) in vs.variables() {
            let noise = t.randn_like() * 0.1;
            t += noise;
        }
    });
    let inputs = Tensor::randint(256, [3, 16], (Kind::Int64, Device::Cpu));
    let targets = Tensor::randint(256, [3, 16], (Kind::Int64, Device::Cpu));

    let mut named: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(k, v)| (format!("w.{k}"), v.detach()))
        .collect();
    named.push(("inputs".into(), inputs.shallow_clone()));
    named.push(("targets".into(), targets.shallow_clone()));
    for (k, v) in [
        ("layers", 2.0),
        ("d_model", 32.0),
        ("heads", 4.0),
        ("qk_layernorm", 1.0),
        ("z_loss", z_coef),
        ("logit_mult", 0.5),
    ] {
        named.push((format!("cfg.{k}"), Tensor::from(v)));
    }
    for (tag, fused) in [("explicit", false), ("fused", true)] {
        for (_, mut v) in vs.variables() {
            v.zero_grad();
        }
        let logits = if fused {
            model.forward(&inputs)
        } else {
            forward_explicit(&model, &inputs).0
        };
        let l = loss(&logits, &targets, z_coef);
        l.total.backward();
        named.push((format!("{tag}.loss"), l.total.detach()));
        for (k, v) in vs.variables() {
            named.push((format!("{tag}.grad.{k}"), v.grad().detach().copy()));
        }
    }
    common::check_with_pytorch("parity_reference.py", &named);
}
