//! The tenant lifecycle: create, show, list, suspend, resume and erase.
//!
//! Create and erase are resumable state machines recorded in `tg.operations`: each
//! step is idempotent, the current step is written to the catalog before it runs,
//! and a failed creation is rolled back (or, if the rollback cannot run, left in
//! status `failed` with instructions). Nothing is touched before every input check
//! has passed. This module orchestrates `catalog`, `placement` and `migrate`; it never
//! writes DDL itself.

use serde::Serialize;

use crate::catalog::{Catalog, NewTenant, Operation, Server, Tenant};
use crate::config::Config;
use crate::credentials::MasterKey;
use crate::error::{Error, Result};
use crate::migrate::fanout;
use crate::model::{validate_name, validate_slug, Placement, TenantKey, TenantStatus};
use crate::placement::{self, ServerAdmin};

pub use tg_catalog::credentials::{master_key, FINGERPRINT_SETTING};

/// What `tenant create` was asked for.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub slug: String,
    pub placement: Placement,
    pub server: Option<String>,
    pub residency: Vec<String>,
    pub requires: Vec<String>,
    pub is_probe: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub tenant: Tenant,
    pub resumed: bool,
    pub migration_version: i32,
    pub elapsed_ms: u128,
}

/// `tenant show`: the tenant, where it lives, and any unfinished operation.
#[derive(Debug, Clone, Serialize)]
pub struct TenantView {
    #[serde(flatten)]
    pub tenant: Tenant,
    pub database: String,
    pub schema: String,
    pub roles: Vec<String>,
    pub open_operation: Option<Operation>,
    pub next_step: Option<String>,
}


/// Failpoints for tests: `TENANTGATE_FAILPOINT=create:roles` fails after step `roles`
/// (the rollback path runs); `crash:create:roles` stops dead after it, as a killed
/// process would, leaving the operation `running` for a later resume.
fn failpoint(op: &str, step: &str) -> Result<()> {
    let Ok(fp) = std::env::var("TENANTGATE_FAILPOINT") else { return Ok(()) };
    let here = format!("{op}:{step}");
    if fp == here || fp == format!("crash:{here}") {
        return Err(Error::Failpoint(fp));
    }
    Ok(())
}

fn is_crash(e: &Error) -> bool {
    matches!(e, Error::Failpoint(fp) if fp.starts_with("crash:"))
}

/// Choose the server: the one asked for, or the first (by name) whose region the
/// residency allows. Enforces residency (DESIGN I8) before anything is created.
fn choose_server<'a>(servers: &'a [Server], req: &CreateRequest) -> Result<&'a Server> {
    if servers.is_empty() {
        return Err(Error::NoServers);
    }
    let allowed = |s: &Server| req.residency.is_empty() || req.residency.iter().any(|r| r == &s.region);
    let server = match &req.server {
        Some(name) => servers.iter().find(|s| &s.name == name).ok_or_else(|| Error::UnknownServer(name.clone()))?,
        None => servers
            .iter()
            .find(|s| allowed(s))
            .ok_or_else(|| Error::NoServerInResidency(req.residency.join(",")))?,
    };
    if !allowed(server) {
        return Err(Error::Residency {
            slug: req.slug.clone(),
            allowed: req.residency.join(","),
            server: server.name.clone(),
            region: server.region.clone(),
        });
    }
    Ok(server)
}

