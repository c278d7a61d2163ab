//! Metrics: idempotent ingest with each metric's summary merged in the database, and metrics'
//! histories.

use std::collections::{BTreeMap, HashMap};

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};

use orrery_core::dto::MetricPoint;

use super::{Result, Store, StoreError};
use crate::entities::{experiment, metric, summary, trial};
use crate::events::Event;
use crate::ranking::Sql;

/// Rows per INSERT: well under SQLite's bound-variable limit at five columns a row.
pub(super) const INSERT_CHUNK: usize = 1000;

impl Store {
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

    /// The histories of some metrics of some trials (`wanted`: trial id → metric names), by trial
    /// then name, each in step order; a metric with no point is absent. One read per chunk of
    /// trials, filtered in the database by trial and by the union of the names.
    pub async fn metric_histories(
        &self,
        wanted: &[(i64, Vec<String>)],
    ) -> Result<orrery_core::workloads::Histories> {
        let mut out = orrery_core::workloads::Histories::new();
        // Bound variables per read: a chunk's trial ids plus the union of their names, well
        // under SQLite's limit of 32,766.
        const TRIALS_PER_READ: usize = 64;
        for chunk in wanted.chunks(TRIALS_PER_READ) {
            let ids: Vec<i64> = chunk.iter().map(|(t, _)| *t).collect();
            let mut names: Vec<&String> = chunk.iter().flat_map(|(_, n)| n).collect();
            names.sort();
            names.dedup();
            if names.is_empty() {
                continue;
            }
            let rows: Vec<(i64, String, i64, Option<f64>)> = metric::Entity::find()
                .select_only()
                .columns([
                    metric::Column::TrialId,
                    metric::Column::Name,
                    metric::Column::Step,
                    metric::Column::Value,
                ])
                .filter(metric::Column::TrialId.is_in(ids))
                .filter(metric::Column::Name.is_in(names.into_iter().cloned()))
                .order_by_asc(metric::Column::TrialId)
                .order_by_asc(metric::Column::Name)
                .order_by_asc(metric::Column::Step)
                .into_tuple()
                .all(&self.db)
                .await?;
            for (trial, name, step, value) in rows {
                // The union may name a metric another trial of the chunk asked for.
                let asked = chunk.iter().any(|(t, n)| *t == trial && n.contains(&name));
                if asked {
                    out.entry(trial)
                        .or_default()
                        .entry(name)
                        .or_default()
                        .push((step, value.unwrap_or(f64::NAN)));
                }
            }
        }
        Ok(out)
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
