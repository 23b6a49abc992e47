//! Erasure with a certificate (DESIGN §6).
//!
//! Steps, recorded in `tg.operations` and each idempotent so an interrupted erase is
//! finished by running it again: fence (roles NOLOGIN, sessions ended) → count rows →
//! delete the tenant's rows (pooled: in batches, then VACUUM) or drop its schema/database
//! → drop its roles → count again → tombstone. The certificate lists what was removed with counts before
//! and after; the tombstone keeps only the key, a hash of the slug and the certificate.
//! Never deletes a row that is not the tenant's: pooled deletes are keyed on tenant_id.
//!
//! The certificate also says what the erasure cannot reach (`backups`): the pgBackRest
//! backups of the tenant's server taken since it was created, and the WAL archived with
//! them, still hold its data until the configured retention expires them (`backup::info`);
//! the exports `tenant export` wrote of it (`exports`: every file its audit trail records,
//! and whether it is still at that path on this machine: tenantgate never deletes them);
//! and every region where it had data (`regions`): its placement at the erasure, and each
//! placement it left by a move (`tg.operations`), whose server's backups are accounted
//! for as well (`backups_elsewhere`).

use std::collections::HashMap;

use serde::Serialize;

use crate::backup::{self, Backups};
use crate::catalog::{Catalog, Tenant};
use crate::quote::ident;
use crate::error::{Error, Result};
use crate::model::{Placement, TenantStatus};
use crate::placement::{self, ServerAdmin};

use super::rows::{self, tables_in};

