//! Import (DESIGN §6, I8, I9): a tenant archive's rows into a tenant, in any placement —
//! the archive's own tenant restored after a loss, a new tenant made from it (a clone or a
//! sandbox: its `tenant_id` rewritten to the new key), or, with `--replace`, an existing
//! tenant's rows replaced. `clone` feeds an export straight into an import, with no file.
//!
//! A resumable state machine in `tg.operations` (kind `import`, its plan in `detail`):
//! - a new tenant: `roles` (shared database, roles, container) → `schema` (migrations up to
//!   the archive's version) → `load` → `migrate` (forward to the registered version) →
//!   `activate`;
//! - `--replace`: `suspend` → `load` → `activate` (back to its former status).
//!
//! `load` is one transaction on the target database: the tenant's rows there are deleted,
//! the archive's rows copied in (each row's `tenant_id` checked against the archive's key
//! and rewritten to the target's), the archive's trailer checked, every foreign key of the
//! loaded tables checked over the tenant's rows, then every table's row count and checksum
//! compared with the manifest; only if all match does it commit. So a corrupt or truncated
//! archive, a dangling reference or a checksum mismatch leaves no row behind, and a new
//! tenant is rolled back entirely (I9). Everything the manifest alone decides — format,
//! schema version, residency (I8), the slug — is checked before anything is recorded.
//!
//! Into a tenant's own tables (schema or database placement) the load builds indexes and
//! keys after the copy, as `pg_restore` does ([`deferred`]): inside the same transaction
//! they are dropped, the tables truncated, the rows copied into bare tables with `FREEZE`,
//! then every index and key is created again from its own definition and every foreign key
//! validated; a duplicate key or a dangling reference fails the load like a checksum does.
//! Shared (pooled) tables keep their indexes: they serve every pooled tenant.
//!
//! The copy runs with `session_replication_role = replica` (when the admin role may set
//! it), so the per-row foreign-key triggers — most of a load's server time — do not fire.
//! Nothing is lost: [`rows::dangling_references`] checks every foreign key in one anti-join
//! per key before the commit, and also that each reference stays within the tenant; other
//! triggers would only alter rows whose checksums must match the archive's, or fill tables
//! the archive itself restores. The deletes before the copy run with triggers on.
//!
//! It orchestrates `placement`, `migrate` and `archive`; the catalog is written only
//! through `catalog`. It never writes a row whose `tenant_id` is not the target's key.

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::archive::{self, Item, KeyRewriter, Manifest, Receiver};
use super::export::{self, checksum_columns, row_hash_of, Progress, Reporter};
use super::replication as repl;
use super::rows;
use crate::catalog::{Catalog, NewTenant, Operation, Server, Tenant};
use crate::config::Config;
use crate::credentials::master_key;
use crate::error::{Error, Result};
use crate::model::{validate_slug, Placement, TenantKey, TenantStatus};
use crate::placement::{self, ServerAdmin};
use crate::quote::ident;

mod deferred;

/// Steps of a new tenant's import, in order.
pub const NEW_STEPS: [&str; 6] = ["roles", "schema", "load", "migrate", "activate", "done"];
/// Steps of `--replace`, in order.
pub const REPLACE_STEPS: [&str; 4] = ["suspend", "load", "activate", "done"];

/// What `tenant import` (or `tenant clone`) was asked for.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The tenant to import into.
    pub slug: String,
    /// Default: the archive's source placement (a new tenant only).
    pub placement: Option<Placement>,
    /// Default: the archive's source server if the residency allows it, else the first allowed.
    pub server: Option<String>,
    /// Replace an existing tenant's rows.
    pub replace: bool,
}

/// A table's figures as the archive states them and as the target holds them after the load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableCheck {
    pub table: String,
    pub rows: i64,
    pub archive_checksum: String,
    pub target_checksum: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepTime {
    pub step: String,
    pub ms: u64,
}

/// The import's plan and record, kept in the operation's `detail`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub slug: String,
    pub key: TenantKey,
    /// `restore` (the archive's own tenant, as a new tenant), `clone` (another slug) or `replace`.
    pub kind: String,
    /// The file, or `clone of SLUG`.
    pub source: String,
    pub archive_slug: String,
    pub archive_key: String,
    pub archive_created_at: chrono::DateTime<chrono::Utc>,
    pub placement: Placement,
    pub server: String,
    pub archive_version: i32,
    pub latest_version: i32,
    /// The tenant's status before a replace, restored at the end.
    #[serde(default)]
    pub prior_status: Option<TenantStatus>,
    #[serde(default)]
    pub loaded: bool,
    #[serde(default)]
    pub steps: Vec<StepTime>,
    #[serde(default)]
    pub checks: Vec<TableCheck>,
    /// The parts of the `load` step and their times (`clear`, `copy`, `references`,
    /// `verify`, and with deferred indexes `indexes`, `foreign_keys`).
    #[serde(default)]
    pub load_phases: Vec<StepTime>,
    /// Whether the load built the indexes and keys after the copy ([`deferred`]).
    #[serde(default)]
    pub deferred_indexes: bool,
}

