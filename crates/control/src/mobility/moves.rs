//! Online moves (DESIGN §6, I7–I9): a tenant goes from any placement on any server to any
//! other, within its residency, while it keeps working.
//!
//! A move is a resumable state machine in `tg.operations` (kind `move`; its plan and step
//! times in `detail`):
//!
//! `prepare → copy → catch-up → fence → final-catch-up → verify → flip → unfence → clean`
//!
//! - **prepare**: the target container and tables (no tenant access yet), then on the
//!   source a publication (pooled: the tenant's rows only) and a slot, and on the target
//!   a subscription that copies the existing rows.
//! - **copy**, **catch-up**: PostgreSQL's logical replication copies and streams; we wait.
//! - **fence**: the catalog flags the tenant (gateways hold its new connections), and the
//!   source is closed in the database: its grants revoked, its sessions ended.
//! - **final-catch-up**: the target applies the source's WAL up to the fence.
//! - **verify**: per-table row counts and checksums, source against target; sequences are
//!   synced. A mismatch rolls the move back before the flip and names the table.
//! - **flip**: the subscription is removed, the target opened, and one catalog transaction
//!   moves the route (the point of no return). **unfence** clears the flag; **clean**
//!   removes the source's rows or container, the replication objects and unused roles.
//!
//! `--resume` re-runs the recorded step (each is idempotent); `--abort` goes back to the
//! source from any step before the flip, and only forward after it. At every instant the
//! catalog routes the tenant to exactly one placement.
//!
//! Table names: logical replication matches tables by schema-qualified name, and the three
//! placements name the tables' schema differently (`app` in `tg_pool` and in a tenant
//! database, the tenant key in `tg_bridge`). So the target's tables are created in a
//! schema named as the source's (*staging*) and renamed at the flip (an O(1) catalog
//! change); into the shared pool, where `app` exists already, the staging tables mirror
//! each applied row into `app` by an ALWAYS trigger and are dropped after the flip.
//!
//! This module orchestrates; the DDL is in `placement` and `replication`, the catalog's
//! tables are written only through `catalog`. It never moves a tenant outside its
//! residency, and never leaves the tenant routable to two places or none.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::replication as repl;
use super::rows;
use crate::catalog::{Catalog, Operation, Server, Tenant};
use crate::config::Config;
use crate::credentials::master_key;
use crate::error::{Error, Result};
use crate::migrate::fanout;
use crate::model::{Placement, TenantKey, TenantStatus};
use crate::placement::{self, ServerAdmin, APP_SCHEMA};
use crate::quote::{ident, literal};

/// The steps, in order. An operation's `step` is the one running (or to run next).
pub const STEPS: [&str; 10] =
    ["prepare", "copy", "catch-up", "fence", "final-catch-up", "verify", "flip", "unfence", "clean", "done"];

/// Where the rows go, as asked.
#[derive(Debug, Clone)]
pub struct MoveRequest {
    pub slug: String,
    pub to: Placement,
    pub server: Option<String>,
}

/// One end of a move.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct End {
    pub placement: Placement,
    pub server: String,
}

/// How the target's tables get their names (see the module doc).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Naming {
    /// Source and target schema have the same name.
    Direct,
    /// Replicated into a schema named as the source's, renamed at the flip.
    Rename,
    /// Replicated into staging tables in the pool that mirror into `app`.
    Mirror,
}

/// Time spent in one step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepTime {
    pub step: String,
    pub ms: u64,
}

/// A table's count and checksum on both sides, under the fence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableCheck {
    pub table: String,
    pub rows: i64,
    pub source_checksum: String,
    pub target_checksum: String,
}

/// The move's plan and record, kept in the operation's `detail`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub slug: String,
    pub key: TenantKey,
    pub from: End,
    pub to: End,
    /// Name of the publication, slot and subscription.
    pub name: String,
    pub naming: Naming,
    /// Schema the rows are replicated into on the target.
    pub staging_schema: String,
    pub tables: Vec<String>,
    pub version: i32,
    #[serde(default)]
    pub steps: Vec<StepTime>,
    #[serde(default)]
    pub fence_ms: Option<u64>,
    #[serde(default)]
    pub checks: Vec<TableCheck>,
    #[serde(default)]
    pub sequences_synced: usize,
}

/// What a progress reporter is told.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub step: &'static str,
    /// Rows written by the copy so far (copy step), if known.
    pub rows: Option<i64>,
    /// Tables copied / tables (copy step).
    pub tables: Option<(i64, i64)>,
    /// Replication lag in bytes, if known.
    pub lag_bytes: Option<i64>,
    /// The step has finished.
    pub done: bool,
}

