//! The stability reproduction report (Wortsman et al., arXiv 2309.14322; `shared/research/
//! algorithms.md` §4): `orrery report stability` reads the newest run of each of the four CPU specs
//! in `experiments/stability/` from the database and writes `stability.md`, `stability.json` and
//! the plots. Every number in the report comes from those runs; every claim is checked here, from
//! the numbers, with the threshold the issue states — never tuned to pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use orrery_api::Store;
use orrery_core::analysis::{self, LrCurvePoint, LrSensitivity};
use orrery_core::dto::{ExperimentDto, Leaderboard};
use orrery_core::metrics;

use crate::plot::{self, Chart, Legend, Series};

/// The command written at the top of the report.
pub const COMMAND: &str = "scripts/reproduce-stability.sh";

/// One of the four experiments of the reproduction.
pub struct Part {
    pub key: &'static str,
    pub spec: &'static str,
    /// `metadata.name` in the spec: the report reads the newest experiment of that name.
    pub experiment: &'static str,
}

pub const PARTS: [Part; 4] = [
    Part {
        key: "qk-layernorm",
        spec: "experiments/stability/qk-layernorm-cpu.yaml",
        experiment: "stab-qkln-cpu",
    },
    Part {
        key: "z-loss",
        spec: "experiments/stability/z-loss-cpu.yaml",
        experiment: "stab-zloss-cpu",
    },
    Part {
        key: "combined",
        spec: "experiments/stability/combined-cpu.yaml",
        experiment: "stab-combined-cpu",
    },
    Part {
        key: "width",
        spec: "experiments/stability/width-cpu.yaml",
        experiment: "stab-width-cpu",
    },
];

/// The wall-clock budget for the whole CPU reproduction.
const BUDGET_SECONDS: f64 = 40.0 * 60.0;
/// "High" learning rate of the attention-logit claims.
const HIGH_LR: f64 = 1e-1;
/// The reference learning rate the growth is measured against.
const LOW_LR: f64 = 3e-3;

#[derive(Debug, Clone, Serialize)]
pub struct ExperimentRun {
    pub spec: String,
    pub experiment_id: i64,
    pub name: String,
    pub phase: String,
    pub trials: u32,
    pub succeeded: u32,
    pub diverged: u32,
    pub failed: u32,
    /// From registration to the end of the last trial.
    pub seconds: Option<f64>,
}

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
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claim {
    pub id: &'static str,
    pub part: &'static str,
    pub claim: String,
    /// `None`: the experiment it needs has not been run.
    pub held: Option<bool>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: &'static str,
    pub generated_at: String,
    pub experiments: BTreeMap<&'static str, ExperimentRun>,
    pub total_seconds: f64,
    pub configs: BTreeMap<String, ConfigFigures>,
    pub logz: Vec<LogZSeries>,
    pub width: Vec<WidthPoint>,
    pub claims: Vec<Claim>,
}

/// One trial's swept values and its (step, mean log Z) points.
pub type LogZRun = (BTreeMap<String, serde_json::Value>, Vec<(i64, f64)>);

/// What the report is computed from: per part, the experiment's leaderboard and (z-loss only) the
/// log Z histories of its trials.
pub struct Inputs {
    pub boards: BTreeMap<&'static str, Leaderboard>,
    /// (trial params, mean-log-Z points) of the z-loss experiment's finished trials.
    pub logz: Vec<LogZRun>,
}

