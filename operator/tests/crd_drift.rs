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
        &serde_json::json!(["stability"])
    );
    assert_eq!(spec.pointer("/properties/parallelism/minimum").unwrap(), 1);
}