/// The outcome of `tenant move` (and `--status`).
#[derive(Debug, Clone, Serialize)]
pub struct MoveStatus {
    pub operation_id: i64,
    pub state: String,
    pub step: String,
    pub error: Option<String>,
    pub plan: Plan,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Current replication lag in bytes (while the subscription exists).
    pub lag_bytes: Option<i64>,
    pub total_ms: u64,
}

/// How a caller watches a running move.
pub type Reporter<'a> = &'a (dyn Fn(&Progress) + Send + Sync);

/// Tests: `TENANTGATE_FAILPOINT=kill:move:STEP` SIGKILLs this process right after `STEP`
/// finished and was recorded; `fail:move:STEP` makes the step fail (not a crash).
fn failpoint(step: &str) -> Result<()> {
    let Ok(fp) = std::env::var("TENANTGATE_FAILPOINT") else { return Ok(()) };
    if fp == format!("kill:move:{step}") {
        let _ = std::process::Command::new("kill").args(["-KILL", &std::process::id().to_string()]).status();
        std::process::abort();
    }
    if fp == format!("fail:move:{step}") {
        return Err(Error::Failpoint(fp));
    }
    Ok(())
}

fn plan_of(op: &Operation) -> Result<Plan> {
    serde_json::from_value(op.detail.clone())
        .map_err(|e| Error::Migration(format!("move operation {} has an unreadable plan ({e}); inspect tg.operations", op.id)))
}

fn to_json(plan: &Plan) -> Result<serde_json::Value> {
    serde_json::to_value(plan).map_err(|e| Error::Migration(e.to_string()))
}

/// Start a move. Every check runs before anything is created: a move outside the tenant's
/// residency, to where it already is, of a tenant that is not active, or with a move already
/// open is refused and nothing is left behind.
pub async fn start(cfg: &Config, catalog: &mut Catalog, req: &MoveRequest, report: Reporter<'_>) -> Result<MoveStatus> {
    let op = begin(catalog, req).await?;
    run(cfg, catalog, op, report).await
}

/// Run a move that [`begin`] recorded (or continue it), to its end.
pub async fn run(cfg: &Config, catalog: &mut Catalog, op: i64, report: Reporter<'_>) -> Result<MoveStatus> {
    let (op, plan) = open_move_by_id(catalog, op).await?;
    let step = STEPS.iter().copied().find(|s| *s == op.step).unwrap_or(STEPS[0]);
    drive(cfg, catalog, op.id, plan, step, report).await
}

async fn open_move_by_id(catalog: &Catalog, id: i64) -> Result<(Operation, Plan)> {
    let found = catalog.running_ops("move").await?.into_iter().find(|op| op.id == id);
    match found {
        Some(op) => {
            let plan = plan_of(&op)?;
            Ok((op, plan))
        }
        None => Err(Error::Migration(format!("move operation {id} is not open"))),
    }
}

