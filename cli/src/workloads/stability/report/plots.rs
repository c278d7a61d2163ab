//! The report's four plots.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use orrery_core::workloads::stability::LrCurvePoint;

use super::{fmt_num, Report};
use crate::plot::{self, Chart, Legend, Series};

/// The four plots; returns (file name, caption) of each one drawn.
pub fn plots(r: &Report, out: &Path) -> Result<Vec<(String, String)>> {
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
