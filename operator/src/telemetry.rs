//! Operator counters in the Prometheus text format, and the `/metrics`, `/healthz` and `/readyz`
//! endpoints. A handful of atomics: no metrics library needed for this many series.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

#[derive(Default)]
pub struct Metrics {
    pub experiment_reconciles: AtomicU64,
    pub experiment_errors: AtomicU64,
    pub trial_reconciles: AtomicU64,
    pub trial_errors: AtomicU64,
    pub trials_created: AtomicU64,
    pub pods_created: AtomicU64,
    pub attempts_failed: AtomicU64,
    /// This replica holds the leader lease (or runs without election).
    pub leader: AtomicBool,
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        // Per-controller counters: one family each, labelled by controller.
        for (name, help, experiment, trial) in [
            (
                "orrery_reconciles_total",
                "Reconciles run, by controller.",
                &self.experiment_reconciles,
                &self.trial_reconciles,
            ),
            (
                "orrery_reconcile_errors_total",
                "Reconciles that failed and were requeued.",
                &self.experiment_errors,
                &self.trial_errors,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (ctl, c) in [("experiment", experiment), ("trial", trial)] {
                let _ = writeln!(out, "{name}{{controller=\"{ctl}\"}} {}", get(c));
            }
        }
        for (name, help, c) in [
            (
                "orrery_trials_created_total",
                "Trial objects created.",
                &self.trials_created,
            ),
            (
                "orrery_pods_created_total",
                "Attempt Pods created.",
                &self.pods_created,
            ),
            (
                "orrery_attempts_failed_total",
                "Attempts that ended in failure.",
                &self.attempts_failed,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                get(c)
            );
        }
        let _ = writeln!(
            out,
            "# HELP orrery_leader 1 while this replica leads.\n# TYPE orrery_leader gauge\norrery_leader {}",
            u8::from(self.leader.load(Ordering::Relaxed))
        );
        out
    }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render(),
    )
}

/// Ready only while leading: a standby replica is alive but does no work.
async fn readyz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.leader.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "standby: not the leader")
    }
}

pub fn router(m: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_every_family() {
        let m = Metrics::default();
        inc(&m.trial_errors);
        inc(&m.pods_created);
        let text = m.render();
        assert!(text.contains("# TYPE orrery_reconciles_total counter\n"));
        assert!(text.contains("orrery_reconciles_total{controller=\"experiment\"} 0\n"));
        assert!(text.contains("orrery_reconcile_errors_total{controller=\"trial\"} 1\n"));
        assert!(text.contains("orrery_pods_created_total 1\n"));
        assert!(text.contains("orrery_leader 0\n"));
    }
}
