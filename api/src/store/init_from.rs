//! `model.init_from`: a trial that starts from another trial's final weights. The source is resolved
//! once, when the experiment is submitted (the experiment name to the newest experiment of that
//! name, `match` to the one source trial with this trial's values), and recorded in each trial's
//! configuration ([`InitSource`]); whether the source's weights can be had yet is asked each time
//! ([`Store::init_status`]): by the executors (a trial waits while its source runs, and fails when
//! its source failed), by the worker (which downloads them) and by the auth guard (a worker may
//! download its source's artifacts).

use std::collections::BTreeMap;

use serde_json::Value;

use orrery_core::dto::{ExperimentDto, InitState, InitStatus, TrialDto};
use orrery_core::schedule::TrialPhase;
use orrery_core::search::TrialPlan;
use orrery_core::spec::{InitFrom, InitSource, TrialConfig, TrialRef};
use orrery_core::validate::error_at;

use super::{Result, Store, StoreError};

/// The artifact a source trial's weights are read from (the worker's final upload).
pub const MODEL_ARTIFACT: &str = "model";

/// Source experiments already read during one registration, by how the spec named them.
pub(super) type SourceCache = BTreeMap<String, (ExperimentDto, Vec<TrialDto>)>;

impl Store {
    /// Resolves trial `t`'s `model.init_from` (if any) into `config.init_from`. A source that does
    /// not exist, or whose model has another shape, is refused with the spec position (`text`).
    pub(super) async fn resolve_init_from(
        &self,
        text: &str,
        t: &TrialPlan,
        config: &mut TrialConfig,
        cache: &mut SourceCache,
    ) -> Result<()> {
        let refuse = |field: &str, message: String| {
            StoreError::Invalid(
                error_at(text, t, &format!("model.init_from.{field}"), message).to_string(),
            )
        };
        let Some(written) = t.sections.pointer("/model/init_from") else {
            return Ok(());
        };
        let spec = serde_json::from_value::<InitFrom>(written.clone())
            .map_err(|e| refuse("trial", format!("not a source: {e}")))?;
        if spec.is_unset() {
            return Ok(());
        }
        let source = match (&spec.experiment, &spec.trial) {
            (None, Some(TrialRef::Id(id))) => {
                let src = match self.trial(*id).await {
                    Err(StoreError::NotFound(_)) => {
                        return Err(refuse("trial", format!("there is no trial {id}")))
                    }
                    other => other?,
                };
                check_shape(&src, config).map_err(|m| refuse("trial", m))?;
                InitSource {
                    experiment_id: src.experiment_id,
                    trial_id: Some(src.id),
                }
            }
            (Some(name), _) => {
                if !cache.contains_key(name) {
                    let exp = match self.find_experiment(name).await {
                        Err(StoreError::NotFound(_)) => {
                            return Err(refuse(
                                "experiment",
                                format!("there is no experiment \"{name}\" to start from"),
                            ))
                        }
                        other => other?,
                    };
                    let trials = self.trials(exp.id).await?;
                    cache.insert(name.clone(), (exp, trials));
                }
                let (exp, trials) = &cache[name];
                if spec.match_paths.is_empty() {
                    // `best`: any of its trials may be the best, so all must fit.
                    for src in trials {
                        check_shape(src, config).map_err(|m| refuse("experiment", m))?;
                    }
                    InitSource {
                        experiment_id: exp.id,
                        trial_id: None,
                    }
                } else {
                    let src = matching(exp, trials, config, &spec.match_paths)
                        .map_err(|m| refuse("match", m))?;
                    check_shape(src, config).map_err(|m| refuse("experiment", m))?;
                    InitSource {
                        experiment_id: exp.id,
                        trial_id: Some(src.id),
                    }
                }
            }
            // The validator accepts no other form.
            _ => return Err(refuse("trial", "not a source the validator accepts".into())),
        };
        config.init_from = Some(source);
        Ok(())
    }

