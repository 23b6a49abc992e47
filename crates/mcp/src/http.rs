//! The streamable HTTP endpoint of the MCP door, as an axum router that `tenantgate serve`
//! mounts under `/mcp` on the HTTP server (`tg_http::Mount`), so neither door depends on the
//! other.
//!
//! Every request must carry `Authorization: Bearer <tenant API key or JWT>`; it is verified
//! here, before the MCP service sees the request (401 or 403 with a JSON problem and
//! `WWW-Authenticate` otherwise), and the verified [`Caller`] rides in the request's
//! extensions to the tools. The service runs stateless (no MCP session ids; each POST is
//! answered on its own, as JSON), so no session can outlive or change its credential.
//!
//! Owns the middleware and the service's settings. Host-header checks are off: every request
//! needs a bearer credential that a DNS-rebinding page cannot have. Must never log or echo the
//! credential.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tg_dataplane::principal::AuthError;

use crate::identity::{refusal, Identity, Source};
use crate::tools::TenantTools;

/// The router to mount (at `/mcp`).
pub fn router(identity: Arc<Identity>) -> axum::Router {
    let tools_identity = identity.clone();
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .disable_allowed_hosts();
    let service = StreamableHttpService::new(
        move || Ok(TenantTools::new(tools_identity.clone(), Source::Request)),
        LocalSessionManager::default().into(),
        config,
    );
    axum::Router::new().fallback_service(service).layer(middleware::from_fn_with_state(identity, authenticate))
}

fn problem(status: StatusCode, code: &str, detail: String) -> Response {
    let body = serde_json::json!({
        "type": format!("https://tenantgate.dev/problems/{code}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "code": code,
        "detail": detail,
    });
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"tenantgate\""));
    }
    r
}

/// The one bearer token of a request.
fn bearer(req: &Request) -> Option<&str> {
    let mut values = req.headers().get_all(header::AUTHORIZATION).iter();
    let (Some(v), None) = (values.next(), values.next()) else { return None };
    let (scheme, token) = v.to_str().ok()?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

async fn authenticate(State(identity): State<Arc<Identity>>, mut req: Request, next: Next) -> Response {
    let Some(token) = bearer(&req) else {
        return problem(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send exactly one `Authorization: Bearer <token>` header, with a tenant API key (tgk_…) or a tenant JWT".into(),
        );
    };
    match identity.caller(token, None).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => {
            let status = match &e {
                AuthError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
                AuthError::Forbidden { .. } => StatusCode::FORBIDDEN,
                AuthError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            let code = match &e {
                AuthError::Forbidden { code, .. } => code,
                AuthError::Unauthorized { .. } => "unauthorized",
                AuthError::Unavailable(_) => "unavailable",
            };
            problem(status, code, refusal(&e))
        }
    }
}
