//! The Experiment controller: validates the spec, registers it with the API, and carries out the
//! scheduling core's decisions ([`orrery_core::schedule::decide`]) by creating `Trial` objects.
//!
//! It keeps no state of its own: each reconcile rebuilds the trials' states from the Trial cache
//! (a Trial object exists once its trial was started; the Trial controller runs its attempts and
//! retries), so the operator can be killed at any moment. Trial names are `<experiment>-<index>`:
//! starting a trial twice is a 409 on the second create, never a second trial.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, Patch, PatchParams, PostParams, ResourceExt};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as Finalize};
use kube::Resource;
use serde_json::json;

use orrery_core::dto::{ExperimentStateUpdate, InitState, TrialStateUpdate};
use orrery_core::schedule::{
    apply as apply_action, decide, Action as Step, Counts, ExperimentPhase, Gate, Policy,
    TrialPhase, TrialState,
};
use orrery_core::validate::LoadedSpec;

use crate::context::{Context, Error};
use crate::crd::{set_condition, spec_document, Condition, Experiment, Trial, TrialResourceSpec};
use crate::pods::LABEL_EXPERIMENT;
use crate::telemetry::inc;

pub const FINALIZER: &str = "orrery.dev/cleanup";
/// Even with no events, look again this often (a missed watch event costs at most this).
const RESYNC: Duration = Duration::from_secs(300);
/// Trial creations in flight at once.
const CREATE_CONCURRENCY: usize = 32;
/// How often, at most, the best trial is read from the leaderboard while an experiment runs.
/// How often an experiment whose trials wait for a `model.init_from` source asks again.
const SOURCE_POLL: Duration = Duration::from_secs(5);
const BEST_EVERY: Duration = Duration::from_secs(5);