pub async fn load(store: &Store) -> Result<Inputs> {
    let mut boards = BTreeMap::new();
    let mut logz = Vec::new();
    for part in &PARTS {
        let exp = match store.find_experiment(part.experiment).await {
            Ok(e) => e,
            Err(orrery_api::StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let board = store.leaderboard(exp.id).await?;
        if part.key == "z-loss" {
            for row in board.rows.iter().filter(|r| r.phase.is_result()) {
                let pts = store
                    .metric_history(row.trial_id, metrics::LOGZ_MEAN)
                    .await?
                    .into_iter()
                    .map(|p| (p.step, p.value))
                    .collect();
                logz.push((row.params.clone(), pts));
            }
        }
        boards.insert(part.key, board);
    }
    if boards.is_empty() {
        anyhow::bail!(
            "none of the stability experiments ({}) is in the database; run {COMMAND}",
            PARTS.map(|p| p.experiment).join(", ")
        );
    }
    Ok(Inputs { boards, logz })
}

fn seconds_between(from: &str, to: Option<&str>) -> Option<f64> {
    let from = chrono::DateTime::parse_from_rfc3339(from).ok()?;
    let to = chrono::DateTime::parse_from_rfc3339(to?).ok()?;
    Some((to - from).num_milliseconds() as f64 / 1000.0)
}

fn experiment_run(part: &Part, e: &ExperimentDto) -> ExperimentRun {
    ExperimentRun {
        spec: part.spec.into(),
        experiment_id: e.id,
        name: e.name.clone(),
        phase: e.phase.to_string(),
        trials: e.counts.total,
        succeeded: e.counts.succeeded,
        diverged: e.counts.diverged,
        failed: e.counts.failed,
        seconds: seconds_between(&e.created_at, e.finished_at.as_deref()),
    }
}

/// `a=1, b=x` (the analysis's configuration string) as a map.
fn config_values(config: &str) -> BTreeMap<&str, &str> {
    config
        .split(", ")
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

/// A short, stable name for a configuration of a part, used as the key in `stability.json`.
fn config_name(part: &str, config: &str) -> String {
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

fn same_lr(a: f64, b: f64) -> bool {
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
fn lrs_below_best(s: &LrSensitivity) -> f64 {
    let n = s.curve.len() as f64;
    s.curve
        .iter()
        .filter(|p| p.lr < s.best_lr)
        .map(|p| p.loss - s.best_loss)
        .sum::<f64>()
        / n
}

fn config_figures(part: &str, s: LrSensitivity) -> (String, ConfigFigures) {
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
fn width_points(board: &Leaderboard) -> Vec<WidthPoint> {
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
                .filter_map(|r| analysis::max_attn_logit(&r.summaries))
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
                grad_rms_over_eps: mean_of(last(metrics::GRAD_RMS_OVER_EPS)),
                final_loss: mean_of(last(metrics::EVAL_LOSS)),
            })
        })
        .collect()
}

/// `1e-3`-style for powers of ten and their multiples, plain otherwise.
pub fn fmt_num(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    if (1e-2..1e4).contains(&x.abs()) {
        let s = format!("{x:.4}");
        return s.trim_end_matches('0').trim_end_matches('.').into();
    }
    let s = format!("{x:.1e}");
    s.replace(".0e", "e")
}

/// A measured magnitude: one decimal, or `1.7e4` from 10,000 up.
fn fmt_mag(x: f64) -> String {
    if x.abs() >= 1e4 {
        format!("{x:.1e}")
    } else {
        format!("{x:.1}")
    }
}

fn pct(x: f64) -> String {
    format!("{:.0} %", x * 100.0)
}

fn not_run(id: &'static str, part: &'static str, claim: String) -> Claim {
    Claim {
        id,
        part,
        claim,
        held: None,
        detail: format!("needs the {part} experiment run to its end"),
    }
}

/// (a): attention-logit growth without qk-layernorm, its removal, and the LRS change.
fn qk_claims(configs: &BTreeMap<String, ConfigFigures>) -> Vec<Claim> {
    let c1 = "Without qk-layernorm the max attention logit at every LR ≥ 1e-1 is ≥ 10× its value at 3e-3 (and above 50)".to_string();
    let c2 = "qk-layernorm cuts the max attention logit at LR 1e-1 by ≥ 5×".to_string();
    let c3 = "qk-layernorm lowers LR sensitivity by more than the seed spread, and by ≥ 30 % (algorithms.md §4.4)".to_string();
    let (Some(off), Some(on)) = (configs.get("no-qk-layernorm"), configs.get("qk-layernorm"))
    else {
        return vec![
            not_run("attn-logit-growth", "qk-layernorm", c1),
            not_run("qk-ln-cuts-logit", "qk-layernorm", c2),
            not_run("qk-ln-lowers-lrs", "qk-layernorm", c3),
        ];
    };
    let mut out = Vec::new();
    let high: Vec<(f64, f64)> = off
        .curve
        .iter()
        .filter(|p| p.lr >= HIGH_LR * 0.999)
        .filter_map(|p| Some((p.lr, p.max_attn_logit?)))
        .collect();
    let low = off.max_attn_logit_at_3e_3;
    let weakest = high.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1));
    out.push(match (weakest, low) {
        (Some((lr, hi)), Some(lo)) => Claim {
            id: "attn-logit-growth",
            part: "qk-layernorm",
            held: Some(hi >= 10.0 * lo && hi > 50.0),
            detail: format!(
                "{} at 3e-3; at LR ≥ 1e-1: {} (the smallest, {} at {}, is {:.0}× the 3e-3 value)",
                fmt_mag(lo),
                high.iter()
                    .map(|(lr, v)| format!("{} at {}", fmt_mag(*v), fmt_num(*lr)))
                    .collect::<Vec<_>>()
                    .join(", "),
                fmt_mag(hi),
                fmt_num(lr),
                hi / lo
            ),
            claim: c1,
        },
        _ => Claim {
            id: "attn-logit-growth",
            part: "qk-layernorm",
            held: Some(false),
            detail: "no attention logits logged at 3e-3 or at LR ≥ 1e-1".into(),
            claim: c1,
        },
    });
    out.push(
        match (off.max_attn_logit_at_high_lr, on.max_attn_logit_at_high_lr) {
            (Some(a), Some(b)) => Claim {
                id: "qk-ln-cuts-logit",
                part: "qk-layernorm",
                held: Some(a >= 5.0 * b),
                detail: format!(
                    "at 1e-1: {} without, {} with qk-layernorm: {:.0}× lower",
                    fmt_mag(a),
                    fmt_mag(b),
                    a / b
                ),
                claim: c2,
            },
            _ => Claim {
                id: "qk-ln-cuts-logit",
                part: "qk-layernorm",
                held: Some(false),
                detail: "no attention logits logged at 1e-1".into(),
                claim: c2,
            },
        },
    );
    let spread = off.lrs_spread.unwrap_or(f64::NAN) + on.lrs_spread.unwrap_or(f64::NAN);
    let drop = off.lrs - on.lrs;
    out.push(Claim {
        id: "qk-ln-lowers-lrs",
        part: "qk-layernorm",
        // A NaN spread (fewer than two seeds) makes the comparison false: unproven.
        held: Some(drop > spread && drop >= 0.30 * off.lrs),
        detail: format!(
            "LRS {:.4} ± {:.4} → {:.4} ± {:.4} ({} seeds): −{} (the pilot saw −31 %); the drop \
             is {:.1}× the sum of the two seed spreads",
            off.lrs,
            off.lrs_spread.unwrap_or(f64::NAN),
            on.lrs,
            on.lrs_spread.unwrap_or(f64::NAN),
            off.lrs_per_seed.len(),
            pct(drop / off.lrs),
            drop / spread
        ),
        claim: c3,
    });
    out
}

