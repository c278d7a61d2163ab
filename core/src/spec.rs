//! The experiment spec (`apiVersion: orrery.dev/v1alpha1`, `kind: Experiment`) as typed values.
//!
//! These types are filled only from a document that [`crate::validate`] has accepted, so every
//! field here has already been range-checked; defaults live in the `Default` impls below, in one
//! place, and the validator applies the same rules to swept values.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const API_VERSION: &str = "orrery.dev/v1alpha1";
pub const KIND: &str = "Experiment";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Experiment {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: ExperimentSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct Metadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    Stability,
}

impl Workload {
    pub const ALL: &'static [&'static str] = &["stability"];

    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Stability => "stability",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    #[default]
    Minimize,
    Maximize,
}

impl Goal {
    /// True when `a` is a better objective value than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Goal::Minimize => a < b,
            Goal::Maximize => a > b,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Objective {
    pub metric: String,
    pub goal: Goal,
}

impl Default for Objective {
    fn default() -> Self {
        Objective {
            metric: "eval/loss".into(),
            goal: Goal::Minimize,
        }
    }
}

/// The experiment-level fields. The trial-level ones (workload, model, data, training, params) are
/// what sweeps may change; see [`TrialConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentSpec {
    pub workload: Workload,
    #[serde(default)]
    pub objective: Objective,
    #[serde(default)]
    pub model: ModelSpec,
    #[serde(default)]
    pub data: DataSpec,
    #[serde(default)]
    pub training: TrainingSpec,
    #[serde(default)]
    pub params: Params,
    #[serde(default)]
    pub search: SearchSpec,
    #[serde(default = "one")]
    pub parallelism: u32,
    /// How many trials may fail before the experiment is failed; unset means no limit.
    #[serde(default)]
    pub max_failed_trials: Option<u32>,
    #[serde(default)]
    pub retry: RetrySpec,
    #[serde(default)]
    pub resources: Resources,
    /// Where and how trial Pods run on a cluster; the local executor ignores it.
    #[serde(default)]
    pub kubernetes: KubernetesSpec,
}

fn one() -> u32 {
    1
}

/// Model size. `preset` supplies the defaults; explicit fields override it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct ModelSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d_model: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heads: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlp_ratio: Option<u32>,
}

/// A model with every size fixed: what a worker builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ModelShape {
    pub layers: u32,
    pub d_model: u32,
    pub heads: u32,
    pub seq_len: u32,
    pub mlp_ratio: u32,
}

pub const MODEL_PRESETS: &[(&str, ModelShape)] = &[
    (
        "tiny",
        ModelShape {
            layers: 2,
            d_model: 64,
            heads: 4,
            seq_len: 64,
            mlp_ratio: 4,
        },
    ),
    (
        "small",
        ModelShape {
            layers: 4,
            d_model: 128,
            heads: 4,
            seq_len: 128,
            mlp_ratio: 4,
        },
    ),
    (
        "medium",
        ModelShape {
            layers: 6,
            d_model: 256,
            heads: 8,
            seq_len: 256,
            mlp_ratio: 4,
        },
    ),
];

impl ModelSpec {
    /// The preset (default `tiny`) with the explicit fields laid over it.
    pub fn shape(&self) -> ModelShape {
        let name = self.preset.as_deref().unwrap_or("tiny");
        let base = MODEL_PRESETS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
            .unwrap_or(MODEL_PRESETS[0].1);
        ModelShape {
            layers: self.layers.unwrap_or(base.layers),
            d_model: self.d_model.unwrap_or(base.d_model),
            heads: self.heads.unwrap_or(base.heads),
            seq_len: self.seq_len.unwrap_or(base.seq_len),
            mlp_ratio: self.mlp_ratio.unwrap_or(base.mlp_ratio),
        }
    }
}

