//! The OpenAPI 3.1 description served at `/openapi.json`. Each handler describes itself
//! (`#[utoipa::path]` in `routes`) and each body type derives its schema; this module adds what
//! every operation shares — the bearer-token scheme and the errors any route can answer — in one
//! place rather than on every handler.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Doc, Ref};
use utoipa::OpenApi;

use orrery_core::dto::ErrorBody;

use crate::events::Event;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orrery API",
        description = "Experiments, trials and their metrics: Orrery's system of record. \
            Tokens: admin (everything), a trial's worker token (that trial's metrics and state), \
            read (reads, when reads are not open). See `api/src/auth.rs`."
    ),
    components(schemas(ErrorBody, Event)),
    tags(
        (name = "experiments", description = "specs, their trials, rankings and analyses"),
        (name = "trials", description = "one trial: state, metrics, worker token"),
        (name = "events", description = "live updates (server-sent events)"),
    )
)]
pub struct ApiDoc;

/// Adds the shared parts once the routes' own descriptions are in (a utoipa `Modify` on
/// [`ApiDoc`] would run before the routes are collected, on an empty document).
pub fn add_shared(doc: &mut Doc) {
    {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // Reads may be open, so the token is optional everywhere: `{}` is the "no token" choice.
        doc.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::default(),
        ]);
        for item in doc.paths.paths.values_mut() {
            let ops = [
                (item.get.as_mut(), false),
                (item.post.as_mut(), true),
                (item.put.as_mut(), true),
                (item.delete.as_mut(), false),
            ];
            for (op, has_body) in ops {
                if let Some(op) = op {
                    add_shared_errors(op, has_body);
                }
            }
        }
    }
}

/// The answers any operation can give besides its own: a bad or missing token, a path or query
/// axum cannot parse, a body over the limit. Documented so a client (and schemathesis) expects them.
fn add_shared_errors(op: &mut Operation, has_body: bool) {
    let has_params = op.parameters.as_ref().is_some_and(|ps| {
        ps.iter()
            .any(|p| matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query))
    });
    let mut shared = vec![
        ("401", "no token where one is needed, or an unknown token"),
        ("403", "a known token that may not do this"),
    ];
    if has_params {
        shared.push(("400", "a path or query parameter that cannot be read"));
    }
    if has_body {
        shared.push(("400", "a body that cannot be read"));
        shared.push(("413", "the body is over the size limit (8 MiB)"));
        shared.push(("422", "the body is not what this operation takes"));
    }
    for (status, why) in shared {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(why)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build()
                    .into()
            });
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn every_operation_documents_auth_errors() {
        let doc = crate::routes::openapi_doc();
        let mut seen = 0;
        for (path, item) in &doc.paths.paths {
            for op in [&item.get, &item.post].into_iter().flatten() {
                seen += 1;
                for status in ["401", "403"] {
                    assert!(
                        op.responses.responses.contains_key(status),
                        "{path}: {status} missing"
                    );
                }
            }
        }
        assert!(seen >= 14, "only {seen} operations documented");
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["openapi"], "3.1.0");
        assert!(json["components"]["schemas"]["MetricPoint"].is_object());
    }
}
