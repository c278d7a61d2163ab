//! `/api/v1/trials/{id}`: a trial, its history, summaries, logs and state, and its worker token.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use orrery_core::dto::{
    ErrorBody, InitStatus, PhaseChange, Provenance, Summary, TrialDto, TrialStateUpdate,
};

use crate::error::{body_error, ApiResult};
use crate::logs::{self, LogDir, LogFile};
use crate::state::Logs;
use crate::store::Store;

#[utoipa::path(get, path = "/api/v1/trials/{id}", tag = "trials",
    params(("id" = i64, Path, description = "trial id")),
    responses(
        (status = 200, body = TrialDto),
        (status = 404, description = "no such trial", body = ErrorBody),
    ))]
pub(super) async fn get_trial(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(store.trial(id).await?))
}

/// The trial's state history, oldest first: created (Pending), then each phase change.
#[utoipa::path(get, path = "/api/v1/trials/{id}/history", tag = "trials",
    params(("id" = i64, Path, description = "trial id")),
    responses(
        (status = 200, body = Vec<PhaseChange>),
        (status = 404, description = "no such trial", body = ErrorBody),
    ))]
pub(super) async fn trial_history(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(store.trial_history(id).await?))
}

/// Count, first, last, min and max of each of the trial's metrics, by name.
#[utoipa::path(get, path = "/api/v1/trials/{id}/summaries", tag = "trials",
    params(("id" = i64, Path, description = "trial id")),
    responses(
        (status = 200, body = BTreeMap<String, Summary>),
        (status = 404, description = "no such trial", body = ErrorBody),
    ))]
pub(super) async fn trial_summaries(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(store.trial_summaries(id).await?))
}

/// The log file of each of the trial's attempts, where this server knows the work folder of the
/// `orrery run` that ran it; empty otherwise (on a cluster: `kubectl logs`).
#[utoipa::path(get, path = "/api/v1/trials/{id}/logs", tag = "trials",
    params(("id" = i64, Path, description = "trial id")),
    responses(
        (status = 200, body = Vec<LogFile>),
        (status = 404, description = "no such trial", body = ErrorBody),
    ))]
pub(super) async fn trial_logs(
    State(store): State<Arc<Store>>,
    State(Logs(logs)): State<Logs>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    let found = logs::trial_dir(&store, logs.as_deref(), id).await?;
    Ok(Json(
        found
            .map(|dir| LogDir::attempts(&dir, id))
            .unwrap_or_default(),
    ))
}

/// A worker or executor reports the trial's phase. A finished trial cannot move again.
#[utoipa::path(post, path = "/api/v1/trials/{id}/state", tag = "trials",
    params(("id" = i64, Path, description = "trial id")),
    request_body = TrialStateUpdate,
    responses(
        (status = 200, body = TrialDto),
        (status = 404, description = "no such trial", body = ErrorBody),
        (status = 409, description = "the trial is already finished", body = ErrorBody),
        (status = 422, description = "not a state update", body = ErrorBody),
    ))]
pub(super) async fn set_trial_state(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
    body: Result<Json<TrialStateUpdate>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(u) = body.map_err(body_error)?;
    Ok(Json(
        store
            .set_trial_state(id, u.phase, u.attempts, u.message.as_deref())
            .await?,
    ))
}

/// A new worker token for the trial (admin only); any earlier one stops working. The response is
/// the only place the token is ever shown.
#[utoipa::path(post, path = "/api/v1/trials/{id}/token", tag = "trials",
    params(("id" = i64, Path, description = "trial id")),
    responses(
        (status = 201, description = "the new token", body = MintedToken),
        (status = 404, description = "no such trial", body = ErrorBody),
    ))]
pub(super) async fn mint_trial_token(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    let token = store.mint_trial_token(id).await?;
    Ok((
        StatusCode::CREATED,
        Json(MintedToken {
            trial_id: id,
            token,
        }),
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct MintedToken {
    trial_id: i64,
    /// Shown once; the server keeps only its SHA-256.
    token: String,
}

/// Records what ran the trial's latest attempt: the worker's and libtorch's versions, the device,
/// the SHA-256 of the resolved configuration and of the data (and of the weights it started from).
/// The trial's worker token may write it.
#[utoipa::path(put, path = "/api/v1/trials/{id}/provenance", tag = "trials",
    params(("id" = i64, Path, description = "trial id")),
    request_body = Provenance,
    responses(
        (status = 204, description = "recorded"),
        (status = 404, description = "no such trial", body = ErrorBody),
        (status = 422, description = "not a provenance record", body = ErrorBody),
    ))]
pub(super) async fn set_provenance(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
    body: Result<Json<Provenance>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<StatusCode> {
    let Json(p) = body.map_err(body_error)?;
    store.set_provenance(id, &p).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Where the trial's initial weights stand: `none` (no `model.init_from`), `ready` (the source's
/// `model` artifact, with its SHA-256, which the trial's worker may download), `waiting` (the
/// source has not finished; the trial stays Pending) or `failed` (the source failed or left no
/// model; the trial fails with the message). Executors ask before starting a trial, and its worker
/// before it downloads.
#[utoipa::path(get, path = "/api/v1/trials/{id}/init-source", tag = "trials",
    params(("id" = i64, Path, description = "trial id")),
    responses(
        (status = 200, body = InitStatus),
        (status = 404, description = "no such trial", body = ErrorBody),
    ))]
pub(super) async fn init_source(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
) -> ApiResult<Json<InitStatus>> {
    Ok(Json(store.init_status(id).await?))
}
