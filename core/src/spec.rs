//! The experiment spec (`apiVersion: orrery.dev/v1alpha1`, `kind: Experiment`) as typed values.
//!
//! These types are filled only from a document that [`crate::validate`] has accepted, so every
//! field here has already been range-checked. The trial-level sections (`model`, `data`,
//! `training`, and each workload's `params` in [`crate::workloads`]) are declared once with
//! [`crate::declare_fields!`]: their defaults, types, ranges and one-line meanings live there, and
//! the validator checks `params` against the fields of the spec's own workload.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fields::{int, Declared, Field, Ty, NUM};
pub use crate::workloads::{Params, Workload};

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

/// The experiment-level fields. The trial-level ones (workload and params, model, data, training)
/// are what sweeps may change; see [`TrialConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentSpec {
    /// `workload` and its typed `params`.
    #[serde(flatten)]
    pub params: Params,
    #[serde(default)]
    pub objective: Objective,
    #[serde(default)]
    pub model: ModelSpec,
    #[serde(default)]
    pub data: DataSpec,
    #[serde(default)]
    pub training: TrainingSpec,
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

impl ExperimentSpec {
    pub fn workload(&self) -> Workload {
        self.params.workload()
    }
}

fn one() -> u32 {
    1
}

const MAX_STEPS: i64 = 100_000_000;

/// The names of [`MODEL_PRESETS`], in order.
pub const PRESET_NAMES: &[&str] = &["tiny", "small", "medium"];

crate::declare_fields! {
    /// Model size. `preset` supplies the defaults; explicit fields override it.
    pub struct ModelSpec {
        #[serde(skip_serializing_if = "Option::is_none")]
        preset: Option<String> = None, Ty::OneOf(PRESET_NAMES),
            "the size preset the other fields override (unset: tiny): tiny is 2 layers, d_model 64, 4 heads, seq_len 64; small 4, 128, 4, 128; medium 6, 256, 8, 256";
        #[serde(skip_serializing_if = "Option::is_none")]
        layers: Option<u32> = None, int(1, 64), "Transformer blocks (unset: the preset's)";
        #[serde(skip_serializing_if = "Option::is_none")]
        d_model: Option<u32> = None, int(8, 8192), "width of the residual stream (unset: the preset's)";
        #[serde(skip_serializing_if = "Option::is_none")]
        heads: Option<u32> = None, int(1, 128), "attention heads; must divide d_model (unset: the preset's)";
        #[serde(skip_serializing_if = "Option::is_none")]
        seq_len: Option<u32> = None, int(2, 8192), "context length in tokens (bytes) (unset: the preset's)";
        #[serde(skip_serializing_if = "Option::is_none")]
        mlp_ratio: Option<u32> = None, int(1, 16), "MLP hidden width over d_model (unset: the preset's, 4)";
        #[serde(skip_serializing_if = "InitFrom::is_unset")]
        init_from: InitFrom = InitFrom::default(), Ty::Group(InitFrom::FIELDS),
            "start from another trial's final weights (the optimizer and the LR schedule start fresh): {experiment: NAME, trial: best}, {trial: ID} or {experiment: NAME, match: [paths]}";
    }
}

/// `model.init_from`: the trial whose final weights (its `model` artifact) a trial starts from,
/// as written in the spec. The server resolves it when the experiment is submitted
/// ([`InitSource`], recorded in each trial's configuration).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct InitFrom {
    /// The source experiment: a name (the newest experiment of that name when this one is
    /// submitted) or an id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    /// `best` (the source experiment's leaderboard best, once it has finished) or a trial id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trial: Option<TrialRef>,
    /// Paths (`training.seed`, `params.task.problems`) whose values pick the source: the one trial
    /// of `experiment` whose values there equal this trial's.
    #[serde(rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub match_paths: Vec<String>,
}

impl InitFrom {
    pub const FIELDS: &'static [Field] = &[
        Field {
            name: "experiment",
            ty: Ty::Opt(&Ty::Str),
            doc: "the source experiment: a name (the newest of that name when this experiment is submitted), or an id written as a string",
        },
        Field {
            name: "trial",
            ty: Ty::Opt(&Ty::TrialRef),
            doc: "best (the source experiment's leaderboard best, once it has finished) or a trial id",
        },
        Field {
            name: "match",
            ty: Ty::StrList,
            doc: "paths (training.seed, params.task.problems) whose values pick the source: the one trial of experiment with this trial's values there",
        },
    ];

    pub fn is_unset(&self) -> bool {
        self.experiment.is_none() && self.trial.is_none() && self.match_paths.is_empty()
    }
}