/// (b): log Z drift without z-loss, and its pull toward 0 with it.
fn zloss_claims(series: &[LogZSeries]) -> Vec<Claim> {
    let c1 =
        "Without z-loss (qk-layernorm on, no weight decay) mean log Z drifts above 10 at LR ≥ 3e-2"
            .to_string();
    let c2 = "With z-loss 1e-4 mean log Z moves toward 0 (lower at the end than at mid-run) and stays bounded (its peak below the no-z-loss run's at the same LR)".to_string();
    let c3 = "With z-loss 1e-4 mean log Z ends below 2 (algorithms.md §4.4's bound; log 256 ≈ 5.5 at initialisation, so it cannot stay below 2 from step 0)".to_string();
    let without: Vec<&LogZSeries> = series
        .iter()
        .filter(|s| s.z_loss == 0.0 && s.lr >= 3e-2 * 0.999)
        .collect();
    let with: Vec<&LogZSeries> = series.iter().filter(|s| s.z_loss > 0.0).collect();
    if without.is_empty() || with.is_empty() {
        return vec![
            not_run("logz-drifts-without-z-loss", "z-loss", c1),
            not_run("z-loss-pulls-logz-down", "z-loss", c2),
            not_run("z-loss-logz-below-2", "z-loss", c3),
        ];
    }
    let describe = |s: &LogZSeries| {
        format!(
            "{}: peak {:.2}, mid-run {:.2}, final {:.2}",
            s.label, s.peak, s.at_half, s.last
        )
    };
    let join = |xs: &[&LogZSeries]| {
        xs.iter()
            .map(|s| describe(s))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let bounded = |s: &LogZSeries| {
        without
            .iter()
            .find(|w| same_lr(w.lr, s.lr))
            .is_some_and(|w| s.peak_abs < w.peak_abs)
    };
    vec![
        Claim {
            id: "logz-drifts-without-z-loss",
            part: "z-loss",
            held: Some(without.iter().all(|s| s.peak_abs > 10.0)),
            detail: join(&without),
            claim: c1,
        },
        Claim {
            id: "z-loss-pulls-logz-down",
            part: "z-loss",
            held: Some(with.iter().all(|s| s.last < s.at_half && bounded(s))),
            detail: join(&with),
            claim: c2,
        },
        Claim {
            id: "z-loss-logz-below-2",
            part: "z-loss",
            held: Some(with.iter().all(|s| s.last.abs() < 2.0)),
            detail: with
                .iter()
                .map(|s| format!("{}: final {:.2}", s.label, s.last))
                .collect::<Vec<_>>()
                .join("; "),
            claim: c3,
        },
    ]
}

/// The largest rise of a curve over its own minimum within [lo, hi], and the LR where it happens.
pub fn rise_within(curve: &[LrCurvePoint], lo: f64, hi: f64) -> Option<(f64, f64)> {
    let pts: Vec<&LrCurvePoint> = curve
        .iter()
        .filter(|p| p.lr >= lo * 0.999 && p.lr <= hi * 1.001)
        .collect();
    let min = pts.iter().map(|p| p.loss).fold(f64::INFINITY, f64::min);
    pts.iter()
        .map(|p| (p.loss / min - 1.0, p.lr))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// (c): the combined mitigations against the baseline.
fn combined_claims(configs: &BTreeMap<String, ConfigFigures>) -> Vec<Claim> {
    let c1 = "qk-layernorm + z-loss + warm-up + independent weight decay: LR sensitivity ≤ 0.5× the baseline's".to_string();
    let c2 = "The combined configuration's loss rises by ≤ 10 % across LR 1e-3 … 1e-1".to_string();
    let (Some(base), Some(comb)) = (configs.get("baseline"), configs.get("combined")) else {
        return vec![
            not_run("combined-lrs-ratio", "combined", c1),
            not_run("combined-flat", "combined", c2),
        ];
    };
    let ratio = comb.lrs / base.lrs;
    let mut out = vec![Claim {
        id: "combined-lrs-ratio",
        part: "combined",
        held: Some(ratio <= 0.5),
        detail: format!(
            "LRS {:.4} ± {:.4} (baseline) → {:.4} ± {:.4} (combined): {:.3}×. Of the combined \
             LRS, {:.4} ({}) comes from learning rates below its best ({}), i.e. from \
             under-training at low LR rather than from instability",
            base.lrs,
            base.lrs_spread.unwrap_or(f64::NAN),
            comb.lrs,
            comb.lrs_spread.unwrap_or(f64::NAN),
            ratio,
            comb.lrs_from_low_lrs,
            pct(comb.lrs_from_low_lrs / comb.lrs),
            fmt_num(comb.best_lr)
        ),
        claim: c1,
    }];
    let rise = rise_within(&comb.curve, 1e-3, 1e-1);
    let upper = rise_within(&comb.curve, comb.best_lr, 1e-1);
    let base_upper = rise_within(&base.curve, base.best_lr, 1e-1);
    out.push(match rise {
        Some((r, at)) => Claim {
            id: "combined-flat",
            part: "combined",
            held: Some(r <= 0.10),
            detail: format!(
                "largest rise {} (at {}); from its best LR up to 1e-1 the combined loss rises {} \
                 (the baseline's: {} from {})",
                pct(r),
                fmt_num(at),
                upper.map(|u| pct(u.0)).unwrap_or_else(|| "–".into()),
                base_upper.map(|u| pct(u.0)).unwrap_or_else(|| "–".into()),
                fmt_num(base.best_lr)
            ),
            claim: c2,
        },
        None => Claim {
            id: "combined-flat",
            part: "combined",
            held: Some(false),
            detail: "no learning rates between 1e-3 and 1e-1 in the sweep".into(),
            claim: c2,
        },
    });
    out
}

fn strictly(values: &[f64], increasing: bool) -> bool {
    values
        .windows(2)
        .all(|w| if increasing { w[1] > w[0] } else { w[1] < w[0] })
}

/// (d): how the attention logit and the gradient RMS scale with width at a fixed LR.
fn width_claims(points: &[WidthPoint]) -> Vec<Claim> {
    let c1 =
        "At a fixed LR the max attention logit grows with width (qk-layernorm off)".to_string();
    let c2 =
        "At a fixed LR the gradient RMS falls with width (algorithms.md §4.4 check 4, first half)"
            .to_string();
    let mut lrs: Vec<f64> = points.iter().map(|p| p.lr).collect();
    lrs.sort_by(f64::total_cmp);
    lrs.dedup();
    if lrs.is_empty() {
        return vec![
            not_run("width-logit-growth", "width", c1),
            not_run("width-grad-rms", "width", c2),
        ];
    }
    let mut logit_ok = true;
    let mut grad_ok = true;
    let mut logit_detail = Vec::new();
    let mut grad_detail = Vec::new();
    for lr in lrs {
        let mut row: Vec<&WidthPoint> = points.iter().filter(|p| p.lr == lr).collect();
        row.sort_by_key(|p| p.d_model);
        let logits: Vec<f64> = row.iter().map(|p| p.max_attn_logit).collect();
        let grads: Vec<f64> = row.iter().filter_map(|p| p.grad_rms_over_eps).collect();
        logit_ok &= row.len() >= 2 && strictly(&logits, true);
        grad_ok &= grads.len() == row.len() && row.len() >= 2 && strictly(&grads, false);
        logit_detail.push(format!(
            "lr {}: {}",
            fmt_num(lr),
            row.iter()
                .map(|p| format!("d={} {}", p.d_model, fmt_mag(p.max_attn_logit)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        grad_detail.push(format!(
            "lr {}: {}",
            fmt_num(lr),
            row.iter()
                .map(|p| format!(
                    "d={} {}",
                    p.d_model,
                    p.grad_rms_over_eps
                        .map(|g| format!("{:.3e}", g * 1e-8))
                        .unwrap_or_else(|| "–".into())
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    vec![
        Claim {
            id: "width-logit-growth",
            part: "width",
            held: Some(logit_ok),
            detail: logit_detail.join("; "),
            claim: c1,
        },
        Claim {
            id: "width-grad-rms",
            part: "width",
            held: Some(grad_ok),
            detail: format!(
                "final gradient RMS (ε = 1e-8 × the logged RMS/ε): {}",
                grad_detail.join("; ")
            ),
            claim: c2,
        },
    ]
}

fn budget_claim(experiments: &BTreeMap<&'static str, ExperimentRun>, total: f64) -> Claim {
    let all = PARTS
        .iter()
        .all(|p| experiments.get(p.key).is_some_and(|e| e.seconds.is_some()));
    Claim {
        id: "cpu-budget",
        part: "all",
        claim: "The whole CPU reproduction takes ≤ 40 minutes on 2 cores".into(),
        held: all.then_some(total <= BUDGET_SECONDS),
        detail: if all {
            format!(
                "{:.1} min: {}",
                total / 60.0,
                PARTS
                    .iter()
                    .map(|p| format!(
                        "{} {:.1} min",
                        p.key,
                        experiments[p.key].seconds.unwrap_or(0.0) / 60.0
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            "not every experiment has run to the end".into()
        },
    }
}

pub fn compute(inputs: &Inputs, generated_at: String) -> Report {
    let mut experiments = BTreeMap::new();
    let mut configs = BTreeMap::new();
    for part in &PARTS {
        let Some(board) = inputs.boards.get(part.key) else {
            continue;
        };
        experiments.insert(part.key, experiment_run(part, &board.experiment));
        // A running experiment's curves are partial: its claims stay "not run" until it ends.
        if !board.experiment.phase.is_terminal() || part.key == "z-loss" {
            continue; // two LRs per setting: an LR sensitivity would mean little
        }
        for s in analysis::lr_sensitivity(&analysis::lr_runs(board)) {
            let (name, f) = config_figures(part.key, s);
            configs.insert(name, f);
        }
    }
    let total_seconds = experiments.values().filter_map(|e| e.seconds).sum();
    let finished = |key: &str| {
        inputs
            .boards
            .get(key)
            .filter(|b| b.experiment.phase.is_terminal())
    };
    let logz = if finished("z-loss").is_some() {
        logz_series(&inputs.logz)
    } else {
        Vec::new()
    };
    let width = finished("width").map(width_points).unwrap_or_default();
    let mut claims = qk_claims(&configs);
    claims.extend(zloss_claims(&logz));
    claims.extend(combined_claims(&configs));
    claims.extend(width_claims(&width));
    claims.push(budget_claim(&experiments, total_seconds));
    Report {
        command: COMMAND,
        generated_at,
        experiments,
        total_seconds,
        configs,
        logz,
        width,
        claims,
    }
}

/// The four plots; returns (file name, caption) of each one drawn.
fn plots(r: &Report, out: &Path) -> Result<Vec<(String, String)>> {
    let mut drawn = Vec::new();
    let curve_series = |names: &[&str], y: fn(&LrCurvePoint) -> Option<f64>| -> Vec<Series> {
        names
            .iter()
            .filter_map(|n| r.configs.get(*n).map(|c| (n, c)))
            .map(|(n, c)| Series {
                label: n.to_string(),
                points: c.curve.iter().filter_map(|p| Some((p.lr, y(p)?))).collect(),
            })
            .collect()
    };
    let sweeps = ["no-qk-layernorm", "qk-layernorm", "baseline", "combined"];
    let charts = [
        (
            "stability-lr-loss.png",
            "LR vs final eval loss (seed mean, clipped at the initial loss)",
            Chart {
                title: "LR vs final loss".into(),
                legend: Legend::UpperMiddle,
                x_label: "learning rate".into(),
                y_label: "final eval loss".into(),
                log_x: true,
                log_y: false,
                series: curve_series(&sweeps, |p| Some(p.loss)),
            },
        ),
        (
            "stability-attn-logit.png",
            "Max attention logit vs LR (seed mean of each run's largest logit)",
            Chart {
                title: "Max attention logit vs LR".into(),
                legend: Legend::UpperLeft,
                x_label: "learning rate".into(),
                y_label: "max attention logit".into(),
                log_x: true,
                log_y: true,
                series: curve_series(&sweeps, |p| p.max_attn_logit),
            },
        ),
        (
            "stability-logz.png",
            "Mean log Z on the probe batch over training steps (seed mean)",
            Chart {
                title: "Mean log Z over steps, z-loss off/on".into(),
                legend: Legend::UpperLeft,
                x_label: "step".into(),
                y_label: "mean log Z".into(),
                log_x: false,
                log_y: false,
                series: r
                    .logz
                    .iter()
                    .map(|s| Series {
                        label: s.label.clone(),
                        points: s
                            .steps
                            .iter()
                            .zip(&s.mean_logz)
                            .map(|(x, y)| (*x as f64, *y))
                            .collect(),
                    })
                    .collect(),
            },
        ),
        (
            "stability-width.png",
            "Max attention logit vs width at fixed LRs (qk-layernorm off, seed mean)",
            Chart {
                title: "Max attention logit vs width".into(),
                legend: Legend::UpperLeft,
                x_label: "d_model".into(),
                y_label: "max attention logit".into(),
                log_x: true,
                log_y: true,
                series: {
                    let mut by_lr: BTreeMap<u64, Vec<(f64, f64)>> = BTreeMap::new();
                    for p in &r.width {
                        by_lr
                            .entry(p.lr.to_bits())
                            .or_default()
                            .push((p.d_model as f64, p.max_attn_logit));
                    }
                    by_lr
                        .into_iter()
                        .map(|(lr, points)| Series {
                            label: format!("lr {}", fmt_num(f64::from_bits(lr))),
                            points,
                        })
                        .collect()
                },
            },
        ),
    ];
    for (file, caption, chart) in charts {
        if chart.series.iter().all(|s| s.points.is_empty()) {
            continue;
        }
        plot::draw(&chart, &out.join(file))?;
        drawn.push((file.to_string(), caption.to_string()));
    }
    Ok(drawn)
}

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map(f).unwrap_or_else(|| "–".into())
}

fn markdown(r: &Report, plots: &[(String, String)]) -> String {
    use std::fmt::Write;
    let mut m = String::new();
    let _ = writeln!(
        m,
        "# Stability reproduction (Wortsman et al., arXiv 2309.14322) at CPU scale\n\n\
         Generated by `{}` on {} from the runs in its database; do not edit by hand (the \
         figures are also in `stability.json`). Equations and checks: \
         `shared/research/algorithms.md` §4; the specs are in `experiments/stability/`.\n",
        r.command, r.generated_at
    );
    let _ = writeln!(m, "## Runs\n");
    let _ = writeln!(
        m,
        "| part | spec | experiment | phase | trials | succeeded | diverged | failed | minutes |\n|---|---|---|---|---|---|---|---|---|"
    );
    for p in &PARTS {
        match r.experiments.get(p.key) {
            Some(e) => {
                let _ = writeln!(
                    m,
                    "| {} | `{}` | {} \"{}\" | {} | {} | {} | {} | {} | {} |",
                    p.key,
                    e.spec,
                    e.experiment_id,
                    e.name,
                    e.phase,
                    e.trials,
                    e.succeeded,
                    e.diverged,
                    e.failed,
                    opt(e.seconds, |s| format!("{:.1}", s / 60.0))
                );
            }
            None => {
                let _ = writeln!(m, "| {} | `{}` | not run | | | | | | |", p.key, p.spec);
            }
        }
    }
    let _ = writeln!(
        m,
        "\nTotal: {:.1} minutes of experiment wall time.\n",
        r.total_seconds / 60.0
    );
    let _ = writeln!(m, "## Claims\n");
    for c in &r.claims {
        let verdict = match c.held {
            Some(true) => "**held**",
            Some(false) => "**not held**",
            None => "**not run**",
        };
        let _ = writeln!(m, "- {verdict} ({}): {}. {}.", c.part, c.claim, c.detail);
    }
    let _ = writeln!(
        m,
        "\n## LR sensitivity per configuration\n\n\
         LRS = E_η[min(ℓ(η), ℓ₀) − min_η ℓ(η)] over the 7-point grid 3e-4 … 3e-1, on the \
         seed-averaged curve (± the sample standard deviation of the per-seed LRS). \"Largest \
         stable LR\": the largest LR at which every seed ended below ℓ₀.\n\n\
         | configuration | LRS | per seed | best LR | best loss | ℓ₀ | largest stable LR | max attn logit at 3e-3 | at 1e-1 |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    for (name, c) in &r.configs {
        let _ = writeln!(
            m,
            "| {name} | {:.4} ± {} | {} | {} | {:.3} | {:.3} | {} | {} | {} |",
            c.lrs,
            opt(c.lrs_spread, |s| format!("{s:.4}")),
            c.lrs_per_seed
                .iter()
                .map(|x| format!("{x:.4}"))
                .collect::<Vec<_>>()
                .join(", "),
            fmt_num(c.best_lr),
            c.best_loss,
            c.initial_loss,
            opt(c.largest_stable_lr, fmt_num),
            opt(c.max_attn_logit_at_3e_3, fmt_mag),
            opt(c.max_attn_logit_at_high_lr, fmt_mag),
        );
    }
    let _ = writeln!(
        m,
        "\nThe issue's PyTorch pilot (byte-level code text, d=96, 1 seed) measured LRS 0.339 \
         (baseline), 0.233 (qk-layernorm), 0.244 (qk-layernorm + z-loss) and a max attention \
         logit of 17.7 at 3e-3 and ~1.8e4 at 1e-1 without qk-layernorm, 15.8 with it.\n"
    );
    let _ = writeln!(m, "### Loss by learning rate (seed mean, clipped at ℓ₀)\n");
    let lrs: Vec<f64> = {
        let mut v: Vec<f64> = r
            .configs
            .values()
            .flat_map(|c| c.curve.iter().map(|p| p.lr))
            .collect();
        v.sort_by(f64::total_cmp);
        v.dedup_by(|a, b| same_lr(*a, *b));
        v
    };
    let _ = writeln!(
        m,
        "| configuration | {} |\n|---|{}",
        lrs.iter()
            .map(|l| fmt_num(*l))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(lrs.len())
    );
    for (name, c) in &r.configs {
        let cells: Vec<String> = lrs
            .iter()
            .map(|lr| {
                c.curve
                    .iter()
                    .find(|p| same_lr(p.lr, *lr))
                    .map(|p| format!("{:.3}", p.loss))
                    .unwrap_or_default()
            })
            .collect();
        let _ = writeln!(m, "| {name} | {} |", cells.join(" | "));
    }
    if !r.logz.is_empty() {
        let _ = writeln!(
            m,
            "\n## Mean log Z over steps (z-loss experiment, seed mean)\n\n\
             | setting | seeds | step 0 | 25 % | mid-run | 75 % | final | peak |\n|---|---|---|---|---|---|---|---|"
        );
        for s in &r.logz {
            let at = |f: f64| s.mean_logz[((s.mean_logz.len() - 1) as f64 * f).round() as usize];
            let _ = writeln!(
                m,
                "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                s.label,
                s.seeds,
                s.mean_logz[0],
                at(0.25),
                s.at_half,
                at(0.75),
                s.last,
                s.peak
            );
        }
    }
    if !r.width.is_empty() {
        let _ = writeln!(
            m,
            "\n## Width (qk-layernorm off, seed mean)\n\n\
             | d_model | LR | seeds | max attention logit | final gradient RMS / ε | final eval loss |\n|---|---|---|---|---|---|"
        );
        for p in &r.width {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} |",
                p.d_model,
                fmt_num(p.lr),
                p.seeds,
                fmt_mag(p.max_attn_logit),
                opt(p.grad_rms_over_eps, |g| format!("{g:.3e}")),
                opt(p.final_loss, |l| format!("{l:.3}"))
            );
        }
    }
    if !plots.is_empty() {
        let _ = writeln!(m, "\n## Plots\n");
        for (file, caption) in plots {
            let _ = writeln!(m, "{caption}:\n\n![{caption}]({file})\n");
        }
    }
    m
}

/// Writes `stability.md`, `stability.json` and the plots into `out`; returns the paths written.
pub async fn write(store: &Store, out: &Path) -> Result<Vec<PathBuf>> {
    let inputs = load(store).await?;
    let report = compute(
        &inputs,
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
    );
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let plots = plots(&report, out)?;
    let json = out.join("stability.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", json.display()))?;
    let md = out.join("stability.md");
    std::fs::write(&md, markdown(&report, &plots))
        .with_context(|| format!("cannot write {}", md.display()))?;
    let mut written = vec![md, json];
    written.extend(plots.into_iter().map(|(f, _)| out.join(f)));
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(lr: f64, loss: f64) -> LrCurvePoint {
        LrCurvePoint {
            lr,
            loss,
            seeds: 1,
            max_attn_logit: None,
        }
    }

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

    #[test]
    fn rise_is_measured_within_the_range_against_its_own_minimum() {
        let curve = [
            point(3e-4, 9.0), // outside the range: ignored
            point(1e-3, 1.2),
            point(1e-2, 1.0),
            point(1e-1, 1.05),
        ];
        let (r, at) = rise_within(&curve, 1e-3, 1e-1).unwrap();
        assert!((r - 0.2).abs() < 1e-12);
        assert_eq!(at, 1e-3);
    }

    #[test]
    fn log_z_series_average_the_steps_every_seed_logged() {
        let p = |lr: f64, z: f64| {
            BTreeMap::from([
                ("training.lr".to_string(), serde_json::json!(lr)),
                ("params.z_loss".to_string(), serde_json::json!(z)),
            ])
        };
        let runs = vec![
            (p(0.1, 0.0), vec![(0, 5.0), (10, 9.0), (20, 12.0)]),
            (p(0.1, 0.0), vec![(0, 5.0), (10, 13.0)]), // stopped early: step 20 left out
            (p(0.1, 1e-4), vec![(0, 5.0), (10, 8.0), (20, 6.0)]),
        ];
        let s = logz_series(&runs);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].z_loss, 0.0);
        assert_eq!(s[0].steps, vec![0, 10]);
        assert_eq!(s[0].mean_logz, vec![5.0, 11.0]);
        assert_eq!(s[1].peak, 8.0);
        assert_eq!(s[1].at_half, 8.0);
        assert_eq!(s[1].last, 6.0);
        // Without z-loss the peak (11) is above 10; with it log Z fell after mid-run and its peak
        // stayed under the other's; the absolute bound of 2 was not reached.
        let claims = zloss_claims(&s);
        assert_eq!(claims[0].held, Some(true));
        assert_eq!(claims[1].held, Some(true));
        assert_eq!(claims[2].held, Some(false));
    }

    #[test]
    fn width_monotonicity() {
        assert!(strictly(&[1.0, 2.0, 3.0], true));
        assert!(!strictly(&[1.0, 3.0, 2.0], true));
        assert!(strictly(&[3.0, 2.0, 1.0], false));
    }

    #[test]
    fn numbers_read_like_the_spec() {
        assert_eq!(fmt_num(1e-4), "1e-4");
        assert_eq!(fmt_num(3e-3), "3e-3");
        assert_eq!(fmt_num(0.1), "0.1");
        assert_eq!(fmt_num(0.03), "0.03");
        assert_eq!(fmt_num(0.0), "0");
    }
}
