//! Admin routes for per-tenant quotas and usage: `GET /admin/v1/usage` (every tenant this
//! gateway has served, busiest first, with its limits: what `tenantgate top` reads), and
//! `GET|PUT|DELETE /admin/v1/tenants/{slug}/quotas` (the limits in force, a run-time override,
//! back to the config's).
//!
//! Owns only the HTTP shape. The numbers and the limits are the data plane's
//! (`tg_dataplane::quota`, `tg_dataplane::usage`); an override is written to the catalog
//! (`tg.tenant_quotas`, through `tg-catalog`), whose NOTIFY makes every gateway on it re-read
//! the tenant's route and with it the override, which then applies to every door at once. It
//! wins over `[gateway.tenant_limits.<slug>]`. It must never accept limits PostgreSQL or the
//! quota would refuse (they are validated first), and never answer for a slug the catalog
//! does not know.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use tg_control::catalog::Catalog;
use tg_control::model::TenantKey;
use tg_dataplane::config::LimitsConfig;
use tg_dataplane::router::RouteError;
use tg_dataplane::usage::TenantUsage;
use tg_http::problem::{Problem, ProblemBody};
use tg_http::server::Shared;
use utoipa::{IntoParams, ToSchema};

/// `GET /admin/v1/usage`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UsageOut {
    /// Tenants seen since this gateway started, busiest (time in the database) first.
    #[schema(value_type = Vec<Object>)]
    pub tenants: Vec<TenantUsage>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UsageQuery {
    /// At most this many tenants (the busiest); all when absent.
    pub limit: Option<usize>,
}

/// A tenant's limits in force now, where they come from, and its usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotasOut {
    pub tenant: String,
    /// `override` (set through this API, kept in the catalog) or `config` (tenantgate.toml).
    pub source: &'static str,
    #[schema(value_type = Object)]
    pub limits: LimitsConfig,
    #[schema(value_type = Object)]
    pub usage: TenantUsage,
}

/// `PUT /admin/v1/tenants/{slug}/quotas`: the fields to change; the others keep the values in
/// force now. 0 = no limit.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotasIn {
    pub max_concurrent_statements: Option<u32>,
    pub statements_per_second: Option<u32>,
    pub statement_timeout_ms: Option<u64>,
    pub idle_in_transaction_timeout_ms: Option<u64>,
    pub max_rows: Option<u64>,
    pub max_bytes: Option<u64>,
    pub work_mem_kb: Option<u64>,
    pub client_idle_timeout_ms: Option<u64>,
}

impl QuotasIn {
    fn over(&self, mut l: LimitsConfig) -> LimitsConfig {
        let QuotasIn {
            max_concurrent_statements,
            statements_per_second,
            statement_timeout_ms,
            idle_in_transaction_timeout_ms,
            max_rows,
            max_bytes,
            work_mem_kb,
            client_idle_timeout_ms,
        } = *self;
        l.max_concurrent_statements = max_concurrent_statements.unwrap_or(l.max_concurrent_statements);
        l.statements_per_second = statements_per_second.unwrap_or(l.statements_per_second);
        l.statement_timeout_ms = statement_timeout_ms.unwrap_or(l.statement_timeout_ms);
        l.idle_in_transaction_timeout_ms = idle_in_transaction_timeout_ms.unwrap_or(l.idle_in_transaction_timeout_ms);
        l.max_rows = max_rows.unwrap_or(l.max_rows);
        l.max_bytes = max_bytes.unwrap_or(l.max_bytes);
        l.work_mem_kb = work_mem_kb.unwrap_or(l.work_mem_kb);
        l.client_idle_timeout_ms = client_idle_timeout_ms.unwrap_or(l.client_idle_timeout_ms);
        l
    }
}

/// The catalog and the tenant's key, or 404 if the catalog does not know the slug. Re-reads
/// the tenant's route, so this gateway's view of its override is the catalog's.
async fn known(st: &Shared, slug: &str) -> Result<(std::sync::Arc<Catalog>, TenantKey), Problem> {
    let cat = st.data.router.catalog().await.map_err(|e| Problem::unavailable(format!("{e}")))?;
    let t = cat.tenant(slug).await.map_err(|e| Problem::control(&e))?;
    reread(st, slug).await?;
    Ok((cat, t.key))
}

