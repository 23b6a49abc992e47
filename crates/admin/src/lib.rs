//! The admin API under `/admin/v1/`: tenants (create, list, show, suspend, resume, erase), their
//! API keys (create, list, revoke), app-schema migration status, and per-tenant quotas and
//! usage ([`quotas`]), for operators.
//!
//! Part of the control plane: it provisions, so it lives apart from the data-plane HTTP door
//! (`tg-http`), which never depends on it. `tenantgate serve` mounts [`extension`] on the HTTP
//! server beside the data-plane routes, sharing its state (the admin token, the catalog) and
//! its problem+json errors; the OpenAPI document includes these routes.
//!
//! Every route requires the admin bearer token (`http.admin_token_file`/`_env`, compared in
//! constant time); a tenant credential is not an admin token. Each route calls the same
//! control-plane function as the matching CLI command, so semantics and error texts are the
//! CLI's (mapped to statuses in `problem`). Must never return a key secret except once, from
//! key creation, or a server URL with its password.

pub mod quotas;

use axum::extract::{Path, State};
use axum::routing::{delete, get, post};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use tg_control::catalog::{Catalog, Tenant};
use tg_control::keys::{self, KeyScope};
use tg_control::mobility::{erase, moves};
use tg_control::model::Placement;
use tg_control::tenants;
use utoipa::ToSchema;

use tg_http::problem::{Problem, ProblemBody};
pub use tg_http::tenant_keys::KeyView;
use tg_http::server::{Extension, Shared};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The admin routes and their OpenAPI description, to mount on the HTTP server.
pub fn extension() -> Extension {
    let routes = axum::Router::new()
        .route("/admin/v1/tenants", get(list_tenants).post(create_tenant))
        .route("/admin/v1/tenants/{slug}", get(show_tenant))
        .route("/admin/v1/tenants/{slug}/suspend", post(suspend_tenant))
        .route("/admin/v1/tenants/{slug}/resume", post(resume_tenant))
        .route("/admin/v1/tenants/{slug}/erase", post(erase_tenant))
        .route("/admin/v1/tenants/{slug}/move", get(move_status).post(move_tenant))
        .route("/admin/v1/tenants/{slug}/keys", get(list_keys).post(create_key))
        .route("/admin/v1/tenants/{slug}/keys/{key_id}", delete(revoke_key))
        .route("/admin/v1/migrations", get(migration_status))
        .route("/admin/v1/usage", get(quotas::usage))
        .route("/admin/v1/tenants/{slug}/quotas", get(quotas::get_quotas).put(quotas::put_quotas).delete(quotas::delete_quotas));
    Extension { routes, openapi: AdminDoc::openapi() }
}

struct AdminSecurity;

impl Modify for AdminSecurity {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let mut admin = Http::new(HttpAuthScheme::Bearer);
        admin.description = Some("The admin token from http.admin_token_file or http.admin_token_env.".into());
        components.add_security_scheme("admin", SecurityScheme::Http(admin));
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_tenants,
        create_tenant,
        show_tenant,
        suspend_tenant,
        resume_tenant,
        erase_tenant,
        move_tenant,
        move_status,
        list_keys,
        create_key,
        revoke_key,
        migration_status,
        quotas::usage,
        quotas::get_quotas,
        quotas::put_quotas,
        quotas::delete_quotas,
    ),
    components(schemas(ProblemBody)),
    modifiers(&AdminSecurity),
    tags((name = "admin", description = "Operators, with the admin token"))
)]
struct AdminDoc;

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

/// `POST /admin/v1/tenants/{slug}/move`: start a move (`to`, optional `server`), or act on
/// the open one (`action`: `resume` or `abort`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequestIn {
    pub to: Option<PlacementName>,
    pub server: Option<String>,
    /// `start` (the default), `resume` or `abort`.
    #[serde(default)]
    pub action: Option<String>,
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

