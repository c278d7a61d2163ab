//! What `orrery run` and `orrery show` print for a stability experiment: each configuration's LR
//! sensitivity, then its loss and max attention logit at each learning rate — learning rates down
//! the rows, configurations across, a few per table, so every table fits 100 columns.

use comfy_table::Table;

use orrery_core::workloads::stability::LrSensitivity;

use crate::table::new_table;

/// Configurations side by side in one by-LR table (two columns each: loss and max logit).
const CONFIGS_PER_TABLE: usize = 3;

pub fn summary(lrs: &[LrSensitivity]) -> String {
    if lrs.is_empty() {
        return "LR sensitivity: needs a sweep over training.lr with at least two values.".into();
    }
    let mut out = format!(
        "LR sensitivity per configuration (Wortsman et al. 2023; lower is more robust):\n{}",
        sensitivity(lrs)
    );
    for (i, t) in by_lr(lrs).iter().enumerate() {
        let first = i * CONFIGS_PER_TABLE + 1;
        let last = (first + CONFIGS_PER_TABLE - 1).min(lrs.len());
        out.push_str(&format!(
            "\n\nFinal eval loss (seed mean, clipped at ℓ₀) and max attention logit by LR, \
             configurations {first}–{last}:\n{t}"
        ));
    }
    out
}

fn sensitivity(rows: &[LrSensitivity]) -> Table {
    let mut t = new_table(
        [
            "#",
            "configuration",
            "LR sensitivity",
            "± seeds",
            "best lr",
            "largest stable lr",
            "ℓ₀",
        ]
        .map(String::from)
        .to_vec(),
    );
    for (i, r) in rows.iter().enumerate() {
        t.add_row(vec![
            (i + 1).to_string(),
            r.config.clone(),
            format!("{:.4}", r.lr_sensitivity),
            r.lrs_spread
                .map(|s| format!("{s:.4} (n={})", r.lrs_per_seed.len()))
                .unwrap_or_else(|| "one seed".into()),
            format!("{:.0e}", r.best_lr),
            r.largest_stable_lr
                .map(|l| format!("{l:.0e}"))
                .unwrap_or_else(|| "none".into()),
            format!("{:.4}", r.initial_loss),
        ]);
    }
    t
}

fn logit(x: f64) -> String {
    if x.abs() >= 1e4 {
        format!("{x:.2e}")
    } else {
        format!("{x:.1}")
    }
}

/// One table per [`CONFIGS_PER_TABLE`] configurations: a row per learning rate any of them ran.
fn by_lr(rows: &[LrSensitivity]) -> Vec<Table> {
    rows.chunks(CONFIGS_PER_TABLE)
        .enumerate()
        .map(|(chunk, configs)| {
            let mut lrs: Vec<f64> = configs
                .iter()
                .flat_map(|c| c.curve.iter().map(|p| p.lr))
                .collect();
            lrs.sort_by(f64::total_cmp);
            lrs.dedup();
            let mut header = vec!["lr".to_string()];
            for i in 0..configs.len() {
                let n = chunk * CONFIGS_PER_TABLE + i + 1;
                header.push(format!("#{n} loss"));
                header.push(format!("#{n} max logit"));
            }
            let mut t = new_table(header);
            for lr in lrs {
                let mut row = vec![format!("{lr:.0e}")];
                for c in configs {
                    let p = c.curve.iter().find(|p| p.lr == lr);
                    row.push(p.map(|p| format!("{:.3}", p.loss)).unwrap_or_default());
                    row.push(
                        p.and_then(|p| p.max_attn_logit)
                            .map(logit)
                            .unwrap_or_default(),
                    );
                }
                t.add_row(row);
            }
            t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use orrery_core::workloads::stability::LrCurvePoint;

    fn config(name: &str) -> LrSensitivity {
        let lrs = [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1];
        LrSensitivity {
            config: name.into(),
            lr_sensitivity: 0.5727,
            lrs_per_seed: vec![0.58, 0.57, 0.56],
            lrs_spread: Some(0.0099),
            best_lr: 1e-2,
            best_loss: 1.245,
            largest_stable_lr: Some(0.3),
            initial_loss: 5.561,
            curve: lrs
                .iter()
                .map(|&lr| LrCurvePoint {
                    lr,
                    loss: 2.5,
                    seeds: 3,
                    max_attn_logit: Some(987_654.3),
                })
                .collect(),
        }
    }

    #[test]
    fn tables_fit_100_columns() {
        // The widest configurations the reproduction has: the combined part's five swept values.
        let long = "params.qk_layernorm=false, params.z_loss=0.0, training.warmup_steps=0, \
                    training.weight_decay=0.1, training.weight_decay_mode=\"coupled\"";
        let rows: Vec<LrSensitivity> = (0..7).map(|i| config(&format!("{long} {i}"))).collect();
        let text = format!(
            "{}\n{}",
            sensitivity(&rows),
            by_lr(&rows)
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        );
        for line in text.lines() {
            assert!(
                line.chars().count() <= 100,
                "{} columns: {line}",
                line.chars().count()
            );
        }
        assert_eq!(by_lr(&rows).len(), 3, "7 configurations, 3 per table");
        // Every number is still there, unwrapped.
        assert!(text.contains("9.88e5"), "{text}");
        assert!(text.contains("2.500"));
    }
}
