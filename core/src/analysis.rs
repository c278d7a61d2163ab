//! Analyses computed from trial results. LR sensitivity follows Wortsman et al. (arXiv 2309.14322,
//! §2.2; `shared/research/algorithms.md` §4.2):
//!
//!   LRS = E_η [ min(ℓ(η), ℓ₀) − ℓ* ],   ℓ* = min_η ℓ(η),
//!
//! over the swept learning rates η, where ℓ₀ is the loss at initialisation. Diverged and NaN runs
//! count as ℓ₀ (clipped), never dropped: dropping them would bias LRS downward.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One finished trial of an LR sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct LrRun {
    /// Everything swept except the learning rate and the seed, e.g. `params.qk_layernorm=true`.
    pub config: String,
    pub lr: f64,
    /// Final loss; `None` or non-finite for a run that produced none (diverged).
    pub final_loss: Option<f64>,
    /// Loss at initialisation (ℓ₀).
    pub initial_loss: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrCurvePoint {
    pub lr: f64,
    /// Mean over seeds of min(ℓ, ℓ₀).
    pub loss: f64,
    pub seeds: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrSensitivity {
    pub config: String,
    pub lr_sensitivity: f64,
    pub best_lr: f64,
    pub best_loss: f64,
    pub initial_loss: f64,
    pub curve: Vec<LrCurvePoint>,
}

/// Clips a loss at ℓ₀, mapping NaN/inf/missing to ℓ₀.
pub fn clipped_loss(loss: Option<f64>, l0: f64) -> f64 {
    match loss {
        Some(l) if l.is_finite() => l.min(l0),
        _ => l0,
    }
}

/// LR sensitivity per configuration. Configurations with fewer than two learning rates, or no known
/// initial loss, are left out (the quantity is undefined there).
pub fn lr_sensitivity(runs: &[LrRun]) -> Vec<LrSensitivity> {
    let mut by_config: BTreeMap<&str, Vec<&LrRun>> = BTreeMap::new();
    for r in runs {
        by_config.entry(r.config.as_str()).or_default().push(r);
    }
    let mut out = Vec::new();
    for (config, runs) in by_config {
        let inits: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.initial_loss)
            .filter(|l| l.is_finite())
            .collect();
        if inits.is_empty() {
            continue;
        }
        let l0 = inits.iter().sum::<f64>() / inits.len() as f64;
        let mut by_lr: BTreeMap<u64, (f64, Vec<f64>)> = BTreeMap::new();
        for r in &runs {
            by_lr
                .entry(r.lr.to_bits())
                .or_insert((r.lr, Vec::new()))
                .1
                .push(clipped_loss(r.final_loss, l0));
        }
        let mut curve: Vec<LrCurvePoint> = by_lr
            .into_values()
            .map(|(lr, ls)| LrCurvePoint {
                lr,
                loss: ls.iter().sum::<f64>() / ls.len() as f64,
                seeds: ls.len(),
            })
            .collect();
        if curve.len() < 2 {
            continue;
        }
        curve.sort_by(|a, b| a.lr.total_cmp(&b.lr));
        let best = curve
            .iter()
            .min_by(|a, b| a.loss.total_cmp(&b.loss))
            .cloned()
            .unwrap_or(LrCurvePoint {
                lr: 0.0,
                loss: l0,
                seeds: 0,
            });
        let mean = curve.iter().map(|p| p.loss).sum::<f64>() / curve.len() as f64;
        out.push(LrSensitivity {
            config: config.to_string(),
            lr_sensitivity: mean - best.loss,
            best_lr: best.lr,
            best_loss: best.loss,
            initial_loss: l0,
            curve,
        });
    }
    out
}

/// The LR-sweep view of a leaderboard: one [`LrRun`] per trial that produced a result (diverged
/// ones at ℓ₀). Failed trials (crashes, not divergence) carry no information about the learning rate
/// and are left out. The configuration is every swept value except `training.lr` and `training.seed`.
pub fn lr_runs(board: &crate::dto::Leaderboard) -> Vec<LrRun> {
    board
        .rows
        .iter()
        .filter(|r| r.phase.is_result())
        .filter_map(|r| {
            let lr = r.params.get("training.lr")?.as_f64()?;
            let config: Vec<String> = r
                .params
                .iter()
                .filter(|(k, _)| k.as_str() != "training.lr" && k.as_str() != "training.seed")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let eval = r.summaries.get(crate::metrics::EVAL_LOSS);
            Some(LrRun {
                config: if config.is_empty() {
                    "base".into()
                } else {
                    config.join(", ")
                },
                lr,
                // A diverged run counts as ℓ₀ whatever it logged before diverging.
                final_loss: eval
                    .and_then(|s| s.last)
                    .filter(|_| r.phase != crate::schedule::TrialPhase::Diverged),
                initial_loss: eval.filter(|s| s.first_step == 0).and_then(|s| s.first),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: &str, lr: f64, loss: Option<f64>) -> LrRun {
        LrRun {
            config: config.into(),
            lr,
            final_loss: loss,
            initial_loss: Some(5.0),
        }
    }

    #[test]
    fn formula_with_clipping_and_nan() {
        let runs = vec![
            run("a", 1e-3, Some(3.0)),
            run("a", 1e-2, Some(2.0)),
            run("a", 1e-1, Some(9.0)),     // above ℓ₀: clipped to 5
            run("a", 1.0, Some(f64::NAN)), // NaN: counts as ℓ₀
            run("a", 3.0, None),           // no value: counts as ℓ₀
        ];
        let r = &lr_sensitivity(&runs)[0];
        // mean of [3, 2, 5, 5, 5] = 4; best 2
        assert!((r.lr_sensitivity - 2.0).abs() < 1e-12);
        assert_eq!(r.best_lr, 1e-2);
        assert_eq!(r.curve.len(), 5);
    }

    #[test]
    fn seeds_are_averaged_per_lr() {
        let runs = vec![
            run("a", 1e-3, Some(3.0)),
            run("a", 1e-3, Some(4.0)),
            run("a", 1e-2, Some(2.0)),
        ];
        let r = &lr_sensitivity(&runs)[0];
        assert_eq!(r.curve[0].loss, 3.5);
        assert_eq!(r.curve[0].seeds, 2);
        assert!((r.lr_sensitivity - 0.75).abs() < 1e-12);
    }

    #[test]
    fn single_lr_is_undefined() {
        assert!(lr_sensitivity(&[run("a", 1e-3, Some(3.0))]).is_empty());
    }
}
