//! The `Experiment` and `Trial` custom resources (`orrery.dev/v1alpha1`).
//!
//! An Experiment's spec *is* the spec `orrery run` reads (core's [`ExperimentSpec`], flattened in),
//! so `kubectl apply -f experiments/x.yaml` and `orrery run experiments/x.yaml` take the same file.
//! The value ranges in the CRD schema come from the validator's field tables
//! ([`orrery_core::validate`]), so the API server refuses what `orrery validate` refuses, with the
//! field named.

use std::collections::BTreeMap;

use kube::core::CustomResourceExt;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use orrery_core::schedule::{Counts, ExperimentPhase, TrialPhase};
use orrery_core::spec::{ExperimentSpec, KubernetesSpec, Resources, TrialConfig};
use orrery_core::validate::{
    Field, Ty, DATA_FIELDS, MODEL_FIELDS, STABILITY_PARAMS, TRAINING_FIELDS,
};

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "orrery.dev",
    version = "v1alpha1",
    kind = "Experiment",
    namespaced,
    status = "ExperimentStatus",
    shortname = "exp",
    category = "orrery",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Done","type":"string","jsonPath":".status.progress","description":"trials done/total"}"#,
    printcolumn = r#"{"name":"Best","type":"number","jsonPath":".status.bestObjective"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
pub struct ExperimentResourceSpec {
    #[serde(flatten)]
    pub spec: ExperimentSpec,
}

/// A Kubernetes-style condition (`type, status, reason, message, lastTransitionTime`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// "done/total", for `kubectl get`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_trial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_objective: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The experiment's id in the Orrery API once registered there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_experiment_id: Option<i64>,
}

#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "orrery.dev",
    version = "v1alpha1",
    kind = "Trial",
    namespaced,
    status = "TrialStatus",
    shortname = "tr",
    category = "orrery",
    printcolumn = r#"{"name":"Experiment","type":"string","jsonPath":".spec.experiment"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Attempts","type":"integer","jsonPath":".status.attempts"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TrialResourceSpec {
    /// The owning Experiment's name.
    pub experiment: String,
    pub index: u32,
    /// The swept values of this trial (dotted path → value).
    #[schemars(schema_with = "orrery_core::schema::free_object")]
    pub params: BTreeMap<String, Value>,
    pub config: TrialConfig,
    pub resources: Resources,
    /// Pod placement, copied from the Experiment.
    #[serde(default)]
    pub kubernetes: KubernetesSpec,
    /// Failed attempts retried before the trial fails (the Experiment's `retry.maxRestarts`).
    #[serde(default)]
    pub max_restarts: u32,
    /// The trial's id in the Orrery API, where its worker sends metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_trial_id: Option<i64>,
    /// Set by the Experiment controller to stop the trial (the experiment failed or is cancelled).
    #[serde(default)]
    pub cancel: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrialStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// Why the trial is where it is (`Unschedulable`, `OOMKilled`, `Retrying`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl ExperimentStatus {
    /// The phase, when one is recorded and known.
    pub fn parsed_phase(&self) -> Option<ExperimentPhase> {
        self.phase.as_deref().and_then(|p| p.parse().ok())
    }
}

impl TrialStatus {
    /// The phase, when one is recorded and known.
    pub fn parsed_phase(&self) -> Option<TrialPhase> {
        self.phase.as_deref().and_then(|p| p.parse().ok())
    }
}

impl Condition {
    pub fn new(type_: &str, status: bool, reason: &str, message: impl Into<String>) -> Self {
        Condition {
            type_: type_.into(),
            status: if status { "True" } else { "False" }.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: k8s_openapi::jiff::Timestamp::now().to_string(),
        }
    }
}

/// Puts `c` into `conditions`, keeping the old transition time when its status did not change.
pub fn set_condition(conditions: &mut Vec<Condition>, mut c: Condition) {
    match conditions.iter_mut().find(|o| o.type_ == c.type_) {
        Some(old) => {
            if old.status == c.status {
                c.last_transition_time = old.last_transition_time.clone();
            }
            *old = c;
        }
        None => conditions.push(c),
    }
}

/// The Orrery spec document (`apiVersion`, `kind`, `metadata`, `spec`) of an Experiment object, as
/// YAML: what the validator checks and what the API stores, exactly as `orrery run` would read it.
pub fn spec_document(name: &str, spec: &ExperimentSpec) -> String {
    let mut spec = serde_json::to_value(spec).expect("a spec serialises");
    strip_nulls(&mut spec);
    let doc = serde_json::json!({
        "apiVersion": orrery_core::spec::API_VERSION,
        "kind": orrery_core::spec::KIND,
        "metadata": {"name": name},
        "spec": spec,
    });
    serde_yaml::to_string(&doc).expect("a spec document serialises")
}