/// Check a move request and record the move (nothing is created on any server yet).
/// Returns the operation id for [`run`].
pub async fn begin(catalog: &mut Catalog, req: &MoveRequest) -> Result<i64> {
    let tenant = catalog.tenant(&req.slug).await?;
    if let Some(op) = catalog.open_op(&tenant.key).await? {
        let hint = if op.kind == "move" {
            format!("a move is already under way (step {}); `tenantgate tenant move {} --resume` continues it, `--abort` undoes it", op.step, req.slug)
        } else {
            format!("operation {} ({}) is unfinished; finish it first (`tenantgate tenant show {}`)", op.id, op.kind, req.slug)
        };
        return Err(Error::WrongStatus { slug: req.slug.clone(), status: tenant.status.to_string(), hint });
    }
    if tenant.status != TenantStatus::Active {
        return Err(Error::WrongStatus {
            slug: req.slug.clone(),
            status: tenant.status.to_string(),
            hint: "only an active tenant can be moved".into(),
        });
    }
    let servers = catalog.servers().await?;
    let target = choose_target(&servers, &tenant, req)?;
    let from = End { placement: tenant.placement, server: tenant.server.clone() };
    let to = End { placement: req.to, server: target.name.clone() };
    if from == to {
        return Err(Error::InvalidInput {
            what: "move target",
            value: format!("{} on {}", req.to, target.name),
            reason: format!("tenant {:?} is already there; name another placement or --server", req.slug),
        });
    }
    let src_loc = placement::location(from.placement, &tenant.key);
    let dst_loc = placement::location(to.placement, &tenant.key);
    let naming = if src_loc.schema == dst_loc.schema {
        Naming::Direct
    } else if to.placement == Placement::Pooled {
        Naming::Mirror
    } else {
        Naming::Rename
    };
    // Two renaming moves into one server's bridge would both stage in schema `app`.
    if naming == Naming::Rename && to.placement == Placement::Schema {
        for op in catalog.running_ops("move").await? {
            if let Ok(p) = plan_of(&op) {
                if p.to == to && p.naming == Naming::Rename {
                    return Err(Error::WrongStatus {
                        slug: req.slug.clone(),
                        status: tenant.status.to_string(),
                        hint: format!("tenant {:?} is being moved into schema placement on {} right now; run this move after it", p.slug, to.server),
                    });
                }
            }
        }
    }
    let source = catalog.server(&from.server).await?;
    // The source must be able to publish, and its tables must carry tenant_id in their
    // replica identity, before anything is created.
    let src = ServerAdmin { name: &source.name, url: &source.url }.connect(Some(&src_loc.database)).await?;
    let wal: String = src
        .query_one("SELECT current_setting('wal_level')", &[])
        .await
        .map_err(|e| Error::db("reading wal_level on the source", e))?
        .get(0);
    if wal != "logical" {
        return Err(Error::ServerCheck {
            server: source.name.clone(),
            reason: format!("wal_level is {wal}; a move needs wal_level = logical (set it in postgresql.conf and restart). Nothing was created"),
        });
    }
    repl::check_replica_identity(&src, &src_loc.schema).await?;
    let tables = rows::tables_in(&src, &src_loc.schema).await?;
    ServerAdmin { name: &target.name, url: &target.url }.connect(None).await?;
    let migrations = catalog.app_migrations().await?;
    let version = migrations.iter().map(|m| m.version).max().unwrap_or(0);
    let src_version = source_version(&src, &src_loc.schema).await?;
    if src_version != version {
        return Err(Error::Migration(format!(
            "the source schema is at app-schema version {src_version}, the registered migrations at {version}; run `tenantgate migrate` first, then the move"
        )));
    }
    drop(src);

    let op = catalog.start_op("move", Some(&tenant.key), serde_json::json!({})).await?;
    let plan = Plan {
        slug: tenant.slug.clone(),
        key: tenant.key.clone(),
        from,
        to,
        name: repl::name(op),
        naming,
        staging_schema: src_loc.schema.clone(),
        tables,
        version,
        steps: Vec::new(),
        fence_ms: None,
        checks: Vec::new(),
        sequences_synced: 0,
    };
    catalog.op_detail(op, &to_json(&plan)?).await?;
    catalog.op_step(op, STEPS[0]).await?;
    catalog
        .audit("tenant.move.start", Some(&tenant.key), serde_json::json!({"from": plan.from, "to": plan.to, "operation": op}))
        .await?;
    Ok(op)
}

/// The target server: the one asked for, else the tenant's own if the placement changes,
/// else the first in its residency. Refuses a server outside the residency (I8).
fn choose_target<'a>(servers: &'a [Server], tenant: &Tenant, req: &MoveRequest) -> Result<&'a Server> {
    let allowed = |s: &Server| tenant.residency.is_empty() || tenant.residency.iter().any(|r| r == &s.region);
    let server = match &req.server {
        Some(name) => servers.iter().find(|s| &s.name == name).ok_or_else(|| Error::UnknownServer(name.clone()))?,
        None => servers
            .iter()
            .find(|s| s.name == tenant.server && allowed(s))
            .or_else(|| servers.iter().find(|s| allowed(s)))
            .ok_or_else(|| Error::NoServerInResidency(tenant.residency.join(",")))?,
    };
    if !allowed(server) {
        return Err(Error::Residency {
            slug: tenant.slug.clone(),
            allowed: tenant.residency.join(","),
            server: server.name.clone(),
            region: server.region.clone(),
        });
    }
    Ok(server)
}

async fn source_version(c: &Client, schema: &str) -> Result<i32> {
    let r = c
        .query_one("SELECT coalesce(max(version), 0) FROM tenantgate_admin.applied_migrations WHERE schema_name = $1", &[&schema])
        .await
        .map_err(|e| Error::db("reading the source's app-schema version", e))?;
    Ok(r.get(0))
}

/// The tenant's open move.
async fn open_move(catalog: &Catalog, slug: &str) -> Result<(Tenant, Operation, Plan)> {
    let tenant = catalog.tenant(slug).await?;
    match catalog.open_op(&tenant.key).await? {
        Some(op) if op.kind == "move" => {
            let plan = plan_of(&op)?;
            Ok((tenant, op, plan))
        }
        _ => Err(Error::WrongStatus {
            slug: slug.into(),
            status: tenant.status.to_string(),
            hint: format!("it has no unfinished move; `tenantgate tenant move {slug} --status` shows the last one"),
        }),
    }
}

/// Continue an interrupted move from its recorded step.
pub async fn resume(cfg: &Config, catalog: &mut Catalog, slug: &str, report: Reporter<'_>) -> Result<MoveStatus> {
    let op = reopen(catalog, slug).await?;
    run(cfg, catalog, op, report).await
}

