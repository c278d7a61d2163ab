//! JSON-schema pieces for the spec types (the Kubernetes CRDs are generated from them). Free-form
//! maps — search spaces, list-search points, swept parameter values — are kept as written and
//! interpreted by the validator, so their schema only says "an object, keep its fields".

use schemars::{json_schema, Schema, SchemaGenerator};

/// Any JSON object, preserved as written (`x-kubernetes-preserve-unknown-fields`).
pub fn free_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

/// A list of free objects.
pub fn list_of_free_objects(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}})
}

/// A Kubernetes int-or-string (resource quantities).
pub fn int_or_string(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"x-kubernetes-int-or-string": true})
}
