//! `orrery plot` of a stability experiment: LR vs final loss and max attention logit vs LR.

use orrery_core::workloads::stability as s;

use crate::plot::{Chart, Legend, Series};

/// The charts of an LR sweep (`orrery plot`): LR vs final loss and max attention logit vs LR, one
/// curve per configuration; each as (file-name suffix, chart). Empty without a sweep.
pub fn lr_sweep(name: &str, sweeps: &[s::LrSensitivity]) -> Vec<(String, Chart)> {
    if sweeps.is_empty() {
        return Vec::new();
    }
    let series = |y: fn(&s::LrCurvePoint) -> Option<f64>| -> Vec<Series> {
        sweeps
            .iter()
            .map(|s| Series {
                label: s.config.clone(),
                points: s.curve.iter().filter_map(|p| Some((p.lr, y(p)?))).collect(),
            })
            .collect()
    };
    let mut charts = vec![(
        "lr-loss".to_string(),
        Chart {
            title: format!("{name}: LR vs final loss"),
            legend: Legend::UpperMiddle,
            x_label: "learning rate".into(),
            y_label: "final eval loss (seed mean, clipped at the initial loss)".into(),
            log_x: true,
            log_y: false,
            series: series(|p| Some(p.loss)),
        },
    )];
    let logits = series(|p| p.max_attn_logit);
    if logits.iter().any(|s| !s.points.is_empty()) {
        charts.push((
            "attn-logit".to_string(),
            Chart {
                title: format!("{name}: max attention logit vs LR"),
                legend: Legend::UpperLeft,
                x_label: "learning rate".into(),
                y_label: "max attention logit (seed mean)".into(),
                log_x: true,
                log_y: true,
                series: logits,
            },
        ));
    }
    charts
}
