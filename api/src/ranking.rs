//! Leaderboard pages in SQL. A view (`orrery_core::leaderboard::View`: sort, order, filters, page)
//! becomes one `SELECT ... ORDER BY ... LIMIT` over the experiment's trials, so a page of a
//! 100,000-trial experiment costs an index scan, not a load of every trial. The rules are those of
//! `orrery_core::leaderboard::apply`, the in-memory reference; `api/tests/api.rs` checks the two
//! agree on both databases.
//!
//! Ranking rests on `trials.score` (the objective, signed so that lower is better; NULL when not
//! ranked), which the store keeps with [`SET_SCORE`]. Parameters live in `trials.params_json`
//! (a flat JSON object), read with each database's JSON functions; paths are always bound, never
//! spliced into the SQL.

use sea_orm::{DatabaseBackend, Statement, Value};

use orrery_core::leaderboard::{Key, View};
use orrery_core::spec::Goal;

/// Recomputes `trials.score` from the objective's summary, the trial's phase and the goal. Run
/// as it is over every trial (the migration), or with `WHERE id = ...` for one. Ranked phases are
/// `TrialPhase::is_ranked` (tested below); non-finite values (NaN is stored as NULL, ±inf fail
/// the bounds) are not ranked.
pub const SET_SCORE: &str = "UPDATE trials SET score = (\
    SELECT CASE WHEN trials.phase IN ('Succeeded', 'EarlyStopped') \
        AND s.last_value > -1e308 AND s.last_value < 1e308 \
        THEN CASE WHEN e.goal = 'maximize' THEN -s.last_value ELSE s.last_value END END \
    FROM metric_summaries s, experiments e \
    WHERE e.id = trials.experiment_id AND s.trial_id = trials.id AND s.name = e.objective_metric)";

/// SQL text and its bound values, with the backend's placeholders (`?n` or `$n`).
pub struct Sql {
    backend: DatabaseBackend,
    pub text: String,
    values: Vec<Value>,
}

impl Sql {
    pub fn new(backend: DatabaseBackend, text: &str) -> Self {
        Sql {
            backend,
            text: text.to_string(),
            values: Vec::new(),
        }
    }

    /// Binds `v` and returns its placeholder, numbered (`$n`, `?n`) so that the text may use
    /// placeholders in another order than they were bound.
    pub fn bind(&mut self, v: impl Into<Value>) -> String {
        self.values.push(v.into());
        match self.backend {
            DatabaseBackend::Postgres => format!("${}", self.values.len()),
            _ => format!("?{}", self.values.len()),
        }
    }

    /// Binds `v` and returns a placeholder that must appear in the text in binding order: a bare
    /// `?` on SQLite, `$n` on PostgreSQL. For statements with many values (multi-row INSERTs):
    /// sqlx finds the value of each numbered `?n` through `sqlite3_bind_parameter_name`, a linear
    /// scan of the statement's parameters, so binding is quadratic in their number — it was 39 %
    /// of the CPU of SQLite ingest with 1,500 values a statement.
    pub fn bind_in_order(&mut self, v: impl Into<Value>) -> String {
        match self.backend {
            DatabaseBackend::Postgres => self.bind(v),
            _ => {
                self.values.push(v.into());
                "?".into()
            }
        }
    }

