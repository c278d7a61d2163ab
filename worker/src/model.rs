//! A GPT-style decoder in the nanoGPT mould (karpathy/nanoGPT `model.py`): learned positions,
//! pre-LayerNorm blocks, no biases anywhere, GELU MLP, untied output head. Each part —
//! [`CausalSelfAttention`], [`Mlp`], [`Block`], [`Gpt`] — has its own forward. Options from
//! Wortsman et al.: qk-layernorm (LayerNorm on queries and keys, per head over the head dimension,
//! before the logits) and μParam (simple) (fan-in initialisation and the output logits scaled by
//! base width / width).
//!
//! Training uses the fused attention kernel ([`causal_attention`]). The forward passes also take
//! the attention as an argument (`forward_with`), so a probe can run the same model with explicit
//! attention and measure its logits (the stability workload's `probes`) without the model knowing.

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

/// How the attention mixes the values: `(q, k, v)`, each `[B, H, T, head_dim]`, to `[B, H, T,
/// head_dim]`, causally.
pub type Attend<'a> = dyn FnMut(&Tensor, &Tensor, &Tensor) -> Tensor + 'a;

/// Causal scaled-dot-product attention with the fused kernel (the training path).
pub fn causal_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    Tensor::scaled_dot_product_attention(q, k, v, None::<&Tensor>, 0.0, true, None, false)
}

fn layer_norm(x: &Tensor, w: &Tensor) -> Tensor {
    x.layer_norm(
        [*w.size().last().unwrap_or(&1)],
        Some(w),
        None::<&Tensor>,
        LN_EPS,
        true,
    )
}

/// The initialisations of [`Gpt::new`]: N(0, 0.02) everywhere, N(0, 0.02/√(2L)) for the
/// projections into the residual stream; with μParam every matrix is N(0, 1/fan_in) instead.
struct Inits {
    mup: bool,
    std: f64,
    resid_std: f64,
}

impl Inits {
    fn normal(s: f64) -> Init {
        Init::Randn {
            mean: 0.0,
            stdev: s,
        }
    }

    fn matrix(&self, fan_in: i64, default: f64) -> Init {
        Inits::normal(if self.mup {
            1.0 / (fan_in as f64).sqrt()
        } else {
            default
        })
    }
}

pub struct CausalSelfAttention {
    wqkv: Tensor,
    wo: Tensor,
    q_ln: Option<Tensor>,
    k_ln: Option<Tensor>,
    heads: i64,
}

impl CausalSelfAttention {
    fn new(p: &nn::Path, cfg: &GptConfig, init: &Inits) -> Self {
        let d = cfg.d_model;
        // Creation order is initialisation order (the RNG's draws): keep it.
        let wqkv = p.var("wqkv", &[3 * d, d], init.matrix(d, init.std));
        let wo = p.var("wo", &[d, d], init.matrix(d, init.resid_std));
        let ln = |name: &str| {
            cfg.qk_layernorm
                .then(|| p.var(name, &[cfg.head_dim()], Init::Const(1.0)))
        };
        let (q_ln, k_ln) = (ln("q_ln"), ln("k_ln"));
        CausalSelfAttention {
            wqkv,
            wo,
            q_ln,
            k_ln,
            heads: cfg.heads,
        }
    }

    /// `x` `[B, T, d]` → `[B, T, d]`: queries, keys and values per head (qk-layernorm applied),
    /// mixed by `attend`, heads merged and projected.
    pub fn forward_with(&self, x: &Tensor, attend: &mut Attend) -> Tensor {
        let (b, t, d) = x
            .size3()
            .expect("activations are [batch, seq_len, d_model]");
        let (h, hd) = (self.heads, d / self.heads);
        let heads = |z: &Tensor| z.view([b, t, h, hd]).transpose(1, 2);
        let qkv = x.linear(&self.wqkv, None::<&Tensor>);
        let parts = qkv.split(d, -1);
        let (mut q, mut k, v) = (heads(&parts[0]), heads(&parts[1]), heads(&parts[2]));
        if let (Some(qw), Some(kw)) = (&self.q_ln, &self.k_ln) {
            q = layer_norm(&q, qw);
            k = layer_norm(&k, kw);
        }
        let y = attend(&q, &k, &v);
        y.transpose(1, 2)
            .contiguous()
            .view([b, t, d])
            .linear(&self.wo, None::<&Tensor>)
    }
}

pub struct Mlp {
    w_fc: Tensor,
    w_proj: Tensor,
}

