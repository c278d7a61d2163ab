//! Experiments: register a validated spec with its trials, read, list, set the phase, delete.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

use orrery_core::dto::ExperimentDto;
use orrery_core::schedule::{Counts, ExperimentPhase, TrialPhase};
use orrery_core::spec::Goal;
use orrery_core::LoadedSpec;

use super::init_from::SourceCache;
use super::leaderboard::goal_str;
use super::metrics::INSERT_CHUNK;
use super::{now, parse_phase, Result, Store, StoreError};
use crate::entities::{artifact, experiment, metric, summary, trial, trial_event};
use crate::events::Event;
use crate::ranking::Sql;

/// A trial as it will be stored: its index, swept values and resolved configuration.
type ResolvedTrial = (
    usize,
    std::collections::BTreeMap<String, serde_json::Value>,
    orrery_core::spec::TrialConfig,
);

impl Store {
    /// Stores a validated spec and its trials, all or nothing.
    pub async fn create_experiment(&self, yaml: &str, spec: &LoadedSpec) -> Result<ExperimentDto> {
        Ok(self.register_experiment(yaml, spec, None).await?.0)
    }

    /// Like [`Store::create_experiment`], but idempotent on `external_id`: when an experiment with
    /// that key exists it is returned as it is (`false`: nothing was created).
    pub async fn register_experiment(
        &self,
        yaml: &str,
        spec: &LoadedSpec,
        external_id: Option<&str>,
    ) -> Result<(ExperimentDto, bool)> {
        let _w = self.write.lock().await;
        if let Some(key) = external_id {
            let found = experiment::Entity::find()
                .filter(experiment::Column::ExternalId.eq(key))
                .one(&self.db)
                .await?;
            if let Some(m) = found {
                return Ok((self.experiment_dto(m).await?, false));
            }
        }
        let resolved = self.resolve_trials(yaml, spec).await?;
        let e = &spec.experiment;
        let now = now();
        let txn = self.db.begin().await?;
        let exp = experiment::ActiveModel {
            name: Set(e.metadata.name.clone()),
            workload: Set(e.spec.workload().as_str().to_string()),
            phase: Set(ExperimentPhase::Pending.as_str().into()),
            objective_metric: Set(e.spec.objective.metric.clone()),
            goal: Set(goal_str(e.spec.objective.goal).into()),
            spec_yaml: Set(yaml.to_string()),
            trial_count: Set(spec.trials.len() as i64),
            reason: Set(None),
            message: Set(None),
            created_at: Set(now.clone()),
            updated_at: Set(now.clone()),
            finished_at: Set(None),
            external_id: Set(external_id.map(str::to_string)),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
        let mut rows = Vec::with_capacity(spec.trials.len());
        for (index, assignments, config) in resolved {
            rows.push(trial::ActiveModel {
                experiment_id: Set(exp.id),
                trial_index: Set(index as i64),
                phase: Set(TrialPhase::Pending.as_str().into()),
                attempts: Set(0),
                params_json: Set(
                    serde_json::to_string(&assignments).unwrap_or_else(|_| "{}".into())
                ),
                config_json: Set(serde_json::to_string(&config).unwrap_or_else(|_| "{}".into())),
                message: Set(None),
                created_at: Set(now.clone()),
                started_at: Set(None),
                finished_at: Set(None),
                ..Default::default()
            });
        }
        for chunk in rows.chunks(INSERT_CHUNK) {
            trial::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        self.events.publish(Event::Experiment {
            experiment_id: exp.id,
            phase: ExperimentPhase::Pending,
        });
        Ok((self.experiment(exp.id).await?, true))
    }

    /// Each trial's values and configuration, with what depends on other experiments (dml's
    /// mixture, `model.init_from`'s source) resolved against this database, before anything is
    /// written. `Invalid` (a 422) names what does not resolve.
    async fn resolve_trials(&self, yaml: &str, spec: &LoadedSpec) -> Result<Vec<ResolvedTrial>> {
        let mut resolved = Vec::with_capacity(spec.trials.len());
        let mut laws = std::collections::BTreeMap::new();
        let mut sources = SourceCache::new();
        for t in &spec.trials {
            let mut config = t
                .config()
                .map_err(|e| StoreError::Invalid(format!("trial {}: {e}", t.index)))?;
            let mut assignments = t.assignments.clone();
            self.resolve_dml(&mut config, &mut assignments, &mut laws)
                .await?;
            self.resolve_init_from(yaml, t, &mut config, &mut sources)
                .await?;
            resolved.push((t.index, assignments, config));
        }
        Ok(resolved)
    }

    /// Checks that a validated spec resolves against this database (what `register_experiment`
    /// would refuse with 422), writing nothing; returns its trial count.
    pub async fn check_experiment(&self, yaml: &str, spec: &LoadedSpec) -> Result<usize> {
        Ok(self.resolve_trials(yaml, spec).await?.len())
    }

    /// Trials per phase, counted by the database (`trials_phase` index).
    pub(super) async fn counts(&self, experiment_id: i64) -> Result<Counts> {
        let mut sql = Sql::new(
            self.db.get_database_backend(),
            "SELECT phase, COUNT(*) AS n FROM trials WHERE experiment_id = ",
        );
        let e = sql.bind(experiment_id);
        sql.push(&e).push(" GROUP BY phase");
        let mut phases = Vec::new();
        for row in self.db.query_all(sql.statement()).await? {
            let phase: TrialPhase = parse_phase(&row.try_get::<String>("", "phase")?)?;
            let n: i64 = row.try_get("", "n")?;
            phases.extend(std::iter::repeat_n(phase, n.max(0) as usize));
        }
        Ok(Counts::of(&phases))
    }

    pub(super) async fn experiment_dto(&self, m: experiment::Model) -> Result<ExperimentDto> {
        Ok(ExperimentDto {
            id: m.id,
            counts: self.counts(m.id).await?,
            name: m.name,
            workload: m.workload,
            phase: parse_phase(&m.phase)?,
            objective_metric: m.objective_metric,
            goal: if m.goal == "maximize" {
                Goal::Maximize
            } else {
                Goal::Minimize
            },
            message: m.message,
            created_at: m.created_at,
            finished_at: m.finished_at,
        })
    }

    pub async fn experiment(&self, id: i64) -> Result<ExperimentDto> {
        let m = experiment::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("experiment {id}")))?;
        self.experiment_dto(m).await
    }

