//! Server-sent events: live updates of one experiment or of all.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use orrery_core::dto::ErrorBody;

use crate::error::ApiResult;
use crate::events::Event;
use crate::store::Store;

/// Live updates of one experiment as server-sent events (`experiment`, `trial`, `metrics`; see
/// [`Event`]); `lagged` when this client fell behind and should re-read.
#[utoipa::path(get, path = "/api/v1/experiments/{id}/events", tag = "events",
    params(("id" = i64, Path, description = "experiment id")),
    responses(
        (status = 200, description = "a stream of events, each an Event as JSON", content_type = "text/event-stream", body = String),
        (status = 404, description = "no such experiment", body = ErrorBody),
    ))]
pub(super) async fn experiment_events(
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
pub(super) async fn all_events(State(store): State<Arc<Store>>) -> Response {
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
