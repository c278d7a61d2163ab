//! `/api/v1/experiments`: create, list, read, the leaderboard and the workload's analysis.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};

use orrery_core::dto::{
    CheckedSpec, ErrorBody, ExperimentDto, ExperimentStateUpdate, Leaderboard, TrialDto,
};
use orrery_core::schedule::TrialPhase;
use orrery_core::workloads::Analysis;

use crate::error::{body_error, ApiError, ApiResult};
use crate::store::{Store, StoreError};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub(super) struct CreateQuery {
    /// The submitter's key for this experiment: a second POST with the same key returns the
    /// first experiment (200) instead of creating another (201).
    external_id: Option<String>,
}

/// The body is the spec's YAML text. A bad spec is refused whole with one detail line per problem.
#[utoipa::path(post, path = "/api/v1/experiments", tag = "experiments",
    params(CreateQuery),
    request_body(content = String, content_type = "application/yaml",
        description = "the experiment spec (YAML)"),
    responses(
        (status = 201, description = "created, with its trials", body = ExperimentDto),
        (status = 200, description = "an experiment with this externalId already exists", body = ExperimentDto),
        (status = 422, description = "the spec is invalid: one detail per problem", body = ErrorBody),
    ))]
pub(super) async fn create_experiment(
    State(store): State<Arc<Store>>,
    q: Result<Query<CreateQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let (text, loaded) = load(&body)?;
    let external_id = q.external_id.filter(|k| !k.is_empty());
    let (exp, created) = store
        .register_experiment(text, &loaded, external_id.as_deref())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(exp)))
}

/// Checks a spec as `POST /experiments` would (validation, then what depends on other
/// experiments: `model.init_from`'s source, dml's law) and stores nothing: `orrery validate --api`.
#[utoipa::path(post, path = "/api/v1/experiments/check", tag = "experiments",
    request_body(content = String, content_type = "application/yaml",
        description = "the experiment spec (YAML)"),
    responses(
        (status = 200, description = "the spec would be accepted", body = CheckedSpec),
        (status = 422, description = "the spec is invalid: one detail per problem", body = ErrorBody),
    ))]
pub(super) async fn check_experiment(
    State(store): State<Arc<Store>>,
    body: Bytes,
) -> ApiResult<Json<CheckedSpec>> {
    let (text, loaded) = load(&body)?;
    Ok(Json(CheckedSpec {
        trials: store.check_experiment(text, &loaded).await?,
    }))
}

/// The body as a validated spec, as submitted to a cluster (`training.precision: auto` resolved for
/// the trials' device), with its text.
fn load(body: &[u8]) -> Result<(&str, orrery_core::LoadedSpec), ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the spec must be UTF-8 YAML"))?;
    let mut loaded = orrery_core::load_spec(text).map_err(|errs| ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        body: ErrorBody {
            error: format!("the spec has {} problem(s)", errs.0.len()),
            details: errs.0.iter().map(|e| e.to_string()).collect(),
        },
    })?;
    // Submitted to a cluster (the operator, or a user with the API).
    loaded.resolve_precision_on_cluster();
    Ok((text, loaded))
}

/// An executor (the operator) reports the experiment's phase. A finished experiment keeps its phase.
#[utoipa::path(post, path = "/api/v1/experiments/{id}/state", tag = "experiments",
    params(("id" = i64, Path, description = "experiment id")),
    request_body = ExperimentStateUpdate,
    responses(
        (status = 200, body = ExperimentDto),
        (status = 404, description = "no such experiment", body = ErrorBody),
        (status = 409, description = "the experiment is already finished", body = ErrorBody),
        (status = 422, description = "not a state update", body = ErrorBody),
    ))]
pub(super) async fn set_experiment_state(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
    body: Result<Json<ExperimentStateUpdate>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(u) = body.map_err(body_error)?;
    Ok(Json(
        store
            .set_experiment_phase(id, u.phase, u.reason.as_deref(), u.message.as_deref())
            .await?,
    ))
}

/// Newest first.
#[utoipa::path(get, path = "/api/v1/experiments", tag = "experiments",
    responses((status = 200, body = Vec<ExperimentDto>)))]
pub(super) async fn list_experiments(
    State(store): State<Arc<Store>>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(store.list_experiments().await?))
}

