//! Trials: read them and their history, and move them through their phases.

use std::collections::BTreeMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
};
use serde_json::Value;

use orrery_core::dto::{PhaseChange, Summary, TrialDto};
use orrery_core::schedule::TrialPhase;
use orrery_core::spec::TrialConfig;

use super::{now, parse_phase, Result, Store, StoreError};
use crate::entities::{trial, trial_event};
use crate::events::Event;

impl Store {
    pub(super) fn trial_dto(m: trial::Model) -> Result<TrialDto> {
        let params: BTreeMap<String, Value> = serde_json::from_str(&m.params_json)
            .map_err(|e| StoreError::Invalid(format!("trial {}: stored params: {e}", m.id)))?;
        let config: TrialConfig = serde_json::from_str(&m.config_json)
            .map_err(|e| StoreError::Invalid(format!("trial {}: stored config: {e}", m.id)))?;
        Ok(TrialDto {
            id: m.id,
            experiment_id: m.experiment_id,
            index: m.trial_index,
            phase: parse_phase(&m.phase)?,
            attempts: m.attempts.max(0) as u32,
            params,
            config,
            message: m.message,
            started_at: m.started_at,
            finished_at: m.finished_at,
            // A provenance this version cannot read is left out rather than failing the trial.
            provenance: m
                .provenance_json
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok()),
        })
    }

    /// Records what ran the trial's latest attempt (replacing an earlier attempt's).
    pub async fn set_provenance(&self, id: i64, p: &orrery_core::dto::Provenance) -> Result<()> {
        let _w = self.write.lock().await;
        let m = trial::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("trial {id}")))?;
        let mut a: trial::ActiveModel = m.into();
        a.provenance_json = sea_orm::Set(Some(
            serde_json::to_string(p).map_err(|e| StoreError::Invalid(e.to_string()))?,
        ));
        sea_orm::ActiveModelTrait::update(a, &self.db).await?;
        Ok(())
    }

    pub async fn trial(&self, id: i64) -> Result<TrialDto> {
        let m = trial::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("trial {id}")))?;
        Self::trial_dto(m)
    }

    /// The trial's state history, oldest first: its creation (Pending), then each phase change (and
    /// each new reason while it has not ended: a wait for its `model.init_from` source).
    pub async fn trial_history(&self, id: i64) -> Result<Vec<PhaseChange>> {
        let t = trial::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("trial {id}")))?;
        let mut out = vec![PhaseChange {
            phase: TrialPhase::Pending,
            attempts: 0,
            message: None,
            at: t.created_at,
        }];
        for e in trial_event::Entity::find()
            .filter(trial_event::Column::TrialId.eq(id))
            .order_by_asc(trial_event::Column::Id)
            .all(&self.db)
            .await?
        {
            out.push(PhaseChange {
                phase: parse_phase(&e.phase)?,
                attempts: e.attempts.max(0) as u32,
                message: e.message,
                at: e.at,
            });
        }
        Ok(out)
    }

    /// One trial's metric summaries by name (the trial page's list of metrics).
    pub async fn trial_summaries(&self, id: i64) -> Result<BTreeMap<String, Summary>> {
        self.trial(id).await?;
        Ok(self.summaries(&[id]).await?.remove(&id).unwrap_or_default())
    }

    /// The experiment's trials in index order.
    pub async fn trials(&self, experiment_id: i64) -> Result<Vec<TrialDto>> {
        self.experiment(experiment_id).await?;
        trial::Entity::find()
            .filter(trial::Column::ExperimentId.eq(experiment_id))
            .order_by_asc(trial::Column::TrialIndex)
            .all(&self.db)
            .await?
            .into_iter()
            .map(Self::trial_dto)
            .collect()
    }

    /// Moves a trial to `phase`. A terminal trial cannot move again (409), except to the phase it is in.
    pub async fn set_trial_state(
        &self,
        id: i64,
        phase: TrialPhase,
        attempts: Option<u32>,
        message: Option<&str>,
    ) -> Result<TrialDto> {
        let _w = self.write.lock().await;
        let m = trial::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("trial {id}")))?;
        let current: TrialPhase = parse_phase(&m.phase)?;
        if current.is_terminal() && current != phase {
            return Err(StoreError::Conflict(format!(
                "trial {id} is already {current}; it cannot become {phase}"
            )));
        }
        let now = now();
        // The history records changes, not repeated reports of the same state; a new reason for
        // a trial not yet ended is a change (a pending trial that starts waiting for its `model.init_from` source).
        let changed = current != phase
            || attempts.is_some_and(|n| i64::from(n) != m.attempts)
            || (!phase.is_terminal()
                && message.is_some_and(|msg| m.message.as_deref() != Some(msg)));
        let event = trial_event::ActiveModel {
            trial_id: Set(id),
            phase: Set(phase.as_str().into()),
            attempts: Set(attempts.map(i64::from).unwrap_or(m.attempts)),
            message: Set(message.map(str::to_string)),
            at: Set(now.clone()),
            ..Default::default()
        };
        let mut a: trial::ActiveModel = m.into();
        a.phase = Set(phase.as_str().into());
        if let Some(n) = attempts {
            a.attempts = Set(n as i64);
        }
        a.message = Set(message.map(str::to_string));
        if phase == TrialPhase::Running {
            a.started_at = Set(Some(now.clone()));
        }
        if phase.is_terminal() {
            a.finished_at = Set(Some(now));
        }
        let txn = self.db.begin().await?;
        let updated = a.update(&txn).await?;
        if changed {
            event.insert(&txn).await?;
        }
        self.rescore(&txn, id).await?;
        txn.commit().await?;
        let t = Self::trial_dto(updated)?;
        self.events.publish(Event::Trial {
            experiment_id: t.experiment_id,
            trial_id: id,
            phase,
        });
        Ok(t)
    }
}
