//! The `aioli` workload: online data mixing (Chen et al., *Aioli: A Unified Optimization Framework
//! for Language Model Data Mixing*, arXiv 2411.05735; the method as implemented:
//! `docs/workloads/aioli.md`). A trial trains the decoder from scratch on a fixed token budget drawn
//! from several data groups, the mixture over groups set by one method — `stratified` (uniform),
//! `static` (a given mixture), `aioli` (learned online: a round of short one-group training
//! segments estimates how training on each group moves every group's validation loss, and an
//! exponentiated-gradient step moves the mixture), `dml` (static at a mixing law's optimum) or
//! `doremi` (static at the average weights of a proxy trained against a reference) — and reports the mixture, the estimated
//! interaction matrix and each group's validation and test perplexity. Its analysis compares
//! the methods' average test perplexity over seeds ([`analysis`]).

pub mod analysis;
pub mod mixing_law;
pub mod trajectory;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fields::{int, Ty, NUM};
use crate::workloads::{CrossFieldError, MetricDoc, WorkloadKind};
use crate::yaml::Seg;

pub use analysis::{AioliAnalysis, MethodSummary};
pub use mixing_law::MixingLaw;

pub struct Aioli;

/// How a trial sets its data mixture.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Every group equally (round-robin rows).
    Stratified,
    /// `proportions`, held for the whole run.
    Static,
    /// Learned online (LearnParams rounds and exponentiated-gradient updates).
    Aioli,
    /// Static at the optimum of the mixing law fitted on another experiment's static trials
    /// (`dml.from_experiment`), which the server resolves into `proportions` when the experiment
    /// is registered.
    Dml,
    /// DoReMi (Xie et al., arXiv 2305.10429) inside the trial: a reference model trained on the
    /// stratified mixture, a proxy trained on the group losses weighted by weights that follow
    /// its excess loss over the reference, then the trial's model trained statically on the
    /// proxy's average weights.
    Doremi,
}

impl Method {
    pub const NAMES: &'static [&'static str] = &["stratified", "static", "aioli", "dml", "doremi"];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Stratified => "stratified",
            Method::Static => "static",
            Method::Aioli => "aioli",
            Method::Dml => "dml",
            Method::Doremi => "doremi",
        }
    }
}

/// An EMA coefficient (or DoReMi's smoothing): in [0, 1).
const EMA: Ty = NUM.ge(0.0).lt(1.0);
/// A step count that defaults to `training.steps`.
const STEPS: Ty = int(1, i64::MAX);

crate::declare_fields! {
    /// Aioli's own settings (`params.aioli`; defaults: the paper's two-group setting).
    pub struct AioliSettings {
        update_steps: u64 = 250, int(1, i64::MAX),
            "steps per round: LearnParams segments first, then training on the updated mixture";
        lp_rounds: u32 = 4, int(1, 100),
            "passes over the groups (each a random order) per LearnParams; Â is their mean";
        lp_steps: u32 = 4, int(1, 10_000),
            "training steps of each LearnParams segment (they count as training)";
        eta: f64 = 0.2, NUM.gt(0.0),
            "step size η of the exponentiated-gradient update p ← p ⊙ exp(η Σᵢ Aᵢⱼ)";
        one_hot_factor: f64 = 0.625, NUM.gt(0.0).le(1.0),
            "weight of the probed group in a segment's mixture (the rest share 1 − it); below 1, Â is de-mixed";
        ema: Option<f64> = None, Ty::Opt(&EMA),
            "null: cumulative updates; a number: A smoothed as (1 − ema)·A + ema·Ā and p recomputed from uniform each round";
        normalize_a: bool = true, Ty::Bool,
            "shift A to be ≥ 0 (if any entry is negative) and scale it to sum to 1 before the update";
        diagonal: bool = false, Ty::Bool,
            "keep only A's diagonal (Aᵢᵢ = Âᵢᵢ / one_hot_factor) instead of de-mixing the full matrix (with one_hot_factor 1, A is Â either way)";
    }
}

