//! Spec validation: one error per problem, each naming the field path and where it is in the YAML.
//!
//! The rules for trial-level fields (model, data, training, and the params of the spec's workload)
//! are the sections' declared [`Field`] tables; the same table checks a value written in place and
//! a value a sweep would assign, so a swept `training.lr: {values: [-1]}` is refused with the same
//! message as `lr: -1`. A misspelt field, sweep path or workload gets a "did you mean" suggestion.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use crate::fields::{check_value, did_you_mean, int, Field, Ty, NUM};
use crate::search::{self, TrialPlan};
use crate::spec::{
    corpus_groups, sweepable_field, sweepable_paths, Experiment, InitFrom, ModelSpec, TrainingSpec,
    TrialRef, Workload, API_VERSION, BUILTIN_CORPUS, CORPORA, KIND, SECTIONS,
};
use crate::workloads::CrossFieldError;
use crate::yaml::{self, display_path, Loc, Locations, Path, Seg};

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpecError {
    pub loc: Option<Loc>,
    pub path: String,
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.loc, self.path.is_empty()) {
            (Some(l), false) => write!(f, "{l}: {}: {}", self.path, self.message),
            (Some(l), true) => write!(f, "{l}: {}", self.message),
            (None, false) => write!(f, "{}: {}", self.path, self.message),
            (None, true) => write!(f, "{}", self.message),
        }
    }
}

/// Every problem found in a spec, in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// A spec that passed validation, with its trials expanded.
#[derive(Debug, Clone)]
pub struct LoadedSpec {
    pub experiment: Experiment,
    /// The spec as a JSON value, as written (no defaults filled in).
    pub raw: Value,
    pub trials: Vec<TrialPlan>,
}

impl LoadedSpec {
    /// Resolves `training.precision: auto` in every trial for the device the trials will run on
    /// (`cuda`), so each stored configuration records the precision that ran. A local run knows
    /// its device; a cluster uses [`LoadedSpec::resolve_precision_on_cluster`].
    pub fn resolve_precision(&mut self, cuda: bool) {
        for t in &mut self.trials {
            crate::spec::resolve_precision(&mut t.sections, cuda);
        }
    }

    /// As [`LoadedSpec::resolve_precision`] for trials run as Pods, on CUDA by
    /// [`crate::spec::Resources::cuda`]. The API (which records the trials) and the operator
    /// (which writes their Trial objects) both call it.
    pub fn resolve_precision_on_cluster(&mut self) {
        let cuda = self.experiment.spec.resources.cuda();
        self.resolve_precision(cuda);
    }
}

