//! The CRDs committed under `charts/orrery/crds/` are what the Rust types generate.

use std::path::Path;

#[test]
fn committed_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/orrery/crds");
    for (file, crd) in orrery_operator::crd::crds() {
        let want = orrery_operator::crd::to_yaml(&crd);
        let have = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
        assert!(
            have == want,
            "charts/orrery/crds/{file} is out of date with the Rust types; regenerate it with `orrery crd --out charts/orrery/crds`"
        );
    }
}

#[test]
fn schema_carries_the_validator_ranges() {
    let crds = orrery_operator::crd::crds();
    let spec = crds[0]
        .1
        .pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
        .unwrap();
    let lr = spec.pointer("/properties/training/properties/lr").unwrap();
    assert_eq!(lr["minimum"], 0.0);
    assert_eq!(lr["exclusiveMinimum"], true);
    assert_eq!(
        spec.pointer("/properties/workload/enum").unwrap(),
        &serde_json::json!(orrery_core::spec::Workload::NAMES)
    );
    assert_eq!(spec.pointer("/properties/parallelism/minimum").unwrap(), 1);
}

/// The operator validates and registers an Experiment object through the spec document it
/// rebuilds from the typed object; every spec in `experiments/` and its folders must survive that
/// trip unchanged.
#[test]
fn spec_document_round_trips_the_repo_specs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments");
    let mut seen = 0;
    // A short run: the defaults the typed spec writes back (eval and checkpoint intervals) must
    // not be checked against its small `steps` as if the user had written them.
    let short = "apiVersion: orrery.dev/v1alpha1\nkind: Experiment\nmetadata: {name: short}\nspec:\n  workload: stability\n  model: {preset: tiny}\n  training: {steps: 50}\n  search: {kind: grid, space: {training.lr: {values: [0.001, 0.002]}}}\n";
    let mut specs = vec![(dir.join("<inline short run>"), short.to_string())];
    let mut dirs = vec![dir.clone()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().and_then(|e| e.to_str()) == Some("yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                specs.push((path, text));
            }
        }
    }
    for (path, text) in specs {
        let first = orrery_core::load_spec(&text).unwrap();
        let name = &first.experiment.metadata.name;
        let doc = orrery_operator::crd::spec_document(name, &first.experiment.spec);
        let second = orrery_core::load_spec(&doc).unwrap_or_else(|e| {
            panic!(
                "{}: the rebuilt document is refused:\n{e}\n{doc}",
                path.display()
            )
        });
        assert_eq!(
            second.experiment.spec,
            first.experiment.spec,
            "{}",
            path.display()
        );
        assert_eq!(second.trials.len(), first.trials.len());
        seen += 1;
    }
    assert!(
        seen >= 20,
        "expected the repo's experiment specs in {}",
        dir.display()
    );
}
