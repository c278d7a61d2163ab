//! `/api/v1/trials/{id}/metrics`: ingest a batch of points, read one metric's history.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;

use orrery_core::dto::{ErrorBody, IngestResult, MetricBatch, MetricPoint};

use crate::error::{body_error, ApiError, ApiResult};
use crate::store::Store;
use crate::telemetry::Telemetry;

/// Largest `maxPoints` a history request may ask for (more than any chart draws).
const MAX_HISTORY_POINTS: u32 = 1_000_000;

/// A batch of points. Idempotent on `(trial, name, step)`: a point sent again is acknowledged and
/// changes nothing. NaN and ±inf are stored as such (as the strings "NaN", "Infinity").
#[utoipa::path(post, path = "/api/v1/trials/{id}/metrics", tag = "trials",
    params(("id" = i64, Path, description = "trial id")),
    request_body = MetricBatch,
    responses(
        (status = 200, body = IngestResult),
        (status = 404, description = "no such trial", body = ErrorBody),
        (status = 413, description = "the batch is over the size limit (8 MiB)", body = ErrorBody),
        (status = 422, description = "a bad point (name, step) or not a batch", body = ErrorBody),
    ))]
pub(super) async fn ingest(
    State(store): State<Arc<Store>>,
    State(t): State<Arc<Telemetry>>,
    Path(id): Path<i64>,
    body: Result<Json<MetricBatch>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(batch) = body.map_err(body_error)?;
    let accepted = store.ingest(id, &batch.points).await?;
    t.ingested(accepted);
    Ok(Json(IngestResult { accepted }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub(super) struct HistoryQuery {
    /// The metric, e.g. `train/loss`.
    name: String,
    /// Downsample to about this many points (min and max per bucket, first and last kept).
    #[param(minimum = 0, maximum = 1000000)]
    max_points: Option<u32>,
}

/// One metric's points in step order, downsampled on request.
#[utoipa::path(get, path = "/api/v1/trials/{id}/metrics", tag = "trials",
    params(("id" = i64, Path, description = "trial id"), HistoryQuery),
    responses(
        (status = 200, body = Vec<MetricPoint>),
        (status = 400, description = "no metric name given", body = ErrorBody),
        (status = 404, description = "no such trial", body = ErrorBody),
    ))]
pub(super) async fn metric_history(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
    q: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = q.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "give the metric as ?name=train/loss (and optionally &maxPoints=N)",
        )
    })?;
    if q.max_points.is_some_and(|n| n > MAX_HISTORY_POINTS) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("maxPoints is at most {MAX_HISTORY_POINTS}"),
        ));
    }
    store.trial(id).await?;
    let points = store.metric_history(id, &q.name).await?;
    Ok(Json(match q.max_points {
        Some(n) => orrery_core::downsample::min_max(&points, n as usize),
        None => points,
    }))
}
