//! What every workload's reproduction report shares: the experiments it reads (one per part of
//! the paper, the newest of each spec's name), how long they ran, its claims (each checked from the
//! runs' numbers with the threshold its issue states) and their Markdown.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use serde::Serialize;

use orrery_api::Store;
use orrery_core::dto::{ExperimentDto, Leaderboard};

/// One experiment of a reproduction.
pub struct Part {
    pub key: &'static str,
    pub spec: &'static str,
    /// `metadata.name` in the spec: the report reads the newest experiment of that name.
    pub experiment: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExperimentRun {
    pub spec: String,
    pub experiment_id: i64,
    pub name: String,
    pub phase: String,
    pub trials: u32,
    pub succeeded: u32,
    pub diverged: u32,
    pub failed: u32,
    /// From registration to the end of the last trial.
    pub seconds: Option<f64>,
}

fn seconds_between(from: &str, to: Option<&str>) -> Option<f64> {
    let from = chrono::DateTime::parse_from_rfc3339(from).ok()?;
    let to = chrono::DateTime::parse_from_rfc3339(to?).ok()?;
    Some((to - from).num_milliseconds() as f64 / 1000.0)
}

pub fn experiment_run(part: &Part, e: &ExperimentDto) -> ExperimentRun {
    ExperimentRun {
        spec: part.spec.into(),
        experiment_id: e.id,
        name: e.name.clone(),
        phase: e.phase.to_string(),
        trials: e.counts.total,
        succeeded: e.counts.succeeded,
        diverged: e.counts.diverged,
        failed: e.counts.failed,
        seconds: seconds_between(&e.created_at, e.finished_at.as_deref()),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Claim {
    pub id: &'static str,
    pub part: &'static str,
    pub claim: String,
    /// `None`: the experiment it needs has not been run.
    pub held: Option<bool>,
    pub detail: String,
}

pub fn not_run(id: &'static str, part: &'static str, claim: String) -> Claim {
    Claim {
        id,
        part,
        claim,
        held: None,
        detail: format!("needs the {part} experiment run to its end"),
    }
}

/// The newest experiment of each part's name, as its leaderboard (parts never run are absent).
pub async fn boards(
    store: &Store,
    parts: &[Part],
) -> anyhow::Result<BTreeMap<&'static str, Leaderboard>> {
    let mut out = BTreeMap::new();
    for part in parts {
        let exp = match store.find_experiment(part.experiment).await {
            Ok(e) => e,
            Err(orrery_api::StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        out.insert(part.key, store.leaderboard(exp.id).await?);
    }
    Ok(out)
}

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map(f).unwrap_or_else(|| "–".into())
}

/// The "Runs" table: each part's experiment, its trials and its minutes.
pub fn runs_markdown(
    m: &mut String,
    parts: &[Part],
    experiments: &BTreeMap<&'static str, ExperimentRun>,
) {
    let total: f64 = experiments.values().filter_map(|e| e.seconds).sum();
    let _ = writeln!(m, "## Runs\n");
    let _ = writeln!(
        m,
        "| part | spec | experiment | phase | trials | succeeded | diverged | failed | minutes |\n|---|---|---|---|---|---|---|---|---|"
    );
    for p in parts {
        match experiments.get(p.key) {
            Some(e) => {
                let _ = writeln!(
                    m,
                    "| {} | `{}` | {} \"{}\" | {} | {} | {} | {} | {} | {} |",
                    p.key,
                    e.spec,
                    e.experiment_id,
                    e.name,
                    e.phase,
                    e.trials,
                    e.succeeded,
                    e.diverged,
                    e.failed,
                    opt(e.seconds, |s| format!("{:.1}", s / 60.0))
                );
            }
            None => {
                let _ = writeln!(m, "| {} | `{}` | not run | | | | | | |", p.key, p.spec);
            }
        }
    }
    let _ = writeln!(
        m,
        "\nTotal: {:.1} minutes of experiment wall time.\n",
        total / 60.0
    );
}

/// The "Claims" list: each with its verdict, part and detail.
pub fn claims_markdown(m: &mut String, claims: &[Claim]) {
    let _ = writeln!(m, "## Claims\n");
    for c in claims {
        let verdict = match c.held {
            Some(true) => "**held**",
            Some(false) => "**not held**",
            None => "**not run**",
        };
        let _ = writeln!(m, "- {verdict} ({}): {}. {}.", c.part, c.claim, c.detail);
    }
}

/// The wall-clock claim: every part ran to its end within `budget` seconds in all.
pub fn budget_claim(
    parts: &[Part],
    experiments: &BTreeMap<&'static str, ExperimentRun>,
    budget: f64,
) -> Claim {
    let all = parts
        .iter()
        .all(|p| experiments.get(p.key).is_some_and(|e| e.seconds.is_some()));
    let total: f64 = experiments.values().filter_map(|e| e.seconds).sum();
    Claim {
        id: "cpu-budget",
        part: "all",
        claim: format!(
            "The whole CPU reproduction takes ≤ {:.0} minutes on 2 cores",
            budget / 60.0
        ),
        held: all.then_some(total <= budget),
        detail: if all {
            format!(
                "{:.1} min: {}",
                total / 60.0,
                parts
                    .iter()
                    .map(|p| format!(
                        "{} {:.1} min",
                        p.key,
                        experiments[p.key].seconds.unwrap_or(0.0) / 60.0
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            "not every experiment has run to the end".into()
        },
    }
}

/// When a report is generated, as its header says it.
pub fn generated_at() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The machine a report is written on, in words: its CPU model and how many CPUs it has
/// (`/proc/cpuinfo`; "unknown CPU" elsewhere). libtorch picks its kernels by CPU, so runs of the
/// same spec and seed on two CPU models can differ in the last digits, and then compound over a
/// run: compare a reproduction's numbers within one machine.
pub fn host() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cpus} CPU(s)")
}

/// Writes `{stem}.json` (the report, pretty) and `{stem}.md` into `out`, which must exist;
/// returns the two paths, Markdown first.
pub fn write_report(
    out: &Path,
    stem: &str,
    report: &impl Serialize,
    markdown: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let json = out.join(format!("{stem}.json"));
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("cannot write {}", json.display()))?;
    let md = out.join(format!("{stem}.md"));
    std::fs::write(&md, markdown).with_context(|| format!("cannot write {}", md.display()))?;
    Ok(vec![md, json])
}
