//! The scheduling state machine: which trials start, retry or are cancelled, and when the
//! experiment is done. Pure: both executors (local processes, Kubernetes pods) call [`decide`],
//! carry out the actions, and report each attempt's end through [`on_outcome`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum TrialPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    /// NaN/inf or a loss above its initial value: a result (LR sweeps need it), not a failure.
    Diverged,
    /// Reserved for early-stopping policies; no executor produces it yet.
    EarlyStopped,
    Cancelled,
}

impl TrialPhase {
    pub const ALL: [TrialPhase; 7] = [
        TrialPhase::Pending,
        TrialPhase::Running,
        TrialPhase::Succeeded,
        TrialPhase::Failed,
        TrialPhase::Diverged,
        TrialPhase::EarlyStopped,
        TrialPhase::Cancelled,
    ];

    pub fn is_terminal(self) -> bool {
        !matches!(self, TrialPhase::Pending | TrialPhase::Running)
    }

    /// Terminal phases that carry a result for the leaderboard.
    pub fn is_result(self) -> bool {
        matches!(
            self,
            TrialPhase::Succeeded | TrialPhase::Diverged | TrialPhase::EarlyStopped
        )
    }

    /// Results that are ranked by their objective. A diverged trial's last finite value predates
    /// its divergence, so it is listed but never ranked.
    pub fn is_ranked(self) -> bool {
        matches!(self, TrialPhase::Succeeded | TrialPhase::EarlyStopped)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TrialPhase::Pending => "Pending",
            TrialPhase::Running => "Running",
            TrialPhase::Succeeded => "Succeeded",
            TrialPhase::Failed => "Failed",
            TrialPhase::Diverged => "Diverged",
            TrialPhase::EarlyStopped => "EarlyStopped",
            TrialPhase::Cancelled => "Cancelled",
        }
    }
}

impl fmt::Display for TrialPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TrialPhase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TrialPhase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = TrialPhase::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown trial phase \"{s}\"; expected one of {}",
                    all.join(", ")
                )
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum ExperimentPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl ExperimentPhase {
    pub const ALL: [ExperimentPhase; 5] = [
        ExperimentPhase::Pending,
        ExperimentPhase::Running,
        ExperimentPhase::Succeeded,
        ExperimentPhase::Failed,
        ExperimentPhase::Cancelled,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ExperimentPhase::Succeeded | ExperimentPhase::Failed | ExperimentPhase::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExperimentPhase::Pending => "Pending",
            ExperimentPhase::Running => "Running",
            ExperimentPhase::Succeeded => "Succeeded",
            ExperimentPhase::Failed => "Failed",
            ExperimentPhase::Cancelled => "Cancelled",
        }
    }
}

impl fmt::Display for ExperimentPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ExperimentPhase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ExperimentPhase::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown experiment phase \"{s}\""))
    }
}

/// The spec fields that drive scheduling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub parallelism: u32,
    pub max_restarts: u32,
    /// Failed trials tolerated; one more fails the experiment. `None`: no limit.
    pub max_failed_trials: Option<u32>,
}

impl Policy {
    pub fn from_spec(spec: &crate::spec::ExperimentSpec) -> Self {
        Policy {
            parallelism: spec.parallelism.max(1),
            max_restarts: spec.retry.max_restarts,
            max_failed_trials: spec.max_failed_trials,
        }
    }
}

/// What the scheduler knows of one trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialState {
    pub phase: TrialPhase,
    /// Attempts started so far (a retry is a new attempt).
    pub attempts: u32,
}

impl TrialState {
    pub const NEW: TrialState = TrialState {
        phase: TrialPhase::Pending,
        attempts: 0,
    };
}

/// How one attempt ended, as the executor saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Diverged,
    EarlyStopped,
    /// The process or pod failed (crash, kill, OOM, ...): retried while restarts remain.
    AttemptFailed,
    /// The worker refused its configuration: failed at once, since a retry would fail the same way.
    Rejected,
    /// Stopped because the executor cancelled it.
    Cancelled,
}

