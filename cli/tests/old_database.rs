//! A database written before the workload registry — `tests/data/v0-stability.db`, made by the
//! binaries of main@de24798 running the spec in `operator/tests/data/v0-experiment.yaml` (4 trials
//! of 20 steps) — opens, reads and runs with today's: its migrations apply, its trials'
//! configurations read as typed params, the API analyses it, `orrery show` prints it, and today's
//! worker, run on a stored configuration, ends at the evaluation loss the old worker stored.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use orrery_api::Store;
use orrery_core::schedule::{ExperimentPhase, TrialPhase};
use orrery_core::workloads::stability::Stability;

fn bin(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_orrery")).with_file_name(name)
}

/// A copy of the committed database (opening it migrates it, and the original must stay as it is).
fn copy_of_old_database(dir: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v0-stability.db");
    let to = dir.join("old.db");
    std::fs::copy(from, &to).unwrap();
    to
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_of_the_old_binary_opens_reads_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = copy_of_old_database(dir.path());
    let store = Arc::new(Store::open_sqlite(&db).await.unwrap());
    let exp = store.find_experiment("old-sweep").await.unwrap();
    assert_eq!(exp.phase, ExperimentPhase::Succeeded);
    assert_eq!((exp.counts.total, exp.counts.succeeded), (4, 4));

    // Every stored configuration reads as the stability workload's typed params.
    let trials = store.trials(exp.id).await.unwrap();
    for t in &trials {
        assert_eq!(t.phase, TrialPhase::Succeeded);
        let p = t.config.params.of::<Stability>().expect("stability params");
        assert_eq!(p.z_loss, 1e-4);
        assert_eq!(
            serde_json::Value::Bool(p.qk_layernorm),
            t.params["params.qk_layernorm"]
        );
    }

    // The API analyses it: the typed analysis, tagged by workload.
    let options = orrery_api::Options::from(orrery_api::AuthConfig::local());
    let (addr, _server) = orrery_api::spawn(store.clone(), options, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("http://{addr}/api/v1/experiments/{}/analysis", exp.id);
    let analysis: serde_json::Value =
        tokio::task::spawn_blocking(move || ureq::get(&url).call().unwrap().into_json().unwrap())
            .await
            .unwrap();
    assert_eq!(analysis["workload"], "stability", "{analysis}");
    assert_eq!(analysis["experimentId"], exp.id);
    let configs = analysis["lrSensitivity"].as_array().unwrap();
    assert_eq!(configs.len(), 2, "qk-layernorm off and on: {analysis}");
    assert!(configs
        .iter()
        .all(|c| c["curve"].as_array().unwrap().len() == 2));

    // `orrery show` reads it.
    let out = Command::new(bin("orrery"))
        .args(["--db", db.to_str().unwrap(), "show", "old-sweep"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("LR sensitivity per configuration"), "{text}");

    // Today's worker runs the last trial's stored configuration (one thread, as `orrery run`
    // gave each of the two parallel workers on 2 cores) to the loss the old worker stored.
    let last = trials.last().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, serde_json::to_string(&last.config).unwrap()).unwrap();
    let work = dir.path().join("worker");
    let out = Command::new(bin("orrery-worker"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "--device",
            "cpu",
            "--threads",
            "1",
        ])
        .arg("--workdir")
        .arg(&work)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_eval: Vec<(i64, f64)> = orrery_core::spill::read(&work.join("metrics-spill.jsonl"))
        .unwrap()
        .into_iter()
        .filter(|p| p.name == "eval/loss")
        .map(|p| (p.step, p.value))
        .collect();
    let old_eval: Vec<(i64, f64)> = store
        .metric_history(last.id, "eval/loss")
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.step, p.value))
        .collect();
    assert_eq!(
        new_eval.iter().map(|p| p.0).collect::<Vec<_>>(),
        old_eval.iter().map(|p| p.0).collect::<Vec<_>>()
    );
    for ((step, new), (_, old)) in new_eval.iter().zip(&old_eval) {
        assert!(
            (new - old).abs() < 1e-4,
            "eval/loss at step {step}: {new} now, {old} in the old database"
        );
    }
}
