//! Trial attempts as Pods: building the Pod for an attempt, and reading how an attempt ended from
//! its Pod. Both pure, so the rules are tested without a cluster; the Trial controller applies them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, Pod, PodSecurityContext,
    PodSpec, ResourceRequirements, SeccompProfile, SecretKeySelector, SecurityContext, Toleration,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use orrery_core::schedule::{outcome_from_exit, Outcome};
use orrery_core::spec::Resources;

pub const LABEL_EXPERIMENT: &str = "orrery.dev/experiment";
pub const LABEL_TRIAL: &str = "orrery.dev/trial";
pub const LABEL_ATTEMPT: &str = "orrery.dev/attempt";
/// The GPU resource name of the NVIDIA device plugin.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// What the operator knows when it starts an attempt.
pub struct AttemptPod<'a> {
    pub namespace: &'a str,
    pub experiment: &'a str,
    pub trial: &'a str,
    pub trial_id: i64,
    pub attempt: u32,
    pub image: &'a str,
    pub api_url: &'a str,
    /// Secret holding this trial's API token under the key `token`.
    pub token_secret: &'a str,
    pub resources: &'a Resources,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub priority_class: Option<String>,
    pub annotations: BTreeMap<String, String>,
    /// The Trial object, as the Pod's controlling owner (deleting the Trial deletes its Pods).
    pub owner: OwnerReference,
}

/// The user the worker runs as (the image's `orrery` user): not root, so the Pod passes the
/// `restricted` Pod Security Standard.
pub const WORKER_UID: i64 = 65532;

