//! `GET /openapi.json`: the OpenAPI 3.1 description of this API, generated from the handlers'
//! and types' annotations (utoipa), so it cannot drift from the code it describes.
//!
//! Owns the document's assembly (paths, schemas, the two bearer security schemes). It must
//! never describe a route that `server::app` does not serve, nor omit one (a test checks both).

use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::{admin, problem, schema, sql, tenant_keys};

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
        let mut admin = Http::new(HttpAuthScheme::Bearer);
        admin.description = Some("The admin token from http.admin_token_file or http.admin_token_env.".into());
        components.add_security_scheme("admin", SecurityScheme::Http(admin));
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
        admin::list_tenants,
        admin::create_tenant,
        admin::show_tenant,
        admin::suspend_tenant,
        admin::resume_tenant,
        admin::erase_tenant,
        admin::list_keys,
        admin::create_key,
        admin::revoke_key,
        admin::migration_status,
        healthz,
        metrics,
    ),
    components(schemas(problem::ProblemBody)),
    modifiers(&Security),
    tags(
        (name = "tenant", description = "Authenticated as one tenant (JWT or API key)"),
        (name = "admin", description = "Operators, with the admin token"),
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

pub async fn serve_openapi() -> Response {
    Json(document()).into_response()
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
            "/admin/v1/tenants",
            "/admin/v1/tenants/{slug}",
            "/admin/v1/tenants/{slug}/suspend",
            "/admin/v1/tenants/{slug}/resume",
            "/admin/v1/tenants/{slug}/erase",
            "/admin/v1/tenants/{slug}/keys",
            "/admin/v1/tenants/{slug}/keys/{key_id}",
            "/admin/v1/migrations",
            "/healthz",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(paths.contains_key(p), "missing {p}");
        }
        assert_eq!(paths.len(), 15);
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }
}
