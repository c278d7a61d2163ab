//! The aioli analysis through the store, on both databases: the histories it asks for are read
//! (several trials and metrics in one read) and become the learned mixtures over steps and the
//! round-mean interaction matrices; static trials and metrics nobody asked for stay out.

mod support;

use orrery_core::dto::MetricPoint;
use orrery_core::schedule::TrialPhase;
use orrery_core::workloads::aioli as a;
use orrery_core::workloads::Analysis;
use support::Db;

on_both_databases!(histories_become_mixtures_and_matrices);

const GROUPS: [&str; 2] = ["a", "b"];

fn point(name: String, step: i64, value: f64) -> MetricPoint {
    MetricPoint {
        name,
        step,
        value,
        wall_time: 1.0,
    }
}

async fn histories_become_mixtures_and_matrices(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(db, dir.path()).await;
    // Two aioli seeds, a static mixture and a doremi trial; the corpus's groups don't matter to
    // the analysis, which reads the metric names.
    let yaml = "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {name: mix}\nspec:\n  \
        workload: aioli\n  data: {corpus: \"builtin:mixing\"}\n  params: {method: aioli}\n  \
        search:\n    kind: list\n    trials:\n      - {params.method: aioli, training.seed: 0}\n      \
        - {params.method: aioli, training.seed: 1}\n      \
        - {params.method: static, params.proportions: {easy: 0.5, hard: 0.25, shared: 0.25}}\n      \
        - {params.method: doremi}\n";
    let loaded = orrery_core::load_spec(yaml).unwrap();
    let exp = store.create_experiment(yaml, &loaded).await.unwrap();
    let trials = store.trials(exp.id).await.unwrap();
    assert_eq!(trials.len(), 4);
    for (i, t) in trials.iter().enumerate() {
        let mut pts = vec![point(a::TEST_AVG_PPL.into(), 100, 2.0 + i as f64)];
        match i {
            // Aioli: p moves at steps 0, 10, 20; Â at rounds 10 and 20 (seed 1's round 20 has a
            // negative diagonal entry).
            0 | 1 => {
                let s = i as f64;
                for (step, pa) in [(0, 0.5), (10, 0.6 + 0.1 * s), (20, 0.7)] {
                    pts.push(point(a::mix_p("a"), step, pa));
                    pts.push(point(a::mix_p("b"), step, 1.0 - pa));
                }
                for r in GROUPS {
                    for c in GROUPS {
                        let v = if r == c { 1.0 + s } else { 0.5 };
                        let late = if r == "b" && c == "b" && i == 1 {
                            -1.0
                        } else {
                            v
                        };
                        pts.push(point(a::mix_a_raw(r, c), 10, v));
                        pts.push(point(a::mix_a_raw(r, c), 20, late));
                        pts.push(point(a::mix_a(r, c), 10, 0.25));
                    }
                }
                // Logged, not asked for: never read into the analysis.
                pts.push(point("train/loss".into(), 10, 3.0));
            }
            2 => {
                pts.push(point(a::mix_p("a"), 0, 0.5));
                pts.push(point(a::mix_p("b"), 0, 0.5));
            }
            _ => {
                pts.push(point(a::mix_p("a"), 0, 0.3));
                pts.push(point(a::mix_p("b"), 0, 0.7));
                for (step, pa) in [(0, 0.5), (20, 0.1), (40, 0.3)] {
                    pts.push(point(
                        format!("{}{}", a::DOREMI_PROXY, a::mix_p("a")),
                        step,
                        pa,
                    ));
                    pts.push(point(
                        format!("{}{}", a::DOREMI_PROXY, a::mix_p("b")),
                        step,
                        1.0 - pa,
                    ));
                }
            }
        }
        store.ingest(t.id, &pts).await.unwrap();
        store
            .set_trial_state(t.id, TrialPhase::Succeeded, None, None)
            .await
            .unwrap();
    }

    let (board, analysis) = store.analysis(exp.id).await.unwrap();
    let Analysis::Aioli(an) = analysis else {
        panic!("not an aioli analysis: {analysis:?}");
    };
    assert_eq!(board.rows.len(), 4);

    // Two traces: aioli's mix/p over both seeds, doremi's proxy; the static trial has none.
    assert_eq!(
        an.mixture_over_steps.len(),
        2,
        "{:?}",
        an.mixture_over_steps
    );
    let aioli = an
        .mixture_over_steps
        .iter()
        .find(|t| t.method.as_deref() == Some("aioli"))
        .unwrap();
    assert_eq!((aioli.seeds, aioli.source.as_str()), (2, a::MIX_P_PREFIX));
    let steps: Vec<i64> = aioli.points.iter().map(|p| p.step).collect();
    assert_eq!(steps, vec![0, 10, 20]);
    assert!((aioli.points[1].p["a"] - 0.65).abs() < 1e-12);
    assert!((aioli.points[1].p["b"] - 0.35).abs() < 1e-12);
    let doremi = an
        .mixture_over_steps
        .iter()
        .find(|t| t.method.as_deref() == Some("doremi"))
        .unwrap();
    assert_eq!(
        doremi.source,
        format!("{}{}", a::DOREMI_PROXY, a::MIX_P_PREFIX)
    );
    assert_eq!(doremi.points.len(), 3);
    assert!((doremi.points[1].p["a"] - 0.1).abs() < 1e-12);

    // Â: 4 rounds over the two seeds, 3 with every diagonal entry positive; A: 2 rounds.
    let raw = an
        .interactions
        .iter()
        .find(|m| m.metric == "mix/A_raw")
        .unwrap();
    assert_eq!((raw.rounds, raw.diagonal_positive), (4, 3));
    assert_eq!(raw.groups, vec!["a", "b"]);
    // a→a: (1 + 1 + 2 + 2) / 4; b→b: (1 + 1 + 2 − 1) / 4; off-diagonal 0.5.
    assert!((raw.mean["a"]["a"] - 1.5).abs() < 1e-12);
    assert!((raw.mean["b"]["b"] - 0.75).abs() < 1e-12);
    assert!((raw.mean["a"]["b"] - 0.5).abs() < 1e-12);
    let normalised = an
        .interactions
        .iter()
        .find(|m| m.metric == "mix/A")
        .unwrap();
    assert_eq!(normalised.rounds, 2);
    assert!((normalised.mean["b"]["a"] - 0.25).abs() < 1e-12);

    // The batched read returns only what was asked for, by trial.
    let h = store
        .metric_histories(&[
            (trials[0].id, vec![a::mix_p("a"), "no/such".into()]),
            (trials[2].id, vec![a::mix_p("b")]),
        ])
        .await
        .unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[&trials[0].id].len(), 1);
    assert_eq!(
        h[&trials[0].id][&a::mix_p("a")],
        vec![(0, 0.5), (10, 0.6), (20, 0.7)]
    );
    assert_eq!(h[&trials[2].id][&a::mix_p("b")], vec![(0, 0.5)]);
}