/// A problem found after validation, by whoever knows more than the spec (the server resolving
/// `model.init_from` against its database), with trial `t`'s field `field` (`model.init_from.experiment`):
/// positioned where the user wrote the value — its sweep dimension when swept, else the field
/// itself — in `text`, the spec as submitted.
pub fn error_at(text: &str, t: &TrialPlan, field: &str, message: String) -> SpecError {
    let swept = t
        .assignments
        .keys()
        .find(|k| field == k.as_str() || field.starts_with(&format!("{k}.")));
    let (path, message) = match swept {
        Some(k) => (
            t.source_path(k),
            format!("{message} (trial {})", t.describe()),
        ),
        None => {
            let mut p: Path = vec![Seg::Key("spec".into())];
            p.extend(field.split('.').map(|k| Seg::Key(k.into())));
            (p, message)
        }
    };
    let loc = yaml::parse(text)
        .ok()
        .and_then(|(_, locs)| locs.value(&path));
    SpecError {
        loc,
        path: display_path(&path),
        message,
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

/// A spec-level field (the trial-level ones are declared with their sections).
const fn field(name: &'static str, ty: Ty) -> Field {
    Field { name, ty, doc: "" }
}

fn fmt_num(x: f64) -> String {
    format!("{x}")
}

/// Collects errors; resolves each path to a position through [`Locations`].
struct Checker<'a> {
    locs: &'a Locations,
    errors: Vec<SpecError>,
}

fn child(path: &[Seg], key: &str) -> Path {
    let mut p = path.to_vec();
    p.push(Seg::Key(key.to_string()));
    p
}

impl Checker<'_> {
    fn at_value(&mut self, path: &[Seg], message: impl Into<String>) {
        let loc = self.locs.value(path);
        self.errors.push(SpecError {
            loc,
            path: display_path(path),
            message: message.into(),
        });
    }

    fn at_key(&mut self, path: &[Seg], message: impl Into<String>) {
        let loc = self.locs.key(path);
        self.errors.push(SpecError {
            loc,
            path: display_path(path),
            message: message.into(),
        });
    }

    /// `v` must be a mapping whose keys are among `allowed`; reports each unknown key.
    fn mapping<'v>(
        &mut self,
        path: &[Seg],
        v: &'v Value,
        allowed: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Value::Object(map) = v else {
            self.at_value(path, format!("expected a mapping, got {}", describe(v)));
            return None;
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.at_key(
                    &child(path, key),
                    format!(
                        "unknown field `{key}`{}; expected one of: {}",
                        did_you_mean(key, allowed.iter().copied()),
                        allowed.join(", ")
                    ),
                );
            }
        }
        Some(map)
    }

    fn required<'v>(
        &mut self,
        path: &[Seg],
        map: &'v Map<String, Value>,
        key: &str,
    ) -> Option<&'v Value> {
        let v = map.get(key);
        if v.is_none() {
            self.at_value(path, format!("missing required field `{key}`"));
        }
        v
    }

    fn field(&mut self, path: &[Seg], map: &Map<String, Value>, f: Field) {
        let Some(v) = map.get(f.name) else { return };
        match f.ty {
            Ty::Group(fields) => self.fields(&child(path, f.name), v, fields),
            ty => {
                if let Err(m) = check_value(ty, v) {
                    self.at_value(&child(path, f.name), m);
                }
            }
        }
    }

    /// `v` must be a mapping of `fields`, each checked (groups recursively).
    fn fields(&mut self, path: &[Seg], v: &Value, fields: &[Field]) {
        let allowed: Vec<&str> = fields.iter().map(|f| f.name).collect();
        if let Some(sec) = self.mapping(path, v, &allowed) {
            for f in fields {
                self.field(path, sec, *f);
            }
        }
    }

    fn section(&mut self, parent: &[Seg], map: &Map<String, Value>, name: &str, fields: &[Field]) {
        if let Some(v) = map.get(name) {
            self.fields(&child(parent, name), v, fields);
        }
    }
}

fn key_path(keys: &[&str]) -> Path {
    keys.iter().map(|k| Seg::Key(k.to_string())).collect()
}

/// Checks a mapping against a declared table of fields, groups included, as the validator checks a
/// section of a spec (without positions: `value` is not from a document). One error per problem,
/// each with its dotted path inside `value`.
pub fn check_fields(fields: &[Field], value: &Value) -> Vec<SpecError> {
    let locs = Locations::default();
    let mut c = Checker {
        locs: &locs,
        errors: Vec::new(),
    };
    c.fields(&[], value, fields);
    c.errors
}

/// Reads, checks and expands a spec. Nothing is written anywhere; the caller stores the result only
/// when this returns `Ok`.
pub fn load_spec(text: &str) -> Result<LoadedSpec, SpecErrors> {
    let (raw, locs) = yaml::parse(text).map_err(|e| {
        SpecErrors(vec![SpecError {
            loc: Some(e.loc),
            path: String::new(),
            message: e.message,
        }])
    })?;
    let mut c = Checker {
        locs: &locs,
        errors: Vec::new(),
    };
    check_document(&mut c, &raw);
    let mut trials = Vec::new();
    if c.errors.is_empty() {
        match search::expand(&raw) {
            Ok(t) => trials = t,
            Err(errs) => {
                for (path, message) in errs {
                    c.at_value(&path, message);
                }
            }
        }
    }
    if c.errors.is_empty() {
        check_trials(&mut c, &trials);
    }
    if !c.errors.is_empty() {
        let mut errors = c.errors;
        errors.sort();
        errors.dedup();
        return Err(SpecErrors(errors));
    }
    let experiment: Experiment = serde_json::from_value(raw.clone()).map_err(|e| {
        SpecErrors(vec![SpecError {
            loc: None,
            path: String::new(),
            message: format!("internal: validated spec did not convert: {e}"),
        }])
    })?;
    Ok(LoadedSpec {
        experiment,
        raw,
        trials,
    })
}

