//! Server-side views of a leaderboard: filter by phase and parameter values, sort by the objective,
//! a metric summary or a parameter, and paginate. One function, so the API and any future page
//! read the same rules. Ranks stay those of the full ranking by the objective: sorting a view by
//! another column does not renumber the trials.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::dto::{Leaderboard, LeaderboardRow};
use crate::schedule::TrialPhase;

/// Most rows one page may hold.
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// `objective` (default), `index`, `metric:NAME` (its last value) or `param:PATH`.
    pub sort: Option<String>,
    /// `asc` or `desc`; default: the objective's goal for `objective`, else `asc`.
    pub order: Option<String>,
    /// Keep only trials in this phase.
    pub phase: Option<String>,
    /// Keep only trials whose parameter PATH equals the value, from `param.PATH=VALUE` pairs.
    pub params: BTreeMap<String, String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    /// Bounds on a metric's last value, from `min.KEY=X` and `max.KEY=X` pairs (KEY `objective`
    /// or `metric:NAME`), by KEY.
    pub ranges: BTreeMap<String, (Option<f64>, Option<f64>)>,
}

impl Query {
    /// From URL query pairs: `sort`, `order`, `phase`, `limit`, `offset` and `param.PATH=VALUE`.
    /// Unknown keys are an error, so a typo does not silently return everything.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Query, String> {
        let mut q = Query::default();
        // Bounded like a signed 64-bit integer, as the OpenAPI description says.
        let number = |k: &str, v: &str| {
            v.parse::<i64>()
                .ok()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| format!("{k} must be a non-negative integer (got \"{v}\")"))
        };
        for (k, v) in pairs {
            match k {
                "sort" => q.sort = Some(v.into()),
                "order" => q.order = Some(v.into()),
                "phase" => q.phase = Some(v.into()),
                "limit" => q.limit = Some(number(k, v)?),
                "offset" => q.offset = Some(number(k, v)?),
                _ => {
                    match (
                        k.strip_prefix("param."),
                        k.strip_prefix("min."),
                        k.strip_prefix("max."),
                    ) {
                        (Some(path), _, _) if !path.is_empty() => {
                            q.params.insert(path.into(), v.into());
                        }
                        (_, Some(key), _) | (_, _, Some(key)) if !key.is_empty() => {
                            let x = v.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(
                                || format!("{k} must be a finite number (got \"{v}\")"),
                            )?;
                            let bounds = q.ranges.entry(key.into()).or_default();
                            if k.starts_with("min.") {
                                bounds.0 = Some(x);
                            } else {
                                bounds.1 = Some(x);
                            }
                        }
                        _ => {
                            return Err(format!(
                                "unknown leaderboard parameter \"{k}\"; use sort, order, phase, \
                             limit, offset, param.PATH, min.KEY or max.KEY"
                            ))
                        }
                    }
                }
            }
        }
        Ok(q)
    }
}

/// What a view is sorted by.
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    /// The objective's final value; only ranked trials compete, the others follow.
    Objective,
    Index,
    /// A metric's last value.
    Metric(String),
    /// A swept parameter: missing last, numbers before text.
    Param(String),
}

/// A checked [`Query`]: what the view is, with defaults filled in. The store turns it into SQL;
/// [`apply`] is the same view computed in memory, the reference the store is tested against.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub key: Key,
    pub desc: bool,
    pub phase: Option<TrialPhase>,
    pub params: BTreeMap<String, String>,
    pub limit: usize,
    pub offset: usize,
    pub ranges: Vec<Range>,
}

/// Keep only trials whose metric's last value is finite and within `[min, max]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    /// The metric; `None`: the experiment's objective.
    pub metric: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Range {
    /// The metric's name, given the experiment's objective metric.
    pub fn metric<'a>(&'a self, objective: &'a str) -> &'a str {
        self.metric.as_deref().unwrap_or(objective)
    }

    pub fn holds(&self, last: Option<f64>) -> bool {
        last.is_some_and(|x| {
            x.is_finite() && self.min.is_none_or(|m| x >= m) && self.max.is_none_or(|m| x <= m)
        })
    }
}

