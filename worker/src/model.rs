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
    /// The kind matrix products and attention run in: `Float`, or `BFloat16` with the fp32
    /// weights cast where they multiply ([`crate::precision`]).
    pub compute: Kind,
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
            compute: Kind::Float,
        }
    }

    /// Runs the matrix products and attention in `kind` (`Float` or `BFloat16`).
    pub fn with_compute(mut self, kind: Kind) -> Self {
        self.compute = kind;
        self
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

/// The kind a reduction (LayerNorm, softmax, the loss) runs in: fp32 for bf16 inputs, else the
/// input's own (fp32, or f64 in the parity test).
pub fn reduce_kind(k: Kind) -> Kind {
    if k == Kind::BFloat16 {
        Kind::Float
    } else {
        k
    }
}

/// LayerNorm in at least fp32 whatever `x`'s kind; its output in `compute` when that is bf16 (the
/// kind the next product takes).
fn layer_norm(x: &Tensor, w: &Tensor, compute: Kind) -> Tensor {
    let y = x.to_kind(reduce_kind(x.kind())).layer_norm(
        [*w.size().last().unwrap_or(&1)],
        Some(w),
        None::<&Tensor>,
        LN_EPS,
        true,
    );
    if compute == Kind::BFloat16 {
        y.to_kind(compute)
    } else {
        y
    }
}

/// `x · wᵀ` in `x`'s kind, the fp32 weight cast to it first when they differ (bf16 passes: the
/// cast is differentiable, so the gradient reaches the fp32 weight).
fn linear(x: &Tensor, w: &Tensor) -> Tensor {
    if w.kind() == x.kind() {
        x.linear(w, None::<&Tensor>)
    } else {
        x.linear(&w.to_kind(x.kind()), None::<&Tensor>)
    }
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
    compute: Kind,
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
            compute: cfg.compute,
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
        let qkv = linear(x, &self.wqkv);
        let parts = qkv.split(d, -1);
        let (mut q, mut k, v) = (heads(&parts[0]), heads(&parts[1]), heads(&parts[2]));
        if let (Some(qw), Some(kw)) = (&self.q_ln, &self.k_ln) {
            q = layer_norm(&q, qw, self.compute);
            k = layer_norm(&k, kw, self.compute);
        }
        let y = attend(&q, &k, &v);
        linear(&y.transpose(1, 2).contiguous().view([b, t, d]), &self.wo)
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
        linear(&linear(x, &self.w_fc).gelu("none"), &self.w_proj)
    }
}

pub struct Block {
    compute: Kind,
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
            compute: cfg.compute,
            ln1,
            attn,
            ln2,
            mlp,
        }
    }

    /// x + attn(ln1(x)), then + mlp(ln2(·)); the residual stream `x` stays fp32 (a bf16 branch
    /// is promoted as it is added). Out of place on purpose: tch's `+=` adds in place, which
    /// would overwrite a tensor autograd saved for the backward pass.
    pub fn forward_with(&self, x: &Tensor, attend: &mut Attend) -> Tensor {
        let c = self.compute;
        let x = x + self.attn.forward_with(&layer_norm(x, &self.ln1, c), attend);
        &x + self.mlp.forward(&layer_norm(&x, &self.ln2, c))
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

    /// Logits `[B, T, vocab]` of token ids `[B, T]`, with the attention `attend`, in the
    /// configuration's compute kind (the loss takes them to fp32).
    pub fn forward_with(&self, idx: &Tensor, attend: &mut Attend) -> Tensor {
        let t = idx.size2().expect("inputs are [batch, seq_len]").1;
        let pos = Tensor::arange(t, (Kind::Int64, idx.device()));
        let mut x = Tensor::embedding(&self.tok_emb, idx, -1, false, false)
            + Tensor::embedding(&self.pos_emb, &pos, -1, false, false);
        for blk in &self.blocks {
            x = blk.forward_with(&x, attend);
        }
        let logits = linear(&layer_norm(&x, &self.ln_f, self.cfg.compute), &self.head);
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
    /// mean(log Z)² term before its coefficient (without a graph when the coefficient is 0).
    pub z: Tensor,
}

/// Cross-entropy plus z-loss of logits `[B, T, V]` against targets `[B, T]`, in fp32 for bf16
/// logits. One log-softmax serves both: log Z = x_y − log p_y per token, from two
/// gathers, instead of a second pass over the logits (a logsumexp). With `z_coef` 0 the z term is
/// only measured (no graph, nothing added to the loss).
pub fn loss(logits: &Tensor, targets: &Tensor, z_coef: f64) -> Loss {
    let v = *logits.size().last().unwrap_or(&1);
    let flat = logits.view([-1, v]);
    let y = targets.reshape([-1]);
    let k = reduce_kind(flat.kind());
    let logp = flat.log_softmax(-1, k);
    let ce = logp.nll_loss(&y);
    let z_term = |x: &Tensor, logp: &Tensor| {
        let y = y.view([-1, 1]);
        let logz = x.gather(1, &y, false).to_kind(k) - logp.gather(1, &y, false);
        logz.square().mean(k)
    };
    if z_coef > 0.0 {
        let z = z_term(&flat, &logp);
        Loss {
            total: &ce + &z * z_coef,
            ce,
            z,
        }
    } else {
        let z = tch::no_grad(|| z_term(&flat.detach(), &logp.detach()));
        Loss {
            total: ce.shallow_clone(),
            ce,
            z,
        }
    }
}