crate::declare_fields! {
    /// The `dml` method's settings (`params.dml`).
    pub struct DmlSettings {
        from_experiment: Option<String> = None, Ty::Opt(&Ty::Str),
            "the experiment (name or id; by name, the newest) whose static trials the mixing law is fitted on; dml trains statically at the law's optimum";
    }
}

crate::declare_fields! {
    /// The `doremi` method's settings (`params.doremi`; defaults: the reference trainer's).
    pub struct DoremiSettings {
        step_size: f64 = 1.0, NUM.gt(0.0),
            "step size μ of the update log w ← log w + μ·max(L − L_ref, 0) (the reference scripts use 0.01 at their scale)";
        smoothing: f64 = 1.0e-3, EMA,
            "ε in w ← (1 − ε)·softmax(log w) + ε/groups, which keeps every group's weight above ε/groups";
        reference_steps: Option<u64> = None, Ty::Opt(&STEPS),
            "steps of the reference model, trained on the stratified mixture (null: training.steps)";
        proxy_steps: Option<u64> = None, Ty::Opt(&STEPS),
            "steps of the proxy model whose weights are averaged into the mixture (null: training.steps)";
    }
}

impl DoremiSettings {
    /// The reference's and the proxy's steps for a trial of `steps` training steps.
    pub fn phase_steps(&self, steps: u64) -> (u64, u64) {
        (
            self.reference_steps.unwrap_or(steps),
            self.proxy_steps.unwrap_or(steps),
        )
    }
}

crate::declare_fields! {
    /// The `params` of an aioli trial.
    pub struct AioliParams {
        method: Method = Method::Stratified, Ty::OneOf(Method::NAMES),
            "how the mixture is set: stratified (uniform), static (proportions), aioli (learned online), dml (static at a fitted mixing law's optimum) or doremi (static at the average weights of a proxy trained against a reference)";
        proportions: Option<BTreeMap<String, f64>> = None, Ty::Mixture,
            "{group: weight}: static's mixture; the prior held for prior_steps; for dml, set by the server from the law";
        prior_steps: u64 = 0, int(0, i64::MAX),
            "hold proportions this many steps first (the restricted setting), then the method (aioli learns from uniform; doremi's reference and proxy do not use the prior)";
        aioli: AioliSettings = AioliSettings::default(), Ty::Group(AioliSettings::FIELDS),
            "aioli's settings";
        dml: DmlSettings = DmlSettings::default(), Ty::Group(DmlSettings::FIELDS),
            "dml's settings";
        doremi: DoremiSettings = DoremiSettings::default(), Ty::Group(DoremiSettings::FIELDS),
            "doremi's settings";
    }
}

/// Mean over groups of the validation perplexity (the objective; `exp` of each group's loss).
pub const EVAL_AVG_PPL: &str = "eval/avg_ppl";
/// Mean over groups of the test perplexity, once at the end (reported, never ranked on).
pub const TEST_AVG_PPL: &str = "test/avg_ppl";
/// Fraction of the steps so far spent in LearnParams segments.
pub const LP_STEP_FRACTION: &str = "mix/lp_step_fraction";

/// What the metrics of a group's mixture weight start with.
pub const MIX_P_PREFIX: &str = "mix/p/";

/// The mixture's weight of `group`.
pub fn mix_p(group: &str) -> String {
    format!("{MIX_P_PREFIX}{group}")
}

/// What the metrics of the normalised interaction matrix A start with.
pub const MIX_A_PREFIX: &str = "mix/A/";
/// What the metrics of the raw estimate Â start with.
pub const MIX_A_RAW_PREFIX: &str = "mix/A_raw/";

/// Entry (row, column) of the normalised interaction matrix A used by the update.
pub fn mix_a(row: &str, col: &str) -> String {
    format!("{MIX_A_PREFIX}{row}/{col}")
}