/// `<trial>-a<attempt>`: one Pod per attempt; a retry is a new Pod.
pub fn pod_name(trial: &str, attempt: u32) -> String {
    format!("{trial}-a{attempt}")
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

pub fn build(a: &AttemptPod) -> Pod {
    let labels = BTreeMap::from([
        (LABEL_EXPERIMENT.to_string(), a.experiment.to_string()),
        (LABEL_TRIAL.to_string(), a.trial.to_string()),
        (LABEL_ATTEMPT.to_string(), a.attempt.to_string()),
    ]);
    let mut limits = BTreeMap::from([("memory".to_string(), Quantity(a.resources.memory.clone()))]);
    let requests = BTreeMap::from([
        ("cpu".to_string(), Quantity(a.resources.cpu.clone())),
        ("memory".to_string(), Quantity(a.resources.memory.clone())),
    ]);
    if a.resources.gpu > 0 {
        // Extended resources are requested through limits (requests default to them).
        limits.insert(
            GPU_RESOURCE.to_string(),
            Quantity(a.resources.gpu.to_string()),
        );
    }
    let token = EnvVar {
        name: "ORRERY_TOKEN".into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: a.token_secret.into(),
                key: "token".into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let device = if a.resources.cuda() { "cuda" } else { "cpu" };
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(a.trial, a.attempt)),
            namespace: Some(a.namespace.into()),
            labels: Some(labels),
            annotations: (!a.annotations.is_empty()).then(|| a.annotations.clone()),
            owner_references: Some(vec![a.owner.clone()]),
            ..Default::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            node_selector: (!a.node_selector.is_empty()).then(|| a.node_selector.clone()),
            tolerations: (!a.tolerations.is_empty()).then(|| a.tolerations.clone()),
            priority_class_name: a.priority_class.clone(),
            containers: vec![Container {
                name: "worker".into(),
                image: Some(a.image.into()),
                args: Some(vec!["--progress".into()]),
                env: Some(vec![
                    env("ORRERY_API_URL", a.api_url),
                    env("ORRERY_TRIAL_ID", a.trial_id.to_string()),
                    env("ORRERY_DEVICE", device),
                    // The worker's thread rule: the trial's whole CPUs, not every core of the node.
                    env("ORRERY_THREADS", a.resources.threads().to_string()),
                    env("ORRERY_WORKDIR", "/work"),
                    token,
                ]),
                resources: Some(ResourceRequirements {
                    limits: Some(limits),
                    requests: Some(requests),
                    ..Default::default()
                }),
                // The worker's scratch: its local checkpoint and spill file. A new attempt is a
                // new Pod with an empty one; it resumes from the checkpoint its predecessor
                // uploaded to the API (ORRERY_API_URL, ORRERY_TRIAL_ID, ORRERY_TOKEN).
                volume_mounts: Some(vec![
                    VolumeMount {
                        name: "work".into(),
                        mount_path: "/work".into(),
                        ..Default::default()
                    },
                    // The root file system is read-only; libtorch and the allocator may want a
                    // temporary folder.
                    VolumeMount {
                        name: "tmp".into(),
                        mount_path: "/tmp".into(),
                        ..Default::default()
                    },
                ]),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".into()]),
                        ..Default::default()
                    }),
                    read_only_root_filesystem: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            // The `restricted` Pod Security Standard: not root, the runtime's seccomp profile;
            // the scratch volumes belong to the worker's group.
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(WORKER_UID),
                run_as_group: Some(WORKER_UID),
                fs_group: Some(WORKER_UID),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            volumes: Some(vec![
                Volume {
                    name: "work".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                },
                Volume {
                    name: "tmp".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }),
        status: None,
    }
}

/// How a Pod's attempt ended, with a reason a user can act on; `None` while it has not ended.
pub fn outcome(pod: &Pod) -> Option<(Outcome, String)> {
    let status = pod.status.as_ref()?;
    let phase = status.phase.as_deref().unwrap_or("Pending");
    let terminated = status
        .container_statuses
        .iter()
        .flatten()
        .find_map(|c| c.state.as_ref().and_then(|s| s.terminated.clone()));
    // Image problems never end on their own: a Pod stuck there is a failed attempt.
    let waiting = status
        .container_statuses
        .iter()
        .flatten()
        .find_map(|c| c.state.as_ref().and_then(|s| s.waiting.clone()))
        .filter(|w| {
            matches!(
                w.reason.as_deref(),
                Some(
                    "ErrImagePull"
                        | "ImagePullBackOff"
                        | "InvalidImageName"
                        | "CreateContainerConfigError"
                )
            )
        });
    if let Some(w) = waiting {
        let reason = w.reason.unwrap_or_default();
        return Some((
            Outcome::AttemptFailed,
            format!("{reason}: {}", w.message.unwrap_or_default()),
        ));
    }
    match phase {
        "Succeeded" => Some((Outcome::Succeeded, "the worker exited 0".into())),
        "Failed" => {
            if status.reason.as_deref() == Some("Evicted") {
                return Some((
                    Outcome::AttemptFailed,
                    format!("Evicted: {}", status.message.clone().unwrap_or_default()),
                ));
            }
            match terminated {
                Some(t) => {
                    // The worker's exit code says what happened; the kubelet's reason (OOMKilled,
                    // Error) says how, for failed attempts.
                    let (o, why) = outcome_from_exit(Some(t.exit_code), None, false);
                    let why = match o {
                        Outcome::AttemptFailed => {
                            format!("{}: {why}", t.reason.unwrap_or_else(|| "Error".into()))
                        }
                        _ => why,
                    };
                    Some((o, why))
                }
                None => Some((
                    Outcome::AttemptFailed,
                    status
                        .reason
                        .clone()
                        .unwrap_or_else(|| "the Pod failed".into()),
                )),
            }
        }
        _ => None,
    }
}

/// The attempt number a Pod runs, from its label.
pub fn attempt_of(pod: &Pod) -> Option<u32> {
    pod.metadata
        .labels
        .as_ref()?
        .get(LABEL_ATTEMPT)?
        .parse()
        .ok()
}

/// Why the scheduler cannot place the Pod (`0/2 nodes are available: 2 Insufficient
/// nvidia.com/gpu.`), while it cannot.
pub fn unschedulable(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })
        .map(|c| c.message.clone().unwrap_or_else(|| "unschedulable".into()))
}

