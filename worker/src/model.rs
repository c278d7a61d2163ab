//! A GPT-style decoder in the nanoGPT mould: learned positions, pre-LayerNorm blocks, no biases
//! anywhere, GELU MLP, untied output head. Options from Wortsman et al.: `qk_layernorm` (LayerNorm on
//! queries and keys, per head over the head dimension, before the logits) and `z_loss`
//! (L = CE + c·mean(log Z)², log Z by logsumexp).
//!
//! Training uses the fused attention kernel; [`Gpt::forward_explicit`] runs the same maths with explicit
//! attention logits so their statistics can be measured on a probe batch.

use tch::nn::{self, Init};
use tch::{Kind, Tensor};

use orrery_core::spec::ModelShape;

pub const LN_EPS: f64 = 1e-5;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GptConfig {
    pub vocab: i64,
    pub layers: i64,
    pub d_model: i64,
    pub heads: i64,
    pub seq_len: i64,
    pub mlp_ratio: i64,
    pub qk_layernorm: bool,
    /// μParam (simple): `Some(base_width / d_model)`, the factor on the output logits (and, in the
    /// optimizer, on the hidden matrices' learning rate); matrices get fan-in initialisation.
    pub mup_width_mult: Option<f64>,
}

impl GptConfig {
    pub fn new(shape: &ModelShape, vocab: i64, qk_layernorm: bool) -> Self {
        GptConfig {
            vocab,
            layers: shape.layers as i64,
            d_model: shape.d_model as i64,
            heads: shape.heads as i64,
            seq_len: shape.seq_len as i64,
            mlp_ratio: shape.mlp_ratio as i64,
            qk_layernorm,
            mup_width_mult: None,
        }
    }

    /// Turns on μParam (simple) relative to `base_width`.
    pub fn with_mup(mut self, base_width: u32) -> Self {
        self.mup_width_mult = Some(base_width as f64 / self.d_model as f64);
        self
    }

    pub fn head_dim(&self) -> i64 {
        self.d_model / self.heads
    }
}

struct Block {
    ln1: Tensor,
    wqkv: Tensor,
    wo: Tensor,
    q_ln: Option<Tensor>,
    k_ln: Option<Tensor>,
    ln2: Tensor,
    w_fc: Tensor,
    w_proj: Tensor,
}

pub struct Gpt {
    pub cfg: GptConfig,
    tok_emb: Tensor,
    pos_emb: Tensor,
    blocks: Vec<Block>,
    ln_f: Tensor,
    head: Tensor,
}

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

/// The loss parts of one forward pass.
pub struct Loss {
    /// What is minimised: `ce + z_coef · z`.
    pub total: Tensor,
    pub ce: Tensor,
    /// mean(log Z)² term before its coefficient.
    pub z: Tensor,
}

impl Gpt {
    /// Creates the parameters under `vs` with nanoGPT's initialisation: N(0, 0.02) everywhere,
    /// N(0, 0.02/√(2L)) for the projections into the residual stream, LayerNorm gains at 1. With
    /// μParam, every matrix is N(0, 1/fan_in) instead (embeddings keep N(0, 0.02)).
    pub fn new(vs: &nn::Path, cfg: GptConfig) -> Self {
        let d = cfg.d_model;
        let mup = cfg.mup_width_mult.is_some();
        let std = 0.02;
        let resid_std = std / ((2 * cfg.layers) as f64).sqrt();
        let normal = |s: f64| Init::Randn {
            mean: 0.0,
            stdev: s,
        };
        let matrix = |fan_in: i64, default: f64| {
            normal(if mup {
                1.0 / (fan_in as f64).sqrt()
            } else {
                default
            })
        };
        let blocks = (0..cfg.layers)
            .map(|i| {
                let p = vs / "blocks" / i;
                Block {
                    ln1: p.var("ln1", &[d], Init::Const(1.0)),
                    wqkv: p.var("wqkv", &[3 * d, d], matrix(d, std)),
                    wo: p.var("wo", &[d, d], matrix(d, resid_std)),
                    q_ln: cfg
                        .qk_layernorm
                        .then(|| p.var("q_ln", &[cfg.head_dim()], Init::Const(1.0))),
                    k_ln: cfg
                        .qk_layernorm
                        .then(|| p.var("k_ln", &[cfg.head_dim()], Init::Const(1.0))),
                    ln2: p.var("ln2", &[d], Init::Const(1.0)),
                    w_fc: p.var("w_fc", &[cfg.mlp_ratio * d, d], matrix(d, std)),
                    w_proj: p.var(
                        "w_proj",
                        &[d, cfg.mlp_ratio * d],
                        matrix(cfg.mlp_ratio * d, resid_std),
                    ),
                }
            })
            .collect();
        Gpt {
            cfg,
            tok_emb: vs.var("tok_emb", &[cfg.vocab, d], normal(std)),
            pos_emb: vs.var("pos_emb", &[cfg.seq_len, d], normal(std)),
            blocks,
            ln_f: vs.var("ln_f", &[d], Init::Const(1.0)),
            head: vs.var("head", &[cfg.vocab, d], matrix(d, std)),
        }
    }

    fn ln(x: &Tensor, w: &Tensor) -> Tensor {
        x.layer_norm(
            [*w.size().last().unwrap_or(&1)],
            Some(w),
            None::<&Tensor>,
            LN_EPS,
            true,
        )
    }