/// Mark an interrupted move running again (for [`run`]); returns its operation id.
pub async fn reopen(catalog: &Catalog, slug: &str) -> Result<i64> {
    let (tenant, op, _) = open_move(catalog, slug).await?;
    catalog.op_finish(op.id, "running", None).await?;
    catalog.audit("tenant.move.resume", Some(&tenant.key), serde_json::json!({"operation": op.id, "step": op.step})).await?;
    Ok(op.id)
}

/// The last move of a tenant, with its progress.
pub async fn status(catalog: &Catalog, slug: &str) -> Result<MoveStatus> {
    let tenant = catalog.tenant(slug).await?;
    let Some(op) = catalog.last_op(&tenant.key, "move").await? else {
        return Err(Error::WrongStatus {
            slug: slug.into(),
            status: tenant.status.to_string(),
            hint: format!("it has never been moved; `tenantgate tenant move {slug} --to PLACEMENT` starts a move"),
        });
    };
    let plan = plan_of(&op)?;
    let lag_bytes = if op.state == "running" || op.state == "failed" {
        match catalog.server(&plan.from.server).await {
            Ok(s) => {
                let loc = placement::location(plan.from.placement, &plan.key);
                match (ServerAdmin { name: &s.name, url: &s.url }).connect(Some(&loc.database)).await {
                    Ok(c) => repl::lag_bytes(&c, &plan.name, None).await.ok().flatten(),
                    Err(_) => None,
                }
            }
            Err(_) => None,
        }
    } else {
        None
    };
    Ok(status_of(&op, plan, lag_bytes))
}

fn status_of(op: &Operation, plan: Plan, lag_bytes: Option<i64>) -> MoveStatus {
    let total_ms = (op.updated_at - op.started_at).num_milliseconds().max(0) as u64;
    MoveStatus {
        operation_id: op.id,
        state: op.state.clone(),
        step: op.step.clone(),
        error: op.error.clone(),
        plan,
        started_at: op.started_at,
        updated_at: op.updated_at,
        lag_bytes,
        total_ms,
    }
}

/// Connections to both ends of a move.
struct Ends {
    source: Server,
    target: Server,
}

impl Ends {
    async fn load(catalog: &Catalog, plan: &Plan) -> Result<Ends> {
        Ok(Ends { source: catalog.server(&plan.from.server).await?, target: catalog.server(&plan.to.server).await? })
    }
    fn src_admin(&self) -> ServerAdmin<'_> {
        ServerAdmin { name: &self.source.name, url: &self.source.url }
    }
    fn dst_admin(&self) -> ServerAdmin<'_> {
        ServerAdmin { name: &self.target.name, url: &self.target.url }
    }
    async fn src(&self, plan: &Plan) -> Result<Client> {
        self.src_admin().connect(Some(&placement::location(plan.from.placement, &plan.key).database)).await
    }
    async fn dst(&self, plan: &Plan) -> Result<Client> {
        self.dst_admin().connect(Some(&placement::location(plan.to.placement, &plan.key).database)).await
    }
}

/// Run the steps from `from` to the end, recording each in the catalog before it runs.
async fn drive(cfg: &Config, catalog: &mut Catalog, op: i64, mut plan: Plan, from: &str, report: Reporter<'_>) -> Result<MoveStatus> {
    let ends = Ends::load(catalog, &plan).await?;
    let start = STEPS.iter().position(|s| *s == from).unwrap_or(0);
    for step in &STEPS[start..] {
        if *step == "done" {
            break;
        }
        catalog.op_step(op, step).await?;
        let t0 = Instant::now();
        let outcome = run_step(cfg, catalog, &ends, op, &mut plan, step, report).await;
        let outcome = outcome.and_then(|()| failpoint(step));
        if let Err(e) = outcome {
            return Err(fail(catalog, &ends, op, &mut plan, step, e).await);
        }
        plan.steps.retain(|s| s.step != *step);
        plan.steps.push(StepTime { step: step.to_string(), ms: t0.elapsed().as_millis() as u64 });
        catalog.op_detail(op, &to_json(&plan)?).await?;
        report(&Progress { step, rows: None, tables: None, lag_bytes: None, done: true });
    }
    catalog.op_step(op, "done").await?;
    catalog.op_finish(op, "done", None).await?;
    catalog
        .audit(
            "tenant.move",
            Some(&plan.key),
            serde_json::json!({"operation": op, "from": plan.from, "to": plan.to, "steps": plan.steps, "fence_ms": plan.fence_ms}),
        )
        .await?;
    status(catalog, &plan.slug).await
}

