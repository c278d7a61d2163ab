//! sea-orm entities: one module per table. Times are RFC 3339 strings (UTC), which sort correctly and
//! read the same on SQLite and PostgreSQL.

pub mod experiment {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "experiments")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub name: String,
        pub workload: String,
        pub phase: String,
        pub objective_metric: String,
        pub goal: String,
        /// The spec exactly as submitted.
        pub spec_yaml: String,
        pub trial_count: i64,
        pub reason: Option<String>,
        pub message: Option<String>,
        pub created_at: String,
        pub updated_at: String,
        pub finished_at: Option<String>,
        /// The submitter's key (the operator: the Experiment object's UID); unique when set.
        pub external_id: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod trial {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "trials")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub experiment_id: i64,
        pub trial_index: i64,
        pub phase: String,
        pub attempts: i64,
        /// The swept values (JSON object: dotted path → value).
        pub params_json: String,
        /// The resolved `TrialConfig` (JSON).
        pub config_json: String,
        pub message: Option<String>,
        pub created_at: String,
        pub started_at: Option<String>,
        pub finished_at: Option<String>,
        /// SHA-256 (hex) of the worker token, once one is minted.
        pub token_hash: Option<String>,
        /// The trial's place in the ranking: its final objective value, negated when the goal is
        /// to maximise (lower is better either way), NULL when the trial is not ranked. Kept by
        /// the store (`store::SET_SCORE`) so a page of a 100,000-trial leaderboard is an index scan.
        pub score: Option<f64>,
        /// What ran the latest attempt (`orrery_core::dto::Provenance` as JSON), once reported.
        pub provenance_json: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod trial_event {
    use sea_orm::entity::prelude::*;

    /// One phase change of a trial, in the order they happened (`id`).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "trial_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub trial_id: i64,
        pub phase: String,
        pub attempts: i64,
        pub message: Option<String>,
        pub at: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod metric {
    use sea_orm::entity::prelude::*;

    /// One point. The primary key makes a resent point a no-op. `value` is NULL for NaN (SQLite
    /// cannot store NaN).
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "metrics")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub trial_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub step: i64,
        pub value: Option<f64>,
        pub wall_time: f64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod summary {
    use sea_orm::entity::prelude::*;

    /// First, last, min, max and count of one metric of one trial, maintained on ingest so the
    /// leaderboard never scans metric history.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "metric_summaries")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub trial_id: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub count: i64,
        pub first_step: i64,
        pub first_value: Option<f64>,
        pub last_step: i64,
        pub last_value: Option<f64>,
        pub min_value: Option<f64>,
        pub max_value: Option<f64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod artifact {
    use sea_orm::entity::prelude::*;

    /// A trial's stored artifact (a checkpoint, a final model): what it is and where its bytes
    /// are (`crate::artifacts`). Unique by `(trial_id, name)`; the row is written only once its
    /// bytes are stored and checked, so a listed artifact is always whole.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "artifacts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub trial_id: i64,
        pub name: String,
        pub size: i64,
        /// SHA-256 of the bytes, lower-case hex.
        pub sha256: String,
        /// The training step it was taken at, when the uploader said.
        pub step: Option<i64>,
        /// Its key in the artifact storage.
        pub object_key: String,
        pub created_at: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
