//! The REST API (`/api/v1`) and the HTML pages, on one axum router.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRef, MatchedPath, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use orrery_core::dto::{
    ErrorBody, ExperimentDto, ExperimentStateUpdate, IngestResult, Leaderboard, MetricBatch,
    MetricPoint, PhaseChange, Summary, TrialDto, TrialStateUpdate,
};
use orrery_core::schedule::TrialPhase;

use crate::auth::{self, AuthConfig, Denied};
use crate::events::Event;
use crate::logs::{LogDir, LogFile};
use crate::openapi;
use crate::store::{Store, StoreError};
use crate::telemetry::Telemetry;

/// Largest request body accepted (a spec or a metric batch).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// Largest `maxPoints` a history request may ask for (more than any chart draws).
const MAX_HISTORY_POINTS: u32 = 1_000_000;

/// Every handler error becomes one of these: a status and a JSON body that says what to do.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
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

/// What the handlers share. Handlers take the part they need (`State<Arc<Store>>`, ...).
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub telemetry: Arc<Telemetry>,
    pub logs: Logs,
}

/// Where the trials' logs are, if this server knows (`crate::logs`).
#[derive(Clone)]
pub struct Logs(pub Option<Arc<LogDir>>);

impl FromRef<AppState> for Logs {
    fn from_ref(s: &AppState) -> Self {
        s.logs.clone()
    }
}

impl FromRef<AppState> for Arc<Store> {
    fn from_ref(s: &AppState) -> Self {
        s.store.clone()
    }
}

impl FromRef<AppState> for Arc<Telemetry> {
    fn from_ref(s: &AppState) -> Self {
        s.telemetry.clone()
    }
}

/// The whole HTTP surface. The REST routes are collected with their OpenAPI descriptions (one
/// declaration per handler: the route the router serves is the route the document describes);
/// the description itself is served at `/openapi.json`.
pub fn router(store: Arc<Store>, options: impl Into<crate::Options>) -> Router {
    let crate::Options { auth, logs } = options.into();
    let state = AppState {
        store: store.clone(),
        telemetry: Arc::new(Telemetry::default()),
        logs: Logs(logs.map(Arc::new)),
    };
    let (api, doc) = rest();
    let doc: Arc<str> = serde_json::to_string(&doc)
        .expect("the OpenAPI description serialises")
        .into();
    let guard_state = (store, Arc::new(auth));
    api.merge(crate::web::routes())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .route(
            "/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        doc.to_string(),
                    )
                }
            }),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(guard_state, guard))
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.telemetry.clone(),
            observe,
        ))
        .with_state(state)
}

/// The REST routes and their OpenAPI description, made from the same declarations.
fn rest() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(list_experiments, create_experiment))
        .routes(routes!(get_experiment))
        .routes(routes!(set_experiment_state))
        .routes(routes!(list_trials))
        .routes(routes!(leaderboard))
        .routes(routes!(analysis))
        .routes(routes!(experiment_events))
        .routes(routes!(all_events))
        .routes(routes!(get_trial))
        .routes(routes!(trial_history))
        .routes(routes!(trial_summaries))
        .routes(routes!(trial_logs))
        .routes(routes!(set_trial_state))
        .routes(routes!(mint_trial_token))
        .routes(routes!(metric_history, ingest))
        .split_for_parts();
    openapi::add_shared(&mut doc);
    (routes, doc)
}

/// The OpenAPI description, as `/openapi.json` serves it.
pub fn openapi_doc() -> utoipa::openapi::OpenApi {
    rest().1
}

/// Counts and times every request under its route template (`crate::telemetry`).
async fn observe(State(t): State<Arc<Telemetry>>, req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    t.observe(&method, &route, resp.status().as_u16(), started.elapsed());
    resp
}

/// Every error answers with an [`ErrorBody`], including the ones axum writes itself as plain
/// text (a path id that is not a number, a malformed query, a body over the limit, a method the
/// route does not have), so a client parses one error shape.
async fn json_errors(resp: Response) -> Response {
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

async fn prometheus(
    State(store): State<Arc<Store>>,
    State(t): State<Arc<Telemetry>>,
) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        t.render(store.events().subscribers()),
    )
}

/// A new worker token for the trial (admin only); any earlier one stops working. The response is
/// the only place the token is ever shown.
#[utoipa::path(post, path = "/api/v1/trials/{id}/token", tag = "trials",
    params(("id" = i64, Path, description = "trial id")),
    responses(
        (status = 201, description = "the new token", body = MintedToken),
        (status = 404, description = "no such trial", body = ErrorBody),
    ))]
