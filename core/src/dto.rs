//! The API's request and response bodies, shared by the server, the CLI and the worker.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::schedule::{Counts, ExperimentPhase, TrialPhase};
use crate::spec::{Goal, TrialConfig};

/// JSON has no NaN or infinity; these travel as the strings "NaN", "Infinity", "-Infinity".
pub mod float {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_nan() {
            s.serialize_str("NaN")
        } else if x.is_infinite() {
            s.serialize_str(if *x > 0.0 { "Infinity" } else { "-Infinity" })
        } else {
            s.serialize_f64(*x)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum F {
            N(f64),
            S(String),
        }
        match F::deserialize(d)? {
            F::N(x) => Ok(x),
            F::S(s) => match s.as_str() {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                other => Err(serde::de::Error::custom(format!(
                    "expected a number, NaN, Infinity or -Infinity, got \"{other}\""
                ))),
            },
        }
    }

    pub mod option {
        use serde::{Deserializer, Serializer};

        pub fn serialize<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match x {
                Some(v) => super::serialize(v, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            #[derive(serde::Deserialize)]
            struct W(#[serde(with = "super")] f64);
            let o: Option<W> = serde::Deserialize::deserialize(d)?;
            Ok(o.map(|w| w.0))
        }
    }
}

/// The OpenAPI schema of a float that may be `NaN` or infinite (see [`float`]).
pub fn float_schema() -> utoipa::openapi::schema::Schema {
    float_one_of(false)
}

/// [`float_schema`] or `null`.
pub fn optional_float_schema() -> utoipa::openapi::schema::Schema {
    float_one_of(true)
}

fn float_one_of(nullable: bool) -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    let one_of = OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Number))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["NaN", "Infinity", "-Infinity"])),
        )
        .description(Some("a number, or NaN, Infinity, -Infinity as a string"));
    let one_of = if nullable {
        one_of.item(ObjectBuilder::new().schema_type(Type::Null))
    } else {
        one_of
    };
    utoipa::openapi::schema::Schema::OneOf(one_of.build())
}

/// A metric value for people: four decimals, `NaN`/`inf` spelled out, `—` for none.
pub fn fmt_value(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.4}"),
        Some(x) => x.to_string(),
        None => "—".into(),
    }
}

