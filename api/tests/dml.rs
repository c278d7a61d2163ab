//! The `dml` method's mixture, resolved when an experiment is registered: the optimum of the mixing
//! law fitted on another experiment's finished static trials, on both databases. The grid's results
//! come from a known law, so the resolved mixture can be checked against that law's own optimum;
//! a source that is missing, of another workload or without enough static trials is refused with
//! a message and nothing is written.

mod support;

use orrery_api::StoreError;
use orrery_core::dto::MetricPoint;
use orrery_core::schedule::TrialPhase;
use orrery_core::workloads::aioli::{self as a, Aioli};
use support::Db;

on_both_databases!(dml_trains_at_the_fitted_optimum);

const GROUPS: [&str; 3] = ["easy", "hard", "shared"];

/// L_i(p) = c_i + b_i·exp(−Σ_j A_ij p_j): a group learns from its own data and, for hard and
/// shared, from each other's.
fn law(p: &[f64]) -> Vec<f64> {
    let a = [[6.0, 0.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 2.0]];
    let (c, b) = ([0.15, 0.6, 0.6], [3.0, 1.5, 1.5]);
    (0..3)
        .map(|i| c[i] + b[i] * (-(0..3).map(|j| a[i][j] * p[j]).sum::<f64>()).exp())
        .collect()
}

fn point(name: String, step: i64, value: f64) -> MetricPoint {
    MetricPoint {
        name,
        step,
        value,
        wall_time: 1.0,
    }
}

fn spec(name: &str, params: &str, search: &str) -> String {
    format!(
        "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n  \
         workload: aioli\n  data: {{corpus: \"builtin:mixing\"}}\n  params: {params}\n{search}"
    )
}

async fn dml_trains_at_the_fitted_optimum(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let store = support::store(db, dir.path()).await;
    let register = |yaml: String| {
        let store = &store;
        async move {
            let loaded = orrery_core::load_spec(&yaml).unwrap();
            store.create_experiment(&yaml, &loaded).await
        }
    };

    // A dml experiment before its source exists: refused, nothing written.
    let dml = spec(
        "dml",
        "{method: dml, dml: {from_experiment: grid}}",
        "  search: {seeds: 2}\n",
    );
    let err = register(dml.clone()).await.unwrap_err().to_string();
    assert!(
        err.contains("params.dml.from_experiment: there is no experiment \"grid\""),
        "{err}"
    );
    assert!(store.list_experiments().await.unwrap().is_empty());

    // The grid: 28 static mixtures (step 1/6), finished, their test perplexities from the law; the
    // 10 that train on every group are what the law is fitted on.
    let grid = register(spec(
        "grid",
        "{method: static}",
        "  search:\n    space:\n      params.proportions: {simplex: {step: 0.166666666667}}\n",
    ))
    .await
    .unwrap();
    let trials = store.trials(grid.id).await.unwrap();
    assert_eq!(trials.len(), 28);

    // Too few finished trials for a law: refused with what it needs.
    let err = register(dml.clone()).await.unwrap_err().to_string();
    assert!(err.contains("has no fitted mixing law"), "{err}");
    assert!(
        err.contains("at least (number of groups) + 2 different mixtures; it has 0 such trial(s) in 0 mixture(s), of 28 trial(s)"),
        "{err}"
    );

    for t in &trials {
        let p = t
            .config
            .params
            .of::<Aioli>()
            .unwrap()
            .proportions
            .clone()
            .unwrap();
        let p: Vec<f64> = GROUPS.iter().map(|g| p[*g]).collect();
        let losses = law(&p);
        let mut points = Vec::new();
        for (g, (w, l)) in GROUPS.iter().zip(p.iter().zip(&losses)) {
            points.push(point(a::mix_p(g), 0, *w));
            points.push(point(a::test_ppl(g), 100, l.exp()));
        }
        let avg = losses.iter().map(|l| l.exp()).sum::<f64>() / 3.0;
        points.push(point(a::TEST_AVG_PPL.into(), 100, avg));
        store.ingest(t.id, &points).await.unwrap();
        store
            .set_trial_state(t.id, TrialPhase::Succeeded, None, None)
            .await
            .unwrap();
    }

    // Now the law fits, and every dml trial trains at its optimum, recorded among its values.
    let exp = register(dml).await.unwrap();
    let dml_trials = store.trials(exp.id).await.unwrap();
    assert_eq!(dml_trials.len(), 2);
    let board = store.leaderboard(grid.id).await.unwrap();
    let law_fit = a::analysis::analyse(&board, &Default::default())
        .mixing_law
        .unwrap();
    assert!(law_fit.groups.iter().all(|g| g.r2 > 0.9999), "{law_fit:?}");
    for t in &dml_trials {
        let p = t.config.params.of::<Aioli>().unwrap();
        assert_eq!(p.proportions.as_ref(), Some(&law_fit.optimum));
        assert_eq!(
            t.params["params.proportions"],
            serde_json::to_value(&law_fit.optimum).unwrap()
        );
    }
    // The optimum is the known law's: no mixture on a fine grid within the weights the fit saw
    // (1/6 … 4/6 each) does better.
    let predicted = |m: &std::collections::BTreeMap<String, f64>| {
        let p: Vec<f64> = GROUPS.iter().map(|g| m[*g]).collect();
        law(&p).iter().map(|l| l.exp()).sum::<f64>() / 3.0
    };
    let at_optimum = predicted(&law_fit.optimum);
    for v in orrery_core::mixture_space::simplex_points(&GROUPS.map(String::from), 40) {
        let m: std::collections::BTreeMap<String, f64> = serde_json::from_value(v).unwrap();
        if m.values()
            .any(|w| !(1.0 / 6.0 - 1e-9..=4.0 / 6.0 + 1e-9).contains(w))
        {
            continue;
        }
        assert!(
            at_optimum <= predicted(&m) + 1e-3,
            "{m:?} beats {:?}",
            law_fit.optimum
        );
    }

    // A dml trial over other groups than the law's is refused.
    let two_groups = spec("dml3", "{method: dml, dml: {from_experiment: grid}}", "").replace(
        "data: {corpus: \"builtin:mixing\"}",
        "data: {corpus: \"builtin:mixing\", groups: [easy, hard]}",
    );
    let err = register(two_groups).await.unwrap_err().to_string();
    assert!(
        err.contains("the law of \"grid\" is over the groups easy, hard, shared, but this trial's data has easy, hard"),
        "{err}"
    );

    // A source of another workload is refused.
    let stab = "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {name: stab}\nspec:\n  workload: stability\n";
    store
        .create_experiment(stab, &orrery_core::load_spec(stab).unwrap())
        .await
        .unwrap();
    let err = register(spec(
        "dml2",
        "{method: dml, dml: {from_experiment: stab}}",
        "",
    ))
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert!(
        err.to_string()
            .contains("a stability experiment, not aioli"),
        "{err}"
    );
}
