//! The aioli workload on the command line: average test perplexity per method (mean ± std over
//! seeds, Δ vs stratified) and the fitted mixing law after the leaderboard, and the reproduction
//! report.

pub mod report;

use std::path::Path;

use orrery_api::Store;

use orrery_core::dto::Leaderboard;
use orrery_core::workloads::aioli::{self as a, MethodSummary};

use super::{CliWorkload, ReportFuture};
use crate::plot::Chart;
use crate::table::new_table;

pub struct Aioli;

impl CliWorkload for Aioli {
    fn summary(&self, board: &Leaderboard) -> String {
        let analysis = a::analysis::analyse(board);
        if analysis.methods.is_empty() {
            return format!(
                "Average test perplexity: no finished trial reported {} yet.",
                a::TEST_AVG_PPL
            );
        }
        let mut out = format!(
            "Average test perplexity over groups per configuration (mean over seeds; lower is better):\n{}",
            table(&analysis.methods)
        );
        if let Some(law) = &analysis.mixing_law {
            out.push_str(&format!(
                "\nMixing law L_i(p) = c_i + b_i·exp(−Σ_j A_ij p_j) on {} static trials (column {} pinned): {}; optimum {} (predicted avg test ppl {:.4}); dml trains there.",
                law.points,
                law.pinned_column,
                law.groups
                    .iter()
                    .map(|g| format!("{} R² {:.3}", g.group, g.r2))
                    .collect::<Vec<_>>()
                    .join(", "),
                law.optimum
                    .iter()
                    .map(|(g, w)| format!("{g} {w:.3}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                law.predicted_avg_test_ppl
            ));
        }
        out
    }

    fn charts(&self, _board: &Leaderboard) -> Vec<(&'static str, Chart)> {
        Vec::new()
    }

    fn charts_need(&self) -> &'static str {
        "nothing: orrery plot draws no aioli chart; each trial's page charts its mixture (mix/p/…) and losses"
    }

    fn report<'a>(&self, store: &'a Store, out: &'a Path) -> Option<ReportFuture<'a>> {
        Some(Box::pin(report::write(store, out)))
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