impl Mlp {
    fn new(p: &nn::Path, cfg: &GptConfig, init: &Inits) -> Self {
        let (d, hidden) = (cfg.d_model, cfg.mlp_ratio * cfg.d_model);
        let w_fc = p.var("w_fc", &[hidden, d], init.matrix(d, init.std));
        let w_proj = p.var("w_proj", &[d, hidden], init.matrix(hidden, init.resid_std));
        Mlp { w_fc, w_proj }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.linear(&self.w_fc, None::<&Tensor>)
            .gelu("none")
            .linear(&self.w_proj, None::<&Tensor>)
    }
}

pub struct Block {
    ln1: Tensor,
    attn: CausalSelfAttention,
    ln2: Tensor,
    mlp: Mlp,
}

impl Block {
    fn new(p: &nn::Path, cfg: &GptConfig, init: &Inits) -> Self {
        let d = cfg.d_model;
        let ln1 = p.var("ln1", &[d], Init::Const(1.0));
        let attn = CausalSelfAttention::new(p, cfg, init);
        let ln2 = p.var("ln2", &[d], Init::Const(1.0));
        let mlp = Mlp::new(p, cfg, init);
        Block {
            ln1,
            attn,
            ln2,
            mlp,
        }
    }

    /// x + attn(ln1(x)), then + mlp(ln2(·)). Out of place on purpose: tch's `+=` adds in place,
    /// which would overwrite a tensor autograd saved for the backward pass.
    pub fn forward_with(&self, x: &Tensor, attend: &mut Attend) -> Tensor {
        let x = x + self.attn.forward_with(&layer_norm(x, &self.ln1), attend);
        &x + self.mlp.forward(&layer_norm(&x, &self.ln2))
    }
}

pub struct Gpt {
    pub cfg: GptConfig,
    tok_emb: Tensor,
    pos_emb: Tensor,
    blocks: Vec<Block>,
    ln_f: Tensor,
    head: Tensor,
}

impl Gpt {
    /// Creates the parameters under `vs` (`blocks.{i}.wqkv`, `tok_emb`, ...) with nanoGPT's
    /// initialisation (embeddings N(0, 0.02) with or without μParam; LayerNorm gains at 1).
    pub fn new(vs: &nn::Path, cfg: GptConfig) -> Self {
        let std = 0.02;
        let init = Inits {
            mup: cfg.mup_width_mult.is_some(),
            std,
            resid_std: std / ((2 * cfg.layers) as f64).sqrt(),
        };
        let d = cfg.d_model;
        let blocks = (0..cfg.layers)
            .map(|i| Block::new(&(vs / "blocks" / i), &cfg, &init))
            .collect();
        let tok_emb = vs.var("tok_emb", &[cfg.vocab, d], Inits::normal(std));
        let pos_emb = vs.var("pos_emb", &[cfg.seq_len, d], Inits::normal(std));
        let ln_f = vs.var("ln_f", &[d], Init::Const(1.0));
        let head = vs.var("head", &[cfg.vocab, d], init.matrix(d, std));
        Gpt {
            cfg,
            tok_emb,
            pos_emb,
            blocks,
            ln_f,
            head,
        }
    }

    /// Logits `[B, T, vocab]` of token ids `[B, T]`, with the attention `attend`.
    pub fn forward_with(&self, idx: &Tensor, attend: &mut Attend) -> Tensor {
        let t = idx.size2().expect("inputs are [batch, seq_len]").1;
        let pos = Tensor::arange(t, (Kind::Int64, idx.device()));
        let mut x = Tensor::embedding(&self.tok_emb, idx, -1, false, false)
            + Tensor::embedding(&self.pos_emb, &pos, -1, false, false);
        for blk in &self.blocks {
            x = blk.forward_with(&x, attend);
        }
        let logits = layer_norm(&x, &self.ln_f).linear(&self.head, None::<&Tensor>);
        match self.cfg.mup_width_mult {
            Some(mult) => logits * mult,
            None => logits,
        }
    }

    /// Logits with the fused attention kernel (the training path).
    pub fn forward(&self, idx: &Tensor) -> Tensor {
        self.forward_with(idx, &mut causal_attention)
    }
}

/// The loss parts of one forward pass.
pub struct Loss {
    /// What is minimised: `ce + z_coef · z`.
    pub total: Tensor,
    pub ce: Tensor,
    /// mean(log Z)² term before its coefficient.
    pub z: Tensor,
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
