//! A workload's params declared once, for a toy that is not in the registry: the declaration
//! alone gives the struct serde reads with its defaults, the field table with a nested group, the
//! sweepable paths, the validator's checks ("did you mean" included) and the words `orrery
//! fields` prints — what `docs/workloads/README.md` says a new workload gets for free.

use orrery_core::fields::{self, Declared, Ty, NUM};
use serde_json::json;

orrery_core::declare_fields! {
    /// A nested group, swept as `params.inner.eta`.
    pub struct Inner {
        eta: f64 = 0.2, NUM.gt(0.0).le(1.0), "step size";
        rounds: u32 = 4, fields::int(1, 100), "rounds per update";
    }
}

orrery_core::declare_fields! {
    /// The toy's `params`.
    pub struct ToyParams {
        method: String = "a".into(), Ty::OneOf(&["a", "b"]), "which method";
        inner: Inner = Inner::default(), Ty::Group(Inner::FIELDS), "the method's settings";
    }
}

#[test]
fn one_declaration_serves_serde_defaults_paths_checks_and_words() {
    // serde and the defaults.
    assert_eq!(
        ToyParams::defaults(),
        json!({"method": "a", "inner": {"eta": 0.2, "rounds": 4}})
    );
    let p: ToyParams = serde_json::from_value(json!({"inner": {"eta": 0.5}})).unwrap();
    assert_eq!(
        (p.method.as_str(), p.inner.eta, p.inner.rounds),
        ("a", 0.5, 4)
    );

    // The sweepable paths, nested ones included, and what each accepts.
    let leaves: Vec<String> = fields::leaves(ToyParams::FIELDS, "params")
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        leaves,
        ["params.method", "params.inner.eta", "params.inner.rounds"]
    );
    let eta = fields::lookup(ToyParams::FIELDS, "inner.eta").unwrap();
    assert!(fields::check_value(eta.ty, &json!(0.5)).is_ok());
    assert_eq!(
        fields::check_value(eta.ty, &json!(2.0)).unwrap_err(),
        "must be ≤ 1 (got 2)"
    );
    assert_eq!(eta.ty.range(), "> 0, ≤ 1");
    assert_eq!(eta.doc, "step size");
    assert_eq!(
        fields::suggest("params.inner.etta", leaves.iter().map(String::as_str)),
        Some("params.inner.eta")
    );

    // The validator's checks of a written section, one error per problem.
    let errors: Vec<String> = orrery_core::validate::check_fields(
        ToyParams::FIELDS,
        &json!({"method": "c", "inner": {"eta": 0, "roundz": 3}}),
    )
    .iter()
    .map(|e| e.to_string())
    .collect();
    assert_eq!(
        errors,
        [
            "method: expected one of a, b, got \"c\"",
            "inner.roundz: unknown field `roundz` (did you mean `rounds`?); expected one of: eta, rounds",
            "inner.eta: must be > 0 (got 0)",
        ]
    );
}
