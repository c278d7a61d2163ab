//! `model.init_from`: the weights a fresh trial starts from, another trial's final `model`
//! artifact. The API resolved the source when the experiment was submitted; the worker asks it
//! whether those weights can be had (`GET /trials/{id}/init-source`), downloads them (its token
//! may read that one other trial's artifacts) and checks their SHA-256 against the API's.

use std::path::{Path, PathBuf};

use orrery_core::client::ApiClient;
use orrery_core::dto::InitState;
use orrery_core::schedule::exit;
use orrery_core::spec::InitSource;

/// The artifact a source trial's weights are read from (its final upload).
pub use super::remote::MODEL;

/// Downloads the source's weights into `workdir`; returns the file and its SHA-256 (for the
/// trial's provenance). `Err((exit code, message))`: a source that failed or a worker without an
/// API is a bad configuration (not retried); one that has not finished, or an API that did not
/// answer, fails the attempt (retried).
pub fn fetch(
    client: Option<&ApiClient>,
    trial_id: Option<i64>,
    source: &InitSource,
    workdir: &Path,
) -> Result<Option<(PathBuf, String)>, (i32, String)> {
    let (Some(c), Some(id)) = (client, trial_id) else {
        return Err((
            exit::BAD_CONFIG,
            "starting from another trial's weights needs the API (--api and --trial-id)".into(),
        ));
    };
    let status = c.init_status(id).map_err(|e| {
        (
            exit::FAILED,
            format!("cannot ask the API for the source: {e}"),
        )
    })?;
    let message = status.message.clone().unwrap_or_default();
    match status.state {
        InitState::None => Ok(None),
        InitState::Waiting => Err((exit::FAILED, message)),
        InitState::Failed => Err((exit::BAD_CONFIG, message)),
        InitState::Ready => {
            let (Some(src), Some(want)) = (status.source_trial_id, status.sha256) else {
                return Err((exit::FAILED, "the API named no source weights".into()));
            };
            let file = workdir
                .join("init-from")
                .join(format!("trial-{src}-{MODEL}.pt"));
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    (
                        exit::FAILED,
                        format!("cannot create {}: {e}", dir.display()),
                    )
                })?;
            }
            let got = c.download_artifact(src, MODEL, &file).map_err(|e| {
                (
                    exit::FAILED,
                    format!("cannot download trial {src}'s {MODEL}: {e}"),
                )
            })?;
            if got != want {
                return Err((
                    exit::FAILED,
                    format!("trial {src}'s {MODEL} has SHA-256 {got}, the API listed {want}"),
                ));
            }
            tracing::info!(
                source_trial = src,
                experiment = source.experiment_id,
                sha256 = %got,
                "downloaded the model.init_from weights"
            );
            Ok(Some((file, got)))
        }
    }
}