fn check_document(c: &mut Checker, raw: &Value) {
    let root: Path = Vec::new();
    let Some(top) = c.mapping(&root, raw, &["apiVersion", "kind", "metadata", "spec"]) else {
        return;
    };
    if let Some(v) = c.required(&root, top, "apiVersion") {
        if v.as_str() != Some(API_VERSION) {
            c.at_value(
                &key_path(&["apiVersion"]),
                format!("expected {API_VERSION}, got {}", describe(v)),
            );
        }
    }
    if let Some(v) = c.required(&root, top, "kind") {
        if v.as_str() != Some(KIND) {
            c.at_value(
                &key_path(&["kind"]),
                format!("expected {KIND}, got {}", describe(v)),
            );
        }
    }
    if let Some(m) = c.required(&root, top, "metadata") {
        let path = key_path(&["metadata"]);
        if let Some(meta) = c.mapping(&path, m, &["name", "namespace", "labels", "annotations"]) {
            if let Some(name) = c.required(&path, meta, "name") {
                if let Err(msg) = check_dns_label(name) {
                    c.at_value(&child(&path, "name"), msg);
                }
            }
            for key in ["labels", "annotations"] {
                if let Some(v) = meta.get(key) {
                    check_string_map(c, &child(&path, key), v);
                }
            }
        }
    }
    let Some(s) = c.required(&root, top, "spec") else {
        return;
    };
    let path = key_path(&["spec"]);
    let allowed = [
        "workload",
        "objective",
        "model",
        "data",
        "training",
        "params",
        "search",
        "parallelism",
        "maxFailedTrials",
        "retry",
        "resources",
        "kubernetes",
    ];
    let Some(spec) = c.mapping(&path, s, &allowed) else {
        return;
    };
    // The workload decides which `params` fields exist; unknown, its params go unchecked (the
    // workload's own error says what to fix first).
    let mut workload = None;
    if let Some(w) = c.required(&path, spec, "workload") {
        match w.as_str().map(str::parse::<Workload>) {
            Some(Ok(known)) => workload = Some(known),
            _ => {
                let hint = w
                    .as_str()
                    .map(|s| did_you_mean(s, Workload::NAMES.iter().copied()))
                    .unwrap_or_default();
                let m = check_value(Ty::OneOf(Workload::NAMES), w).unwrap_err();
                c.at_value(&child(&path, "workload"), format!("{m}{hint}"));
            }
        }
    }
    if let Some(v) = spec.get("objective") {
        let p = child(&path, "objective");
        if let Some(obj) = c.mapping(&p, v, &["metric", "goal"]) {
            if let Some(m) = obj.get("metric") {
                if let Err(msg) = m
                    .as_str()
                    .ok_or_else(|| format!("expected a metric name, got {}", describe(m)))
                    .and_then(crate::metrics::check_name)
                {
                    c.at_value(&child(&p, "metric"), msg);
                }
            }
            c.field(&p, obj, field("goal", Ty::OneOf(&["minimize", "maximize"])));
        }
    }
    for s in SECTIONS {
        c.section(&path, spec, s.name, s.fields);
    }
    if let Some(w) = workload {
        c.section(&path, spec, "params", w.fields());
    }
    c.field(&path, spec, field("parallelism", int(1, 10_000)));
    c.field(&path, spec, field("maxFailedTrials", int(0, 1_000_000)));
    c.section(&path, spec, "retry", &[field("maxRestarts", int(0, 100))]);
    if let Some(v) = spec.get("resources") {
        let p = child(&path, "resources");
        if let Some(res) = c.mapping(&p, v, &["cpu", "memory", "gpu"]) {
            if let Some(cpu) = res.get("cpu") {
                if let Err(m) = check_quantity(cpu, false) {
                    c.at_value(&child(&p, "cpu"), m);
                }
            }
            if let Some(mem) = res.get("memory") {
                if let Err(m) = check_quantity(mem, true) {
                    c.at_value(&child(&p, "memory"), m);
                }
            }
            c.field(&p, res, field("gpu", int(0, 64)));
        }
    }
    if let Some(v) = spec.get("kubernetes") {
        check_kubernetes(c, &child(&path, "kubernetes"), v);
    }
    if let Some(v) = spec.get("search") {
        let groups = crate::spec::group_names(&search::trial_sections(raw)).len();
        check_search(c, &child(&path, "search"), v, workload, groups);
    }
}

fn check_string_map(c: &mut Checker, path: &[Seg], v: &Value) {
    let ok = v
        .as_object()
        .is_some_and(|m| m.values().all(Value::is_string));
    if !ok {
        c.at_value(path, "expected a mapping of strings to strings");
    }
}