#[derive(Debug, Clone, Serialize)]
pub struct TableCount {
    pub table: String,
    pub rows_before: i64,
    pub rows_after: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Certificate {
    pub certificate: &'static str,
    pub tenant_slug: String,
    pub tenant_key: String,
    pub placement: Placement,
    pub server: String,
    pub region: String,
    pub database: String,
    pub schema: String,
    pub tables: Vec<TableCount>,
    pub rows_before: i64,
    pub rows_after: i64,
    pub removed: Vec<String>,
    pub container_exists_after: bool,
    pub roles_exist_after: bool,
    /// The pgBackRest backups and archived WAL that still hold the tenant's data.
    pub backups: BackupAccount,
    /// The archives `tenant export` wrote of the tenant (they are the operator's to delete).
    pub exports: ExportAccount,
    /// Every region where the tenant had data: its placement now and any it left by a move.
    pub regions: Vec<RegionHeld>,
    /// The backups of servers it left by a move, which hold its data from before the move.
    pub backups_elsewhere: Vec<BackupAccount>,
    pub operation_id: i64,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
}

/// What the erasure cannot reach: backups of the tenant's server and their WAL.
#[derive(Debug, Clone, Serialize)]
pub struct BackupAccount {
    /// Whether pgBackRest's repository was read for this certificate.
    pub checked: bool,
    pub server: String,
    pub stanza: Option<String>,
    pub repo: Option<String>,
    pub retention_full: Option<u32>,
    /// Every backup that may hold the tenant's rows (it ended after the tenant was created).
    pub held_by: Vec<HeldBackup>,
    /// The archived WAL segments that hold its writes (from its creation to the erasure).
    pub wal_from: Option<String>,
    pub wal_to: Option<String>,
    /// When the last copy expires, estimated from `backup.full_every_hours`.
    pub expires_estimate: Option<chrono::DateTime<chrono::Utc>>,
    /// The account in words.
    pub statement: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeldBackup {
    pub label: String,
    pub kind: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub stopped_at: chrono::DateTime<chrono::Utc>,
    /// Expired by pgBackRest after this many more full backups (`repo1-retention-full`).
    pub expires_after_full_backups: u32,
    pub expires_estimate: Option<chrono::DateTime<chrono::Utc>>,
}

/// The exports of the tenant that tenantgate wrote, from the audit trail.
#[derive(Debug, Clone, Serialize)]
pub struct ExportAccount {
    pub files: Vec<ExportFile>,
    /// The account in words.
    pub statement: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportFile {
    pub file: String,
    pub exported_at: chrono::DateTime<chrono::Utc>,
    pub bytes: u64,
    /// Written by `tenant export --all` (a scheduled export).
    pub scheduled: bool,
    /// Still at that path on the machine that ran the erasure.
    pub present: bool,
}

/// A region where the tenant had data.
#[derive(Debug, Clone, Serialize)]
pub struct RegionHeld {
    pub region: String,
    pub server: String,
    pub placement: Placement,
    /// `current` (erased above), or `left by move #N` (the move's cleanup deleted it there).
    pub how: String,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// What the caller knows of the deployment's backups, for the certificate.
#[derive(Debug, Clone, Copy)]
pub enum BackupsKnown<'a> {
    /// Not read (the admin API has no tenantgate.toml): the certificate says so.
    NotRead,
    /// tenantgate.toml has no `[backup]`: no pgBackRest backup exists.
    NoneConfigured,
    /// The pgBackRest repository to read.
    Repo(&'a Backups),
}

/// Erase without reading `[backup]` (the admin API): the certificate says the backups were
/// not looked up. The CLI uses [`erase_accounting`].
pub async fn erase(catalog: &mut Catalog, slug: &str, confirm: Option<&str>) -> Result<Certificate> {
    erase_accounting(catalog, slug, confirm, BackupsKnown::NotRead).await
}

/// Erase, and account in the certificate for the pgBackRest backups of `backups`.
pub async fn erase_accounting(catalog: &mut Catalog, slug: &str, confirm: Option<&str>, backups: BackupsKnown<'_>) -> Result<Certificate> {
    if confirm != Some(slug) {
        return Err(Error::EraseNotConfirmed { slug: slug.to_string() });
    }
    let tenant = catalog.tenant(slug).await?;
    let started_at = chrono::Utc::now();
    let op = match catalog.open_op(&tenant.key).await? {
        Some(op) if op.kind == "erase" => op.id,
        Some(op) if op.kind == "move" => {
            return Err(Error::WrongStatus {
                slug: slug.into(),
                status: format!("moving (step {})", op.step),
                hint: format!("a move is under way; finish it (`tenantgate tenant move {slug} --resume`) or undo it (`--abort`) before erasing. Nothing was erased"),
            })
        }
        _ => catalog.start_op("erase", Some(&tenant.key), serde_json::json!({"slug": slug})).await?,
    };
    catalog.set_status(&tenant.key, TenantStatus::Erasing).await?;
    match run(catalog, &tenant, op, started_at, backups).await {
        Ok(cert) => Ok(cert),
        Err(e) => {
            let _ = catalog.op_finish(op, "failed", Some(&e.to_string())).await;
            Err(Error::WrongStatus {
                slug: slug.into(),
                status: "erasing".into(),
                hint: format!("erasure stopped: {e}. Fix the cause and re-run `tenantgate tenant erase {slug} --confirm {slug}` to finish it"),
            })
        }
    }
}

async fn run(catalog: &mut Catalog, tenant: &Tenant, op: i64, started_at: chrono::DateTime<chrono::Utc>, backups: BackupsKnown<'_>) -> Result<Certificate> {
    let server = catalog.server(&tenant.server).await?;
    let admin = ServerAdmin { name: &server.name, url: &server.url };
    let loc = placement::location(tenant.placement, &tenant.key);

    catalog.op_step(op, "fence").await?;
    admin.set_login(&tenant.key, false).await?;

    catalog.op_step(op, "count").await?;
    let before = count_rows(&admin, tenant).await?;

    catalog.op_step(op, "delete").await?;
    let mut removed = Vec::new();
    if tenant.placement == Placement::Pooled {
        // In batches of 50,000 rows, children first, then VACUUM (ANALYZE) of each table, so
        // the shared tables are never locked for long and the dead rows' space is reclaimed.
        let c = admin.connect(Some(&loc.database)).await?;
        let n = rows::delete_tenant_rows(&c, &loc.schema, &tenant.key).await?;
        removed.push(format!("{n} rows with tenant_id = {} in {}.{} (deleted in batches, tables vacuumed)", tenant.key, loc.database, loc.schema));
    }
    admin.drop_tenant(tenant.placement, &tenant.key).await?;
    match tenant.placement {
        Placement::Pooled => {}
        Placement::Schema => removed.push(format!("schema {} in database {}", loc.schema, loc.database)),
        Placement::Database => removed.push(format!("database {}", loc.database)),
    }
    removed.push(format!("roles {} and {}", tenant.key.rw_role(), tenant.key.ro_role()));

    catalog.op_step(op, "verify").await?;
    let after = count_rows(&admin, tenant).await?;
    let tables: Vec<TableCount> = before
        .iter()
        .map(|(t, n)| TableCount { table: t.clone(), rows_before: *n, rows_after: after.get(t).copied().unwrap_or(0) })
        .collect();
    let c = admin.connect(None).await?;
    let roles_exist_after: bool = c
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ANY($1))", &[&vec![tenant.key.rw_role(), tenant.key.ro_role()]])
        .await
        .map_err(|e| Error::db("verifying the roles are gone", e))?
        .get(0);
    // A pooled tenant has no container of its own: the shared tables stay, its rows are counted above.
    let container_exists_after = tenant.placement != Placement::Pooled && container_exists(&admin, tenant).await?;
    let rows_after: i64 = tables.iter().map(|t| t.rows_after).sum();
    if rows_after != 0 || roles_exist_after || container_exists_after {
        return Err(Error::Migration(format!(
            "verification after erasure found {rows_after} rows left, roles present: {roles_exist_after}, container present: {container_exists_after}"
        )));
    }
    removed.push("API keys and catalog records (a tombstone remains)".into());
    let regions = regions_held(catalog, tenant).await?;
    let mut backups_elsewhere = Vec::new();
    let mut seen = vec![tenant.server.clone()];
    for r in &regions {
        if !seen.contains(&r.server) {
            seen.push(r.server.clone());
            let there = Tenant { server: r.server.clone(), ..tenant.clone() };
            backups_elsewhere.push(account_backups(backups, &there).await);
        }
    }
    let backups = account_backups(backups, tenant).await;
    let exports = account_exports(catalog, tenant).await?;

