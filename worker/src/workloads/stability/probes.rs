//! The stability probes: the model run on a fixed probe batch with explicit attention, so the
//! signals of the two instabilities can be measured — the attention logits of each layer
//! (attention-logit growth) and log Z of the output logits (output-logit divergence). The model
//! itself is unchanged: the probe only passes [`Gpt::forward_with`] a different attention.

use tch::{Kind, Tensor};

use orrery_core::workloads::stability as s;

use crate::model::Gpt;
use crate::train::read_back;
use crate::train::reporter::Reporter;

/// One layer's attention on a probe batch (over every head and every causal query-key pair).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttnStats {
    /// The largest pre-softmax logit q·k/√d_h.
    pub max_logit: f64,
    /// The mean pre-softmax logit.
    pub mean_logit: f64,
    /// Mean over queries and heads of the attention distribution's entropy (nats).
    pub entropy: f64,
}

/// Statistics of one probe forward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeStats {
    pub attn: Vec<AttnStats>,
    /// Mean and standard deviation over tokens of log Z = logsumexp(output logits).
    pub logz_mean: f64,
    pub logz_std: f64,
    /// Root mean square of the output logits.
    pub logit_rms: f64,
}

/// One layer's [`AttnStats`] as 0-dimensional tensors on the device, read back with the rest of
/// the probe in one transfer.
struct AttnTensors {
    max_logit: Tensor,
    mean_logit: Tensor,
    entropy: Tensor,
}

/// Causal attention written out — softmax(q·kᵀ/√d_h, masked) · v, the maths of the fused kernel —
/// with the statistics of its logits. `mask`: true above the diagonal.
fn explicit_attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor) -> (Tensor, AttnTensors) {
    let (b, h, t, hd) = q
        .size4()
        .expect("queries are [batch, heads, seq_len, head_dim]");
    // Measured in at least fp32 whatever the passes' precision.
    let kind = crate::model::reduce_kind(q.kind());
    let (q, k) = (q.to_kind(kind), k.to_kind(kind));
    let att = q.matmul(&k.transpose(-2, -1)) * (1.0 / (hd as f64).sqrt());
    let pairs = (b * h * t * (t + 1) / 2) as f64;
    let mean_logit = att.masked_fill(mask, 0.0).sum(kind) / pairs;
    let att = att.masked_fill(mask, f64::NEG_INFINITY);
    let logp = att.log_softmax(-1, att.kind());
    let p = logp.exp();
    // Masked entries have p = 0 and log p = −∞: zero them before the product.
    let entropy = -(&p * logp.masked_fill(mask, 0.0))
        .sum_dim_intlist(-1, false, att.kind())
        .mean(kind);
    let stats = AttnTensors {
        max_logit: att.max(),
        mean_logit,
        entropy,
    };
    (p.matmul(&v.to_kind(kind)).to_kind(v.kind()), stats)
}

fn forward_explicit_tensors(model: &Gpt, idx: &Tensor) -> (Tensor, Vec<AttnTensors>) {
    let t = idx.size2().expect("inputs are [batch, seq_len]").1;
    let mask = Tensor::ones([t, t], (Kind::Bool, idx.device())).triu(1);
    let mut stats = Vec::new();
    let logits = model.forward_with(idx, &mut |q, k, v| {
        let (y, s) = explicit_attention(q, k, v, &mask);
        stats.push(s);
        y
    });
    (logits, stats)
}

/// Each layer's three statistics, flattened in the order [`attn_stats`] reads them back.
fn flat(stats: &[AttnTensors]) -> Vec<Tensor> {
    stats
        .iter()
        .flat_map(|s| [&s.max_logit, &s.mean_logit, &s.entropy])
        .map(|t| t.shallow_clone())
        .collect()
}

/// The layers' statistics from the values [`flat`]'s tensors were read back as.
fn attn_stats(values: &[Vec<f64>]) -> Vec<AttnStats> {
    values
        .chunks(3)
        .map(|c| AttnStats {
            max_logit: c[0][0],
            mean_logit: c[1][0],
            entropy: c[2][0],
        })
        .collect()
}

