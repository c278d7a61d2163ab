//! The report's numbers, computed from the runs: per-configuration results over seeds, the grid,
//! the transfer and unrelated entries of the raw interaction matrix.

use std::collections::BTreeMap;

use serde::Serialize;

use orrery_core::dto::{Leaderboard, LeaderboardRow};
use orrery_core::workloads::aioli::{
    self as a,
    analysis::{sample_std, test_avg_ppl},
    trajectory::InteractionMatrix,
};

use super::{TRANSFER, UNRELATED};

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

/// The raw interaction estimate Â over every round of every trial of one configuration.
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

/// The report's view of the analysis's round-mean Â: the transfer and unrelated pairs' means (a
/// mean of round means is the mean over rounds of the pairs' average, every round having every
/// entry). `None` when a group of `builtin:mixing` is missing.
pub fn raw_rounds(m: &InteractionMatrix) -> Option<RawRounds> {
    let entry = |(r, c): &(&str, &str)| m.mean.get(*r)?.get(*c).copied();
    let mean_of = |pairs: &[(&str, &str)]| -> Option<f64> {
        Some(pairs.iter().map(entry).sum::<Option<f64>>()? / pairs.len() as f64)
    };
    Some(RawRounds {
        rounds: m.rounds,
        diagonal_positive: m.diagonal_positive,
        transfer_mean: mean_of(&TRANSFER)?,
        unrelated_mean: mean_of(&UNRELATED)?,
        mean: m.mean.clone(),
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
    use super::super::GROUPS;
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
    fn raw_rounds_average_the_transfer_and_unrelated_pairs() {
        // hard↔shared 0.5 and 0.3; easy↔others 0.1 everywhere.
        let mean = GROUPS
            .iter()
            .map(|r| {
                let row = GROUPS
                    .iter()
                    .map(|c| {
                        let v = match (*r, *c) {
                            (r, c) if r == c => 1.0,
                            ("hard", "shared") => 0.5,
                            ("shared", "hard") => 0.3,
                            _ => 0.1,
                        };
                        (c.to_string(), v)
                    })
                    .collect();
                (r.to_string(), row)
            })
            .collect();
        let m = InteractionMatrix {
            config: "base".into(),
            method: None,
            metric: "mix/A_raw".into(),
            rounds: 4,
            diagonal_positive: 3,
            groups: GROUPS.map(String::from).to_vec(),
            mean,
        };
        let a = raw_rounds(&m).unwrap();
        assert_eq!((a.rounds, a.diagonal_positive), (4, 3));
        assert!((a.transfer_mean - 0.4).abs() < 1e-12);
        assert!((a.unrelated_mean - 0.1).abs() < 1e-12);
    }
}
