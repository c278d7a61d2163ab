//! `orrery plot` of an aioli experiment: each learned mixture over steps (mean over seeds), one
//! chart per configuration with a curve per group.

use orrery_core::workloads::aioli::{AioliAnalysis, MIX_P_PREFIX};

use crate::plot::{Chart, Legend, Series};

/// One chart per configuration that learned its mixture, as (file-name suffix, chart); the
/// suffixes are `mixture-1`, `mixture-2`, … in the analysis's order (the titles name the
/// configuration). Empty when no trial learned one.
pub fn mixtures(name: &str, analysis: &AioliAnalysis) -> Vec<(String, Chart)> {
    analysis
        .mixture_over_steps
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut groups: Vec<&String> = t.points.iter().flat_map(|p| p.p.keys()).collect();
            groups.sort();
            groups.dedup();
            // A trial's mix/p is logged when it changes and held in between: drawn as steps.
            // DoReMi's proxy weights move every step (logged every log_every): drawn as lines.
            let held = t.source == MIX_P_PREFIX;
            let series = groups
                .into_iter()
                .map(|g| {
                    let points: Vec<(f64, f64)> = t
                        .points
                        .iter()
                        .filter_map(|p| Some((p.step as f64, *p.p.get(g)?)))
                        .collect();
                    Series {
                        label: g.clone(),
                        points: if held { stairs(&points) } else { points },
                    }
                })
                .collect();
            (
                format!("mixture-{}", i + 1),
                Chart {
                    title: format!("{name}: {} ({})", t.config, t.source.trim_end_matches('/')),
                    legend: Legend::UpperLeft,
                    x_label: "step".into(),
                    y_label: format!("weight, mean over {} seed(s)", t.seeds),
                    log_x: false,
                    log_y: false,
                    series,
                },
            )
        })
        .collect()
}

/// `points` as a staircase: each value holds until the next point's step.
fn stairs(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(2 * points.len());
    for (i, &p) in points.iter().enumerate() {
        if i > 0 {
            out.push((p.0, points[i - 1].1));
        }
        out.push(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stairs_hold_each_value_until_the_next_step() {
        assert_eq!(
            stairs(&[(0.0, 0.5), (10.0, 0.4), (20.0, 0.3)]),
            vec![
                (0.0, 0.5),
                (10.0, 0.5),
                (10.0, 0.4),
                (20.0, 0.4),
                (20.0, 0.3)
            ]
        );
        assert!(stairs(&[]).is_empty());
    }
}
