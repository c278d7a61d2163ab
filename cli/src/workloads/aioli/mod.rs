//! The aioli workload on the command line: average test perplexity per method (mean ± std over
//! seeds, Δ vs stratified) after the leaderboard.

use orrery_core::dto::Leaderboard;
use orrery_core::workloads::aioli::{self as a, MethodSummary};

use super::CliWorkload;
use crate::plot::Chart;
use crate::table::new_table;

pub struct Aioli;

impl CliWorkload for Aioli {
    fn summary(&self, board: &Leaderboard) -> String {
        let methods = a::analysis::analyse(board).methods;
        if methods.is_empty() {
            return format!(
                "Average test perplexity: no finished trial reported {} yet.",
                a::TEST_AVG_PPL
            );
        }
        format!(
            "Average test perplexity over groups per configuration (mean over seeds; lower is better):\n{}",
            table(&methods)
        )
    }

    fn charts(&self, _board: &Leaderboard) -> Vec<(&'static str, Chart)> {
        Vec::new()
    }

    fn charts_need(&self) -> &'static str {
        "nothing: orrery plot draws no aioli chart; each trial's page charts its mixture (mix/p/…) and losses"
    }
}

fn table(rows: &[MethodSummary]) -> comfy_table::Table {
    let mut t = new_table(
        [
            "#",
            "configuration",
            "avg test ppl",
            "± std",
            "seeds",
            "Δ vs stratified",
        ]
        .map(String::from)
        .to_vec(),
    );
    for (i, r) in rows.iter().enumerate() {
        t.add_row(vec![
            (i + 1).to_string(),
            r.config.clone(),
            format!("{:.4}", r.avg_test_ppl),
            r.std
                .map(|s| format!("{s:.4}"))
                .unwrap_or_else(|| "one seed".into()),
            r.seeds.to_string(),
            match (r.delta_vs_stratified, r.delta_pct_vs_stratified) {
                (Some(d), Some(p)) => format!("{d:+.4} ({p:+.2} %)"),
                _ => "no stratified run".into(),
            },
        ]);
    }
    t
}
