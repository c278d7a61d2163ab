//! Leaderboards: each trial's score, the ranked board and its filtered, sorted pages, and the
//! workload's analysis of a board.

use std::collections::{BTreeMap, HashMap};

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use orrery_core::dto::{Leaderboard, LeaderboardRow, Summary};
use orrery_core::schedule::TrialPhase;
use orrery_core::spec::Goal;
use orrery_core::workloads::{Analysis, Workload};

use super::{parse_phase, Result, Store, StoreError};
use crate::entities::summary;
use crate::ranking::{Sql, SET_SCORE};

impl Store {
    /// Each experiment's best final objective value, by experiment id (experiments without a
    /// ranked trial are absent). One grouped read of the `trials_score` index: `score` is the
    /// objective signed so that lower is better, so the best is its minimum.
    pub async fn best_objectives(&self) -> Result<HashMap<i64, f64>> {
        let rows = self
            .db
            .query_all(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                "SELECT t.experiment_id, e.goal, MIN(t.score) AS best FROM trials t \
                 JOIN experiments e ON e.id = t.experiment_id WHERE t.score IS NOT NULL \
                 GROUP BY t.experiment_id, e.goal",
            ))
            .await?;
        let mut out = HashMap::with_capacity(rows.len());
        for r in rows {
            let best: f64 = r.try_get("", "best")?;
            let goal: String = r.try_get("", "goal")?;
            let value = if goal == goal_str(Goal::Maximize) {
                -best
            } else {
                best
            };
            out.insert(r.try_get("", "experiment_id")?, value);
        }
        Ok(out)
    }

    pub async fn summaries(
        &self,
        trial_ids: &[i64],
    ) -> Result<HashMap<i64, BTreeMap<String, Summary>>> {
        let mut out: HashMap<i64, BTreeMap<String, Summary>> = HashMap::new();
        for chunk in trial_ids.chunks(500) {
            for s in summary::Entity::find()
                .filter(summary::Column::TrialId.is_in(chunk.to_vec()))
                .all(&self.db)
                .await?
            {
                out.entry(s.trial_id).or_default().insert(
                    s.name,
                    Summary {
                        count: s.count,
                        first_step: s.first_step,
                        first: s.first_value.or(Some(f64::NAN)),
                        last_step: s.last_step,
                        last: s.last_value.or(Some(f64::NAN)),
                        min: s.min_value,
                        max: s.max_value,
                    },
                );
            }
        }
        Ok(out)
    }

    /// The experiment's leaderboard and its workload's analysis of it.
    pub async fn analysis(&self, experiment_id: i64) -> Result<(Leaderboard, Analysis)> {
        let board = self.leaderboard(experiment_id).await?;
        let analysis = self.analysis_of(&board).await?;
        Ok((board, analysis))
    }

    /// The workload's analysis of `board`, with the metric histories it asked for.
    pub async fn analysis_of(&self, board: &Leaderboard) -> Result<Analysis> {
        let workload: Workload = board
            .experiment
            .workload
            .parse()
            .map_err(StoreError::Invalid)?;
        let histories = self
            .metric_histories(&workload.histories_needed(board))
            .await?;
        Ok(workload.analyse(board, &histories))
    }

    /// Trials ranked by the objective's final value. Trials without a finite objective (diverged,
    /// failed, not yet reported) come after the ranked ones, in index order.
    pub async fn leaderboard(&self, experiment_id: i64) -> Result<Leaderboard> {
        let experiment = self.experiment(experiment_id).await?;
        let trials = self.trials(experiment_id).await?;
        let ids: Vec<i64> = trials.iter().map(|t| t.id).collect();
        let mut summaries = self.summaries(&ids).await?;
        let mut rows: Vec<LeaderboardRow> = trials
            .into_iter()
            .map(|t| {
                let summaries = summaries.remove(&t.id).unwrap_or_default();
                let objective = summaries
                    .get(&experiment.objective_metric)
                    .and_then(|s| s.last);
                LeaderboardRow {
                    rank: None,
                    trial_id: t.id,
                    index: t.index,
                    phase: t.phase,
                    params: t.params,
                    objective,
                    summaries,
                }
            })
            .collect();
        let goal = experiment.goal;
        let ranked =
            |r: &LeaderboardRow| r.objective.filter(|v| v.is_finite() && r.phase.is_ranked());
        rows.sort_by(|a, b| match (ranked(a), ranked(b)) {
            (Some(x), Some(y)) => {
                let ord = x.total_cmp(&y);
                let ord = if goal == Goal::Maximize {
                    ord.reverse()
                } else {
                    ord
                };
                ord.then(a.index.cmp(&b.index))
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.index.cmp(&b.index),
        });
        let mut rank = 0;
        for r in &mut rows {
            if ranked(r).is_some() {
                rank += 1;
                r.rank = Some(rank);
            }
        }
        let total = rows.len();
        Ok(Leaderboard {
            experiment,
            rows,
            total,
        })
    }

    /// Recomputes one trial's `score` (its place in the ranking) after its phase or objective
    /// changed.
    pub(super) async fn rescore(&self, conn: &impl ConnectionTrait, trial_id: i64) -> Result<()> {
        let mut sql = Sql::new(conn.get_database_backend(), SET_SCORE);
        let id = sql.bind(trial_id);
        sql.push(" WHERE id = ").push(&id);
        conn.execute(sql.statement()).await?;
        Ok(())
    }

    /// Recomputes every trial's `score` in an experiment (after rows were written around the
    /// store, as the benchmarks' seeding does).
    pub async fn rescore_experiment(&self, experiment_id: i64) -> Result<()> {
        let mut sql = Sql::new(self.db.get_database_backend(), SET_SCORE);
        let id = sql.bind(experiment_id);
        sql.push(" WHERE experiment_id = ").push(&id);
        self.db.execute(sql.statement()).await?;
        Ok(())
    }

    /// One page of the leaderboard as `q` asks for it, computed by the database
    /// (`crate::ranking`): the same rows, order, ranks and total as
    /// `orrery_core::leaderboard::apply` on [`Store::leaderboard`], without loading every trial.
    /// `Err(Invalid)` for a query that makes no sense (the API answers 400).
    pub async fn leaderboard_view(
        &self,
        experiment_id: i64,
        q: &orrery_core::leaderboard::Query,
    ) -> Result<Leaderboard> {
        let experiment = self.experiment(experiment_id).await?;
        let view = q.view(experiment.goal).map_err(StoreError::Invalid)?;
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all(crate::ranking::page(
                backend,
                experiment_id,
                experiment.goal,
                &experiment.objective_metric,
                &view,
            ))
            .await?;
        let filtered = view.phase.is_some() || !view.params.is_empty() || !view.ranges.is_empty();
        let total = if filtered {
            let row = self
                .db
                .query_one(crate::ranking::count(
                    backend,
                    experiment_id,
                    &experiment.objective_metric,
                    &view,
                ))
                .await?;
            row.map(|r| r.try_get::<i64>("", "n"))
                .transpose()?
                .unwrap_or(0) as usize
        } else {
            experiment.counts.total as usize
        };
        let mut page = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get("", "id")?;
            let index: i64 = r.try_get("", "trial_index")?;
            let phase: TrialPhase = parse_phase(&r.try_get::<String>("", "phase")?)?;
            let params: BTreeMap<String, Value> =
                serde_json::from_str(&r.try_get::<String>("", "params_json")?)
                    .map_err(|e| StoreError::Invalid(format!("trial {id}: stored params: {e}")))?;
            let score: Option<f64> = r.try_get("", "score")?;
            page.push((id, index, phase, params, score));
        }
        let ids: Vec<i64> = page.iter().map(|p| p.0).collect();
        let mut summaries = self.summaries(&ids).await?;
        let mut out = Vec::with_capacity(page.len());
        // Consecutive ranked rows of the unfiltered best-first order have consecutive ranks:
        // one count finds the first, the rest follow.
        let best_first = view.key == orrery_core::leaderboard::Key::Objective
            && view.desc == (experiment.goal == Goal::Maximize)
            && !filtered;
        let ranked: Vec<i64> = page
            .iter()
            .filter(|p| p.4.is_some())
            .map(|p| p.0)
            .take(if best_first { 1 } else { usize::MAX })
            .collect();
        let mut ahead: HashMap<i64, i64> = HashMap::new();
        if !ranked.is_empty() {
            for r in self
                .db
                .query_all(crate::ranking::ahead_of(backend, experiment_id, &ranked))
                .await?
            {
                ahead.insert(r.try_get("", "id")?, r.try_get("", "ahead")?);
            }
        }
        let mut next_rank: Option<u32> = None;
        for (id, index, phase, params, score) in page {
            let rank = match score {
                None => None,
                Some(_) if best_first && next_rank.is_some() => next_rank,
                Some(_) => ahead.get(&id).map(|&n| n as u32 + 1),
            };
            next_rank = rank.map(|r| r + 1);
            let summaries = summaries.remove(&id).unwrap_or_default();
            let objective = summaries
                .get(&experiment.objective_metric)
                .and_then(|s| s.last);
            out.push(LeaderboardRow {
                rank,
                trial_id: id,
                index,
                phase,
                params,
                objective,
                summaries,
            });
        }
        Ok(Leaderboard {
            experiment,
            rows: out,
            total,
        })
    }
}

pub(super) fn goal_str(g: Goal) -> &'static str {
    match g {
        Goal::Minimize => "minimize",
        Goal::Maximize => "maximize",
    }
}