/// The outcome of an import.
#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    pub operation_id: i64,
    pub resumed: bool,
    pub plan: Plan,
    pub region: String,
    pub rows: i64,
    pub elapsed_ms: u64,
}

/// Tests: `TENANTGATE_FAILPOINT=fail:import:STEP` fails right after STEP (the rollback path
/// runs); `crash:import:STEP` stops dead after it, leaving the operation to resume.
fn failpoint(step: &str) -> Result<()> {
    let Ok(fp) = std::env::var("TENANTGATE_FAILPOINT") else { return Ok(()) };
    if fp == format!("fail:import:{step}") || fp == format!("crash:import:{step}") {
        return Err(Error::Failpoint(fp));
    }
    Ok(())
}

fn is_crash(e: &Error) -> bool {
    matches!(e, Error::Failpoint(fp) if fp.starts_with("crash:"))
}

/// `tenant import SLUG --from FILE`: read the archive on a blocking thread and import it.
pub async fn from_file(cfg: &Config, catalog: &mut Catalog, req: &ImportRequest, path: &std::path::Path, report: Reporter<'_>) -> Result<Imported> {
    if !path.is_file() {
        return Err(Error::InvalidInput {
            what: "archive",
            value: path.display().to_string(),
            reason: "no such file; give the path of a `tenantgate tenant export` archive".into(),
        });
    }
    let (tx, mut rx) = archive::channel();
    let p = path.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || archive::read_file(&p, tx));
    let result = import(cfg, catalog, req, &path.display().to_string(), &mut rx, report).await;
    drop(rx);
    let _ = reader.await;
    result
}

/// `tenant clone SLUG NEW_SLUG`: an export of SLUG streamed straight into an import as
/// NEW_SLUG (no intermediate file).
pub async fn clone(cfg: &Config, catalog: &mut Catalog, source: &str, req: &ImportRequest, report: Reporter<'_>) -> Result<Imported> {
    if source == req.slug {
        return Err(Error::InvalidInput {
            what: "clone slug",
            value: req.slug.clone(),
            reason: "a clone needs a new slug of its own".into(),
        });
    }
    if req.replace {
        return Err(Error::InvalidInput {
            what: "clone",
            value: req.slug.clone(),
            reason: "a clone is always a new tenant; to replace a tenant's rows use `tenant export` and `tenant import --replace`".into(),
        });
    }
    validate_slug(&req.slug)?;
    // The source is checked (and a clone that exists refused) before the export starts.
    catalog.tenant(source).await?;
    if catalog.tenant(&req.slug).await.is_ok_and(|t| t.status != TenantStatus::Provisioning) {
        return Err(Error::DuplicateTenant(req.slug.clone()));
    }
    let reader = Catalog::connect(&cfg.catalog.url).await?;
    let quiet = |_: &Progress| {};
    streamed(cfg, catalog, req, &format!("clone of {source}"), source, report, |tx| async move {
        export::stream(&reader, source, &tx, &quiet).await
    })
    .await
}

/// Import what `produce` sends into the channel it is given (an export: `clone`, or a
/// point-in-time restore's read of a recovered copy), joined with no file in between.
/// `source` is the tenant read, `label` what the import records as its source.
pub async fn streamed<F, Fut>(
    cfg: &Config,
    catalog: &mut Catalog,
    req: &ImportRequest,
    label: &str,
    source: &str,
    report: Reporter<'_>,
    produce: F,
) -> Result<Imported>
where
    F: FnOnce(archive::Sender) -> Fut,
    Fut: std::future::Future<Output = Result<Manifest>>,
{
    let (tx, mut rx) = archive::channel();
    let produce = produce(tx);
    let consume = async {
        let r = import(cfg, catalog, req, label, &mut rx, report).await;
        drop(rx);
        r
    };
    let (produced, imported) = tokio::join!(produce, consume);
    match (produced, imported) {
        (_, Ok(done)) => Ok(done),
        (Err(e), Err(imp)) => Err(Error::Import(format!("{label} as {} failed while reading {source}: {e}. {imp}", req.slug))),
        (Ok(_), Err(imp)) => Err(imp),
    }
}

