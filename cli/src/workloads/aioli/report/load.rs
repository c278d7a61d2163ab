//! What the report is computed from, read from the database: each part's newest experiment, and
//! the histories of the metrics that change over a run (the mixture, the raw interaction matrix).

use std::collections::BTreeMap;

use anyhow::Result;

use orrery_api::Store;
use orrery_core::dto::{Leaderboard, LeaderboardRow};
use orrery_core::workloads::aioli as a;

use super::{COMMAND, GROUPS, PARTS};
use crate::workloads::reproduction;

/// (step, value) points of one metric of one trial.
pub type History = Vec<(i64, f64)>;

/// One finished trial's histories, by metric name.
pub struct TrialHistories {
    pub params: BTreeMap<String, serde_json::Value>,
    pub metrics: BTreeMap<String, History>,
}

pub struct Inputs {
    pub boards: BTreeMap<&'static str, Leaderboard>,
    /// Per part, the histories of its aioli trials' `mix/p/…` and `mix/A_raw/…`.
    pub histories: BTreeMap<&'static str, Vec<TrialHistories>>,
}

/// True for a row whose trial learned its mixture (its `mix/p` changed during the run).
pub fn learned(r: &LeaderboardRow) -> bool {
    GROUPS.iter().any(|g| {
        r.summaries
            .get(&a::mix_p(g))
            .is_some_and(|s| s.min != s.max)
    })
}

pub async fn load(store: &Store) -> Result<Inputs> {
    let boards = reproduction::boards(store, &PARTS).await?;
    if boards.is_empty() {
        anyhow::bail!(
            "none of the aioli experiments ({}) is in the database; run {COMMAND}",
            PARTS.map(|p| p.experiment).join(", ")
        );
    }
    let mut names: Vec<String> = GROUPS.iter().map(|g| a::mix_p(g)).collect();
    for r in GROUPS {
        for c in GROUPS {
            names.push(a::mix_a_raw(r, c));
        }
    }
    let mut histories = BTreeMap::new();
    for (part, board) in &boards {
        let mut trials = Vec::new();
        for row in board
            .rows
            .iter()
            .filter(|r| r.phase.is_result() && learned(r))
        {
            let mut metrics = BTreeMap::new();
            for name in &names {
                let pts: History = store
                    .metric_history(row.trial_id, name)
                    .await?
                    .into_iter()
                    .map(|p| (p.step, p.value))
                    .collect();
                if !pts.is_empty() {
                    metrics.insert(name.clone(), pts);
                }
            }
            trials.push(TrialHistories {
                params: row.params.clone(),
                metrics,
            });
        }
        histories.insert(*part, trials);
    }
    Ok(Inputs { boards, histories })
}
