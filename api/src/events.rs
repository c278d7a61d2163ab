//! Live updates. The store announces each change here after it is committed; `GET
//! /api/v1/events` and `GET /api/v1/experiments/{id}/events` stream them to browsers and CLIs as
//! server-sent events, so a page redraws a running trial without polling.
//!
//! The announcement is a hint, not the data: a client that receives one re-reads what changed
//! through the REST API. A client too slow to keep up gets a `lagged` event (re-read everything)
//! instead of an unbounded queue on the server. Only changes made through this process are
//! announced: with several API replicas a client sees the changes its own replica handled.

use serde::Serialize;
use tokio::sync::broadcast;

use orrery_core::schedule::{ExperimentPhase, TrialPhase};

/// Events buffered per subscriber before it counts as lagging.
const BUFFER: usize = 1024;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Event {
    /// An experiment was created or changed phase.
    Experiment {
        experiment_id: i64,
        phase: ExperimentPhase,
    },
    /// A trial changed phase.
    Trial {
        experiment_id: i64,
        trial_id: i64,
        phase: TrialPhase,
    },
    /// New points were stored for a trial (`names`: the metrics that grew).
    Metrics {
        experiment_id: i64,
        trial_id: i64,
        names: Vec<String>,
        last_step: i64,
    },
}

impl Event {
    pub fn experiment_id(&self) -> i64 {
        match self {
            Event::Experiment { experiment_id, .. }
            | Event::Trial { experiment_id, .. }
            | Event::Metrics { experiment_id, .. } => *experiment_id,
        }
    }

    /// The SSE event name: what kind of thing changed.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Experiment { .. } => "experiment",
            Event::Trial { .. } => "trial",
            Event::Metrics { .. } => "metrics",
        }
    }
}

/// The store's announcer: cheap to publish to when nobody listens.
pub struct Bus(broadcast::Sender<Event>);

impl Default for Bus {
    fn default() -> Self {
        Bus(broadcast::channel(BUFFER).0)
    }
}

impl Bus {
    pub fn publish(&self, e: Event) {
        // An error only means there is no subscriber right now.
        let _ = self.0.send(e);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.subscribe()
    }

    pub fn subscribers(&self) -> usize {
        self.0.receiver_count()
    }
}