/// Entry (row, column) of the raw estimate Â: the drop of group `row`'s validation loss per
/// segment that trained on `col`, averaged over the LearnParams passes.
pub fn mix_a_raw(row: &str, col: &str) -> String {
    format!("{MIX_A_RAW_PREFIX}{row}/{col}")
}

/// What the metrics of DoReMi's reference model start with (its own `train/…`, `eval/…`).
pub const DOREMI_REFERENCE: &str = "doremi/reference/";
/// What the metrics of DoReMi's proxy model start with: its `train/…` and `eval/…`, its weights
/// `doremi/proxy/mix/p/<group>` and excess losses `doremi/proxy/mix/excess/<group>`.
pub const DOREMI_PROXY: &str = "doremi/proxy/";

/// DoReMi's excess loss of `group` over the reference (in the proxy's metrics).
pub fn mix_excess(group: &str) -> String {
    format!("mix/excess/{group}")
}

/// One group's test perplexity, once at the end.
pub fn test_ppl(group: &str) -> String {
    format!("test/ppl/{group}")
}

const METRICS: &[MetricDoc] = &[
    MetricDoc { name: EVAL_AVG_PPL, doc: "mean over groups of exp(validation loss) (at every evaluation)" },
    MetricDoc { name: "mix/p/{group}", doc: "the mixture's weight of a group (at step 0 and whenever it changes)" },
    MetricDoc { name: "mix/A/{row}/{column}", doc: "aioli: the interaction matrix the update used (de-mixed, normalised), per round" },
    MetricDoc { name: "mix/A_raw/{row}/{column}", doc: "aioli: the raw estimate Â: drop of row's validation loss per segment on column, per round" },
    MetricDoc { name: LP_STEP_FRACTION, doc: "aioli: fraction of the steps so far spent in LearnParams segments" },
    MetricDoc { name: "doremi/reference/{metric}", doc: "doremi: the reference model's own train/ and eval/ metrics (its steps are its own)" },
    MetricDoc { name: "doremi/proxy/mix/p/{group}", doc: "doremi: the proxy's weight of a group (at every log step); the trial's mix/p is their average" },
    MetricDoc { name: "doremi/proxy/mix/excess/{group}", doc: "doremi: max(L − L_ref, 0) of a group on the step's batch (at every log step)" },
    MetricDoc { name: "doremi/proxy/{metric}", doc: "doremi: the proxy model's own train/ and eval/ metrics" },
    MetricDoc { name: "test/ppl/{group}", doc: "a group's test perplexity, at the end" },
    MetricDoc { name: TEST_AVG_PPL, doc: "mean over groups of the test perplexity, at the end (reported, not ranked on)" },
];

impl WorkloadKind for Aioli {
    const NAME: &'static str = "aioli";
    const ABOUT: &'static str = "trains the decoder on a mixture of data groups set by stratified, static, Aioli's online mixing, a fitted mixing law (dml) or DoReMi, and reports each group's perplexity (Chen et al. 2024)";
    type Params = AioliParams;
    type Analysis = AioliAnalysis;

