//! Fan-out: apply registered migrations to every target (each server's pool
//! database, each schema tenant's schema, each database tenant's database).
//!
//! Per target, each migration runs in one transaction together with the RLS,
//! policies and grants for new tables (`placement::secure_schema`) and a record in
//! the target's `tenantgate_admin.applied_migrations`; that record is the truth and
//! the catalog's `migration_targets.version` mirrors it, so a run with nothing to do
//! touches no target at all. A failing target is recorded and skipped; the others go on.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use tokio_postgres::Client;

use crate::catalog::{AppMigration, Catalog, MigrationTarget, Server};
use crate::quote::{ident, literal};
use crate::error::{Error, Result};
use crate::model::{Placement, TenantKey};
use crate::placement::{self, ServerAdmin};

#[derive(Debug, Clone, Serialize)]
pub struct TargetOutcome {
    pub target: String,
    pub from: i32,
    pub to: i32,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub latest: i32,
    pub targets_total: usize,
    pub up_to_date: usize,
    pub outcomes: Vec<TargetOutcome>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.outcomes.iter().filter(|o| o.error.is_some()).count()
    }
}

/// The catalog name of a target.
pub fn target_name(server: &str, database: &str, schema: &str) -> String {
    format!("{server}/{database}/{schema}")
}

/// The migration target of a tenant (its own schema or database), or of a server's pool.
pub fn target_for(server: &str, placement: Placement, key: &TenantKey) -> MigrationTarget {
    let loc = placement::location(placement, key);
    MigrationTarget {
        target: target_name(server, &loc.database, &loc.schema),
        server: server.into(),
        database: loc.database,
        schema: loc.schema,
        tenant_key: (placement != Placement::Pooled).then(|| key.to_string()),
        version: 0,
        last_error: None,
    }
}

pub fn pool_target(server: &str) -> MigrationTarget {
    MigrationTarget {
        target: target_name(server, placement::POOL_DB, placement::APP_SCHEMA),
        server: server.into(),
        database: placement::POOL_DB.into(),
        schema: placement::APP_SCHEMA.into(),
        tenant_key: None,
        version: 0,
        last_error: None,
    }
}

/// Apply every pending migration to every target, `jobs` targets at a time.
pub async fn run(catalog: &Catalog, jobs: usize) -> Result<Report> {
    // A move copies a fixed app-schema version: migrating its source meanwhile would break
    // the replication (and the target would miss the migration).
    let moving = catalog.running_ops("move").await?;
    if let Some(op) = moving.first() {
        let slug = op.detail.get("slug").and_then(|s| s.as_str()).unwrap_or("?").to_string();
        return Err(Error::WrongStatus {
            slug,
            status: format!("moving (step {})", op.step),
            hint: "a move is under way; run `tenantgate migrate` after it finishes (`tenantgate tenant move SLUG --status`), or abort it with `--abort`. Nothing was migrated".into(),
        });
    }
    let migrations = catalog.app_migrations().await?;
    let latest = migrations.last().map_or(0, |m| m.version);
    let servers = catalog.servers().await?;
    // Every server gets a pool database, so pooled tenants can be placed anywhere.
    if latest > 0 {
        for s in &servers {
            let known = catalog.targets().await?.into_iter().any(|t| t.target == pool_target(&s.name).target);
            if !known {
                ServerAdmin { name: &s.name, url: &s.url }.ensure_shared(Placement::Pooled).await?;
                catalog.ensure_target(&pool_target(&s.name)).await?;
            }
        }
    }
    let targets = catalog.targets().await?;
    let total = targets.len();
    let pending: VecDeque<MigrationTarget> = targets.into_iter().filter(|t| t.version < latest).collect();
    let up_to_date = total - pending.len();
    let queue = Mutex::new(pending);
    let servers: HashMap<String, Server> = servers.into_iter().map(|s| (s.name.clone(), s)).collect();
    let workers = (0..jobs.max(1)).map(|_| worker(catalog, &queue, &servers, &migrations));
    let mut outcomes: Vec<TargetOutcome> = futures::future::join_all(workers).await.into_iter().flatten().collect();
    outcomes.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(Report { latest, targets_total: total, up_to_date, outcomes })
}

