//! The aioli workload end to end in the worker binary: a trial's mixture, interaction matrices and
//! test perplexities as reported, and a resume from a checkpoint taken in the middle of a round's
//! LearnParams that reports exactly what the uninterrupted attempt reported after it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use orrery_core::dto::MetricPoint;

type Points = BTreeMap<(String, i64), f64>;

/// 3 groups; rounds of 20 steps with 2 passes × 2 steps of LearnParams (12 steps) each; a
/// checkpoint every 23 steps: the last one, at 46, falls inside round 2's LearnParams (40–51).
fn config(dir: &Path) -> std::path::PathBuf {
    let text =
        "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {name: mix}\nspec:\n  \
        workload: aioli\n  objective: {metric: eval/avg_ppl, goal: minimize}\n  \
        model: {layers: 1, d_model: 32, heads: 2, seq_len: 32}\n  \
        data: {corpus: \"builtin:mixing\", group_bytes: 20000}\n  \
        training: {steps: 60, batch_size: 8, lr: 0.003, warmup_steps: 5, log_every: 5, \
        eval_every: 20, eval_batches: 1, checkpoint_every: 23}\n  \
        params: {method: aioli, aioli: {update_steps: 20, lp_rounds: 2, lp_steps: 2}}\n";
    let cfg = orrery_core::load_spec(text).unwrap().trials[0]
        .config()
        .unwrap();
    let path = dir.join("config.json");
    std::fs::write(&path, serde_json::to_string(&cfg).unwrap()).unwrap();
    path
}