    fn metrics() -> &'static [MetricDoc] {
        METRICS
    }

    fn histories_needed(board: &crate::dto::Leaderboard) -> Vec<(i64, Vec<String>)> {
        trajectory::histories_needed(board)
    }

    fn analyse(board: &crate::dto::Leaderboard, histories: &super::Histories) -> AioliAnalysis {
        analysis::analyse(board, histories)
    }

    fn cross_field_errors(sections: &Value) -> Vec<CrossFieldError> {
        let mut out = Vec::new();
        let params = sections.get("params").cloned().unwrap_or(Value::Null);
        let Ok(p) = serde_json::from_value::<AioliParams>(params) else {
            return out;
        };
        let at = |field: &str| -> Vec<Seg> {
            ["spec", "params", field]
                .iter()
                .map(|k| Seg::Key(k.to_string()))
                .collect()
        };
        let groups = crate::spec::group_names(sections);
        if let Some(mix) = &p.proportions {
            for g in mix.keys() {
                if !groups.contains(g) {
                    out.push(CrossFieldError {
                        path: at("proportions"),
                        message: format!(
                            "names group `{g}`{}, which the data does not have; its groups are {}",
                            crate::fields::did_you_mean(g, groups.iter().map(String::as_str)),
                            groups.join(", ")
                        ),
                        involved: &["params.proportions", "data.groups", "data.corpus"],
                    });
                }
            }
            let missing: Vec<&str> = groups
                .iter()
                .filter(|g| !mix.contains_key(*g))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                out.push(CrossFieldError {
                    path: at("proportions"),
                    message: format!(
                        "must give every data group a weight (0 is allowed); missing: {}",
                        missing.join(", ")
                    ),
                    involved: &["params.proportions", "data.groups", "data.corpus"],
                });
            }
        }
        match p.method {
            Method::Dml if p.dml.from_experiment.is_none() => out.push(CrossFieldError {
                path: at("method"),
                message: "dml needs params.dml.from_experiment, the experiment whose static trials its mixing law is fitted on".into(),
                involved: &["params.method", "params.dml.from_experiment"],
            }),
            Method::Dml if p.proportions.is_some() => out.push(CrossFieldError {
                path: at("proportions"),
                message: "dml sets the mixture from the fitted law; leave proportions out (or use method: static)".into(),
                involved: &["params.method", "params.proportions"],
            }),
            Method::Dml if p.prior_steps > 0 => out.push(CrossFieldError {
                path: at("prior_steps"),
                message: "dml holds the law's optimum from the first step; a prior does not apply".into(),
                involved: &["params.method", "params.prior_steps"],
            }),
            Method::Static if p.proportions.is_none() => out.push(CrossFieldError {
                path: at("method"),
                message: "static needs params.proportions, the mixture to hold".into(),
                involved: &["params.method", "params.proportions"],
            }),
            _ if p.prior_steps > 0 && p.proportions.is_none() => out.push(CrossFieldError {
                path: at("prior_steps"),
                message: "a prior needs params.proportions, the mixture to hold first".into(),
                involved: &["params.prior_steps", "params.proportions"],
            }),
            _ => {}
        }
        let steps = sections
            .get("training")
            .and_then(|t| t.get("steps"))
            .and_then(Value::as_u64)
            .unwrap_or(crate::spec::TrainingSpec::default().steps);
        if p.method == Method::Aioli {
            let lp = p.aioli.lp_rounds as u64 * p.aioli.lp_steps as u64 * groups.len() as u64;
            if lp >= p.aioli.update_steps {
                out.push(CrossFieldError {
                    path: at("aioli"),
                    message: format!(
                        "a round's LearnParams takes lp_rounds × lp_steps × groups = {lp} steps, which must be fewer than update_steps ({})",
                        p.aioli.update_steps
                    ),
                    involved: &[
                        "params.aioli.lp_rounds",
                        "params.aioli.lp_steps",
                        "params.aioli.update_steps",
                        "data.groups",
                    ],
                });
            } else if p.prior_steps < steps && p.prior_steps + lp >= steps {
                out.push(CrossFieldError {
                    path: at("aioli"),
                    message: format!(
                        "the run ends before Aioli's first update: prior_steps + one round's LearnParams = {} steps, training.steps = {steps}",
                        p.prior_steps + lp
                    ),
                    involved: &[
                        "params.aioli.lp_rounds",
                        "params.aioli.lp_steps",
                        "params.prior_steps",
                        "training.steps",
                        "data.groups",
                    ],
                });
            }
            let f = p.aioli.one_hot_factor;
            let m = groups.len();
            if m >= 2 && f <= 1.0 / m as f64 + 1e-9 {
                out.push(CrossFieldError {
                    path: at("aioli"),
                    message: format!(
                        "one_hot_factor ({f}) must be above 1/groups ({:.4}): at or below it a segment does not favour the group it probes",
                        1.0 / m as f64
                    ),
                    involved: &["params.aioli.one_hot_factor", "data.groups", "data.corpus"],
                });
            }
        }
        if p.method == Method::Doremi {
            let batch = sections
                .get("training")
                .and_then(|t| t.get("batch_size"))
                .and_then(Value::as_u64)
                .unwrap_or(crate::spec::TrainingSpec::default().batch_size as u64);
            if (batch as usize) < groups.len() {
                out.push(CrossFieldError {
                    path: at("method"),
                    message: format!(
                        "doremi compares every group's loss on each stratified batch, so training.batch_size ({batch}) must be at least the number of groups ({})",
                        groups.len()
                    ),
                    involved: &["params.method", "training.batch_size", "data.groups"],
                });
            }
        }
        if p.prior_steps >= steps {
            out.push(CrossFieldError {
                path: at("prior_steps"),
                message: format!("must be fewer than training.steps ({steps})"),
                involved: &["params.prior_steps", "training.steps"],
            });
        }
        if groups.len() < 2 {
            out.push(CrossFieldError {
                path: ["spec", "data"]
                    .iter()
                    .map(|k| Seg::Key(k.to_string()))
                    .collect(),
                message: format!(
                    "mixing needs two or more data groups (got {})",
                    groups.len()
                ),
                involved: &["data.groups", "data.corpus"],
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {name: mix}\nspec:\n  \
        workload: aioli\n  objective: {metric: eval/avg_ppl, goal: minimize}\n  \
        model: {preset: tiny}\n  data: {corpus: \"builtin:mixing\", seed: 0}\n  \
        training: {steps: 1000, batch_size: 32, lr: 1.0e-3, warmup_steps: 50}\n  \
        params:\n    method: aioli\n    proportions: null\n    prior_steps: 0\n    \
        aioli: {update_steps: 250, lp_rounds: 4, lp_steps: 4, eta: 0.2, one_hot_factor: 0.625,\n            \
        ema: EMA, normalize_a: true, diagonal: false}\n    \
        doremi: {step_size: 1.0, smoothing: 1.0e-3}\n  \
        search:\n    space:\n      params.method: {values: [stratified, aioli, doremi]}\n    seeds: 5\n";

    #[test]
    fn the_issues_spec_reads_with_its_nulls() {
        let s = crate::load_spec(&SPEC.replace("EMA", "null")).unwrap();
        assert_eq!(s.trials.len(), 15);
        let cfg = s.trials[9].config().unwrap();
        let p = cfg.params.of::<Aioli>().unwrap();
        assert_eq!(
            (p.method, p.aioli.ema, p.proportions.clone()),
            (Method::Aioli, None, None)
        );
        let cfg = s.trials[14].config().unwrap();
        let p = cfg.params.of::<Aioli>().unwrap();
        assert_eq!(p.method, Method::Doremi);
        assert_eq!((p.doremi.step_size, p.doremi.smoothing), (1.0, 1.0e-3));
        assert_eq!(p.doremi.phase_steps(1000), (1000, 1000));
        let s = crate::load_spec(&SPEC.replace("EMA", "0.1")).unwrap();
        let p = s.trials[0].config().unwrap();
        assert_eq!(p.params.of::<Aioli>().unwrap().aioli.ema, Some(0.1));
        let e = crate::load_spec(&SPEC.replace("EMA", "1.0"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("spec.params.aioli.ema: must be < 1 (got 1)"),
            "{e}"
        );
    }

    #[test]
    fn file_groups_are_named_as_the_worker_names_them() {
        let text = SPEC.replace("EMA", "null").replace(
            "data: {corpus: \"builtin:mixing\", seed: 0}",
            "data: {groups: [\"file:a/my notes.txt\", \"file:b/my notes.txt\", \"file:hard.txt\"]}",
        );
        let s = crate::load_spec(&text).unwrap();
        assert_eq!(
            crate::spec::group_names(&s.trials[0].sections),
            ["my_notes", "my_notes-2", "hard-2"]
        );
    }
}
