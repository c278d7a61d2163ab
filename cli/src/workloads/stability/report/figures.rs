//! The report's figures, computed from the inputs: each configuration's LR sensitivity, the log Z
//! series of the z-loss part, the width part's seed means.

use std::collections::BTreeMap;

use serde::Serialize;

use orrery_core::dto::Leaderboard;
use orrery_core::metrics;
use orrery_core::workloads::stability::{self as s, LrCurvePoint, LrSensitivity};

use super::load::LogZRun;
use super::{fmt_num, HIGH_LR, LOW_LR};

pub use crate::workloads::reproduction::{experiment_run, ExperimentRun};

/// The figures of one configuration of an LR sweep.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigFigures {
    pub experiment: String,
    /// The swept values that make this configuration (all but the LR and the seed).
    pub config: String,
    pub lrs: f64,
    pub lrs_spread: Option<f64>,
    pub lrs_per_seed: Vec<f64>,
    pub best_lr: f64,
    pub best_loss: f64,
    pub initial_loss: f64,
    pub largest_stable_lr: Option<f64>,
    /// Seed-mean of the runs' largest attention logit at LR 1e-1.
    pub max_attn_logit_at_high_lr: Option<f64>,
    /// The same at LR 3e-3.
    pub max_attn_logit_at_3e_3: Option<f64>,
    /// The part of `lrs` that comes from learning rates below the best one (under-training rather
    /// than instability).
    pub lrs_from_low_lrs: f64,
    pub curve: Vec<LrCurvePoint>,
}

/// Mean log Z on the probe batch over steps, averaged over seeds, for one (LR, z-loss) setting.
#[derive(Debug, Clone, Serialize)]
pub struct LogZSeries {
    pub label: String,
    pub lr: f64,
    pub z_loss: f64,
    pub seeds: usize,
    pub steps: Vec<i64>,
    pub mean_logz: Vec<f64>,
    /// The largest mean log Z over the run (signed), and the largest |mean log Z|.
    pub peak: f64,
    pub peak_abs: f64,
    pub at_half: f64,
    #[serde(rename = "final")]
    pub last: f64,
}

/// The width experiment at one (width, LR): seed means.
#[derive(Debug, Clone, Serialize)]
pub struct WidthPoint {
    pub d_model: u64,
    pub lr: f64,
    pub seeds: usize,
    pub max_attn_logit: f64,
    /// Global gradient RMS over AdamW's ε at the end of the run.
    pub grad_rms_over_eps: Option<f64>,
    pub final_loss: Option<f64>,
    /// AdamW's ε of these runs (`training.eps`), to turn `grad_rms_over_eps` back into an RMS.
    #[serde(skip)]
    pub eps: f64,
}