/// Create a tenant, or resume a creation that was interrupted.
pub async fn create(cfg: &Config, catalog: &mut Catalog, req: &CreateRequest) -> Result<Created> {
    let started = std::time::Instant::now();
    validate_slug(&req.slug)?;
    for r in &req.residency {
        validate_name("residency region", r)?;
    }
    let master = master_key(cfg, catalog).await?;
    let servers = catalog.servers().await?;
    let server = choose_server(&servers, req)?.clone();

    let (key, op, resumed) = match catalog.tenant(&req.slug).await {
        Ok(existing) => resume_point(catalog, &existing, req, &server).await?,
        Err(Error::UnknownTenant(_)) => {
            // Reachability is checked before anything is recorded.
            ServerAdmin { name: &server.name, url: &server.url }.connect(None).await?;
            let key = TenantKey::generate();
            let op = catalog
                .insert_tenant(&NewTenant {
                    slug: &req.slug,
                    key: &key,
                    placement: req.placement,
                    server: &server.name,
                    residency: &req.residency,
                    requires: &req.requires,
                    is_probe: req.is_probe,
                })
                .await?;
            (key, op, false)
        }
        Err(e) => return Err(e),
    };

    match provision(catalog, &server, req.placement, &key, &master, op).await {
        Ok(version) => {
            catalog.set_status(&key, TenantStatus::Active).await?;
            catalog.op_finish(op, "done", None).await?;
            let detail = serde_json::json!({"slug": req.slug, "placement": req.placement, "server": server.name, "resumed": resumed});
            catalog.audit("tenant.create", Some(&key), detail).await?;
            let tenant = catalog.tenant(&req.slug).await?;
            Ok(Created { tenant, resumed, migration_version: version, elapsed_ms: started.elapsed().as_millis() })
        }
        Err(e) if is_crash(&e) => Err(e),
        Err(e) => Err(roll_back_creation(catalog, &server, req, &key, op, e).await),
    }
}

/// A tenant row already exists: resume it if it is a half-made tenant matching the request.
async fn resume_point(
    catalog: &Catalog,
    existing: &Tenant,
    req: &CreateRequest,
    server: &Server,
) -> Result<(TenantKey, i64, bool)> {
    let half_made = matches!(existing.status, TenantStatus::Provisioning | TenantStatus::Failed);
    if !half_made {
        return Err(Error::DuplicateTenant(req.slug.clone()));
    }
    if existing.placement != req.placement || existing.server != server.name {
        return Err(Error::WrongStatus {
            slug: req.slug.clone(),
            status: format!("half-made ({} on {})", existing.placement, existing.server),
            hint: format!(
                "resume it with `tenantgate tenant create {} --placement {} --server {}`, or remove it with `tenantgate tenant erase {0} --confirm {0}`",
                req.slug, existing.placement, existing.server
            ),
        });
    }
    let op = match catalog.open_op(&existing.key).await? {
        Some(op) if op.kind == "create" => op.id,
        _ => {
            let detail = serde_json::json!({"slug": req.slug, "placement": req.placement, "server": server.name});
            catalog.start_op("create", Some(&existing.key), detail).await?
        }
    };
    catalog.op_finish(op, "running", None).await?;
    catalog.set_status(&existing.key, TenantStatus::Provisioning).await?;
    Ok((existing.key.clone(), op, true))
}

/// The creation steps. Each is idempotent. Returns the app-schema version reached.
async fn provision(
    catalog: &Catalog,
    server: &Server,
    placement: Placement,
    key: &TenantKey,
    master: &MasterKey,
    op: i64,
) -> Result<i32> {
    let admin = ServerAdmin { name: &server.name, url: &server.url };
    // One admin connection for the server-level steps: each new connection costs a
    // SCRAM exchange, which dominates the creation of a pooled tenant.
    let conn = admin.connect(None).await?;
    catalog.op_step(op, "shared").await?;
    admin.ensure_shared_on(&conn, placement).await?;
    failpoint("create", "shared")?;

    catalog.op_step(op, "roles").await?;
    admin.ensure_roles_on(&conn, key, master).await?;
    failpoint("create", "roles")?;

    catalog.op_step(op, "container").await?;
    admin.ensure_container_on(&conn, placement, key).await?;
    drop(conn);
    failpoint("create", "container")?;

    catalog.op_step(op, "migrations").await?;
    let version = apply_migrations(catalog, &admin, placement, key, None).await?;
    failpoint("create", "migrations")?;

    catalog.op_step(op, "activate").await?;
    Ok(version)
}

