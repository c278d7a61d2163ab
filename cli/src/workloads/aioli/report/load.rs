//! What the report is computed from, read from the database: each part's newest experiment and
//! the workload's analysis of it (which reads the histories of the metrics that change over a
//! run: the learned mixtures and the interaction matrices).

use std::collections::BTreeMap;

use anyhow::Result;

use orrery_api::Store;
use orrery_core::dto::Leaderboard;
use orrery_core::workloads::aioli::AioliAnalysis;
use orrery_core::workloads::Analysis;

use super::{COMMAND, PARTS};
use crate::workloads::reproduction;

pub struct Inputs {
    pub boards: BTreeMap<&'static str, Leaderboard>,
    /// Per part, the aioli analysis of its board.
    pub analyses: BTreeMap<&'static str, AioliAnalysis>,
}

pub async fn load(store: &Store) -> Result<Inputs> {
    let boards = reproduction::boards(store, &PARTS).await?;
    if boards.is_empty() {
        anyhow::bail!(
            "none of the aioli experiments ({}) is in the database; run {COMMAND}",
            PARTS.map(|p| p.experiment).join(", ")
        );
    }
    let mut analyses = BTreeMap::new();
    for (part, board) in &boards {
        match store.analysis(board.experiment.id).await?.1 {
            Analysis::Aioli(a) => {
                analyses.insert(*part, a);
            }
            _ => anyhow::bail!(
                "experiment {} \"{}\" is not an aioli experiment",
                board.experiment.id,
                board.experiment.name
            ),
        }
    }
    Ok(Inputs { boards, analyses })
}
