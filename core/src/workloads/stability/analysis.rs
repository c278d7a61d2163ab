//! The stability analysis: LR sensitivity per configuration of an LR sweep (Wortsman et al., arXiv
//! 2309.14322, §2.2; `docs/workloads/stability.md`):
//!
//!   LRS = E_η [ min(ℓ(η), ℓ₀) − ℓ* ],   ℓ* = min_η ℓ(η),
//!
//! over the swept learning rates η, where ℓ₀ is the loss at initialisation. Diverged and NaN runs
//! count as ℓ₀ (clipped), never dropped: dropping them would bias LRS downward.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One finished trial of an LR sweep.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LrRun {
    /// Everything swept except the learning rate and the seed, e.g. `params.qk_layernorm=true`.
    pub config: String,
    pub lr: f64,
    /// `training.seed` when it was swept (`search.seeds`), else 0.
    pub seed: u64,
    /// Final loss; `None` or non-finite for a run that produced none (diverged).
    pub final_loss: Option<f64>,
    /// Loss at initialisation (ℓ₀).
    pub initial_loss: Option<f64>,
    /// The largest attention logit any layer reached during the run (`attn/max_logit/L*`).
    pub max_attn_logit: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LrCurvePoint {
    pub lr: f64,
    /// Mean over seeds of min(ℓ, ℓ₀).
    pub loss: f64,
    pub seeds: usize,
    /// Mean over seeds of the run's largest attention logit, where logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attn_logit: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LrSensitivity {
    pub config: String,
    /// LRS of the seed-averaged curve.
    pub lr_sensitivity: f64,
    /// LRS of each seed's own curve (seeds that ran at least two learning rates).
    pub lrs_per_seed: Vec<f64>,
    /// Sample standard deviation of `lrs_per_seed`; `None` with fewer than two seeds.
    pub lrs_spread: Option<f64>,
    pub best_lr: f64,
    pub best_loss: f64,
    /// The largest learning rate at which every seed ended below ℓ₀ (none diverged); `None` when
    /// no learning rate did.
    pub largest_stable_lr: Option<f64>,
    pub initial_loss: f64,
    pub curve: Vec<LrCurvePoint>,
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// LRS of a curve of (lr, clipped loss) points: the mean excess over the best point.
fn lrs_of(losses: &[f64]) -> f64 {
    let best = losses.iter().copied().fold(f64::INFINITY, f64::min);
    mean(losses) - best
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
        let l0 = mean(&inits);
        // lr → (clipped losses, max attention logits, all below ℓ₀), over seeds.
        let mut by_lr: BTreeMap<u64, (f64, Vec<f64>, Vec<f64>, bool)> = BTreeMap::new();
        let mut by_seed: BTreeMap<u64, BTreeMap<u64, Vec<f64>>> = BTreeMap::new();
        for r in &runs {
            let clipped = clipped_loss(r.final_loss, l0);
            let e = by_lr
                .entry(r.lr.to_bits())
                .or_insert((r.lr, Vec::new(), Vec::new(), true));
            e.1.push(clipped);
            e.2.extend(r.max_attn_logit.filter(|x| x.is_finite()));
            e.3 &= clipped < l0;
            by_seed
                .entry(r.seed)
                .or_default()
                .entry(r.lr.to_bits())
                .or_default()
                .push(clipped);
        }
        let mut curve: Vec<LrCurvePoint> = by_lr
            .values()
            .map(|(lr, ls, logits, _)| LrCurvePoint {
                lr: *lr,
                loss: mean(ls),
                seeds: ls.len(),
                max_attn_logit: (!logits.is_empty()).then(|| mean(logits)),
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
            .expect("a curve of two or more points has a minimum");
        let largest_stable_lr = by_lr
            .values()
            .filter(|(_, _, _, stable)| *stable)
            .map(|(lr, ..)| *lr)
            .max_by(f64::total_cmp);
        let lrs_per_seed: Vec<f64> = by_seed
            .values()
            .filter(|lrs| lrs.len() >= 2)
            .map(|lrs| lrs_of(&lrs.values().map(|ls| mean(ls)).collect::<Vec<_>>()))
            .collect();
        let lrs_spread = (lrs_per_seed.len() >= 2).then(|| {
            let m = mean(&lrs_per_seed);
            let var = lrs_per_seed.iter().map(|x| (x - m).powi(2)).sum::<f64>()
                / (lrs_per_seed.len() - 1) as f64;
            var.sqrt()
        });
        out.push(LrSensitivity {
            config: config.to_string(),
            lr_sensitivity: lrs_of(&curve.iter().map(|p| p.loss).collect::<Vec<_>>()),
            lrs_per_seed,
            lrs_spread,
            best_lr: best.lr,
            best_loss: best.loss,
            largest_stable_lr,
            initial_loss: l0,
            curve,
        });
    }
    out
}

/// The largest attention logit any layer reached during a trial (`attn/max_logit/L*`, finite
/// values only), from its metric summaries.
pub fn max_attn_logit(summaries: &BTreeMap<String, crate::dto::Summary>) -> Option<f64> {
    summaries
        .iter()
        .filter(|(k, _)| k.starts_with(super::ATTN_MAX_LOGIT_PREFIX))
        .filter_map(|(_, s)| s.max)
        .filter(|x| x.is_finite())
        .max_by(f64::total_cmp)
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
            let max_attn_logit = max_attn_logit(&r.summaries);
            let seed = r
                .params
                .get("training.seed")
                .and_then(Value::as_u64)
                .unwrap_or(0);
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
                seed,
                max_attn_logit,
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
            ..Default::default()
        }
    }

    fn seeded(seed: u64, lr: f64, loss: f64, logit: f64) -> LrRun {
        LrRun {
            seed,
            max_attn_logit: Some(logit),
            ..run("a", lr, Some(loss))
        }
    }

    #[test]
    fn spread_over_seeds_stable_lr_and_attention_logits() {
        let runs = vec![
            seeded(0, 1e-3, 3.0, 10.0),
            seeded(0, 1e-2, 2.0, 20.0),
            seeded(0, 1e-1, 6.0, 1000.0), // above ℓ₀ = 5: unstable
            seeded(1, 1e-3, 3.0, 12.0),
            seeded(1, 1e-2, 1.0, 22.0),
            seeded(1, 1e-1, 4.0, 3000.0), // this seed stayed below ℓ₀, the other did not
        ];
        let r = &lr_sensitivity(&runs)[0];
        // seed 0: [3, 2, 5] → LRS 4/3; seed 1: [3, 1, 4] → LRS 5/3
        assert_eq!(r.lrs_per_seed.len(), 2);
        assert!((r.lrs_per_seed[0] - 4.0 / 3.0).abs() < 1e-12);
        assert!((r.lrs_per_seed[1] - 5.0 / 3.0).abs() < 1e-12);
        let spread = r.lrs_spread.unwrap();
        assert!((spread - (1.0f64 / 3.0) / 2f64.sqrt()).abs() < 1e-12);
        // Averaged curve [3, 1.5, 4.5] → LRS 1.5.
        assert!((r.lr_sensitivity - 1.5).abs() < 1e-12);
        assert_eq!(r.largest_stable_lr, Some(1e-2));
        assert_eq!(r.curve[2].max_attn_logit, Some(2000.0));
        assert_eq!(r.curve[0].max_attn_logit, Some(11.0));
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
