//! `orrery artifacts ls TRIAL` and `orrery artifacts get TRIAL NAME`: a trial's stored artifacts
//! (checkpoints, its final `model`), read from the database and the artifact storage directly,
//! as `orrery run` left them.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use orrery_api::artifacts::{hex, Artifacts};
use orrery_api::{Store, StoreError};
use orrery_core::dto::ArtifactDto;

use crate::table::new_table;

/// The trial `which` names: its id, or `EXPERIMENT/INDEX` (the experiment by name or id, the
/// trial by its index in it).
pub async fn trial_id(store: &Store, which: &str) -> Result<i64, StoreError> {
    match which.rsplit_once('/') {
        None => {
            let id: i64 = which.parse().map_err(|_| {
                StoreError::NotFound(format!(
                    "trial \"{which}\" (not an id, nor EXPERIMENT/INDEX)"
                ))
            })?;
            Ok(store.trial(id).await?.id)
        }
        Some((exp, index)) => {
            let e = store.find_experiment(exp).await?;
            let index: i64 = index.parse().map_err(|_| {
                StoreError::NotFound(format!("trial index \"{index}\" of experiment \"{exp}\""))
            })?;
            store
                .trials(e.id)
                .await?
                .into_iter()
                .find(|t| t.index == index)
                .map(|t| t.id)
                .ok_or_else(|| {
                    StoreError::NotFound(format!(
                        "trial {index} of experiment {} \"{}\"",
                        e.id, e.name
                    ))
                })
        }
    }
}

pub fn table(list: &[ArtifactDto]) -> String {
    let mut t = new_table(
        ["name", "bytes", "step", "sha256", "created"]
            .map(String::from)
            .to_vec(),
    );
    for a in list {
        t.add_row(vec![
            a.name.clone(),
            a.size.to_string(),
            a.step.map(|s| s.to_string()).unwrap_or_default(),
            a.sha256.clone(),
            a.created.clone(),
        ]);
    }
    t.to_string()
}

/// Copies trial `trial`'s artifact `name` to `out` (default: `./<name>`), through `<out>.part`,
/// checking its SHA-256 against the stored one; returns the file written.
pub async fn get(
    store: &Store,
    artifacts: &Artifacts,
    trial: i64,
    name: &str,
    out: Option<PathBuf>,
) -> anyhow::Result<PathBuf> {
    let row = store.artifact(trial, name).await?;
    let out = out.unwrap_or_else(|| PathBuf::from(name));
    let part = orrery_core::client::part_path(&out);
    let written = copy(artifacts, &row.object_key, &part).await;
    let sha = match written {
        Ok(sha) => sha,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    if sha != row.artifact.sha256 {
        let _ = std::fs::remove_file(&part);
        anyhow::bail!(
            "artifact \"{name}\" of trial {trial}: its bytes hash to {sha}, not the stored {}; the storage ({}) holds a damaged copy",
            row.artifact.sha256,
            artifacts.location()
        );
    }
    std::fs::rename(&part, &out)?;
    Ok(out)
}

async fn copy(artifacts: &Artifacts, key: &str, to: &Path) -> anyhow::Result<String> {
    let mut stream = artifacts.read(key).await?;
    let mut file = std::fs::File::create(to)?;
    let mut h = Sha256::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        h.update(&chunk);
        file.write_all(&chunk)?;
    }
    file.sync_all()?;
    Ok(hex(&h.finalize()))
}