/// Re-read `slug`'s route (and with it its quota override) from the catalog now.
async fn reread(st: &Shared, slug: &str) -> Result<(), Problem> {
    match st.data.router.route_fresh(slug).await {
        Ok(_) => Ok(()),
        Err(RouteError::UnknownTenant(_)) => Err(Problem::control(&tg_control::Error::UnknownTenant(slug.to_string()))),
        Err(e) => Err(Problem::unavailable(format!("{e}"))),
    }
}

fn out(st: &Shared, slug: &str) -> QuotasOut {
    let q = &st.data.quotas;
    QuotasOut {
        tenant: slug.to_string(),
        source: if q.has_override(slug) { "override" } else { "config" },
        limits: q.limits_for(slug),
        usage: q.tenant(slug).usage(),
    }
}

#[utoipa::path(get, path = "/admin/v1/usage", tag = "admin", params(UsageQuery),
    responses((status = 200, body = UsageOut), (status = 401, body = ProblemBody, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn usage(State(st): State<Shared>, headers: HeaderMap, Query(q): Query<UsageQuery>) -> Result<Json<UsageOut>, Problem> {
    st.admin(&headers)?;
    let mut tenants = st.data.quotas.usage();
    if let Some(n) = q.limit {
        tenants.truncate(n);
    }
    Ok(Json(UsageOut { tenants }))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{slug}/quotas", tag = "admin", params(("slug" = String, Path)),
    responses((status = 200, body = QuotasOut), (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn get_quotas(State(st): State<Shared>, headers: HeaderMap, Path(slug): Path<String>) -> Result<Json<QuotasOut>, Problem> {
    st.admin(&headers)?;
    known(&st, &slug).await?;
    Ok(Json(out(&st, &slug)))
}

#[utoipa::path(put, path = "/admin/v1/tenants/{slug}/quotas", tag = "admin", params(("slug" = String, Path)), request_body = QuotasIn,
    responses((status = 200, body = QuotasOut),
        (status = 400, description = "Unknown field or a value out of range", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn put_quotas(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    req: Result<Json<QuotasIn>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<QuotasOut>, Problem> {
    st.admin(&headers)?;
    let req = req.map(|Json(v)| v).map_err(|e| {
        Problem::bad_request("bad-request", format!("the request body is not valid: {}; send e.g. {{\"max_concurrent_statements\": 2}}", e.body_text()))
    })?;
    let (cat, key) = known(&st, &slug).await?;
    let limits = req.over(st.data.quotas.limits_for(&slug));
    limits.validate(&format!("the quotas of {slug}")).map_err(|e| Problem::bad_request("bad-quota", e.to_string()))?;
    let value = serde_json::to_value(limits).map_err(|e| Problem::internal(format!("cannot encode the quotas of {slug}: {e}")))?;
    cat.set_tenant_quotas(&key, &value).await.map_err(|e| Problem::control(&e))?;
    // The other gateways learn of it by NOTIFY; this one re-reads it now, for its answer.
    reread(&st, &slug).await?;
    let key = key.to_string();
    // Statement timeout and work_mem are backend session settings: idle backends are closed
    // so the next ones start with the new values (sessions in use keep theirs until they end).
    st.data.pools.close_idle_of(&key);
    Ok(Json(out(&st, &slug)))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{slug}/quotas", tag = "admin", params(("slug" = String, Path)),
    responses((status = 200, description = "Back to the config's limits", body = QuotasOut),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn delete_quotas(State(st): State<Shared>, headers: HeaderMap, Path(slug): Path<String>) -> Result<(StatusCode, Json<QuotasOut>), Problem> {
    st.admin(&headers)?;
    let (cat, key) = known(&st, &slug).await?;
    cat.clear_tenant_quotas(&key).await.map_err(|e| Problem::control(&e))?;
    reread(&st, &slug).await?;
    st.data.pools.close_idle_of(key.as_str());
    Ok((StatusCode::OK, Json(out(&st, &slug))))
}