    pub fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }

    pub fn statement(self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text, self.values)
    }

    fn postgres(&self) -> bool {
        self.backend == DatabaseBackend::Postgres
    }

    /// The parameter's JSON type: `number`, `text` (strings, booleans, anything else) or NULL
    /// when the trial does not have it.
    fn param_kind(&mut self, path: &str) -> String {
        let (a, b) = if self.postgres() {
            (self.bind(path), self.bind(path))
        } else {
            (self.bind(json_path(path)), self.bind(json_path(path)))
        };
        let ty = |p: &str| {
            if self.postgres() {
                format!("jsonb_typeof(t.params_json::jsonb -> {p})")
            } else {
                format!("json_type(t.params_json, {p})")
            }
        };
        format!(
            "CASE WHEN {} IS NULL THEN NULL WHEN {} IN ('number', 'integer', 'real') \
             THEN 'number' ELSE 'text' END",
            ty(&a),
            ty(&b)
        )
    }

    /// The parameter as a number (NULL unless it is one).
    fn param_number(&mut self, path: &str) -> String {
        if self.postgres() {
            let (a, b) = (self.bind(path), self.bind(path));
            format!(
                "CASE WHEN jsonb_typeof(t.params_json::jsonb -> {a}) = 'number' \
                 THEN (t.params_json::jsonb ->> {b})::float8 END"
            )
        } else {
            let (a, b) = (self.bind(json_path(path)), self.bind(json_path(path)));
            format!(
                "CASE WHEN json_type(t.params_json, {a}) IN ('integer', 'real') \
                 THEN json_extract(t.params_json, {b}) END"
            )
        }
    }

    /// The parameter as the text a query writes it as (`tiny`, `true`, `null`); NULL for numbers
    /// and missing parameters.
    fn param_text(&mut self, path: &str) -> String {
        if self.postgres() {
            let (a, b) = (self.bind(path), self.bind(path));
            format!(
                "CASE jsonb_typeof(t.params_json::jsonb -> {a}) WHEN 'number' THEN NULL \
                 WHEN 'null' THEN 'null' ELSE (t.params_json::jsonb ->> {b}) END COLLATE \"C\""
            )
        } else {
            let (a, b) = (self.bind(json_path(path)), self.bind(json_path(path)));
            format!(
                "CASE json_type(t.params_json, {a}) WHEN 'integer' THEN NULL WHEN 'real' THEN NULL \
                 WHEN 'null' THEN 'null' WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
                 ELSE json_extract(t.params_json, {b}) END"
            )
        }
    }
}

