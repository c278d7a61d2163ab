//! A small blocking HTTP client for the API, used by workers (which have no async runtime).

use std::time::Duration;

use crate::dto::{
    ErrorBody, ExperimentDto, ExperimentStateUpdate, IngestResult, Leaderboard, MetricBatch,
    TrialDto, TrialStateUpdate,
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
            ClientError::Status { status, .. } => *status >= 500 || *status == 429,
            ClientError::Decode { .. } => false,
        }
    }
}

#[derive(Clone)]
pub struct ApiClient {
    base: String,
    agent: ureq::Agent,
    token: Option<String>,
}

impl ApiClient {
    pub fn new(base: &str, token: Option<String>) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build();
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            agent,
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

    fn finish<T: serde::de::DeserializeOwned>(
        url: String,
        r: Result<ureq::Response, ureq::Error>,
    ) -> Result<T, ClientError> {
        match r {
            Ok(resp) => resp.into_json().map_err(|e| ClientError::Decode {
                url,
                message: e.to_string(),
            }),
            Err(ureq::Error::Status(status, resp)) => {
                let message = resp
                    .into_json::<ErrorBody>()
                    .map(|b| b.error)
                    .unwrap_or_else(|_| "no error body".to_string());
                Err(ClientError::Status {
                    url,
                    status,
                    message,
                })
            }
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

    pub fn post_metrics(
        &self,
        trial_id: i64,
        batch: &MetricBatch,
    ) -> Result<IngestResult, ClientError> {
        let (url, req) = self.request("POST", &format!("/api/v1/trials/{trial_id}/metrics"));
        Self::finish(url, req.send_json(batch))
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
