//! A small blocking HTTP client for the API, used by workers (which have no async runtime).

use std::time::Duration;

use std::io::{Read, Write};
use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::dto::{
    ArtifactDto, CheckedSpec, ErrorBody, ExperimentDto, ExperimentStateUpdate, IngestResult,
    InitStatus, Leaderboard, MetricBatch, TrialDto, TrialStateUpdate,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API could not be reached or did not answer: worth retrying.
    #[error("API unreachable at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The API answered with an error status.
    #[error("API answered {status} for {url}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("API answer from {url} could not be read: {message}")]
    Decode { url: String, message: String },
}

impl ClientError {
    /// True for errors a retry may cure (network, 5xx, 429); false for a request the API refused.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            // 507: a storage quota, which waiting does not raise.
            ClientError::Status { status, .. } => {
                (*status >= 500 && *status != 507) || *status == 429
            }
            ClientError::Decode { .. } => false,
        }
    }
}

#[derive(Clone)]
pub struct ApiClient {
    base: String,
    agent: ureq::Agent,
    /// For artifacts: no bound on the whole exchange (a model may take minutes), only on each
    /// read and write.
    bulk: ureq::Agent,
    token: Option<String>,
}

/// Reads `from` to its end in 1 MiB pieces, writing them to `to` if given; the SHA-256 of what
/// was read, lower-case hex.
fn hash_copy(mut from: impl Read, mut to: Option<&mut dyn Write>) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        if let Some(w) = to.as_mut() {
            w.write_all(&buf[..n])?;
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Where a download goes until it is whole: `<dest>.part` (beside it, so the rename is atomic).
pub fn part_path(dest: &Path) -> std::path::PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// The SHA-256 of a file, lower-case hex.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    hash_copy(std::fs::File::open(path)?, None)
}

fn hex_to_bytes(hex: &str) -> Option<Vec<u8>> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