/// True once the Pod's container runs.
pub fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, PodStatus,
    };

    fn attempt(gpu: u32) -> Pod {
        let res = Resources {
            cpu: "2".into(),
            memory: "4Gi".into(),
            gpu,
        };
        build(&AttemptPod {
            namespace: "ml",
            experiment: "lr-sweep",
            trial: "lr-sweep-3",
            trial_id: 42,
            attempt: 2,
            image: "orrery/worker:dev",
            api_url: "http://orrery-api:8080",
            token_secret: "lr-sweep-3-token",
            resources: &res,
            node_selector: BTreeMap::from([("gpu".into(), "h100".into())]),
            tolerations: vec![],
            priority_class: Some("research".into()),
            annotations: BTreeMap::new(),
            owner: OwnerReference {
                api_version: "orrery.dev/v1alpha1".into(),
                kind: "Trial".into(),
                name: "lr-sweep-3".into(),
                uid: "u".into(),
                controller: Some(true),
                ..Default::default()
            },
        })
    }

    #[test]
    fn pod_for_an_attempt() {
        let p = attempt(1);
        assert_eq!(p.metadata.name.as_deref(), Some("lr-sweep-3-a2"));
        let labels = p.metadata.labels.clone().unwrap();
        assert_eq!(labels[LABEL_ATTEMPT], "2");
        assert_eq!(labels[LABEL_TRIAL], "lr-sweep-3");
        let spec = p.spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.priority_class_name.as_deref(), Some("research"));
        let c = &spec.containers[0];
        assert_eq!(
            c.resources.as_ref().unwrap().limits.as_ref().unwrap()[GPU_RESOURCE],
            Quantity("1".into())
        );
        let env: BTreeMap<_, _> = c
            .env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect();
        assert_eq!(env["ORRERY_TRIAL_ID"].value.as_deref(), Some("42"));
        // What a new attempt resumes with: the API, the trial, a scratch folder of its own.
        assert!(env["ORRERY_API_URL"].value.is_some());
        assert_eq!(env["ORRERY_WORKDIR"].value.as_deref(), Some("/work"));
        let mount = &c.volume_mounts.as_ref().unwrap()[0];
        assert_eq!(
            (mount.name.as_str(), mount.mount_path.as_str()),
            ("work", "/work")
        );
        let vol = &spec.volumes.as_ref().unwrap()[0];
        assert!(vol.empty_dir.is_some() && vol.name == "work");
        assert_eq!(env["ORRERY_DEVICE"].value.as_deref(), Some("cuda"));
        // resources.cpu "2": two libtorch threads, not the node's cores.
        assert_eq!(env["ORRERY_THREADS"].value.as_deref(), Some("2"));
        assert_eq!(
            env["ORRERY_TOKEN"]
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap()
                .name,
            "lr-sweep-3-token"
        );
        let cpu = attempt(0);
        let limits = cpu.spec.unwrap().containers[0]
            .resources
            .clone()
            .unwrap()
            .limits
            .unwrap();
        assert!(!limits.contains_key(GPU_RESOURCE));
    }

    fn with_status(phase: &str, reason: Option<&str>, state: ContainerState) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                reason: reason.map(String::from),
                container_statuses: Some(vec![ContainerStatus {
                    name: "worker".into(),
                    state: Some(state),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn terminated(code: i32, reason: &str) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                reason: Some(reason.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn outcomes_from_pod_status() {
        assert_eq!(
            outcome(&with_status("Running", None, ContainerState::default())),
            None
        );
        assert_eq!(
            outcome(&with_status("Succeeded", None, terminated(0, "Completed")))
                .unwrap()
                .0,
            Outcome::Succeeded
        );
        assert_eq!(
            outcome(&with_status("Failed", None, terminated(3, "Error")))
                .unwrap()
                .0,
            Outcome::Diverged
        );
        let (o, why) = outcome(&with_status("Failed", None, terminated(137, "OOMKilled"))).unwrap();
        assert_eq!(o, Outcome::AttemptFailed);
        assert!(why.starts_with("OOMKilled"), "{why}");
        let (o, _) = outcome(&with_status("Failed", None, terminated(2, "Error"))).unwrap();
        assert_eq!(
            o,
            Outcome::Rejected,
            "a refused configuration is not retried"
        );
        let (o, why) = outcome(&with_status(
            "Failed",
            Some("Evicted"),
            ContainerState::default(),
        ))
        .unwrap();
        assert_eq!(o, Outcome::AttemptFailed);
        assert!(why.starts_with("Evicted"), "{why}");
        let pull = ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("ImagePullBackOff".into()),
                message: Some("not found".into()),
            }),
            ..Default::default()
        };
        let (o, why) = outcome(&with_status("Pending", None, pull)).unwrap();
        assert_eq!(o, Outcome::AttemptFailed);
        assert_eq!(why, "ImagePullBackOff: not found");
    }
}
