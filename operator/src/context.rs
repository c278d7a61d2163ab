//! What both controllers share: the Kubernetes client, the Orrery API client, the caches of
//! Trials and Pods, the event recorder, settings and counters.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Toleration};
use kube::api::{Api, Patch, PatchParams, ResourceExt};
use kube::core::object::HasStatus;
use kube::core::NamespaceResourceScope;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;

use orrery_core::client::{ApiClient, ClientError};
use orrery_core::validate::LoadedSpec;

use crate::crd::Trial;
use crate::telemetry::Metrics;

/// Why a reconcile failed. All of these are transient: the error policy requeues them. Permanent
/// problems (an invalid spec) are not errors; the reconciler records them as a condition.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("Orrery API: {0}")]
    Api(#[from] ClientError),
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the trial cache is not synced yet")]
    NotSynced,
}

/// Operator settings from the command line (or the chart's values).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Image of worker Pods whose spec names none.
    pub worker_image: String,
    /// The API URL as workers inside the cluster reach it.
    pub worker_api_url: String,
    /// For Pods that request GPUs and whose spec sets no nodeSelector.
    pub gpu_node_selector: BTreeMap<String, String>,
    /// For Pods that request GPUs and whose spec sets no tolerations.
    pub gpu_tolerations: Vec<Toleration>,
}

/// What the Experiment controller keeps between reconciles of one experiment, to keep a reconcile
/// cheap at thousands of trials. All of it can be rebuilt from the object and the API, so losing it
/// (a restart) costs time, never correctness.
#[derive(Default)]
pub struct ExperimentMemo {
    /// The validated spec, for the object generation it was read from.
    pub spec: Option<(Option<i64>, Arc<LoadedSpec>)>,
    /// Trial index → API trial id (fixed once the experiment is registered).
    pub api_trial_ids: Option<Arc<BTreeMap<i64, i64>>>,
    /// When the best trial was last read from the leaderboard.
    pub best_read_at: Option<Instant>,
}

pub struct Context {
    /// Per Experiment UID.
    pub memo: Mutex<HashMap<String, ExperimentMemo>>,
    pub client: Client,
    pub api: ApiClient,
    pub recorder: Recorder,
    pub trials: Store<Trial>,
    pub pods: Store<Pod>,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
}

/// Field manager of everything the operator writes (server-side apply).
pub const MANAGER: &str = "orrery-operator";

impl Context {
    /// Writes an object's status by server-side apply, unless it is unchanged (a status write
    /// wakes the controller again, so skipping no-op writes is what lets reconciles settle).
    pub async fn patch_status<K, S>(&self, obj: &K, status: &S) -> Result<(), Error>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + HasStatus<Status = S>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        S: Serialize + PartialEq,
    {
        if obj.status() == Some(status) {
            return Ok(());
        }
        let api: Api<K> =
            Api::namespaced(self.client.clone(), &obj.namespace().unwrap_or_default());
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        api.patch_status(
            &obj.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        Ok(())
    }

    /// Calls the (blocking) API client off the async runtime.
    pub async fn call<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&ApiClient) -> Result<T, ClientError> + Send + 'static,
    {
        let api = self.api.clone();
        tokio::task::spawn_blocking(move || f(&api))
            .await
            .expect("an API call panicked")
            .map_err(Error::Api)
    }

    /// Publishes a Kubernetes event on `object`; a failure is logged, never fatal.
    pub async fn event(&self, object: &ObjectReference, warning: bool, reason: &str, note: String) {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, object).await {
            tracing::warn!(error = %e, reason, "could not publish an event");
        }
    }
}