fn check_kubernetes(c: &mut Checker, path: &[Seg], v: &Value) {
    let allowed = [
        "image",
        "nodeSelector",
        "tolerations",
        "priorityClassName",
        "podAnnotations",
    ];
    let Some(k) = c.mapping(path, v, &allowed) else {
        return;
    };
    for name in ["image", "priorityClassName"] {
        if let Some(v) = k.get(name) {
            if v.as_str().is_none_or(str::is_empty) {
                c.at_value(
                    &child(path, name),
                    format!("expected a non-empty string, got {}", describe(v)),
                );
            }
        }
    }
    for name in ["nodeSelector", "podAnnotations"] {
        if let Some(v) = k.get(name) {
            check_string_map(c, &child(path, name), v);
        }
    }
    let Some(tols) = k.get("tolerations") else {
        return;
    };
    let tpath = child(path, "tolerations");
    let Some(list) = tols.as_array() else {
        c.at_value(
            &tpath,
            format!("expected a list of tolerations, got {}", describe(tols)),
        );
        return;
    };
    let fields = [
        field("key", Ty::Str),
        field("operator", Ty::OneOf(&["Exists", "Equal"])),
        field("value", Ty::Str),
        field(
            "effect",
            Ty::OneOf(&["NoSchedule", "PreferNoSchedule", "NoExecute"]),
        ),
        field("tolerationSeconds", int(0, i64::MAX)),
    ];
    let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
    for (i, t) in list.iter().enumerate() {
        let mut p = tpath.clone();
        p.push(Seg::Index(i));
        if let Some(m) = c.mapping(&p, t, &names) {
            for f in fields {
                c.field(&p, m, f);
            }
        }
    }
}

/// The longest experiment name: on Kubernetes each trial is an object named `NAME-INDEX`, and
/// that name is also a label value (at most 63 characters) on its Pods; with up to
/// [`search::MAX_TRIALS`] trials an index has up to 5 digits (`NAME-99999`). The CRD holds the
/// same bound (`operator/src/crd.rs`).
pub const MAX_NAME_LEN: usize = 63 - "-".len() - digits(search::MAX_TRIALS - 1);

const fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Why an experiment of this name cannot run on Kubernetes, in words, when it cannot.
pub fn name_too_long(name: &str) -> Option<String> {
    (name.len() > MAX_NAME_LEN).then(|| {
        format!(
            "\"{name}\" has {} characters; at most {MAX_NAME_LEN}, so that every trial's name ({name}-INDEX, up to -{}) fits a Kubernetes label value (63 characters)",
            name.len(),
            search::MAX_TRIALS - 1
        )
    })
}

fn check_dns_label(v: &Value) -> Result<(), String> {
    let Some(s) = v.as_str() else {
        return Err(format!("expected a name, got {}", describe(v)));
    };
    if let Some(msg) = name_too_long(s) {
        return Err(msg);
    }
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("\"{s}\" is not a valid name: use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit"))
    }
}

/// Kubernetes resource quantities: `2`, `500m`, `0.5` for CPU; `4Gi`, `512Mi`, `1G` for memory.
fn check_quantity(v: &Value, memory: bool) -> Result<(), String> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(format!(
                "expected a quantity such as {}, got {}",
                if memory { "4Gi" } else { "2 or 500m" },
                describe(v)
            ))
        }
    };
    let suffixes: &[&str] = if memory {
        &["Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T", ""]
    } else {
        &["m", ""]
    };
    let ok = suffixes.iter().any(|suf| {
        text.strip_suffix(suf).is_some_and(|n| {
            !n.is_empty() && n.parse::<f64>().is_ok_and(|x| x.is_finite() && x > 0.0)
        })
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{text}\" is not a valid {} quantity (e.g. {})",
            if memory { "memory" } else { "cpu" },
            if memory { "4Gi" } else { "2 or 500m" }
        ))
    }
}

/// The field a sweep path names; `Err` with the message when there is none. Without a known
/// workload, `params.…` paths cannot be checked and are let through (the workload is the error).
fn sweep_target(workload: Option<Workload>, k: &str) -> Result<Option<&'static Field>, String> {
    match workload {
        Some(w) => sweepable_field(w, k)
            .map(Some)
            .ok_or_else(|| unknown_sweep_path(w, k)),
        None if k.starts_with("params.") => Ok(None),
        None => {
            let any = Workload::ALL[0];
            sweepable_field(any, k)
                .map(Some)
                .ok_or_else(|| unknown_sweep_path(any, k))
        }
    }
}

