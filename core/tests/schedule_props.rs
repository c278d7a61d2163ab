//! Property tests of the scheduling state machine: an executor that carries out every action and
//! lets attempts end at random must never run more than `parallelism` trials, never start a trial
//! that is not pending, always finish, and finish in the phase its trials imply.

use orrery_core::schedule::{
    apply, decide, on_outcome, Action, ExperimentPhase, Gate, Outcome, Policy, TrialPhase,
    TrialState,
};
use proptest::prelude::*;

fn outcome_from(code: u8) -> Outcome {
    match code % 5 {
        0 | 1 => Outcome::Succeeded,
        2 => Outcome::Diverged,
        3 => Outcome::AttemptFailed,
        _ => Outcome::EarlyStopped,
    }
}

struct Run {
    finished: Option<(ExperimentPhase, &'static str)>,
    trials: Vec<TrialState>,
}

fn simulate(policy: Policy, n: usize, events: &[(u8, u8)], cancel_at: Option<usize>) -> Run {
    let mut trials = vec![TrialState::NEW; n];
    let mut cancel = false;
    let mut step = 0usize;
    loop {
        step += 1;
        assert!(step < 100_000, "the scheduler did not converge");
        if cancel_at == Some(step) {
            cancel = true;
        }
        let actions = decide(&policy, &trials, &[], cancel);
        for a in &actions {
            match a {
                Action::Start { trial, attempt } => {
                    let t = trials[*trial];
                    assert_eq!(
                        t.phase,
                        TrialPhase::Pending,
                        "started a trial that was not pending"
                    );
                    assert_eq!(*attempt, t.attempts + 1);
                    assert!(
                        *attempt <= policy.max_restarts + 1,
                        "more attempts than maxRestarts allows"
                    );
                }
                Action::Cancel { trial } => assert!(!trials[*trial].phase.is_terminal()),
                Action::Fail { .. } => panic!("no trial here has a source to fail"),
                Action::Finish { phase, reason, .. } => {
                    assert_eq!(actions.len(), 1, "finish comes alone");
                    assert!(trials.iter().all(|t| t.phase.is_terminal()));
                    return Run {
                        finished: Some((*phase, reason)),
                        trials,
                    };
                }
            }
            if let Action::Start { trial, .. } | Action::Cancel { trial } = a {
                trials[*trial] = apply(trials[*trial], a);
            }
        }
        let running: Vec<usize> = (0..n)
            .filter(|i| trials[*i].phase == TrialPhase::Running)
            .collect();
        assert!(
            running.len() <= policy.parallelism as usize,
            "more than parallelism running"
        );
        if running.is_empty() {
            continue;
        }
        // One running attempt ends per round: a cancelled one ends as Cancelled.
        let (pick, code) = events
            .get(step % events.len().max(1))
            .copied()
            .unwrap_or((0, 0));
        let i = running[pick as usize % running.len()];
        let cancelling = actions
            .iter()
            .any(|a| matches!(a, Action::Cancel { trial } if *trial == i));
        let outcome = if cancelling {
            Outcome::Cancelled
        } else {
            outcome_from(code)
        };
        trials[i] = on_outcome(&policy, trials[i], &outcome);
    }
}

proptest! {
    #[test]
    fn invariants_hold(
        n in 0usize..25,
        parallelism in 1u32..6,
        max_restarts in 0u32..3,
        max_failed in proptest::option::of(0u32..4),
        events in proptest::collection::vec((any::<u8>(), any::<u8>()), 1..64),
        cancel_at in proptest::option::of(1usize..40),
    ) {
        let policy = Policy { parallelism, max_restarts, max_failed_trials: max_failed };
        let run = simulate(policy, n, &events, cancel_at);
        let (phase, _) = run.finished.expect("the experiment finishes");
        let failed = run.trials.iter().filter(|t| t.phase == TrialPhase::Failed).count() as u32;
        let results = run.trials.iter().filter(|t| t.phase.is_result()).count();
        let cancelled = run.trials.iter().any(|t| t.phase == TrialPhase::Cancelled);
        match phase {
            ExperimentPhase::Succeeded => {
                prop_assert!(results > 0 || n == 0);
                prop_assert!(max_failed.is_none_or(|m| failed <= m));
                prop_assert!(!cancelled);
            }
            ExperimentPhase::Failed => {
                prop_assert!(max_failed.is_some_and(|m| failed > m) || results == 0);
            }
            ExperimentPhase::Cancelled => prop_assert!(cancel_at.is_some()),
            other => prop_assert!(false, "finished in non-terminal phase {other}"),
        }
        for t in &run.trials {
            prop_assert!(t.attempts <= max_restarts + 1);
            if t.phase == TrialPhase::Failed {
                prop_assert_eq!(t.attempts, max_restarts + 1, "a trial fails only after its last restart");
            }
        }
    }
}

#[test]
fn retries_then_fails() {
    let policy = Policy {
        parallelism: 1,
        max_restarts: 2,
        max_failed_trials: Some(0),
    };
    let mut t = TrialState::NEW;
    for attempt in 1..=3 {
        let actions = decide(&policy, &[t], &[], false);
        assert_eq!(actions, vec![Action::Start { trial: 0, attempt }]);
        t = apply(t, &actions[0]);
        t = on_outcome(&policy, t, &Outcome::AttemptFailed);
    }
    assert_eq!(t.phase, TrialPhase::Failed);
    match &decide(&policy, &[t], &[], false)[0] {
        Action::Finish { phase, reason, .. } => {
            assert_eq!(*phase, ExperimentPhase::Failed);
            assert_eq!(*reason, "TooManyFailedTrials");
        }
        other => panic!("expected finish, got {other:?}"),
    }
}

#[test]
fn diverged_is_a_result() {
    let policy = Policy {
        parallelism: 2,
        max_restarts: 0,
        max_failed_trials: Some(0),
    };
    let t = TrialState {
        phase: TrialPhase::Diverged,
        attempts: 1,
    };
    match &decide(&policy, &[t, t], &[], false)[0] {
        Action::Finish { phase, .. } => assert_eq!(*phase, ExperimentPhase::Succeeded),
        other => panic!("expected finish, got {other:?}"),
    }
}

/// `model.init_from`: a trial whose source has not finished waits without taking a slot (the open
/// trial behind it starts); one whose source failed is failed, without an attempt, even when no
/// slot is free.
#[test]
fn gates_hold_or_fail_pending_trials() {
    let policy = Policy {
        parallelism: 1,
        max_restarts: 0,
        max_failed_trials: None,
    };
    let new = [TrialState::NEW; 3];
    let gates = [Gate::Waiting, Gate::Open, Gate::SourceFailed];
    let actions = decide(&policy, &new, &gates, false);
    assert_eq!(
        actions,
        vec![
            Action::Fail { trial: 2 },
            Action::Start {
                trial: 1,
                attempt: 1
            }
        ]
    );
    assert_eq!(apply(new[2], &actions[0]).phase, TrialPhase::Failed);
    // Waiting alone: nothing to do yet, and the experiment is not finished.
    let mut states = new;
    states[1] = TrialState {
        phase: TrialPhase::Succeeded,
        attempts: 1,
    };
    states[2] = TrialState {
        phase: TrialPhase::Failed,
        attempts: 0,
    };
    assert!(decide(&policy, &states, &gates, false).is_empty());
    // Once the source is ready the trial starts; a cancel still reaches a waiting trial.
    let ready = [Gate::Open, Gate::Open, Gate::SourceFailed];
    assert_eq!(
        decide(&policy, &states, &ready, false),
        vec![Action::Start {
            trial: 0,
            attempt: 1
        }]
    );
    assert_eq!(
        decide(&policy, &states, &gates, true),
        vec![Action::Cancel { trial: 0 }]
    );
}

/// Source failures that push the experiment past `maxFailedTrials` fail those trials and start
/// nothing (the next round cancels the rest).
#[test]
fn source_failures_past_the_limit_start_nothing() {
    let policy = Policy {
        parallelism: 2,
        max_restarts: 0,
        max_failed_trials: Some(0),
    };
    let actions = decide(
        &policy,
        &[TrialState::NEW; 3],
        &[Gate::SourceFailed, Gate::Open, Gate::Open],
        false,
    );
    assert_eq!(actions, vec![Action::Fail { trial: 0 }]);
}