/// `a=1, b=x` (the analysis's configuration string) as a map.
fn config_values(config: &str) -> BTreeMap<&str, &str> {
    config
        .split(", ")
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

/// A short, stable name for a configuration of a part, used as the key in `stability.json`.
pub fn config_name(part: &str, config: &str) -> String {
    let v = config_values(config);
    let qk = v.get("params.qk_layernorm") == Some(&"true");
    match part {
        "qk-layernorm" if qk => "qk-layernorm".into(),
        "qk-layernorm" => "no-qk-layernorm".into(),
        "combined" if qk => "combined".into(),
        "combined" => "baseline".into(),
        "width" => format!("width-{}", v.get("model.d_model").unwrap_or(&"?")),
        _ => format!("{part}: {config}"),
    }
}

pub fn same_lr(a: f64, b: f64) -> bool {
    (a / b).log10().abs() < 1e-3
}

fn logit_at(curve: &[LrCurvePoint], lr: f64) -> Option<f64> {
    curve
        .iter()
        .find(|p| same_lr(p.lr, lr))
        .and_then(|p| p.max_attn_logit)
}

/// The share of an LRS that comes from learning rates below the best one: LRS is the mean excess
/// over the best point, so it splits exactly into a low-LR and a high-LR sum.
pub fn lrs_below_best(s: &LrSensitivity) -> f64 {
    let n = s.curve.len() as f64;
    s.curve
        .iter()
        .filter(|p| p.lr < s.best_lr)
        .map(|p| p.loss - s.best_loss)
        .sum::<f64>()
        / n
}

pub fn config_figures(part: &str, s: LrSensitivity) -> (String, ConfigFigures) {
    let name = config_name(part, &s.config);
    let figures = ConfigFigures {
        experiment: part.into(),
        config: s.config.clone(),
        lrs: s.lr_sensitivity,
        lrs_spread: s.lrs_spread,
        lrs_per_seed: s.lrs_per_seed.clone(),
        best_lr: s.best_lr,
        best_loss: s.best_loss,
        initial_loss: s.initial_loss,
        largest_stable_lr: s.largest_stable_lr,
        max_attn_logit_at_high_lr: logit_at(&s.curve, HIGH_LR),
        max_attn_logit_at_3e_3: logit_at(&s.curve, LOW_LR),
        lrs_from_low_lrs: lrs_below_best(&s),
        curve: s.curve,
    };
    (name, figures)
}

fn param_f64(params: &BTreeMap<String, serde_json::Value>, key: &str) -> Option<f64> {
    params.get(key).and_then(serde_json::Value::as_f64)
}

/// Seed-averaged log Z series per (LR, z-loss), over the steps every seed logged (so a seed that
/// stopped early, e.g. diverged, shortens its group's series: the report's step columns say so).
pub fn logz_series(runs: &[LogZRun]) -> Vec<LogZSeries> {
    type Key = (u64, u64);
    let mut groups: BTreeMap<Key, Vec<&Vec<(i64, f64)>>> = BTreeMap::new();
    for (params, pts) in runs {
        let (Some(lr), z) = (
            param_f64(params, "training.lr"),
            param_f64(params, "params.z_loss").unwrap_or(0.0),
        ) else {
            continue;
        };
        groups
            .entry((lr.to_bits(), z.to_bits()))
            .or_default()
            .push(pts);
    }
    let mut out = Vec::new();
    for ((lr, z), seeds) in groups {
        let (lr, z) = (f64::from_bits(lr), f64::from_bits(z));
        let mut by_step: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for pts in &seeds {
            for &(step, v) in pts.iter() {
                by_step.entry(step).or_default().push(v);
            }
        }
        let (steps, mean_logz): (Vec<i64>, Vec<f64>) = by_step
            .into_iter()
            .filter(|(_, vs)| vs.len() == seeds.len())
            .map(|(s, vs)| (s, vs.iter().sum::<f64>() / vs.len() as f64))
            .unzip();
        let Some(&last) = mean_logz.last() else {
            continue;
        };
        let half_step = steps[steps.len() - 1] / 2;
        let at_half = steps
            .iter()
            .zip(&mean_logz)
            .find(|(s, _)| **s >= half_step)
            .map(|(_, v)| *v)
            .unwrap_or(last);
        out.push(LogZSeries {
            label: format!("z-loss {}, lr {}", fmt_num(z), fmt_num(lr)),
            lr,
            z_loss: z,
            seeds: seeds.len(),
            peak: mean_logz.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            peak_abs: mean_logz.iter().map(|v| v.abs()).fold(0.0, f64::max),
            at_half,
            last,
            steps,
            mean_logz,
        });
    }
    out
}

/// Seed means of the width experiment per (width, LR).
/// `eps`: the experiment's `training.eps` (a trial that swept it uses its own).
pub fn width_points(board: &Leaderboard, eps: f64) -> Vec<WidthPoint> {
    let mut groups: BTreeMap<(u64, u64), Vec<&orrery_core::dto::LeaderboardRow>> = BTreeMap::new();
    for r in board.rows.iter().filter(|r| r.phase.is_result()) {
        let (Some(d), Some(lr)) = (
            r.params.get("model.d_model").and_then(|v| v.as_u64()),
            param_f64(&r.params, "training.lr"),
        ) else {
            continue;
        };
        groups.entry((d, lr.to_bits())).or_default().push(r);
    }
    let mean_of = |xs: Vec<f64>| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
    groups
        .into_iter()
        .filter_map(|((d, lr), rows)| {
            let logits: Vec<f64> = rows
                .iter()
                .filter_map(|r| s::max_attn_logit(&r.summaries))
                .collect();
            let last = |name: &str| -> Vec<f64> {
                rows.iter()
                    .filter_map(|r| r.summaries.get(name).and_then(|s| s.last))
                    .filter(|x| x.is_finite())
                    .collect()
            };
            Some(WidthPoint {
                d_model: d,
                lr: f64::from_bits(lr),
                seeds: rows.len(),
                max_attn_logit: mean_of(logits)?,
                grad_rms_over_eps: mean_of(last(s::GRAD_RMS_OVER_EPS)),
                final_loss: mean_of(last(metrics::EVAL_LOSS)),
                eps: mean_of(
                    rows.iter()
                        .map(|r| param_f64(&r.params, "training.eps").unwrap_or(eps))
                        .collect(),
                )
                .unwrap_or(eps),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::stability::report::tests::point;

    #[test]
    fn configuration_names() {
        assert_eq!(
            config_name("qk-layernorm", "params.qk_layernorm=false"),
            "no-qk-layernorm"
        );
        assert_eq!(
            config_name(
                "combined",
                "params.qk_layernorm=true, params.z_loss=0.0001, training.warmup_steps=30"
            ),
            "combined"
        );
        assert_eq!(config_name("width", "model.d_model=128"), "width-128");
    }

    #[test]
    fn lrs_splits_into_the_part_below_the_best_lr() {
        let s = LrSensitivity {
            config: "a".into(),
            lr_sensitivity: (1.0 + 0.0 + 0.5 + 2.0) / 4.0,
            lrs_per_seed: vec![],
            lrs_spread: None,
            best_lr: 1e-2,
            best_loss: 2.0,
            largest_stable_lr: None,
            initial_loss: 5.0,
            curve: vec![
                point(1e-3, 3.0),
                point(1e-2, 2.0),
                point(1e-1, 2.5),
                point(1.0, 4.0),
            ],
        };
        assert_eq!(lrs_below_best(&s), 0.25);
    }
}
