//! Worker tokens: minted per trial, stored as SHA-256.

use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use super::{Result, Store, StoreError};
use crate::entities::trial;

impl Store {
    /// Mints a new worker token for a trial, replacing any earlier one, and returns it: the only
    /// time it is seen. Only its SHA-256 is stored.
    pub async fn mint_trial_token(&self, trial_id: i64) -> Result<String> {
        let token = crate::auth::new_token();
        let _w = self.write.lock().await;
        let m = trial::Entity::find_by_id(trial_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("trial {trial_id}")))?;
        let mut a: trial::ActiveModel = m.into();
        a.token_hash = Set(Some(crate::auth::hash_hex(&token)));
        a.update(&self.db).await?;
        Ok(token)
    }

    /// The trial whose worker token has this SHA-256 (hex).
    pub async fn trial_of_token(&self, hash_hex: &str) -> Result<Option<i64>> {
        Ok(trial::Entity::find()
            .filter(trial::Column::TokenHash.eq(hash_hex))
            .one(&self.db)
            .await?
            .map(|m| m.id))
    }
}