/// Unset optional fields serialise as `null`; the spec format leaves them out instead.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Writes a field's accepted range into its OpenAPI schema node.
fn constrain(node: &mut Value, f: &Field) {
    let Some(obj) = node.as_object_mut() else {
        return;
    };
    match f.ty {
        Ty::Int { min, max } => {
            obj.insert("minimum".into(), min.into());
            if max < i64::MAX {
                obj.insert("maximum".into(), max.into());
            }
        }
        Ty::Num { gt, ge, lt, le } => {
            if let Some(b) = gt.or(ge) {
                obj.insert("minimum".into(), b.into());
                obj.insert("exclusiveMinimum".into(), gt.is_some().into());
            }
            if let Some(b) = lt.or(le) {
                obj.insert("maximum".into(), b.into());
                obj.insert("exclusiveMaximum".into(), lt.is_some().into());
            }
        }
        Ty::OneOf(options) => {
            obj.insert(
                "enum".into(),
                options.iter().map(|o| Value::from(*o)).collect(),
            );
        }
        Ty::Bool | Ty::Str | Ty::StrList => {}
    }
}

/// Applies the validator's field tables to the `spec` schema of an Experiment CRD.
fn constrain_spec(spec: &mut Value) {
    for (section, fields) in [
        ("model", MODEL_FIELDS),
        ("data", DATA_FIELDS),
        ("training", TRAINING_FIELDS),
        ("params", STABILITY_PARAMS),
    ] {
        for f in fields {
            if let Some(node) =
                spec.pointer_mut(&format!("/properties/{section}/properties/{}", f.name))
            {
                constrain(node, f);
            }
        }
    }
    for (path, min) in [
        ("/properties/parallelism", 1),
        ("/properties/maxFailedTrials", 0),
        ("/properties/retry/properties/maxRestarts", 0),
    ] {
        if let Some(node) = spec.pointer_mut(path).and_then(Value::as_object_mut) {
            node.insert("minimum".into(), min.into());
        }
    }
    // What the type system cannot say, as CEL rules evaluated by the API server.
    if let Some(model) = spec
        .pointer_mut("/properties/model")
        .and_then(Value::as_object_mut)
    {
        model.insert(
            "x-kubernetes-validations".into(),
            serde_json::json!([{
                "rule": "!has(self.d_model) || !has(self.heads) || self.d_model % self.heads == 0",
                "message": "d_model must be divisible by heads"
            }]),
        );
    }
    if let Some(training) = spec
        .pointer_mut("/properties/training")
        .and_then(Value::as_object_mut)
    {
        training.insert(
            "x-kubernetes-validations".into(),
            serde_json::json!([{
                "rule": "!has(self.warmup_steps) || !has(self.steps) || self.warmup_steps <= self.steps",
                "message": "warmup_steps must not exceed steps"
            }]),
        );
    }
}

/// The two CRDs as JSON values, with the validator's ranges applied.
pub fn crds() -> Vec<(String, Value)> {
    let mut exp = serde_json::to_value(Experiment::crd()).expect("the Experiment CRD serialises");
    if let Some(versions) = exp
        .pointer_mut("/spec/versions")
        .and_then(Value::as_array_mut)
    {
        for v in versions {
            if let Some(spec) = v.pointer_mut("/schema/openAPIV3Schema/properties/spec") {
                constrain_spec(spec);
            }
        }
    }
    let trial = serde_json::to_value(Trial::crd()).expect("the Trial CRD serialises");
    vec![
        ("experiments.orrery.dev.yaml".into(), exp),
        ("trials.orrery.dev.yaml".into(), trial),
    ]
}

/// One CRD as the YAML committed under `charts/orrery/crds/`.
pub fn to_yaml(crd: &Value) -> String {
    format!(
        "# Generated from the Rust types by `orrery crd --out charts/orrery/crds`; do not edit.\n{}",
        serde_yaml::to_string(crd).expect("a CRD serialises to YAML")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_keeps_its_transition_time_until_its_status_changes() {
        let mut cs = vec![Condition {
            last_transition_time: "2026-01-01T00:00:00Z".into(),
            ..Condition::new("TrialsWaiting", false, "AllScheduled", "none")
        }];
        set_condition(
            &mut cs,
            Condition::new("TrialsWaiting", false, "AllScheduled", "still none"),
        );
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time, "2026-01-01T00:00:00Z");
        assert_eq!(cs[0].message, "still none");
        set_condition(
            &mut cs,
            Condition::new("TrialsWaiting", true, "Unschedulable", "no GPU"),
        );
        assert_ne!(cs[0].last_transition_time, "2026-01-01T00:00:00Z");
        assert_eq!(cs[0].status, "True");
        set_condition(&mut cs, Condition::new("Valid", true, "SpecValid", "ok"));
        assert_eq!(cs.len(), 2);
    }
}
