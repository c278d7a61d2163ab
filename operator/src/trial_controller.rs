//! The Trial controller: one Pod per attempt, and the trial's state from how its Pods ended.
//!
//! The Pods are the record: the latest attempt is the Pod with the highest `orrery.dev/attempt`
//! label, and how it ended ([`pods::outcome`]) goes through the scheduling core's
//! [`on_outcome`] to decide between a retry (a new Pod, never a restarted one) and a final phase.
//! Pod names are `<trial>-a<attempt>`, so a reconcile repeated after a crash finds the Pod it
//! already created instead of starting the attempt twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret, Toleration};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, ResourceExt};
use kube::runtime::controller::Action;
use kube::Resource;

use orrery_core::dto::TrialStateUpdate;
use orrery_core::schedule::{on_outcome, Outcome, Policy, TrialPhase, TrialState};

use crate::context::{Context, Error, MANAGER};
use crate::crd::{Trial, TrialStatus};
use crate::pods::{self, AttemptPod, LABEL_TRIAL};
use crate::telemetry::inc;

pub async fn reconcile(trial: Arc<Trial>, ctx: Arc<Context>) -> Result<Action, Error> {
    inc(&ctx.metrics.trial_reconciles);
    let old = trial.status.clone().unwrap_or_default();
    if old.parsed_phase().is_some_and(|p| p.is_terminal()) {
        return Ok(Action::await_change());
    }
    let name = trial.name_any();
    let ns = trial.namespace().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let reference = trial.object_ref(&());

    let latest = latest_pod(&trial, &ctx, &pods_api, old.attempts).await?;
    let mut status = old.clone();
    // A replica that died between creating a Pod and recording it leaves the status behind.
    if let Some((attempt, _)) = &latest {
        if *attempt > status.attempts {
            status.attempts = *attempt;
            status.pod_name = Some(pods::pod_name(&name, *attempt));
        }
    }

    if trial.spec.cancel {
        if let Some((_, Some(pod))) = &latest {
            if pods::outcome(pod).is_none() {
                match pods_api
                    .delete(&pod.name_any(), &DeleteParams::default())
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        status.phase = Some(TrialPhase::Cancelled.as_str().into());
        status.reason = Some("Cancelled".into());
        status.message = Some("the experiment stopped this trial".into());
        return finish(&trial, &ctx, &old, status).await;
    }

    let policy = Policy {
        parallelism: 1,
        max_restarts: trial.spec.max_restarts,
        max_failed_trials: None,
    };
    // How the latest attempt stands: absent (start attempt 1), running, or ended.
    let next_attempt = match &latest {
        None => Some(1),
        Some((attempt, pod)) => {
            let ended = match pod {
                Some(p) => pods::outcome(p),
                None => Some((
                    Outcome::AttemptFailed,
                    format!("the Pod of attempt {attempt} disappeared"),
                )),
            };
            match ended {
                None => {
                    let p = pod.as_ref().expect("a running attempt has its Pod");
                    if pods::is_running(p) {
                        status.phase = Some(TrialPhase::Running.as_str().into());
                        status.reason = None;
                        status.message = None;
                    } else {
                        status.phase = Some(TrialPhase::Pending.as_str().into());
                        match pods::unschedulable(p) {
                            Some(why) => {
                                status.reason = Some("Unschedulable".into());
                                status.message = Some(why);
                            }
                            None if status.reason.as_deref() == Some("Unschedulable") => {
                                status.reason = Some("Scheduled".into());
                                status.message = None;
                            }
                            None => {}
                        }
                    }
                    None
                }
                Some((outcome, why)) => {
                    let state = TrialState {
                        phase: TrialPhase::Running,
                        attempts: *attempt,
                    };
                    let after = on_outcome(&policy, state, &outcome);
                    if matches!(outcome, Outcome::AttemptFailed | Outcome::Rejected) {
                        inc(&ctx.metrics.attempts_failed);
                    }
                    if after.phase == TrialPhase::Pending {
                        ctx.event(
                            &reference,
                            true,
                            "Retrying",
                            format!(
                                "attempt {attempt} failed ({why}); starting attempt {}",
                                attempt + 1
                            ),
                        )
                        .await;
                        status.reason = Some("Retrying".into());
                        status.message = Some(format!("attempt {attempt}: {why}"));
                        Some(attempt + 1)
                    } else {
                        status.phase = Some(after.phase.as_str().into());
                        status.reason = Some(reason_of(&outcome, &why));
                        status.message = Some(why);
                        return finish(&trial, &ctx, &old, status).await;
                    }
                }
            }
        }
    };

    if let Some(attempt) = next_attempt {
        let secret = format!("{name}-token");
        // The Pod of this attempt may exist already (created before a failed status write or an
        // operator restart, and not yet in the cache): minting again would revoke the token it
        // runs with, so look first.
        let exists = pods_api
            .get_opt(&pods::pod_name(&name, attempt))
            .await?
            .is_some();
        if !exists {
            apply_token(&trial, &ctx, &secret).await?;
            let pod = attempt_pod(&trial, &ctx, attempt, &secret);
            match pods_api.create(&PostParams::default(), &pod).await {
                Ok(_) => {
                    inc(&ctx.metrics.pods_created);
                    ctx.event(
                        &reference,
                        false,
                        "PodCreated",
                        format!("attempt {attempt}: Pod {}", pods::pod_name(&name, attempt)),
                    )
                    .await;
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        status.attempts = attempt;
        status.pod_name = Some(pods::pod_name(&name, attempt));
        status.phase = Some(TrialPhase::Pending.as_str().into());
    }
    report(&trial, &ctx, &old, &status).await?;
    ctx.patch_status(&*trial, &status).await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

pub fn error_policy(trial: Arc<Trial>, err: &Error, ctx: Arc<Context>) -> Action {
    inc(&ctx.metrics.trial_errors);
    tracing::warn!(trial = %trial.name_any(), error = %err, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// The kubelet's reason when it has one (`OOMKilled`, `Evicted`, `ErrImagePull`), else the outcome.
fn reason_of(outcome: &Outcome, why: &str) -> String {
    match outcome {
        Outcome::Succeeded => "Completed".into(),
        Outcome::Diverged => "Diverged".into(),
        Outcome::EarlyStopped => "EarlyStopped".into(),
        Outcome::Cancelled => "Cancelled".into(),
        Outcome::Rejected => "BadConfig".into(),
        Outcome::AttemptFailed => why
            .split_once(':')
            .map(|(r, _)| r)
            .filter(|r| !r.contains(' '))
            .unwrap_or("Failed")
            .into(),
    }
}

/// The latest attempt and its Pod (`None`: the Pod is gone). The cache may lag behind a Pod this
/// controller just created, so the attempt recorded in the status is looked up directly.
async fn latest_pod(
    trial: &Trial,
    ctx: &Context,
    pods_api: &Api<Pod>,
    recorded: u32,
) -> Result<Option<(u32, Option<Pod>)>, Error> {
    let name = trial.name_any();
    let ns = trial.namespace();
    let cached = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| {
            p.namespace() == ns
                && p.labels().get(LABEL_TRIAL).map(String::as_str) == Some(name.as_str())
        })
        .filter_map(|p| pods::attempt_of(&p).map(|a| (a, p)))
        .max_by_key(|(a, _)| *a);
    match cached {
        Some((a, p)) if a >= recorded => Ok(Some((a, Some((*p).clone())))),
        _ if recorded == 0 => Ok(None),
        _ => {
            let pod = pods_api.get_opt(&pods::pod_name(&name, recorded)).await?;
            Ok(Some((recorded, pod)))
        }
    }
}

/// A new worker token for this attempt, minted by the API (which keeps only its hash) and applied
/// to a Secret the trial owns (deleted with it). Minting revokes the previous attempt's token, whose
/// Pod has ended. The Secret is written before the Pod is created, so the Pod never starts with a
/// revoked token; server-side apply creates or updates it in one call, and the operator never
/// needs to read Secrets.
async fn apply_token(trial: &Trial, ctx: &Context, name: &str) -> Result<(), Error> {
    let api: Api<Secret> =
        Api::namespaced(ctx.client.clone(), &trial.namespace().unwrap_or_default());
    // The Experiment controller registers trials with the API before it creates them, so the id
    // is set; without it the mint fails (404) and the reconcile is retried, with the error logged.
    let trial_id = trial.spec.api_trial_id.unwrap_or(0);
    let token = ctx.call(move |api| api.mint_trial_token(trial_id)).await?;
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            owner_references: trial.controller_owner_ref(&()).map(|o| vec![o]),
            labels: Some(BTreeMap::from([(LABEL_TRIAL.into(), trial.name_any())])),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([("token".into(), token)])),
        ..Default::default()
    };
    api.patch(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await?;
    Ok(())
}

fn attempt_pod(trial: &Trial, ctx: &Context, attempt: u32, secret: &str) -> Pod {
    let k = &trial.spec.kubernetes;
    let gpu = trial.spec.resources.gpu > 0;
    let tolerations = if k.tolerations.is_empty() && gpu {
        ctx.settings.gpu_tolerations.clone()
    } else {
        k.tolerations
            .iter()
            .map(|t| Toleration {
                key: t.key.clone(),
                operator: t.operator.clone(),
                value: t.value.clone(),
                effect: t.effect.clone(),
                toleration_seconds: t.toleration_seconds,
            })
            .collect()
    };
    let node_selector = if k.node_selector.is_empty() && gpu {
        ctx.settings.gpu_node_selector.clone()
    } else {
        k.node_selector.clone()
    };
    let name = trial.name_any();
    let ns = trial.namespace().unwrap_or_default();
    pods::build(&AttemptPod {
        namespace: &ns,
        experiment: &trial.spec.experiment,
        trial: &name,
        trial_id: trial.spec.api_trial_id.unwrap_or(0),
        attempt,
        image: k.image.as_deref().unwrap_or(&ctx.settings.worker_image),
        api_url: &ctx.settings.worker_api_url,
        token_secret: secret,
        resources: &trial.spec.resources,
        node_selector,
        tolerations,
        priority_class: k.priority_class_name.clone(),
        annotations: k.pod_annotations.clone(),
        owner: trial
            .controller_owner_ref(&())
            .expect("a Trial from the API server has a name and uid"),
    })
}

/// Tells the API about a phase change (the API is the system of record for trials).
async fn report(
    trial: &Trial,
    ctx: &Context,
    old: &TrialStatus,
    new: &TrialStatus,
) -> Result<(), Error> {
    let (Some(id), Some(phase)) = (trial.spec.api_trial_id, new.parsed_phase()) else {
        return Ok(());
    };
    if old.phase == new.phase && old.attempts == new.attempts {
        return Ok(());
    }
    let update = TrialStateUpdate {
        phase,
        attempts: Some(new.attempts),
        message: new.message.clone(),
    };
    ctx.call(move |a| a.set_trial_state(id, &update)).await?;
    Ok(())
}

async fn finish(
    trial: &Trial,
    ctx: &Context,
    old: &TrialStatus,
    status: TrialStatus,
) -> Result<Action, Error> {
    report(trial, ctx, old, &status).await?;
    ctx.patch_status(trial, &status).await?;
    let phase = status.phase.clone().unwrap_or_default();
    ctx.event(
        &trial.object_ref(&()),
        phase != TrialPhase::Succeeded.as_str(),
        status.reason.as_deref().unwrap_or("Finished"),
        format!(
            "trial {phase} after {} attempt(s): {}",
            status.attempts,
            status.message.clone().unwrap_or_default()
        ),
    )
    .await;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_come_from_the_kubelet_when_it_gave_one() {
        assert_eq!(
            reason_of(
                &Outcome::AttemptFailed,
                "OOMKilled: the worker exited with code 137"
            ),
            "OOMKilled"
        );
        assert_eq!(
            reason_of(
                &Outcome::AttemptFailed,
                "Evicted: The node was low on memory."
            ),
            "Evicted"
        );
        assert_eq!(
            reason_of(&Outcome::AttemptFailed, "the Pod of attempt 2 disappeared"),
            "Failed"
        );
        assert_eq!(reason_of(&Outcome::Rejected, "exit code 2"), "BadConfig");
        assert_eq!(reason_of(&Outcome::Succeeded, ""), "Completed");
    }
}
