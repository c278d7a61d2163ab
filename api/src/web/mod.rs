//! The web pages: the experiments list, an experiment's trials table and workload panel, a trial's
//! curves and history, and the compare view.
//!
//! Each page is an HTML shell rendered here plus a small ES module from `web/assets/` (no framework,
//! no bundler): the modules read the same REST API as any client and redraw on the server-sent
//! events. The assets are compiled into the binary (`include_bytes!`), so `orrery serve` needs no
//! network and no files beside it. The first page of an experiment's table is rendered into its
//! shell as JSON, so the page is usable without a second round trip.

mod assets;
mod pages;

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
use crate::logs::LogDir;
use crate::state::{AppState, Logs};
use crate::store::{Store, StoreError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(experiments))
        .route("/experiments/{id}", get(experiment))
        .route("/experiments/{id}/compare", get(compare))
        .route("/trials/{id}", get(trial))
        .route("/trials/{id}/logs/{attempt}", get(log))
        .route("/assets/{*name}", get(asset))
        // Browsers ask for it on pages without a <link rel=icon> (the plain-text logs).
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
}

/// Pages show live data: never cached; never sniffed as anything but what they say they are.
fn page(html: String) -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Html(html),
    )
        .into_response()
}

/// A page that cannot be shown answers as a page too (the API's status, its message).
type PageResult = Result<Response, Response>;

fn error_page(e: StoreError) -> Response {
    let e = ApiError::from(e);
    let (status, message) = e.parts();
    error_response(status, message)
}

fn error_response(status: StatusCode, message: &str) -> Response {
    (status, Html(pages::error(status, message))).into_response()
}

async fn experiments(State(store): State<Arc<Store>>) -> PageResult {
    let list = store.list_experiments().await.map_err(error_page)?;
    let best = store.best_objectives().await.map_err(error_page)?;
    let best: Vec<Option<f64>> = list.iter().map(|e| best.get(&e.id).copied()).collect();
    Ok(page(pages::experiments(&list, &best)))
}

async fn experiment(
    State(store): State<Arc<Store>>,
    Path(id): Path<i64>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> PageResult {
    // The page's address carries the table's view in the API's own terms (sort, order, phase,
    // param.PATH, min./max.KEY, limit, offset). An address the API would refuse is sent to the
    // default view, so the address bar never holds a view the page cannot show.
    let default_view = || Redirect::to(&format!("/experiments/{id}")).into_response();
    let Ok(mut query) = orrery_core::leaderboard::Query::from_pairs(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    ) else {
        return Err(default_view());
    };
    if query.limit.is_none() {
        query.limit = Some(pages::DEFAULT_PAGE_ROWS);
    }
    let board = match store.leaderboard_view(id, &query).await {
        Err(StoreError::Invalid(_)) if !pairs.is_empty() => return Err(default_view()),
        other => other.map_err(error_page)?,
    };
    Ok(page(pages::experiment(&board)))
}

async fn trial(State(store): State<Arc<Store>>, Path(id): Path<i64>) -> PageResult {
    let t = store.trial(id).await.map_err(error_page)?;
    let e = store
        .experiment(t.experiment_id)
        .await
        .map_err(error_page)?;
    Ok(page(pages::trial(&e, &t)))
}

async fn compare(State(store): State<Arc<Store>>, Path(id): Path<i64>) -> PageResult {
    let e = store.experiment(id).await.map_err(error_page)?;
    Ok(page(pages::compare(&e)))
}

/// One attempt's log as plain text (its last MiB when longer).
async fn log(
    State(store): State<Arc<Store>>,
    State(Logs(logs)): State<Logs>,
    Path((id, attempt)): Path<(i64, u32)>,
) -> PageResult {
    let dir = crate::logs::trial_dir(&store, logs.as_deref(), id)
        .await
        .map_err(error_page)?;
    let missing = |why: String| error_response(StatusCode::NOT_FOUND, &why);
    let dir = dir.ok_or_else(|| {
        missing(format!(
            "No logs of trial {id} here: this server was not started with the work folder \
             `orrery run` wrote them to (orrery serve --workdir DIR), or they were removed. \
             On a cluster, read the Pod's log with kubectl logs."
        ))
    })?;
    let (mut body, cut) = LogDir::read_tail(&dir, attempt)
        .map_err(|_| missing(format!("Trial {id} has no log of attempt {attempt}.")))?;
    if cut {
        let note = format!(
            "[… the start is cut: the last {} bytes follow]\n",
            crate::logs::MAX_SERVED_BYTES
        );
        body.splice(0..0, note.into_bytes());
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response())
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(a) = assets::find(&name) else {
        return ApiError::new(StatusCode::NOT_FOUND, format!("no asset \"{name}\""))
            .into_response();
    };
    let etag = format!("\"{:016x}\"", a.hash);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    // Revalidated on each load (cheap: a 304) so a new binary's assets are never mixed with old.
    let head = [
        (header::CONTENT_TYPE, a.content_type),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, head, [(header::ETAG, etag)]).into_response();
    }
    (head, [(header::ETAG, etag)], a.body).into_response()
}
