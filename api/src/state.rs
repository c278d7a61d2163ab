//! What the handlers share, and the parts they take of it.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::artifacts::Artifacts;
use crate::logs::LogDir;
use crate::store::Store;
use crate::telemetry::Telemetry;

/// What the handlers share. Handlers take the part they need (`State<Arc<Store>>`, ...).
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub telemetry: Arc<Telemetry>,
    pub logs: Logs,
    pub artifacts: ArtifactStorage,
}

/// The artifact storage, if this server has one (`crate::artifacts`).
#[derive(Clone)]
pub struct ArtifactStorage(pub Option<Arc<Artifacts>>);

impl FromRef<AppState> for ArtifactStorage {
    fn from_ref(s: &AppState) -> Self {
        s.artifacts.clone()
    }
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