    /// Where trial `id`'s initial weights stand (see [`InitState`]).
    pub async fn init_status(&self, id: i64) -> Result<InitStatus> {
        let trial = self.trial(id).await?;
        let status = |state, source_trial_id, sha256, message: Option<String>| InitStatus {
            state,
            source_trial_id,
            sha256,
            message,
        };
        let Some(source) = trial.config.init_from else {
            return Ok(status(InitState::None, None, None, None));
        };
        let source_id = match source.trial_id {
            Some(t) => t,
            None => {
                let exp = match self.experiment(source.experiment_id).await {
                    Err(StoreError::NotFound(_)) => {
                        return Ok(status(
                            InitState::Failed,
                            None,
                            None,
                            Some(format!(
                                "the source experiment {} no longer exists",
                                source.experiment_id
                            )),
                        ))
                    }
                    other => other?,
                };
                if !exp.phase.is_terminal() {
                    return Ok(status(
                        InitState::Waiting,
                        None,
                        None,
                        Some(format!(
                            "waiting for experiment {} \"{}\" ({}) to finish: its best trial's weights are this trial's start",
                            exp.id, exp.name, exp.phase
                        )),
                    ));
                }
                let board = self.leaderboard(exp.id).await?;
                match board.rows.iter().find(|r| r.rank == Some(1)) {
                    Some(best) => best.trial_id,
                    None => {
                        return Ok(status(
                            InitState::Failed,
                            None,
                            None,
                            Some(format!(
                            "experiment {} \"{}\" ended {} without a ranked trial to start from",
                            exp.id, exp.name, exp.phase
                        )),
                        ))
                    }
                }
            }
        };
        let src = match self.trial(source_id).await {
            Err(StoreError::NotFound(_)) => {
                return Ok(status(
                    InitState::Failed,
                    Some(source_id),
                    None,
                    Some(format!("the source trial {source_id} no longer exists")),
                ))
            }
            other => other?,
        };
        let what = format!(
            "source trial {} (experiment {}, trial {})",
            src.id, src.experiment_id, src.index
        );
        match src.phase {
            TrialPhase::Pending | TrialPhase::Running => Ok(status(
                InitState::Waiting,
                Some(src.id),
                None,
                Some(format!("waiting for {what} to finish: it is {}", src.phase)),
            )),
            TrialPhase::Succeeded | TrialPhase::EarlyStopped => {
                match self.artifact(src.id, MODEL_ARTIFACT).await {
                    Ok(a) => Ok(status(
                        InitState::Ready,
                        Some(src.id),
                        Some(a.artifact.sha256),
                        None,
                    )),
                    Err(StoreError::NotFound(_)) => Ok(status(
                        InitState::Failed,
                        Some(src.id),
                        None,
                        Some(format!(
                            "{what} {} but stored no `{MODEL_ARTIFACT}` artifact",
                            src.phase
                        )),
                    )),
                    Err(e) => Err(e),
                }
            }
            phase => Ok(status(
                InitState::Failed,
                Some(src.id),
                None,
                Some(format!(
                    "{what} ended {phase}{}",
                    src.message.map(|m| format!(": {m}")).unwrap_or_default()
                )),
            )),
        }
    }

    /// The trial whose artifacts trial `id`'s worker may download besides its own: its resolved
    /// `model.init_from` source, once known.
    pub async fn init_source_trial(&self, id: i64) -> Result<Option<i64>> {
        Ok(self.init_status(id).await?.source_trial_id)
    }
}

/// The source's model must be this trial's: weights of another shape cannot be loaded.
fn check_shape(src: &TrialDto, config: &TrialConfig) -> std::result::Result<(), String> {
    if src.config.model == config.model {
        return Ok(());
    }
    let s = |m: &orrery_core::spec::ModelShape| {
        format!(
            "layers {}, d_model {}, heads {}, seq_len {}, mlp_ratio {}",
            m.layers, m.d_model, m.heads, m.seq_len, m.mlp_ratio
        )
    };
    Err(format!(
        "the model of trial {} (experiment {}) has {}, but this trial's has {}: its weights do not fit",
        src.id,
        src.experiment_id,
        s(&src.config.model),
        s(&config.model)
    ))
}

/// The one trial of `exp` whose configuration has this trial's values at every path.
fn matching<'a>(
    exp: &ExperimentDto,
    trials: &'a [TrialDto],
    config: &TrialConfig,
    paths: &[String],
) -> std::result::Result<&'a TrialDto, String> {
    let at = |c: &TrialConfig| -> Vec<Value> {
        let v = serde_json::to_value(c).unwrap_or(Value::Null);
        paths
            .iter()
            .map(|p| {
                let pointer: String = p
                    .split('.')
                    .map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1")))
                    .collect();
                v.pointer(&pointer).cloned().unwrap_or(Value::Null)
            })
            .collect()
    };
    let want = at(config);
    if let Some((p, _)) = paths.iter().zip(&want).find(|(_, v)| v.is_null()) {
        return Err(format!(
            "`{p}` is not in a trial's resolved configuration: match on fields such as training.seed"
        ));
    }
    let found: Vec<&TrialDto> = trials.iter().filter(|t| at(&t.config) == want).collect();
    let values = paths
        .iter()
        .zip(&want)
        .map(|(p, v)| format!("{p}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(format!(
            "no trial of experiment {} \"{}\" has {values}",
            exp.id, exp.name
        )),
        many => Err(format!(
            "{} trials of experiment {} \"{}\" have {values} (trials {}); match on more paths to pick one",
            many.len(),
            exp.id,
            exp.name,
            many.iter().map(|t| t.index.to_string()).collect::<Vec<_>>().join(", ")
        )),
    }
}
