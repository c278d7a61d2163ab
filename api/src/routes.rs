//! The REST API (`/api/v1`) and the HTML pages, on one axum router.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use orrery_core::dto::{
    ErrorBody, ExperimentStateUpdate, IngestResult, MetricBatch, TrialStateUpdate,
};

use crate::auth::{self, AuthConfig, Denied};
use crate::html;
use crate::store::{Store, StoreError};

/// Largest request body accepted (a spec or a metric batch).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Every handler error becomes one of these: a status and a JSON body that says what to do.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
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
            StoreError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %e, "request failed");
        }
        ApiError::new(status, e.to_string())
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

type ApiResult<T> = Result<T, ApiError>;

pub fn router(store: Arc<Store>, auth: AuthConfig) -> Router {
    let guard_state = (store.clone(), Arc::new(auth));
    Router::new()
        .route("/", get(index_page))
        .route("/experiments/{id}", get(experiment_page))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route(
            "/api/v1/experiments",
            get(list_experiments).post(create_experiment),
        )
        .route("/api/v1/experiments/{id}", get(get_experiment))
        .route("/api/v1/experiments/{id}/state", post(set_experiment_state))
        .route("/api/v1/experiments/{id}/trials", get(list_trials))
        .route("/api/v1/experiments/{id}/leaderboard", get(leaderboard))
        .route("/api/v1/experiments/{id}/analysis", get(analysis))
        .route("/api/v1/trials/{id}", get(get_trial))
        .route("/api/v1/trials/{id}/state", post(set_trial_state))
        .route("/api/v1/trials/{id}/token", post(mint_trial_token))
        .route(
            "/api/v1/trials/{id}/metrics",
            get(metric_history).post(ingest),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(guard_state, guard))
        .with_state(store)
}

/// Every request passes here first: the rule for its route (`auth::need`), the identity of its
/// bearer token, and 401 / 403 before any handler runs.
async fn guard(
    State((store, cfg)): State<(Arc<Store>, Arc<AuthConfig>)>,
    req: Request,
    next: Next,
) -> Response {
    let need = auth::need(req.method(), req.uri().path());
    if need == auth::Need::Public {
        return next.run(req).await;
    }
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("?"));
    let checked = async {
        let token = auth::bearer(header)?;
        let who = auth::identify(
            &cfg,
            token,
            |h| async move { store.trial_of_token(&h).await },
        )
        .await??;
        auth::authorize(&cfg, who, need)?;
        Ok::<_, ApiError>(())
    };
    match checked.await {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Ready while the database answers: a load balancer stops sending requests to an API that has
/// lost its database, while `/healthz` (liveness) keeps it from being restarted for that.
async fn readyz(State(store): State<Arc<Store>>) -> Response {
    match store.connection().ping().await {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            // The detail (host, user, database) goes to the log, not to an open endpoint.
            tracing::warn!(error = %e, "readiness: the database does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}

/// A new worker token for the trial (admin only); any earlier one stops working. The response is
/// the only place the token is ever shown.
async fn mint_trial_token(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    let token = store.mint_trial_token(id).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "trialId": id, "token": token })),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateQuery {
    /// The submitter's key for this experiment: a second POST with the same key returns the
    /// first experiment (200) instead of creating another (201).
    external_id: Option<String>,
}

/// The body is the spec's YAML text. A bad spec is refused whole with one detail line per problem.
async fn create_experiment(
    State(store): State<Arc<Store>>,
    q: Result<Query<CreateQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "the spec must be UTF-8 YAML"))?;
    let loaded = orrery_core::load_spec(text).map_err(|errs| ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        body: ErrorBody {
            error: format!("the spec has {} problem(s)", errs.0.len()),
            details: errs.0.iter().map(|e| e.to_string()).collect(),
        },
    })?;
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

async fn set_experiment_state(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
    body: Result<Json<ExperimentStateUpdate>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(u) =
        body.map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.body_text()))?;
    Ok(Json(
        store
            .set_experiment_phase(id, u.phase, u.reason.as_deref(), u.message.as_deref())
            .await?,
    ))
}

async fn list_experiments(State(store): State<Arc<Store>>) -> ApiResult<impl IntoResponse> {
    Ok(Json(store.list_experiments().await?))
}

async fn get_experiment(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(store.experiment(id).await?))
}

async fn list_trials(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(store.trials(id).await?))
}

/// The trials ranked by the objective; `sort`, `order`, `phase`, `param.PATH=VALUE`, `limit` and
/// `offset` give a filtered, sorted page of it (`orrery_core::leaderboard`), `total` counting the
/// matches before paging.
async fn leaderboard(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<impl IntoResponse> {
    let query = orrery_core::leaderboard::Query::from_pairs(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )
    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let board = store.leaderboard(id).await?;
    let view = orrery_core::leaderboard::apply(board, &query)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    Ok(Json(view))
}

/// The workload's analysis of an experiment's results (stability: LR sensitivity per
/// configuration, its spread over seeds, the best and largest stable LR, attention logits by LR).
async fn analysis(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    let board = store.leaderboard(id).await?;
    let lr_sensitivity = if board.experiment.workload == "stability" {
        orrery_core::analysis::lr_sensitivity(&orrery_core::analysis::lr_runs(&board))
    } else {
        Vec::new()
    };
    Ok(Json(serde_json::json!({
        "experimentId": id,
        "workload": board.experiment.workload,
        "lrSensitivity": lr_sensitivity,
    })))
}

async fn get_trial(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(store.trial(id).await?))
}

async fn set_trial_state(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
    body: Result<Json<TrialStateUpdate>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(u) =
        body.map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.body_text()))?;
    Ok(Json(
        store
            .set_trial_state(id, u.phase, u.attempts, u.message.as_deref())
            .await?,
    ))
}

async fn ingest(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
    body: Result<Json<MetricBatch>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(batch) = body.map_err(|e| match e {
        axum::extract::rejection::JsonRejection::BytesRejection(b) => {
            ApiError::new(b.status(), b.body_text())
        }
        other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, other.body_text()),
    })?;
    let accepted = store.ingest(id, &batch.points).await?;
    Ok(Json(IngestResult { accepted }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HistoryQuery {
    name: String,
    /// Downsample to about this many points (min and max per bucket, first and last kept).
    max_points: Option<usize>,
}

async fn metric_history(
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
    store.trial(id).await?;
    let points = store.metric_history(id, &q.name).await?;
    Ok(Json(match q.max_points {
        Some(n) => orrery_core::downsample::min_max(&points, n),
        None => points,
    }))
}

async fn index_page(State(store): State<Arc<Store>>) -> ApiResult<impl IntoResponse> {
    Ok(Html(html::experiments(&store.list_experiments().await?)))
}

async fn experiment_page(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    let board = store.leaderboard(id).await?;
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Html(html::leaderboard(&board)),
    )
        .into_response())
}
