//! The report's numbers, computed from the runs: per-configuration results over seeds, the grid,
//! the mixture over steps and the raw interaction matrix per round.

use std::collections::BTreeMap;

use serde::Serialize;

use orrery_core::dto::{Leaderboard, LeaderboardRow};
use orrery_core::workloads::aioli::{
    self as a,
    analysis::{sample_std, test_avg_ppl},
};

use super::load::TrialHistories;
use super::{GROUPS, TRANSFER, UNRELATED};

/// One configuration's average test perplexity over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stat {
    pub avg_test_ppl: f64,
    /// Sample standard deviation over seeds (`None` with one seed).
    pub std: Option<f64>,
    pub seeds: usize,
    pub per_seed: Vec<f64>,
}

impl Stat {
    /// The standard deviation to 4 decimals, `–` with one seed.
    pub fn std_text(&self) -> String {
        self.std
            .map(|x| format!("{x:.4}"))
            .unwrap_or_else(|| "–".into())
    }

    pub fn of(values: Vec<f64>) -> Option<Stat> {
        (!values.is_empty()).then(|| Stat {
            avg_test_ppl: values.iter().sum::<f64>() / values.len() as f64,
            std: sample_std(&values),
            seeds: values.len(),
            per_seed: values,
        })
    }
}

/// The pooled standard deviation of two samples, √(((n₁−1)s₁² + (n₂−1)s₂²)/(n₁+n₂−2)).
pub fn pooled_std(x: &Stat, y: &Stat) -> Option<f64> {
    let dof = x.seeds + y.seeds;
    if dof <= 2 {
        return None;
    }
    let ss = |s: &Stat| (s.seeds as f64 - 1.0) * s.std.unwrap_or(0.0).powi(2);
    Some(((ss(x) + ss(y)) / (dof - 2) as f64).sqrt())
}

fn value_str(r: &LeaderboardRow, key: &str) -> Option<String> {
    r.params.get(key).map(|v| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Results per value of `params.method` (rows without it: `method` as given).
pub fn by_method(board: &Leaderboard, method: &str) -> BTreeMap<String, Stat> {
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in board.rows.iter().filter(|r| r.phase.is_result()) {
        if let Some(p) = test_avg_ppl(r) {
            let m = value_str(r, "params.method").unwrap_or_else(|| method.to_string());
            out.entry(m).or_default().push(p);
        }
    }
    out.into_iter()
        .filter_map(|(k, v)| Some((k, Stat::of(v)?)))
        .collect()
}

/// One static mixture of the grid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GridPoint {
    pub proportions: BTreeMap<String, f64>,
    #[serde(flatten)]
    pub stat: Stat,
}

/// The grid's mixtures, best (lowest average test perplexity) first.
pub fn grid(board: &Leaderboard) -> Vec<GridPoint> {
    let mut by: BTreeMap<String, (BTreeMap<String, f64>, Vec<f64>)> = BTreeMap::new();
    for r in board.rows.iter().filter(|r| r.phase.is_result()) {
        let (Some(p), Some(mix)) = (test_avg_ppl(r), r.params.get("params.proportions")) else {
            continue;
        };
        let Ok(m) = serde_json::from_value::<BTreeMap<String, f64>>(mix.clone()) else {
            continue;
        };
        by.entry(mix.to_string())
            .or_insert((m, Vec::new()))
            .1
            .push(p);
    }
    let mut out: Vec<GridPoint> = by
        .into_values()
        .filter_map(|(proportions, v)| {
            Some(GridPoint {
                proportions,
                stat: Stat::of(v)?,
            })
        })
        .collect();
    out.sort_by(|x, y| x.stat.avg_test_ppl.total_cmp(&y.stat.avg_test_ppl));
    out
}

/// The mixture at one step, averaged over the seeds that logged it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MixtureAt {
    pub step: i64,
    pub p: BTreeMap<String, f64>,
}

/// The seed-mean mixture at every step where one was logged, for the trials `keep` selects.
pub fn mixture_over_steps(
    trials: &[TrialHistories],
    keep: impl Fn(&TrialHistories) -> bool,
) -> Vec<MixtureAt> {
    let mut sums: BTreeMap<i64, BTreeMap<String, (f64, usize)>> = BTreeMap::new();
    for t in trials.iter().filter(|t| keep(t)) {
        for g in GROUPS {
            for (step, v) in t.metrics.get(&a::mix_p(g)).into_iter().flatten() {
                let e = sums
                    .entry(*step)
                    .or_default()
                    .entry(g.to_string())
                    .or_default();
                e.0 += v;
                e.1 += 1;
            }
        }
    }
    sums.into_iter()
        .map(|(step, m)| MixtureAt {
            step,
            p: m.into_iter().map(|(g, (s, n))| (g, s / n as f64)).collect(),
        })
        .collect()
}