/// One worker: takes targets off the queue, reusing a connection per database.
async fn worker(
    catalog: &Catalog,
    queue: &Mutex<VecDeque<MigrationTarget>>,
    servers: &HashMap<String, Server>,
    migrations: &[AppMigration],
) -> Vec<TargetOutcome> {
    let mut conns: HashMap<(String, String), Client> = HashMap::new();
    let mut out = Vec::new();
    loop {
        let next = match queue.lock() {
            Ok(mut q) => q.pop_front(),
            Err(_) => None,
        };
        let Some(target) = next else { break };
        let result = migrate_target(&mut conns, servers, &target, migrations).await;
        let outcome = match result {
            Ok(to) => {
                let _ = catalog.set_target_state(&target.target, to, None).await;
                TargetOutcome { target: target.target.clone(), from: target.version, to, error: None }
            }
            Err((reached, e)) => {
                let msg = e.to_string();
                let _ = catalog.set_target_state(&target.target, reached, Some(&msg)).await;
                conns.remove(&(target.server.clone(), target.database.clone()));
                TargetOutcome { target: target.target.clone(), from: target.version, to: reached, error: Some(msg) }
            }
        };
        out.push(outcome);
    }
    out
}

async fn migrate_target(
    conns: &mut HashMap<(String, String), Client>,
    servers: &HashMap<String, Server>,
    target: &MigrationTarget,
    migrations: &[AppMigration],
) -> std::result::Result<i32, (i32, Error)> {
    let fail = |e| (target.version, e);
    let server = servers.get(&target.server).ok_or_else(|| fail(Error::UnknownServer(target.server.clone())))?;
    let conn_key = (target.server.clone(), target.database.clone());
    if !conns.contains_key(&conn_key) {
        let c = ServerAdmin { name: &server.name, url: &server.url }
            .connect(Some(&target.database))
            .await
            .map_err(fail)?;
        conns.insert(conn_key.clone(), c);
    }
    let client = conns.get_mut(&conn_key).ok_or_else(|| fail(Error::Migration("connection lost".into())))?;
    let key = target.tenant_key.as_deref().map(TenantKey::parse).transpose().map_err(fail)?;
    let placement = match (&key, target.database.as_str()) {
        (None, _) => Placement::Pooled,
        (Some(_), placement::BRIDGE_DB) => Placement::Schema,
        (Some(_), _) => Placement::Database,
    };
    let (rw, ro) = placement::grantees(placement, key.as_ref()).map_err(fail)?;
    apply_pending(client, &target.schema, &rw, &ro, migrations).await
}

/// Apply the migrations not yet recorded in the target. Returns the version reached,
/// or the version reached before the failing migration together with the error.
pub async fn apply_pending(
    client: &mut Client,
    schema: &str,
    rw: &str,
    ro: &str,
    migrations: &[AppMigration],
) -> std::result::Result<i32, (i32, Error)> {
    let applied = applied_versions(client, schema).await.map_err(|e| (0, e))?;
    let mut reached = applied.iter().copied().max().unwrap_or(0);
    for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        apply_one(client, schema, rw, ro, m).await.map_err(|e| (reached, e))?;
        reached = reached.max(m.version);
    }
    Ok(reached)
}

async fn applied_versions(client: &Client, schema: &str) -> Result<Vec<i32>> {
    let rows = client
        .query("SELECT version FROM tenantgate_admin.applied_migrations WHERE schema_name = $1", &[&schema])
        .await
        .map_err(|e| Error::db("reading applied migrations", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

async fn apply_one(client: &mut Client, schema: &str, rw: &str, ro: &str, m: &AppMigration) -> Result<()> {
    let ctx = |what: &str| format!("{what} {} in schema {schema}", m.name);
    let tx = client.transaction().await.map_err(|e| Error::db(ctx("starting"), e))?;
    // Serialise concurrent runs on the same schema, then re-check under the lock.
    tx.execute("SELECT pg_advisory_xact_lock(7453012, hashtext($1))", &[&schema])
        .await
        .map_err(|e| Error::db(ctx("locking"), e))?;
    let done = tx
        .query_opt(
            "SELECT 1 FROM tenantgate_admin.applied_migrations WHERE schema_name = $1 AND version = $2",
            &[&schema, &m.version],
        )
        .await
        .map_err(|e| Error::db(ctx("checking"), e))?;
    if done.is_some() {
        return tx.commit().await.map_err(|e| Error::db(ctx("committing"), e));
    }
    tx.batch_execute(&format!("SET LOCAL search_path = {}", ident(schema)))
        .await
        .map_err(|e| Error::db(ctx("preparing"), e))?;
    tx.batch_execute(&m.sql).await.map_err(|e| Error::db(ctx("applying"), e))?;
    placement::secure_schema(&tx, schema, rw, ro).await?;
    tx.batch_execute(&format!(
        "INSERT INTO tenantgate_admin.applied_migrations (schema_name, version, checksum) VALUES ({}, {}, {})",
        literal(schema),
        m.version,
        literal(&m.checksum)
    ))
    .await
    .map_err(|e| Error::db(ctx("recording"), e))?;
    tx.commit().await.map_err(|e| Error::db(ctx("committing"), e))
}
