//! The store: every read and write of experiments, trials and metrics. The HTTP handlers and the
//! local executor both go through it, so each rule (idempotent ingest, summaries, transitions) is
//! written once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use serde_json::Value;

use orrery_core::dto::{
    ExperimentDto, Leaderboard, LeaderboardRow, MetricPoint, PhaseChange, Summary, TrialDto,
};
use orrery_core::schedule::{Counts, ExperimentPhase, TrialPhase};
use orrery_core::spec::{Goal, TrialConfig};
use orrery_core::LoadedSpec;

use crate::entities::{experiment, metric, summary, trial, trial_event};
use crate::events::{Bus, Event};
use crate::migration::Migrator;
use crate::ranking::{Sql, SET_SCORE};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Rows per INSERT: well under SQLite's bound-variable limit at five columns a row.
const INSERT_CHUNK: usize = 1000;

pub struct Store {
    db: DatabaseConnection,
    /// SQLite allows one writer; serialising writes here turns "database is locked" into a short wait.
    write: tokio::sync::Mutex<()>,
    /// Committed changes, announced for live pages (`crate::events`).
    events: Bus,
}

fn parse_phase<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|e: String| StoreError::Invalid(format!("stored phase: {e}")))
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    /// `sqlite://PATH?mode=rwc` for a file; `postgres://...` once PostgreSQL is enabled.
    pub async fn open(url: &str) -> Result<Store> {
        let mut opts = ConnectOptions::new(url.to_string());
        opts.max_connections(8)
            .sqlx_logging(false)
            .map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(30))
                    .foreign_keys(true)
            });
        let db = Database::connect(opts).await?;
        migrate(&db).await?;
        Ok(Store {
            db,
            write: tokio::sync::Mutex::new(()),
            events: Bus::default(),
        })
    }

    /// A SQLite file, created with its folder if missing.
    pub async fn open_sqlite(path: &std::path::Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Invalid(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        Store::open(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Where committed changes are announced.
    pub fn events(&self) -> &Bus {
        &self.events
    }

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
        let e = &spec.experiment;
        let now = now();
        let txn = self.db.begin().await?;
        let exp = experiment::ActiveModel {
            name: Set(e.metadata.name.clone()),
            workload: Set(e.spec.workload.as_str().to_string()),
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
        for t in &spec.trials {
            let config = t
                .config()
                .map_err(|e| StoreError::Invalid(format!("trial {}: {e}", t.index)))?;
            rows.push(trial::ActiveModel {
                experiment_id: Set(exp.id),
                trial_index: Set(t.index as i64),
                phase: Set(TrialPhase::Pending.as_str().into()),
                attempts: Set(0),
                params_json: Set(
                    serde_json::to_string(&t.assignments).unwrap_or_else(|_| "{}".into())
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

    /// Trials per phase, counted by the database (`trials_phase` index).
    async fn counts(&self, experiment_id: i64) -> Result<Counts> {
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

    async fn experiment_dto(&self, m: experiment::Model) -> Result<ExperimentDto> {
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

    fn trial_dto(m: trial::Model) -> Result<TrialDto> {
        let params: BTreeMap<String, Value> = serde_json::from_str(&m.params_json)
            .map_err(|e| StoreError::Invalid(format!("trial {}: stored params: {e}", m.id)))?;
        let config: TrialConfig = serde_json::from_str(&m.config_json)
            .map_err(|e| StoreError::Invalid(format!("trial {}: stored config: {e}", m.id)))?;
        Ok(TrialDto {
            id: m.id,
            experiment_id: m.experiment_id,
            index: m.trial_index,
            phase: parse_phase(&m.phase)?,
            attempts: m.attempts.max(0) as u32,
            params,
            config,
            message: m.message,
            started_at: m.started_at,
            finished_at: m.finished_at,
        })
    }

    pub async fn trial(&self, id: i64) -> Result<TrialDto> {
        let m = trial::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("trial {id}")))?;
        Self::trial_dto(m)
    }

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

    /// The trial's state history, oldest first: its creation (Pending), then each phase change.
    pub async fn trial_history(&self, id: i64) -> Result<Vec<PhaseChange>> {
        let t = trial::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("trial {id}")))?;
        let mut out = vec![PhaseChange {
            phase: TrialPhase::Pending,
            attempts: 0,
            message: None,
            at: t.created_at,
        }];
        for e in trial_event::Entity::find()
            .filter(trial_event::Column::TrialId.eq(id))
            .order_by_asc(trial_event::Column::Id)
            .all(&self.db)
            .await?
        {
            out.push(PhaseChange {
                phase: parse_phase(&e.phase)?,
                attempts: e.attempts.max(0) as u32,
                message: e.message,
                at: e.at,
            });
        }
        Ok(out)
    }

    /// One trial's metric summaries by name (the trial page's list of metrics).
    pub async fn trial_summaries(&self, id: i64) -> Result<BTreeMap<String, Summary>> {
        self.trial(id).await?;
        Ok(self.summaries(&[id]).await?.remove(&id).unwrap_or_default())
    }

    /// The experiment's trials in index order.
    pub async fn trials(&self, experiment_id: i64) -> Result<Vec<TrialDto>> {
        self.experiment(experiment_id).await?;
        trial::Entity::find()
            .filter(trial::Column::ExperimentId.eq(experiment_id))
            .order_by_asc(trial::Column::TrialIndex)
            .all(&self.db)
            .await?
            .into_iter()
            .map(Self::trial_dto)
            .collect()
    }

    /// Moves a trial to `phase`. A terminal trial cannot move again (409), except to the phase it is in.
    pub async fn set_trial_state(
        &self,
        id: i64,
        phase: TrialPhase,
        attempts: Option<u32>,
        message: Option<&str>,
    ) -> Result<TrialDto> {
        let _w = self.write.lock().await;
        let m = trial::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("trial {id}")))?;
        let current: TrialPhase = parse_phase(&m.phase)?;
        if current.is_terminal() && current != phase {
            return Err(StoreError::Conflict(format!(
                "trial {id} is already {current}; it cannot become {phase}"
            )));
        }
        let now = now();
        // The history records changes, not repeated reports of the same state.
        let changed = current != phase || attempts.is_some_and(|n| i64::from(n) != m.attempts);
        let event = trial_event::ActiveModel {
            trial_id: Set(id),
            phase: Set(phase.as_str().into()),
            attempts: Set(attempts.map(i64::from).unwrap_or(m.attempts)),
            message: Set(message.map(str::to_string)),
            at: Set(now.clone()),
            ..Default::default()
        };
        let mut a: trial::ActiveModel = m.into();
        a.phase = Set(phase.as_str().into());
        if let Some(n) = attempts {
            a.attempts = Set(n as i64);
        }
        a.message = Set(message.map(str::to_string));
        if phase == TrialPhase::Running {
            a.started_at = Set(Some(now.clone()));
        }
        if phase.is_terminal() {
            a.finished_at = Set(Some(now));
        }
        let txn = self.db.begin().await?;
        let updated = a.update(&txn).await?;
        if changed {
            event.insert(&txn).await?;
        }
        self.rescore(&txn, id).await?;
        txn.commit().await?;
        let t = Self::trial_dto(updated)?;
        self.events.publish(Event::Trial {
            experiment_id: t.experiment_id,
            trial_id: id,
            phase,
        });
        Ok(t)
    }

    /// Mints a new worker token for a trial, replacing any earlier one, and returns it: the only
    /// time it is seen. Only its SHA-256 is stored.
    pub async fn mint_trial_token(&self, trial_id: i64) -> Result<String> {
        let token = crate::auth::new_token();
        let _w = self.write.lock().await;
        let m = trial::Entity::find_by_id(trial_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("trial {trial_id}")))?;
        let mut a: trial::ActiveModel = m.into();
        a.token_hash = Set(Some(crate::auth::hash_hex(&token)));
        a.update(&self.db).await?;
        Ok(token)
    }

    /// The trial whose worker token has this SHA-256 (hex).
    pub async fn trial_of_token(&self, hash_hex: &str) -> Result<Option<i64>> {
        Ok(trial::Entity::find()
            .filter(trial::Column::TokenHash.eq(hash_hex))
            .one(&self.db)
            .await?
            .map(|m| m.id))
    }

    /// Stores a batch of points for one trial. Idempotent on `(trial, name, step)`: a point already
    /// stored is left as it is and not counted twice in the summary. Returns the points accepted.
    pub async fn ingest(&self, trial_id: i64, points: &[MetricPoint]) -> Result<usize> {
        for p in points {
            orrery_core::metrics::check_name(&p.name).map_err(StoreError::Invalid)?;
            if p.step < 0 {
                return Err(StoreError::Invalid(format!(
                    "metric {}: step must be ≥ 0 (got {})",
                    p.name, p.step
                )));
            }
        }
        let experiment_id = trial::Entity::find_by_id(trial_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("trial {trial_id}")))?
            .experiment_id;
        let objective = experiment::Entity::find_by_id(experiment_id)
            .one(&self.db)
            .await?
            .map(|e| e.objective_metric)
            .unwrap_or_default();
        // Group by name; within a batch the first point for a key wins, as it would across batches.
        let mut by_name: BTreeMap<&str, BTreeMap<i64, &MetricPoint>> = BTreeMap::new();
        for p in points {
            by_name
                .entry(p.name.as_str())
                .or_default()
                .entry(p.step)
                .or_insert(p);
        }
        // SQLite has one writer: queue here rather than on "database is locked". PostgreSQL
        // ingests in parallel, and several API replicas may write the same trial: the database
        // itself says which rows were new and merges the summary (below), so no lock is needed.
        let backend = self.db.get_database_backend();
        let _w = match backend {
            sea_orm::DatabaseBackend::Sqlite => Some(self.write.lock().await),
            _ => None,
        };
        let txn = self.db.begin().await?;
        // Under SQLite's single writer, a metric whose every step is past its stored last step
        // (how workers report) is new throughout: it needs neither the conflict check nor
        // RETURNING, whose rows sqlx hands over one at a time.
        // `None` on PostgreSQL, whose writers do not queue: every metric takes the general path.
        let stored_last = match backend {
            sea_orm::DatabaseBackend::Sqlite => Some(last_steps(&txn, trial_id, &by_name).await?),
            _ => None,
        };
        let mut grew = Vec::new();
        let mut last_step = i64::MIN;
        for (name, pts) in &by_name {
            let all: Vec<&MetricPoint> = pts.values().copied().collect();
            let appends = stored_last.as_ref().is_some_and(|stored| {
                stored
                    .get(*name)
                    .is_none_or(|&last| all.first().is_some_and(|p| p.step > last))
            });
            let new: Vec<&MetricPoint> = if appends {
                for chunk in all.chunks(INSERT_CHUNK) {
                    txn.execute(insert_points(backend, trial_id, name, chunk, false))
                        .await?;
                }
                all
            } else {
                // Points already stored are left alone (ON CONFLICT DO NOTHING) and must not
                // reach the summary: RETURNING gives the steps this statement inserted.
                let mut new_steps = std::collections::HashSet::new();
                for chunk in all.chunks(INSERT_CHUNK) {
                    let stmt = insert_points(backend, trial_id, name, chunk, true);
                    for row in txn.query_all(stmt).await? {
                        new_steps.insert(row.try_get::<i64>("", "step")?);
                    }
                }
                all.into_iter()
                    .filter(|p| new_steps.contains(&p.step))
                    .collect()
            };
            if new.is_empty() {
                continue;
            }
            grew.push(name.to_string());
            last_step = last_step.max(new.iter().map(|p| p.step).max().unwrap_or(i64::MIN));
            summary::Entity::insert(summary_of(trial_id, name, new.into_iter()))
                .on_conflict(merge_summaries())
                .exec_without_returning(&txn)
                .await?;
        }
        if grew.contains(&objective) {
            self.rescore(&txn, trial_id).await?;
        }
        txn.commit().await?;
        if !grew.is_empty() {
            self.events.publish(Event::Metrics {
                experiment_id,
                trial_id,
                names: grew,
                last_step,
            });
        }
        Ok(points.len())
    }

    /// One metric's points in step order.
    pub async fn metric_history(&self, trial_id: i64, name: &str) -> Result<Vec<MetricPoint>> {
        // Only the three varying columns: a long history is read and decoded row by row, and
        // the name is the same on every row.
        let rows: Vec<(i64, Option<f64>, f64)> = metric::Entity::find()
            .select_only()
            .columns([
                metric::Column::Step,
                metric::Column::Value,
                metric::Column::WallTime,
            ])
            .filter(metric::Column::TrialId.eq(trial_id))
            .filter(metric::Column::Name.eq(name))
            .order_by_asc(metric::Column::Step)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(step, value, wall_time)| MetricPoint {
                name: name.to_string(),
                step,
                value: value.unwrap_or(f64::NAN),
                wall_time,
            })
            .collect())
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
    async fn rescore(&self, conn: &impl ConnectionTrait, trial_id: i64) -> Result<()> {
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

    /// Number of stored points of a trial (tests and diagnostics).
    pub async fn count_points(&self, trial_id: i64) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(metric::Entity::find()
            .filter(metric::Column::TrialId.eq(trial_id))
            .count(&self.db)
            .await?)
    }
}