/// Import the archive items of `rx` as `req` asks. `source` names where they come from.
pub async fn import(cfg: &Config, catalog: &mut Catalog, req: &ImportRequest, source: &str, rx: &mut Receiver, report: Reporter<'_>) -> Result<Imported> {
    let started = Instant::now();
    validate_slug(&req.slug)?;
    let manifest = match rx.recv().await {
        Some(Ok(Item::Manifest(m))) => *m,
        Some(Err(e)) => return Err(e),
        Some(Ok(_)) | None => return Err(Error::Archive(format!("{source} holds no manifest; it is not a tenantgate archive. Nothing was imported"))),
    };
    let latest = check_versions(catalog, &manifest, source).await?;

    let (op, mut plan, resumed) = match catalog.tenant(&req.slug).await {
        Ok(existing) => existing_tenant(catalog, &existing, req, &manifest, source, latest).await?,
        Err(Error::UnknownTenant(_)) => new_tenant(catalog, req, &manifest, source, latest).await?,
        Err(e) => return Err(e),
    };
    let steps: &[&str] = if plan.kind == "replace" { &REPLACE_STEPS } else { &NEW_STEPS };
    let op_now = catalog.open_op(&plan.key).await?.filter(|o| o.id == op);
    let from = op_now.map(|o| o.step).unwrap_or_default();
    let start = steps.iter().position(|s| *s == from).unwrap_or(0);
    let mut stream = Some((manifest, rx));
    for step in &steps[start..] {
        if *step == "done" {
            break;
        }
        catalog.op_step(op, step).await?;
        let t0 = Instant::now();
        let outcome = run_step(cfg, catalog, &mut plan, step, &mut stream, report).await.and_then(|()| failpoint(step));
        match outcome {
            Ok(()) => {
                plan.steps.retain(|s| s.step != *step);
                plan.steps.push(StepTime { step: step.to_string(), ms: t0.elapsed().as_millis() as u64 });
                catalog.op_detail(op, &to_json(&plan)?).await?;
            }
            Err(e) if is_crash(&e) => return Err(e),
            Err(e) => return Err(roll_back(catalog, op, &plan, e).await),
        }
    }
    catalog.op_step(op, "done").await?;
    catalog.op_finish(op, "done", None).await?;
    let rows: i64 = plan.checks.iter().map(|c| c.rows).sum();
    catalog
        .audit(
            &format!("tenant.import.{}", plan.kind),
            Some(&plan.key),
            serde_json::json!({"operation": op, "source": plan.source, "archive_created_at": plan.archive_created_at,
                               "placement": plan.placement, "server": plan.server, "rows": rows,
                               "archive_version": plan.archive_version, "version": plan.latest_version}),
        )
        .await?;
    let region = catalog.server(&plan.server).await?.region;
    Ok(Imported { operation_id: op, resumed, plan, region, rows, elapsed_ms: started.elapsed().as_millis() as u64 })
}

fn to_json(plan: &Plan) -> Result<serde_json::Value> {
    serde_json::to_value(plan).map_err(|e| Error::Migration(e.to_string()))
}

fn plan_of(op: &Operation) -> Result<Plan> {
    serde_json::from_value(op.detail.clone())
        .map_err(|e| Error::Import(format!("import operation {} has an unreadable plan ({e}); inspect tg.operations", op.id)))
}

/// The archive's schema version against the registered migrations: newer is refused, and
/// every migration it applied must be the registered one with the same checksum. Returns
/// the registered (latest) version.
async fn check_versions(catalog: &Catalog, m: &Manifest, source: &str) -> Result<i32> {
    let registered = catalog.app_migrations().await?;
    let latest = registered.iter().map(|m| m.version).max().unwrap_or(0);
    if m.schema_version > latest {
        return Err(Error::Import(format!(
            "{source} holds app-schema version {}, newer than this deployment's registered migrations (version {latest}). \
             Register the newer migrations with `tenantgate migrate`, then import again. Nothing was imported",
            m.schema_version
        )));
    }
    let by_version: HashMap<i32, &str> = registered.iter().map(|r| (r.version, r.checksum.as_str())).collect();
    for a in &m.migrations {
        if by_version.get(&a.version) != Some(&a.checksum.as_str()) {
            return Err(Error::Import(format!(
                "{source} was made with a different migration {} than the one registered here (another app, or an edited file); \
                 import it into a deployment with the same migrations. Nothing was imported",
                a.version
            )));
        }
    }
    Ok(latest)
}

