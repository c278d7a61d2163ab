//! Leaderboard pages computed by the database (`Store::leaderboard_view`, `orrery_api::ranking`)
//! against the in-memory reference (`orrery_core::leaderboard::apply` on the full leaderboard),
//! on both databases: every sort key, both orders, phase and parameter filters, several pages,
//! over trials with missing, NaN and infinite objectives, unranked phases, numeric, boolean and
//! text parameters, and a maximised objective.

mod support;

use orrery_core::dto::MetricPoint;
use orrery_core::leaderboard::{apply, Query};
use orrery_core::schedule::TrialPhase;
use support::Db;

on_both_databases!(
    sql_pages_match_the_reference_minimize,
    sql_pages_match_the_reference_maximize
);

fn spec(goal: &str) -> String {
    format!(
        "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: board}}\nspec:\n  \
         workload: stability\n  objective: {{metric: eval/loss, goal: {goal}}}\n  search:\n    \
         seeds: 2\n    space:\n      training.lr: {{values: [1.0e-3, 3.0e-3, 1.0e-2, 3.0e-2]}}\n      \
         params.qk_layernorm: {{values: [false, true]}}\n      model.preset: {{values: [tiny, small]}}\n"
    )
}

async fn sql_pages_match_the_reference_minimize(db: Db) {
    check(db, "minimize").await
}

async fn sql_pages_match_the_reference_maximize(db: Db) {
    check(db, "maximize").await
}

async fn check(db: Db, goal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(db, dir.path()).await;
    let yaml = spec(goal);
    let exp = store
        .create_experiment(&yaml, &orrery_core::load_spec(&yaml).unwrap())
        .await
        .unwrap();
    let trials = store.trials(exp.id).await.unwrap();
    assert_eq!(trials.len(), 32);
    let phases = [
        TrialPhase::Succeeded,
        TrialPhase::Succeeded,
        TrialPhase::Diverged,
        TrialPhase::Succeeded,
        TrialPhase::Running,
        TrialPhase::EarlyStopped,
        TrialPhase::Failed,
    ];
    for (k, t) in trials.iter().enumerate() {
        let mut points = Vec::new();
        // Objectives with ties (k % 5), a NaN, an infinity and some trials without one.
        let objective = match k % 9 {
            0 => None,
            1 => Some(f64::NAN),
            2 => Some(f64::INFINITY),
            _ => Some(1.0 + (k % 5) as f64 / 10.0),
        };
        if let Some(v) = objective {
            points.push(point("eval/loss", 5, v));
        }
        if k % 4 != 0 {
            points.push(point("train/loss", 9, 3.0 - (k % 7) as f64 / 7.0));
        }
        if !points.is_empty() {
            store.ingest(t.id, &points).await.unwrap();
        }
        let phase = phases[k % phases.len()];
        if phase != TrialPhase::Pending {
            store
                .set_trial_state(t.id, phase, None, None)
                .await
                .unwrap();
        }
    }

    let sorts = [
        None,
        Some("index"),
        Some("metric:train/loss"),
        Some("metric:nothing"),
        Some("param:training.lr"),
        Some("param:params.qk_layernorm"),
        Some("param:model.preset"),
        Some("param:absent"),
    ];
    let filters: [&[(&str, &str)]; 10] = [
        &[],
        &[("phase", "Succeeded")],
        &[("param.training.lr", "0.01")],
        &[("param.params.qk_layernorm", "true")],
        &[("param.model.preset", "small"), ("phase", "Diverged")],
        &[("param.training.lr", "1e-3")],
        // Ranges on the objective and on another metric's last value (bounds inclusive; NaN,
        // infinite and missing values never match).
        &[("max.objective", "1.2")],
        &[("min.objective", "1.2"), ("max.objective", "1.3")],
        &[("min.metric:train/loss", "2.5"), ("phase", "Succeeded")],
        &[("max.metric:nothing", "1"), ("param.training.lr", "0.01")],
    ];
    let mut compared = 0;
    for sort in sorts {
        for order in [None, Some("asc"), Some("desc")] {
            for filter in filters {
                for (limit, offset) in [
                    (None, None),
                    (Some("5"), Some("0")),
                    (Some("5"), Some("10")),
                    (Some("7"), Some("40")),
                ] {
                    let mut pairs: Vec<(&str, &str)> = filter.to_vec();
                    pairs.extend(sort.map(|s| ("sort", s)));
                    pairs.extend(order.map(|o| ("order", o)));
                    pairs.extend(limit.map(|l| ("limit", l)));
                    pairs.extend(offset.map(|o| ("offset", o)));
                    let q = Query::from_pairs(pairs.iter().copied()).unwrap();
                    let want = apply(store.leaderboard(exp.id).await.unwrap(), &q).unwrap();
                    let got = store.leaderboard_view(exp.id, &q).await.unwrap();
                    // Compare as JSON: NaN objectives are equal there ("NaN").
                    assert_eq!(
                        serde_json::to_value(&got).unwrap(),
                        serde_json::to_value(&want).unwrap(),
                        "{db:?} goal {goal}, query {pairs:?}"
                    );
                    compared += 1;
                }
            }
        }
    }
    assert_eq!(compared, 8 * 3 * 10 * 4);
}

fn point(name: &str, step: i64, value: f64) -> MetricPoint {
    MetricPoint {
        name: name.into(),
        step,
        value,
        wall_time: 1.0,
    }
}