/// A step failed (not a crash). Between the fence and the flip the source is opened again,
/// so a stuck move never leaves the tenant unavailable; a verify mismatch rolls the whole
/// move back. Returns the error to report, saying what to do.
async fn fail(catalog: &Catalog, ends: &Ends, op: i64, plan: &mut Plan, step: &str, e: Error) -> Error {
    let idx = STEPS.iter().position(|s| *s == step).unwrap_or(0);
    // A failure right after the flip committed is a failure after the flip.
    let flipped = match catalog.tenant(&plan.slug).await {
        Ok(t) => t.placement == plan.to.placement && t.server == plan.to.server,
        Err(_) => idx > 6,
    };
    let idx = if flipped { idx.max(7) } else { idx };
    // Between the fence and the flip the source is opened again. A failed flip keeps the
    // fence: the subscription may already be gone, so only `--resume` (which redoes the flip)
    // or `--abort` may go on from there.
    let fenced = (3..=5).contains(&idx);
    let mismatch = matches!(&e, Error::Verify(_)) && !flipped;
    let cause = e.to_string();
    if mismatch {
        return match abort_inner(catalog, ends, op, plan).await {
            Ok(()) => Error::Migration(format!(
                "the move of {:?} was rolled back before the flip: {cause}. The tenant stays where it was; nothing was left on the target",
                plan.slug
            )),
            Err(undo) => Error::Migration(format!("{cause}; rolling back failed too ({undo}); run `tenantgate tenant move {} --abort` again", plan.slug)),
        };
    }
    if fenced {
        // Lift the fence: back to catching up, to be fenced again on resume.
        let lifted = async {
            ends.src_admin().set_access(plan.from.placement, &plan.key, true).await?;
            catalog.set_fenced(&plan.key, false).await?;
            catalog.op_step(op, "catch-up").await
        }
        .await;
        if let Err(l) = lifted {
            tracing::warn!("lifting the fence after a failed step: {l}");
        }
    }
    let _ = catalog.op_finish(op, "failed", Some(&cause)).await;
    let _ = catalog
        .audit("tenant.move.failed", Some(&plan.key), serde_json::json!({"operation": op, "step": step, "error": cause}))
        .await;
    let after_flip = idx >= 7;
    let what = if after_flip {
        "the tenant already runs on its new placement; only the cleanup is left"
    } else if idx == 6 {
        "the tenant's writes stay fenced (gateways answer 57P03 after their hold) until the flip is finished or undone"
    } else if fenced {
        "the fence was lifted and the tenant keeps running on its source"
    } else {
        "the tenant keeps running on its source"
    };
    let next = if after_flip {
        format!("fix the cause and run `tenantgate tenant move {} --resume` to finish", plan.slug)
    } else {
        format!("fix the cause and run `tenantgate tenant move {0} --resume`, or `--abort` to undo it", plan.slug)
    };
    Error::Migration(format!("the move of {:?} stopped at step {step}: {cause}. {what}; {next}", plan.slug))
}

async fn run_step(cfg: &Config, catalog: &mut Catalog, ends: &Ends, op: i64, plan: &mut Plan, step: &str, report: Reporter<'_>) -> Result<()> {
    match step {
        "prepare" => prepare(cfg, catalog, ends, plan).await,
        "copy" => copy(ends, plan, report).await,
        "catch-up" => catch_up(ends, plan, report).await,
        "fence" => {
            catalog.set_fenced(&plan.key, true).await?;
            ends.src_admin().set_access(plan.from.placement, &plan.key, false).await
        }
        "final-catch-up" => final_catch_up(ends, plan, report).await,
        "verify" => verify(ends, plan).await,
        "flip" => flip(catalog, ends, op, plan).await,
        "unfence" => {
            catalog.set_fenced(&plan.key, false).await?;
            // The fence lasted from the start of `fence` to here.
            let fence: u64 = plan
                .steps
                .iter()
                .filter(|s| ["fence", "final-catch-up", "verify", "flip"].contains(&s.step.as_str()))
                .map(|s| s.ms)
                .sum();
            plan.fence_ms = Some(fence);
            Ok(())
        }
        "clean" => clean(ends, plan).await,
        _ => Ok(()),
    }
}

