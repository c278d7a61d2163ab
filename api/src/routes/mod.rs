//! The REST API (`/api/v1`), one module per resource, and the router that serves it with the web
//! pages, the health and metrics endpoints and `/openapi.json`.

mod artifacts;
mod events;
mod experiments;
mod metrics;
mod trials;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, AuthConfig};
use crate::error::{json_errors, ApiError};
use crate::openapi;
use crate::state::{AppState, ArtifactStorage, Logs};
use crate::store::Store;
use crate::telemetry::Telemetry;

/// Largest request body accepted (a spec or a metric batch); an artifact upload streams its body
/// and has its own limit (`--artifacts-max-bytes`).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The whole HTTP surface. The REST routes are collected with their OpenAPI descriptions (one
/// declaration per handler: the route the router serves is the route the document describes);
/// the description itself is served at `/openapi.json`.
pub fn router(store: Arc<Store>, options: impl Into<crate::Options>) -> Router {
    let crate::Options {
        auth,
        logs,
        artifacts,
    } = options.into();
    let state = AppState {
        store: store.clone(),
        telemetry: Arc::new(Telemetry::default()),
        logs: Logs(logs.map(Arc::new)),
        artifacts: ArtifactStorage(artifacts),
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
        .routes(routes!(
            experiments::list_experiments,
            experiments::create_experiment
        ))
        .routes(routes!(
            experiments::get_experiment,
            experiments::delete_experiment
        ))
        .routes(routes!(experiments::set_experiment_state))
        .routes(routes!(experiments::check_experiment))
        .routes(routes!(experiments::list_trials))
        .routes(routes!(experiments::leaderboard))
        .routes(routes!(experiments::analysis))
        .routes(routes!(events::experiment_events))
        .routes(routes!(events::all_events))
        .routes(routes!(trials::get_trial))
        .routes(routes!(trials::trial_history))
        .routes(routes!(trials::trial_summaries))
        .routes(routes!(trials::trial_logs))
        .routes(routes!(trials::set_trial_state))
        .routes(routes!(trials::mint_trial_token))
        .routes(routes!(trials::set_provenance))
        .routes(routes!(trials::init_source))
        .routes(routes!(metrics::metric_history, metrics::ingest))
        .routes(routes!(artifacts::list_artifacts))
        .routes(routes!(
            artifacts::get_artifact,
            artifacts::put_artifact,
            artifacts::delete_artifact
        ))
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
        let who = auth::identify(&cfg, token, |h| {
            let store = store.clone();
            async move { store.trial_of_token(&h).await }
        })
        .await??;
        // A worker may also download the artifacts of the trial its `model.init_from` resolved
        // to (the weights it starts from); for that one trial, the rule is its own trial's.
        let need = match (need, who) {
            (auth::Need::ReadArtifact { trial: t }, auth::Identity::Worker(w))
                if t != w && store.init_source_trial(w).await? == Some(t) =>
            {
                auth::Need::ReadArtifact { trial: w }
            }
            (need, _) => need,
        };
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
