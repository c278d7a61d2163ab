//! The Aioli reproduction report (Chen et al., arXiv 2411.05735; the method:
//! `docs/workloads/aioli.md`): `orrery report aioli` reads the newest run of each CPU spec in
//! `experiments/aioli/` from the database ([`load`]), computes the figures from those runs
//! ([`figures`]), checks each claim with the threshold the issue states ([`claims`]) and writes
//! `aioli.md` ([`tables`]) and `aioli.json`.

pub mod claims;
pub mod figures;
pub mod load;
pub mod tables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use orrery_api::Store;
use orrery_core::workloads::aioli::trajectory::{self, MixtureAt, MixtureTrace};
use orrery_core::workloads::aioli::{MixingLaw, DOREMI_PROXY};

use crate::workloads::reproduction::{self, experiment_run, Claim, ExperimentRun, Part};
use figures::{GridPoint, RawRounds, Stat};
use load::Inputs;

/// The command written at the top of the report.
pub const COMMAND: &str = "scripts/reproduce-aioli.sh";

/// The groups of `builtin:mixing`, and which pairs of them share structure (the corpus's design:
/// `shared` follows `hard`'s transitions after half its words; `easy` shares nothing).
pub const GROUPS: [&str; 3] = ["easy", "hard", "shared"];
pub const TRANSFER: [(&str, &str); 2] = [("hard", "shared"), ("shared", "hard")];
pub const UNRELATED: [(&str, &str); 4] = [
    ("easy", "hard"),
    ("hard", "easy"),
    ("easy", "shared"),
    ("shared", "easy"),
];

pub const PARTS: [Part; 5] = [
    Part {
        key: "grid",
        spec: "experiments/aioli/grid-cpu.yaml",
        experiment: "aioli-grid-cpu",
    },
    Part {
        key: "unrestricted",
        spec: "experiments/aioli/unrestricted-cpu.yaml",
        experiment: "aioli-unrestricted-cpu",
    },
    Part {
        key: "restricted",
        spec: "experiments/aioli/restricted-cpu.yaml",
        experiment: "aioli-restricted-cpu",
    },
    Part {
        key: "one-hot",
        spec: "experiments/aioli/one-hot-cpu.yaml",
        experiment: "aioli-one-hot-cpu",
    },
    Part {
        key: "dml",
        spec: "experiments/aioli/dml-cpu.yaml",
        experiment: "aioli-dml-cpu",
    },
];

/// The wall-clock budget for the whole CPU reproduction.
pub const BUDGET_SECONDS: f64 = 45.0 * 60.0;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub command: &'static str,
    pub generated_at: String,
    /// The machine the report was written on (`reproduction::host`); the script runs the
    /// experiments on it too.
    pub host: String,
    pub experiments: BTreeMap<&'static str, ExperimentRun>,
    pub total_seconds: f64,
    pub claims: Vec<Claim>,
    /// Average test perplexity over seeds per method: `stratified`, `aioli` (unrestricted),
    /// `restricted-static`, `restricted-aioli`, `one-hot-aioli`, `dml`.
    pub methods: BTreeMap<String, Stat>,
    /// The grid's best static mixture.
    pub grid_best: Option<GridPoint>,
    /// Every mixture of the grid, best first.
    pub grid: Vec<GridPoint>,
    pub mixing_law: Option<MixingLaw>,
    /// The seed-mean mixture over steps, by part and method: `unrestricted-aioli`,
    /// `restricted-aioli`, `one-hot-aioli`, and DoReMi's proxy weights `unrestricted-doremi-proxy`.
    pub mixture_over_steps: BTreeMap<String, Vec<MixtureAt>>,
    /// The prior of the restricted part (what its static trials hold).
    pub restricted_prior: Option<BTreeMap<String, f64>>,
    /// The raw interaction estimate of the one-hot part, per round.
    pub one_hot_a_raw: Option<RawRounds>,
    /// The dml trials' mixture (the law's optimum when they were registered).
    pub dml_mixture: Option<BTreeMap<String, f64>>,
    /// The doremi trials' mixtures (each its proxy's average weights), mean over seeds.
    pub doremi_mixture: Option<BTreeMap<String, f64>>,
    /// Mean fraction of the steps spent in LearnParams, per part with Aioli trials.
    pub lp_step_fraction: BTreeMap<&'static str, f64>,
}