async fn prepare(cfg: &Config, catalog: &Catalog, ends: &Ends, plan: &Plan) -> Result<()> {
    let master = master_key(cfg, catalog).await?;
    let dst_admin = ends.dst_admin();
    dst_admin.ensure_roles(&plan.key, &master).await?;
    dst_admin.prepare_move_target(plan.to.placement, &plan.key, &plan.staging_schema).await?;
    let migrations = catalog.app_migrations().await?;
    let (rw, ro) = placement::grantees(plan.to.placement, Some(&plan.key))?;
    match plan.to.placement {
        Placement::Pooled => {
            // The pool's shared tables, at the registered version.
            let target = fanout::pool_target(&plan.to.server);
            catalog.ensure_target(&target).await?;
            let mut c = dst_admin.connect(Some(&target.database)).await?;
            let v = fanout::apply_pending(&mut c, &target.schema, &rw, &ro, &migrations).await.map_err(|(_, e)| e)?;
            catalog.set_target_state(&target.target, v, None).await?;
            if plan.naming == Naming::Mirror {
                create_mirror(&c, &plan.staging_schema, &plan.tables).await?;
            }
        }
        _ => {
            let loc = placement::location(plan.to.placement, &plan.key);
            let mut c = dst_admin.connect(Some(&loc.database)).await?;
            fanout::apply_pending(&mut c, &plan.staging_schema, &rw, &ro, &migrations).await.map_err(|(_, e)| e)?;
        }
    }
    let src = ends.src(plan).await?;
    let src_loc = placement::location(plan.from.placement, &plan.key);
    let filter = (plan.from.placement == Placement::Pooled).then_some(&plan.key);
    repl::create_publication(&src, &plan.name, &src_loc.schema, &plan.tables, filter).await?;
    repl::create_slot(&src, &plan.name).await?;
    let dst = ends.dst(plan).await?;
    let conninfo = crate::db::conninfo(&ends.source.url, &src_loc.database)?;
    repl::create_subscription(&dst, &plan.name, &conninfo).await
}

/// Staging tables in the pool, named as the source's, that mirror every row the
/// subscription applies into the shared `app` tables (ALWAYS triggers fire during apply).
async fn create_mirror(c: &Client, staging: &str, tables: &[String]) -> Result<()> {
    let s = ident(staging);
    c.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {s}; REVOKE ALL ON SCHEMA {s} FROM PUBLIC;"))
        .await
        .map_err(|e| Error::db("creating the staging schema", e))?;
    for t in tables {
        let cols = rows::columns(c, APP_SCHEMA, t).await?;
        let pk = rows::primary_key(c, APP_SCHEMA, t).await?;
        if pk.is_empty() {
            return Err(Error::Migration(format!("table app.{t} on the target has no primary key; the table contract needs one")));
        }
        let list = |v: &[String]| v.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
        let old = |v: &[String]| v.iter().map(|c| format!("OLD.{}", ident(c))).collect::<Vec<_>>().join(", ");
        let (tq, aq) = (format!("{s}.{}", ident(t)), format!("{}.{}", ident(APP_SCHEMA), ident(t)));
        let func = format!("{s}.{}", ident(&format!("tg_mirror_{t}")));
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {tq} (LIKE {aq} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
             CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql AS $mirror$
             BEGIN
               IF TG_OP = 'INSERT' THEN
                 INSERT INTO {aq} SELECT (NEW).*; RETURN NEW;
               ELSIF TG_OP = 'UPDATE' THEN
                 UPDATE {aq} SET ({cols}) = (SELECT (NEW).*) WHERE ({pk}) = ({oldpk}); RETURN NEW;
               ELSE
                 DELETE FROM {aq} WHERE ({pk}) = ({oldpk}); RETURN OLD;
               END IF;
             END $mirror$;
             DROP TRIGGER IF EXISTS tg_mirror ON {tq};
             CREATE TRIGGER tg_mirror BEFORE INSERT OR UPDATE OR DELETE ON {tq} FOR EACH ROW EXECUTE FUNCTION {func}();
             ALTER TABLE {tq} ENABLE ALWAYS TRIGGER tg_mirror;",
            cols = list(&cols),
            pk = list(&pk),
            oldpk = old(&pk),
        );
        c.batch_execute(&sql).await.map_err(|e| Error::db(format!("creating the staging table {t}"), e))?;
    }
    Ok(())
}