/// Whether a pending trial may start, as far as its `model.init_from` source goes (the executor
/// asks the store: [`crate::dto::InitState`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// No source, or its weights are stored.
    Open,
    /// The source has not finished: the trial stays pending and takes no slot.
    Waiting,
    /// The source failed, or left no weights: the trial fails without an attempt.
    SourceFailed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start attempt `attempt` (1-based; above 1 is a retry) of a pending trial.
    Start { trial: usize, attempt: u32 },
    /// Fail a pending trial whose `model.init_from` source failed (the reason is the store's).
    Fail { trial: usize },
    /// Stop a running trial, or mark a pending one cancelled.
    Cancel { trial: usize },
    /// Every trial is terminal: the experiment ends in `phase`.
    Finish {
        phase: ExperimentPhase,
        reason: &'static str,
        message: String,
    },
}

/// Exit codes of `orrery-worker`; both executors read them.
pub mod exit {
    pub const SUCCEEDED: i32 = 0;
    pub const FAILED: i32 = 1;
    /// The configuration cannot run (bad data path, unknown device): retrying will not help.
    pub const BAD_CONFIG: i32 = 2;
    pub const DIVERGED: i32 = 3;
}

/// How an attempt ended, from the worker's exit code (or the signal that killed it), with a
/// message for the user. `cancelled`: the executor asked it to stop; a result it still produced
/// wins over that.
pub fn outcome_from_exit(
    code: Option<i32>,
    signal: Option<i32>,
    cancelled: bool,
) -> (Outcome, String) {
    match (code, signal) {
        (Some(exit::SUCCEEDED), _) => (Outcome::Succeeded, String::new()),
        (Some(exit::DIVERGED), _) => (Outcome::Diverged, "the loss diverged".into()),
        _ if cancelled => (Outcome::Cancelled, "cancelled".into()),
        (Some(exit::BAD_CONFIG), _) => (
            Outcome::Rejected,
            "the worker refused its configuration (exit code 2; see the attempt log)".into(),
        ),
        (Some(c), _) => (
            Outcome::AttemptFailed,
            format!("the worker exited with code {c}"),
        ),
        (None, Some(s)) => (
            Outcome::AttemptFailed,
            format!("the worker was killed by signal {s}"),
        ),
        (None, None) => (Outcome::AttemptFailed, "the worker vanished".into()),
    }
}

/// The trial's state after an attempt ended.
pub fn on_outcome(policy: &Policy, state: TrialState, outcome: &Outcome) -> TrialState {
    let phase = match outcome {
        Outcome::Succeeded => TrialPhase::Succeeded,
        Outcome::Diverged => TrialPhase::Diverged,
        Outcome::EarlyStopped => TrialPhase::EarlyStopped,
        Outcome::Cancelled => TrialPhase::Cancelled,
        Outcome::AttemptFailed if state.attempts <= policy.max_restarts => TrialPhase::Pending,
        Outcome::AttemptFailed | Outcome::Rejected => TrialPhase::Failed,
    };
    TrialState {
        phase,
        attempts: state.attempts,
    }
}

/// The state after the executor carried out `action` (a running trial being cancelled stays
/// `Running` until its attempt ends and is reported through [`on_outcome`]).
pub fn apply(state: TrialState, action: &Action) -> TrialState {
    match action {
        Action::Start { attempt, .. } => TrialState {
            phase: TrialPhase::Running,
            attempts: *attempt,
        },
        Action::Cancel { .. } if state.phase == TrialPhase::Pending => TrialState {
            phase: TrialPhase::Cancelled,
            attempts: state.attempts,
        },
        Action::Fail { .. } => TrialState {
            phase: TrialPhase::Failed,
            attempts: state.attempts,
        },
        _ => state,
    }
}