#[utoipa::path(post, path = "/admin/v1/tenants/{slug}/move", tag = "admin", params(("slug" = String, Path)), request_body = MoveRequestIn,
    responses(
        (status = 202, description = "The move runs in the background; poll GET for its status", body = Object),
        (status = 200, description = "Aborted: the tenant is back on its source", body = Object),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "A move is already open, or none is", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Residency violation, unknown server or placement", body = ProblemBody, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn move_tenant(
    State(st): State<Shared>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    req: Result<Json<MoveRequestIn>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), Problem> {
    st.admin(&headers)?;
    let req = body(req)?;
    let mut cat = own_catalog(&st).await?;
    let op = match req.action.as_deref().unwrap_or("start") {
        "abort" => {
            let s = moves::abort(&mut cat, &slug).await.map_err(ctl)?;
            let _ = st.data.router.route_fresh(&slug).await;
            return Ok((StatusCode::OK, Json(status_json(&s)?)));
        }
        "resume" => moves::reopen(&cat, &slug).await.map_err(ctl)?,
        "start" => {
            let to = req.to.ok_or_else(|| Problem::bad_request("bad-request", "name the target placement in `to` (pooled, schema or database)"))?;
            moves::begin(&mut cat, &moves::MoveRequest { slug: slug.clone(), to: to.into(), server: req.server }).await.map_err(ctl)?
        }
        other => return Err(Problem::bad_request("bad-request", format!("unknown action {other:?}; use start, resume or abort"))),
    };
    // The move outlives the request: it runs on its own catalog connection, and its state is
    // in the catalog, so a restart of this server leaves it resumable.
    let cfg = st.control.clone();
    tokio::spawn(async move {
        let Ok(mut cat) = Catalog::connect(&cfg.catalog.url).await else { return };
        if let Err(e) = moves::run(&cfg, &mut cat, op, &|_| {}).await {
            tracing::warn!("move operation {op} stopped: {e}");
        }
    });
    let s = moves::status(&cat, &slug).await.map_err(ctl)?;
    Ok((StatusCode::ACCEPTED, Json(status_json(&s)?)))
}

fn status_json(s: &moves::MoveStatus) -> Result<serde_json::Value, Problem> {
    serde_json::to_value(s).map_err(|e| Problem::internal(format!("cannot render the move status: {e}")))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{slug}/move", tag = "admin", params(("slug" = String, Path)),
    responses((status = 200, description = "The last move: state, step, step times, checks, lag", body = Object),
        (status = 401, body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Never moved", body = ProblemBody, content_type = "application/problem+json")),
    security(("admin" = [])))]
pub async fn move_status(State(st): State<Shared>, headers: HeaderMap, Path(slug): Path<String>) -> JsonResult<serde_json::Value> {
    st.admin(&headers)?;
    let cat = own_catalog(&st).await?;
    let s = moves::status(&cat, &slug).await.map_err(ctl)?;
    Ok(Json(status_json(&s)?))
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_merged_document_lists_every_route() {
        let mut doc = tg_http::openapi::document();
        doc.merge(super::extension().openapi);
        let doc = serde_json::to_value(doc).unwrap_or_default();
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        for p in [
            "/admin/v1/tenants",
            "/admin/v1/tenants/{slug}",
            "/admin/v1/tenants/{slug}/suspend",
            "/admin/v1/tenants/{slug}/resume",
            "/admin/v1/tenants/{slug}/erase",
            "/admin/v1/tenants/{slug}/move",
            "/admin/v1/tenants/{slug}/keys",
            "/admin/v1/tenants/{slug}/keys/{key_id}",
            "/admin/v1/migrations",
            "/admin/v1/tenants/{slug}/quotas",
            "/admin/v1/usage",
            "/v1/sql",
        ] {
            assert!(paths.contains_key(p), "missing {p}");
        }
        assert_eq!(paths.len(), 18, "{:?}", paths.keys().collect::<Vec<_>>());
        assert!(doc["components"]["securitySchemes"]["admin"].is_object());
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }
}
