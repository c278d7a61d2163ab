//! Metric names: slash paths such as `train/loss`, `eval/loss/arithmetic`, `attn/max_logit/L0`.
//! The names every workload's worker reports are here; each workload's own are in its module
//! (`crate::workloads::<name>`), listed by [`crate::workloads::Workload::metrics`].

use crate::workloads::MetricDoc;

/// Longest accepted metric name, in bytes.
pub const MAX_NAME_LEN: usize = 200;

pub const TRAIN_LOSS: &str = "train/loss";
pub const EVAL_LOSS: &str = "eval/loss";
pub const LR: &str = "lr";
pub const GRAD_NORM: &str = "grad/norm";
pub const TOKENS_SEEN: &str = "tokens_seen";
/// Written once per attempt, at the step the attempt started from (0 for a fresh start).
pub const RESUMED_FROM: &str = "sys/resumed_from_step";

/// Per-group evaluation loss.
pub fn eval_group_loss(group: &str) -> String {
    format!("eval/loss/{group}")
}

/// The metrics the shared training loop reports for every workload.
pub const SHARED: &[MetricDoc] = &[
    MetricDoc {
        name: TRAIN_LOSS,
        doc: "the loss minimised on the step's batch (every log_every steps)",
    },
    MetricDoc {
        name: EVAL_LOSS,
        doc: "mean over data groups of the validation cross-entropy (step 0, every eval_every steps and the last)",
    },
    MetricDoc {
        name: "eval/loss/{group}",
        doc: "one group's validation cross-entropy",
    },
    MetricDoc {
        name: LR,
        doc: "the step's learning rate (warm-up, then cosine decay)",
    },
    MetricDoc {
        name: GRAD_NORM,
        doc: "global gradient norm before clipping",
    },
    MetricDoc {
        name: TOKENS_SEEN,
        doc: "training tokens so far",
    },
    MetricDoc {
        name: RESUMED_FROM,
        doc: "once per attempt: the step it started from (0 for a fresh start)",
    },
];

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
        assert!(check_name("attn/max_logit/L3").is_ok());
        assert!(check_name("mix/p/group-1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a//b").is_err());
        assert!(check_name("/a").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name(&"x".repeat(201)).is_err());
    }

    #[test]
    fn documented_names_are_valid() {
        let all = crate::workloads::Workload::ALL
            .iter()
            .flat_map(|w| w.metrics())
            .chain(SHARED);
        for m in all {
            // Placeholders stand for a segment: `{layer}` → `x`.
            let concrete: String = m
                .name
                .split('/')
                .map(|seg| if seg.contains('{') { "x" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            check_name(&concrete).unwrap();
        }
    }
}
