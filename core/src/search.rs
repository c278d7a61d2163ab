//! Search-space expansion: a validated spec becomes a list of trials, each a set of assignments
//! (dotted field path → value) laid over the spec's trial-level sections.
//!
//! Expansion is deterministic: grid order is the sorted order of the swept paths (last path varies
//! fastest), random search draws from a ChaCha8 generator seeded by `search.seed`, and replicates
//! (`seeds`) are innermost, so trial `i` is the same trial every time the spec is expanded.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::fields::Ty;
use crate::mixture_space;
use crate::spec::{
    group_names, sweepable_field, DataSpec, ModelSpec, Objective, Params, TrainingSpec,
    TrialConfig, Workload,
};
use crate::yaml::{Path, Seg};

/// The most trials one experiment may expand to.
pub const MAX_TRIALS: usize = 100_000;

/// One trial as expansion produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialPlan {
    pub index: usize,
    /// The swept values of this trial (plus `training.seed` when `seeds` > 1).
    pub assignments: BTreeMap<String, Value>,
    /// `workload`, `objective`, `model`, `data`, `training`, `params` with the assignments applied
    /// (a nested path such as `params.aioli.eta` sets the field inside its group).
    pub sections: Value,
    /// For list search: which entry of `search.trials` this trial came from.
    list_index: Option<usize>,
}

impl TrialPlan {
    /// `training.lr=0.001, params.qk_layernorm=true`, or `base` when nothing was swept.
    pub fn describe(&self) -> String {
        if self.assignments.is_empty() {
            return "base".into();
        }
        self.assignments
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Where in the spec the value of swept path `key` was written.
    pub fn source_path(&self, key: &str) -> Path {
        let mut p: Path = vec![Seg::Key("spec".into()), Seg::Key("search".into())];
        match self.list_index {
            Some(i) => {
                p.push(Seg::Key("trials".into()));
                p.push(Seg::Index(i));
            }
            None => p.push(Seg::Key("space".into())),
        }
        p.push(Seg::Key(key.into()));
        p
    }

    /// The fully resolved configuration a worker runs.
    pub fn config(&self) -> Result<TrialConfig, serde_json::Error> {
        #[derive(Deserialize)]
        struct Sections {
            #[serde(flatten)]
            params: Params,
            #[serde(default)]
            objective: Objective,
            #[serde(default)]
            model: ModelSpec,
            #[serde(default)]
            data: DataSpec,
            #[serde(default)]
            training: TrainingSpec,
        }
        let s: Sections = serde_json::from_value(self.sections.clone())?;
        Ok(TrialConfig {
            params: s.params,
            objective: s.objective,
            model: s.model.shape(),
            data: s.data,
            training: s.training,
            // Resolved by the server when the experiment is submitted (it needs the database).
            init_from: None,
        })
    }
}

/// The trial-level sections of a spec document, as written.
pub fn trial_sections(raw: &Value) -> Value {
    let spec = raw.get("spec").cloned().unwrap_or(Value::Null);
    let mut out = serde_json::Map::new();
    for key in [
        "workload",
        "objective",
        "model",
        "data",
        "training",
        "params",
    ] {
        if let Some(v) = spec.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    Value::Object(out)
}

/// Sets the field at `dotted` (`training.lr`, `params.aioli.eta`), creating the mappings on the way.
fn assign(sections: &mut Value, dotted: &str, value: Value) {
    let mut keys: Vec<&str> = dotted.split('.').collect();
    let Some(last) = keys.pop() else { return };
    let mut node = sections;
    for k in keys {
        let Value::Object(m) = node else { return };
        node = m.entry(k.to_string()).or_insert_with(|| json!({}));
    }
    if let Value::Object(m) = node {
        m.insert(last.to_string(), value);
    }
}

/// Rounds generated floats to 12 significant digits so a log grid yields 0.001, not 0.0010000000000000002.
fn tidy(x: f64) -> f64 {
    format!("{x:.11e}").parse().unwrap_or(x)
}

fn to_value(ty: Ty, x: f64) -> Value {
    match ty {
        Ty::Int { .. } => json!(x.round() as i64),
        _ => json!(tidy(x)),
    }
}

fn grid_points(form: &str, lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let t = i as f64 / (n - 1) as f64;
            if form == "log_range" {
                (lo.ln() + t * (hi.ln() - lo.ln())).exp()
            } else {
                lo + t * (hi - lo)
            }
        })
        .collect()
}