/// Refused: older archives go where they can be migrated forward on their own.
fn older_refused(slug: &str, placement: Placement, archive: i32, latest: i32, what: &str) -> Error {
    Error::Import(format!(
        "the archive holds app-schema version {archive}, older than the registered version {latest}, and {what} ({placement}) is already at {latest}. \
         Import it as a new tenant with `--placement schema` or `--placement database` (it is migrated forward there), \
         then `tenantgate tenant move {slug} --to {placement}` if needed. Nothing was imported"
    ))
}

/// Import into a tenant that exists: resume a half-made import, or `--replace`.
async fn existing_tenant(
    catalog: &mut Catalog,
    t: &Tenant,
    req: &ImportRequest,
    m: &Manifest,
    source: &str,
    latest: i32,
) -> Result<(i64, Plan, bool)> {
    if let Some(op) = catalog.open_op(&t.key).await? {
        if op.kind != "import" {
            return Err(Error::WrongStatus {
                slug: t.slug.clone(),
                status: format!("{} (an unfinished {} at step {})", t.status, op.kind, op.step),
                hint: format!("finish or undo it first (`tenantgate tenant show {}` says how). Nothing was imported", t.slug),
            });
        }
        let plan = plan_of(&op)?;
        if plan.archive_key != m.tenant.key || req.placement.is_some_and(|p| p != plan.placement) || req.server.as_ref().is_some_and(|s| s != &plan.server) {
            return Err(Error::WrongStatus {
                slug: t.slug.clone(),
                status: format!("being imported (step {})", op.step),
                hint: format!(
                    "an import of {} into {} on {} was interrupted; resume it with the same archive (of tenant {}) and options, \
                     or remove the half-made tenant with `tenantgate tenant erase {1} --confirm {1}`",
                    plan.source, plan.slug, plan.server, plan.archive_slug
                ),
            });
        }
        catalog.op_finish(op.id, "running", None).await?;
        catalog.audit("tenant.import.resume", Some(&t.key), serde_json::json!({"operation": op.id, "step": op.step, "source": source})).await?;
        return Ok((op.id, plan, true));
    }
    if !req.replace {
        return Err(Error::WrongStatus {
            slug: t.slug.clone(),
            status: format!("{} ({} on {})", t.status, t.placement, t.server),
            hint: format!(
                "it exists. Add --replace to replace its rows with the archive's (it is suspended meanwhile), \
                 or import under a new slug to get a separate copy. Nothing was imported"
            ),
        });
    }
    if !matches!(t.status, TenantStatus::Active | TenantStatus::Suspended) {
        return Err(Error::WrongStatus {
            slug: t.slug.clone(),
            status: t.status.to_string(),
            hint: "only an active or suspended tenant can be replaced. Nothing was imported".into(),
        });
    }
    if req.placement.is_some_and(|p| p != t.placement) || req.server.as_ref().is_some_and(|s| s != &t.server) {
        return Err(Error::InvalidInput {
            what: "--placement/--server with --replace",
            value: format!("{} on {}", req.placement.map_or(t.placement.to_string(), |p| p.to_string()), req.server.as_deref().unwrap_or(&t.server)),
            reason: format!(
                "--replace restores into the tenant's own placement ({} on {}); replace it there, then `tenantgate tenant move {}` elsewhere",
                t.placement, t.server, t.slug
            ),
        });
    }
    let server = catalog.server(&t.server).await?;
    check_residency(&t.slug, m, &server)?;
    if m.schema_version != latest {
        return Err(older_refused(&t.slug, t.placement, m.schema_version, latest, "the tenant's own tables"));
    }
    let plan = Plan {
        slug: t.slug.clone(),
        key: t.key.clone(),
        kind: "replace".into(),
        source: source.into(),
        archive_slug: m.tenant.slug.clone(),
        archive_key: m.tenant.key.clone(),
        archive_created_at: m.created_at,
        placement: t.placement,
        server: t.server.clone(),
        archive_version: m.schema_version,
        latest_version: latest,
        prior_status: Some(t.status),
        loaded: false,
        steps: Vec::new(),
        checks: Vec::new(),
        load_phases: Vec::new(),
        deferred_indexes: false,
    };
    let op = catalog.start_op("import", Some(&t.key), to_json(&plan)?).await?;
    Ok((op, plan, false))
}