/// One metric point. `(trial, name, step)` is unique: sending it again changes nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricPoint {
    /// `crate::metrics::check_name`: 1–200 bytes, `/`-separated segments of letters, digits
    /// and `_-.:`.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[A-Za-z0-9_.:-]+(/[A-Za-z0-9_.:-]+)*$"
    )]
    pub name: String,
    #[schema(minimum = 0)]
    pub step: i64,
    #[serde(with = "float")]
    #[schema(schema_with = float_schema)]
    pub value: f64,
    /// Seconds since the Unix epoch when the worker measured it.
    pub wall_time: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct MetricBatch {
    pub points: Vec<MetricPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngestResult {
    /// Points in the batch (new or already stored: both are acknowledged).
    pub accepted: usize,
}

/// `POST /api/v1/experiments/{id}/state`: an executor (the operator) reports the experiment's phase.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExperimentStateUpdate {
    pub phase: ExperimentPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A trial state transition reported to the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrialStateUpdate {
    pub phase: TrialPhase,
    #[serde(default)]
    pub attempts: Option<u32>,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExperimentDto {
    pub id: i64,
    pub name: String,
    pub workload: String,
    pub phase: ExperimentPhase,
    pub objective_metric: String,
    pub goal: Goal,
    pub counts: Counts,
    pub message: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrialDto {
    pub id: i64,
    pub experiment_id: i64,
    pub index: i64,
    pub phase: TrialPhase,
    pub attempts: u32,
    /// The swept values of this trial.
    pub params: BTreeMap<String, Value>,
    /// The trial's whole configuration (the spec's sections with its sweep values applied).
    #[schema(value_type = Object)]
    pub config: TrialConfig,
    pub message: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// What ran the trial's latest attempt, as its worker reported it.
    #[serde(default)]
    pub provenance: Option<Provenance>,
}

/// What ran a trial, as its worker reports it when an attempt starts (`PUT
/// /api/v1/trials/{id}/provenance`): enough to tell two runs of one configuration apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Provenance {
    /// `orrery-worker`'s version and the commit it was built from (`0.1.0 (abc1234)`).
    pub worker_version: String,
    /// The libtorch the worker was built against.
    pub libtorch_version: String,
    /// Where it ran: `cpu (CPU model, N threads)` or `cuda:I`.
    pub device: String,
    /// SHA-256 of the resolved configuration (its JSON as the worker read it).
    pub config_sha256: String,
    /// SHA-256 of the trial's data: every group's name and its train, validation and test bytes.
    pub data_sha256: String,
    /// SHA-256 of the weights the trial started from (`model.init_from`), when it started from
    /// another trial's.
    #[serde(default)]
    pub init_from_sha256: Option<String>,
}

/// What a spec would become (`POST /api/v1/experiments/check`): its trial count, once it
/// validated and what it takes from other experiments resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckedSpec {
    pub trials: usize,
}

/// Where a trial's initial weights stand (`GET /api/v1/trials/{id}/init-source`): the
/// `model.init_from` source its experiment resolved to, and whether its weights can be had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InitStatus {
    pub state: InitState,
    /// The source trial, once known (`trial: best` names it when its experiment has finished).
    pub source_trial_id: Option<i64>,
    /// The SHA-256 of the source's `model` artifact, when `ready`.
    pub sha256: Option<String>,
    /// Why it waits or failed, in words.
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum InitState {
    /// The trial has no `model.init_from`: it starts from its own initialisation.
    None,
    /// The source finished and its `model` artifact is stored: the trial may start.
    Ready,
    /// The source has not finished: the trial stays `Pending`.
    Waiting,
    /// The source failed, was cancelled, diverged or left no model: the trial fails with this.
    Failed,
}

/// One step of a trial's state history: the phase it entered, when, after how many attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PhaseChange {
    pub phase: TrialPhase,
    pub attempts: u32,
    pub message: Option<String>,
    pub at: String,
}

/// First, last, best and count of one metric of one trial, kept on ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    pub count: i64,
    pub first_step: i64,
    #[serde(with = "float::option")]
    #[schema(schema_with = optional_float_schema)]
    pub first: Option<f64>,
    pub last_step: i64,
    #[serde(with = "float::option")]
    #[schema(schema_with = optional_float_schema)]
    pub last: Option<f64>,
    #[serde(with = "float::option")]
    #[schema(schema_with = optional_float_schema)]
    pub min: Option<f64>,
    #[serde(with = "float::option")]
    #[schema(schema_with = optional_float_schema)]
    pub max: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeaderboardRow {
    /// 1 for the best trial; trials without an objective value come last, unranked.
    pub rank: Option<u32>,
    pub trial_id: i64,
    pub index: i64,
    pub phase: TrialPhase,
    pub params: BTreeMap<String, Value>,
    /// The objective metric's final value.
    #[serde(with = "float::option")]
    #[schema(schema_with = optional_float_schema)]
    pub objective: Option<f64>,
    pub summaries: BTreeMap<String, Summary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Leaderboard {
    pub experiment: ExperimentDto,
    pub rows: Vec<LeaderboardRow>,
    /// Rows that match the query before pagination (all rows when unfiltered).
    #[serde(default)]
    pub total: usize,
}

impl Leaderboard {
    /// Every swept parameter that appears in any row, sorted: the parameter columns of a table.
    pub fn param_names(&self) -> Vec<String> {
        let names: std::collections::BTreeSet<&String> =
            self.rows.iter().flat_map(|r| r.params.keys()).collect();
        names.into_iter().cloned().collect()
    }
}

/// One of a trial's stored artifacts (`GET /api/v1/trials/{id}/artifacts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtifactDto {
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the bytes, lower-case hex (also the download's `ETag`).
    pub sha256: String,
    /// The training step it was taken at, when the uploader said.
    pub step: Option<i64>,
    /// When it was stored (RFC 3339, UTC).
    pub created: String,
}

/// An error body: every 4xx/5xx answer carries one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
    /// Spec problems, one line each, when the error is a rejected spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}
