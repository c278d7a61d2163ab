//! bf16 passes (`training.precision: bf16`, explicit casts over fp32 master weights; see
//! `src/precision.rs`): on the same weights and batch the loss and the gradients stay close to
//! the fp32 passes', the gradients arrive in fp32 on the fp32 weights, and the products really
//! run in bf16 (the logits come out bf16). Run on the CPU, whose libtorch has bf16 kernels too.

use tch::{nn, Device, Kind, Tensor};

use orrery_worker::model::{loss, Gpt, GptConfig};

fn cosine(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (
        a.to_kind(Kind::Double).flatten(0, -1),
        b.to_kind(Kind::Double).flatten(0, -1),
    );
    (a.dot(&b) / (a.norm() * b.norm())).double_value(&[])
}

#[test]
fn bf16_passes_track_fp32_on_the_same_weights() {
    let cfg = GptConfig {
        vocab: 256,
        layers: 2,
        d_model: 64,
        heads: 4,
        seq_len: 32,
        mlp_ratio: 4,
        qk_layernorm: true,
        mup_width_mult: None,
        compute: Kind::Float,
    };
    tch::manual_seed(3);
    let vs = nn::VarStore::new(Device::Cpu);
    let fp32 = Gpt::new(&vs.root(), cfg);
    tch::manual_seed(3);
    let vs16 = nn::VarStore::new(Device::Cpu);
    let bf16 = Gpt::new(&vs16.root(), cfg.with_compute(Kind::BFloat16));
    let inputs = Tensor::randint(256, [4, 32], (Kind::Int64, Device::Cpu));
    let targets = Tensor::randint(256, [4, 32], (Kind::Int64, Device::Cpu));

    let logits16 = bf16.forward(&inputs);
    assert_eq!(
        logits16.kind(),
        Kind::BFloat16,
        "the head's product ran in bf16"
    );
    let (l32, l16) = (
        loss(&fp32.forward(&inputs), &targets, 1e-2),
        loss(&logits16, &targets, 1e-2),
    );
    assert_eq!(l16.total.kind(), Kind::Float, "the loss is fp32");
    let (a, b) = (l32.total.double_value(&[]), l16.total.double_value(&[]));
    assert!((a - b).abs() / a < 1e-2, "loss fp32 {a} vs bf16 {b}");

    let mut names: Vec<String> = vs.variables().into_keys().collect();
    names.sort();
    let p32: Vec<Tensor> = names
        .iter()
        .map(|n| vs.variables()[n].shallow_clone())
        .collect();
    let p16: Vec<Tensor> = names
        .iter()
        .map(|n| vs16.variables()[n].shallow_clone())
        .collect();
    let g32 = Tensor::run_backward(&[&l32.total], &p32, false, false);
    let g16 = Tensor::run_backward(&[&l16.total], &p16, false, false);
    for ((name, a), b) in names.iter().zip(&g32).zip(&g16) {
        assert_eq!(
            b.kind(),
            Kind::Float,
            "{name}: the gradient reaches the fp32 weight"
        );
        let c = cosine(a, b);
        assert!(c > 0.99, "{name}: gradient cosine fp32 vs bf16 {c}");
    }
}
