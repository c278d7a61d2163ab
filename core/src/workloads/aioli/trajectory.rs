//! What the aioli analysis reads from metric histories rather than from the leaderboard's
//! summaries: how a learned mixture moved over the steps, and the interaction matrices Aioli
//! estimated round by round, each averaged over the seeds of one configuration.
//!
//! A trial learned its mixture when its `mix/p/<group>` changed during the run (`aioli`), or when
//! it reports a DoReMi proxy's weights (`doremi/proxy/mix/p/<group>`: a `doremi` trial's own
//! `mix/p` is the proxy's average, held for the whole run). Static trials have nothing to trace.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::analysis::config_of;
use super::{DOREMI_PROXY, MIX_A_PREFIX, MIX_A_RAW_PREFIX, MIX_P_PREFIX};
use crate::dto::{Leaderboard, LeaderboardRow};
use crate::workloads::{Histories, History};

/// About this many trials' histories are read for one analysis at most (whole configurations, the
/// first in the leaderboard's order): each is a few dozen short series, and a page must stay quick
/// on an experiment of thousands of learned trials.
pub const MAX_TRACED_TRIALS: usize = 256;

/// The mixture at one step, averaged over the seeds that logged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MixtureAt {
    pub step: i64,
    /// Weight by group.
    pub p: BTreeMap<String, f64>,
}

/// One configuration's learned mixture over the steps (mean over its seeds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MixtureTrace {
    /// The configuration, labelled as in `methods`.
    pub config: String,
    pub method: Option<String>,
    /// The metrics traced: `mix/p/` (Aioli's mixture) or `doremi/proxy/mix/p/` (DoReMi's proxy
    /// weights, whose average the trial then trained on).
    pub source: String,
    /// Trials (seeds) whose histories were read.
    pub seeds: usize,
    /// One entry per step at which any seed logged its mixture.
    pub points: Vec<MixtureAt>,
}

/// One configuration's interaction matrix, averaged over every round of every seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InteractionMatrix {
    pub config: String,
    pub method: Option<String>,
    /// `mix/A` (de-mixed and normalised, what the update used) or `mix/A_raw` (the raw Â: the drop
    /// of the row group's validation loss per LearnParams segment on the column group).
    pub metric: String,
    /// Rounds, over all seeds, that logged every entry.
    pub rounds: usize,
    /// Rounds whose every diagonal entry is > 0.
    pub diagonal_positive: usize,
    /// The groups, in row (and column) order.
    pub groups: Vec<String>,
    /// Mean over rounds, by row group then column group.
    pub mean: BTreeMap<String, BTreeMap<String, f64>>,
}

/// The prefix of the mixture a row's trial learned, or `None` for a static trial: a DoReMi
/// proxy's weights when it reports them (a `doremi` trial's own `mix/p` changes at most once, when
/// a prior ends), else `mix/p/` when the trial estimated interaction matrices (an Aioli trial; a
/// `stratified` or `static` trial whose `mix/p` changed only left a prior).
pub fn learned_source(r: &LeaderboardRow) -> Option<String> {
    let proxy = format!("{DOREMI_PROXY}{MIX_P_PREFIX}");
    if r.summaries.keys().any(|k| k.starts_with(&proxy)) {
        return Some(proxy);
    }
    r.summaries
        .keys()
        .any(|k| k.starts_with(MIX_A_PREFIX) || k.starts_with(MIX_A_RAW_PREFIX))
        .then(|| MIX_P_PREFIX.to_string())
}

