//! Checkpoints and models through the API's artifact store, so that a new attempt — a new process
//! in a fresh folder, or a new Pod — resumes where the last one checkpointed, and so that a
//! trial's final weights can be downloaded and trained on by another trial.
//!
//! Each checkpoint is uploaded as `checkpoint-<step>` right after it is written, on the checkpoint
//! writer's thread: training goes on meanwhile, and waits only if the next checkpoint is due before
//! the upload (and its retries, 7 s at most) ended. All but the newest `training.keep_checkpoints`
//! are then deleted; the final weights go up as `model`. A worker that starts without a local
//! checkpoint downloads the newest uploaded one. Checkpoints stay after the trial ends (a
//! succeeded trial keeps its newest ones beside its model; they count against the API's quota).

use std::path::Path;
use std::time::Duration;

use orrery_core::client::{ApiClient, ClientError};

/// What checkpoint artifacts are called: `checkpoint-<step>`.
pub const CHECKPOINT_PREFIX: &str = "checkpoint-";
/// The final weights (parameters only).
pub const MODEL: &str = "model";

/// Tries of an upload whose failure a retry may cure (network, 5xx).
const TRIES: u32 = 4;

pub struct Remote {
    client: ApiClient,
    trial_id: i64,
    keep: usize,
}

/// The step of a checkpoint artifact's name.
fn checkpoint_step(name: &str) -> Option<u64> {
    name.strip_prefix(CHECKPOINT_PREFIX)?.parse().ok()
}

impl Remote {
    pub fn new(client: ApiClient, trial_id: i64, keep: u32) -> Self {
        Remote {
            client,
            trial_id,
            keep: keep.max(1) as usize,
        }
    }

    /// The trial's uploaded checkpoints, (step, name), oldest first.
    fn checkpoints(&self) -> Result<Vec<(u64, String)>, ClientError> {
        let mut out: Vec<(u64, String)> = self
            .client
            .list_artifacts(self.trial_id)?
            .into_iter()
            .filter_map(|a| Some((checkpoint_step(&a.name)?, a.name)))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Downloads the newest uploaded checkpoint to `file`; its step, or `None` when there is none.
    /// Retried while the API's answers are transient, and listed again when the checkpoint listed
    /// was pruned before it could be downloaded (an earlier attempt may still be running).
    pub fn fetch_checkpoint(&self, file: &Path) -> Result<Option<u64>, ClientError> {
        let mut tries = 1;
        loop {
            let Some((step, name)) = self
                .with_retries("listing the checkpoints", || self.checkpoints())?
                .pop()
            else {
                return Ok(None);
            };
            match self.with_retries("downloading a checkpoint", || {
                self.client.download_artifact(self.trial_id, &name, file)
            }) {
                Ok(sha) => {
                    tracing::info!(
                        artifact = name,
                        sha256 = sha,
                        "downloaded the newest checkpoint from the API"
                    );
                    return Ok(Some(step));
                }
                Err(ClientError::Status { status: 404, .. }) if tries < TRIES => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// `f`, tried again after 1, 2, 4 s while its error is transient.
    fn with_retries<T>(
        &self,
        what: &str,
        f: impl Fn() -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut wait = Duration::from_secs(1);
        let mut tries = 1;
        loop {
            match f() {
                Err(e) if e.is_transient() && tries < TRIES => {
                    tracing::warn!(error = %e, "{what} failed; retrying in {wait:?}");
                    std::thread::sleep(wait);
                    wait *= 2;
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    /// Uploads the checkpoint `file` of step `step`, then deletes all but the newest `keep`.
    /// A failure is logged, not raised: the trial goes on (a retry would resume from an older
    /// checkpoint, or from the start).
    pub fn push_checkpoint(&self, file: &Path, step: u64) {
        let name = format!("{CHECKPOINT_PREFIX}{step}");
        let up = self.with_retries("uploading a checkpoint", || {
            self.client
                .put_artifact(self.trial_id, &name, Some(step as i64), file)
        });
        match up {
            Ok(a) => tracing::info!(artifact = name, bytes = a.size, "checkpoint uploaded"),
            Err(e) => {
                tracing::warn!(error = %e, "checkpoint {name} not uploaded: a new attempt would resume from an older one");
                return;
            }
        }
        match self.checkpoints() {
            Ok(all) => {
                let old = all.len().saturating_sub(self.keep);
                for (_, n) in &all[..old] {
                    if let Err(e) = self.client.delete_artifact(self.trial_id, n) {
                        tracing::warn!(error = %e, artifact = n, "deleting an old checkpoint");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "listing the checkpoints to prune them"),
        }
    }

    /// Uploads the final weights `file` as `model`.
    pub fn push_model(&self, file: &Path, step: u64) {
        match self.with_retries("uploading the model", || {
            self.client
                .put_artifact(self.trial_id, MODEL, Some(step as i64), file)
        }) {
            Ok(a) => tracing::info!(bytes = a.size, sha256 = a.sha256, "model uploaded"),
            Err(e) => tracing::warn!(error = %e, "the final model was not uploaded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_names_carry_their_step() {
        assert_eq!(checkpoint_step("checkpoint-120"), Some(120));
        assert_eq!(checkpoint_step("checkpoint-x"), None);
        assert_eq!(checkpoint_step(MODEL), None);
    }
}