impl Query {
    /// Checks the query against an experiment whose objective has `goal`.
    pub fn view(&self, goal: crate::spec::Goal) -> Result<View, String> {
        let phase = match &self.phase {
            Some(p) => Some(p.parse::<TrialPhase>()?),
            None => None,
        };
        let key = match self.sort.as_deref().unwrap_or("objective") {
            "objective" => Key::Objective,
            "index" => Key::Index,
            s => match (s.strip_prefix("metric:"), s.strip_prefix("param:")) {
                (Some(m), _) if !m.is_empty() => Key::Metric(m.into()),
                (_, Some(p)) if !p.is_empty() => Key::Param(p.into()),
                _ => {
                    return Err(format!(
                        "sort \"{s}\": use objective, index, metric:NAME or param:PATH"
                    ))
                }
            },
        };
        let desc = match self.order.as_deref() {
            None => key == Key::Objective && goal == crate::spec::Goal::Maximize,
            Some("asc") => false,
            Some("desc") => true,
            Some(o) => return Err(format!("order \"{o}\": use asc or desc")),
        };
        let limit = self.limit.unwrap_or(MAX_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(format!("limit must be 1 to {MAX_LIMIT} (got {limit})"));
        }
        let mut ranges = Vec::new();
        for (k, &(min, max)) in &self.ranges {
            let metric = match (k.as_str(), k.strip_prefix("metric:")) {
                ("objective", _) => None,
                (_, Some(m)) if !m.is_empty() => Some(m.to_string()),
                _ => {
                    return Err(format!(
                        "min.{k}/max.{k}: bound objective or metric:NAME (e.g. max.objective=2.5)"
                    ))
                }
            };
            ranges.push(Range { metric, min, max });
        }
        Ok(View {
            key,
            desc,
            phase,
            params: self.params.clone(),
            limit,
            offset: self.offset.unwrap_or(0),
            ranges,
        })
    }
}

/// A parameter's value as text, the way it is written in a query (`0.01`, `true`, `tiny`).
fn param_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn same_param(v: &Value, wanted: &str) -> bool {
    match (v.as_f64(), wanted.parse::<f64>()) {
        (Some(a), Ok(b)) => a == b,
        _ => param_text(v) == wanted,
    }
}

