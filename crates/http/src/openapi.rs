//! `GET /openapi.json`: the OpenAPI 3.1 description of this API, generated from the handlers'
//! and types' annotations (utoipa), so it cannot drift from the code it describes.
//!
//! Owns the document's assembly (paths, schemas, the two bearer security schemes). It must
//! never describe a route that `server::app` does not serve, nor omit one (a test checks both;
//! mounted extensions bring their own document, merged in `server::app`).

use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{problem, schema, sql, tenant_keys};

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let mut jwt = Http::new(HttpAuthScheme::Bearer);
        jwt.bearer_format = Some("JWT or tenant API key (tgk_…)".into());
        jwt.description = Some(
            "A tenant JWT (HS256/RS256/ES256, pinned per configured key; claims: tenant, scope read|write, exp, \
             and iss/aud when configured) or a tenant API key `tgk_…`."
                .into(),
        );
        components.add_security_scheme("bearer", SecurityScheme::Http(jwt));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tenantgate HTTP API",
        description = "Tenant-scoped SQL and schema for apps and Text2SQL agents, and the admin API. \
                       Errors are RFC 9457 application/problem+json with the SQLSTATE where one exists.",
        license(name = "Apache-2.0")
    ),
    paths(
        sql::run_sql,
        schema::get_schema,
        tenant_keys::list_keys,
        tenant_keys::get_key,
        healthz,
        metrics,
    ),
    components(schemas(problem::ProblemBody)),
    modifiers(&Security),
    tags(
        (name = "tenant", description = "Authenticated as one tenant (JWT or API key)"),
        (name = "ops", description = "Health, metrics and this document"),
    )
)]
pub struct ApiDoc;

/// Liveness and catalog reachability.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, description = "Serving", body = Object),
              (status = 503, description = "The catalog is unreachable", body = problem::ProblemBody, content_type = "application/problem+json")))]
#[allow(dead_code)]
fn healthz() {}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus metrics", body = String, content_type = "text/plain")))]
#[allow(dead_code)]
fn metrics() {}

pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.paths.paths.insert(
        "/openapi.json".into(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .tag("ops")
                .summary(Some("This document"))
                .response("200", utoipa::openapi::Response::new("The OpenAPI document")),
        ),
    );
    doc
}

/// `GET /openapi.json`: `doc` is [`document`] merged with the mounted extensions' documents.
pub async fn serve_openapi(doc: std::sync::Arc<utoipa::openapi::OpenApi>) -> Response {
    Json(doc.as_ref()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_route() {
        let doc = serde_json::to_value(document()).expect("serialises");
        let paths = doc["paths"].as_object().expect("paths");
        for p in [
            "/v1/sql",
            "/v1/schema",
            "/v1/keys",
            "/v1/keys/{key_id}",
            "/healthz",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(paths.contains_key(p), "missing {p}");
        }
        // The admin API's 8 paths are tg-admin's, merged in when it is mounted.
        assert_eq!(paths.len(), 7);
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }
}