/// The histories the traces need: for the finished trials that learned their mixture, its
/// mixture's and its interaction matrices' metrics. Whole configurations are taken, in the
/// leaderboard's order, until [`MAX_TRACED_TRIALS`] trials are reached (so no configuration's
/// mean is over a subset of its seeds).
pub fn histories_needed(board: &Leaderboard) -> Vec<(i64, Vec<String>)> {
    type Wanted = Vec<(i64, Vec<String>)>;
    let mut by_config: Vec<(String, Wanted)> = Vec::new();
    for r in board.rows.iter().filter(|r| r.phase.is_result()) {
        let Some(source) = learned_source(r) else {
            continue;
        };
        let names = r
            .summaries
            .keys()
            .filter(|k| {
                k.starts_with(&source)
                    || k.starts_with(MIX_A_PREFIX)
                    || k.starts_with(MIX_A_RAW_PREFIX)
            })
            .cloned()
            .collect();
        let config = config_of(&r.params);
        match by_config.iter_mut().find(|(c, _)| *c == config) {
            Some((_, trials)) => trials.push((r.trial_id, names)),
            None => by_config.push((config, vec![(r.trial_id, names)])),
        }
    }
    let mut out = Vec::new();
    for (_, trials) in by_config {
        if out.len() >= MAX_TRACED_TRIALS {
            break;
        }
        out.extend(trials);
    }
    out
}

/// A learned row with the histories read for it.
struct Traced<'a> {
    row: &'a LeaderboardRow,
    source: String,
    metrics: &'a BTreeMap<String, History>,
}

fn traced<'a>(board: &'a Leaderboard, histories: &'a Histories) -> Vec<Traced<'a>> {
    board
        .rows
        .iter()
        .filter(|r| r.phase.is_result())
        .filter_map(|row| {
            let metrics = histories.get(&row.trial_id).filter(|m| !m.is_empty())?;
            Some(Traced {
                row,
                source: learned_source(row)?,
                metrics,
            })
        })
        .collect()
}

fn method_of(r: &LeaderboardRow) -> Option<String> {
    r.params
        .get("params.method")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string)
}

/// The seed-mean mixture over steps of each configuration that learned one.
pub fn mixture_traces(board: &Leaderboard, histories: &Histories) -> Vec<MixtureTrace> {
    // config → (method, source, seeds, step → group → (sum, n))
    type Sums = BTreeMap<i64, BTreeMap<String, (f64, usize)>>;
    let mut by: BTreeMap<(String, String), (Option<String>, usize, Sums)> = BTreeMap::new();
    for t in traced(board, histories) {
        let e = by
            .entry((config_of(&t.row.params), t.source.clone()))
            .or_insert_with(|| (method_of(t.row), 0, BTreeMap::new()));
        e.1 += 1;
        for (name, points) in t.metrics {
            let Some(group) = name.strip_prefix(t.source.as_str()) else {
                continue;
            };
            for &(step, v) in points.iter().filter(|(_, v)| v.is_finite()) {
                let s =
                    e.2.entry(step)
                        .or_default()
                        .entry(group.to_string())
                        .or_default();
                s.0 += v;
                s.1 += 1;
            }
        }
    }
    by.into_iter()
        .filter(|(_, (_, _, sums))| !sums.is_empty())
        .map(|((config, source), (method, seeds, sums))| MixtureTrace {
            config,
            method,
            source,
            seeds,
            points: sums
                .into_iter()
                .map(|(step, m)| MixtureAt {
                    step,
                    p: m.into_iter().map(|(g, (s, n))| (g, s / n as f64)).collect(),
                })
                .collect(),
        })
        .collect()
}

