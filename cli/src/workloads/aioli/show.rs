//! What `orrery run` and `orrery show` print for an aioli experiment: average test perplexity per
//! configuration, the fitted mixing law, each learned mixture over steps (a few steps of it) and
//! the interaction matrices Aioli estimated, as tables that fit 100 columns.

use comfy_table::Table;

use orrery_core::workloads::aioli::trajectory::{InteractionMatrix, MixtureTrace};
use orrery_core::workloads::aioli::{AioliAnalysis, MethodSummary, TEST_AVG_PPL};

use crate::table::new_table;

/// Rows of a mixture-over-steps table: the first and last logged steps and evenly spaced ones
/// between (a DoReMi proxy logs its weights at every log step).
pub(crate) const TRACE_ROWS: usize = 8;

pub fn summary(analysis: &AioliAnalysis) -> String {
    if analysis.methods.is_empty() {
        return format!("Average test perplexity: no finished trial reported {TEST_AVG_PPL} yet.");
    }
    let mut out = format!(
        "Average test perplexity over groups per configuration (mean over seeds; lower is better):\n{}",
        methods(&analysis.methods)
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
    for t in &analysis.mixture_over_steps {
        out.push_str(&format!(
            "\n\nMixture over steps, {} ({}, mean over {} seed(s)):\n{}",
            t.config,
            t.source.trim_end_matches('/'),
            t.seeds,
            trace(t)
        ));
    }
    for m in &analysis.interactions {
        out.push_str(&format!(
            "\n\n{} of {} (row: the group whose validation loss dropped; column: the group trained on), mean over {} round(s), {} with every diagonal entry > 0:\n{}",
            m.metric, m.config, m.rounds, m.diagonal_positive, matrix(m)
        ));
    }
    out
}

fn methods(rows: &[MethodSummary]) -> Table {
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

/// The indices of at most `n` of `len` rows: the first, the last and evenly spaced between.
pub(crate) fn spread(len: usize, n: usize) -> Vec<usize> {
    if len <= n {
        return (0..len).collect();
    }
    if n < 2 {
        return (0..n).collect();
    }
    let mut out: Vec<usize> = (0..n).map(|i| i * (len - 1) / (n - 1)).collect();
    out.dedup();
    out
}

fn trace(t: &MixtureTrace) -> Table {
    let groups: Vec<String> = t
        .points
        .iter()
        .flat_map(|p| p.p.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut table = new_table(
        std::iter::once("step".to_string())
            .chain(groups.iter().cloned())
            .collect(),
    );
    for i in spread(t.points.len(), TRACE_ROWS) {
        let at = &t.points[i];
        table.add_row(
            std::iter::once(at.step.to_string())
                .chain(
                    groups
                        .iter()
                        .map(|g| at.p.get(g).map_or("–".into(), |w| format!("{w:.3}"))),
                )
                .collect::<Vec<_>>(),
        );
    }
    table
}

fn matrix(m: &InteractionMatrix) -> Table {
    let mut t = new_table(
        std::iter::once(m.metric.clone())
            .chain(m.groups.iter().cloned())
            .collect(),
    );
    for r in &m.groups {
        t.add_row(
            std::iter::once(r.clone())
                .chain(m.groups.iter().map(|c| format!("{:.4}", m.mean[r][c])))
                .collect::<Vec<_>>(),
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_keeps_the_ends_and_spaces_the_rest() {
        assert_eq!(spread(3, 8), vec![0, 1, 2]);
        assert_eq!(spread(50, 8), vec![0, 7, 14, 21, 28, 35, 42, 49]);
        assert_eq!(spread(9, 8), vec![0, 1, 2, 3, 4, 5, 6, 8]);
    }
}
