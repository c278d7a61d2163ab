//! `/api/v1/trials/{id}/artifacts`: store a trial's artifact (streamed, checked against its
//! `Content-Digest`), download it, list them. The bytes go to the server's artifact storage
//! (`crate::artifacts`), the metadata to SQL (`store::artifacts`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use futures_util::StreamExt;
use serde::Deserialize;

use orrery_core::dto::{ArtifactDto, ErrorBody};

use crate::artifacts::{hex, Artifacts, UploadError};
use crate::error::{ApiError, ApiResult};
use crate::state::ArtifactStorage;
use crate::store::{quota_message, Store, StoreError};

/// Longest artifact name.
const MAX_NAME: usize = 128;

/// An artifact name: 1–128 of letters, digits, `.`, `_`, `-`, not starting with a dot (it is a
/// path segment of its storage key).
fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("artifact name \"{name}\": use 1 to {MAX_NAME} letters, digits, '.', '_' or '-', not starting with '.'"),
        ))
    }
}

/// The SHA-256 of a `Content-Digest: sha-256=:BASE64:` header (RFC 9530), as lower-case hex.
fn content_digest(headers: &HeaderMap) -> Result<String, ApiError> {
    let bad = |why: &str| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "{why}: send the body's SHA-256 as Content-Digest: sha-256=:BASE64: (RFC 9530)"
            ),
        )
    };
    let value = headers
        .get("content-digest")
        .ok_or_else(|| bad("no Content-Digest header"))?
        .to_str()
        .map_err(|_| bad("the Content-Digest header is not text"))?;
    for item in value.split(',') {
        if let Some((alg, v)) = item.trim().split_once('=') {
            if alg.trim().eq_ignore_ascii_case("sha-256") {
                let b64 = v.trim().strip_prefix(':').and_then(|x| x.strip_suffix(':'));
                let bytes = b64
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| bad("the Content-Digest sha-256 value is not 32 bytes in base64 between colons"))?;
                return Ok(hex(&bytes));
            }
        }
    }
    Err(bad("the Content-Digest header has no sha-256 value"))
}

fn storage(s: &ArtifactStorage) -> Result<&Arc<Artifacts>, ApiError> {
    s.0.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server stores no artifacts: start it with --artifacts DIR (or s3://BUCKET/PREFIX)",
        )
    })
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StepQuery {
    /// The training step the artifact was taken at.
    #[param(minimum = 0)]
    step: Option<i64>,
}

/// Stores the body as the trial's artifact `name` (replacing one of that name). The body is
/// streamed; its SHA-256 must be in `Content-Digest`, and it must fit the server's size limit and
/// quota. A failed, refused or truncated upload stores nothing: an artifact is listed once whole.
#[utoipa::path(put, path = "/api/v1/trials/{id}/artifacts/{name}", tag = "artifacts",
    params(
        ("id" = i64, Path, description = "trial id"),
        ("name" = String, Path, description = "artifact name: letters, digits, '.', '_', '-'"),
        ("Content-Digest" = String, Header, description = "the body's SHA-256: sha-256=:BASE64: (RFC 9530)"),
        StepQuery,
    ),
    request_body(content = String, content_type = "application/octet-stream", description = "the artifact's bytes"),
    responses(
        (status = 201, description = "stored", body = ArtifactDto),
        (status = 400, description = "no or a bad Content-Digest, a body that does not match it or ended early, a bad step", body = ErrorBody),
        (status = 404, description = "no such trial", body = ErrorBody),
        (status = 413, description = "over the server's size limit", body = ErrorBody),
        (status = 422, description = "a bad artifact name", body = ErrorBody),
        (status = 503, description = "this server stores no artifacts", body = ErrorBody),
        (status = 507, description = "over the storage quota", body = ErrorBody),
    ))]