pub async fn reconcile(exp: Arc<Experiment>, ctx: Arc<Context>) -> Result<Action, Error> {
    inc(&ctx.metrics.experiment_reconciles);
    let ns = exp.namespace().unwrap_or_default();
    let api: Api<Experiment> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, exp, |event| async {
        match event {
            Finalize::Apply(e) => apply(e, &ctx).await,
            Finalize::Cleanup(e) => cleanup(e, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(Box::new(other)),
    })
}

pub fn error_policy(exp: Arc<Experiment>, err: &Error, ctx: Arc<Context>) -> Action {
    inc(&ctx.metrics.experiment_errors);
    tracing::warn!(experiment = %exp.name_any(), error = %err, "reconcile failed; retrying");
    Action::requeue(match err {
        Error::NotSynced => Duration::from_secs(1),
        _ => Duration::from_secs(5),
    })
}

/// The trial's state as the scheduler sees it. A Trial object exists once its trial started, so a
/// non-terminal one is `Running` for the scheduler even while its Pod waits for a node: it holds a
/// parallelism slot.
fn scheduler_state(t: &Trial) -> TrialState {
    let status = t.status.clone().unwrap_or_default();
    let phase = status
        .parsed_phase()
        .filter(|p| p.is_terminal())
        .unwrap_or(TrialPhase::Running);
    TrialState {
        phase,
        attempts: status.attempts.max(1),
    }
}

async fn apply(exp: Arc<Experiment>, ctx: &Context) -> Result<Action, Error> {
    let name = exp.name_any();
    let ns = exp.namespace().unwrap_or_default();
    let old = exp.status.clone().unwrap_or_default();
    if old.parsed_phase().is_some_and(|p| p.is_terminal()) {
        return Ok(Action::await_change());
    }
    let reference = exp.object_ref(&());
    let mut status = old.clone();
    status.observed_generation = exp.metadata.generation;

    // The CRD schema refuses most bad specs at `kubectl apply`; the validator has the last word.
    let uid = exp.uid().unwrap_or_default();
    let generation = exp.metadata.generation;
    let remembered = ctx.memo.lock().unwrap().get(&uid).and_then(|m| {
        m.spec
            .as_ref()
            .filter(|(g, _)| *g == generation)
            .map(|(_, l)| l.clone())
    });
    let checked = match remembered {
        Some(l) => Ok(l),
        None => orrery_core::load_spec(&spec_document(&name, &exp.spec.spec)).map(|mut l| {
            // As the API resolves it for the trials it records.
            l.resolve_precision_on_cluster();
            Arc::new(l)
        }),
    };
    let loaded = match checked {
        Ok(l) => {
            ctx.memo
                .lock()
                .unwrap()
                .entry(uid.clone())
                .or_default()
                .spec = Some((generation, l.clone()));
            l
        }
        Err(errs) => {
            let message = errs
                .0
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect::<Vec<_>>()
                .join("; ");
            status.phase = Some(ExperimentPhase::Failed.as_str().into());
            set_condition(
                &mut status.conditions,
                Condition::new("Valid", false, "InvalidSpec", message.clone()),
            );
            ctx.patch_status(&*exp, &status).await?;
            ctx.event(&reference, true, "InvalidSpec", message).await;
            return Ok(Action::await_change());
        }
    };
    set_condition(
        &mut status.conditions,
        Condition::new("Valid", true, "SpecValid", "the spec is valid"),
    );

    let api_id = match old.api_experiment_id {
        Some(id) => id,
        None => {
            let uid = exp.uid();
            let text = spec_document(&name, &exp.spec.spec);
            let dto = ctx
                .call(move |a| a.create_experiment(&text, uid.as_deref()))
                .await?;
            ctx.event(
                &reference,
                false,
                "Registered",
                format!(
                    "registered with the API as experiment {}: {} trials",
                    dto.id,
                    loaded.trials.len()
                ),
            )
            .await;
            dto.id
        }
    };
    status.api_experiment_id = Some(api_id);

    tokio::time::timeout(Duration::from_secs(2), ctx.trials.wait_until_ready())
        .await
        .map_err(|_| Error::NotSynced)?
        .map_err(|_| Error::NotSynced)?;
    let mine: BTreeMap<u32, Arc<Trial>> = ctx
        .trials
        .state()
        .into_iter()
        .filter(|t| {
            t.namespace().as_deref() == Some(ns.as_str())
                && t.owner_references().iter().any(|o| o.uid == uid)
        })
        .map(|t| (t.spec.index, t))
        .collect();
    let n = loaded.trials.len();
    let mut states: Vec<TrialState> = (0..n)
        .map(|i| {
            mine.get(&(i as u32))
                .map(|t| scheduler_state(t))
                .unwrap_or(TrialState::NEW)
        })
        .collect();

    // Trials that start from another trial's weights (`model.init_from`) wait for it.
    let SourceGates {
        gates,
        waits: source_waits,
        failures: source_failures,
    } = init_gates(ctx, &loaded, api_id, &mine, &mut states).await?;
    let policy = Policy::from_spec(&loaded.experiment.spec);
    let mut finish = None;
    // A second pass lets trials cancelled here (never started) complete the picture at once.
    for _ in 0..2 {
        let mut cancelled_unstarted = false;
        let steps = decide(&policy, &states, &gates, false);
        // Trials to start are created concurrently: one at a time, a wave of 200 takes seconds.
        let starts: Vec<usize> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Start { trial, .. } => Some(*trial),
                _ => None,
            })
            .collect();
        if !starts.is_empty() {
            let ids = api_trial_ids(ctx, &uid, api_id).await?;
            let creates: Vec<_> = starts
                .iter()
                .map(|&i| {
                    let api_trial = ids.get(&(i as i64)).copied();
                    create_trial(&exp, ctx, &loaded, &policy, i, api_trial)
                })
                .collect();
            futures::stream::iter(creates)
                .buffer_unordered(CREATE_CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await?;
        }
        for step in steps {
            match &step {
                Step::Start { trial, .. } => {
                    states[*trial] = apply_action(states[*trial], &step);
                }
                Step::Cancel { trial } => match mine.get(&(*trial as u32)) {
                    Some(t) if !t.spec.cancel => {
                        let api: Api<Trial> = Api::namespaced(ctx.client.clone(), &ns);
                        api.patch(
                            &t.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(json!({"spec": {"cancel": true}})),
                        )
                        .await?;
                    }
                    Some(_) => {}
                    None => {
                        states[*trial] = apply_action(states[*trial], &step);
                        cancelled_unstarted = true;
                    }
                },
                Step::Fail { trial } => {
                    states[*trial] = apply_action(states[*trial], &step);
                    // The gate said why, for the API trial it asked about.
                    if let Some((id, why)) = source_failures.get(trial).cloned() {
                        let update = TrialStateUpdate {
                            phase: TrialPhase::Failed,
                            attempts: None,
                            message: Some(format!("model.init_from: {why}")),
                        };
                        ctx.call(move |a| a.set_trial_state(id, &update)).await?;
                    }
                }
                Step::Finish { .. } => finish = Some(step.clone()),
            }
        }
        if !cancelled_unstarted || finish.is_some() {
            break;
        }
    }
    // Trials cancelled before they started have no Trial object: record them in the API.
    let unstarted_cancelled: Vec<usize> = (0..n)
        .filter(|i| !mine.contains_key(&(*i as u32)) && states[*i].phase == TrialPhase::Cancelled)
        .collect();
    if !unstarted_cancelled.is_empty() {
        let ts = ctx.call(move |a| a.trials(api_id)).await?;
        let ids = ts
            .iter()
            .filter(|t| unstarted_cancelled.contains(&(t.index as usize)) && !t.phase.is_terminal())
            .map(|t| t.id);
        cancel_in_api(ctx, ids, "the experiment stopped before this trial started").await?;
    }

    // What `kubectl get` shows: the trials' own phases (Pending while a Pod waits for a node).
    let shown: Vec<TrialPhase> = (0..n)
        .map(|i| match mine.get(&(i as u32)) {
            Some(t) => t
                .status
                .as_ref()
                .and_then(|s| s.parsed_phase())
                .unwrap_or(TrialPhase::Pending),
            None => states[i].phase,
        })
        .collect();
    let counts = Counts::of(&shown);
    status.progress = Some(format!("{}/{}", counts.done(), counts.total));
    let results_changed = old
        .counts
        .is_none_or(|c| c.succeeded + c.early_stopped != counts.succeeded + counts.early_stopped);
    status.counts = Some(counts);
    // The leaderboard is an O(trials) read: at most every few seconds while results arrive, and
    // once more when the experiment finishes.
    let best_due = {
        let memo = ctx.memo.lock().unwrap();
        memo.get(&uid)
            .and_then(|m| m.best_read_at)
            .is_none_or(|t| t.elapsed() >= BEST_EVERY)
    };
    let finishing = matches!(finish, Some(Step::Finish { .. }));
    if (finishing || results_changed && best_due) && counts.succeeded + counts.early_stopped > 0 {
        ctx.memo
            .lock()
            .unwrap()
            .entry(uid.clone())
            .or_default()
            .best_read_at = Some(Instant::now());
        let board = ctx.call(move |a| a.leaderboard(api_id)).await?;
        if let Some(best) = board.rows.iter().find(|r| r.rank == Some(1)) {
            status.best_trial = Some(format!("{name}-{}", best.index));
            status.best_objective = best.objective;
        }
    }

    let waiting: Vec<(String, String)> = mine
        .values()
        .filter_map(|t| {
            let s = t.status.as_ref()?;
            (s.reason.as_deref() == Some("Unschedulable"))
                .then(|| (t.name_any(), s.message.clone().unwrap_or_default()))
        })
        .collect();
    let waiting_condition = match waiting.first() {
        Some((trial, why)) => Condition::new(
            "TrialsWaiting",
            true,
            "Unschedulable",
            format!(
                "{} trial(s) wait for resources; {trial}: {why}",
                waiting.len()
            ),
        ),
        None => Condition::new(
            "TrialsWaiting",
            false,
            "AllScheduled",
            "no trial waits for resources",
        ),
    };
    set_condition(&mut status.conditions, waiting_condition);
    set_condition(
        &mut status.conditions,
        match source_waits.first() {
            Some((i, why)) => Condition::new(
                "SourceWaiting",
                true,
                "InitSourceNotFinished",
                format!(
                    "{} trial(s) wait for their model.init_from source; {name}-{i}: {why}",
                    source_waits.len()
                ),
            ),
            None => Condition::new(
                "SourceWaiting",
                false,
                "NoneWaiting",
                "no trial waits for a model.init_from source",
            ),
        },
    );

    let was = old.parsed_phase();
    match finish {
        Some(Step::Finish {
            phase,
            reason,
            message,
        }) => {
            let update = ExperimentStateUpdate {
                phase,
                reason: Some(reason.into()),
                message: Some(message.clone()),
            };
            ctx.call(move |a| a.set_experiment_state(api_id, &update))
                .await?;
            status.phase = Some(phase.as_str().into());
            set_condition(
                &mut status.conditions,
                Condition::new("Finished", true, reason, message.clone()),
            );
            ctx.patch_status(&*exp, &status).await?;
            ctx.memo.lock().unwrap().remove(&uid);
            ctx.event(
                &reference,
                phase != ExperimentPhase::Succeeded,
                reason,
                format!("experiment {phase}: {message}"),
            )
            .await;
            return Ok(Action::await_change());
        }
        _ => {
            let phase = if mine.is_empty() && counts.done() == 0 {
                ExperimentPhase::Pending
            } else {
                ExperimentPhase::Running
            };
            if was != Some(phase) && phase == ExperimentPhase::Running {
                let update = ExperimentStateUpdate {
                    phase,
                    reason: None,
                    message: None,
                };
                ctx.call(move |a| a.set_experiment_state(api_id, &update))
                    .await?;
            }
            status.phase = Some(phase.as_str().into());
        }
    }
    ctx.patch_status(&*exp, &status).await?;
    // A source's progress is another experiment's: nothing here changes when it finishes.
    Ok(Action::requeue(if source_waits.is_empty() {
        RESYNC
    } else {
        SOURCE_POLL
    }))
}