/// The next actions for an experiment whose trials are in `trials` (indexed by trial number).
/// `gates[i]`: whether pending trial `i`'s `model.init_from` source allows it to start (trials
/// past the end of `gates` are open: an experiment without `init_from` passes `&[]`).
/// `cancel_requested`: the user asked to stop (Ctrl-C, delete).
pub fn decide(
    policy: &Policy,
    trials: &[TrialState],
    gates: &[Gate],
    cancel_requested: bool,
) -> Vec<Action> {
    let failed = trials
        .iter()
        .filter(|t| t.phase == TrialPhase::Failed)
        .count() as u64;
    let too_many_failed = policy.max_failed_trials.is_some_and(|m| failed > m as u64);
    let all_terminal = trials.iter().all(|t| t.phase.is_terminal());

    if cancel_requested || too_many_failed {
        if all_terminal {
            let finish = if cancel_requested {
                Action::Finish {
                    phase: ExperimentPhase::Cancelled,
                    reason: "Cancelled",
                    message: "cancelled by the user".into(),
                }
            } else {
                Action::Finish {
                    phase: ExperimentPhase::Failed,
                    reason: "TooManyFailedTrials",
                    message: format!(
                        "{failed} trials failed, more than maxFailedTrials ({})",
                        policy.max_failed_trials.unwrap_or(0)
                    ),
                }
            };
            return vec![finish];
        }
        return trials
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.phase.is_terminal())
            .map(|(i, _)| Action::Cancel { trial: i })
            .collect();
    }

    if all_terminal {
        let results = trials.iter().filter(|t| t.phase.is_result()).count();
        return vec![if results > 0 || trials.is_empty() {
            Action::Finish {
                phase: ExperimentPhase::Succeeded,
                reason: "AllTrialsDone",
                message: format!("{results} of {} trials produced a result", trials.len()),
            }
        } else {
            Action::Finish {
                phase: ExperimentPhase::Failed,
                reason: "NoTrialSucceeded",
                message: format!("none of the {} trials produced a result", trials.len()),
            }
        }];
    }

    let running = trials
        .iter()
        .filter(|t| t.phase == TrialPhase::Running)
        .count();
    let free = (policy.parallelism as usize).saturating_sub(running);
    let gate = |i: usize| gates.get(i).copied().unwrap_or(Gate::Open);
    let pending = || {
        trials
            .iter()
            .enumerate()
            .filter(|(_, t)| t.phase == TrialPhase::Pending)
    };
    let failed_sources: Vec<Action> = pending()
        .filter(|(i, _)| gate(*i) == Gate::SourceFailed)
        .map(|(i, _)| Action::Fail { trial: i })
        .collect();
    let failing = failed + failed_sources.len() as u64;
    if policy.max_failed_trials.is_some_and(|m| failing > m as u64) {
        // These failures end the experiment: start nothing the next round would cancel.
        return failed_sources;
    }
    let starts = pending()
        .filter(|(i, _)| gate(*i) == Gate::Open)
        .take(free)
        .map(|(i, t)| Action::Start {
            trial: i,
            attempt: t.attempts + 1,
        });
    failed_sources.into_iter().chain(starts).collect()
}

/// Experiment-level counters for status displays.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
pub struct Counts {
    pub total: u32,
    pub pending: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub diverged: u32,
    pub early_stopped: u32,
    pub cancelled: u32,
}

impl Counts {
    pub fn of<'a>(phases: impl IntoIterator<Item = &'a TrialPhase>) -> Self {
        let mut c = Counts::default();
        for p in phases {
            c.total += 1;
            match p {
                TrialPhase::Pending => c.pending += 1,
                TrialPhase::Running => c.running += 1,
                TrialPhase::Succeeded => c.succeeded += 1,
                TrialPhase::Failed => c.failed += 1,
                TrialPhase::Diverged => c.diverged += 1,
                TrialPhase::EarlyStopped => c.early_stopped += 1,
                TrialPhase::Cancelled => c.cancelled += 1,
            }
        }
        c
    }

    pub fn done(&self) -> u32 {
        self.total - self.pending - self.running
    }
}