pub(super) async fn put_artifact(
    State(store): State<Arc<Store>>,
    State(artifacts): State<ArtifactStorage>,
    Path((id, name)): Path<(i64, String)>,
    q: Result<Query<StepQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let artifacts = storage(&artifacts)?;
    let Query(q) = q.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "step must be a whole number ≥ 0 (?step=N)",
        )
    })?;
    if q.step.is_some_and(|s| s < 0) {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "step must be ≥ 0"));
    }
    check_name(&name)?;
    store.trial(id).await?;
    let want = content_digest(&headers)?;
    let limits = artifacts.limits;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_bytes) {
        return Err(UploadError::TooLarge {
            limit: limits.max_bytes,
        }
        .into_api());
    }
    // A declared size past the quota is refused before the body is read; the check that counts
    // is in `put_artifact`, once the size is known.
    if let (Some(quota), Some(n)) = (limits.quota, declared) {
        let used = store.artifact_bytes().await?;
        if used.saturating_add(n) > quota {
            return Err(StoreError::Insufficient(quota_message(quota, used, n)).into());
        }
    }
    // In a task of its own: if the client goes away, this handler is dropped, but the upload
    // still ends (its body errors) and aborts its partial object.
    let stored = {
        let (artifacts, name) = (artifacts.clone(), name.clone());
        let body = body.into_data_stream();
        tokio::spawn(async move {
            artifacts
                .upload(id, &name, &want, limits.max_bytes, body)
                .await
        })
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("upload task: {e}"),
            )
        })?
        .map_err(UploadError::into_api)?
    };
    let dto = ArtifactDto {
        name,
        size: stored.size,
        sha256: stored.sha256.clone(),
        step: q.step,
        created: String::new(),
    };
    match store
        .put_artifact(id, &dto, &stored.key, limits.quota)
        .await
    {
        Ok(replaced) => {
            if let Some(old) = replaced {
                artifacts.delete(&old).await;
            }
        }
        Err(e) => {
            // The new object is referenced by no row: nothing else can be using it.
            artifacts.delete(&stored.key).await;
            return Err(e.into());
        }
    }
    let row = store.artifact(id, &dto.name).await?;
    Ok((StatusCode::CREATED, Json(row.artifact)).into_response())
}

impl UploadError {
    fn into_api(self) -> ApiError {
        let status = match &self {
            UploadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UploadError::DigestMismatch { .. } | UploadError::Body(_) => StatusCode::BAD_REQUEST,
            UploadError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "artifact upload failed");
        }
        ApiError::new(status, self.to_string())
    }
}

/// The artifact's bytes, with its SHA-256 as `ETag` (`If-None-Match` with it answers 304).
#[utoipa::path(get, path = "/api/v1/trials/{id}/artifacts/{name}", tag = "artifacts",
    params(
        ("id" = i64, Path, description = "trial id"),
        ("name" = String, Path, description = "artifact name"),
    ),
    responses(
        (status = 200, description = "the bytes", content_type = "application/octet-stream", body = String,
         headers(("ETag" = String, description = "the SHA-256 (hex), quoted"))),
        (status = 304, description = "not modified (If-None-Match matched)"),
        (status = 404, description = "no such trial or artifact", body = ErrorBody),
        (status = 503, description = "this server stores no artifacts", body = ErrorBody),
    ))]
pub(super) async fn get_artifact(
    State(store): State<Arc<Store>>,
    State(artifacts): State<ArtifactStorage>,
    Path((id, name)): Path<(i64, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let artifacts = storage(&artifacts)?;
    let row = store.artifact(id, &name).await?;
    let etag = format!("\"{}\"", row.artifact.sha256);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
            })
        });
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let stream = artifacts.read(&row.object_key).await.map_err(|e| match e {
        // Replaced or deleted between reading its row and its bytes.
        object_store::Error::NotFound { .. } => ApiError::new(
            StatusCode::NOT_FOUND,
            format!("artifact \"{name}\" of trial {id} was replaced or deleted while being read; ask again"),
        ),
        e => {
            tracing::error!(error = %e, key = %row.object_key, "reading an artifact");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("artifact \"{name}\" of trial {id} is listed but its bytes cannot be read: {e}"),
            )
        }
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, row.artifact.size.to_string()),
            (header::ETAG, etag),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream.map(|r| r.map_err(std::io::Error::other))),
    )
        .into_response())
}

/// The trial's artifacts, by name.
#[utoipa::path(get, path = "/api/v1/trials/{id}/artifacts", tag = "artifacts",
    params(("id" = i64, Path, description = "trial id")),
    responses(
        (status = 200, body = Vec<ArtifactDto>),
        (status = 404, description = "no such trial", body = ErrorBody),
    ))]
pub(super) async fn list_artifacts(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(store.artifacts(id).await?))
}

/// Deletes the trial's artifact `name` (its row, then its bytes).
#[utoipa::path(delete, path = "/api/v1/trials/{id}/artifacts/{name}", tag = "artifacts",
    params(
        ("id" = i64, Path, description = "trial id"),
        ("name" = String, Path, description = "artifact name"),
    ),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "no such trial or artifact", body = ErrorBody),
        (status = 503, description = "this server stores no artifacts", body = ErrorBody),
    ))]
pub(super) async fn delete_artifact(
    State(store): State<Arc<Store>>,
    State(artifacts): State<ArtifactStorage>,
    Path((id, name)): Path<(i64, String)>,
) -> ApiResult<StatusCode> {
    let artifacts = storage(&artifacts)?;
    let key = store.delete_artifact(id, &name).await?;
    artifacts.delete(&key).await;
    Ok(StatusCode::NO_CONTENT)
}