    /// Logits `[B, T, vocab]`. With `probe`, attention is computed explicitly and its per-layer
    /// statistics are returned.
    // `x = x + f(x)` on purpose: tch's `+=` adds in place, which would overwrite a tensor autograd
    // saved for the backward pass.
    #[allow(clippy::assign_op_pattern)]
    fn run(&self, idx: &Tensor, probe: bool) -> (Tensor, Vec<AttnStats>) {
        let (b, t) = idx.size2().expect("inputs are [batch, seq_len]");
        let (h, hd, d) = (self.cfg.heads, self.cfg.head_dim(), self.cfg.d_model);
        let pos = Tensor::arange(t, (Kind::Int64, idx.device()));
        let mut x = Tensor::embedding(&self.tok_emb, idx, -1, false, false)
            + Tensor::embedding(&self.pos_emb, &pos, -1, false, false);
        let mut stats = Vec::new();
        let mask = probe.then(|| Tensor::ones([t, t], (Kind::Bool, idx.device())).triu(1));
        for blk in &self.blocks {
            let hdn = Self::ln(&x, &blk.ln1);
            let qkv = hdn.linear(&blk.wqkv, None::<&Tensor>);
            let heads = |z: &Tensor| z.view([b, t, h, hd]).transpose(1, 2);
            let parts = qkv.split(d, -1);
            let (mut q, mut k, v) = (heads(&parts[0]), heads(&parts[1]), heads(&parts[2]));
            if let (Some(qw), Some(kw)) = (&blk.q_ln, &blk.k_ln) {
                q = Self::ln(&q, qw);
                k = Self::ln(&k, kw);
            }
            let y = match &mask {
                None => Tensor::scaled_dot_product_attention(
                    &q,
                    &k,
                    &v,
                    None::<&Tensor>,
                    0.0,
                    true,
                    None,
                    false,
                ),
                Some(mask) => {
                    let att = q.matmul(&k.transpose(-2, -1)) * (1.0 / (hd as f64).sqrt());
                    let pairs = (b * h * t * (t + 1) / 2) as f64;
                    let mean_logit =
                        att.masked_fill(mask, 0.0).sum(att.kind()).double_value(&[]) / pairs;
                    let att = att.masked_fill(mask, f64::NEG_INFINITY);
                    let logp = att.log_softmax(-1, att.kind());
                    let p = logp.exp();
                    // Masked entries have p = 0 and log p = −∞: zero them before the product.
                    let entropy = -(&p * logp.masked_fill(mask, 0.0))
                        .sum_dim_intlist(-1, false, att.kind())
                        .mean(att.kind())
                        .double_value(&[]);
                    stats.push(AttnStats {
                        max_logit: att.max().double_value(&[]),
                        mean_logit,
                        entropy,
                    });
                    p.matmul(&v)
                }
            };
            let y = y.transpose(1, 2).contiguous().view([b, t, d]);
            x = x + y.linear(&blk.wo, None::<&Tensor>);
            let m = Self::ln(&x, &blk.ln2)
                .linear(&blk.w_fc, None::<&Tensor>)
                .gelu("none");
            x = x + m.linear(&blk.w_proj, None::<&Tensor>);
        }
        let mut logits = Self::ln(&x, &self.ln_f).linear(&self.head, None::<&Tensor>);
        if let Some(mult) = self.cfg.mup_width_mult {
            logits = logits * mult;
        }
        (logits, stats)
    }

    /// Logits with the fused attention kernel (the training path).
    pub fn forward(&self, idx: &Tensor) -> Tensor {
        self.run(idx, false).0
    }

    /// Logits with explicit attention, plus per-layer attention statistics.
    pub fn forward_explicit(&self, idx: &Tensor) -> (Tensor, Vec<AttnStats>) {
        self.run(idx, true)
    }

    /// Statistics on a probe batch, without gradients.
    pub fn probe(&self, idx: &Tensor) -> ProbeStats {
        tch::no_grad(|| {
            let (logits, attn) = self.forward_explicit(idx);
            let logz = logits.logsumexp([-1], false);
            ProbeStats {
                attn,
                logz_mean: logz.mean(logz.kind()).double_value(&[]),
                logz_std: logz.std(false).double_value(&[]),
                logit_rms: logits.square().mean(logits.kind()).sqrt().double_value(&[]),
            }
        })
    }
}

/// Cross-entropy plus z-loss of logits `[B, T, V]` against targets `[B, T]`. The CE and the z term are
/// returned separately so both can be logged.
pub fn loss(logits: &Tensor, targets: &Tensor, z_coef: f64) -> Loss {
    let v = *logits.size().last().unwrap_or(&1);
    let flat = logits.view([-1, v]);
    let ce = flat
        .log_softmax(-1, flat.kind())
        .nll_loss(&targets.view([-1]));
    let logz = flat.logsumexp([-1], false);
    let z = logz.square().mean(logz.kind());
    let total = if z_coef > 0.0 {
        &ce + &z * z_coef
    } else {
        ce.shallow_clone()
    };
    Loss { total, ce, z }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

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
        };
        let model = Gpt::new(&vs.root(), cfg);
        (vs, model)
    }

    #[test]
    fn probe_statistics_of_uniform_attention() {
        let (_vs, model) = tiny();
        // q = k = 0: every logit is 0, so each query attends uniformly to its causal prefix and
        // row t has entropy ln(t + 1).
        tch::no_grad(|| {
            for b in &model.blocks {
                let _ = b.wqkv.narrow(0, 0, 2 * model.cfg.d_model).zero_();
            }
        });
        let idx = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]).view([2, 6]);
        let stats = model.probe(&idx);
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
        let stats = model.probe(&idx);
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
}
