//! Objects written before the workload registry (main@de24798, `tests/data/v0-*.yaml`) still read
//! with today's types: an Experiment with its `params` section, and a Trial as the operator wrote
//! it, whose `config` is what the old worker ran. (`scripts/k8s/smoke-test.sh` has a real API
//! server accept both under today's CRDs.)

use std::path::Path;

use orrery_core::workloads::stability::Stability;
use orrery_operator::crd::{Experiment, Trial};

fn data(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

#[test]
fn an_old_trial_reads_as_the_same_configuration() {
    let text = data("v0-trial.yaml");
    let trial: Trial = serde_yaml::from_str(&text).unwrap();
    let p = trial.spec.config.params.of::<Stability>().unwrap();
    assert!(p.qk_layernorm);
    assert_eq!(p.z_loss, 1e-4);
    assert_eq!(trial.spec.config.training.lr, 0.01);
    assert_eq!(trial.spec.config.model.seq_len, 32);
    // Written back, the configuration is the one stored, field for field, plus the fields added
    // since at their defaults: `training.precision: auto` (fp32 on the CPU, what the old worker
    // ran) and `training.keep_checkpoints: 3` (the old worker uploaded none).
    let stored: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut stored: serde_json::Value = serde_json::to_value(&stored["spec"]["config"]).unwrap();
    stored["training"]["precision"] = "auto".into();
    stored["training"]["keep_checkpoints"] = 3.into();
    assert_eq!(serde_json::to_value(&trial.spec.config).unwrap(), stored);
}

#[test]
fn an_old_experiment_reads_and_expands_as_before() {
    let exp: Experiment = serde_yaml::from_str(&data("v0-experiment.yaml")).unwrap();
    let doc = orrery_operator::crd::spec_document("old-sweep", &exp.spec.spec);
    let loaded = orrery_core::load_spec(&doc).unwrap();
    assert_eq!(loaded.trials.len(), 4);
    let config = loaded.trials[3].config().unwrap();
    let p = config.params.of::<Stability>().unwrap();
    assert!(p.qk_layernorm);
    assert_eq!(p.z_loss, 1e-4);
}