pub const BUILTIN_CORPUS: &str = "builtin:multidomain";
pub const BUILTIN_GROUPS: &[&str] = &["arithmetic", "brackets", "records", "markov"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DataSpec {
    pub corpus: String,
    /// Builtin group names and/or `file:PATH` groups; empty means every builtin group.
    #[serde(default)]
    pub groups: Vec<String>,
    pub seed: u64,
    /// Bytes generated per builtin group (train split; validation and test are a tenth each).
    pub group_bytes: u64,
}

impl Default for DataSpec {
    fn default() -> Self {
        DataSpec {
            corpus: BUILTIN_CORPUS.into(),
            groups: Vec::new(),
            seed: 0,
            group_bytes: 200_000,
        }
    }
}

impl DataSpec {
    pub fn group_list(&self) -> Vec<String> {
        if self.groups.is_empty() {
            BUILTIN_GROUPS.iter().map(|s| s.to_string()).collect()
        } else {
            self.groups.clone()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum WeightDecayMode {
    /// PyTorch AdamW: θ ← θ − η_t·λ·θ (decay scales with the learning rate).
    #[default]
    Coupled,
    /// Wortsman et al.: θ ← θ − (η_t/η_max)·λ·θ (decay follows the schedule, not the LR's size).
    Independent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct TrainingSpec {
    pub steps: u64,
    pub batch_size: u32,
    pub lr: f64,
    pub warmup_steps: u64,
    /// Cosine decay ends at `lr * min_lr_ratio`.
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    pub weight_decay_mode: WeightDecayMode,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global gradient-norm clip; 0 turns clipping off.
    pub grad_clip: f64,
    /// Steps between evaluations; 0 means every tenth of the run.
    pub eval_every: u64,
    pub eval_batches: u32,
    pub log_every: u64,
    /// Steps between checkpoints; 0 turns checkpoints off.
    pub checkpoint_every: u64,
    pub seed: u64,
}

impl Default for TrainingSpec {
    fn default() -> Self {
        TrainingSpec {
            steps: 300,
            batch_size: 32,
            lr: 1e-3,
            warmup_steps: 0,
            min_lr_ratio: 0.1,
            weight_decay: 0.0,
            weight_decay_mode: WeightDecayMode::Coupled,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
            eval_every: 0,
            eval_batches: 4,
            log_every: 10,
            checkpoint_every: 100,
            seed: 0,
        }
    }
}

impl TrainingSpec {
    pub fn effective_eval_every(&self) -> u64 {
        if self.eval_every > 0 {
            self.eval_every
        } else {
            (self.steps / 10).max(1)
        }
    }
}

/// Workload-specific parameters. Every workload's fields live here, and validation accepts only
/// the ones that belong to the spec's workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(default)]
pub struct Params {
    #[serde(default)]
    pub qk_layernorm: bool,
    /// z-loss coefficient: L = CE + z_loss · mean(log Z)²; 0 turns it off.
    #[serde(default)]
    pub z_loss: f64,
    /// μParam ("simple", Wortsman et al. §3.4): fan-in initialisation, and the hidden matrices'
    /// learning rate and the output logits scaled by [`MUP_BASE_WIDTH`] / d_model.
    #[serde(default)]
    pub mup_simple: bool,
}

/// The width at which μParam (simple) leaves learning rates and logits unscaled (the tiny preset).
pub const MUP_BASE_WIDTH: u32 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum SearchKind {
    #[default]
    Grid,
    Random,
    List,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct SearchSpec {
    pub kind: SearchKind,
    /// Dotted field path → dimension (kept as written; [`crate::search`] interprets it).
    #[serde(default)]
    #[schemars(schema_with = "crate::schema::free_object")]
    pub space: BTreeMap<String, Value>,
    /// `list` search: one mapping of dotted path → value per trial.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::list_of_free_objects")]
    pub trials: Vec<BTreeMap<String, Value>>,
    /// `random` search: how many points to draw (0: unset, left out when written back).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub samples: u32,
    /// `random` search: the sampler's seed.
    #[serde(default)]
    pub seed: u64,
    /// Replicates of every point, with `training.seed` = 0, 1, ...
    pub seeds: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Default for SearchSpec {
    fn default() -> Self {
        SearchSpec {
            kind: SearchKind::Grid,
            space: BTreeMap::new(),
            trials: Vec::new(),
            samples: 0,
            seed: 0,
            seeds: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
#[serde(default)]
pub struct RetrySpec {
    pub max_restarts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct Resources {
    /// A Kubernetes quantity: `2`, `500m`. A bare number is accepted and kept as text.
    #[serde(deserialize_with = "quantity")]
    #[schemars(schema_with = "crate::schema::int_or_string")]
    pub cpu: String,
    /// A Kubernetes quantity: `4Gi`, `512Mi`.
    #[serde(deserialize_with = "quantity")]
    #[schemars(schema_with = "crate::schema::int_or_string")]
    pub memory: String,
    pub gpu: u32,
}

/// Pod placement for the Kubernetes executor. Every field is optional: the operator's defaults
/// (its `--worker-image`) apply to what is left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
#[serde(default)]
pub struct KubernetesSpec {
    /// The worker image; the operator's default when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Copied onto every trial Pod (e.g. for a service mesh, or kwok's simulated exit codes).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
}

/// A Pod toleration, as in the Kubernetes API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
#[serde(default)]
pub struct Toleration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Exists` or `Equal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// Reads a quantity written as a string or a bare number (`cpu: 2`).
fn quantity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a quantity, got {other}"
        ))),
    }
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu: "1".into(),
            memory: "2Gi".into(),
            gpu: 0,
        }
    }
}

/// Everything one trial needs to run: the trial-level sections after its sweep values were applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TrialConfig {
    pub workload: Workload,
    pub objective: Objective,
    pub model: ModelShape,
    pub data: DataSpec,
    pub training: TrainingSpec,
    pub params: Params,
}
