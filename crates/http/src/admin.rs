//! The admin API under `/admin/v1/`: tenants (create, list, show, suspend, resume, erase), their
//! API keys (create, list, revoke) and app-schema migration status, for operators.
//!
//! Every route requires the admin bearer token (`http.admin_token_file`/`_env`, compared in
//! constant time); a tenant credential is not an admin token. Each route calls the same
//! control-plane function as the matching CLI command, so semantics and error texts are the
//! CLI's (mapped to statuses in `problem`). Must never return a key secret except once, from
//! key creation, or a server URL with its password.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use tg_control::catalog::{Catalog, Tenant};
use tg_control::keys::{self, KeyInfo, KeyScope};
use tg_control::mobility::erase;
use tg_control::model::Placement;
use tg_control::tenants;
use utoipa::ToSchema;

use crate::problem::{Problem, ProblemBody};
use crate::server::Shared;

type Chrono = chrono::DateTime<chrono::Utc>;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlacementName {
    Pooled,
    Schema,
    Database,
}

impl From<PlacementName> for Placement {
    fn from(p: PlacementName) -> Placement {
        match p {
            PlacementName::Pooled => Placement::Pooled,
            PlacementName::Schema => Placement::Schema,
            PlacementName::Database => Placement::Database,
        }
    }
}

/// A tenant as the catalog records it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantOut {
    pub slug: String,
    /// Opaque tenant key (`t` + 12 hex digits): also its role and container names.
    pub key: String,
    /// provisioning, active, suspended, failed or erasing.
    pub status: String,
    pub placement: String,
    pub server: String,
    pub region: String,
    pub residency: Vec<String>,
    pub requires: Vec<String>,
    pub is_probe: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Chrono,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Chrono,
}

