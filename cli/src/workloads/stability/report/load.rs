//! What the report is computed from, read from the database: each part's newest experiment.

use std::collections::BTreeMap;

use anyhow::Result;

use orrery_api::Store;
use orrery_core::dto::Leaderboard;
use orrery_core::spec::TrainingSpec;
use orrery_core::workloads::stability as s;

use super::{COMMAND, PARTS};

/// One trial's swept values and its (step, mean log Z) points.
pub type LogZRun = (BTreeMap<String, serde_json::Value>, Vec<(i64, f64)>);

/// What the report is computed from: per part, the experiment's leaderboard and `training.eps`,
/// and (z-loss only) the log Z histories of its trials.
pub struct Inputs {
    pub boards: BTreeMap<&'static str, Leaderboard>,
    /// Each part's `training.eps` as its spec sets it (the default when it does not).
    pub eps: BTreeMap<&'static str, f64>,
    /// (trial params, mean-log-Z points) of the z-loss experiment's finished trials.
    pub logz: Vec<LogZRun>,
}

impl Inputs {
    /// `training.eps` of a part's experiment.
    pub fn eps(&self, part: &str) -> f64 {
        self.eps
            .get(part)
            .copied()
            .unwrap_or(TrainingSpec::default().eps)
    }
}

pub async fn load(store: &Store) -> Result<Inputs> {
    let mut boards = BTreeMap::new();
    let mut eps = BTreeMap::new();
    let mut logz = Vec::new();
    for part in &PARTS {
        let exp = match store.find_experiment(part.experiment).await {
            Ok(e) => e,
            Err(orrery_api::StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let board = store.leaderboard(exp.id).await?;
        let spec = orrery_core::load_spec(&store.experiment_spec(exp.id).await?)
            .map_err(|e| anyhow::anyhow!("experiment {} \"{}\": {e}", exp.id, exp.name))?;
        eps.insert(part.key, spec.experiment.spec.training.eps);
        if part.key == "z-loss" {
            for row in board.rows.iter().filter(|r| r.phase.is_result()) {
                let pts = store
                    .metric_history(row.trial_id, s::LOGZ_MEAN)
                    .await?
                    .into_iter()
                    .map(|p| (p.step, p.value))
                    .collect();
                logz.push((row.params.clone(), pts));
            }
        }
        boards.insert(part.key, board);
    }
    if boards.is_empty() {
        anyhow::bail!(
            "none of the stability experiments ({}) is in the database; run {COMMAND}",
            PARTS.map(|p| p.experiment).join(", ")
        );
    }
    Ok(Inputs { boards, eps, logz })
}
