//! Terminal tables: the leaderboard and the experiment list (each workload's own are in its module
//! under `crate::workloads`). Every table fits 100 columns: cells wrap rather than run on.

use comfy_table::{presets::UTF8_BORDERS_ONLY, Cell, ContentArrangement, Table};

use orrery_core::dto::{ExperimentDto, Leaderboard};

pub use orrery_core::dto::fmt_value;

/// The widest a table may be: a 100-column terminal.
pub const WIDTH: u16 = 100;

pub fn new_table(header: Vec<String>) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(WIDTH)
        .set_header(header);
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use orrery_core::dto::{ExperimentDto, Leaderboard, LeaderboardRow};
    use orrery_core::schedule::{Counts, ExperimentPhase, TrialPhase};
    use orrery_core::spec::Goal;

    #[test]
    fn a_leaderboard_with_many_swept_fields_fits_100_columns() {
        // The combined part of the stability reproduction sweeps six fields.
        let text = include_str!("../../experiments/stability/combined-cpu.yaml");
        let loaded = orrery_core::load_spec(text).unwrap();
        let board = Leaderboard {
            experiment: ExperimentDto {
                id: 1,
                name: "stab-combined-cpu".into(),
                workload: "stability".into(),
                phase: ExperimentPhase::Succeeded,
                objective_metric: "eval/loss".into(),
                goal: Goal::Minimize,
                counts: Counts::default(),
                message: None,
                created_at: "2026-01-01T00:00:00Z".into(),
                finished_at: None,
            },
            rows: (0..5)
                .map(|i| LeaderboardRow {
                    rank: Some(i as u32 + 1),
                    trial_id: i as i64 + 1,
                    index: i as i64,
                    phase: TrialPhase::Succeeded,
                    params: loaded.trials[i].assignments.clone(),
                    objective: Some(1.2345),
                    summaries: BTreeMap::new(),
                })
                .collect(),
            total: 5,
        };
        let table = super::leaderboard(&board, 5);
        for line in table.lines() {
            assert!(line.chars().count() <= 100, "{line}");
        }
        assert!(table.contains("1.2345"), "{table}");
    }
}
