//! `POST /v1/sql`: one statement, with bound parameters, as the caller's tenant role.
//!
//! Flow: authenticate → rate limit → `tg_dataplane::statement::run` (gate: one statement,
//! scope, timeout cap → a backend of the tenant's role from the shared pools → the exchange
//! under the tenant's row, byte and time limits → values as JSON → the connection back). The
//! MCP door's `run_sql` takes the same path.
//!
//! Owns the request and response shapes and the error mapping of one call. Must never:
//! interpolate a parameter into SQL, run a statement the gate refused, pass NOTICE or DETAIL
//! text on, reuse a connection whose exchange did not finish cleanly, or read a tenant id from
//! the body or the query string (unknown body fields such as `tenant_id` are ignored).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tg_dataplane::backend::PoolError;
use tg_dataplane::statement::{self, StatementError, MAX_PARAMS};
use utoipa::ToSchema;

use crate::metrics;
use crate::problem::Problem;
use crate::server::{Shared, TenantSlot};

#[derive(Debug, Deserialize, ToSchema)]
pub struct SqlRequest {
    /// Exactly one SQL statement; `$1`, `$2`, … refer to `params`.
    #[schema(example = "SELECT name, price FROM menu_items WHERE category = $1 ORDER BY price DESC LIMIT 5")]
    pub sql: String,
    /// Parameter values, bound (never interpolated) in text form: strings as they are, numbers
    /// and booleans as their JSON text, objects and arrays as JSON, null as NULL.
    #[serde(default)]
    #[schema(value_type = Vec<Object>, example = json!(["mains"]))]
    pub params: Vec<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SqlColumn {
    pub name: String,
    /// PostgreSQL type name, e.g. `integer`, `numeric`, `timestamp with time zone`.
    #[serde(rename = "type")]
    pub type_: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SqlResponse {
    pub columns: Vec<SqlColumn>,
    /// One array per row, values in column order. Integers and floats are numbers (NaN and
    /// Infinity are strings), booleans are booleans, json/jsonb are JSON, numeric is a string,
    /// timestamptz is RFC 3339, bytea is base64, NULL is null, everything else is text.
    #[schema(value_type = Vec<Vec<Object>>)]
    pub rows: Vec<Vec<Value>>,
    /// Rows returned, or affected by INSERT/UPDATE/DELETE/MERGE.
    pub row_count: u64,
    /// True when the tenant's row or byte limit cut the result short.
    pub truncated: bool,
}

/// Parameters in PostgreSQL text form.
pub fn text_params(params: &[Value]) -> Result<Vec<Option<String>>, Problem> {
    if params.len() > MAX_PARAMS {
        return Err(Problem::bad_request("too-many-params", format!("at most {MAX_PARAMS} params are allowed")));
    }
    Ok(params
        .iter()
        .map(|v| match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            other => Some(other.to_string()),
        })
        .collect())
}

/// A pool error as a problem. Backend login failures are summarised: their text comes from
/// the tenant's server and is not the caller's business.
pub fn pool_problem(e: &PoolError) -> Problem {
    match e {
        PoolError::Exhausted { .. } => {
            let mut p = Problem::unavailable("the tenant's database server has no free connection right now; retry shortly");
            p.code = "pool-exhausted";
            p.sqlstate = Some("53300".into());
            p
        }
        PoolError::NotRoutable(_) => Problem::forbidden("tenant-unavailable", "this tenant is not available right now"),
        PoolError::Backend { code, .. } => {
            let mut p = Problem::unavailable("the tenant's database refused the gateway's login; the tenant may be suspended or moving. Retry shortly");
            p.sqlstate = Some(code.clone());
            p
        }
        PoolError::Unreachable(_) | PoolError::Closed | PoolError::Protocol(_) => {
            let mut p = Problem::unavailable("the tenant's database server cannot be reached right now; retry shortly");
            p.status = axum::http::StatusCode::BAD_GATEWAY;
            p.code = "backend-unavailable";
            p
        }
    }
}

/// Why a statement did not run, as a problem.
pub fn statement_problem(e: StatementError) -> Problem {
    match e {
        StatementError::Denied(d) => {
            metrics::denial(d.rule);
            Problem::denial(&d)
        }
        StatementError::NotOne(n) => Problem::bad_request(
            "one-statement",
            format!("send one statement per request; this one holds {n}"),
        )
        .with_sqlstate("42601"),
        StatementError::Empty => Problem::bad_request("empty", "the sql field holds no statement").with_sqlstate("42601"),
        StatementError::TooManyParams => {
            Problem::bad_request("too-many-params", format!("at most {MAX_PARAMS} params are allowed"))
        }
        StatementError::Pool(e) => pool_problem(&e),
        StatementError::Db { sqlstate, message } => Problem::postgres(&sqlstate, &message),
        StatementError::Unsupported(m) => Problem::bad_request("unsupported", m),
        StatementError::Broken => {
            let mut p = Problem::unavailable("the connection to the tenant's database broke during the statement; retry");
            p.status = axum::http::StatusCode::BAD_GATEWAY;
            p.code = "backend-unavailable";
            p
        }
        StatementError::Timeout => Problem::postgres("57014", "canceling statement due to statement timeout"),
        StatementError::Quota(d) => Problem::quota(&d),
    }
}

#[utoipa::path(
    post,
    path = "/v1/sql",
    tag = "tenant",
    request_body = SqlRequest,
    responses(
        (status = 200, description = "The statement ran", body = SqlResponse),
        (status = 400, description = "Malformed request, more than one statement, or SQL error", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 401, description = "Missing, malformed, expired or otherwise invalid credential", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "Refused by the gate or the database (with `rule`/`sqlstate`), X-Tenant-ID mismatch, tenant suspended", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Constraint violation or serialization failure", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "The tenant's rate limit or quota is exhausted (see Retry-After; a quota names its limit, SQLSTATE 53400)", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 504, description = "Statement timeout", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
    ),
    params(("X-Tenant-ID" = Option<String>, Header, description = "If sent, must equal the credential's tenant")),
    security(("bearer" = []))
)]
pub async fn run_sql(State(st): State<Shared>, req: Request) -> Result<Response, Problem> {
    // The headers are read where they lie (the HeaderMap extractor clones them all).
    let (parts, body) = req.into_parts();
    let slot = parts.extensions.get::<TenantSlot>().cloned().unwrap_or_default();
    // Authenticate before looking at the body: a bad credential is a 401 whatever it sends.
    let (principal, route) = st.tenant(&parts.headers, &slot).await?;
    let req = read_body(Request::from_parts(parts, body), &st).await.map_err(|e| {
        let mut p = Problem::bad_request(
            "bad-request",
            format!("the body must be JSON {{\"sql\": \"...\", \"params\": [...]}}: {}", e.body_text()),
        );
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            p.status = e.status();
            p.code = "too-large";
            p.title = "Content Too Large";
        }
        p
    })?;
    let params = text_params(&req.params)?;
    let limits = st.sql_limits(&principal.tenant);
    let answer = statement::run(&st.data, &principal, &route, &req.sql, &params, &limits).await.map_err(statement_problem)?;
    let resp = SqlResponse {
        columns: answer.columns.into_iter().map(|(name, type_)| SqlColumn { name, type_ }).collect(),
        rows: answer.rows,
        row_count: answer.row_count,
        truncated: answer.truncated,
    };
    Ok(Json(resp).into_response())
}