/// `model.init_from.trial`: `best` or a trial id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TrialRef {
    Id(i64),
    /// `best` (the only word the validator accepts).
    Best(String),
}

/// Where a trial's initial weights come from, as the server resolved `model.init_from` when the
/// experiment was submitted: the source experiment's id, and the source trial's id (`None`: the
/// experiment's leaderboard best, known once it has finished).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InitSource {
    pub experiment_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_id: Option<i64>,
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

/// The default corpus: four groups of different structure (the stability workload's data).
pub const BUILTIN_CORPUS: &str = "builtin:multidomain";
/// Three groups built so that the mixture matters (the aioli workload's data).
pub const MIXING_CORPUS: &str = "builtin:mixing";

/// Each builtin corpus and its groups (what `data.groups` may name besides `file:PATH`).
pub const CORPORA: &[(&str, &[&str])] = &[
    (
        BUILTIN_CORPUS,
        &["arithmetic", "brackets", "records", "markov"],
    ),
    (MIXING_CORPUS, &["easy", "hard", "shared"]),
];

/// The groups of `corpus` (none for an unknown one).
pub fn corpus_groups(corpus: &str) -> &'static [&'static str] {
    CORPORA
        .iter()
        .find(|(c, _)| *c == corpus)
        .map(|(_, g)| *g)
        .unwrap_or(&[])
}

/// The builtin group names of every corpus (no `file:` group may take one of these names).
pub fn all_builtin_groups() -> impl Iterator<Item = &'static str> {
    CORPORA.iter().flat_map(|(_, g)| g.iter().copied())
}

crate::declare_fields! {
    /// The training data: a corpus of named groups.
    pub struct DataSpec {
        corpus: String = BUILTIN_CORPUS.into(), Ty::OneOf(&[BUILTIN_CORPUS, MIXING_CORPUS]),
            "the corpus the builtin groups come from: builtin:multidomain (arithmetic, brackets, records, markov) or builtin:mixing (easy, hard, shared)";
        groups: Vec<String> = Vec::new(), Ty::StrList,
            "data groups: the corpus's builtin names and/or file:PATH (split 90/5/5); empty: every group of the corpus";
        seed: u64 = 0, int(0, i64::MAX), "seed of the builtin groups' generators";
        group_bytes: u64 = 200_000, int(1_000, 1_000_000_000),
            "bytes generated per builtin group for training (validation and test get a tenth each)";
    }
}

impl DataSpec {
    /// The groups as written (`file:PATH` included); empty `groups`: every group of the corpus.
    pub fn group_list(&self) -> Vec<String> {
        if self.groups.is_empty() {
            corpus_groups(&self.corpus)
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            self.groups.clone()
        }
    }

    /// The groups' names as metrics and mixtures spell them, in [`DataSpec::group_list`] order: a
    /// builtin group's own name; a `file:` group's file stem with anything but letters, digits and
    /// `_ - .` turned into `_`, suffixed `-2`, `-3`, … when an earlier group or a builtin group has
    /// it.
    pub fn group_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for g in self.group_list() {
            let name = match g.strip_prefix("file:") {
                Some(path) => file_group_name(path, &names),
                None => g,
            };
            names.push(name);
        }
        names
    }
}