impl ApiClient {
    pub fn new(base: &str, token: Option<String>) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build();
        let bulk = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout_read(Duration::from_secs(120))
            .timeout_write(Duration::from_secs(120))
            .build();
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            agent,
            bulk,
            token,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: &str, path: &str) -> (String, ureq::Request) {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.request(method, &url);
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        (url, req)
    }

    fn bulk_request(&self, method: &str, path: &str) -> (String, ureq::Request) {
        let url = format!("{}{path}", self.base);
        let mut req = self.bulk.request(method, &url);
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        (url, req)
    }

    fn status_error(url: String, status: u16, resp: ureq::Response) -> ClientError {
        let message = resp
            .into_json::<ErrorBody>()
            .map(|b| b.error)
            .unwrap_or_else(|_| "no error body".to_string());
        ClientError::Status {
            url,
            status,
            message,
        }
    }

    fn finish<T: serde::de::DeserializeOwned>(
        url: String,
        r: Result<ureq::Response, ureq::Error>,
    ) -> Result<T, ClientError> {
        match r {
            Ok(resp) => resp.into_json().map_err(|e| ClientError::Decode {
                url,
                message: e.to_string(),
            }),
            Err(ureq::Error::Status(status, resp)) => Err(Self::status_error(url, status, resp)),
            Err(e) => Err(ClientError::Unreachable {
                url,
                message: e.to_string(),
            }),
        }
    }

    pub fn get_trial(&self, trial_id: i64) -> Result<TrialDto, ClientError> {
        let (url, req) = self.request("GET", &format!("/api/v1/trials/{trial_id}"));
        Self::finish(url, req.call())
    }

    /// Checks a spec as the API would register it, storing nothing.
    pub fn check_experiment(&self, yaml: &str) -> Result<CheckedSpec, ClientError> {
        let (url, req) = self.request("POST", "/api/v1/experiments/check");
        Self::finish(
            url,
            req.set("Content-Type", "application/yaml")
                .send_string(yaml),
        )
    }

    /// Where trial `trial_id`'s `model.init_from` source stands.
    pub fn init_status(&self, trial_id: i64) -> Result<InitStatus, ClientError> {
        let (url, req) = self.request("GET", &format!("/api/v1/trials/{trial_id}/init-source"));
        Self::finish(url, req.call())
    }

    pub fn post_metrics(
        &self,
        trial_id: i64,
        batch: &MetricBatch,
    ) -> Result<IngestResult, ClientError> {
        let (url, req) = self.request("POST", &format!("/api/v1/trials/{trial_id}/metrics"));
        Self::finish(url, req.send_json(batch))
    }

    /// Stores the file at `path` as the trial's artifact `name` (streamed, with its SHA-256 in
    /// `Content-Digest`), replacing one of that name.
    pub fn put_artifact(
        &self,
        trial_id: i64,
        name: &str,
        step: Option<i64>,
        path: &Path,
    ) -> Result<ArtifactDto, ClientError> {
        let io = |e: std::io::Error| ClientError::Decode {
            url: path.display().to_string(),
            message: format!("cannot read the artifact file: {e}"),
        };
        let sha = file_sha256(path).map_err(io)?;
        let size = std::fs::metadata(path).map_err(io)?.len();
        let digest = base64::engine::general_purpose::STANDARD
            .encode(hex_to_bytes(&sha).unwrap_or_default());
        let query = step.map(|s| format!("?step={s}")).unwrap_or_default();
        let (url, req) = self.bulk_request(
            "PUT",
            &format!("/api/v1/trials/{trial_id}/artifacts/{name}{query}"),
        );
        let file = std::fs::File::open(path).map_err(io)?;
        let r = req
            .set("Content-Digest", &format!("sha-256=:{digest}:"))
            .set("Content-Length", &size.to_string())
            .set("Content-Type", "application/octet-stream")
            .send(file);
        Self::finish(url, r)
    }

    /// Records what runs the trial's attempt.
    pub fn set_provenance(
        &self,
        trial_id: i64,
        p: &crate::dto::Provenance,
    ) -> Result<(), ClientError> {
        let (url, req) = self.request("PUT", &format!("/api/v1/trials/{trial_id}/provenance"));
        match req.send_json(p) {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(status, resp)) => Err(Self::status_error(url, status, resp)),
            Err(e) => Err(ClientError::Unreachable {
                url,
                message: e.to_string(),
            }),
        }
    }

    /// The trial's artifacts, by name.
    pub fn list_artifacts(&self, trial_id: i64) -> Result<Vec<ArtifactDto>, ClientError> {
        let (url, req) = self.request("GET", &format!("/api/v1/trials/{trial_id}/artifacts"));
        Self::finish(url, req.call())
    }

    /// Deletes the trial's artifact `name`.
    pub fn delete_artifact(&self, trial_id: i64, name: &str) -> Result<(), ClientError> {
        let (url, req) = self.request(
            "DELETE",
            &format!("/api/v1/trials/{trial_id}/artifacts/{name}"),
        );
        match req.call() {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(status, resp)) => Err(Self::status_error(url, status, resp)),
            Err(e) => Err(ClientError::Unreachable {
                url,
                message: e.to_string(),
            }),
        }
    }

    /// Downloads the trial's artifact `name` into `dest` (through `dest` + `.part`, renamed once
    /// whole), checking its SHA-256 against the answer's `ETag`; returns the SHA-256.
    pub fn download_artifact(
        &self,
        trial_id: i64,
        name: &str,
        dest: &Path,
    ) -> Result<String, ClientError> {
        let (url, req) = self.bulk_request(
            "GET",
            &format!("/api/v1/trials/{trial_id}/artifacts/{name}"),
        );
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(status, resp)) => {
                return Err(Self::status_error(url, status, resp))
            }
            Err(e) => {
                return Err(ClientError::Unreachable {
                    url,
                    message: e.to_string(),
                })
            }
        };
        let want = resp
            .header("ETag")
            .unwrap_or("")
            .trim_matches('"')
            .to_string();
        let part = part_path(dest);
        let fail = |message: String| ClientError::Decode {
            url: url.clone(),
            message,
        };
        let copied = (|| -> std::io::Result<String> {
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut out = std::fs::File::create(&part)?;
            let sha = hash_copy(resp.into_reader(), Some(&mut out))?;
            out.sync_all()?;
            Ok(sha)
        })();
        let got = match copied {
            Ok(g) => g,
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                return Err(ClientError::Unreachable {
                    url: url.clone(),
                    message: format!("the download broke off: {e}"),
                });
            }
        };
        if got != want {
            let _ = std::fs::remove_file(&part);
            return Err(fail(format!(
                "the download's SHA-256 is {got}, not the {want} the server announced"
            )));
        }
        std::fs::rename(&part, dest)
            .map_err(|e| fail(format!("cannot move it into place: {e}")))?;
        Ok(got)
    }

    /// Mints a new worker token for a trial (admin); any earlier one stops working.
    pub fn mint_trial_token(&self, trial_id: i64) -> Result<String, ClientError> {
        #[derive(serde::Deserialize)]
        struct Minted {
            token: String,
        }
        let (url, req) = self.request("POST", &format!("/api/v1/trials/{trial_id}/token"));
        let m: Minted = Self::finish(url, req.send_string(""))?;
        Ok(m.token)
    }

    /// Registers a spec (its YAML text). With `external_id`, registering again returns the first
    /// experiment instead of creating a second one.
    pub fn create_experiment(
        &self,
        yaml: &str,
        external_id: Option<&str>,
    ) -> Result<ExperimentDto, ClientError> {
        let (url, mut req) = self.request("POST", "/api/v1/experiments");
        if let Some(k) = external_id {
            req = req.query("externalId", k);
        }
        let req = req.set("Content-Type", "application/yaml");
        Self::finish(url, req.send_string(yaml))
    }

    pub fn set_experiment_state(
        &self,
        experiment_id: i64,
        update: &ExperimentStateUpdate,
    ) -> Result<ExperimentDto, ClientError> {
        let (url, req) = self.request(
            "POST",
            &format!("/api/v1/experiments/{experiment_id}/state"),
        );
        Self::finish(url, req.send_json(update))
    }

    pub fn trials(&self, experiment_id: i64) -> Result<Vec<TrialDto>, ClientError> {
        let (url, req) = self.request(
            "GET",
            &format!("/api/v1/experiments/{experiment_id}/trials"),
        );
        Self::finish(url, req.call())
    }

    pub fn set_trial_state(
        &self,
        trial_id: i64,
        update: &TrialStateUpdate,
    ) -> Result<TrialDto, ClientError> {
        let (url, req) = self.request("POST", &format!("/api/v1/trials/{trial_id}/state"));
        Self::finish(url, req.send_json(update))
    }

    pub fn leaderboard(&self, experiment_id: i64) -> Result<Leaderboard, ClientError> {
        let (url, req) = self.request(
            "GET",
            &format!("/api/v1/experiments/{experiment_id}/leaderboard"),
        );
        Self::finish(url, req.call())
    }

    pub fn get_experiment(&self, experiment_id: i64) -> Result<ExperimentDto, ClientError> {
        let (url, req) = self.request("GET", &format!("/api/v1/experiments/{experiment_id}"));
        Self::finish(url, req.call())
    }
}
