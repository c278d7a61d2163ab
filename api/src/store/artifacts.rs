//! Artifacts' metadata rows: one per `(trial, name)`, written after the bytes are stored
//! (`crate::artifacts`), so what is listed is whole.

use sea_orm::sea_query::{Alias, Expr, Func};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};

use orrery_core::dto::ArtifactDto;

use super::{now, Result, Store, StoreError};
use crate::entities::{artifact, trial};

fn dto(m: &artifact::Model) -> ArtifactDto {
    ArtifactDto {
        name: m.name.clone(),
        size: m.size.max(0) as u64,
        sha256: m.sha256.clone(),
        step: m.step,
        created: m.created_at.clone(),
    }
}

/// A stored artifact's row: what it is and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRow {
    pub artifact: ArtifactDto,
    pub object_key: String,
}

/// What a refusal past the quota says.
pub fn quota_message(limit: u64, used: u64, size: u64) -> String {
    format!("the artifact storage's quota is {limit} bytes; {used} are used and this artifact has {size}: delete experiments or raise --artifacts-quota")
}

/// Bytes all stored artifacts take.
async fn total_bytes(db: &impl ConnectionTrait) -> Result<u64> {
    // SUM of a BIGINT is NUMERIC on PostgreSQL: cast it back.
    let total: Option<i64> = artifact::Entity::find()
        .select_only()
        .column_as(
            Expr::expr(Func::cast_as(
                Expr::col(artifact::Column::Size).sum(),
                Alias::new("BIGINT"),
            )),
            "total",
        )
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten();
    Ok(total.unwrap_or(0).max(0) as u64)
}

impl Store {
    /// Bytes all stored artifacts take (what `--artifacts-quota` limits).
    pub async fn artifact_bytes(&self) -> Result<u64> {
        total_bytes(&self.db).await
    }

    /// Records a stored artifact, replacing the trial's artifact of that name if there was one;
    /// returns the replaced row's storage key (its bytes are the caller's to delete). With a
    /// `quota`, refused (`Insufficient`) when all artifacts would then take more than it: checked
    /// under the store's write lock, so concurrent uploads cannot together overshoot it; a
    /// replacement counts the new size instead of the old.
    pub async fn put_artifact(
        &self,
        trial_id: i64,
        a: &ArtifactDto,
        object_key: &str,
        quota: Option<u64>,
    ) -> Result<Option<String>> {
        let _w = self.write.lock().await;
        let txn = self.db.begin().await?;
        if trial::Entity::find_by_id(trial_id)
            .one(&txn)
            .await?
            .is_none()
        {
            return Err(StoreError::NotFound(format!("trial {trial_id}")));
        }
        let old = artifact::Entity::find()
            .filter(artifact::Column::TrialId.eq(trial_id))
            .filter(artifact::Column::Name.eq(&a.name))
            .one(&txn)
            .await?;
        if let Some(limit) = quota {
            let used = total_bytes(&txn).await?;
            let freed = old.as_ref().map_or(0, |o| o.size.max(0) as u64);
            if used.saturating_sub(freed).saturating_add(a.size) > limit {
                return Err(StoreError::Insufficient(quota_message(limit, used, a.size)));
            }
        }
        if let Some(o) = &old {
            artifact::Entity::delete_by_id(o.id).exec(&txn).await?;
        }
        artifact::Entity::insert(artifact::ActiveModel {
            trial_id: Set(trial_id),
            name: Set(a.name.clone()),
            size: Set(a.size as i64),
            sha256: Set(a.sha256.clone()),
            step: Set(a.step),
            object_key: Set(object_key.to_string()),
            created_at: Set(now()),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        txn.commit().await?;
        Ok(old.map(|o| o.object_key))
    }

    async fn artifact_row(&self, trial_id: i64, name: &str) -> Result<artifact::Model> {
        artifact::Entity::find()
            .filter(artifact::Column::TrialId.eq(trial_id))
            .filter(artifact::Column::Name.eq(name))
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("artifact \"{name}\" of trial {trial_id}")))
    }

    /// A trial's artifact of that name.
    pub async fn artifact(&self, trial_id: i64, name: &str) -> Result<ArtifactRow> {
        let m = self.artifact_row(trial_id, name).await?;
        Ok(ArtifactRow {
            artifact: dto(&m),
            object_key: m.object_key,
        })
    }

    /// A trial's artifacts, by name.
    pub async fn artifacts(&self, trial_id: i64) -> Result<Vec<ArtifactDto>> {
        self.trial(trial_id).await?;
        Ok(artifact::Entity::find()
            .filter(artifact::Column::TrialId.eq(trial_id))
            .order_by_asc(artifact::Column::Name)
            .all(&self.db)
            .await?
            .iter()
            .map(dto)
            .collect())
    }

    /// Deletes the trial's artifact `name`; returns its storage key (the caller deletes the bytes).
    pub async fn delete_artifact(&self, trial_id: i64, name: &str) -> Result<String> {
        let _w = self.write.lock().await;
        let m = self.artifact_row(trial_id, name).await?;
        artifact::Entity::delete_by_id(m.id).exec(&self.db).await?;
        Ok(m.object_key)
    }
}