impl From<Tenant> for TenantOut {
    fn from(t: Tenant) -> TenantOut {
        TenantOut {
            slug: t.slug,
            key: t.key.to_string(),
            status: t.status.to_string(),
            placement: t.placement.to_string(),
            server: t.server,
            region: t.region,
            residency: t.residency,
            requires: t.requires,
            is_probe: t.is_probe,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// `tenant show`: the tenant, where it lives, and any unfinished operation.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantDetail {
    #[serde(flatten)]
    pub tenant: TenantOut,
    pub database: String,
    pub schema: String,
    pub roles: Vec<String>,
    #[schema(value_type = Option<Object>)]
    pub open_operation: Option<serde_json::Value>,
    pub next_step: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub slug: String,
    pub placement: PlacementName,
    #[serde(default)]
    pub server: Option<String>,
    /// Regions the tenant's data may live in.
    #[serde(default)]
    pub residency: Vec<String>,
    /// Declared requirements, e.g. `dedicated-database`.
    #[serde(default)]
    pub requires: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedOut {
    pub tenant: TenantOut,
    /// True when an interrupted creation was resumed and finished.
    pub resumed: bool,
    pub migration_version: i32,
    pub elapsed_ms: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// The slug again, to confirm; erasure cannot be undone.
    pub confirm: String,
}

#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// The key maps to the tenant's read-only role.
    #[serde(default)]
    pub read_only: bool,
    /// A label, e.g. `text2sql-agent`.
    #[serde(default)]
    pub name: Option<String>,
}

/// An API key as listed: never the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub tenant: String,
    pub name: Option<String>,
    /// `read-write` or `read-only`.
    pub scope: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Chrono,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Chrono>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Chrono>,
}

impl From<KeyInfo> for KeyView {
    fn from(k: KeyInfo) -> KeyView {
        KeyView {
            id: k.id,
            tenant: k.tenant,
            name: k.name,
            scope: k.scope.as_str().to_string(),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new key: the secret is shown here once and never again.
#[derive(Serialize, ToSchema)]
pub struct NewKeyView {
    #[serde(flatten)]
    pub key: KeyView,
    /// `tgk_…`: use as `Authorization: Bearer`, or as the wire-protocol password.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MigrationTargetOut {
    pub target: String,
    /// The tenant's slug, or `(pooled tenants)` for a shared pool target.
    pub tenant: String,
    pub version: i32,
    pub latest: i32,
    pub pending: bool,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MigrationStatus {
    pub latest: i32,
    pub targets: Vec<MigrationTargetOut>,
}

fn ctl(e: tg_control::Error) -> Problem {
    Problem::control(&e)
}

async fn shared_catalog(st: &Shared) -> Result<std::sync::Arc<Catalog>, Problem> {
    st.data
        .router
        .catalog()
        .await
        .map_err(|e| Problem::unavailable(format!("{e}")))
}

async fn own_catalog(st: &Shared) -> Result<Catalog, Problem> {
    Catalog::connect(&st.control.catalog.url).await.map_err(ctl)
}

fn body<T>(b: Result<Json<T>, axum::extract::rejection::JsonRejection>) -> Result<T, Problem> {
    b.map(|Json(v)| v).map_err(|e| {
        let mut p = Problem::bad_request("bad-request", format!("the request body is not valid: {}", e.body_text()));
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            p.status = e.status();
        }
        p
    })
}

type JsonResult<T> = Result<Json<T>, Problem>;

#[utoipa::path(get, path = "/admin/v1/tenants", tag = "admin",
    responses((status = 200, body = [TenantOut]), (status = 401, body = ProblemBody, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn list_tenants(State(st): State<Shared>, headers: HeaderMap) -> JsonResult<Vec<TenantOut>> {
    st.admin(&headers)?;
    let cat = shared_catalog(&st).await?;
    Ok(Json(cat.tenants().await.map_err(ctl)?.into_iter().map(TenantOut::from).collect()))
}

#[utoipa::path(post, path = "/admin/v1/tenants", tag = "admin", request_body = CreateTenant,
    responses(
        (status = 201, body = CreatedOut),
        (status = 400, description = "Invalid slug or body", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Tenant exists", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Residency violation, unknown server, invalid input", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("admin" = [])))]
pub async fn create_tenant(
    State(st): State<Shared>,
    headers: HeaderMap,
    req: Result<Json<CreateTenant>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<CreatedOut>), Problem> {
    st.admin(&headers)?;
    let req = body(req)?;
    let mut cat = own_catalog(&st).await?;
    let created = tenants::create(
        &st.control,
        &mut cat,
        &tenants::CreateRequest {
            slug: req.slug,
            placement: req.placement.into(),
            server: req.server,
            residency: req.residency,
            requires: req.requires,
            is_probe: false,
        },
    )
    .await
    .map_err(ctl)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedOut {
            tenant: created.tenant.into(),
            resumed: created.resumed,
            migration_version: created.migration_version,
            elapsed_ms: u64::try_from(created.elapsed_ms).unwrap_or(u64::MAX),
        }),
    ))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{slug}", tag = "admin", params(("slug" = String, Path)),
    responses((status = 200, body = TenantDetail), (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn show_tenant(State(st): State<Shared>, headers: HeaderMap, Path(slug): Path<String>) -> JsonResult<TenantDetail> {
    st.admin(&headers)?;
    let cat = shared_catalog(&st).await?;
    let v = tenants::show(&cat, &slug).await.map_err(ctl)?;
    Ok(Json(TenantDetail {
        tenant: v.tenant.into(),
        database: v.database,
        schema: v.schema,
        roles: v.roles,
        open_operation: v.open_operation.and_then(|o| serde_json::to_value(o).ok()),
        next_step: v.next_step,
    }))
}

async fn set_suspended(st: &Shared, headers: &HeaderMap, slug: &str, suspend: bool) -> JsonResult<TenantOut> {
    st.admin(headers)?;
    let cat = shared_catalog(st).await?;
    let t = tenants::set_suspended(&cat, slug, suspend).await.map_err(ctl)?;
    // Routing learns of the change by NOTIFY; make this process's own view current at once.
    let _ = st.data.router.route_fresh(slug).await;
    Ok(Json(t.into()))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{slug}/suspend", tag = "admin", params(("slug" = String, Path)),
    responses((status = 200, body = TenantOut), (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Wrong status", body = ProblemBody, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn suspend_tenant(State(st): State<Shared>, headers: HeaderMap, Path(slug): Path<String>) -> JsonResult<TenantOut> {
    set_suspended(&st, &headers, &slug, true).await
}

#[utoipa::path(post, path = "/admin/v1/tenants/{slug}/resume", tag = "admin", params(("slug" = String, Path)),
    responses((status = 200, body = TenantOut), (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Wrong status", body = ProblemBody, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn resume_tenant(State(st): State<Shared>, headers: HeaderMap, Path(slug): Path<String>) -> JsonResult<TenantOut> {
    set_suspended(&st, &headers, &slug, false).await
}

#[utoipa::path(post, path = "/admin/v1/tenants/{slug}/erase", tag = "admin", params(("slug" = String, Path)),
    request_body = EraseRequest,
    responses((status = 200, description = "The erasure certificate", body = Object),
        (status = 400, body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Not confirmed", body = ProblemBody, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn erase_tenant(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    req: Result<Json<EraseRequest>, axum::extract::rejection::JsonRejection>,
) -> JsonResult<serde_json::Value> {
    st.admin(&headers)?;
    let req = body(req)?;
    let mut cat = own_catalog(&st).await?;
    let cert = erase::erase(&mut cat, &slug, Some(&req.confirm)).await.map_err(ctl)?;
    let _ = st.data.router.route_fresh(&slug).await;
    serde_json::to_value(cert).map(Json).map_err(|e| Problem::internal(format!("cannot render the certificate: {e}")))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{slug}/keys", tag = "admin", params(("slug" = String, Path)),
    responses((status = 200, body = [KeyView]), (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn list_keys(State(st): State<Shared>, headers: HeaderMap, Path(slug): Path<String>) -> JsonResult<Vec<KeyView>> {
    st.admin(&headers)?;
    let cat = shared_catalog(&st).await?;
    Ok(Json(keys::list(&cat, &slug).await.map_err(ctl)?.into_iter().map(KeyView::from).collect()))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{slug}/keys", tag = "admin", params(("slug" = String, Path)),
    request_body = CreateKey,
    responses((status = 201, body = NewKeyView), (status = 400, description = "Invalid body", body = ProblemBody, content_type = "application/problem+json"),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, body = ProblemBody, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn create_key(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    req: Result<Json<CreateKey>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<NewKeyView>), Problem> {
    st.admin(&headers)?;
    let req = body(req)?;
    let cat = shared_catalog(&st).await?;
    let scope = if req.read_only { KeyScope::ReadOnly } else { KeyScope::ReadWrite };
    let k = keys::create(&cat, &slug, scope, req.name.as_deref()).await.map_err(ctl)?;
    Ok((StatusCode::CREATED, Json(NewKeyView { key: k.info.clone().into(), secret: k.secret })))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{slug}/keys/{key_id}", tag = "admin",
    params(("slug" = String, Path), ("key_id" = String, Path)),
    responses((status = 200, description = "The revoked key (idempotent)", body = KeyView),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant, or no such key of this tenant (also for another tenant's key)", body = ProblemBody, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn revoke_key(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path((slug, key_id)): Path<(String, String)>,
) -> JsonResult<KeyView> {
    st.admin(&headers)?;
    let cat = shared_catalog(&st).await?;
    Ok(Json(keys::revoke(&cat, &slug, &key_id).await.map_err(ctl)?.into()))
}

#[utoipa::path(get, path = "/admin/v1/migrations", tag = "admin",
    responses((status = 200, body = MigrationStatus), (status = 401, body = ProblemBody, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn migration_status(State(st): State<Shared>, headers: HeaderMap) -> JsonResult<MigrationStatus> {
    st.admin(&headers)?;
    let cat = shared_catalog(&st).await?;
    let latest = cat.app_migrations().await.map_err(ctl)?.last().map_or(0, |m| m.version);
    let slugs: std::collections::HashMap<String, String> =
        cat.tenants().await.map_err(ctl)?.into_iter().map(|t| (t.key.to_string(), t.slug)).collect();
    let targets = cat
        .targets()
        .await
        .map_err(ctl)?
        .into_iter()
        .map(|t| MigrationTargetOut {
            tenant: t.tenant_key.as_ref().and_then(|k| slugs.get(k)).cloned().unwrap_or_else(|| "(pooled tenants)".into()),
            pending: t.version < latest,
            target: t.target,
            version: t.version,
            latest,
            last_error: t.last_error,
        })
        .collect();
    Ok(Json(MigrationStatus { latest, targets }))
}