pub fn compute(inputs: &Inputs, generated_at: String, host: String) -> Report {
    let finished = |key: &str| {
        inputs
            .boards
            .get(key)
            .filter(|b| b.experiment.phase.is_terminal())
    };
    let experiments: BTreeMap<&'static str, ExperimentRun> = PARTS
        .iter()
        .filter_map(|p| {
            Some((
                p.key,
                experiment_run(p, &inputs.boards.get(p.key)?.experiment),
            ))
        })
        .collect();
    let total_seconds = experiments.values().filter_map(|e| e.seconds).sum();
    let mut methods = BTreeMap::new();
    if let Some(b) = finished("unrestricted") {
        methods.extend(figures::by_method(b, "stratified"));
    }
    if let Some(b) = finished("restricted") {
        for (m, s) in figures::by_method(b, "static") {
            methods.insert(format!("restricted-{m}"), s);
        }
    }
    if let Some(b) = finished("one-hot") {
        for (m, s) in figures::by_method(b, "aioli") {
            methods.insert(format!("one-hot-{m}"), s);
        }
    }
    if let Some(b) = finished("dml") {
        methods.extend(figures::by_method(b, "dml"));
    }
    let grid = finished("grid").map(figures::grid).unwrap_or_default();
    let analysis = |key: &str| finished(key).and(inputs.analyses.get(key));
    let mixing_law = analysis("grid").and_then(|a| a.mixing_law.clone());
    let mut mixture_over_steps = BTreeMap::new();
    for part in ["unrestricted", "restricted", "one-hot"] {
        for t in analysis(part).iter().flat_map(|a| &a.mixture_over_steps) {
            mixture_over_steps.insert(trace_key(part, t), t.points.clone());
        }
    }
    let mixture_of = |part: &str| -> Option<BTreeMap<String, f64>> {
        let b = finished(part)?;
        let r = b
            .rows
            .iter()
            .find(|r| r.phase.is_result() && trajectory::learned_source(r).is_none())?;
        GROUPS
            .iter()
            .map(|g| {
                Some((
                    g.to_string(),
                    r.summaries
                        .get(&orrery_core::workloads::aioli::mix_p(g))?
                        .last?,
                ))
            })
            .collect()
    };
    // The seed-mean static mixture of a part's trials of one method.
    let mean_mixture = |part: &str, method: &str| -> Option<BTreeMap<String, f64>> {
        let rows: Vec<_> = finished(part)?
            .rows
            .iter()
            .filter(|r| r.phase.is_result())
            .filter(|r| r.params.get("params.method").and_then(|m| m.as_str()) == Some(method))
            .collect();
        let n = rows.len() as f64;
        GROUPS
            .iter()
            .map(|g| {
                let sum = rows
                    .iter()
                    .map(|r| {
                        r.summaries
                            .get(&orrery_core::workloads::aioli::mix_p(g))?
                            .last
                    })
                    .sum::<Option<f64>>()?;
                Some((g.to_string(), sum / n))
            })
            .collect::<Option<_>>()
            .filter(|_| n > 0.0)
    };
    let one_hot_a_raw = analysis("one-hot")
        .and_then(|a| a.interactions.iter().find(|m| m.metric == "mix/A_raw"))
        .and_then(figures::raw_rounds);
    let lp_step_fraction = ["unrestricted", "restricted", "one-hot"]
        .into_iter()
        .filter_map(|p| Some((p, figures::lp_step_fraction(finished(p)?)?)))
        .collect();
    let mut report = Report {
        command: COMMAND,
        generated_at,
        host,
        experiments,
        total_seconds,
        claims: Vec::new(),
        methods,
        grid_best: grid.first().cloned(),
        grid,
        mixing_law,
        mixture_over_steps,
        restricted_prior: mixture_of("restricted"),
        one_hot_a_raw,
        dml_mixture: mixture_of("dml"),
        doremi_mixture: mean_mixture("unrestricted", "doremi"),
        lp_step_fraction,
    };
    report.claims = claims::claims(&report);
    report
}

/// How the report names a part's learned mixture (in `mixture_over_steps` and the plot's file):
/// `<part>-<method>`, `-proxy` added for DoReMi's proxy weights. The reproduction's specs sweep
/// nothing but the method, so a part has one trace per method.
fn trace_key(part: &str, t: &MixtureTrace) -> String {
    let proxy = t.source.starts_with(DOREMI_PROXY);
    let method = t
        .method
        .as_deref()
        .unwrap_or(if proxy { "doremi" } else { "aioli" });
    format!("{part}-{method}{}", if proxy { "-proxy" } else { "" })
}

/// Writes `aioli.md` and `aioli.json` into `out`; returns the paths written.
pub async fn write(store: &Store, out: &Path) -> Result<Vec<PathBuf>> {
    let inputs = load::load(store).await?;
    let report = compute(&inputs, reproduction::generated_at(), reproduction::host());
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let plots = plots(&inputs, out)?;
    let md = tables::markdown(&report, &plots);
    let mut written = reproduction::write_report(out, "aioli", &report, &md)?;
    written.extend(plots.into_iter().map(|(f, _)| out.join(f)));
    Ok(written)
}

/// Each learned mixture over steps of the parts that learn one, as `orrery plot` draws it; returns
/// (file name, caption) of each one drawn.
fn plots(inputs: &Inputs, out: &Path) -> Result<Vec<(String, String)>> {
    let mut drawn = Vec::new();
    for part in ["unrestricted", "restricted", "one-hot"] {
        let (Some(board), Some(analysis)) = (inputs.boards.get(part), inputs.analyses.get(part))
        else {
            continue;
        };
        let charts = crate::workloads::aioli::charts::mixtures(&board.experiment.name, analysis);
        for ((_, chart), trace) in charts.into_iter().zip(&analysis.mixture_over_steps) {
            let key = trace_key(part, trace);
            let file = format!("aioli-mixture-{key}.png");
            crate::plot::draw(&chart, &out.join(&file))?;
            drawn.push((
                file,
                format!(
                    "{key}: {} over steps (mean over {} seeds)",
                    trace.source.trim_end_matches('/'),
                    trace.seeds
                ),
            ));
        }
    }
    Ok(drawn)
}