/// What the API said of the `model.init_from` sources of an experiment's unstarted trials.
#[derive(Default)]
struct SourceGates {
    /// Per trial index (open where no source applies).
    gates: Vec<Gate>,
    /// Trials that wait, with the reason.
    waits: Vec<(usize, String)>,
    /// Trials whose source failed: their API trial id and the reason.
    failures: BTreeMap<usize, (i64, String)>,
}

/// The `model.init_from` gate of every trial that has no Trial object yet (those that do have
/// started), from the API, with the reason of each that waits or fails. A trial the API already
/// failed for its source stays failed in `states`. Experiments without `init_from` ask nothing.
async fn init_gates(
    ctx: &Context,
    loaded: &LoadedSpec,
    api_id: i64,
    mine: &BTreeMap<u32, Arc<Trial>>,
    states: &mut [TrialState],
) -> Result<SourceGates, Error> {
    let has_source = loaded.trials.iter().any(|t| {
        t.sections
            .pointer("/model/init_from")
            .is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty()))
    });
    let mut out = SourceGates {
        gates: vec![Gate::Open; states.len()],
        ..Default::default()
    };
    if !has_source {
        return Ok(out);
    }
    let trials = ctx.call(move |a| a.trials(api_id)).await?;
    for t in trials {
        let i = t.index as usize;
        if i >= states.len() || mine.contains_key(&(i as u32)) {
            continue;
        }
        if t.phase.is_terminal() {
            states[i] = TrialState {
                phase: t.phase,
                attempts: t.attempts,
            };
            continue;
        }
        if t.config.init_from.is_none() {
            continue;
        }
        let id = t.id;
        let status = ctx.call(move |a| a.init_status(id)).await?;
        let why = status.message.unwrap_or_default();
        out.gates[i] = match status.state {
            InitState::None | InitState::Ready => Gate::Open,
            InitState::Waiting => {
                out.waits.push((i, why));
                Gate::Waiting
            }
            InitState::Failed => {
                out.failures.insert(i, (id, why));
                Gate::SourceFailed
            }
        };
    }
    Ok(out)
}