/// Deletes a finished experiment with its trials, metrics and artifacts (their stored bytes
/// too). A pending or running experiment is refused (409): cancel it first.
#[utoipa::path(delete, path = "/api/v1/experiments/{id}", tag = "experiments",
    params(("id" = i64, Path, description = "experiment id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "no such experiment", body = ErrorBody),
        (status = 409, description = "the experiment is still pending or running", body = ErrorBody),
    ))]
pub(super) async fn delete_experiment(
    State(store): State<Arc<Store>>,
    State(artifacts): State<crate::state::ArtifactStorage>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    let keys = store.delete_experiment(id).await?;
    if let Some(a) = &artifacts.0 {
        for k in &keys {
            a.delete(k).await;
        }
    } else if !keys.is_empty() {
        tracing::warn!(experiment = id, artifacts = keys.len(), "deleted an experiment's artifact rows on a server without artifact storage; their bytes stay where they were");
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/experiments/{id}", tag = "experiments",
    params(("id" = i64, Path, description = "experiment id")),
    responses(
        (status = 200, body = ExperimentDto),
        (status = 404, description = "no such experiment", body = ErrorBody),
    ))]
pub(super) async fn get_experiment(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(store.experiment(id).await?))
}

/// The experiment's trials in index order.
#[utoipa::path(get, path = "/api/v1/experiments/{id}/trials", tag = "experiments",
    params(("id" = i64, Path, description = "experiment id")),
    responses(
        (status = 200, body = Vec<TrialDto>),
        (status = 404, description = "no such experiment", body = ErrorBody),
    ))]
pub(super) async fn list_trials(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(store.trials(id).await?))
}

/// Documents the leaderboard's query; the handler reads the pairs itself because `param.PATH`
/// keys are open-ended.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(super) struct LeaderboardParams {
    /// `objective` (default), `index`, `metric:NAME` (its last value) or `param:PATH`.
    sort: Option<String>,
    /// Default: the objective's goal for `objective`, else `asc`.
    #[param(inline)]
    order: Option<SortOrder>,
    /// Only trials in this phase.
    phase: Option<TrialPhase>,
    /// Rows per page (at most 1000; default 1000).
    #[param(minimum = 0, maximum = 1000)]
    limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum SortOrder {
    Asc,
    Desc,
}

/// The trials ranked by the objective; `sort`, `order`, `phase`, `param.PATH=VALUE`,
/// `min.KEY=X`/`max.KEY=X` (KEY `objective` or `metric:NAME`: bounds on its last value), `limit`
/// and `offset` give a filtered, sorted page of it (`orrery_core::leaderboard`), `total` counting the
/// matches before paging. Ranks are those of the full ranking whatever the view.
#[utoipa::path(get, path = "/api/v1/experiments/{id}/leaderboard", tag = "experiments",
    params(("id" = i64, Path, description = "experiment id"), LeaderboardParams),
    responses(
        (status = 200, body = Leaderboard),
        (status = 400, description = "a bad sort, order, phase, limit or parameter filter", body = ErrorBody),
        (status = 404, description = "no such experiment", body = ErrorBody),
    ))]
pub(super) async fn leaderboard(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<impl IntoResponse> {
    let query = orrery_core::leaderboard::Query::from_pairs(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )
    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    match store.leaderboard_view(id, &query).await {
        Err(StoreError::Invalid(e)) => Err(ApiError::new(StatusCode::BAD_REQUEST, e)),
        other => Ok(Json(other?)),
    }
}

/// An experiment's analysis, as its workload computes it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentAnalysis {
    pub experiment_id: i64,
    /// Tagged by `workload`: what follows is that workload's analysis.
    #[serde(flatten)]
    pub analysis: Analysis,
}

/// The workload's analysis of an experiment's results (stability: LR sensitivity per
/// configuration, its spread over seeds, the best and largest stable LR, attention logits by LR).
#[utoipa::path(get, path = "/api/v1/experiments/{id}/analysis", tag = "experiments",
    params(("id" = i64, Path, description = "experiment id")),
    responses(
        (status = 200, body = ExperimentAnalysis),
        (status = 404, description = "no such experiment", body = ErrorBody),
        (status = 422, description = "the experiment's workload is not one this server knows", body = ErrorBody),
    ))]
pub(super) async fn analysis(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    let (_, analysis) = store.analysis(id).await?;
    Ok(Json(ExperimentAnalysis {
        experiment_id: id,
        analysis,
    }))
}