    let cert = Certificate {
        certificate: "tenantgate erasure certificate v1",
        tenant_slug: tenant.slug.clone(),
        tenant_key: tenant.key.to_string(),
        placement: tenant.placement,
        server: tenant.server.clone(),
        region: tenant.region.clone(),
        database: loc.database,
        schema: loc.schema,
        rows_before: tables.iter().map(|t| t.rows_before).sum(),
        rows_after,
        tables,
        removed,
        container_exists_after,
        roles_exist_after,
        backups,
        exports,
        regions,
        backups_elsewhere,
        operation_id: op,
        started_at,
        finished_at: chrono::Utc::now(),
    };
    // The stored copy must not keep the slug readable.
    let mut stored = serde_json::to_value(&cert).map_err(|e| Error::Migration(e.to_string()))?;
    stored["tenant_slug"] = serde_json::Value::String("<erased>".into());
    // Scheduled exports are named after the slug (`<slug>-<time>.tar.zst`): not in the tombstone.
    let named = format!("/{}-", tenant.slug);
    let unnamed = |v: &mut serde_json::Value| {
        if let Some(t) = v.as_str() {
            *v = serde_json::Value::String(t.replace(&named, "/<erased>-"));
        }
    };
    unnamed(&mut stored["exports"]["statement"]);
    if let Some(files) = stored["exports"]["files"].as_array_mut() {
        files.iter_mut().for_each(|f| unnamed(&mut f["file"]));
    }
    catalog.op_step(op, "tombstone").await?;
    catalog.op_finish(op, "done", None).await?;
    catalog.audit("tenant.erase", Some(&tenant.key), serde_json::json!({"rows_before": cert.rows_before})).await?;
    catalog.tombstone(&tenant.key, &tenant.slug, &stored).await?;
    Ok(cert)
}

/// Per-table row counts of the tenant's data (none for a container that no longer exists).
/// For a pooled tenant the "container" is the shared pool database and only its rows are counted.
async fn count_rows(admin: &ServerAdmin<'_>, tenant: &Tenant) -> Result<HashMap<String, i64>> {
    let loc = placement::location(tenant.placement, &tenant.key);
    let mut out = HashMap::new();
    if !container_exists(admin, tenant).await? {
        return Ok(out);
    }
    let c = admin.connect(Some(&loc.database)).await?;
    for table in tables_in(&c, &loc.schema).await? {
        let t = format!("{}.{}", ident(&loc.schema), ident(&table));
        let row = if tenant.placement == Placement::Pooled {
            c.query_one(&format!("SELECT count(*) FROM {t} WHERE tenant_id = $1"), &[&tenant.key.as_str()]).await
        } else {
            c.query_one(&format!("SELECT count(*) FROM {t}"), &[]).await
        };
        out.insert(table, row.map_err(|e| Error::db("counting rows", e))?.get(0));
    }
    Ok(out)
}

async fn container_exists(admin: &ServerAdmin<'_>, tenant: &Tenant) -> Result<bool> {
    let loc = placement::location(tenant.placement, &tenant.key);
    let c = admin.connect(None).await?;
    if !placement::database_exists(&c, &loc.database).await? {
        return Ok(false);
    }
    if tenant.placement != Placement::Schema {
        return Ok(true);
    }
    let b = admin.connect(Some(&loc.database)).await?;
    b.query_one("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", &[&loc.schema])
        .await
        .map(|r| r.get(0))
        .map_err(|e| Error::db("looking up the tenant schema", e))
}

/// The exports `tenant export` (and `--all`) wrote of the tenant, from the audit trail, and
/// whether each file is still at its path on this machine. tenantgate deletes none of them.
async fn account_exports(catalog: &Catalog, tenant: &Tenant) -> Result<ExportAccount> {
    let files: Vec<ExportFile> = catalog
        .exports_of(&tenant.key)
        .await?
        .into_iter()
        .map(|e| {
            let path = std::path::Path::new(&e.file);
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            ExportFile {
                scheduled: super::export::is_scheduled_of(name, &tenant.slug),
                present: path.is_absolute() && path.exists(),
                file: e.file,
                exported_at: e.at,
                bytes: e.bytes,
            }
        })
        .collect();
    let present: Vec<&ExportFile> = files.iter().filter(|f| f.present).collect();
    let operator = "exports made with `tenantgate tenant export` are the operator's to delete: tenantgate does not delete them \
                    (`tenant export --all --keep N` prunes only the exports of tenants it still exports), nor copies of them made elsewhere";
    let statement = if files.is_empty() {
        format!("no `tenant export` of this tenant is recorded in the audit trail (tg.audit_events); {operator}")
    } else if present.is_empty() {
        format!(
            "{} export(s) of this tenant are recorded (the audit trail lists their paths); none is still at its path on this machine; {operator}",
            files.len()
        )
    } else {
        let scheduled = present.iter().filter(|f| f.scheduled).count();
        format!(
            "{} export archive(s) still hold the tenant's data on this machine ({scheduled} of them scheduled, from `tenant export --all`): {}; {operator}",
            present.len(),
            present.iter().map(|f| f.file.as_str()).collect::<Vec<_>>().join(", ")
        )
    };
    Ok(ExportAccount { files, statement })
}

/// Every region where the tenant had data: its placement at the erasure, and the source of
/// every finished move (the move's cleanup deleted its rows there; that server's backups
/// still hold them). An aborted move's copy on its target was removed by the abort.
async fn regions_held(catalog: &Catalog, tenant: &Tenant) -> Result<Vec<RegionHeld>> {
    let servers = catalog.servers().await?;
    let region = |name: &str| servers.iter().find(|s| s.name == name).map_or_else(|| "unknown (server no longer registered)".to_string(), |s| s.region.clone());
    let mut out = vec![RegionHeld {
        region: tenant.region.clone(),
        server: tenant.server.clone(),
        placement: tenant.placement,
        how: "current placement: erased above".into(),
        until: None,
    }];
    for op in catalog.ops_for(&tenant.key).await?.into_iter().filter(|o| o.kind == "move") {
        let Ok(plan) = serde_json::from_value::<super::moves::Plan>(op.detail.clone()) else {
            continue;
        };
        let (end, how) = if op.state == "done" {
            (&plan.from, format!("left by move #{} to {} on {}: the move's cleanup deleted its rows there", op.id, plan.to.placement, plan.to.server))
        } else {
            (&plan.to, format!("target of move #{} ({}): its copy there was removed when the move ended", op.id, op.state))
        };
        out.push(RegionHeld { region: region(&end.server), server: end.server.clone(), placement: end.placement, how, until: Some(op.updated_at) });
    }
    Ok(out)
}

/// Which pgBackRest backups and WAL of the tenant's server still hold its data, and until
/// when under the retention. Never fails the erasure: what could not be read is said.
async fn account_backups(backups: BackupsKnown<'_>, tenant: &Tenant) -> BackupAccount {
    let mut a = BackupAccount {
        checked: false,
        server: tenant.server.clone(),
        stanza: None,
        repo: None,
        retention_full: None,
        held_by: Vec::new(),
        wal_from: None,
        wal_to: None,
        expires_estimate: None,
        statement: String::new(),
    };
    let b = match backups {
        BackupsKnown::Repo(b) => b,
        BackupsKnown::NoneConfigured => {
            a.checked = true;
            a.statement = "no pgBackRest backups are configured ([backup] in tenantgate.toml): no physical backup holds the tenant's data".into();
            return a;
        }
        BackupsKnown::NotRead => {
            a.statement = format!(
                "backups were not looked up by this caller (only `tenantgate tenant erase` reads [backup] from tenantgate.toml); \
                 every backup of server {} taken since {} may hold the tenant's data: `tenantgate backup status` lists them",
                tenant.server,
                tenant.created_at.to_rfc3339()
            );
            return a;
        }
    };
    let Ok(s) = b.server(&tenant.server) else {
        a.statement = format!("server {} has no pgBackRest backups configured ([[backup.servers]]): no backup of it holds the tenant's data", tenant.server);
        a.checked = true;
        return a;
    };
    a.stanza = Some(s.stanza().into());
    a.repo = Some(b.repo.display().to_string());
    a.retention_full = Some(b.cfg.retention_full);
    let info = match backup::info(b, s).await {
        Ok(i) => i,
        Err(e) => {
            a.statement = format!(
                "the pgBackRest repository could not be read ({e}); assume every backup of server {} (stanza {}) taken since {} holds the tenant's data",
                tenant.server,
                s.stanza(),
                tenant.created_at.to_rfc3339()
            );
            return a;
        }
    };
    a.checked = true;
    let n = b.cfg.retention_full;
    let mut fulls: Vec<&backup::BackupSet> = info.backups.iter().filter(|x| x.kind == "full").collect();
    fulls.sort_by_key(|x| std::cmp::Reverse(x.started_at));
    let newest_full = fulls.first().map(|f| f.started_at);
    let every = b.cfg.full_every_hours.map(|h| chrono::Duration::hours(h as i64));
    // A full backup that is the k-th newest (0-based) expires after n - k more full
    // backups; a diff or incr backup expires with the full backup it depends on.
    let more_for = |started: chrono::DateTime<chrono::Utc>| -> u32 {
        let k = fulls.iter().filter(|f| f.started_at > started).count() as u32;
        n.saturating_sub(k).max(1)
    };
    for x in info.backups.iter().filter(|x| x.stopped_at >= tenant.created_at) {
        let base = if x.kind == "full" { x.started_at } else { fulls.iter().find(|f| f.started_at <= x.started_at).map_or(x.started_at, |f| f.started_at) };
        let more = more_for(base);
        a.held_by.push(HeldBackup {
            label: x.label.clone(),
            kind: x.kind.clone(),
            started_at: x.started_at,
            stopped_at: x.stopped_at,
            expires_after_full_backups: more,
            expires_estimate: every.zip(newest_full).map(|(e, last)| last + e * more as i32),
        });
    }
    if !a.held_by.is_empty() {
        a.wal_from = info.backups.iter().filter(|x| x.stopped_at >= tenant.created_at).map(|x| x.wal_start.clone()).min();
        a.wal_to = info.wal_max.clone();
    }
    let last = a.held_by.iter().map(|h| h.expires_after_full_backups).max().unwrap_or(0);
    a.expires_estimate = a.held_by.iter().filter_map(|h| h.expires_estimate).max();
    a.statement = if a.held_by.is_empty() {
        format!(
            "no pgBackRest backup of server {} (stanza {}) ended after the tenant was created; the WAL archived since {} holds its writes \
             until the next full backups expire it (retention: {n} full backups)",
            tenant.server,
            s.stanza(),
            tenant.created_at.to_rfc3339()
        )
    } else {
        format!(
            "{} pgBackRest backup(s) of server {} (stanza {}, repository {}) and the WAL archived from segment {} to {} still hold the tenant's data; \
             pgBackRest expires them after {last} more full backup(s) (retention: {n} full backups){}. Until then a restore of the server to a time before this erasure would bring it back",
            a.held_by.len(),
            tenant.server,
            s.stanza(),
            b.repo.display(),
            a.wal_from.as_deref().unwrap_or("?"),
            a.wal_to.as_deref().unwrap_or("?"),
            a.expires_estimate.map(|t| format!(", about {} at one full backup every {} h", t.to_rfc3339(), b.cfg.full_every_hours.unwrap_or(0))).unwrap_or_default()
        )
    };
    a
}