/// Missing and non-finite values sort last whatever the order.
fn cmp_opt(a: Option<f64>, b: Option<f64>, desc: bool) -> Ordering {
    match (a.filter(|x| x.is_finite()), b.filter(|x| x.is_finite())) {
        (Some(x), Some(y)) => {
            let o = x.total_cmp(&y);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// A total order over parameter values: missing last; numbers before text (so the comparison
/// stays transitive when a parameter mixes both), numbers by value, text as text.
fn cmp_values(a: Option<&Value>, b: Option<&Value>, desc: bool) -> Ordering {
    let (a, b) = match (a, b) {
        (Some(a), Some(b)) => (a, b),
        (Some(_), None) => return Ordering::Less,
        (None, Some(_)) => return Ordering::Greater,
        (None, None) => return Ordering::Equal,
    };
    let o = match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => param_text(a).cmp(&param_text(b)),
    };
    if desc {
        o.reverse()
    } else {
        o
    }
}

/// The view of `board` that `q` asks for; `board.total` becomes the number of matching rows.
pub fn apply(mut board: Leaderboard, q: &Query) -> Result<Leaderboard, String> {
    let v = q.view(board.experiment.goal)?;
    let (phase, desc) = (v.phase, v.desc);
    let last = |r: &LeaderboardRow, m: &str| r.summaries.get(m).and_then(|s| s.last);
    board.rows.retain(|r| {
        phase.is_none_or(|p| r.phase == p)
            && q.params
                .iter()
                .all(|(k, want)| r.params.get(k).is_some_and(|x| same_param(x, want)))
            && v.ranges.iter().all(|range| match &range.metric {
                // The row's objective is its objective metric's last value.
                None => range.holds(r.objective),
                Some(m) => range.holds(last(r, m)),
            })
    });
    board.rows.sort_by(|a, b| {
        let o = match &v.key {
            // Only ranked trials compete on the objective: a diverged or running trial's last
            // value is not a result (the store leaves it unranked), so it sorts after them.
            Key::Objective => cmp_opt(
                a.objective.filter(|_| a.rank.is_some()),
                b.objective.filter(|_| b.rank.is_some()),
                desc,
            ),
            Key::Index => cmp_opt(Some(a.index as f64), Some(b.index as f64), desc),
            Key::Metric(m) => cmp_opt(last(a, m), last(b, m), desc),
            Key::Param(p) => cmp_values(a.params.get(p), b.params.get(p), desc),
        };
        o.then(a.index.cmp(&b.index))
    });
    board.total = board.rows.len();
    let offset = v.offset.min(board.rows.len());
    board.rows = board.rows.into_iter().skip(offset).take(v.limit).collect();
    Ok(board)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::{ExperimentDto, Summary};
    use crate::schedule::{Counts, ExperimentPhase};
    use crate::spec::Goal;
    use serde_json::json;

    fn row(
        index: i64,
        phase: TrialPhase,
        lr: f64,
        objective: Option<f64>,
        loss: f64,
    ) -> LeaderboardRow {
        LeaderboardRow {
            // As the store ranks: finished trials with an objective.
            rank: (phase == TrialPhase::Succeeded && objective.is_some()).then_some(1),
            trial_id: 100 + index,
            index,
            phase,
            params: BTreeMap::from([
                ("training.lr".to_string(), json!(lr)),
                ("params.qk_layernorm".to_string(), json!(index % 2 == 0)),
            ]),
            objective,
            summaries: BTreeMap::from([(
                "train/loss".to_string(),
                Summary {
                    count: 1,
                    first_step: 0,
                    first: Some(loss),
                    last_step: 0,
                    last: Some(loss),
                    min: Some(loss),
                    max: Some(loss),
                },
            )]),
        }
    }

    fn board(goal: Goal) -> Leaderboard {
        Leaderboard {
            experiment: ExperimentDto {
                id: 1,
                name: "b".into(),
                workload: "stability".into(),
                phase: ExperimentPhase::Succeeded,
                objective_metric: "eval/loss".into(),
                goal,
                counts: Counts::default(),
                message: None,
                created_at: String::new(),
                finished_at: None,
            },
            rows: vec![
                row(0, TrialPhase::Succeeded, 1e-3, Some(3.0), 9.0),
                row(1, TrialPhase::Succeeded, 1e-2, Some(1.0), 7.0),
                // Diverged with a last value from before it diverged: unranked all the same.
                row(2, TrialPhase::Diverged, 1e-1, Some(0.5), 8.0),
                row(3, TrialPhase::Succeeded, 1e-2, Some(2.0), 6.0),
            ],
            total: 4,
        }
    }

    fn indices(b: &Leaderboard) -> Vec<i64> {
        b.rows.iter().map(|r| r.index).collect()
    }

    fn q(pairs: &[(&str, &str)]) -> Query {
        Query::from_pairs(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn ranges_bound_the_objective_and_metrics_last_values() {
        // Objectives 3.0, 1.0, 0.5 (diverged: still a value), 2.0; train/loss 9, 7, 8, 6.
        let b = || board(Goal::Minimize);
        let within = |pairs: &[(&str, &str)]| indices(&apply(b(), &q(pairs)).unwrap());
        assert_eq!(within(&[("max.objective", "2")]), [1, 3, 2]);
        assert_eq!(
            within(&[("min.objective", "1"), ("max.objective", "2")]),
            [1, 3]
        );
        assert_eq!(within(&[("min.metric:train/loss", "7.5")]), [0, 2]);
        assert_eq!(within(&[("max.metric:absent", "1")]), Vec::<i64>::new());
        for (pairs, error) in [
            (
                &[("max.objective", "x")][..],
                "max.objective must be a finite number",
            ),
            (
                &[("min.objective", "NaN")][..],
                "min.objective must be a finite number",
            ),
            (&[("min.loss", "1")][..], "bound objective or metric:NAME"),
        ] {
            let err = Query::from_pairs(pairs.iter().copied())
                .and_then(|q| q.view(Goal::Minimize).map(|_| ()))
                .unwrap_err();
            assert!(err.contains(error), "{err}");
        }
    }

    #[test]
    fn sorts_by_objective_metric_param_and_index() {
        // The objective by its goal; missing values last either way.
        assert_eq!(
            indices(&apply(board(Goal::Minimize), &q(&[])).unwrap()),
            [1, 3, 0, 2]
        );
        assert_eq!(
            indices(&apply(board(Goal::Maximize), &q(&[])).unwrap()),
            [0, 3, 1, 2]
        );
        assert_eq!(
            indices(&apply(board(Goal::Minimize), &q(&[("order", "desc")])).unwrap()),
            [0, 3, 1, 2]
        );
        let by_loss = q(&[("sort", "metric:train/loss")]);
        assert_eq!(
            indices(&apply(board(Goal::Minimize), &by_loss).unwrap()),
            [3, 1, 2, 0]
        );
        // Equal parameter values keep index order.
        let by_lr = q(&[("sort", "param:training.lr"), ("order", "desc")]);
        assert_eq!(
            indices(&apply(board(Goal::Minimize), &by_lr).unwrap()),
            [2, 1, 3, 0]
        );
        // Mixed numbers and text order numbers first, and stay a total order.
        let mut mixed = board(Goal::Minimize);
        for (r, v) in mixed
            .rows
            .iter_mut()
            .zip([json!("1x"), json!(10), json!("10"), json!(2)])
        {
            r.params.insert("p".into(), v);
        }
        let by_p = q(&[("sort", "param:p")]);
        assert_eq!(indices(&apply(mixed, &by_p).unwrap()), [3, 1, 2, 0]);
        let by_index = q(&[("sort", "index"), ("order", "desc")]);
        assert_eq!(
            indices(&apply(board(Goal::Minimize), &by_index).unwrap()),
            [3, 2, 1, 0]
        );
    }

    #[test]
    fn filters_then_paginates_with_the_total_before_paging() {
        let b = apply(
            board(Goal::Minimize),
            &q(&[("phase", "Succeeded"), ("param.training.lr", "0.01")]),
        )
        .unwrap();
        assert_eq!((indices(&b), b.total), (vec![1, 3], 2));
        let b = apply(
            board(Goal::Minimize),
            &q(&[("param.params.qk_layernorm", "true")]),
        )
        .unwrap();
        assert_eq!(indices(&b), [0, 2]);
        let b = apply(
            board(Goal::Minimize),
            &q(&[("limit", "2"), ("offset", "1")]),
        )
        .unwrap();
        assert_eq!((indices(&b), b.total), (vec![3, 0], 4));
        let b = apply(board(Goal::Minimize), &q(&[("offset", "10")])).unwrap();
        assert_eq!((b.rows.len(), b.total), (0, 4));
    }

    #[test]
    fn bad_queries_say_what_is_allowed() {
        assert!(Query::from_pairs([("sortt", "x")])
            .unwrap_err()
            .contains("unknown"));
        assert!(Query::from_pairs([("limit", "-1")]).is_err());
        let err = |pairs: &[(&str, &str)]| apply(board(Goal::Minimize), &q(pairs)).unwrap_err();
        assert!(err(&[("sort", "loss")]).contains("metric:NAME"));
        assert!(err(&[("order", "up")]).contains("asc or desc"));
        assert!(err(&[("limit", "0")]).contains("limit"));
        assert!(!err(&[("phase", "Sleeping")]).is_empty());
    }
}