async fn mint_trial_token(
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
struct MintedToken {
    trial_id: i64,
    /// Shown once; the server keeps only its SHA-256.
    token: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
struct CreateQuery {
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
async fn set_experiment_state(
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
async fn list_experiments(State(store): State<Arc<Store>>) -> ApiResult<impl IntoResponse> {
    Ok(Json(store.list_experiments().await?))
}

#[utoipa::path(get, path = "/api/v1/experiments/{id}", tag = "experiments",
    params(("id" = i64, Path, description = "experiment id")),
    responses(
        (status = 200, body = ExperimentDto),
        (status = 404, description = "no such experiment", body = ErrorBody),
    ))]
async fn get_experiment(
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
async fn list_trials(
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
struct LeaderboardParams {
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
async fn leaderboard(
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

/// The workload's analysis of an experiment's results (stability: LR sensitivity per
/// configuration, its spread over seeds, the best and largest stable LR, attention logits by LR).
#[utoipa::path(get, path = "/api/v1/experiments/{id}/analysis", tag = "experiments",
    params(("id" = i64, Path, description = "experiment id")),
    responses(
        (status = 200, body = Object),
        (status = 404, description = "no such experiment", body = ErrorBody),
    ))]
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

/// Live updates of one experiment as server-sent events (`experiment`, `trial`, `metrics`; see
/// [`Event`]); `lagged` when this client fell behind and should re-read.
#[utoipa::path(get, path = "/api/v1/experiments/{id}/events", tag = "events",
    params(("id" = i64, Path, description = "experiment id")),
    responses(
        (status = 200, description = "a stream of events, each an Event as JSON", content_type = "text/event-stream", body = String),
        (status = 404, description = "no such experiment", body = ErrorBody),
    ))]
async fn experiment_events(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
) -> ApiResult<Response> {
    store.experiment(id).await?;
    Ok(sse(store.events().subscribe(), Some(id)))
}

/// Live updates of every experiment as server-sent events.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    responses(
        (status = 200, description = "a stream of events, each an Event as JSON", content_type = "text/event-stream", body = String),
    ))]
async fn all_events(State(store): State<Arc<Store>>) -> Response {
    sse(store.events().subscribe(), None)
}

fn sse(rx: tokio::sync::broadcast::Receiver<Event>, only: Option<i64>) -> Response {
    use tokio::sync::broadcast::error::RecvError;
    let stream = futures_util::stream::unfold(rx, move |mut rx| async move {
        loop {
            let ev = match rx.recv().await {
                Ok(e) if only.is_some_and(|id| e.experiment_id() != id) => continue,
                Ok(e) => SseEvent::default()
                    .event(e.name())
                    .json_data(&e)
                    .unwrap_or_else(|_| SseEvent::default().event("lagged").data("{}")),
                Err(RecvError::Lagged(n)) => SseEvent::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{n}}}")),
                Err(RecvError::Closed) => return None,
            };
            return Some((Ok::<_, std::convert::Infallible>(ev), rx));
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

#[utoipa::path(get, path = "/api/v1/trials/{id}", tag = "trials",
    params(("id" = i64, Path, description = "trial id")),
    responses(
        (status = 200, body = TrialDto),
        (status = 404, description = "no such trial", body = ErrorBody),
    ))]
async fn get_trial(
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
async fn trial_history(
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
async fn trial_summaries(
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
async fn trial_logs(
    State(store): State<Arc<Store>>,
    State(Logs(logs)): State<Logs>,
    Path(id): Path<i64>,
) -> ApiResult<impl IntoResponse> {
    let found = trial_log_dir(&store, logs.as_deref(), id).await?;
    Ok(Json(
        found
            .map(|dir| LogDir::attempts(&dir, id))
            .unwrap_or_default(),
    ))
}

/// The trial's folder of logs, if this server knows where they are and they are there.
pub(crate) async fn trial_log_dir(
    store: &Store,
    logs: Option<&LogDir>,
    id: i64,
) -> Result<Option<std::path::PathBuf>, StoreError> {
    let t = store.trial(id).await?;
    let Some(logs) = logs else {
        return Ok(None);
    };
    let e = store.experiment(t.experiment_id).await?;
    Ok(logs.trial_dir(e.id, &e.created_at, t.index, t.started_at.as_deref()))
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
async fn set_trial_state(
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

/// A JSON body that could not be read: 413 when over the size limit, 422 otherwise.
fn body_error(e: axum::extract::rejection::JsonRejection) -> ApiError {
    match e {
        axum::extract::rejection::JsonRejection::BytesRejection(b) => {
            ApiError::new(b.status(), b.body_text())
        }
        other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, other.body_text()),
    }
}

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
async fn ingest(
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
struct HistoryQuery {
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
