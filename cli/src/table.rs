//! Terminal tables: the leaderboard, the experiment list and LR sensitivity.

use comfy_table::{presets::UTF8_BORDERS_ONLY, Cell, Table};

use orrery_core::analysis::LrSensitivity;
use orrery_core::dto::{ExperimentDto, Leaderboard};

pub use orrery_core::dto::fmt_value;

fn new_table(header: Vec<String>) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header);
    t
}

pub fn experiments(list: &[ExperimentDto]) -> String {
    let mut t = new_table(
        [
            "id", "name", "workload", "phase", "done", "failed", "created",
        ]
        .map(String::from)
        .to_vec(),
    );
    for e in list {
        t.add_row(vec![
            e.id.to_string(),
            e.name.clone(),
            e.workload.clone(),
            e.phase.to_string(),
            format!("{}/{}", e.counts.done(), e.counts.total),
            e.counts.failed.to_string(),
            e.created_at.clone(),
        ]);
    }
    t.to_string()
}

/// The leaderboard, best first; `limit` rows at most.
pub fn leaderboard(board: &Leaderboard, limit: usize) -> String {
    let params = board.param_names();
    let mut header: Vec<String> = vec!["rank".into(), "trial".into(), "phase".into()];
    header.extend(params.iter().cloned());
    header.push(board.experiment.objective_metric.clone());
    let mut t = new_table(header);
    for r in board.rows.iter().take(limit) {
        let mut row: Vec<Cell> = vec![
            Cell::new(r.rank.map(|x| x.to_string()).unwrap_or_else(|| "—".into())),
            Cell::new(r.index),
            Cell::new(r.phase),
        ];
        for p in &params {
            row.push(Cell::new(
                r.params.get(p).map(|v| v.to_string()).unwrap_or_default(),
            ));
        }
        row.push(Cell::new(fmt_value(r.objective)));
        t.add_row(row);
    }
    let mut out = t.to_string();
    if board.rows.len() > limit {
        out.push_str(&format!("\n… {} more trials", board.rows.len() - limit));
    }
    out
}

pub fn lr_sensitivity(rows: &[LrSensitivity]) -> String {
    let mut t = new_table(
        [
            "configuration",
            "LR sensitivity",
            "± seeds",
            "best lr",
            "largest stable lr",
            "ℓ₀",
            "loss by lr (clipped at ℓ₀)",
            "max attention logit by lr",
        ]
        .map(String::from)
        .to_vec(),
    );
    for r in rows {
        let curve: Vec<String> = r
            .curve
            .iter()
            .map(|p| format!("{:.0e}:{:.3}", p.lr, p.loss))
            .collect();
        let logits: Vec<String> = r
            .curve
            .iter()
            .filter_map(|p| Some(format!("{:.0e}:{:.3}", p.lr, p.max_attn_logit?)))
            .collect();
        t.add_row(vec![
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
            curve.join("  "),
            logits.join("  "),
        ]);
    }
    t.to_string()
}