/// Brings the schema up to date. On PostgreSQL several processes may start at once (API
/// replicas, a rollout's old and new Pod): a session-level advisory lock, held on a connection of
/// its own for the duration, lets one migrate while the others wait and then find nothing to do.
async fn migrate(db: &DatabaseConnection) -> Result<()> {
    if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return Ok(Migrator::up(db, None).await?);
    }
    /// Any constant shared by every Orrery process ("orrery" in ASCII).
    const LOCK: i64 = 0x6f72_7265_7279;
    let lock_conn = db.begin().await?; // a connection of its own, until commit
    lock_conn
        .execute_unprepared(&format!("SELECT pg_advisory_xact_lock({LOCK})"))
        .await?;
    let migrated = Migrator::up(db, None).await;
    lock_conn.commit().await?; // releases the lock
    Ok(migrated?)
}

fn goal_str(g: Goal) -> &'static str {
    match g {
        Goal::Minimize => "minimize",
        Goal::Maximize => "maximize",
    }
}

/// SQLite turns NaN into NULL anyway; doing it here makes both databases agree. ±inf are kept.
fn stored_value(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

/// The stored last step of each metric of a batch that has points already. The summary is written
/// in the same transaction as the points, so its `last_step` is the largest stored step.
async fn last_steps(
    txn: &sea_orm::DatabaseTransaction,
    trial_id: i64,
    by_name: &BTreeMap<&str, BTreeMap<i64, &MetricPoint>>,
) -> Result<HashMap<String, i64>> {
    let rows: Vec<(String, i64)> = summary::Entity::find()
        .select_only()
        .columns([summary::Column::Name, summary::Column::LastStep])
        .filter(summary::Column::TrialId.eq(trial_id))
        .filter(summary::Column::Name.is_in(by_name.keys().copied()))
        .into_tuple()
        .all(txn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// `INSERT INTO metrics ...` for points of one trial and one metric; with `dedupe`, `ON CONFLICT
/// DO NOTHING RETURNING step` says which were new. Written out rather than through sea-orm's
/// models to control how values are bound (below).
fn insert_points(
    backend: sea_orm::DatabaseBackend,
    trial_id: i64,
    name: &str,
    points: &[&MetricPoint],
    dedupe: bool,
) -> sea_orm::Statement {
    let mut sql = Sql::new(
        backend,
        "INSERT INTO metrics (trial_id, name, step, value, wall_time) VALUES ",
    );
    // PostgreSQL: the trial and name are bound once (`$1`, `$2`) for every row. SQLite: every
    // value is bound in order, as sqlx binds numbered `?n` placeholders in quadratic time
    // (`Sql::bind_in_order`).
    let shared = (backend == sea_orm::DatabaseBackend::Postgres)
        .then(|| (sql.bind(trial_id), sql.bind(name)));
    for (i, p) in points.iter().enumerate() {
        let (t, n) = match &shared {
            Some((t, n)) => (t.clone(), n.clone()),
            None => (sql.bind_in_order(trial_id), sql.bind_in_order(name)),
        };
        let (step, value, wall) = (
            sql.bind_in_order(p.step),
            sql.bind_in_order(stored_value(p.value)),
            sql.bind_in_order(p.wall_time),
        );
        if i > 0 {
            sql.push(",");
        }
        sql.push(&format!("({t},{n},{step},{value},{wall})"));
    }
    if dedupe {
        sql.push(" ON CONFLICT (trial_id, name, step) DO NOTHING RETURNING step");
    }
    sql.statement()
}

/// The summary of a trial's new points of one metric; [`merge_summaries`] adds it to the stored one.
fn summary_of<'a>(
    trial_id: i64,
    name: &str,
    points: impl Iterator<Item = &'a MetricPoint>,
) -> summary::ActiveModel {
    let mut s = summary::Model {
        trial_id,
        name: name.to_string(),
        count: 0,
        first_step: i64::MAX,
        first_value: None,
        last_step: i64::MIN,
        last_value: None,
        min_value: None,
        max_value: None,
    };
    for p in points {
        let v = stored_value(p.value);
        s.count += 1;
        if p.step < s.first_step {
            s.first_step = p.step;
            s.first_value = v;
        }
        if p.step > s.last_step {
            s.last_step = p.step;
            s.last_value = v;
        }
        if let Some(x) = v.filter(|x| x.is_finite()) {
            s.min_value = Some(s.min_value.map_or(x, |m| m.min(x)));
            s.max_value = Some(s.max_value.map_or(x, |m| m.max(x)));
        }
    }
    s.into()
}

/// Merges a new points' summary into the stored one inside the database, in one atomic upsert:
/// counts add, the earlier first and the later last win, min and max ignore NULL (no finite
/// value). New points never share a step with stored ones, so first/last never tie. The same SQL
/// runs on SQLite and PostgreSQL (`excluded` is the proposed row on both).
fn merge_summaries() -> OnConflict {
    const T: &str = "metric_summaries";
    let pick = |cond: &str, col: &str| {
        Expr::cust(format!(
            "CASE WHEN {cond} THEN excluded.{col} ELSE {T}.{col} END"
        ))
    };
    let first = format!("excluded.first_step < {T}.first_step");
    let last = format!("excluded.last_step > {T}.last_step");
    let lower = format!("{T}.min_value IS NULL OR excluded.min_value < {T}.min_value");
    let higher = format!("{T}.max_value IS NULL OR excluded.max_value > {T}.max_value");
    OnConflict::columns([summary::Column::TrialId, summary::Column::Name])
        .values([
            (
                summary::Column::Count,
                Expr::cust(format!("{T}.count + excluded.count")),
            ),
            (summary::Column::FirstStep, pick(&first, "first_step")),
            (summary::Column::FirstValue, pick(&first, "first_value")),
            (summary::Column::LastStep, pick(&last, "last_step")),
            (summary::Column::LastValue, pick(&last, "last_value")),
            (summary::Column::MinValue, pick(&lower, "min_value")),
            (summary::Column::MaxValue, pick(&higher, "max_value")),
        ])
        .to_owned()
}
