//! Trial logs written by `orrery run`: one file per attempt, `<work folder>/<experiment id>-<start
//! ms>/trial-<index>/attempt-<n>.log`. The API serves them to the trial page when it is given that
//! work folder (`orrery run` gives its own; `orrery serve --workdir`). On a cluster the logs are
//! the Pods' (`kubectl logs`), and nothing is found here.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// At most this much of a log is served: its end, where the error is.
pub const MAX_SERVED_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct LogDir {
    root: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LogFile {
    pub attempt: u32,
    pub bytes: u64,
    /// Where the trial page links to.
    pub url: String,
}

/// Milliseconds since the epoch of a stored RFC 3339 time.
fn millis(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp_millis())
}

impl LogDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LogDir { root: root.into() }
    }

    /// The trial's folder. Several databases may share a work folder, so the same experiment id
    /// can have several run folders: the one this experiment ran in is the last one started
    /// at or after the experiment's creation and, once the trial started, not after that.
    pub fn trial_dir(
        &self,
        experiment_id: i64,
        experiment_created: &str,
        trial_index: i64,
        trial_started: Option<&str>,
    ) -> Option<PathBuf> {
        let prefix = format!("{experiment_id}-");
        let from = millis(experiment_created)?;
        let until = trial_started.and_then(millis).unwrap_or(i64::MAX);
        let run = std::fs::read_dir(&self.root)
            .ok()?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stamp: i64 = name.strip_prefix(&prefix)?.parse().ok()?;
                (stamp >= from && stamp <= until).then_some((stamp, e.path()))
            })
            .max_by_key(|(stamp, _)| *stamp)?
            .1;
        let dir = run.join(format!("trial-{trial_index}"));
        dir.is_dir().then_some(dir)
    }

    /// The attempts' log files in the trial's folder, first attempt first.
    pub fn attempts(dir: &Path, trial_id: i64) -> Vec<LogFile> {
        let mut out: Vec<LogFile> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let attempt: u32 = name
                    .strip_prefix("attempt-")?
                    .strip_suffix(".log")?
                    .parse()
                    .ok()?;
                let bytes = e.metadata().ok()?.len();
                Some(LogFile {
                    attempt,
                    bytes,
                    url: format!("/trials/{trial_id}/logs/{attempt}"),
                })
            })
            .collect();
        out.sort_by_key(|f| f.attempt);
        out
    }

    /// The last [`MAX_SERVED_BYTES`] of one attempt's log, and whether it was cut.
    pub fn read_tail(dir: &Path, attempt: u32) -> std::io::Result<(Vec<u8>, bool)> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(dir.join(format!("attempt-{attempt}.log")))?;
        let len = f.metadata()?.len();
        let cut = len > MAX_SERVED_BYTES;
        if cut {
            f.seek(SeekFrom::Start(len - MAX_SERVED_BYTES))?;
        }
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok((buf, cut))
    }
}

/// The trial's folder of logs, if this server knows where they are and they are there.
pub(crate) async fn trial_dir(
    store: &crate::store::Store,
    logs: Option<&LogDir>,
    id: i64,
) -> Result<Option<std::path::PathBuf>, crate::store::StoreError> {
    let t = store.trial(id).await?;
    let Some(logs) = logs else {
        return Ok(None);
    };
    let e = store.experiment(t.experiment_id).await?;
    Ok(logs.trial_dir(e.id, &e.created_at, t.index, t.started_at.as_deref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_run_folder_of_this_experiment_among_other_databases() {
        let root = tempfile::tempdir().unwrap();
        let created = "2026-11-28T10:00:00.000Z";
        let t0 = millis(created).unwrap();
        // An older run of another database's experiment 1, this one's, and experiment 12's.
        for (name, attempts) in [
            (format!("1-{}", t0 - 60_000), 1),
            (format!("1-{}", t0 + 50), 2),
            (format!("12-{}", t0 + 60), 1),
        ] {
            let dir = root.path().join(name).join("trial-3");
            std::fs::create_dir_all(&dir).unwrap();
            for a in 1..=attempts {
                std::fs::write(dir.join(format!("attempt-{a}.log")), "x".repeat(a)).unwrap();
            }
        }
        let logs = LogDir::new(root.path());
        let dir = logs
            .trial_dir(1, created, 3, Some("2026-11-28T10:00:01.000Z"))
            .unwrap();
        assert!(dir.starts_with(root.path().join(format!("1-{}", t0 + 50))));
        let files = LogDir::attempts(&dir, 77);
        assert_eq!(
            files
                .iter()
                .map(|f| (f.attempt, f.bytes))
                .collect::<Vec<_>>(),
            [(1, 1), (2, 2)]
        );
        assert_eq!(files[1].url, "/trials/77/logs/2");
        // Not started yet, no folder for this trial index, or no such experiment: none.
        assert!(logs.trial_dir(1, created, 3, None).is_some());
        assert!(logs.trial_dir(1, created, 4, None).is_none());
        assert!(logs.trial_dir(2, created, 3, None).is_none());
    }
}