async fn create_trial(
    exp: &Experiment,
    ctx: &Context,
    loaded: &LoadedSpec,
    policy: &Policy,
    index: usize,
    api_trial_id: Option<i64>,
) -> Result<(), Error> {
    let name = exp.name_any();
    let ns = exp.namespace().unwrap_or_default();
    let plan = &loaded.trials[index];
    let spec = &loaded.experiment.spec;
    let config = plan
        .config()
        .expect("a validated spec yields each trial's configuration");
    let mut trial = Trial::new(
        &format!("{name}-{index}"),
        TrialResourceSpec {
            experiment: name.clone(),
            index: index as u32,
            params: plan.assignments.clone(),
            config,
            resources: spec.resources.clone(),
            kubernetes: spec.kubernetes.clone(),
            max_restarts: policy.max_restarts,
            api_trial_id,
            cancel: false,
        },
    );
    trial.metadata.namespace = Some(ns.clone());
    trial.metadata.labels = Some(BTreeMap::from([(LABEL_EXPERIMENT.into(), name.clone())]));
    trial.metadata.owner_references = exp.controller_owner_ref(&()).map(|o| vec![o]);
    let api: Api<Trial> = Api::namespaced(ctx.client.clone(), &ns);
    match api.create(&PostParams::default(), &trial).await {
        Ok(_) => {
            inc(&ctx.metrics.trials_created);
            Ok(())
        }
        // Created by an earlier reconcile the cache has not caught up with.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The Experiment is being deleted: its trials stop (their Pods go with them, by owner
/// references) and the API records it as cancelled.
async fn cleanup(exp: Arc<Experiment>, ctx: &Context) -> Result<Action, Error> {
    let name = exp.name_any();
    let ns = exp.namespace().unwrap_or_default();
    ctx.memo
        .lock()
        .unwrap()
        .remove(&exp.uid().unwrap_or_default());
    let api: Api<Trial> = Api::namespaced(ctx.client.clone(), &ns);
    let lp = kube::api::ListParams::default().labels(&format!("{LABEL_EXPERIMENT}={name}"));
    api.delete_collection(&Default::default(), &lp).await?;
    let status = exp.status.clone().unwrap_or_default();
    if let Some(api_id) = status.api_experiment_id {
        let exp_dto = ctx.call(move |a| a.get_experiment(api_id)).await?;
        if !exp_dto.phase.is_terminal() {
            let trials = ctx.call(move |a| a.trials(api_id)).await?;
            let ids = trials
                .iter()
                .filter(|t| !t.phase.is_terminal())
                .map(|t| t.id);
            cancel_in_api(ctx, ids, "the Experiment object was deleted").await?;
            let update = ExperimentStateUpdate {
                phase: ExperimentPhase::Cancelled,
                reason: Some("Deleted".into()),
                message: Some("the Experiment object was deleted".into()),
            };
            ctx.call(move |a| a.set_experiment_state(api_id, &update))
                .await?;
        }
    }
    tracing::info!(experiment = %name, "deleted: trials removed, API records it cancelled");
    Ok(Action::await_change())
}

/// Records trials as cancelled in the API (trials that never got a Trial object, or whose
/// Experiment was deleted).
async fn cancel_in_api(
    ctx: &Context,
    trial_ids: impl Iterator<Item = i64>,
    message: &'static str,
) -> Result<(), Error> {
    for id in trial_ids {
        let update = TrialStateUpdate {
            phase: TrialPhase::Cancelled,
            attempts: None,
            message: Some(message.into()),
        };
        ctx.call(move |a| a.set_trial_state(id, &update)).await?;
    }
    Ok(())
}

/// Trial index → API trial id, read from the API once per experiment and operator process.
async fn api_trial_ids(
    ctx: &Context,
    uid: &str,
    api_id: i64,
) -> Result<Arc<BTreeMap<i64, i64>>, Error> {
    if let Some(ids) = ctx
        .memo
        .lock()
        .unwrap()
        .get(uid)
        .and_then(|m| m.api_trial_ids.clone())
    {
        return Ok(ids);
    }
    let trials = ctx.call(move |a| a.trials(api_id)).await?;
    let ids: Arc<BTreeMap<i64, i64>> = Arc::new(trials.iter().map(|t| (t.index, t.id)).collect());
    ctx.memo
        .lock()
        .unwrap()
        .entry(uid.to_string())
        .or_default()
        .api_trial_ids = Some(ids.clone());
    Ok(ids)
}