/// Runs the worker on `config` in `workdir` and returns what it reported, moving its spill file
/// away so the next attempt's points are its own.
fn attempt(config: &Path, workdir: &Path) -> Points {
    let out = Command::new(env!("CARGO_BIN_EXE_orrery-worker"))
        .arg("--config")
        .arg(config)
        .arg("--workdir")
        .arg(workdir)
        .args(["--device", "cpu", "--threads", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spill = workdir.join("metrics-spill.jsonl");
    let points = orrery_core::spill::read(&spill).unwrap();
    std::fs::remove_file(&spill).unwrap();
    points
        .into_iter()
        .map(
            |MetricPoint {
                 name, step, value, ..
             }| ((name, step), value),
        )
        .collect()
}

fn at(points: &Points, name: &str) -> Vec<(i64, f64)> {
    points
        .iter()
        .filter(|((n, _), _)| n == name)
        .map(|((_, s), v)| (*s, *v))
        .collect()
}

#[test]
fn an_aioli_trial_reports_its_mixture_and_resumes_mid_round() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let work = dir.path().join("work");
    let first = attempt(&config, &work);
    let groups = ["easy", "hard", "shared"];

    // The mixture: uniform at step 0, then updated after each round's LearnParams (steps 12, 32,
    // 52), always a mixture.
    let p_steps: Vec<i64> = at(&first, "mix/p/easy").iter().map(|p| p.0).collect();
    assert_eq!(p_steps, [0, 12, 32, 52]);
    for step in p_steps {
        let sum: f64 = groups
            .iter()
            .map(|g| first[&(format!("mix/p/{g}"), step)])
            .sum();
        assert!((sum - 1.0).abs() < 1e-9, "p sums to {sum} at step {step}");
    }
    assert!(
        groups
            .iter()
            .any(|g| (first[&(format!("mix/p/{g}"), 52)] - 1.0 / 3.0).abs() > 1e-6),
        "three updates move the mixture"
    );
    // Normalised A sums to 1 and is ≥ 0; the raw estimate is the loss drops (not normalised).
    for step in [12, 32, 52] {
        let entries: Vec<f64> = groups
            .iter()
            .flat_map(|r| groups.iter().map(move |c| (r, c)))
            .map(|(r, c)| first[&(format!("mix/A/{r}/{c}"), step)])
            .collect();
        assert!(entries.iter().all(|x| *x >= 0.0));
        assert!((entries.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(first.contains_key(&("mix/A_raw/hard/shared".into(), step)));
    }
    // LearnParams: 12 of every 20 steps, 36 of 60.
    assert_eq!(at(&first, "mix/lp_step_fraction").last(), Some(&(60, 0.6)));
    // Test perplexities at the end; their mean is test/avg_ppl, and eval/avg_ppl is the objective.
    let ppl: Vec<f64> = groups
        .iter()
        .map(|g| first[&(format!("test/ppl/{g}"), 60)])
        .collect();
    let mean = ppl.iter().sum::<f64>() / 3.0;
    assert!((first[&("test/avg_ppl".into(), 60)] - mean).abs() < 1e-9);
    let eval = at(&first, "eval/avg_ppl");
    assert_eq!(
        eval.iter().map(|p| p.0).collect::<Vec<_>>(),
        [0, 20, 40, 60]
    );
    assert!(eval[3].1 < eval[0].1 / 2.0, "it learns: {eval:?}");

    // A second attempt in the same folder resumes from the checkpoint of step 46 — in the middle
    // of round 2's LearnParams, with that round's partial Â and last losses restored — and reports
    // exactly what the first reported from there on.
    let second = attempt(&config, &work);
    assert_eq!(second[&("sys/resumed_from_step".into(), 46)], 46.0);
    let mut compared = 0;
    for ((name, step), v) in &second {
        if *step > 46 {
            assert_eq!(
                first.get(&(name.clone(), *step)),
                Some(v),
                "{name} at step {step}"
            );
            compared += 1;
        }
    }
    assert!(compared > 30, "compared {compared} points");
    assert!(second.contains_key(&("mix/A/hard/hard".into(), 52)));
}

/// A dml configuration that never went through the server's registration has no mixture: the
/// worker refuses it as a bad configuration (not retried) instead of training on some default.
#[test]
fn a_dml_trial_without_its_resolved_mixture_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {name: mix}\nspec:\n  \
        workload: aioli\n  data: {corpus: \"builtin:mixing\", group_bytes: 20000}\n  \
        training: {steps: 5}\n  params: {method: dml, dml: {from_experiment: grid}}\n";
    let cfg = orrery_core::load_spec(text).unwrap().trials[0]
        .config()
        .unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, serde_json::to_string(&cfg).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_orrery-worker"))
        .arg("--config")
        .arg(&path)
        .arg("--workdir")
        .arg(dir.path())
        .args(["--device", "cpu", "--threads", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(orrery_worker::exit::BAD_CONFIG),
        "{stderr}"
    );
    assert!(
        stderr.contains("method dml without params.proportions")
            && stderr.contains("experiment \"grid\""),
        "{stderr}"
    );
}

/// A small config with `params` (YAML flow map) written as `name`.json in `dir`.
fn small_config(dir: &Path, name: &str, steps: u64, params: &str) -> std::path::PathBuf {
    let text = format!(
        "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {{name: mix}}\nspec:\n  \
        workload: aioli\n  objective: {{metric: eval/avg_ppl, goal: minimize}}\n  \
        model: {{layers: 1, d_model: 32, heads: 2, seq_len: 32}}\n  \
        data: {{corpus: \"builtin:mixing\", group_bytes: 20000}}\n  \
        training: {{steps: {steps}, batch_size: 8, lr: 0.003, warmup_steps: 5, log_every: 10, \
        eval_every: 10, eval_batches: 1, checkpoint_every: 15}}\n  params: {params}\n"
    );
    let cfg = orrery_core::load_spec(&text).unwrap().trials[0]
        .config()
        .unwrap();
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string(&cfg).unwrap()).unwrap();
    path
}

/// DoReMi inside one trial: the reference is exactly the stratified trial of the same seed, the
/// proxy's weights are mixtures that move, the trial's model trains statically on their average,
/// and a resume from the trial model's checkpoint goes straight to it with the same mixture.
#[test]
fn a_doremi_trial_trains_its_reference_and_proxy_then_resumes_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let groups = ["easy", "hard", "shared"];
    let stratified = small_config(dir.path(), "stratified", 30, "{method: stratified}");
    let strat = attempt(&stratified, &dir.path().join("stratified"));
    let config = small_config(
        dir.path(),
        "doremi",
        40,
        "{method: doremi, doremi: {reference_steps: 30, proxy_steps: 20, step_size: 1.0}}",
    );
    let work = dir.path().join("doremi");
    let first = attempt(&config, &work);

    // The reference: the stratified trial of this seed, step for step.
    for step in [0, 10, 20, 30] {
        let want = strat[&("eval/avg_ppl".into(), step)];
        let got = first[&("doremi/reference/eval/avg_ppl".into(), step)];
        assert!(
            (got - want).abs() <= 1e-9 * want,
            "step {step}: {got} vs {want}"
        );
    }
    // The proxy: mixtures at every log step, the uniform one at step 0, excess losses ≥ 0.
    let mut moved = false;
    for step in [0, 10, 20] {
        let w: Vec<f64> = groups
            .iter()
            .map(|g| first[&(format!("doremi/proxy/mix/p/{g}"), step)])
            .collect();
        assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{w:?}");
        assert!(
            w.iter().all(|x| *x >= 1e-3 / 3.0),
            "smoothing keeps {w:?} above ε/m"
        );
        moved |= w.iter().any(|x| (x - 1.0 / 3.0).abs() > 1e-3);
        if step > 0 {
            assert!(groups
                .iter()
                .all(|g| first[&(format!("doremi/proxy/mix/excess/{g}"), step)] >= 0.0));
        }
    }
    assert!(moved, "the excess losses move the proxy's weights");
    // The trial's model: one mixture, from step 0, that sums to 1 and is not uniform.
    let p: Vec<f64> = groups
        .iter()
        .map(|g| first[&(format!("mix/p/{g}"), 0)])
        .collect();
    assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{p:?}");
    assert!(p.iter().any(|x| (x - 1.0 / 3.0).abs() > 1e-3), "{p:?}");
    assert_eq!(at(&first, "mix/p/easy").len(), 1, "a static mixture");
    assert!(first.contains_key(&("test/avg_ppl".into(), 40)));

    // A second attempt resumes from the trial model's checkpoint of step 30: no reference or
    // proxy again, and the same points after it.
    let second = attempt(&config, &work);
    assert!(second.keys().all(|(n, _)| !n.starts_with("doremi/")));
    assert_eq!(second[&("sys/resumed_from_step".into(), 30)], 30.0);
    for ((name, step), v) in second.iter().filter(|((_, s), _)| *s > 30) {
        assert_eq!(
            first.get(&(name.clone(), *step)),
            Some(v),
            "{name} at {step}"
        );
    }
    assert!(second.contains_key(&("test/avg_ppl".into(), 40)));
}