    /// An experiment by id, or the newest one with that name (names may be all digits too).
    pub async fn find_experiment(&self, id_or_name: &str) -> Result<ExperimentDto> {
        if let Ok(id) = id_or_name.parse::<i64>() {
            match self.experiment(id).await {
                Err(StoreError::NotFound(_)) => {}
                other => return other,
            }
        }
        let m = experiment::Entity::find()
            .filter(experiment::Column::Name.eq(id_or_name))
            .order_by_desc(experiment::Column::Id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("experiment \"{id_or_name}\"")))?;
        self.experiment_dto(m).await
    }

    pub async fn experiment_spec(&self, id: i64) -> Result<String> {
        experiment::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .map(|m| m.spec_yaml)
            .ok_or_else(|| StoreError::NotFound(format!("experiment {id}")))
    }

    /// Newest first.
    pub async fn list_experiments(&self) -> Result<Vec<ExperimentDto>> {
        let models = experiment::Entity::find()
            .order_by_desc(experiment::Column::Id)
            .all(&self.db)
            .await?;
        let mut out = Vec::with_capacity(models.len());
        for m in models {
            out.push(self.experiment_dto(m).await?);
        }
        Ok(out)
    }

    pub async fn set_experiment_phase(
        &self,
        id: i64,
        phase: ExperimentPhase,
        reason: Option<&str>,
        message: Option<&str>,
    ) -> Result<ExperimentDto> {
        {
            let _w = self.write.lock().await;
            let m = experiment::Entity::find_by_id(id)
                .one(&self.db)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("experiment {id}")))?;
            let current: ExperimentPhase = parse_phase(&m.phase)?;
            if current.is_terminal() && current != phase {
                return Err(StoreError::Conflict(format!(
                    "experiment {id} is already {current}"
                )));
            }
            let now = now();
            let mut a: experiment::ActiveModel = m.into();
            a.phase = Set(phase.as_str().into());
            a.reason = Set(reason.map(str::to_string));
            a.message = Set(message.map(str::to_string));
            a.updated_at = Set(now.clone());
            if phase.is_terminal() {
                a.finished_at = Set(Some(now));
            }
            a.update(&self.db).await?;
        }
        self.events.publish(Event::Experiment {
            experiment_id: id,
            phase,
        });
        self.experiment(id).await
    }

    /// Deletes a finished experiment and everything of it — trials, their state history,
    /// metrics, summaries, artifact rows — in one transaction; returns the storage keys of the
    /// artifacts, whose bytes the caller deletes (`crate::artifacts`). An experiment still
    /// pending or running is refused: cancel it first.
    pub async fn delete_experiment(&self, id: i64) -> Result<Vec<String>> {
        let _w = self.write.lock().await;
        let txn = self.db.begin().await?;
        let m = experiment::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("experiment {id}")))?;
        let phase: ExperimentPhase = parse_phase(&m.phase)?;
        if !phase.is_terminal() {
            return Err(StoreError::Conflict(format!(
                "experiment {id} is {phase}: cancel it first (POST /api/v1/experiments/{id}/state)"
            )));
        }
        let trials: Vec<i64> = trial::Entity::find()
            .select_only()
            .column(trial::Column::Id)
            .filter(trial::Column::ExperimentId.eq(id))
            .into_tuple()
            .all(&txn)
            .await?;
        let mut keys = Vec::new();
        for chunk in trials.chunks(INSERT_CHUNK) {
            let ids = chunk.to_vec();
            keys.extend(
                artifact::Entity::find()
                    .select_only()
                    .column(artifact::Column::ObjectKey)
                    .filter(artifact::Column::TrialId.is_in(ids.clone()))
                    .into_tuple::<String>()
                    .all(&txn)
                    .await?,
            );
            artifact::Entity::delete_many()
                .filter(artifact::Column::TrialId.is_in(ids.clone()))
                .exec(&txn)
                .await?;
            metric::Entity::delete_many()
                .filter(metric::Column::TrialId.is_in(ids.clone()))
                .exec(&txn)
                .await?;
            summary::Entity::delete_many()
                .filter(summary::Column::TrialId.is_in(ids.clone()))
                .exec(&txn)
                .await?;
            trial_event::Entity::delete_many()
                .filter(trial_event::Column::TrialId.is_in(ids))
                .exec(&txn)
                .await?;
        }
        trial::Entity::delete_many()
            .filter(trial::Column::ExperimentId.eq(id))
            .exec(&txn)
            .await?;
        experiment::Entity::delete_by_id(id).exec(&txn).await?;
        txn.commit().await?;
        Ok(keys)
    }
}
