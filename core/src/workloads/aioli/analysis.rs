//! The aioli analysis: average test perplexity per configuration (the method, and whatever else
//! was swept besides the seed), mean ± standard deviation over seeds, and the difference from
//! stratified sampling — the paper's headline comparison (arXiv 2411.05735, Table 1) — and, when the
//! experiment ran enough static mixtures, the mixing law fitted on them ([`mixing_law`]); from
//! the learned trials' histories, the mixture over steps and the interaction matrices
//! ([`trajectory`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::mixing_law::{self, MixingLaw, Point};
use super::trajectory::{self, InteractionMatrix, MixtureTrace};
use super::{mix_p, test_ppl, MIX_P_PREFIX, TEST_AVG_PPL};
use crate::dto::{Leaderboard, LeaderboardRow};
use crate::workloads::Histories;

/// One configuration's result over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MethodSummary {
    /// The swept values but the seed, e.g. `params.method="aioli"`; `base` when nothing else was
    /// swept.
    pub config: String,
    /// `params.method` when it was swept.
    pub method: Option<String>,
    /// Mean over seeds of `test/avg_ppl`.
    pub avg_test_ppl: f64,
    /// Sample standard deviation over seeds; `None` with one seed.
    pub std: Option<f64>,
    /// Seeds (finished trials) that reported `test/avg_ppl`.
    pub seeds: usize,
    /// `avg_test_ppl` minus stratified's (negative: better), when a stratified configuration
    /// ran.
    pub delta_vs_stratified: Option<f64>,
    /// The same, as a percentage of stratified's.
    pub delta_pct_vs_stratified: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AioliAnalysis {
    /// One entry per configuration with a result, best (lowest perplexity) first.
    pub methods: Vec<MethodSummary>,
    /// The mixing law fitted on the static trials (those whose mixture never changed) that train
    /// on every group, when there are at least groups + 2 of them.
    pub mixing_law: Option<MixingLaw>,
    /// Per configuration that learned its mixture (aioli; doremi's proxy), the mixture over
    /// steps, mean over seeds.
    pub mixture_over_steps: Vec<MixtureTrace>,
    /// Per configuration that estimated them (aioli), the interaction matrices `mix/A` and
    /// `mix/A_raw`, mean over rounds and seeds.
    pub interactions: Vec<InteractionMatrix>,
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// Sample standard deviation (n − 1); `None` below two values.
pub fn sample_std(xs: &[f64]) -> Option<f64> {
    (xs.len() >= 2).then(|| {
        let m = mean(xs);
        (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
    })
}

/// The label of a row's configuration: its swept values but the seed.
pub(crate) fn config_of(params: &BTreeMap<String, Value>) -> String {
    let parts: Vec<String> = params
        .iter()
        .filter(|(k, _)| k.as_str() != "training.seed")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if parts.is_empty() {
        "base".into()
    } else {
        parts.join(", ")
    }
}

/// A row's final `test/avg_ppl`, when it reported a finite one.
pub fn test_avg_ppl(r: &LeaderboardRow) -> Option<f64> {
    r.summaries
        .get(TEST_AVG_PPL)
        .and_then(|s| s.last)
        .filter(|x| x.is_finite())
}

pub fn analyse(board: &Leaderboard, histories: &Histories) -> AioliAnalysis {
    let mut by_config: BTreeMap<String, (Option<String>, Vec<f64>)> = BTreeMap::new();
    for r in board.rows.iter().filter(|r| r.phase.is_result()) {
        let Some(ppl) = test_avg_ppl(r) else {
            continue;
        };
        let method = r
            .params
            .get("params.method")
            .and_then(Value::as_str)
            .map(str::to_string);
        let e = by_config
            .entry(config_of(&r.params))
            .or_insert((method, Vec::new()));
        e.1.push(ppl);
    }
    // The stratified reference: the one configuration whose only swept value is the method.
    let stratified = by_config
        .iter()
        .find(|(c, (m, _))| m.as_deref() == Some("stratified") && !c.contains(", "))
        .map(|(_, (_, v))| mean(v));
    let mut methods: Vec<MethodSummary> = by_config
        .into_iter()
        .map(|(config, (method, v))| {
            let avg = mean(&v);
            MethodSummary {
                config,
                method,
                avg_test_ppl: avg,
                std: sample_std(&v),
                seeds: v.len(),
                delta_vs_stratified: stratified.map(|s| avg - s),
                delta_pct_vs_stratified: stratified.map(|s| 100.0 * (avg - s) / s),
            }
        })
        .collect();
    methods.sort_by(|a, b| a.avg_test_ppl.total_cmp(&b.avg_test_ppl));
    AioliAnalysis {
        methods,
        mixing_law: fit_law(board),
        mixture_over_steps: trajectory::mixture_traces(board, histories),
        interactions: trajectory::interaction_matrices(board, histories),
    }
}

/// The groups the rows report a mixture for, in alphabetical order (summaries are keyed by
/// metric name), so the law's pinned column is the alphabetically last group.
fn groups_of(rows: &[LeaderboardRow]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in rows {
        for k in r.summaries.keys() {
            if let Some(g) = k.strip_prefix(MIX_P_PREFIX) {
                if !out.iter().any(|x| x == g) {
                    out.push(g.to_string());
                }
            }
        }
    }
    out.sort();
    out
}

/// A row's static mixture and per-group test losses, when its mixture never changed, gave every
/// group some weight, and every group has a finite test perplexity. A group of weight 0 is never
/// trained on: its loss is not on the law's curve of diminishing returns but far above it (bytes
/// the model never saw get almost no probability: ln ppl ≈ 15 against ≈ 0.7 for any weight
/// ≥ 0.2 on `builtin:mixing`), and in a least-squares fit such points outweigh all the others.
fn static_point(r: &LeaderboardRow, groups: &[String]) -> Option<Point> {
    let mut p = Vec::with_capacity(groups.len());
    let mut loss = Vec::with_capacity(groups.len());
    for g in groups {
        let s = r.summaries.get(&mix_p(g))?;
        let (lo, hi) = (s.min?, s.max?);
        if lo != hi || lo <= 0.0 {
            return None;
        }
        p.push(lo);
        let ppl = r.summaries.get(&test_ppl(g))?.last?;
        let l = ppl.ln();
        if !l.is_finite() {
            return None;
        }
        loss.push(l);
    }
    Some(Point { p, loss })
}

/// The board's groups and the points a law is fitted on: its finished static trials that train
/// on every group.
pub fn law_points(board: &Leaderboard) -> (Vec<String>, Vec<Point>) {
    let groups = groups_of(&board.rows);
    let points = board
        .rows
        .iter()
        .filter(|r| r.phase.is_result())
        .filter_map(|r| static_point(r, &groups))
        .collect();
    (groups, points)
}

fn fit_law(board: &Leaderboard) -> Option<MixingLaw> {
    let (groups, points) = law_points(board);
    mixing_law::fit(&groups, &points)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dto::{LeaderboardRow, Summary};
    use crate::schedule::TrialPhase;

    fn row(method: &str, seed: u64, ppl: Option<f64>, phase: TrialPhase) -> LeaderboardRow {
        let mut summaries = BTreeMap::new();
        if let Some(p) = ppl {
            summaries.insert(
                TEST_AVG_PPL.to_string(),
                Summary {
                    count: 1,
                    first_step: 100,
                    first: Some(p),
                    last_step: 100,
                    last: Some(p),
                    min: Some(p),
                    max: Some(p),
                },
            );
        }
        LeaderboardRow {
            rank: None,
            trial_id: 0,
            index: 0,
            phase,
            params: BTreeMap::from([
                ("params.method".to_string(), Value::from(method)),
                ("training.seed".to_string(), Value::from(seed)),
            ]),
            objective: None,
            summaries,
        }
    }

    /// A finished aioli experiment's board of `rows`.
    pub(crate) fn board_of(rows: Vec<LeaderboardRow>) -> Leaderboard {
        Leaderboard {
            experiment: crate::dto::ExperimentDto {
                id: 1,
                name: "mix".into(),
                workload: "aioli".into(),
                phase: crate::schedule::ExperimentPhase::Succeeded,
                objective_metric: super::super::EVAL_AVG_PPL.into(),
                goal: crate::spec::Goal::Minimize,
                counts: crate::schedule::Counts::default(),
                message: None,
                created_at: String::new(),
                finished_at: None,
            },
            total: rows.len(),
            rows,
        }
    }

    #[test]
    fn mean_std_and_delta_by_hand() {
        let rows = vec![
            row("stratified", 0, Some(10.0), TrialPhase::Succeeded),
            row("stratified", 1, Some(12.0), TrialPhase::Succeeded),
            row("aioli", 0, Some(9.0), TrialPhase::Succeeded),
            row("aioli", 1, Some(10.0), TrialPhase::Succeeded),
            row("aioli", 2, None, TrialPhase::Failed),
        ];
        let a = analyse(&board_of(rows), &Histories::new());
        assert_eq!(a.methods.len(), 2);
        let best = &a.methods[0];
        assert_eq!(best.method.as_deref(), Some("aioli"));
        assert_eq!((best.avg_test_ppl, best.seeds), (9.5, 2));
        assert!((best.std.unwrap() - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(best.delta_vs_stratified, Some(-1.5));
        assert!((best.delta_pct_vs_stratified.unwrap() + 100.0 * 1.5 / 11.0).abs() < 1e-12);
        assert_eq!(a.methods[1].delta_vs_stratified, Some(0.0));
    }
}