/// The archive's residency admits `server`'s region (DESIGN I8).
fn check_residency(slug: &str, m: &Manifest, server: &Server) -> Result<()> {
    let allowed = &m.tenant.residency;
    if allowed.is_empty() || allowed.iter().any(|r| r == &server.region) {
        return Ok(());
    }
    Err(Error::Residency { slug: slug.into(), allowed: allowed.join(","), server: server.name.clone(), region: server.region.clone() })
}

/// Record a new tenant for the archive (status `provisioning`, operation `import`) after
/// every check that needs no server work has passed.
async fn new_tenant(catalog: &mut Catalog, req: &ImportRequest, m: &Manifest, source: &str, latest: i32) -> Result<(i64, Plan, bool)> {
    let placement = req.placement.unwrap_or(m.source.placement);
    let servers = catalog.servers().await?;
    let allowed = |s: &Server| m.tenant.residency.is_empty() || m.tenant.residency.iter().any(|r| r == &s.region);
    let server = match &req.server {
        Some(name) => servers.iter().find(|s| &s.name == name).ok_or_else(|| Error::UnknownServer(name.clone()))?,
        None => servers
            .iter()
            .find(|s| s.name == m.source.server && allowed(s))
            .or_else(|| servers.iter().find(|s| allowed(s)))
            .ok_or_else(|| Error::NoServerInResidency(m.tenant.residency.join(",")))?,
    };
    check_residency(&req.slug, m, server)?;
    if placement == Placement::Pooled && m.schema_version != latest {
        return Err(older_refused(&req.slug, placement, m.schema_version, latest, "the shared pool"));
    }
    // Reachable before anything is recorded.
    ServerAdmin { name: &server.name, url: &server.url }.connect(None).await?;
    let restore = req.slug == m.tenant.slug;
    // A restored tenant keeps its key (its rows are unchanged) unless the key is taken — by a
    // tenant, or by the tombstone of an erasure, whose certificate stays true that way.
    let archived = TenantKey::parse(&m.tenant.key)?;
    let key = if restore && !catalog.key_known(&archived).await? { archived } else { TenantKey::generate() };
    let plan = Plan {
        slug: req.slug.clone(),
        key: key.clone(),
        kind: if restore { "restore" } else { "clone" }.into(),
        source: source.into(),
        archive_slug: m.tenant.slug.clone(),
        archive_key: m.tenant.key.clone(),
        archive_created_at: m.created_at,
        placement,
        server: server.name.clone(),
        archive_version: m.schema_version,
        latest_version: latest,
        prior_status: None,
        loaded: false,
        steps: Vec::new(),
        checks: Vec::new(),
        load_phases: Vec::new(),
        deferred_indexes: false,
    };
    let op = catalog
        .insert_tenant_op(
            &NewTenant {
                slug: &req.slug,
                key: &key,
                placement,
                server: &server.name,
                residency: &m.tenant.residency,
                requires: &m.tenant.requires,
                is_probe: false,
            },
            "import",
            &to_json(&plan)?,
        )
        .await?;
    Ok((op, plan, false))
}

async fn run_step(
    cfg: &Config,
    catalog: &mut Catalog,
    plan: &mut Plan,
    step: &str,
    stream: &mut Option<(Manifest, &mut Receiver)>,
    report: Reporter<'_>,
) -> Result<()> {
    let server = catalog.server(&plan.server).await?;
    let admin = ServerAdmin { name: &server.name, url: &server.url };
    match step {
        "roles" => {
            let master = master_key(cfg, catalog).await?;
            let conn = admin.connect(None).await?;
            admin.ensure_shared_on(&conn, plan.placement).await?;
            admin.ensure_roles_on(&conn, &plan.key, &master).await?;
            admin.ensure_container_on(&conn, plan.placement, &plan.key).await
        }
        "schema" => {
            crate::tenants::apply_migrations(catalog, &admin, plan.placement, &plan.key, Some(plan.archive_version)).await.map(|_| ())
        }
        "migrate" => {
            if plan.archive_version < plan.latest_version {
                crate::tenants::apply_migrations(catalog, &admin, plan.placement, &plan.key, None).await?;
            }
            Ok(())
        }
        "suspend" => {
            catalog.set_status(&plan.key, TenantStatus::Suspended).await?;
            admin.set_login(&plan.key, false).await
        }
        "load" => {
            let Some((manifest, rx)) = stream.take() else {
                return Err(Error::Migration("the archive's rows are no longer available to load; run the import again".into()));
            };
            let loaded = load(&admin, plan, &manifest, rx, report).await?;
            plan.checks = loaded.checks;
            plan.load_phases = loaded.phases;
            plan.deferred_indexes = loaded.deferred;
            plan.loaded = true;
            Ok(())
        }
        "activate" => {
            let status = plan.prior_status.unwrap_or(TenantStatus::Active);
            admin.set_login(&plan.key, status == TenantStatus::Active).await?;
            catalog.set_status(&plan.key, status).await
        }
        _ => Ok(()),
    }
}