/// A SQLite JSON path for a flat key that may contain dots: `$."training.lr"`.
fn json_path(key: &str) -> String {
    format!("$.\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `ASC` or `DESC`.
fn dir(desc: bool) -> &'static str {
    if desc {
        "DESC"
    } else {
        "ASC"
    }
}

/// A finite value, or NULL (NaN is stored as NULL; ±inf fail the bounds).
fn finite(col: &str) -> String {
    format!("CASE WHEN {col} > -1e308 AND {col} < 1e308 THEN {col} END")
}

/// `WHERE` for the view's filters (the experiment, the phase, parameter values).
fn filters(sql: &mut Sql, experiment_id: i64, objective: &str, view: &View) {
    let e = sql.bind(experiment_id);
    sql.push(&format!(" WHERE t.experiment_id = {e}"));
    if let Some(p) = view.phase {
        let p = sql.bind(p.as_str());
        sql.push(&format!(" AND t.phase = {p}"));
    }
    for (path, want) in &view.params {
        // As `same_param`: numbers compare as numbers when the wanted value is one; anything
        // else compares as text.
        let text = sql.param_text(path);
        let w = sql.bind(want.as_str());
        let mut cond = format!("{text} = {w}");
        if let Ok(x) = want.parse::<f64>() {
            let num = sql.param_number(path);
            let x = sql.bind(x);
            cond = format!("({num} = {x} OR {cond})");
        }
        sql.push(&format!(" AND {cond}"));
    }
    for range in &view.ranges {
        let name = sql.bind(range.metric(objective));
        let mut cond = format!(
            "r.trial_id = t.id AND r.name = {name} AND {} IS NOT NULL",
            finite("r.last_value")
        );
        if let Some(min) = range.min {
            cond.push_str(&format!(" AND r.last_value >= {}", sql.bind(min)));
        }
        if let Some(max) = range.max {
            cond.push_str(&format!(" AND r.last_value <= {}", sql.bind(max)));
        }
        sql.push(&format!(
            " AND EXISTS (SELECT 1 FROM metric_summaries r WHERE {cond})"
        ));
    }
}

/// `SELECT id, trial_index, phase, params_json, score` of the view's page, in its order.
pub fn page(
    backend: DatabaseBackend,
    experiment_id: i64,
    goal: Goal,
    objective: &str,
    view: &View,
) -> Statement {
    let mut sql = Sql::new(
        backend,
        "SELECT t.id, t.trial_index, t.phase, t.params_json, t.score FROM trials t",
    );
    let mut order = Vec::new();
    match &view.key {
        Key::Objective => {
            // Ranked trials first, then the rest by index. Ascending score is best first, which
            // is `desc` for a maximised objective and `asc` for a minimised one.
            // `NULLS LAST` ascending is the `trials_score` index's own order on PostgreSQL: the
            // first page is the index's first entries.
            let reversed = view.desc != (goal == Goal::Maximize);
            order.push(format!("t.score {} NULLS LAST", dir(reversed)));
        }
        Key::Index => order.push(format!("t.trial_index {}", dir(view.desc))),
        Key::Metric(name) => {
            let n = sql.bind(name.as_str());
            sql.push(&format!(
                " LEFT JOIN metric_summaries m ON m.trial_id = t.id AND m.name = {n}"
            ));
            order.push(format!(
                "{} {} NULLS LAST",
                finite("m.last_value"),
                dir(view.desc)
            ));
        }
        Key::Param(_) => {}
    }
    filters(&mut sql, experiment_id, objective, view);
    if let Key::Param(path) = &view.key {
        // Missing last whatever the order; numbers before text (reversed by DESC, as in memory).
        let kind = sql.param_kind(path);
        order.push(format!("CASE WHEN ({kind}) IS NULL THEN 1 ELSE 0 END"));
        let kind = sql.param_kind(path);
        order.push(format!(
            "CASE ({kind}) WHEN 'number' THEN 0 ELSE 1 END {}",
            dir(view.desc)
        ));
        let num = sql.param_number(path);
        order.push(format!("{num} {}", dir(view.desc)));
        let text = sql.param_text(path);
        order.push(format!("{text} {}", dir(view.desc)));
    }
    order.push("t.trial_index ASC".into());
    let limit = sql.bind(view.limit as i64);
    let offset = sql.bind(i64::try_from(view.offset).unwrap_or(i64::MAX));
    sql.push(&format!(
        " ORDER BY {} LIMIT {limit} OFFSET {offset}",
        order.join(", ")
    ));
    sql.statement()
}

/// `SELECT COUNT(*)` of the trials matching the view's filters.
pub fn count(
    backend: DatabaseBackend,
    experiment_id: i64,
    objective: &str,
    view: &View,
) -> Statement {
    let mut sql = Sql::new(backend, "SELECT COUNT(*) AS n FROM trials t");
    filters(&mut sql, experiment_id, objective, view);
    sql.statement()
}

/// For each of the trials `ids` (ranked ones: `score` set), how many ranked trials of the
/// experiment come before it (`ahead`): its rank minus one. One statement for a page, each count
/// a range of the `(experiment_id, score, trial_index)` index.
pub fn ahead_of(backend: DatabaseBackend, experiment_id: i64, ids: &[i64]) -> Statement {
    let mut sql = Sql::new(
        backend,
        "SELECT t.id, (SELECT COUNT(*) FROM trials u WHERE u.experiment_id = ",
    );
    let e = sql.bind(experiment_id);
    sql.push(&e).push(
        " AND (u.score, u.trial_index) < (t.score, t.trial_index)) AS ahead \
         FROM trials t WHERE t.score IS NOT NULL AND t.id IN (",
    );
    let list: Vec<String> = ids.iter().map(|&id| sql.bind(id)).collect();
    sql.push(&list.join(", ")).push(")");
    sql.statement()
}

#[cfg(test)]
mod tests {
    use super::*;
    use orrery_core::schedule::TrialPhase;

    #[test]
    fn set_score_ranks_the_phases_core_ranks() {
        for p in TrialPhase::ALL {
            assert_eq!(
                SET_SCORE.contains(&format!("'{}'", p.as_str())),
                p.is_ranked(),
                "{p}"
            );
        }
    }

    #[test]
    fn json_paths_quote_the_key() {
        assert_eq!(json_path("training.lr"), "$.\"training.lr\"");
        assert_eq!(json_path("a\"b"), "$.\"a\\\"b\"");
    }
}