/// Bring the tenant's target (or, for pooled, its server's pool) to the registered version,
/// or only up to version `upto` (an import of an older archive, migrated forward after).
pub(crate) async fn apply_migrations(
    catalog: &Catalog,
    admin: &ServerAdmin<'_>,
    placement: Placement,
    key: &TenantKey,
    upto: Option<i32>,
) -> Result<i32> {
    let mut migrations = catalog.app_migrations().await?;
    migrations.retain(|m| upto.map_or(true, |u| m.version <= u));
    let target = match placement {
        Placement::Pooled => fanout::pool_target(admin.name),
        _ => fanout::target_for(admin.name, placement, key),
    };
    catalog.ensure_target(&target).await?;
    let latest = migrations.iter().map(|m| m.version).max().unwrap_or(0);
    if placement == Placement::Pooled {
        // The shared pool is migrated by `migrate`; a new pooled tenant adds no tables.
        if let Some(v) = catalog.target_version(&target.target).await? {
            if v >= latest {
                return Ok(v);
            }
        }
    }
    let (rw, ro) = placement::grantees(placement, Some(key))?;
    let mut client = admin.connect(Some(&target.database)).await?;
    match fanout::apply_pending(&mut client, &target.schema, &rw, &ro, &migrations).await {
        Ok(v) => {
            catalog.set_target_state(&target.target, v, None).await?;
            Ok(v)
        }
        Err((v, e)) => {
            catalog.set_target_state(&target.target, v, Some(&e.to_string())).await?;
            Err(e)
        }
    }
}

/// Undo a failed creation. Returns the error to report: the original one, extended
/// with what the rollback did.
async fn roll_back_creation(
    catalog: &Catalog,
    server: &Server,
    req: &CreateRequest,
    key: &TenantKey,
    op: i64,
    cause: Error,
) -> Error {
    let admin = ServerAdmin { name: &server.name, url: &server.url };
    let cause_text = cause.to_string();
    let undo = async {
        admin.drop_tenant(req.placement, key).await?;
        catalog.op_finish(op, "rolled_back", Some(&cause_text)).await?;
        catalog.delete_tenant(key).await?;
        catalog
            .audit("tenant.create.rolled_back", Some(key), serde_json::json!({"slug": req.slug, "error": cause_text}))
            .await
    };
    match undo.await {
        Ok(()) => Error::Migration(format!(
            "creating tenant {:?} failed and was rolled back; nothing was left behind. Cause: {cause_text}",
            req.slug
        )),
        Err(undo_err) => {
            let _ = catalog.op_finish(op, "failed", Some(&cause_text)).await;
            let _ = catalog.set_status(key, TenantStatus::Failed).await;
            Error::WrongStatus {
                slug: req.slug.clone(),
                status: "failed".into(),
                hint: format!(
                    "creation failed ({cause_text}) and the rollback could not finish ({undo_err}). \
                     When the server is back, re-run the same `tenantgate tenant create` to resume, \
                     or `tenantgate tenant erase {0} --confirm {0}` to remove it",
                    req.slug
                ),
            }
        }
    }
}

