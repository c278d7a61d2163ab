//! Schema migrations, written once with sea-query so they run on SQLite and PostgreSQL alike.

use sea_orm::TransactionTrait;
use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Init),
            Box::new(M0002ExternalId),
            Box::new(M0003TrialToken),
            Box::new(M0004TrialScore),
            Box::new(M0005SqliteClusteredMetrics),
            Box::new(M0006TrialEvents),
            Box::new(M0007Artifacts),
            Box::new(M0008TrialProvenance),
        ]
    }
}

struct M0001Init;

/// Recorded as `migration` (the name the derive gave it when it was the only one): databases
/// created then must see it as applied.
impl MigrationName for M0001Init {
    fn name(&self) -> &str {
        "migration"
    }
}

fn id_col(backend: sea_orm::DatabaseBackend) -> ColumnDef {
    let mut c = ColumnDef::new(Alias::new("id"));
    // SQLite only auto-increments an INTEGER PRIMARY KEY (which is 64-bit there).
    if backend == sea_orm::DatabaseBackend::Sqlite {
        c.integer();
    } else {
        c.big_integer();
    }
    c.not_null().auto_increment().primary_key();
    c
}

fn text(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .text()
        .not_null()
        .to_owned()
}
fn text_null(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).text().null().to_owned()
}
fn big(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
        .big_integer()
        .not_null()
        .to_owned()
}
fn dbl_null(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).double().null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Init {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let backend = m.get_database_backend();
        m.create_table(
            Table::create()
                .table(Alias::new("experiments"))
                .col(id_col(backend))
                .col(text("name"))
                .col(text("workload"))
                .col(text("phase"))
                .col(text("objective_metric"))
                .col(text("goal"))
                .col(text("spec_yaml"))
                .col(big("trial_count"))
                .col(text_null("reason"))
                .col(text_null("message"))
                .col(text("created_at"))
                .col(text("updated_at"))
                .col(text_null("finished_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("experiments_name")
                .table(Alias::new("experiments"))
                .col(Alias::new("name"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Alias::new("trials"))
                .col(id_col(backend))
                .col(big("experiment_id"))
                .col(big("trial_index"))
                .col(text("phase"))
                .col(big("attempts"))
                .col(text("params_json"))
                .col(text("config_json"))
                .col(text_null("message"))
                .col(text("created_at"))
                .col(text_null("started_at"))
                .col(text_null("finished_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from(Alias::new("trials"), Alias::new("experiment_id"))
                        .to(Alias::new("experiments"), Alias::new("id"))
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("trials_experiment_index")
                .table(Alias::new("trials"))
                .col(Alias::new("experiment_id"))
                .col(Alias::new("trial_index"))
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Alias::new("metrics"))
                .col(big("trial_id"))
                .col(text("name"))
                .col(big("step"))
                .col(dbl_null("value"))
                .col(ColumnDef::new(Alias::new("wall_time")).double().not_null())
                .primary_key(
                    Index::create()
                        .col(Alias::new("trial_id"))
                        .col(Alias::new("name"))
                        .col(Alias::new("step")),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Alias::new("metric_summaries"))
                .col(big("trial_id"))
                .col(text("name"))
                .col(big("count"))
                .col(big("first_step"))
                .col(dbl_null("first_value"))
                .col(big("last_step"))
                .col(dbl_null("last_value"))
                .col(dbl_null("min_value"))
                .col(dbl_null("max_value"))
                .primary_key(
                    Index::create()
                        .col(Alias::new("trial_id"))
                        .col(Alias::new("name")),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in ["metric_summaries", "metrics", "trials", "experiments"] {
            m.drop_table(Table::drop().table(Alias::new(t)).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// `experiments.external_id`: the submitter's own key for an experiment (the operator uses the
/// Kubernetes object's UID), so a retried registration finds the experiment instead of adding a
/// second one.
struct M0002ExternalId;

impl MigrationName for M0002ExternalId {
    fn name(&self) -> &str {
        "m0002_experiment_external_id"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002ExternalId {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        add_unique_text_column(m, "experiments", "external_id", "experiments_external_id").await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        drop_indexed_column(m, "experiments", "external_id", "experiments_external_id").await
    }
}

/// Adds a nullable text column with a unique index (NULLs do not collide, on either database).
async fn add_unique_text_column(
    m: &SchemaManager<'_>,
    table: &str,
    column: &str,
    index: &str,
) -> Result<(), DbErr> {
    m.alter_table(
        Table::alter()
            .table(Alias::new(table))
            .add_column(text_null(column))
            .to_owned(),
    )
    .await?;
    m.create_index(
        Index::create()
            .name(index)
            .table(Alias::new(table))
            .col(Alias::new(column))
            .unique()
            .to_owned(),
    )
    .await
}

async fn drop_indexed_column(
    m: &SchemaManager<'_>,
    table: &str,
    column: &str,
    index: &str,
) -> Result<(), DbErr> {
    m.drop_index(
        Index::drop()
            .name(index)
            .table(Alias::new(table))
            .to_owned(),
    )
    .await?;
    m.alter_table(
        Table::alter()
            .table(Alias::new(table))
            .drop_column(Alias::new(column))
            .to_owned(),
    )
    .await
}

/// `trials.token_hash`: the SHA-256 (hex) of the trial's worker token, which may write that trial's
/// metrics and state and nothing else. Only the hash is stored; the token is shown once, when it is
/// minted. Indexed: a presented token is identified by its hash.
struct M0003TrialToken;

impl MigrationName for M0003TrialToken {
    fn name(&self) -> &str {
        "m0003_trial_token_hash"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0003TrialToken {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        add_unique_text_column(m, "trials", "token_hash", "trials_token_hash").await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        drop_indexed_column(m, "trials", "token_hash", "trials_token_hash").await
    }
}

/// `trials.score` (see the entity) with the index that serves leaderboard pages and ranks, and an
/// index on `(experiment_id, phase)` for the per-phase counts; existing trials are scored.
struct M0004TrialScore;

impl MigrationName for M0004TrialScore {
    fn name(&self) -> &str {
        "m0004_trial_score"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0004TrialScore {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Alias::new("trials"))
                .add_column(dbl_null("score"))
                .to_owned(),
        )
        .await?;
        for (name, cols) in [
            ("trials_score", ["experiment_id", "score", "trial_index"]),
            ("trials_phase", ["experiment_id", "phase", "trial_index"]),
        ] {
            let mut idx = Index::create();
            idx.name(name).table(Alias::new("trials"));
            for c in cols {
                idx.col(Alias::new(c));
            }
            m.create_index(idx.to_owned()).await?;
        }
        m.get_connection()
            .execute_unprepared(crate::ranking::SET_SCORE)
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for name in ["trials_score", "trials_phase"] {
            m.drop_index(
                Index::drop()
                    .name(name)
                    .table(Alias::new("trials"))
                    .to_owned(),
            )
            .await?;
        }
        m.alter_table(
            Table::alter()
                .table(Alias::new("trials"))
                .drop_column(Alias::new("score"))
                .to_owned(),
        )
        .await
    }
}

/// SQLite only: `metrics` becomes a `WITHOUT ROWID` table, stored in its primary key's order
/// `(trial_id, name, step)`, so one metric's history is a contiguous range of the table instead
/// of an index range plus a table lookup per point (10,000-point histories read about twice as
/// fast). PostgreSQL keeps its heap and primary-key index.
struct M0005SqliteClusteredMetrics;

impl MigrationName for M0005SqliteClusteredMetrics {
    fn name(&self) -> &str {
        "m0005_sqlite_clustered_metrics"
    }
}

const METRICS_COLUMNS: &str = "trial_id, name, step, value, wall_time";

/// Rebuilds `metrics` with the same columns and key, `WITHOUT ROWID` or not.
async fn rebuild_sqlite_metrics(m: &SchemaManager<'_>, without_rowid: bool) -> Result<(), DbErr> {
    if m.get_database_backend() != sea_orm::DatabaseBackend::Sqlite {
        return Ok(());
    }
    let tail = if without_rowid { " WITHOUT ROWID" } else { "" };
    // One transaction on one connection: the pool would otherwise spread the four statements
    // over connections that may not see each other's schema yet.
    let db = m.get_connection().begin().await?;
    for sql in [
        format!(
            "CREATE TABLE metrics_rebuilt (trial_id bigint NOT NULL, name text NOT NULL, \
             step bigint NOT NULL, value double NULL, wall_time double NOT NULL, \
             PRIMARY KEY (trial_id, name, step)){tail}"
        ),
        format!(
            "INSERT INTO metrics_rebuilt ({METRICS_COLUMNS}) SELECT {METRICS_COLUMNS} FROM metrics"
        ),
        "DROP TABLE metrics".to_string(),
        "ALTER TABLE metrics_rebuilt RENAME TO metrics".to_string(),
    ] {
        db.execute_unprepared(&sql).await?;
    }
    db.commit().await
}

#[async_trait::async_trait]
impl MigrationTrait for M0005SqliteClusteredMetrics {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        rebuild_sqlite_metrics(m, true).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        rebuild_sqlite_metrics(m, false).await
    }
}

/// `trial_events`: each phase change of a trial (phase, attempts, message, time), the trial page's
/// state history. Appended by `Store::set_trial_state`; the creation itself is `trials.created_at`.
struct M0006TrialEvents;

impl MigrationName for M0006TrialEvents {
    fn name(&self) -> &str {
        "m0006_trial_events"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0006TrialEvents {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Alias::new("trial_events"))
                .col(id_col(m.get_database_backend()))
                .col(big("trial_id"))
                .col(text("phase"))
                .col(big("attempts"))
                .col(text_null("message"))
                .col(text("at"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("trial_events_trial")
                .table(Alias::new("trial_events"))
                .col(Alias::new("trial_id"))
                .col(Alias::new("id"))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Alias::new("trial_events")).to_owned())
            .await
    }
}

/// `artifacts`: each trial's stored artifacts (name, size, SHA-256, step, the storage key), one row
/// per `(trial_id, name)`.
struct M0007Artifacts;

impl MigrationName for M0007Artifacts {
    fn name(&self) -> &str {
        "m0007_artifacts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0007Artifacts {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Alias::new("artifacts"))
                .col(id_col(m.get_database_backend()))
                .col(big("trial_id"))
                .col(text("name"))
                .col(big("size"))
                .col(text("sha256"))
                .col(ColumnDef::new(Alias::new("step")).big_integer().null())
                .col(text("object_key"))
                .col(text("created_at"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("artifacts_trial_name")
                .table(Alias::new("artifacts"))
                .col(Alias::new("trial_id"))
                .col(Alias::new("name"))
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Alias::new("artifacts")).to_owned())
            .await
    }
}

/// `trials.provenance_json`: what ran the trial's latest attempt, as its worker reported it.
struct M0008TrialProvenance;

impl MigrationName for M0008TrialProvenance {
    fn name(&self) -> &str {
        "m0008_trial_provenance"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0008TrialProvenance {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Alias::new("trials"))
                .add_column(text_null("provenance_json"))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Alias::new("trials"))
                .drop_column(Alias::new("provenance_json"))
                .to_owned(),
        )
        .await
    }
}