/// What a load did: the per-table checks (all equal), its parts' times, and whether the
/// indexes were built after the copy.
struct Loaded {
    checks: Vec<TableCheck>,
    phases: Vec<StepTime>,
    deferred: bool,
}

/// Times the parts of a load.
struct Phases {
    at: Instant,
    done: Vec<StepTime>,
}

impl Phases {
    fn new() -> Phases {
        Phases { at: Instant::now(), done: Vec::new() }
    }
    /// Record the part that ends now.
    fn end(&mut self, part: &str) {
        self.done.push(StepTime { step: part.into(), ms: self.at.elapsed().as_millis() as u64 });
        self.at = Instant::now();
    }
}

/// The load: one transaction on the target database (see the module doc).
async fn load(admin: &ServerAdmin<'_>, plan: &Plan, m: &Manifest, rx: &mut Receiver, report: Reporter<'_>) -> Result<Loaded> {
    let loc = placement::location(plan.placement, &plan.key);
    let c = admin.connect(Some(&loc.database)).await?;
    check_tables(&c, &loc.schema, m).await?;
    c.batch_execute(&format!("BEGIN; {}", archive::SESSION_SETTINGS)).await.map_err(|e| Error::db("starting the load", e))?;
    let result = load_in_tx(&c, &loc.schema, plan, m, rx, report).await;
    match result {
        Ok(mut loaded) => {
            let t0 = Instant::now();
            c.batch_execute("COMMIT").await.map_err(|e| Error::db("committing the load", e))?;
            loaded.phases.push(StepTime { step: "commit".into(), ms: t0.elapsed().as_millis() as u64 });
            Ok(loaded)
        }
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Every archived table exists in the target with every archived column.
async fn check_tables(c: &Client, schema: &str, m: &Manifest) -> Result<()> {
    let tables = rows::tables_in(c, schema).await?;
    for t in &m.tables {
        if !tables.contains(&t.name) {
            return Err(Error::Import(format!(
                "the archive holds table {} but the target's app schema (version {}) has none; the archive does not fit these migrations. Nothing was imported",
                t.name, m.schema_version
            )));
        }
        let cols = rows::columns(c, schema, &t.name).await?;
        if let Some(missing) = t.columns.iter().find(|col| !cols.contains(col)) {
            return Err(Error::Import(format!(
                "the archive's table {} has column {missing}, which the target's table lacks; the archive does not fit these migrations. Nothing was imported",
                t.name
            )));
        }
    }
    Ok(())
}

async fn load_in_tx(c: &Client, schema: &str, plan: &Plan, m: &Manifest, rx: &mut Receiver, report: Reporter<'_>) -> Result<Loaded> {
    let mut phases = Phases::new();
    let names: Vec<String> = m.tables.iter().map(|t| t.name.clone()).collect();
    // A tenant's own tables: indexes and keys dropped (and the tables truncated) for the copy.
    let deferred = match plan.placement {
        Placement::Pooled => None,
        Placement::Schema | Placement::Database => deferred::prepare(c, schema, &names, &plan.key).await?,
    };
    if deferred.is_none() {
        // Whatever the tenant has there goes first (a replace, or a resumed load), children first.
        for t in rows::children_first(&names, &rows::foreign_keys(c, schema).await?) {
            c.execute(&format!("DELETE FROM {}.{} WHERE tenant_id = $1", ident(schema), ident(&t)), &[&plan.key.as_str()])
                .await
                .map_err(|e| Error::db(format!("clearing the tenant's rows of {t}"), e))?;
        }
    }
    phases.end("clear");
    skip_row_triggers(c).await?;
    // Rows copied into a table truncated in this transaction can be written frozen.
    let freeze = if deferred.is_some() { " WITH (FREEZE)" } else { "" };
    let total: u64 = m.tables.iter().map(|t| t.rows.max(0) as u64).sum();
    let mut done = 0u64;
    let mut current: Option<(usize, std::pin::Pin<Box<tokio_postgres::CopyInSink<bytes::Bytes>>>, KeyRewriter)> = None;
    let mut copied = vec![0u64; m.tables.len()];
    let mut digest = archive::DataDigest::default();
    let trailer = loop {
        let item = match rx.recv().await {
            Some(Ok(item)) => item,
            Some(Err(e)) => return Err(e),
            None => return Err(Error::Archive(format!("{} ended before its trailer (truncated, or its reader failed). Nothing was imported", plan.source))),
        };
        match item {
            Item::Manifest(_) => return Err(Error::Archive(format!("{} holds a second manifest. Nothing was imported", plan.source))),
            Item::Chunk { table, data } => {
                if current.as_ref().map(|c| c.0) != Some(table) {
                    if let Some((idx, sink, rw)) = current.take() {
                        copied[idx] = finish_copy(sink, rw, &m.tables[idx].name).await?;
                    }
                    let t = m.tables.get(table).ok_or_else(|| Error::Archive("data for a table the manifest does not list".into()))?;
                    let cols = t.columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
                    let sql = format!("COPY {}.{} ({cols}) FROM STDIN{freeze}", ident(schema), ident(&t.name));
                    let sink = c.copy_in(sql.as_str()).await.map_err(|e| Error::db(format!("loading the rows of {} (a damaged archive, or one that does not fit this schema)", t.name), e))?;
                    let col = t.columns.iter().position(|c| c == "tenant_id").unwrap_or(0);
                    current = Some((table, Box::pin(sink), KeyRewriter::new(col, &m.tenant.key, plan.key.as_str())));
                }
                digest.add(&data);
                if let Some((idx, sink, rw)) = current.as_mut() {
                    let before = rw.rows;
                    let out = rw.push(&data).map_err(|e| Error::Archive(format!("{}: table {}: {e}. Nothing was imported", plan.source, m.tables[*idx].name)))?;
                    use futures::SinkExt;
                    sink.send(bytes::Bytes::from(out))
                        .await
                        .map_err(|e| Error::db(format!("loading the rows of {} (a damaged archive, or one that does not fit this schema)", m.tables[*idx].name), e))?;
                    done += rw.rows - before;
                    report(&Progress { phase: "load", table: m.tables[*idx].name.clone(), rows_done: done, rows_total: total });
                }
            }
            Item::End(t) => break t,
        }
    };
    if let Some((idx, sink, rw)) = current.take() {
        copied[idx] = finish_copy(sink, rw, &m.tables[idx].name).await?;
    }
    if trailer != digest.trailer() {
        return Err(Error::Archive(format!("{}: the data does not match the archive's trailer (corrupt). Nothing was imported", plan.source)));
    }
    phases.end("copy");
    if deferred.is_none() {
        // Deferred keys validate their references when they are created again, below.
        report(&Progress { phase: "references", table: String::new(), rows_done: done, rows_total: total });
        if let Some(d) = rows::dangling_references(c, schema, &names, &plan.key).await?.first() {
            return Err(Error::Verify(format!(
                "{} row(s) of table {} in {} reference no row of the tenant's own in {} (foreign key {}). \
                 The archive is damaged or was altered; use another copy. Nothing was imported",
                d.rows, d.table, plan.source, d.parent, d.constraint
            )));
        }
        phases.end("references");
    }
    let mut checks = Vec::new();
    for (idx, t) in m.tables.iter().enumerate() {
        report(&Progress { phase: "verify", table: t.name.clone(), rows_done: done, rows_total: total });
        let (rows, sum) = repl::columns_checksum(c, schema, &t.name, &plan.key, row_hash_of(t), Some(&checksum_columns(t))).await?;
        if rows != t.rows || sum != t.checksum || copied[idx] != t.rows.max(0) as u64 {
            return Err(Error::Verify(format!(
                "table {} in {} does not match its manifest: {} rows with checksum {} stated, {rows} rows with checksum {sum} loaded. \
                 The archive is damaged or was altered; use another copy",
                t.name, plan.source, t.rows, t.checksum
            )));
        }
        checks.push(TableCheck { table: t.name.clone(), rows, archive_checksum: t.checksum.clone(), target_checksum: sum });
    }
    phases.end("verify");
    if let Some(d) = &deferred {
        report(&Progress { phase: "indexes", table: format!("{} indexes and keys", d.count()), rows_done: done, rows_total: total });
        let times = deferred::rebuild(c, d, &plan.source).await?;
        phases.done.push(StepTime { step: "indexes".into(), ms: times.indexes_ms });
        phases.done.push(StepTime { step: "foreign_keys".into(), ms: times.foreign_keys_ms });
        phases.at = Instant::now();
    }
    if plan.placement != Placement::Pooled {
        // The pool's sequences are shared; a tenant's own are brought up to the archive's.
        for s in &m.sequences {
            if let Some(last) = s.last_value {
                if repl::sequences(c, schema).await?.iter().any(|(n, _)| n == &s.name) {
                    repl::raise_sequence(c, schema, &s.name, last).await?;
                }
            }
        }
    }
    Ok(Loaded { checks, phases: phases.done, deferred: deferred.is_some() })
}

/// Turn the per-row triggers off for the rest of the load's transaction (module doc). A
/// role that may not set `session_replication_role` loads with them on, which is slower
/// and checks the same.
async fn skip_row_triggers(c: &Client) -> Result<()> {
    let set = "SAVEPOINT tg_row_triggers; SET LOCAL session_replication_role = replica; RELEASE SAVEPOINT tg_row_triggers";
    if c.batch_execute(set).await.is_err() {
        c.batch_execute("ROLLBACK TO SAVEPOINT tg_row_triggers; RELEASE SAVEPOINT tg_row_triggers")
            .await
            .map_err(|e| Error::db("preparing the load", e))?;
    }
    Ok(())
}

async fn finish_copy(mut sink: std::pin::Pin<Box<tokio_postgres::CopyInSink<bytes::Bytes>>>, rw: KeyRewriter, table: &str) -> Result<u64> {
    if rw.has_partial() {
        return Err(Error::Archive(format!("the rows of table {table} end in the middle of a row (corrupt). Nothing was imported")));
    }
    sink.as_mut()
        .finish()
        .await
        .map_err(|e| Error::db(format!("loading the rows of {table} (a damaged archive, or one that does not fit this schema)"), e))
}

/// Undo a failed import. A new tenant is removed entirely; a replaced tenant keeps its
/// rows (the load's transaction never committed) and gets its former status back.
async fn roll_back(catalog: &Catalog, op: i64, plan: &Plan, cause: Error) -> Error {
    let cause_text = cause.to_string();
    let Ok(server) = catalog.server(&plan.server).await else {
        let _ = catalog.op_finish(op, "failed", Some(&cause_text)).await;
        return cause;
    };
    let admin = ServerAdmin { name: &server.name, url: &server.url };
    let undo = async {
        if plan.kind == "replace" {
            if !plan.loaded {
                let status = plan.prior_status.unwrap_or(TenantStatus::Active);
                admin.set_login(&plan.key, status == TenantStatus::Active).await?;
                catalog.set_status(&plan.key, status).await?;
            }
            catalog.op_finish(op, if plan.loaded { "failed" } else { "rolled_back" }, Some(&cause_text)).await?;
            return Ok(());
        }
        if plan.loaded && plan.placement == Placement::Pooled {
            let c = admin.connect(Some(placement::POOL_DB)).await?;
            rows::delete_tenant_rows(&c, placement::APP_SCHEMA, &plan.key).await?;
        }
        admin.drop_tenant(plan.placement, &plan.key).await?;
        catalog.op_finish(op, "rolled_back", Some(&cause_text)).await?;
        catalog.delete_tenant(&plan.key).await
    };
    let undone: Result<()> = undo.await;
    let _ = catalog
        .audit("tenant.import.rolled_back", Some(&plan.key), serde_json::json!({"operation": op, "source": plan.source, "error": cause_text}))
        .await;
    match undone {
        Ok(()) if plan.kind == "replace" && plan.loaded => Error::Import(format!(
            "replacing {:?}'s rows finished loading but then failed: {cause_text}. Run the same import again to finish it",
            plan.slug
        )),
        Ok(()) if plan.kind == "replace" => Error::Import(format!(
            "the import into {:?} failed and was rolled back; its rows are as they were and it is {} again. Cause: {cause_text}",
            plan.slug,
            plan.prior_status.unwrap_or(TenantStatus::Active)
        )),
        Ok(()) => Error::Import(format!(
            "importing {:?} failed and was rolled back; nothing was left behind. Cause: {cause_text}",
            plan.slug
        )),
        Err(undo_err) => {
            let _ = catalog.op_finish(op, "failed", Some(&cause_text)).await;
            Error::WrongStatus {
                slug: plan.slug.clone(),
                status: "half-imported".into(),
                hint: format!(
                    "the import failed ({cause_text}) and its rollback could not finish ({undo_err}). Run the same import again to resume it, \
                     or `tenantgate tenant erase {0} --confirm {0}` to remove it",
                    plan.slug
                ),
            }
        }
    }
}