/// The raw interaction estimate Â over every round of every trial.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RawRounds {
    /// Rounds (over all trials) with every entry logged.
    pub rounds: usize,
    /// Rounds whose every diagonal entry Â_ii is > 0.
    pub diagonal_positive: usize,
    /// Mean over rounds of the entries between the groups with planted transfer (hard, shared).
    pub transfer_mean: f64,
    /// Mean over rounds of the entries between `easy` and each of the others.
    pub unrelated_mean: f64,
    /// Mean over rounds of each entry, by row then column.
    pub mean: BTreeMap<String, BTreeMap<String, f64>>,
}

pub fn raw_rounds(trials: &[TrialHistories]) -> Option<RawRounds> {
    let mut rounds: Vec<BTreeMap<(&str, &str), f64>> = Vec::new();
    for t in trials {
        let mut by_step: BTreeMap<i64, BTreeMap<(&str, &str), f64>> = BTreeMap::new();
        for r in GROUPS {
            for c in GROUPS {
                for (step, v) in t.metrics.get(&a::mix_a_raw(r, c)).into_iter().flatten() {
                    by_step.entry(*step).or_default().insert((r, c), *v);
                }
            }
        }
        rounds.extend(
            by_step
                .into_values()
                .filter(|m| m.len() == GROUPS.len() * GROUPS.len()),
        );
    }
    if rounds.is_empty() {
        return None;
    }
    let n = rounds.len() as f64;
    let mean_of = |pairs: &[(&str, &str)]| {
        rounds
            .iter()
            .map(|m| pairs.iter().map(|k| m[k]).sum::<f64>() / pairs.len() as f64)
            .sum::<f64>()
            / n
    };
    let mean = GROUPS
        .iter()
        .map(|r| {
            let row = GROUPS
                .iter()
                .map(|c| (c.to_string(), mean_of(&[(r, c)])))
                .collect();
            (r.to_string(), row)
        })
        .collect();
    Some(RawRounds {
        rounds: rounds.len(),
        diagonal_positive: rounds
            .iter()
            .filter(|m| GROUPS.iter().all(|g| m[&(*g, *g)] > 0.0))
            .count(),
        transfer_mean: mean_of(&TRANSFER),
        unrelated_mean: mean_of(&UNRELATED),
        mean,
    })
}

/// Mean over the board's finished trials that report it (Aioli's) of the final
/// `mix/lp_step_fraction`.
pub fn lp_step_fraction(board: &Leaderboard) -> Option<f64> {
    let v: Vec<f64> = board
        .rows
        .iter()
        .filter(|r| r.phase.is_result())
        .filter_map(|r| r.summaries.get(a::LP_STEP_FRACTION)?.last)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_std_by_hand() {
        let x = Stat::of(vec![1.0, 3.0]).unwrap(); // s² = 2
        let y = Stat::of(vec![2.0, 2.0, 5.0]).unwrap(); // s² = 3
                                                        // ((1·2) + (2·3)) / 3 = 8/3.
        assert!((pooled_std(&x, &y).unwrap() - (8.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(
            pooled_std(&Stat::of(vec![1.0]).unwrap(), &Stat::of(vec![2.0]).unwrap()),
            None
        );
    }

    #[test]
    fn raw_rounds_count_the_diagonal_and_the_transfer() {
        let mut metrics = BTreeMap::new();
        for r in GROUPS {
            for c in GROUPS {
                // Round at step 24: all positive, hard↔shared 0.5, easy↔others 0.1; round at
                // step 224: easy's diagonal negative.
                let v1 = if r == c {
                    1.0
                } else if r != "easy" && c != "easy" {
                    0.5
                } else {
                    0.1
                };
                let v2 = if r == "easy" && c == "easy" { -0.2 } else { v1 };
                metrics.insert(a::mix_a_raw(r, c), vec![(24, v1), (224, v2)]);
            }
        }
        let t = TrialHistories {
            params: BTreeMap::new(),
            metrics,
        };
        let a = raw_rounds(&[t]).unwrap();
        assert_eq!((a.rounds, a.diagonal_positive), (2, 1));
        assert!((a.transfer_mean - 0.5).abs() < 1e-12);
        assert!((a.unrelated_mean - 0.1).abs() < 1e-12);
        assert!((a.mean["easy"]["easy"] - 0.4).abs() < 1e-12);
    }
}