async fn copy(ends: &Ends, plan: &Plan, report: Reporter<'_>) -> Result<()> {
    let dst = ends.dst(plan).await?;
    let mut errors_at_start = None;
    loop {
        let (total, done, errors) = repl::copy_state(&dst, &plan.name).await?;
        let rows = repl::copy_progress_rows(&dst).await.ok();
        report(&Progress { step: "copy", rows, tables: Some((done, total)), lag_bytes: None, done: false });
        if total > 0 && done == total {
            return Ok(());
        }
        let base = *errors_at_start.get_or_insert(errors);
        if errors - base >= 5 {
            return Err(Error::Migration(format!(
                "the initial copy keeps failing on server {} ({} errors); its log says why",
                plan.to.server,
                errors - base
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn catch_up(ends: &Ends, plan: &Plan, report: Reporter<'_>) -> Result<()> {
    let src = ends.src(plan).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let lag = repl::lag_bytes(&src, &plan.name, None).await?;
        let Some(lag) = lag else {
            return Err(Error::Migration(format!("replication slot {} is missing on the source; `--abort` and start again", plan.name)));
        };
        report(&Progress { step: "catch-up", rows: None, tables: None, lag_bytes: Some(lag), done: false });
        if lag < 1 << 20 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Migration(format!("replication is still {lag} bytes behind after 10 minutes; the source writes faster than the target applies")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn final_catch_up(ends: &Ends, plan: &Plan, report: Reporter<'_>) -> Result<()> {
    let src = ends.src(plan).await?;
    // The fence ended every session of the tenant on the source, so nothing of it commits
    // after this position: once the target confirms it, the target has every row.
    let fence_lsn = repl::current_lsn(&src).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lag = repl::lag_bytes(&src, &plan.name, Some(&fence_lsn)).await?;
        let Some(lag) = lag else {
            return Err(Error::Migration(format!("replication slot {} is missing on the source", plan.name)));
        };
        report(&Progress { step: "final-catch-up", rows: None, tables: None, lag_bytes: Some(lag), done: false });
        if lag == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Migration(format!("the target did not confirm the fence position within 30 s ({lag} bytes behind)")));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The target's schema and table that hold the tenant's rows of `table` before the flip.
fn target_schema(plan: &Plan) -> &str {
    match plan.naming {
        Naming::Mirror => APP_SCHEMA,
        _ => &plan.staging_schema,
    }
}

async fn verify(ends: &Ends, plan: &mut Plan) -> Result<()> {
    let (src, dst) = (ends.src(plan).await?, ends.dst(plan).await?);
    for c in [&src, &dst] {
        c.batch_execute(repl::CHECKSUM_SETTINGS).await.map_err(|e| Error::db("preparing the checksums", e))?;
    }
    let src_schema = placement::location(plan.from.placement, &plan.key).schema;
    let dst_schema = target_schema(plan).to_string();
    let mut checks = Vec::new();
    for t in &plan.tables {
        let how = repl::row_hash_for(&src, &src_schema, t).await?;
        let (a, b) = tokio::join!(
            repl::table_checksum(&src, &src_schema, t, &plan.key, how),
            repl::table_checksum(&dst, &dst_schema, t, &plan.key, how)
        );
        let ((sn, ss), (tn, ts)) = (a?, b?);
        if sn != tn || ss != ts {
            return Err(Error::Verify(format!(
                "table {t} differs: {sn} rows (checksum {ss}) on the source, {tn} rows (checksum {ts}) on the target"
            )));
        }
        checks.push(TableCheck { table: t.clone(), rows: sn, source_checksum: ss, target_checksum: ts });
    }
    plan.checks = checks;
    plan.sequences_synced = repl::sync_sequences(&src, &src_schema, &dst, &dst_schema).await?;
    Ok(())
}

async fn flip(catalog: &mut Catalog, ends: &Ends, op: i64, plan: &Plan) -> Result<()> {
    let dst = ends.dst(plan).await?;
    repl::drop_subscription(&dst, &plan.name).await?;
    let final_loc = placement::location(plan.to.placement, &plan.key);
    if plan.naming == Naming::Rename {
        let staged: bool = dst
            .query_one("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", &[&plan.staging_schema])
            .await
            .map_err(|e| Error::db("looking up the staging schema", e))?
            .get(0);
        if staged {
            let sql = format!(
                "BEGIN; ALTER SCHEMA {} RENAME TO {}; \
                 UPDATE tenantgate_admin.applied_migrations SET schema_name = {} WHERE schema_name = {}; COMMIT;",
                ident(&plan.staging_schema),
                ident(&final_loc.schema),
                literal(&final_loc.schema),
                literal(&plan.staging_schema)
            );
            if let Err(e) = dst.batch_execute(&sql).await {
                let _ = dst.batch_execute("ROLLBACK").await;
                return Err(Error::db("renaming the staging schema", e));
            }
        }
    }
    ends.dst_admin().set_access(plan.to.placement, &plan.key, true).await?;
    let target = match plan.to.placement {
        Placement::Pooled => None,
        p => Some(crate::catalog::MigrationTarget { version: plan.version, ..fanout::target_for(&plan.to.server, p, &plan.key) }),
    };
    // The point of no return: one catalog transaction moves the route and the step.
    catalog.flip_route(&plan.key, plan.to.placement, &plan.to.server, target.as_ref(), op, "unfence").await
}

async fn clean(ends: &Ends, plan: &Plan) -> Result<()> {
    // Replication objects first: nothing may be published from rows being deleted.
    if plan.naming == Naming::Mirror {
        let dst = ends.dst(plan).await?;
        dst.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", ident(&plan.staging_schema)))
            .await
            .map_err(|e| Error::db("dropping the staging schema", e))?;
    }
    let src_loc = placement::location(plan.from.placement, &plan.key);
    let src_admin = ends.src_admin();
    if plan.from.placement != Placement::Database {
        let src = ends.src(plan).await?;
        repl::drop_slot(&src, &plan.name).await?;
        repl::drop_publication(&src, &plan.name).await?;
        if plan.from.placement == Placement::Pooled {
            rows::delete_tenant_rows(&src, &src_loc.schema, &plan.key).await?;
        }
    } else if database_exists(&src_admin, &src_loc.database).await? {
        let src = ends.src(plan).await?;
        repl::drop_slot(&src, &plan.name).await?;
    }
    src_admin.drop_container(plan.from.placement, &plan.key, &src_loc.schema).await?;
    // On the same server the roles stay; the fence already revoked their access here.
    if plan.from.server != plan.to.server {
        src_admin.drop_tenant_roles(&plan.key).await?;
    }
    Ok(())
}

async fn database_exists(admin: &ServerAdmin<'_>, name: &str) -> Result<bool> {
    let c = admin.connect(None).await?;
    placement::database_exists(&c, name).await
}

/// Undo a move that has not flipped: remove the target and the replication objects, open
/// the source again and lift the fence. Refused after the flip (only forward then).
pub async fn abort(catalog: &mut Catalog, slug: &str) -> Result<MoveStatus> {
    let (tenant, op, mut plan) = open_move(catalog, slug).await?;
    let flipped = tenant.placement == plan.to.placement && tenant.server == plan.to.server;
    let idx = STEPS.iter().position(|s| *s == op.step).unwrap_or(0);
    if flipped || idx > 6 {
        return Err(Error::WrongStatus {
            slug: slug.into(),
            status: format!("moved (step {})", op.step),
            hint: format!("the route already flipped to {} on {}; a move only goes forward after the flip: run `tenantgate tenant move {slug} --resume` to finish it", plan.to.placement, plan.to.server),
        });
    }
    let ends = Ends::load(catalog, &plan).await?;
    abort_inner(catalog, &ends, op.id, &mut plan).await?;
    status(catalog, slug).await
}

async fn abort_inner(catalog: &Catalog, ends: &Ends, op: i64, plan: &mut Plan) -> Result<()> {
    let dst_admin = ends.dst_admin();
    let dst_loc = placement::location(plan.to.placement, &plan.key);
    if database_exists(&dst_admin, &dst_loc.database).await? {
        let dst = ends.dst(plan).await?;
        repl::drop_subscription(&dst, &plan.name).await?;
        if plan.to.placement == Placement::Pooled {
            if plan.naming == Naming::Mirror {
                dst.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", ident(&plan.staging_schema)))
                    .await
                    .map_err(|e| Error::db("dropping the staging schema", e))?;
            }
            rows::delete_tenant_rows(&dst, APP_SCHEMA, &plan.key).await?;
        }
    }
    let src = ends.src(plan).await?;
    repl::drop_slot(&src, &plan.name).await?;
    repl::drop_publication(&src, &plan.name).await?;
    match plan.to.placement {
        Placement::Pooled => {
            if plan.to.server == plan.from.server {
                // A failed flip may have opened the pool to the tenant already.
                dst_admin.set_access(Placement::Pooled, &plan.key, false).await?;
            }
        }
        p => {
            // The staging schema, or the final one if a failed flip had renamed it.
            dst_admin.drop_container(p, &plan.key, &plan.staging_schema).await?;
            if p == Placement::Schema {
                dst_admin.drop_container(p, &plan.key, &dst_loc.schema).await?;
            }
        }
    }
    if plan.to.server != plan.from.server {
        dst_admin.drop_tenant_roles(&plan.key).await?;
    } else if plan.to.placement == Placement::Schema {
        dst_admin.leave_bridge(&plan.key).await?;
    }
    ends.src_admin().set_access(plan.from.placement, &plan.key, true).await?;
    catalog.set_fenced(&plan.key, false).await?;
    catalog.op_finish(op, "rolled_back", None).await?;
    catalog
        .audit("tenant.move.abort", Some(&plan.key), serde_json::json!({"operation": op, "from": plan.from, "to": plan.to}))
        .await
}

/// Replication objects of moves left on a server (every database), for `verify`'s
/// configuration audit: an orphan slot holds WAL forever.
pub async fn leftovers_on(server: &Server) -> Result<Vec<(String, String, String)>> {
    let admin = ServerAdmin { name: &server.name, url: &server.url };
    let c = admin.connect(None).await?;
    let dbs: Vec<String> = c
        .query("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate", &[])
        .await
        .map_err(|e| Error::db("listing databases", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = repl::leftovers(&c).await?;
    for db in dbs.iter().filter(|d| d.as_str() != "postgres") {
        if let Ok(dc) = admin.connect(Some(db)).await {
            out.extend(repl::leftovers(&dc).await?.into_iter().filter(|(k, _, _)| k == "publication"));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}