/// The request body as [`SqlRequest`], read by axum's `Json` (its body limit, content-type
/// check and rejections) once the headers have been looked at in place.
async fn read_body<S: Send + Sync>(req: Request, st: &S) -> Result<SqlRequest, JsonRejection> {
    Json::<SqlRequest>::from_request(req, st).await.map(|Json(r)| r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `read_body` of a POST with this content type and body, under a body limit, as the
    /// route's `DefaultBodyLimit` layer sets it: the statement, or the rejection's status.
    async fn read(content_type: Option<&str>, body: &str, limit: usize) -> Result<String, u16> {
        use axum::body::Body;
        use axum::http::header;
        use tower::{Layer, ServiceExt};
        let mut b = Request::builder().method("POST").uri("/v1/sql");
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        let req = b.body(Body::from(body.to_string())).expect("request");
        let svc = axum::extract::DefaultBodyLimit::max(limit).layer(tower::service_fn(|req: Request| async move {
            Ok::<_, std::convert::Infallible>(read_body(req, &()).await.map(|r| r.sql).map_err(|e| e.status().as_u16()))
        }));
        match svc.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    #[tokio::test]
    async fn body_is_read_as_axums_json_reads_it() {
        let ok = r#"{"sql": "SELECT 1", "params": []}"#;
        assert_eq!(read(Some("application/json"), ok, 1024).await, Ok("SELECT 1".into()));
        assert_eq!(read(Some("Application/JSON"), ok, 1024).await, Ok("SELECT 1".into()));
        assert_eq!(read(Some("application/json; charset=utf-8"), ok, 1024).await, Ok("SELECT 1".into()));
        assert_eq!(read(Some("application/vnd.api+json"), ok, 1024).await, Ok("SELECT 1".into()));
        assert_eq!(read(Some("text/plain"), ok, 1024).await, Err(415));
        assert_eq!(read(None, ok, 1024).await, Err(415));
        // Malformed or missing fields, and the body limit.
        assert_eq!(read(Some("application/json"), "{\"sql\": ", 1024).await, Err(400));
        assert_eq!(read(Some("application/json"), r#"{"params": []}"#, 1024).await, Err(422));
        assert_eq!(read(Some("application/json"), ok, 8).await, Err(413));
        assert_eq!(read(Some("application/json; charset=utf-8"), ok, 8).await, Err(413));
    }

    #[test]
    fn params_to_text() {
        let p = text_params(&[json!(1), json!("a"), json!(null), json!(true), json!({"k": [1]}), json!(1.5)]).expect("ok");
        assert_eq!(
            p,
            vec![Some("1".into()), Some("a".into()), None, Some("true".into()), Some("{\"k\":[1]}".into()), Some("1.5".into())]
        );
    }
}