/// `groups`: how many data groups the spec names (what a mixture dimension spans).
fn check_search(
    c: &mut Checker,
    path: &[Seg],
    v: &Value,
    workload: Option<Workload>,
    groups: usize,
) {
    let Some(search) = c.mapping(
        path,
        v,
        &["kind", "space", "trials", "samples", "seed", "seeds"],
    ) else {
        return;
    };
    c.field(
        path,
        search,
        field("kind", Ty::OneOf(&["grid", "random", "list"])),
    );
    c.field(path, search, field("seeds", int(1, 1000)));
    c.field(path, search, field("samples", int(1, 1_000_000)));
    c.field(path, search, field("seed", int(0, i64::MAX)));
    let kind = search.get("kind").and_then(Value::as_str).unwrap_or("grid");
    if kind == "random" && !search.contains_key("samples") {
        c.at_value(
            path,
            "missing required field `samples` (random search draws this many points)",
        );
    }
    if kind != "random" && search.contains_key("samples") {
        c.at_key(
            &child(path, "samples"),
            format!("`samples` applies only to random search, not {kind}"),
        );
    }
    if kind == "list" {
        if search.contains_key("space") {
            c.at_key(
                &child(path, "space"),
                "list search takes `trials`, not `space`",
            );
        }
        match search.get("trials") {
            None => c.at_value(
                path,
                "missing required field `trials` (list search runs these points)",
            ),
            Some(Value::Array(items)) if !items.is_empty() => {
                let tp = child(path, "trials");
                for (i, item) in items.iter().enumerate() {
                    let mut ip = tp.clone();
                    ip.push(Seg::Index(i));
                    let Value::Object(m) = item else {
                        c.at_value(
                            &ip,
                            format!(
                                "expected a mapping of field paths to values, got {}",
                                describe(item)
                            ),
                        );
                        continue;
                    };
                    for (k, val) in m {
                        let kp = child(&ip, k);
                        match sweep_target(workload, k) {
                            Err(msg) => c.at_key(&kp, msg),
                            Ok(Some(f)) => {
                                if let Err(msg) = check_value(f.ty, val) {
                                    c.at_value(&kp, msg);
                                }
                            }
                            Ok(None) => {}
                        }
                    }
                }
            }
            Some(other) => c.at_value(
                &child(path, "trials"),
                format!("expected a non-empty list, got {}", describe(other)),
            ),
        }
    } else if search.contains_key("trials") {
        c.at_key(
            &child(path, "trials"),
            format!("`trials` applies only to list search, not {kind}"),
        );
    }
    if let Some(space) = search.get("space") {
        let sp = child(path, "space");
        let Value::Object(dims) = space else {
            c.at_value(
                &sp,
                format!(
                    "expected a mapping of field paths to dimensions, got {}",
                    describe(space)
                ),
            );
            return;
        };
        for (k, dim) in dims {
            let dp = child(&sp, k);
            match sweep_target(workload, k) {
                Err(msg) => c.at_key(&dp, msg),
                Ok(Some(f)) if matches!(f.ty, Ty::Mixture) => {
                    check_mixture_dimension(c, &dp, dim, kind, groups)
                }
                Ok(Some(f)) => check_dimension(c, &dp, dim, *f, kind),
                Ok(None) => {}
            }
        }
    }
}

fn unknown_sweep_path(w: Workload, k: &str) -> String {
    let paths = sweepable_paths(w);
    format!(
        "`{k}` is not a field that can be swept{}; sweepable fields are: {}",
        did_you_mean(k, paths.iter().map(String::as_str)),
        paths.join(", ")
    )
}

/// A dimension's `values` (at `path`): a non-empty list, each entry a valid value of `ty`.
fn check_listed_values(c: &mut Checker, path: &[Seg], values: Option<&Value>, ty: Ty) {
    match values {
        Some(Value::Array(vs)) if !vs.is_empty() => {
            for (i, v) in vs.iter().enumerate() {
                let mut ip = path.to_vec();
                ip.push(Seg::Index(i));
                if let Err(msg) = check_value(ty, v) {
                    c.at_value(&ip, msg);
                }
            }
        }
        Some(other) => c.at_value(
            path,
            format!("expected a non-empty list, got {}", describe(other)),
        ),
        None => {}
    }
}