/// Logits with explicit attention, plus each layer's attention statistics.
pub fn forward_explicit(model: &Gpt, idx: &Tensor) -> (Tensor, Vec<AttnStats>) {
    let (logits, stats) = forward_explicit_tensors(model, idx);
    let values = read_back(&flat(&stats).iter().collect::<Vec<_>>());
    (logits, attn_stats(&values))
}

/// Statistics on a probe batch, without gradients, read back in one transfer.
pub fn probe(model: &Gpt, idx: &Tensor) -> ProbeStats {
    tch::no_grad(|| {
        let (logits, attn) = forward_explicit_tensors(model, idx);
        let logits = logits.to_kind(crate::model::reduce_kind(logits.kind()));
        let logz = logits.logsumexp([-1], false);
        let mut all = flat(&attn);
        all.push(logz.mean(logz.kind()));
        all.push(logz.std(false));
        all.push(logits.square().mean(logits.kind()).sqrt());
        let v = read_back(&all.iter().collect::<Vec<_>>());
        let n = v.len();
        ProbeStats {
            attn: attn_stats(&v[..n - 3]),
            logz_mean: v[n - 3][0],
            logz_std: v[n - 2][0],
            logit_rms: v[n - 1][0],
        }
    })
}

pub fn log(rep: &Reporter, stats: &ProbeStats, step: i64) {
    for (i, a) in stats.attn.iter().enumerate() {
        rep.log(&s::attn_max_logit(i), step, a.max_logit);
        rep.log(&s::attn_mean_logit(i), step, a.mean_logit);
        rep.log(&s::attn_entropy(i), step, a.entropy);
    }
    rep.log(s::LOGZ_MEAN, step, stats.logz_mean);
    rep.log(s::LOGZ_STD, step, stats.logz_std);
    rep.log(s::LOGIT_RMS, step, stats.logit_rms);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GptConfig;
    use tch::{nn, Device};

    fn tiny() -> (nn::VarStore, Gpt) {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = GptConfig {
            vocab: 16,
            layers: 2,
            d_model: 8,
            heads: 2,
            seq_len: 6,
            mlp_ratio: 2,
            qk_layernorm: false,
            mup_width_mult: None,
            compute: Kind::Float,
        };
        let model = Gpt::new(&vs.root(), cfg);
        (vs, model)
    }

    #[test]
    fn probe_statistics_of_uniform_attention() {
        let (vs, model) = tiny();
        // q = k = 0: every logit is 0, so each query attends uniformly to its causal prefix and
        // row t has entropy ln(t + 1).
        tch::no_grad(|| {
            for (name, t) in vs.variables() {
                if name.ends_with(".wqkv") {
                    let _ = t.narrow(0, 0, 2 * model.cfg.d_model).zero_();
                }
            }
        });
        let idx = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]).view([2, 6]);
        let stats = probe(&model, &idx);
        assert_eq!(stats.attn.len(), 2);
        let want = (1..=6).map(|n| (n as f64).ln()).sum::<f64>() / 6.0;
        for a in &stats.attn {
            assert_eq!(a.max_logit, 0.0);
            assert_eq!(a.mean_logit, 0.0);
            assert!((a.entropy - want).abs() < 1e-5, "{} vs {want}", a.entropy);
        }
        assert!(stats.logit_rms > 0.0 && stats.logz_std >= 0.0);
    }

    #[test]
    fn probe_statistics_are_bounded() {
        let (_vs, model) = tiny();
        let idx = Tensor::from_slice(&[3i64, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8]).view([2, 6]);
        let stats = probe(&model, &idx);
        assert_eq!(stats.attn.len(), 2);
        for a in &stats.attn {
            assert!(a.mean_logit <= a.max_logit);
            assert!(a.entropy >= 0.0 && a.entropy <= (6f64).ln() + 1e-9);
        }
        // log Z of a near-uniform initial model is close to ln(vocab).
        assert!(
            (stats.logz_mean - (16f64).ln()).abs() < 0.1,
            "{}",
            stats.logz_mean
        );
    }

    #[test]
    fn explicit_and_fused_attention_agree() {
        let (_vs, model) = tiny();
        let idx = Tensor::from_slice(&[3i64, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8]).view([2, 6]);
        let fused = model.forward(&idx);
        let (explicit, _) = forward_explicit(&model, &idx);
        let diff = (fused - explicit).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{diff}");
    }
}