pub async fn show(catalog: &Catalog, slug: &str) -> Result<TenantView> {
    let tenant = catalog.tenant(slug).await?;
    let loc = placement::location(tenant.placement, &tenant.key);
    let open_operation = catalog.open_op(&tenant.key).await?;
    let next_step = match (tenant.status, &open_operation) {
        (_, Some(op)) if op.kind == "move" => Some(format!(
            "a move is {} at step {:?}; `tenantgate tenant move {slug} --status` shows its progress, `--resume` continues it{}",
            op.state,
            op.step,
            if ["unfence", "clean", "done"].contains(&op.step.as_str()) { "" } else { ", `--abort` undoes it" }
        )),
        (_, Some(op)) if op.kind == "import" => Some(format!(
            "an import is {} at step {:?}; run the same `tenantgate tenant import {slug} --from FILE` (or `tenant clone`) again to resume it{}",
            op.state,
            op.step,
            if tenant.status == TenantStatus::Provisioning { format!(", or `tenantgate tenant erase {slug} --confirm {slug}` to remove it") } else { String::new() }
        )),
        (TenantStatus::Provisioning, Some(op)) => Some(format!(
            "creation was interrupted at step {:?}; re-run `tenantgate tenant create {slug} --placement {} --server {}` to resume, or `tenantgate tenant erase {slug} --confirm {slug}` to remove it",
            op.step, tenant.placement, tenant.server
        )),
        (TenantStatus::Failed, _) => Some(format!(
            "creation failed and was not rolled back; re-run `tenantgate tenant create {slug} --placement {} --server {}` to resume, or erase it",
            tenant.placement, tenant.server
        )),
        (TenantStatus::Erasing, _) => Some(format!("erasure was interrupted; re-run `tenantgate tenant erase {slug} --confirm {slug}` to finish it")),
        (TenantStatus::Suspended, _) => Some(format!("suspended; `tenantgate tenant resume {slug}` lets it log in again")),
        _ => None,
    };
    Ok(TenantView {
        roles: vec![tenant.key.rw_role(), tenant.key.ro_role()],
        database: loc.database,
        schema: loc.schema,
        tenant,
        open_operation,
        next_step,
    })
}

/// Suspend (`active` → `suspended`) or resume (`suspended` → `active`). Suspension is
/// enforced in the database: the roles go NOLOGIN and their sessions end.
pub async fn set_suspended(catalog: &Catalog, slug: &str, suspend: bool) -> Result<Tenant> {
    let tenant = catalog.tenant(slug).await?;
    let (from, to) = if suspend {
        (TenantStatus::Active, TenantStatus::Suspended)
    } else {
        (TenantStatus::Suspended, TenantStatus::Active)
    };
    if tenant.status == to {
        return Ok(tenant);
    }
    if tenant.status != from {
        return Err(Error::WrongStatus {
            slug: slug.into(),
            status: tenant.status.to_string(),
            hint: format!("only {from} tenants can be {}", if suspend { "suspended" } else { "resumed" }),
        });
    }
    let server = catalog.server(&tenant.server).await?;
    // Flip the catalog first for suspension (routing stops at once), last for resume.
    if suspend {
        catalog.set_status(&tenant.key, to).await?;
    }
    ServerAdmin { name: &server.name, url: &server.url }.set_login(&tenant.key, !suspend).await?;
    if !suspend {
        catalog.set_status(&tenant.key, to).await?;
    }
    let action = if suspend { "tenant.suspend" } else { "tenant.resume" };
    catalog.audit(action, Some(&tenant.key), serde_json::json!({"slug": slug})).await?;
    catalog.tenant(slug).await
}

/// A connection to tenant `slug`'s own tables as its read-write role: the same login the
/// gateway uses, so what runs here is isolated exactly like a tenant's own SQL. For loading
/// example data (`demo`) and for operators' checks; tenant traffic goes through the gateway.
pub async fn connect_as_tenant(catalog: &Catalog, master: &MasterKey, slug: &str) -> Result<tokio_postgres::Client> {
    let t = catalog.tenant(slug).await?;
    let server = catalog.server(&t.server).await?;
    let loc = placement::location(t.placement, &t.key);
    let role = t.key.rw_role();
    let (host, port) = crate::db::host_port(&server.url).ok_or_else(|| Error::InvalidInput {
        what: "server URL",
        value: crate::db::redact_url(&server.url),
        reason: "it names no host; re-register the server with a postgres://USER:PASSWORD@HOST:PORT/DATABASE URL".into(),
    })?;
    let mut pg = tokio_postgres::Config::new();
    pg.host(&host).port(port).user(&role).password(master.role_password(&role)).dbname(&loc.database);
    pg.connect_timeout(std::time::Duration::from_secs(10));
    let (client, conn) = pg.connect(tokio_postgres::NoTls).await.map_err(|source| Error::Unreachable {
        what: format!("tenant {slug}'s database as its own role"),
        url: format!("{host}:{port}/{}", loc.database),
        source,
    })?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("tenant connection closed: {e}");
        }
    });
    Ok(client)
}
