//! The API's one error type: every handler error becomes a status and a JSON [`ErrorBody`] that
//! says what to do, and [`json_errors`] gives the errors axum writes itself the same shape.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use orrery_core::dto::ErrorBody;

use crate::auth::Denied;
use crate::store::StoreError;

/// Every handler error becomes one of these: a status and a JSON body that says what to do.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) body: ErrorBody,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                error: error.into(),
                details: Vec::new(),
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match &e {
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            StoreError::Conflict(_) => StatusCode::CONFLICT,
            StoreError::Insufficient(_) => StatusCode::INSUFFICIENT_STORAGE,
            StoreError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        ApiError::new(status, e.to_string())
    }
}

impl ApiError {
    /// The status and message, for an answer that is not JSON (the web pages).
    pub(crate) fn parts(&self) -> (StatusCode, &str) {
        (self.status, &self.body.error)
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::Unauthenticated(m) => ApiError::new(StatusCode::UNAUTHORIZED, m),
            Denied::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut r = (self.status, Json(self.body)).into_response();
        if unauthorized {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("a valid header"),
            );
        }
        r
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// Every error answers with an [`ErrorBody`], including the ones axum writes itself as plain
/// text (a path id that is not a number, a malformed query, a body over the limit, a method the
/// route does not have), so a client parses one error shape.
pub(crate) async fn json_errors(resp: Response) -> Response {
    let is_error = resp.status().is_client_error() || resp.status().is_server_error();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    // JSON errors pass as they are, and so do the web pages' own error pages.
    if !is_error || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let error = if text.is_empty() {
        parts
            .status
            .canonical_reason()
            .unwrap_or("error")
            .to_lowercase()
    } else {
        text
    };
    let mut out = ApiError::new(parts.status, error).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// A JSON body that could not be read: 413 when over the size limit, 422 otherwise.
pub(crate) fn body_error(e: axum::extract::rejection::JsonRejection) -> ApiError {
    match e {
        axum::extract::rejection::JsonRejection::BytesRejection(b) => {
            ApiError::new(b.status(), b.body_text())
        }
        other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, other.body_text()),
    }
}
