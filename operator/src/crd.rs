//! The `Experiment` and `Trial` custom resources (`orrery.dev/v1alpha1`).
//!
//! An Experiment's spec *is* the spec `orrery run` reads (core's [`ExperimentSpec`], flattened in),
//! so `kubectl apply -f experiments/x.yaml` and `orrery run experiments/x.yaml` take the same file.
//! The value ranges in the CRD schema come from the sections' declared fields
//! ([`orrery_core::fields`]), so the API server refuses what `orrery validate` refuses, with the
//! field named; `params` is the union of every workload's fields, each tied to its workloads by a
//! CEL rule.

use std::collections::BTreeMap;

use kube::core::CustomResourceExt;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use orrery_core::fields::{Field, Ty};
use orrery_core::schedule::{Counts, ExperimentPhase, TrialPhase};
use orrery_core::spec::{ExperimentSpec, KubernetesSpec, Resources, TrialConfig};
use orrery_core::spec::{Workload, SECTIONS};

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

/// Writes a field's accepted range into its OpenAPI schema node (a group: its members').
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
        Ty::Group(fields) => constrain_fields(node, fields),
        Ty::Opt(inner) => constrain(node, &Field { ty: *inner, ..*f }),
        // `best` or an id: Kubernetes' int-or-string (a structural schema has no anyOf of types).
        Ty::TrialRef => {
            obj.retain(|k, _| k == "description");
            obj.insert("x-kubernetes-int-or-string".into(), true.into());
        }
        Ty::Bool | Ty::Str | Ty::StrList | Ty::Mixture => {}
    }
}

/// Applies each field's range to its node under `object`'s `properties`.
fn constrain_fields(object: &mut Value, fields: &[Field]) {
    for f in fields {
        if let Some(node) = object.pointer_mut(&format!("/properties/{}", f.name)) {
            constrain(node, f);
        }
    }
}

/// A declared field's schema, from the declaration alone (the `params` of a workload have no Rust
/// type in common to derive one from).
fn field_schema(f: &Field) -> Value {
    let mut node = match f.ty {
        Ty::Int { .. } => serde_json::json!({"type": "integer", "format": "int64"}),
        Ty::Num { .. } => serde_json::json!({"type": "number", "format": "double"}),
        Ty::Bool => serde_json::json!({"type": "boolean"}),
        Ty::Str | Ty::OneOf(_) => serde_json::json!({"type": "string"}),
        Ty::TrialRef => serde_json::json!({}),
        Ty::StrList => serde_json::json!({"type": "array", "items": {"type": "string"}}),
        Ty::Group(fields) => object_schema(fields.iter()),
        Ty::Opt(inner) => {
            let mut n = field_schema(&Field { ty: *inner, ..*f });
            n["nullable"] = true.into();
            n
        }
        // A mapping of group name → weight ≥ 0 (the sum and the names: the validator's rule).
        Ty::Mixture => serde_json::json!({
            "type": "object",
            "nullable": true,
            "additionalProperties": {"type": "number", "minimum": 0},
        }),
    };
    node["description"] = f.doc.into();
    constrain(&mut node, f);
    node
}

fn object_schema<'a>(fields: impl Iterator<Item = &'a Field>) -> Value {
    let props: serde_json::Map<String, Value> = fields
        .map(|f| (f.name.to_string(), field_schema(f)))
        .collect();
    serde_json::json!({"type": "object", "properties": props})
}

