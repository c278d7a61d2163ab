//! Metric names: slash paths such as `train/loss`, `attn/max_logit/L0`, `mix/p/arithmetic`.

/// Longest accepted metric name, in bytes.
pub const MAX_NAME_LEN: usize = 200;

pub const TRAIN_LOSS: &str = "train/loss";
pub const TRAIN_CE: &str = "train/ce";
pub const TRAIN_Z_LOSS: &str = "train/z_loss";
pub const EVAL_LOSS: &str = "eval/loss";
pub const LR: &str = "lr";
pub const GRAD_NORM: &str = "grad/norm";
pub const LOGZ_MEAN: &str = "out/logz_mean";
pub const TOKENS_SEEN: &str = "tokens_seen";
/// Written once per attempt, at the step the attempt started from (0 for a fresh start).
pub const RESUMED_FROM: &str = "sys/resumed_from_step";

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

/// Standard deviation over tokens of log Z.
pub const LOGZ_STD: &str = "out/logz_std";
/// Root mean square of the output logits.
pub const LOGIT_RMS: &str = "out/logit_rms";
/// Global gradient RMS divided by AdamW's ε: updates collapse as it nears 1.
pub const GRAD_RMS_OVER_EPS: &str = "grad/rms_over_eps";

/// RMS of a parameter group's values, gradients or updates: `rms/param/L0`, `rms/grad/emb`, ...
pub fn rms(kind: &str, group: &str) -> String {
    format!("rms/{kind}/{group}")
}

/// Per-group evaluation loss.
pub fn eval_group_loss(group: &str) -> String {
    format!("eval/loss/{group}")
}

/// Checks a metric name: 1..=200 bytes of `/`-separated, non-empty segments made of ASCII letters,
/// digits and `_ - . :`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "metric names are 1 to {MAX_NAME_LEN} bytes long (got {})",
            name.len()
        ));
    }
    for seg in name.split('/') {
        if seg.is_empty() {
            return Err(format!(
                "metric name \"{name}\" has an empty segment; use paths like train/loss"
            ));
        }
        if let Some(bad) = seg
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
        {
            return Err(format!(
                "metric name \"{name}\" contains '{bad}'; use letters, digits, _ - . : and /"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("train/loss").is_ok());
        assert!(check_name(&attn_max_logit(3)).is_ok());
        assert!(check_name("mix/p/group-1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a//b").is_err());
        assert!(check_name("/a").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(201)).is_err());
    }
}
