//! Orrery's API server: the system of record for experiments, trials and metrics.
//!
//! - [`store`]: every database read and write (sea-orm; SQLite or PostgreSQL);
//! - [`ranking`]: leaderboard pages as SQL;
//! - [`routes`]: the axum router (`/api/v1/...`), a module per resource; [`error`]: the one error
//!   type; [`state`]: what the handlers share; `web`: the pages and their scripts;
//! - [`auth`]: who may call what (admin, worker and read tokens);
//! - [`artifacts`]: where trial artifacts' bytes are stored (a folder or S3);
//! - [`openapi`]: the OpenAPI description's shared parts (`/openapi.json`);
//! - [`events`]: live updates (server-sent events); [`telemetry`]: `/metrics`; [`logs`]: trial logs;
//! - [`entities`], [`migration`]: the schema.

pub mod artifacts;
pub mod auth;
pub mod entities;
pub mod error;
pub mod events;
pub mod logs;
pub mod migration;
pub mod openapi;
pub mod ranking;
pub mod routes;
pub mod state;
pub mod store;
pub mod telemetry;
mod web;

use std::net::SocketAddr;
use std::sync::Arc;

pub use auth::AuthConfig;
pub use store::{Store, StoreError};

/// How a server is set up beyond its database: who may call what, where `orrery run` wrote the
/// trials' logs (none: the trial page says where to look instead), and where artifacts are
/// stored (none: the artifact routes answer 503).
#[derive(Clone)]
pub struct Options {
    pub auth: AuthConfig,
    pub logs: Option<logs::LogDir>,
    pub artifacts: Option<Arc<artifacts::Artifacts>>,
}

impl From<AuthConfig> for Options {
    fn from(auth: AuthConfig) -> Self {
        Options {
            auth,
            logs: None,
            artifacts: None,
        }
    }
}

/// Serves the API on `listener` until `shutdown` resolves; in-flight requests are drained.
pub async fn serve(
    store: Arc<Store>,
    options: impl Into<Options>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, routes::router(store, options))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (what Kubernetes sends a Pod it stops), so that
/// [`serve`] stops accepting and drains the requests in flight before the process exits.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down; draining in-flight requests");
}

/// Binds `addr` (port 0 picks a free port) and serves in the background; returns the bound address.
pub async fn spawn(
    store: Arc<Store>,
    options: impl Into<Options>,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let options = options.into();
    let handle = tokio::spawn(async move {
        if let Err(e) = serve(store, options, listener, std::future::pending()).await {
            tracing::error!(error = %e, "API server stopped");
        }
    });
    Ok((bound, handle))
}