/// A schema without its descriptions: what two declarations of one field must agree on.
fn types_of(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "description")
                .map(|(k, v)| (k.clone(), types_of(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The schema of `params` for these workloads — the union of their fields — and the CEL rules,
/// for the object holding `workload` and `params`, that refuse a field of another workload. Two
/// workloads may share a field name only with the same schema.
fn params_union(workloads: &[(&str, &'static [Field])]) -> (Value, Vec<Value>) {
    let mut union: BTreeMap<&str, (&Field, Vec<&str>)> = BTreeMap::new();
    for (w, fields) in workloads {
        for f in *fields {
            let entry = union.entry(f.name).or_insert((f, Vec::new()));
            assert_eq!(
                types_of(&field_schema(entry.0)),
                types_of(&field_schema(f)),
                "params.{} is declared by {} and {} with different types; rename one",
                f.name,
                entry.1.join(", "),
                w
            );
            entry.1.push(w);
        }
    }
    let schema = object_schema(union.values().map(|(f, _)| *f));
    let rules = union
        .iter()
        .filter(|(_, (_, owners))| owners.len() < workloads.len())
        .map(|(name, (_, owners))| {
            let list = owners
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(", ");
            serde_json::json!({
                "rule": format!("!has(self.params) || !has(self.params.{name}) || self.workload in [{list}]"),
                "message": format!("params.{name} belongs to workload {}", owners.join(", ")),
            })
        })
        .collect();
    (schema, rules)
}

/// Puts the registry's `params` union (and its rules) into an object schema with `workload` and
/// `params` (an Experiment's spec, a Trial's config).
fn constrain_params(object: &mut Value) {
    let workloads: Vec<(&str, &'static [Field])> = Workload::ALL
        .iter()
        .map(|w| (w.as_str(), w.fields()))
        .collect();
    let (schema, rules) = params_union(&workloads);
    if let Some(params) = object.pointer_mut("/properties/params") {
        *params = schema;
    }
    if !rules.is_empty() {
        if let Some(obj) = object.as_object_mut() {
            let list = obj
                .entry("x-kubernetes-validations")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(list) = list.as_array_mut() {
                list.extend(rules);
            }
        }
    }
}

/// Applies the declared ranges to the `spec` schema of an Experiment CRD.
fn constrain_spec(spec: &mut Value) {
    for s in SECTIONS {
        if let Some(node) = spec.pointer_mut(&format!("/properties/{}", s.name)) {
            constrain_fields(node, s.fields);
        }
    }
    constrain_params(spec);
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

/// The two CRDs as JSON values, with the declared ranges applied.
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
    // The experiment's name becomes its trials' names and label values (`NAME-INDEX`, at most
    // 63 characters): the validator's bound, checked by the API server at `kubectl apply`.
    if let Some(versions) = exp
        .pointer_mut("/spec/versions")
        .and_then(Value::as_array_mut)
    {
        for v in versions {
            if let Some(root) = v
                .pointer_mut("/schema/openAPIV3Schema")
                .and_then(Value::as_object_mut)
            {
                let max = orrery_core::validate::MAX_NAME_LEN;
                root.insert(
                    "x-kubernetes-validations".into(),
                    serde_json::json!([{
                        "rule": format!("size(self.metadata.name) <= {max}"),
                        "message": format!(
                            "metadata.name: at most {max} characters, so that every trial's name (NAME-INDEX, up to NAME-{}) fits a Kubernetes label value (63 characters)",
                            orrery_core::search::MAX_TRIALS - 1
                        ),
                    }]),
                );
            }
        }
    }
    let mut trial = serde_json::to_value(Trial::crd()).expect("the Trial CRD serialises");
    if let Some(versions) = trial
        .pointer_mut("/spec/versions")
        .and_then(Value::as_array_mut)
    {
        for v in versions {
            let config = "/schema/openAPIV3Schema/properties/spec/properties/config";
            if let Some(config) = v.pointer_mut(config) {
                constrain_params(config);
            }
        }
    }
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

    const A: &[Field] = &[
        Field {
            name: "shared",
            ty: Ty::Bool,
            doc: "in both",
        },
        Field {
            name: "only_a",
            ty: orrery_core::fields::NUM.gt(0.0),
            doc: "a's",
        },
    ];
    const B: &[Field] = &[Field {
        name: "shared",
        ty: Ty::Bool,
        doc: "in both",
    }];

    #[test]
    fn params_are_the_union_with_a_rule_per_field_not_everyone_has() {
        let (schema, rules) = params_union(&[("a", A), ("b", B)]);
        assert_eq!(schema["properties"]["only_a"]["minimum"], 0.0);
        assert_eq!(schema["properties"]["only_a"]["exclusiveMinimum"], true);
        assert_eq!(schema["properties"]["shared"]["type"], "boolean");
        assert_eq!(
            rules,
            vec![serde_json::json!({
                "rule": "!has(self.params) || !has(self.params.only_a) || self.workload in ['a']",
                "message": "params.only_a belongs to workload a",
            })]
        );
        // One workload: nothing to tie.
        assert!(params_union(&[("a", A)]).1.is_empty());
    }

    #[test]
    #[should_panic(expected = "different types")]
    fn a_shared_name_must_keep_its_type() {
        const C: &[Field] = &[Field {
            name: "shared",
            ty: Ty::Str,
            doc: "in both",
        }];
        params_union(&[("a", A), ("c", C)]);
    }

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
