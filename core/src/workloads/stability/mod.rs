//! The `stability` workload: small-scale proxies for Transformer training instabilities (Wortsman
//! et al., arXiv 2309.14322; the method as implemented: `docs/workloads/stability.md`). A trial
//! trains the decoder at one learning rate with the spec's interventions (qk-layernorm, z-loss,
//! μParam; warm-up and independent weight decay are `training` fields) and records the signals of
//! the two instabilities — attention-logit growth and output-logit divergence — beside the losses.
//! Its analysis is the LR sensitivity of each configuration of an LR sweep ([`analysis`]).

pub mod analysis;

use serde::{Deserialize, Serialize};

use crate::fields::{Ty, NUM};
use crate::workloads::{MetricDoc, WorkloadKind};

pub use analysis::{lr_runs, lr_sensitivity, max_attn_logit, LrCurvePoint, LrRun, LrSensitivity};

pub struct Stability;

crate::declare_fields! {
    /// The `params` of a stability trial.
    pub struct StabilityParams {
        qk_layernorm: bool = false, Ty::Bool,
            "LayerNorm on queries and keys (per head, over the head dimension) before the attention logits";
        z_loss: f64 = 0.0, NUM.ge(0.0).le(1.0),
            "z-loss coefficient c: loss = CE + c·mean(log Z)², log Z the logsumexp of the output logits; 0 turns it off";
        mup_simple: bool = false, Ty::Bool,
            "μParam (simple): fan-in initialisation; hidden matrices' LR and the output logits scaled by 64/d_model";
    }
}

/// The width at which μParam (simple) leaves learning rates and logits unscaled (the tiny preset).
pub const MUP_BASE_WIDTH: u32 = 64;

/// Cross-entropy part of the training loss.
pub const TRAIN_CE: &str = "train/ce";
/// mean(log Z)² of the training batch, before its coefficient.
pub const TRAIN_Z_LOSS: &str = "train/z_loss";
/// Mean over the probe batch's tokens of log Z = logsumexp(output logits).
pub const LOGZ_MEAN: &str = "out/logz_mean";
/// Standard deviation over tokens of log Z.
pub const LOGZ_STD: &str = "out/logz_std";
/// Root mean square of the output logits.
pub const LOGIT_RMS: &str = "out/logit_rms";
/// Global gradient RMS divided by AdamW's ε: updates collapse as it nears 1.
pub const GRAD_RMS_OVER_EPS: &str = "grad/rms_over_eps";
/// Prefix of the per-layer maximum attention logits.
pub const ATTN_MAX_LOGIT_PREFIX: &str = "attn/max_logit/L";

/// Per-layer maximum attention logit.
pub fn attn_max_logit(layer: usize) -> String {
    format!("{ATTN_MAX_LOGIT_PREFIX}{layer}")
}

/// Per-layer mean attention logit.
pub fn attn_mean_logit(layer: usize) -> String {
    format!("attn/mean_logit/L{layer}")
}

/// Per-layer mean attention entropy (nats).
pub fn attn_entropy(layer: usize) -> String {
    format!("attn/entropy/L{layer}")
}

/// RMS of a parameter group's values, gradients or updates: `rms/param/L0`, `rms/grad/emb`, ...
pub fn rms(kind: &str, group: &str) -> String {
    format!("rms/{kind}/{group}")
}

const METRICS: &[MetricDoc] = &[
    MetricDoc { name: TRAIN_CE, doc: "cross-entropy part of the training loss" },
    MetricDoc { name: TRAIN_Z_LOSS, doc: "mean(log Z)² of the training batch, before its coefficient" },
    MetricDoc { name: "attn/max_logit/L{layer}", doc: "largest pre-softmax attention logit q·k/√d_h on the probe batch (every head, every causal pair)" },
    MetricDoc { name: "attn/mean_logit/L{layer}", doc: "mean pre-softmax attention logit on the probe batch" },
    MetricDoc { name: "attn/entropy/L{layer}", doc: "mean entropy of the attention distributions on the probe batch (nats)" },
    MetricDoc { name: LOGZ_MEAN, doc: "mean over the probe batch's tokens of log Z = logsumexp(output logits)" },
    MetricDoc { name: LOGZ_STD, doc: "standard deviation over tokens of log Z" },
    MetricDoc { name: LOGIT_RMS, doc: "root mean square of the output logits on the probe batch" },
    MetricDoc { name: "rms/param/{group}", doc: "RMS of a parameter group's values (group: L{i} for block i, emb, head)" },
    MetricDoc { name: "rms/grad/{group}", doc: "RMS of its gradients before clipping" },
    MetricDoc { name: "rms/update/{group}", doc: "RMS of the step's change to its values (decay included)" },
    MetricDoc { name: GRAD_RMS_OVER_EPS, doc: "global gradient RMS over AdamW's ε (updates collapse as it nears 1)" },
];

/// The stability analysis: LR sensitivity per configuration of an LR sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StabilityAnalysis {
    /// One entry per configuration (every swept value but the LR and the seed) that ran at two
    /// or more learning rates.
    pub lr_sensitivity: Vec<LrSensitivity>,
}

impl WorkloadKind for Stability {
    const NAME: &'static str = "stability";
    const ABOUT: &'static str = "trains the decoder at one learning rate with qk-layernorm, z-loss or μParam and records attention-logit growth and log Z (Wortsman et al. 2023)";
    type Params = StabilityParams;
    type Analysis = StabilityAnalysis;

    fn metrics() -> &'static [MetricDoc] {
        METRICS
    }

    fn analyse(board: &crate::dto::Leaderboard, _: &super::Histories) -> StabilityAnalysis {
        StabilityAnalysis {
            lr_sensitivity: lr_sensitivity(&lr_runs(board)),
        }
    }
}