/// The discrete values of a dimension (values, range, log_range, simplex over `groups`), or `None`
/// for a continuous one.
fn discrete_values(ty: Ty, dim: &Value, groups: &[String]) -> Option<Vec<Value>> {
    if let Some(vs) = dim.get("values").and_then(Value::as_array) {
        return Some(vs.clone());
    }
    if let Some(simplex) = dim.get("simplex") {
        let k = mixture_space::simplex_divisions(simplex.get("step")?.as_f64()?)?;
        let floor = match simplex.get("min") {
            Some(min) => mixture_space::simplex_floor(min.as_f64()?, k)?,
            None => 0,
        };
        return Some(mixture_space::simplex_points_from(groups, k, floor));
    }
    for form in ["range", "log_range"] {
        if let Some(b) = dim.get(form).and_then(Value::as_array) {
            let lo = b.first()?.as_f64()?;
            let hi = b.get(1)?.as_f64()?;
            let n = dim.get("points").and_then(Value::as_u64).unwrap_or(2) as usize;
            let mut out: Vec<Value> = Vec::new();
            for v in grid_points(form, lo, hi, n)
                .into_iter()
                .map(|x| to_value(ty, x))
            {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
            return Some(out);
        }
    }
    None
}

/// One draw from a dimension; `discrete`: its values when it has a finite set (worked out once
/// per search, not per draw: a simplex can have 100,000 points).
fn sample(
    ty: Ty,
    dim: &Value,
    discrete: Option<&[Value]>,
    groups: &[String],
    rng: &mut ChaCha8Rng,
) -> Value {
    if let Some(vs) = discrete {
        return vs[rng.gen_range(0..vs.len())].clone();
    }
    if let Some(alpha) = dim.get("dirichlet").and_then(|d| d.get("alpha")?.as_f64()) {
        return mixture_space::dirichlet(groups, alpha, rng);
    }
    let bounds = |form: &str| -> Option<(f64, f64)> {
        let b = dim.get(form)?.as_array()?;
        Some((b.first()?.as_f64()?, b.get(1)?.as_f64()?))
    };
    if let Some((lo, hi)) = bounds("log_uniform") {
        return to_value(ty, rng.gen_range(lo.ln()..hi.ln()).exp());
    }
    if let Some((lo, hi)) = bounds("int_uniform") {
        return json!(rng.gen_range(lo.round() as i64..=hi.round() as i64));
    }
    let (lo, hi) = bounds("uniform").unwrap_or((0.0, 1.0));
    to_value(ty, rng.gen_range(lo..hi))
}

/// Expands a validated spec document into trials. Errors are `(path, message)` pairs.
pub fn expand(raw: &Value) -> Result<Vec<TrialPlan>, Vec<(Path, String)>> {
    let search = raw
        .get("spec")
        .and_then(|s| s.get("search"))
        .cloned()
        .unwrap_or(Value::Null);
    let kind = search.get("kind").and_then(Value::as_str).unwrap_or("grid");
    let seeds = search.get("seeds").and_then(Value::as_u64).unwrap_or(1);
    let space: BTreeMap<String, Value> = search
        .get("space")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let workload: Option<Workload> = raw
        .get("spec")
        .and_then(|s| s.get("workload"))
        .and_then(|w| w.as_str()?.parse().ok());
    let ty_of = |k: &str| {
        workload
            .and_then(|w| sweepable_field(w, k))
            .map(|f| f.ty)
            .unwrap_or(Ty::Str)
    };

    // A mixture dimension spans the data groups the spec names (a sweep that also changes the
    // groups is caught by the per-trial rules: the mixture then names groups the trial lacks).
    let groups = group_names(&trial_sections(raw));

    // Each point: (assignments, list index).
    let mut points: Vec<(BTreeMap<String, Value>, Option<usize>)> = Vec::new();
    let count_too_big = |n: u128| n * seeds as u128 > MAX_TRIALS as u128;
    let search_path: Path = vec![Seg::Key("spec".into()), Seg::Key("search".into())];
    match kind {
        "list" => {
            for (i, t) in search
                .get("trials")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let m = t
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                points.push((m, Some(i)));
            }
        }
        "random" => {
            let samples = search.get("samples").and_then(Value::as_u64).unwrap_or(1);
            if count_too_big(samples as u128) {
                return Err(vec![(
                    search_path,
                    too_many(samples as u128 * seeds as u128),
                )]);
            }
            let mut rng =
                ChaCha8Rng::seed_from_u64(search.get("seed").and_then(Value::as_u64).unwrap_or(0));
            let discrete: Vec<Option<Vec<Value>>> = space
                .iter()
                .map(|(k, dim)| discrete_values(ty_of(k), dim, &groups))
                .collect();
            for _ in 0..samples {
                let a = space
                    .iter()
                    .zip(&discrete)
                    .map(|((k, dim), d)| {
                        let v = sample(ty_of(k), dim, d.as_deref(), &groups, &mut rng);
                        (k.clone(), v)
                    })
                    .collect();
                points.push((a, None));
            }
        }
        _ => {
            let dims: Vec<(String, Vec<Value>)> = space
                .iter()
                .map(|(k, dim)| {
                    (
                        k.clone(),
                        discrete_values(ty_of(k), dim, &groups).unwrap_or_default(),
                    )
                })
                .collect();
            let total: u128 = dims.iter().map(|(_, v)| v.len() as u128).product();
            if count_too_big(total) {
                return Err(vec![(search_path, too_many(total * seeds as u128))]);
            }
            points.push((BTreeMap::new(), None));
            for (k, values) in &dims {
                points = points
                    .into_iter()
                    .flat_map(|(a, li)| {
                        values.iter().map(move |v| {
                            let mut a2 = a.clone();
                            a2.insert(k.clone(), v.clone());
                            (a2, li)
                        })
                    })
                    .collect();
            }
        }
    }

    let base = trial_sections(raw);
    let base_seed = base
        .get("training")
        .and_then(|t| t.get("seed"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut trials = Vec::with_capacity(points.len() * seeds as usize);
    for (assignments, list_index) in points {
        for s in 0..seeds {
            let mut a = assignments.clone();
            if seeds > 1 {
                let swept_seed = a
                    .get("training.seed")
                    .and_then(Value::as_u64)
                    .unwrap_or(base_seed);
                a.insert("training.seed".into(), json!(swept_seed + s));
            }
            let mut sections = base.clone();
            for (k, v) in &a {
                assign(&mut sections, k, v.clone());
            }
            trials.push(TrialPlan {
                index: trials.len(),
                assignments: a,
                sections,
                list_index,
            });
        }
    }
    Ok(trials)
}

fn too_many(n: u128) -> String {
    format!("the search expands to {n} trials; the limit is {MAX_TRIALS}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::stability::Stability;

    /// The trials of a spec's text (the tests' specs are valid; validation is not under test).
    fn trials(text: &str) -> Vec<TrialPlan> {
        expand(&crate::yaml::parse(text).unwrap().0).unwrap()
    }

    const BASE: &str = "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {name: t}\nspec:\n  workload: stability\n";

    #[test]
    fn grid_times_seeds() {
        let text = format!(
            "{BASE}  search:\n    space:\n      training.lr: {{log_range: [1e-4, 1.0], points: 5}}\n      params.qk_layernorm: {{values: [false, true]}}\n    seeds: 3\n"
        );
        let s = trials(&text);
        assert_eq!(s.len(), 30);
        // Sorted paths, last varies fastest, seeds innermost: qk_layernorm × lr × seed.
        let lrs: Vec<f64> = s
            .iter()
            .take(15)
            .step_by(3)
            .map(|t| t.config().unwrap().training.lr)
            .collect();
        assert_eq!(lrs, vec![1e-4, 1e-3, 1e-2, 1e-1, 1.0]);
        assert_eq!(s[0].assignments["training.seed"], json!(0));
        assert_eq!(s[2].assignments["training.seed"], json!(2));
        let qk = |i: usize| {
            let params = s[i].config().unwrap().params;
            params.of::<Stability>().unwrap().qk_layernorm
        };
        assert!(!qk(14));
        assert!(qk(15));
    }

    #[test]
    fn random_is_seeded_and_in_range() {
        let text = format!(
            "{BASE}  search:\n    kind: random\n    samples: 20\n    seed: 7\n    space:\n      training.lr: {{log_uniform: [1e-4, 1e-1]}}\n      model.layers: {{int_uniform: [1, 3]}}\n"
        );
        let a = trials(&text);
        let b = trials(&text);
        assert_eq!(a, b);
        for t in &a {
            let c = t.config().unwrap();
            assert!((1e-4..1e-1).contains(&c.training.lr));
            assert!((1..=3).contains(&c.model.layers));
        }
    }

    #[test]
    fn nested_paths_are_assigned_inside_their_group() {
        let mut sections = json!({"params": {"method": "x", "aioli": {"eta": 0.1, "k": 2}}});
        assign(&mut sections, "params.aioli.eta", json!(0.5));
        assign(&mut sections, "params.doremi.step", json!(1));
        assert_eq!(
            sections,
            json!({"params": {"method": "x", "aioli": {"eta": 0.5, "k": 2}, "doremi": {"step": 1}}})
        );
    }

    const MIXING: &str = "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {name: t}\nspec:\n  workload: aioli\n  data: {corpus: \"builtin:mixing\"}\n  params: {method: static}\n";

    #[test]
    fn a_simplex_grid_spans_every_mixture_of_the_data_groups() {
        let text = format!(
            "{MIXING}  search:\n    space:\n      params.proportions: {{simplex: {{step: 0.5}}}}\n      training.lr: {{values: [0.01, 0.02]}}\n"
        );
        let s = trials(&text);
        assert_eq!(s.len(), 12, "6 mixtures × 2 learning rates");
        let mix = |i: usize| s[i].sections["params"]["proportions"].clone();
        assert_eq!(mix(0), json!({"easy": 0.0, "hard": 0.0, "shared": 1.0}));
        assert_eq!(mix(1), mix(0), "the last path (training.lr) varies fastest");
        assert_eq!(mix(2), json!({"easy": 0.0, "hard": 0.5, "shared": 0.5}));
        assert_eq!(mix(11), json!({"easy": 1.0, "hard": 0.0, "shared": 0.0}));
        let cfg = s[2].config().unwrap();
        let p = cfg.params.of::<crate::workloads::aioli::Aioli>().unwrap();
        assert_eq!(p.proportions.as_ref().unwrap()["hard"], 0.5);
    }

    #[test]
    fn dirichlet_draws_are_seeded_mixtures() {
        let text = format!(
            "{MIXING}  search:\n    kind: random\n    samples: 6\n    seed: 2\n    space:\n      params.proportions: {{dirichlet: {{alpha: 1.0}}}}\n"
        );
        let (a, b) = (trials(&text), trials(&text));
        assert_eq!(a, b);
        let mixes: Vec<&Value> = a
            .iter()
            .map(|t| &t.sections["params"]["proportions"])
            .collect();
        assert!(mixes.windows(2).all(|w| w[0] != w[1]), "{mixes:?}");
        for m in mixes {
            let w: Vec<f64> = ["easy", "hard", "shared"]
                .iter()
                .map(|g| m[*g].as_f64().unwrap())
                .collect();
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{m}");
        }
        let other = trials(&text.replace("seed: 2", "seed: 3"));
        assert_ne!(a, other);
    }

    #[test]
    fn list_search_and_integer_ranges() {
        let text = format!(
            "{BASE}  search:\n    kind: list\n    trials:\n      - {{training.lr: 0.01}}\n      - {{training.lr: 0.02, model.layers: 3}}\n"
        );
        let s = trials(&text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].config().unwrap().model.layers, 3);
        let text = format!(
            "{BASE}  search:\n    space:\n      model.layers: {{range: [1, 2], points: 4}}\n"
        );
        assert_eq!(
            trials(&text).len(),
            2,
            "integer grid points are deduplicated"
        );
    }
}