/// The round-mean interaction matrices (`mix/A` and `mix/A_raw`) of each configuration that
/// logged them. A round is one step at which a trial logged the matrix; only rounds with every
/// entry count.
pub fn interaction_matrices(board: &Leaderboard, histories: &Histories) -> Vec<InteractionMatrix> {
    type Round = BTreeMap<(String, String), f64>;
    // (config, metric) → (method, rounds)
    type Rounds = (Option<String>, Vec<Round>);
    let mut by: BTreeMap<(String, &'static str), Rounds> = BTreeMap::new();
    for t in traced(board, histories) {
        for (prefix, metric) in [(MIX_A_PREFIX, "mix/A"), (MIX_A_RAW_PREFIX, "mix/A_raw")] {
            let mut rounds: BTreeMap<i64, Round> = BTreeMap::new();
            for (name, points) in t.metrics {
                let Some((r, c)) = name
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.split_once('/'))
                else {
                    continue;
                };
                for &(step, v) in points {
                    rounds
                        .entry(step)
                        .or_default()
                        .insert((r.to_string(), c.to_string()), v);
                }
            }
            if rounds.is_empty() {
                continue;
            }
            by.entry((config_of(&t.row.params), metric))
                .or_insert_with(|| (method_of(t.row), Vec::new()))
                .1
                .extend(rounds.into_values());
        }
    }
    by.into_iter()
        .filter_map(|((config, metric), (method, rounds))| {
            let mut groups: Vec<String> = rounds
                .iter()
                .flat_map(|m| m.keys().flat_map(|(r, c)| [r.clone(), c.clone()]))
                .collect();
            groups.sort();
            groups.dedup();
            let full: Vec<Round> = rounds
                .into_iter()
                .filter(|m| {
                    m.len() == groups.len() * groups.len() && m.values().all(|v| v.is_finite())
                })
                .collect();
            if full.is_empty() {
                return None;
            }
            let n = full.len() as f64;
            let mean = groups
                .iter()
                .map(|r| {
                    let row = groups
                        .iter()
                        .map(|c| {
                            let key = (r.clone(), c.clone());
                            (c.clone(), full.iter().map(|m| m[&key]).sum::<f64>() / n)
                        })
                        .collect();
                    (r.clone(), row)
                })
                .collect();
            let diagonal_positive = full
                .iter()
                .filter(|m| groups.iter().all(|g| m[&(g.clone(), g.clone())] > 0.0))
                .count();
            Some(InteractionMatrix {
                config,
                method,
                metric: metric.to_string(),
                rounds: full.len(),
                diagonal_positive,
                groups,
                mean,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::analysis::tests::board_of as board;
    use super::*;
    use crate::dto::Summary;
    use crate::schedule::TrialPhase;
    use serde_json::Value;

    fn summary(min: f64, max: f64) -> Summary {
        Summary {
            count: 2,
            first_step: 0,
            first: Some(min),
            last_step: 10,
            last: Some(max),
            min: Some(min),
            max: Some(max),
        }
    }

    fn row(trial_id: i64, method: &str, seed: u64, keys: &[(&str, f64, f64)]) -> LeaderboardRow {
        LeaderboardRow {
            rank: None,
            trial_id,
            index: trial_id,
            phase: TrialPhase::Succeeded,
            params: BTreeMap::from([
                ("params.method".to_string(), Value::from(method)),
                ("training.seed".to_string(), Value::from(seed)),
            ]),
            objective: None,
            summaries: keys
                .iter()
                .map(|(k, lo, hi)| (k.to_string(), summary(*lo, *hi)))
                .collect(),
        }
    }

    #[test]
    fn only_learned_trials_are_traced_and_seeds_are_averaged_per_step() {
        let b = board(vec![
            row(
                1,
                "aioli",
                0,
                &[("mix/p/a", 0.4, 0.5), ("mix/A/a/a", 1.0, 1.0)],
            ),
            row(
                2,
                "aioli",
                1,
                &[("mix/p/a", 0.3, 0.5), ("mix/A/a/a", 1.0, 1.0)],
            ),
            row(3, "static", 0, &[("mix/p/a", 0.5, 0.5)]),
            // A prior that ended: mix/p changed, nothing learned.
            row(5, "stratified", 0, &[("mix/p/a", 0.8, 0.5)]),
            // DoReMi after a prior: its proxy is what it learned.
            row(
                6,
                "doremi",
                1,
                &[("mix/p/a", 0.2, 0.8), ("doremi/proxy/mix/p/a", 0.1, 0.3)],
            ),
            row(
                4,
                "doremi",
                0,
                &[("mix/p/a", 0.2, 0.2), ("doremi/proxy/mix/p/a", 0.1, 0.3)],
            ),
        ]);
        let wanted = histories_needed(&b);
        // By configuration, in the board's order: aioli's two seeds, then doremi's.
        assert_eq!(
            wanted,
            vec![
                (1, vec!["mix/A/a/a".to_string(), "mix/p/a".to_string()]),
                (2, vec!["mix/A/a/a".to_string(), "mix/p/a".to_string()]),
                (6, vec!["doremi/proxy/mix/p/a".to_string()]),
                (4, vec!["doremi/proxy/mix/p/a".to_string()]),
            ]
        );
        let h: Histories = BTreeMap::from([
            (
                1,
                BTreeMap::from([("mix/p/a".to_string(), vec![(0, 0.5), (10, 0.4)])]),
            ),
            (
                2,
                BTreeMap::from([("mix/p/a".to_string(), vec![(0, 0.5), (10, 0.3)])]),
            ),
            (
                4,
                BTreeMap::from([(
                    "doremi/proxy/mix/p/a".to_string(),
                    vec![(5, 0.1), (10, 0.3)],
                )]),
            ),
        ]);
        let traces = mixture_traces(&b, &h);
        assert_eq!(traces.len(), 2);
        let aioli = traces
            .iter()
            .find(|t| t.method.as_deref() == Some("aioli"))
            .unwrap();
        assert_eq!((aioli.seeds, aioli.source.as_str()), (2, "mix/p/"));
        assert_eq!(aioli.points.len(), 2);
        assert_eq!(aioli.points[0].p["a"], 0.5);
        assert!((aioli.points[1].p["a"] - 0.35).abs() < 1e-12);
        let doremi = traces
            .iter()
            .find(|t| t.method.as_deref() == Some("doremi"))
            .unwrap();
        assert_eq!(doremi.source, "doremi/proxy/mix/p/");
        assert_eq!(doremi.points[1].p["a"], 0.3);
    }

    #[test]
    fn interaction_means_count_full_rounds_and_positive_diagonals() {
        let keys = [
            ("mix/p/a", 0.4, 0.6),
            ("mix/A_raw/a/a", 0.0, 0.0),
            ("mix/A_raw/a/b", 0.0, 0.0),
            ("mix/A_raw/b/a", 0.0, 0.0),
            ("mix/A_raw/b/b", 0.0, 0.0),
        ];
        let b = board(vec![row(1, "aioli", 0, &keys), row(2, "aioli", 1, &keys)]);
        // Trial 1: round 24 all positive; round 48 a negative diagonal; round 72 incomplete.
        // Trial 2: round 24 as trial 1's.
        let t1 = BTreeMap::from([
            (
                "mix/A_raw/a/a".to_string(),
                vec![(24, 1.0), (48, -1.0), (72, 5.0)],
            ),
            ("mix/A_raw/a/b".to_string(), vec![(24, 0.2), (48, 0.4)]),
            ("mix/A_raw/b/a".to_string(), vec![(24, 0.1), (48, 0.3)]),
            ("mix/A_raw/b/b".to_string(), vec![(24, 2.0), (48, 2.0)]),
        ]);
        let t2: BTreeMap<String, History> =
            t1.iter().map(|(k, v)| (k.clone(), vec![v[0]])).collect();
        let h: Histories = BTreeMap::from([(1, t1), (2, t2)]);
        let m = interaction_matrices(&b, &h);
        assert_eq!(m.len(), 1);
        let m = &m[0];
        assert_eq!(m.metric, "mix/A_raw");
        assert_eq!((m.rounds, m.diagonal_positive), (3, 2));
        assert_eq!(m.groups, vec!["a", "b"]);
        // (1 − 1 + 1) / 3 and (0.2 + 0.4 + 0.2) / 3.
        assert!((m.mean["a"]["a"] - 1.0 / 3.0).abs() < 1e-12);
        assert!((m.mean["a"]["b"] - 0.8 / 3.0).abs() < 1e-12);
        assert_eq!(m.mean["b"]["b"], 2.0);
    }
}