/// A dimension over a mixture field: `values` (a list of mixtures), `simplex: {step, min}` (grid or
/// random: the grid's points, each weight at least `min`) or `dirichlet: {alpha}` (random only).
fn check_mixture_dimension(c: &mut Checker, path: &[Seg], dim: &Value, kind: &str, groups: usize) {
    let forms = ["values", "simplex", "dirichlet"];
    let Some(m) = c.mapping(path, dim, &forms) else {
        return;
    };
    let given: Vec<&str> = forms.into_iter().filter(|k| m.contains_key(*k)).collect();
    if given.len() != 1 {
        c.at_value(
            path,
            "a mixture dimension needs exactly one of values, simplex or dirichlet",
        );
        return;
    }
    if given[0] == "dirichlet" && kind != "random" {
        c.at_key(
            &child(path, "dirichlet"),
            format!("dirichlet draws at random: use it with search.kind: random (this search is {kind}); a grid takes simplex"),
        );
        return;
    }
    let fp = child(path, given[0]);
    match given[0] {
        "values" => check_listed_values(c, &fp, m.get("values"), Ty::Mixture),
        "simplex" => {
            let Some(sm) = c.mapping(&fp, &m["simplex"], &["step", "min"]) else {
                return;
            };
            let Some(step) = c.required(&fp, sm, "step") else {
                return;
            };
            let sp = child(&fp, "step");
            let Some(x) = step.as_f64() else {
                c.at_value(&sp, format!("expected a number, got {}", describe(step)));
                return;
            };
            let Some(k) = crate::mixture_space::simplex_divisions(x) else {
                c.at_value(
                    &sp,
                    format!(
                        "must be 1/k for a whole number k ≥ 1, such as 0.5, 0.25 or 0.333333333333 (got {})",
                        fmt_num(x)
                    ),
                );
                return;
            };
            let mut floor = 0;
            if let Some(min) = sm.get("min") {
                let mp = child(&fp, "min");
                let Some(w) = min.as_f64() else {
                    c.at_value(&mp, format!("expected a number, got {}", describe(min)));
                    return;
                };
                let Some(j) = crate::mixture_space::simplex_floor(w, k) else {
                    c.at_value(
                        &mp,
                        format!(
                            "must be ≥ 0 and a whole number of steps ({}, {}, ...; got {})",
                            fmt_num(0.0),
                            fmt_num(x),
                            fmt_num(w)
                        ),
                    );
                    return;
                };
                if j.saturating_mul(groups.max(1) as u64) > k {
                    c.at_value(
                        &mp,
                        format!(
                            "{groups} groups at {} each already weigh more than 1: no mixture is left",
                            fmt_num(w)
                        ),
                    );
                    return;
                }
                floor = j;
            }
            let n = crate::mixture_space::simplex_count_from(groups.max(1), k, floor);
            if n > search::MAX_TRIALS as u128 {
                c.at_value(
                    &sp,
                    format!(
                        "a simplex of step {}{} over {groups} groups has {} mixtures; the limit is {}",
                        fmt_num(x),
                        if floor > 0 {
                            format!(" with every weight ≥ {}", fmt_num(floor as f64 / k as f64))
                        } else {
                            String::new()
                        },
                        if n == u128::MAX { "too many".to_string() } else { n.to_string() },
                        search::MAX_TRIALS
                    ),
                );
            }
        }
        _ => {
            let Some(dm) = c.mapping(&fp, &m["dirichlet"], &["alpha"]) else {
                return;
            };
            c.required(&fp, dm, "alpha");
            c.field(&fp, dm, field("alpha", NUM.gt(0.0)));
        }
    }
}