fn file_group_name(path: &str, taken: &[String]) -> String {
    let stem = std::path::Path::new(path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut base: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if base.is_empty() {
        base = "file".into();
    }
    let mut name = base.clone();
    let mut n = 1;
    while taken.contains(&name) || all_builtin_groups().any(|b| b == name) {
        n += 1;
        name = format!("{base}-{n}");
    }
    name
}

/// The data groups' names of a trial's sections (the JSON of its configuration).
pub fn group_names(sections: &Value) -> Vec<String> {
    sections
        .get("data")
        .and_then(|d| serde_json::from_value::<DataSpec>(d.clone()).ok())
        .unwrap_or_default()
        .group_names()
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

/// The precision of a trial's forward and backward passes. The weights, the optimizer state and
/// the loss stay fp32 in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// bf16 on CUDA, fp32 on the CPU; resolved when the device is known.
    #[default]
    Auto,
    Fp32,
    /// Matrix products and attention in bf16 (fp32 master weights; LayerNorm, softmax and the
    /// loss in fp32), as PyTorch's bf16 autocast does.
    Bf16,
}

impl Precision {
    /// What `auto` means on a CUDA device (`cuda`) or the CPU.
    pub fn resolve(self, cuda: bool) -> Precision {
        match self {
            Precision::Auto if cuda => Precision::Bf16,
            Precision::Auto => Precision::Fp32,
            p => p,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Auto => "auto",
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }
}

/// Resolves `training.precision: auto` in a trial's sections (the JSON of [`TrialConfig`]) for the
/// device it will run on, so the stored configuration says what ran.
pub fn resolve_precision(sections: &mut Value, cuda: bool) {
    let Some(training) = sections.as_object_mut().and_then(|s| {
        s.entry("training")
            .or_insert_with(|| Value::Object(Default::default()))
            .as_object_mut()
    }) else {
        return;
    };
    let declared = training
        .get("precision")
        .and_then(|v| serde_json::from_value::<Precision>(v.clone()).ok())
        .unwrap_or_default();
    training.insert(
        "precision".into(),
        Value::String(declared.resolve(cuda).as_str().into()),
    );
}

crate::declare_fields! {
    /// The optimisation: steps, batch, AdamW, the LR schedule, and when to log, evaluate and
    /// checkpoint.
    pub struct TrainingSpec {
        steps: u64 = 300, int(1, MAX_STEPS), "optimizer steps";
        batch_size: u32 = 32, int(1, 65_536), "sequences per step";
        lr: f64 = 1e-3, NUM.gt(0.0).le(100.0), "peak learning rate η_max";
        warmup_steps: u64 = 0, int(0, MAX_STEPS),
            "linear warm-up to lr over this many steps; at most steps";
        min_lr_ratio: f64 = 0.1, NUM.ge(0.0).le(1.0),
            "cosine decay after warm-up ends at lr · min_lr_ratio on the last step";
        weight_decay: f64 = 0.0, NUM.ge(0.0), "AdamW weight decay λ (matrices only, not LayerNorm gains)";
        weight_decay_mode: WeightDecayMode = WeightDecayMode::Coupled, Ty::OneOf(&["coupled", "independent"]),
            "coupled: θ −= η_t·λ·θ (PyTorch's AdamW); independent: θ −= (η_t/η_max)·λ·θ (Wortsman et al.)";
        beta1: f64 = 0.9, NUM.ge(0.0).lt(1.0), "AdamW β₁";
        beta2: f64 = 0.95, NUM.ge(0.0).lt(1.0), "AdamW β₂";
        eps: f64 = 1e-8, NUM.gt(0.0), "AdamW ε";
        grad_clip: f64 = 1.0, NUM.ge(0.0), "clip the global gradient norm to this; 0 turns clipping off";
        eval_every: u64 = 0, int(0, MAX_STEPS), "steps between evaluations; 0: every tenth of the run";
        eval_batches: u32 = 4, int(1, 10_000), "validation batches per group in each evaluation";
        log_every: u64 = 10, int(1, MAX_STEPS), "steps between logged training metrics";
        checkpoint_every: u64 = 100, int(0, MAX_STEPS), "steps between checkpoints; 0 turns them off";
        keep_checkpoints: u32 = 3, int(1, 1_000),
            "checkpoints kept in the API's artifact store, the newest (the final model is kept besides)";
        precision: Precision = Precision::Auto, Ty::OneOf(&["auto", "fp32", "bf16"]),
            "auto: bf16 on CUDA, fp32 on CPU; bf16: matmuls and attention in bf16, weights fp32";
        seed: u64 = 0, int(0, i64::MAX),
            "seed of the initialisation and the batch order (search.seeds sweeps it)";
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

/// A trial-level section shared by every workload, as declared.
pub struct Section {
    pub name: &'static str,
    pub fields: &'static [Field],
    /// Its defaults as JSON ([`Declared::defaults`]).
    pub defaults: fn() -> Value,
}

/// The trial-level sections besides `params`: what a sweep may address as `model.…`, `data.…`,
/// `training.…`.
pub const SECTIONS: &[Section] = &[
    Section {
        name: "model",
        fields: ModelSpec::FIELDS,
        defaults: ModelSpec::defaults,
    },
    Section {
        name: "data",
        fields: DataSpec::FIELDS,
        defaults: DataSpec::defaults,
    },
    Section {
        name: "training",
        fields: TrainingSpec::FIELDS,
        defaults: TrainingSpec::defaults,
    },
];

/// A section's fields: `model`, `data`, `training`, or `params` of `workload`.
pub fn section_fields(workload: Workload, section: &str) -> Option<&'static [Field]> {
    if section == "params" {
        return Some(workload.fields());
    }
    SECTIONS
        .iter()
        .find(|s| s.name == section)
        .map(|s| s.fields)
}

/// The field a dotted sweep path names for `workload`: `training.lr`, `params.qk_layernorm`, or a
/// nested one such as `params.aioli.eta`. A group (a mapping of fields) cannot be swept whole.
pub fn sweepable_field(workload: Workload, path: &str) -> Option<&'static Field> {
    let (section, rest) = path.split_once('.')?;
    let f = crate::fields::lookup(section_fields(workload, section)?, rest)?;
    (!matches!(f.ty, Ty::Group(_))).then_some(f)
}

/// Every path a sweep may assign for `workload`, in section order.
pub fn sweepable_paths(workload: Workload) -> Vec<String> {
    ["model", "data", "training", "params"]
        .iter()
        .flat_map(|s| {
            let fields = section_fields(workload, s).unwrap_or(&[]);
            crate::fields::leaves(fields, s).into_iter().map(|(p, _)| p)
        })
        .collect()
}

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
    // Left out when empty: a `list` search refuses a `space`, and the operator writes the spec
    // document back from this type (with no default in the CRD, the API server adds none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
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

impl Resources {
    /// Whether a trial with these resources runs on CUDA as a Pod: exactly when it asks for a GPU
    /// (the operator's `ORRERY_DEVICE`, and the precision `auto` resolves to on a cluster).
    pub fn cuda(&self) -> bool {
        self.gpu > 0
    }

    /// The libtorch threads a trial with these resources gets (the worker's thread rule,
    /// `worker/src/threads.rs`): whole CPUs of `cpu`, at least one (`500m` → 1, `2` → 2,
    /// `2.5` → 2); 1 for a quantity it cannot read.
    pub fn threads(&self) -> u32 {
        let q = self.cpu.trim();
        let cpus = match q.strip_suffix('m') {
            Some(milli) => milli.parse::<f64>().map(|m| m / 1000.0),
            None => q.parse::<f64>(),
        };
        cpus.map(|c| c.floor().max(1.0) as u32).unwrap_or(1)
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
    /// `workload` and its typed `params`.
    #[serde(flatten)]
    pub params: Params,
    pub objective: Objective,
    pub model: ModelShape,
    pub data: DataSpec,
    pub training: TrainingSpec,
    /// The weights the trial starts from (`model.init_from`, resolved by the server); `None`:
    /// its own initialisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<InitSource>,
}

impl TrialConfig {
    pub fn workload(&self) -> Workload {
        self.params.workload()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_whole_cpus_at_least_one() {
        let r = |cpu: &str| {
            Resources {
                cpu: cpu.into(),
                ..Resources::default()
            }
            .threads()
        };
        assert_eq!(
            (r("500m"), r("2"), r("2.5"), r("4000m"), r("x")),
            (1, 2, 2, 4, 1)
        );
    }

    #[test]
    fn auto_precision_resolves_for_the_device_and_explicit_stays() {
        let mut auto = serde_json::json!({"training": {"lr": 0.1}});
        resolve_precision(&mut auto, true);
        assert_eq!(auto["training"]["precision"], "bf16");
        let mut cpu = serde_json::json!({});
        resolve_precision(&mut cpu, false);
        assert_eq!(cpu["training"]["precision"], "fp32");
        let mut fp32 = serde_json::json!({"training": {"precision": "fp32"}});
        resolve_precision(&mut fp32, true);
        assert_eq!(fp32["training"]["precision"], "fp32");
    }

    #[test]
    fn preset_names_follow_the_presets() {
        let names: Vec<&str> = MODEL_PRESETS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, PRESET_NAMES);
    }

    /// Each declared default is a value its own field accepts (groups: their members'), and
    /// every field the struct serialises is declared.
    fn check_declared(fields: &[Field], defaults: &Value) {
        let map = defaults
            .as_object()
            .expect("a section serialises as a mapping");
        for f in fields {
            match (f.ty, map.get(f.name).filter(|v| !v.is_null())) {
                (Ty::Group(inner), Some(v)) => check_declared(inner, v),
                (ty, Some(v)) => crate::fields::check_value(ty, v)
                    .unwrap_or_else(|e| panic!("default of {}: {e}", f.name)),
                (_, None) => {}
            }
        }
        for k in map.keys() {
            assert!(fields.iter().any(|f| f.name == k), "{k} is not declared");
        }
    }

    #[test]
    fn declared_defaults_are_valid() {
        for section in SECTIONS {
            check_declared(section.fields, &(section.defaults)());
        }
        for w in Workload::ALL {
            check_declared(w.fields(), &w.default_params());
        }
    }

    #[test]
    fn sweep_paths() {
        let w = Workload::Stability;
        assert_eq!(sweepable_field(w, "training.lr").unwrap().name, "lr");
        assert!(sweepable_field(w, "params.qk_layernorm").is_some());
        assert!(sweepable_field(w, "params.nope").is_none());
        assert!(sweepable_field(w, "lr").is_none());
        let paths = sweepable_paths(w);
        assert!(paths.contains(&"model.d_model".to_string()));
        assert!(paths.contains(&"params.z_loss".to_string()));
    }
}
