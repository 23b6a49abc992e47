//! `POST /v1/sql`: one statement, with bound parameters, as the caller's tenant role.
//!
//! Flow: authenticate → rate limit → gate (one statement, scope, timeout cap) → check out a
//! backend of the tenant's role from the shared pools → run it (`exchange`) under the tenant's
//! row, byte and time limits → map values to JSON (`values`) → give the connection back.
//!
//! Owns the request and response shapes and the error mapping of one call. Must never:
//! interpolate a parameter into SQL, run a statement the gate refused, pass NOTICE or DETAIL
//! text on, reuse a connection whose exchange did not finish cleanly, or read a tenant id from
//! the body or the query string (unknown body fields such as `tenant_id` are ignored).

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tg_dataplane::backend::{Backend, PoolError};
use utoipa::ToSchema;

use crate::metrics;
use crate::problem::Problem;
use crate::server::{Shared, TenantSlot};
use crate::values;
use crate::exchange::{self, BackendIo, ExecError, Statement};

/// Extra time given to the database beyond `statement_timeout` before the gateway gives up on
/// the connection itself.
const GRACE: Duration = Duration::from_secs(5);
/// PostgreSQL's limit on parameters in one Bind message.
const MAX_PARAMS: usize = 65_535;

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

/// `BackendIo` over the wire gateway's pooled backend.
pub struct Pooled<'a>(pub &'a mut Backend);

impl BackendIo for Pooled<'_> {
    async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.0.send(bytes).await.map_err(|e| e.to_string())
    }
    async fn recv_frame(&mut self) -> Result<bytes::Bytes, String> {
        self.0.recv().await.map(|m| m.bytes).map_err(|e| e.to_string())
    }
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

/// Run one statement on a checked-out backend, with a wall-clock guard; gives the backend back
/// (reset) when the exchange ended cleanly, closes it otherwise.
pub async fn execute(mut backend: Backend, st: &Statement<'_>) -> Result<exchange::Outcome, Problem> {
    let guard = Duration::from_millis(st.statement_timeout_ms) + GRACE;
    let result = tokio::time::timeout(guard, exchange::run(&mut Pooled(&mut backend), st)).await;
    match result {
        Ok(Ok(out)) => {
            tokio::spawn(backend.release());
            Ok(out)
        }
        Ok(Err(ExecError::Db { sqlstate, message })) => {
            tokio::spawn(backend.release());
            Err(Problem::postgres(&sqlstate, &message))
        }
        Ok(Err(ExecError::Unsupported(m))) => {
            backend.close();
            Err(Problem::bad_request("unsupported", m))
        }
        Ok(Err(ExecError::Broken(_))) => {
            backend.close();
            let mut p = Problem::unavailable("the connection to the tenant's database broke during the statement; retry");
            p.status = axum::http::StatusCode::BAD_GATEWAY;
            p.code = "backend-unavailable";
            Err(p)
        }
        Err(_) => {
            if let Some(c) = backend.cancel_target() {
                tokio::spawn(async move {
                    let _ = c.cancel().await;
                });
            }
            backend.close();
            Err(Problem::postgres("57014", "canceling statement due to statement timeout"))
        }
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
        (status = 429, description = "The tenant's rate limit is exhausted (see Retry-After)", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 504, description = "Statement timeout", body = crate::problem::ProblemBody, content_type = "application/problem+json"),
    ),
    params(("X-Tenant-ID" = Option<String>, Header, description = "If sent, must equal the credential's tenant")),
    security(("bearer" = []))
)]
pub async fn run_sql(
    State(st): State<Shared>,
    Extension(slot): Extension<TenantSlot>,
    headers: HeaderMap,
    body: Result<Json<SqlRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<SqlResponse>, Problem> {
    // Authenticate before looking at the body: a bad credential is a 401 whatever it sends.
    let (principal, route) = st.tenant(&headers, &slot).await?;
    let Json(req) = body.map_err(|e| {
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
    let verdict = st.data.gate.check(&principal.tenant, &req.sql, principal.gate_scope(), &limits.gate_limits()).map_err(|d| {
        metrics::denial(d.rule);
        Problem::denial(&d)
    })?;
    if verdict.statements > 1 {
        return Err(Problem::bad_request(
            "one-statement",
            format!("send one statement per request; this one holds {}", verdict.statements),
        )
        .with_sqlstate("42601"));
    }
    if verdict.statements == 0 && st.data.gate.config().enabled {
        return Err(Problem::bad_request("empty", "the sql field holds no statement").with_sqlstate("42601"));
    }
    // Held through a move's fence, retried on the new route if the old one was just closed.
    let (_, backend) = tg_dataplane::admission::checkout(&st.data.router, &st.data.pools, route.clone(), principal.scope)
        .await
        .map_err(|e| pool_problem(&e))?;
    let statement = Statement {
        sql: &req.sql,
        params: &params,
        statement_timeout_ms: limits.statement_timeout_ms,
        max_rows: limits.max_rows,
        max_bytes: limits.max_bytes,
    };
    let out = execute(backend, &statement).await?;
    let names = type_names(&st, &route, principal.scope, &out.columns).await;
    Ok(Json(SqlResponse {
        columns: out.columns.iter().zip(names).map(|(c, t)| SqlColumn { name: c.name.clone(), type_: t }).collect(),
        rows: out.rows,
        row_count: out.row_count,
        truncated: out.truncated,
    }))
}

/// Type names of the result columns: built-ins from a table; others (the tenant's own enums,
/// domains, …) from the tenant's own database, through the pool, when there are any.
async fn type_names(
    st: &Shared,
    route: &tg_dataplane::router::Route,
    scope: tg_catalog::keys::KeyScope,
    cols: &[exchange::Column],
) -> Vec<String> {
    let unknown: Vec<u32> = cols.iter().filter(|c| values::builtin_type_name(c.type_oid).is_none()).map(|c| c.type_oid).collect();
    let mut looked_up = std::collections::HashMap::new();
    if !unknown.is_empty() {
        if let Ok(backend) = st.data.pools.checkout(route, scope).await {
            let list = format!("{{{}}}", unknown.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
            let params = [Some(list)];
            let q = Statement {
                sql: "SELECT t.oid::int8, pg_catalog.format_type(t.oid, NULL) FROM pg_catalog.pg_type t WHERE t.oid = ANY ($1::oid[])",
                params: &params,
                statement_timeout_ms: 5_000,
                max_rows: 1_000,
                max_bytes: 1 << 20,
            };
            if let Ok(out) = execute(backend, &q).await {
                for r in out.rows {
                    if let (Some(Value::Number(oid)), Some(Value::String(name))) = (r.first(), r.get(1)) {
                        if let Some(oid) = oid.as_u64() {
                            looked_up.insert(oid, name.clone());
                        }
                    }
                }
            }
        }
    }
    cols.iter()
        .map(|c| match values::builtin_type_name(c.type_oid) {
            Some(n) => n.to_string(),
            None => looked_up.get(&u64::from(c.type_oid)).cloned().unwrap_or_else(|| "unknown".to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_to_text() {
        let p = text_params(&[json!(1), json!("a"), json!(null), json!(true), json!({"k": [1]}), json!(1.5)]).expect("ok");
        assert_eq!(
            p,
            vec![Some("1".into()), Some("a".into()), None, Some("true".into()), Some("{\"k\":[1]}".into()), Some("1.5".into())]
        );
    }
}