fn check_dimension(c: &mut Checker, path: &[Seg], dim: &Value, f: Field, kind: &str) {
    let forms: &[&str] = if kind == "random" {
        &[
            "values",
            "range",
            "log_range",
            "points",
            "uniform",
            "log_uniform",
            "int_uniform",
        ]
    } else {
        &["values", "range", "log_range", "points"]
    };
    if let Some(form) = ["simplex", "dirichlet"]
        .into_iter()
        .find(|k| dim.get(*k).is_some())
    {
        c.at_key(
            &child(path, form),
            format!(
                "{form} spans a mixture (such as params.proportions), not a {} field",
                f.ty.name()
            ),
        );
        return;
    }
    let Some(m) = c.mapping(path, dim, forms) else {
        return;
    };
    let given: Vec<&str> = [
        "values",
        "range",
        "log_range",
        "uniform",
        "log_uniform",
        "int_uniform",
    ]
    .into_iter()
    .filter(|k| m.contains_key(*k))
    .collect();
    if given.len() != 1 {
        let opts = if kind == "random" {
            "values, range, log_range, uniform, log_uniform or int_uniform"
        } else {
            "values, range or log_range"
        };
        c.at_value(path, format!("a dimension needs exactly one of {opts}"));
        return;
    }
    let form = given[0];
    let fp = child(path, form);
    let numeric = f.ty.is_numeric();
    match form {
        "values" => {
            check_listed_values(c, &fp, m.get("values"), f.ty);
            if m.contains_key("points") {
                c.at_key(
                    &child(path, "points"),
                    "`points` goes with range or log_range, not values",
                );
            }
        }
        _ => {
            if !numeric {
                c.at_value(
                    &fp,
                    format!("{form} needs a numeric field; use values for this one"),
                );
                return;
            }
            let bounds = m
                .get(form)
                .and_then(Value::as_array)
                .and_then(|a| match a.as_slice() {
                    [lo, hi] => Some((lo.as_f64()?, hi.as_f64()?)),
                    _ => None,
                });
            let Some((lo, hi)) = bounds else {
                c.at_value(&fp, "expected [low, high]");
                return;
            };
            // One error per problem: the bounds' order and scale first, their field range only
            // when those hold.
            if lo >= hi {
                c.at_value(
                    &fp,
                    format!(
                        "low must be below high (got [{}, {}])",
                        fmt_num(lo),
                        fmt_num(hi)
                    ),
                );
            } else if form.starts_with("log") && lo <= 0.0 {
                c.at_value(
                    &fp,
                    format!("a log scale needs low > 0 (got {})", fmt_num(lo)),
                );
            } else if let Some(msg) = m
                .get(form)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find_map(|x| check_value(f.ty, x).err())
            {
                c.at_value(&fp, msg);
            }
            let discrete = matches!(form, "range" | "log_range");
            match (discrete, m.get("points")) {
                (true, None) => c.at_value(
                    path,
                    format!("missing required field `points` (how many values {form} spans)"),
                ),
                (true, Some(p)) => {
                    if let Err(msg) = check_value(
                        Ty::Int {
                            min: 2,
                            max: 10_000,
                        },
                        p,
                    ) {
                        c.at_value(&child(path, "points"), msg);
                    }
                }
                (false, Some(_)) => c.at_key(
                    &child(path, "points"),
                    format!("`points` goes with range or log_range, not {form}"),
                ),
                (false, None) => {}
            }
        }
    }
}

/// Rules that involve more than one field: the shared ones here, then the workload's own. Runs on
/// sections whose fields already passed their own checks.
fn cross_field_errors(sections: &Value) -> Vec<CrossFieldError> {
    let mut out = Vec::new();
    let mut push = |path: Path, message: String, involved: &'static [&'static str]| {
        out.push(CrossFieldError {
            path,
            message,
            involved,
        })
    };
    let model: ModelSpec = sections
        .get("model")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default();
    let shape = model.shape();
    if shape.heads > 0 && !shape.d_model.is_multiple_of(shape.heads) {
        push(
            key_path(&["spec", "model", "heads"]),
            format!(
                "d_model ({}) must be divisible by heads ({})",
                shape.d_model, shape.heads
            ),
            &["model.heads", "model.d_model", "model.preset"],
        );
    }
    let workload = sections
        .get("workload")
        .and_then(|w| w.as_str()?.parse::<Workload>().ok());
    for (at, message) in init_from_errors(&model.init_from, workload) {
        push(
            key_path(&["spec", "model", "init_from", at]),
            message,
            &["model.init_from.experiment", "model.init_from.trial"],
        );
    }
    let training = sections.get("training").cloned().unwrap_or(Value::Null);
    let steps = training
        .get("steps")
        .and_then(Value::as_u64)
        .unwrap_or(TrainingSpec::default().steps);
    if let Some(w) = training.get("warmup_steps").and_then(Value::as_u64) {
        if w > steps {
            push(
                key_path(&["spec", "training", "warmup_steps"]),
                format!("must not exceed training.steps ({steps}) (got {w})"),
                &["training.warmup_steps", "training.steps"],
            );
        }
    }
    let data = sections.get("data");
    let corpus = data
        .and_then(|d| d.get("corpus"))
        .and_then(Value::as_str)
        .unwrap_or(BUILTIN_CORPUS);
    let builtin = corpus_groups(corpus);
    if let Some(groups) = data.and_then(|d| d.get("groups")).and_then(Value::as_array) {
        for (i, g) in groups.iter().enumerate() {
            let Some(g) = g.as_str() else { continue };
            let is_file = g.strip_prefix("file:").is_some_and(|p| !p.is_empty());
            if !is_file && !builtin.contains(&g) {
                let mut p = key_path(&["spec", "data", "groups"]);
                p.push(Seg::Index(i));
                let other = CORPORA
                    .iter()
                    .find(|(_, gs)| gs.contains(&g))
                    .map(|(c, _)| format!(" (a group of {c}: set data.corpus)"))
                    .unwrap_or_default();
                push(
                    p,
                    format!(
                        "unknown group \"{g}\" in {corpus}{}{other}; use one of {} or file:PATH",
                        did_you_mean(g, builtin.iter().copied()),
                        builtin.join(", ")
                    ),
                    &["data.groups", "data.corpus"],
                );
            }
        }
    }
    if let Some(w) = workload {
        out.extend(w.cross_field_errors(sections));
    }
    out
}

/// `model.init_from` names one source: `{experiment, trial: best}`, `{trial: ID}` or
/// `{experiment, match: [paths]}`, the paths being fields of the trial. Each problem with the key
/// it is reported at.
fn init_from_errors(i: &InitFrom, workload: Option<Workload>) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if i.is_unset() {
        return out;
    }
    let forms =
        "use {experiment: NAME, trial: best}, {trial: ID} or {experiment: NAME, match: [paths]}";
    match (&i.experiment, &i.trial, i.match_paths.is_empty()) {
        (Some(_), Some(TrialRef::Best(_)), true) | (None, Some(TrialRef::Id(_)), true) => {}
        (Some(_), None, false) => {
            let mut seen = BTreeSet::new();
            for p in &i.match_paths {
                if !seen.insert(p) {
                    out.push(("match", format!("`{p}` is listed twice")));
                } else if p == "model.preset" || p.starts_with("model.init_from") {
                    out.push((
                        "match",
                        format!("`{p}` cannot pick a source (a preset is resolved into model.layers, model.d_model, ...); match on fields such as training.seed"),
                    ));
                } else if let Some(w) = workload.filter(|w| sweepable_field(*w, p).is_none()) {
                    let paths = sweepable_paths(w);
                    out.push((
                        "match",
                        format!(
                            "`{p}` is not a field of the trial{}",
                            did_you_mean(p, paths.iter().map(String::as_str))
                        ),
                    ));
                }
            }
        }
        (None, _, false) => out.push((
            "match",
            format!("match needs the experiment to match in; {forms}"),
        )),
        (Some(_), Some(_), false) => {
            out.push(("match", format!("give trial or match, not both; {forms}")))
        }
        (Some(_), Some(TrialRef::Id(_)), true) => out.push((
            "experiment",
            format!("a trial id names its experiment already; leave experiment out ({forms})"),
        )),
        (None, Some(TrialRef::Best(_)), true) => {
            out.push(("trial", format!("best of which experiment? {forms}")))
        }
        (Some(_), None, true) | (None, None, true) => {
            out.push(("experiment", format!("which of its trials? {forms}")))
        }
    }
    out
}

/// Runs the cross-field rules on every expanded trial (a spec without a search is one trial). A
/// problem caused by a swept value is reported where the user wrote that value: its dimension in
/// `search.space` or its entry in `search.trials`; one that no sweep touches, at the field itself.
fn check_trials(c: &mut Checker, trials: &[TrialPlan]) {
    let mut seen = BTreeSet::new();
    for t in trials {
        for CrossFieldError {
            path,
            message: msg,
            involved,
        } in cross_field_errors(&t.sections)
        {
            let culprit = t
                .assignments
                .keys()
                .find(|k| involved.contains(&k.as_str()));
            let (at, message) = match culprit {
                Some(k) => (
                    t.source_path(k),
                    format!(
                        "{}: {msg} (trial {})",
                        display_path(&path[1..]),
                        t.describe()
                    ),
                ),
                None => (path.clone(), msg),
            };
            if seen.insert((display_path(&at), message.clone())) {
                c.at_value(&at, message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numeric_quantities_convert() {
        let text = "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {name: q}\nspec:\n  workload: stability\n  resources: {cpu: 2, memory: 4Gi}\n";
        let s = crate::load_spec(text).unwrap();
        assert_eq!(s.experiment.spec.resources.cpu, "2");
    }
}
