//! Export (DESIGN §6): a tenant's rows, from one consistent snapshot, as a stream of
//! archive items ([`super::archive`]) — into a file (`tenant export`), into an import
//! (`tenant clone`), or for every tenant into a directory with a retention count
//! (`tenant export --all`, for cron).
//!
//! One admin connection reads everything inside a single `REPEATABLE READ READ ONLY`
//! transaction: first each table's row count and checksum, then its rows as COPY text, so
//! the manifest's figures describe exactly the rows that follow. Such a transaction takes
//! only ACCESS SHARE locks: the tenant and its neighbours keep writing. Rows are read
//! `WHERE tenant_id = key` in every placement, so a pooled export reads no other tenant's
//! rows. Memory stays flat: rows go out in chunks of at most `archive::CHUNK_BYTES`.
//!
//! It never writes to a tenant's database, and the catalog only through `catalog`.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use serde::Serialize;
use tokio_postgres::Client;

use super::archive::{self, ArchivedMigration, ArchivedTenant, DataDigest, Item, Manifest, Sender, Source, Table};
use super::replication::{self as repl, RowHash};
use super::rows;
use crate::catalog::{Catalog, Tenant};
use crate::error::{Error, Result};
use crate::model::{Placement, TenantKey, TenantStatus};
use crate::placement::{self, ServerAdmin};
use crate::quote::{ident, literal};

/// What a progress reporter is told: `phase` is `checksum` (counting and hashing, before
/// any row is sent), `copy` (rows sent), `verify` or `load` (import).
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub phase: &'static str,
    pub table: String,
    /// Rows done so far over all tables, and the total (known once the manifest is).
    pub rows_done: u64,
    pub rows_total: u64,
}

pub type Reporter<'a> = &'a (dyn Fn(&Progress) + Send + Sync);

/// The outcome of an export to a file.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub slug: String,
    pub file: String,
    pub bytes: u64,
    pub schema_version: i32,
    pub tables: Vec<TableSummary>,
    pub rows: i64,
    pub elapsed_ms: u64,
    /// Of `elapsed_ms`: counting and checksumming every table (before the first row is
    /// sent), and reading, compressing and writing the rows after it.
    pub checksum_ms: u64,
    pub copy_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableSummary {
    pub table: String,
    pub rows: i64,
    pub checksum: String,
}

impl TableSummary {
    pub fn of(m: &Manifest) -> Vec<TableSummary> {
        m.tables.iter().map(|t| TableSummary { table: t.name.clone(), rows: t.rows, checksum: t.checksum.clone() }).collect()
    }
}

/// The columns a checksum covers: every column but `tenant_id`.
pub fn checksum_columns(t: &Table) -> Vec<String> {
    t.columns.iter().filter(|c| c.as_str() != "tenant_id").cloned().collect()
}

/// How the manifest's checksums are computed, in words (written into every manifest).
pub const CHECKSUM_METHOD: &str = "per table: count(*) and sum(hash_record_extended(ROW(every column but tenant_id), 0)::numeric) \
     (hashtextextended of the row's text for tables with an unhashable column type) over the tenant's rows, \
     under the archive's session settings";

/// A tenant that can be exported: complete (active or suspended) and not moving.
async fn exportable(catalog: &Catalog, slug: &str) -> Result<Tenant> {
    let tenant = catalog.tenant(slug).await?;
    if let Some(op) = catalog.open_op(&tenant.key).await? {
        return Err(Error::WrongStatus {
            slug: slug.into(),
            status: format!("{} (an unfinished {} at step {})", tenant.status, op.kind, op.step),
            hint: format!("finish or undo it first (`tenantgate tenant show {slug}` says how), then export. Nothing was exported"),
        });
    }
    if !matches!(tenant.status, TenantStatus::Active | TenantStatus::Suspended) {
        return Err(Error::WrongStatus {
            slug: slug.into(),
            status: tenant.status.to_string(),
            hint: "only an active or suspended tenant can be exported. Nothing was exported".into(),
        });
    }
    Ok(tenant)
}

/// Read tenant `slug` in one snapshot and send its manifest, rows and trailer to `tx`.
/// Returns the manifest. On an error nothing more is sent; the receiver sees the stream
/// end without a trailer and must discard what it got.
pub async fn stream(catalog: &Catalog, slug: &str, tx: &Sender, report: Reporter<'_>) -> Result<Manifest> {
    let tenant = exportable(catalog, slug).await?;
    let server = catalog.server(&tenant.server).await?;
    let loc = placement::location(tenant.placement, &tenant.key);
    let c = ServerAdmin { name: &server.name, url: &server.url }.connect(Some(&loc.database)).await?;
    stream_from(&c, &tenant, tx, report).await
}

/// [`stream`] over an admin connection `c` to the tenant's database — on its live server,
/// or on a copy of it (a point-in-time restore's scratch cluster, `super::restore`).
pub async fn stream_from(c: &Client, tenant: &Tenant, tx: &Sender, report: Reporter<'_>) -> Result<Manifest> {
    let loc = placement::location(tenant.placement, &tenant.key);
    c.batch_execute(&format!("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; {}", archive::SESSION_SETTINGS))
        .await
        .map_err(|e| Error::db("opening the export snapshot", e))?;
    let snapshot: String = c
        .query_one("SELECT pg_current_snapshot()::text", &[])
        .await
        .map_err(|e| Error::db("reading the snapshot", e))?
        .get(0);
    let migrations = applied_migrations(c, &loc.schema).await?;
    let schema_version = migrations.iter().map(|m| m.version).max().unwrap_or(0);

    // Tables parents first, so an import can load them in this order with its foreign keys on.
    let names = rows::tables_in(c, &loc.schema).await?;
    let mut order = rows::children_first(&names, &rows::foreign_keys(c, &loc.schema).await?);
    order.reverse();
    let mut tables = Vec::new();
    let mut total = 0u64;
    for name in &order {
        let columns = rows::columns(c, &loc.schema, name).await?;
        if !columns.iter().any(|c| c == "tenant_id") {
            return Err(Error::Migration(format!(
                "table {}.{name} has no tenant_id column (DESIGN I3), so its rows cannot be told apart by tenant; fix the app schema with a migration. Nothing was exported",
                loc.schema
            )));
        }
        report(&Progress { phase: "checksum", table: name.clone(), rows_done: 0, rows_total: total });
        let how = repl::row_hash_for(c, &loc.schema, name).await?;
        let mut t = Table { name: name.clone(), columns, rows: 0, checksum: String::new(), row_hash: how.as_str().into() };
        let (rows, checksum) = repl::columns_checksum(c, &loc.schema, name, &tenant.key, how, Some(&checksum_columns(&t))).await?;
        t.rows = rows;
        t.checksum = checksum;
        total += rows.max(0) as u64;
        tables.push(t);
    }
    let sequences = if tenant.placement == Placement::Pooled {
        Vec::new() // the pool's sequences are shared by every pooled tenant
    } else {
        repl::sequences(c, &loc.schema).await?.into_iter().map(|(name, last_value)| archive::Sequence { name, last_value }).collect()
    };
    let manifest = Manifest {
        format: archive::FORMAT.into(),
        format_version: archive::FORMAT_VERSION,
        tool: "tenantgate".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        created_at: chrono::Utc::now(),
        tenant: ArchivedTenant {
            slug: tenant.slug.clone(),
            key: tenant.key.to_string(),
            residency: tenant.residency.clone(),
            requires: tenant.requires.clone(),
        },
        source: Source { placement: tenant.placement, server: tenant.server.clone(), region: tenant.region.clone() },
        schema_version,
        migrations,
        snapshot,
        copy_format: "text".into(),
        checksum_method: CHECKSUM_METHOD.into(),
        tables,
        sequences,
    };
    send(tx, Item::Manifest(Box::new(manifest.clone()))).await?;

    let mut digest = DataDigest::default();
    let mut done = 0u64;
    report(&Progress { phase: "copy", table: String::new(), rows_done: 0, rows_total: total });
    for (idx, t) in manifest.tables.iter().enumerate() {
        let sent = copy_table(c, &loc.schema, t, idx, &tenant.key, tx, &mut digest, &mut |n| {
            done += n;
            report(&Progress { phase: "copy", table: t.name.clone(), rows_done: done, rows_total: total });
        })
        .await?;
        if sent != t.rows.max(0) as u64 {
            return Err(Error::Migration(format!(
                "table {} gave {sent} rows to COPY but {} to the count in the same snapshot; run the export again",
                t.name, t.rows
            )));
        }
    }
    c.batch_execute("COMMIT").await.map_err(|e| Error::db("closing the export snapshot", e))?;
    send(tx, Item::End(digest.trailer())).await?;
    Ok(manifest)
}

async fn send(tx: &Sender, item: Item) -> Result<()> {
    tx.send(Ok(item)).await.map_err(|_| Error::Archive("the archive's reader stopped (see its error)".into()))
}

/// The migrations applied to the tenant's tables, from the target's own record.
async fn applied_migrations(c: &Client, schema: &str) -> Result<Vec<ArchivedMigration>> {
    let rows = c
        .query("SELECT version, checksum FROM tenantgate_admin.applied_migrations WHERE schema_name = $1 ORDER BY version", &[&schema])
        .await
        .map_err(|e| Error::db("reading the applied migrations", e))?;
    Ok(rows.iter().map(|r| ArchivedMigration { version: r.get(0), checksum: r.get(1) }).collect())
}

/// Stream one table's rows of the tenant as COPY text chunks; returns the rows sent.
#[allow(clippy::too_many_arguments)]
async fn copy_table(
    c: &Client,
    schema: &str,
    t: &Table,
    idx: usize,
    key: &TenantKey,
    tx: &Sender,
    digest: &mut DataDigest,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<u64> {
    let cols = t.columns.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "COPY (SELECT {cols} FROM {}.{} WHERE tenant_id = {}) TO STDOUT",
        ident(schema),
        ident(&t.name),
        literal(key.as_str())
    );
    let stream = c.copy_out(sql.as_str()).await.map_err(|e| Error::db(format!("reading the rows of {}", t.name), e))?;
    let mut stream = std::pin::pin!(stream);
    let mut buf: Vec<u8> = Vec::with_capacity(archive::CHUNK_BYTES + 64 * 1024);
    let mut rows = 0u64;
    let flush = |buf: &mut Vec<u8>, all: bool| -> Option<bytes::Bytes> {
        let cut = if all { buf.len() } else { buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) };
        if cut == 0 {
            return None;
        }
        let rest = buf.split_off(cut);
        let chunk = std::mem::replace(buf, rest);
        Some(bytes::Bytes::from(chunk))
    };
    let mut ended = false;
    while !ended {
        match stream.next().await {
            Some(part) => buf.extend_from_slice(&part.map_err(|e| Error::db(format!("reading the rows of {}", t.name), e))?),
            None => ended = true,
        }
        if buf.len() < archive::CHUNK_BYTES && !ended {
            continue;
        }
        if let Some(chunk) = flush(&mut buf, ended) {
            let n = chunk.iter().filter(|b| **b == b'\n').count() as u64;
            digest.add(&chunk);
            send(tx, Item::Chunk { table: idx, data: chunk }).await?;
            rows += n;
            progress(n);
        }
    }
    Ok(rows)
}

/// `tenant export SLUG --out FILE`: the archive is written to `FILE.partial` and renamed
/// when complete, so a failed export leaves no file behind.
pub async fn to_file(catalog: &Catalog, slug: &str, path: &Path, report: Reporter<'_>) -> Result<Exported> {
    let started = std::time::Instant::now();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(Error::InvalidInput {
                what: "output file",
                value: path.display().to_string(),
                reason: format!("directory {} does not exist; create it first", dir.display()),
            });
        }
    }
    // Checked before the writer starts, so a refused export creates no file at all.
    exportable(catalog, slug).await?;
    let (tx, rx) = archive::channel();
    let out = path.to_path_buf();
    let writer = tokio::task::spawn_blocking(move || archive::write_file(&out, rx));
    // When the first row goes out: the checksums are done then.
    let copying = std::sync::OnceLock::new();
    let timed = |p: &Progress| {
        if p.phase == "copy" {
            copying.get_or_init(std::time::Instant::now);
        }
        report(p)
    };
    let produced = stream(catalog, slug, &tx, &timed).await;
    drop(tx);
    let written = writer.await.map_err(|e| Error::Archive(format!("the archive writer failed: {e}")))?;
    let manifest = produced?;
    let bytes = written?;
    // The audit trail keeps the absolute path: an erasure certificate lists the exports
    // that may still hold the tenant (`erase`).
    let recorded = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    catalog
        .audit(
            "tenant.export",
            crate::model::TenantKey::parse(&manifest.tenant.key).ok().as_ref(),
            serde_json::json!({"file": recorded.display().to_string(), "bytes": bytes, "schema_version": manifest.schema_version,
                               "rows": manifest.tables.iter().map(|t| t.rows).sum::<i64>()}),
        )
        .await?;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let checksum_ms = copying.get().map_or(elapsed_ms, |t| t.duration_since(started).as_millis() as u64);
    Ok(Exported {
        slug: slug.into(),
        file: path.display().to_string(),
        bytes,
        schema_version: manifest.schema_version,
        rows: manifest.tables.iter().map(|t| t.rows).sum(),
        tables: TableSummary::of(&manifest),
        elapsed_ms,
        checksum_ms,
        copy_ms: elapsed_ms.saturating_sub(checksum_ms),
    })
}

/// One tenant's outcome in `tenant export --all`.
#[derive(Debug, Clone, Serialize)]
pub struct Scheduled {
    pub slug: String,
    pub file: Option<String>,
    pub bytes: u64,
    pub rows: i64,
    /// Older exports of the tenant removed by the retention count.
    pub removed: Vec<String>,
    pub error: Option<String>,
}

/// The file name of a scheduled export: `<slug>-<UTC time>.tar.zst`, which sorts by time.
pub fn scheduled_name(slug: &str, at: chrono::DateTime<chrono::Utc>) -> String {
    format!("{slug}-{}.tar.zst", at.format("%Y%m%dT%H%M%S%.3fZ"))
}

/// Whether `name` is a scheduled export of exactly `slug` (not of a slug it prefixes).
pub(crate) fn is_scheduled_of(name: &str, slug: &str) -> bool {
    let Some(rest) = name.strip_prefix(slug).and_then(|r| r.strip_prefix('-')).and_then(|r| r.strip_suffix(".tar.zst")) else {
        return false;
    };
    // 20261206T101500.123Z
    let b = rest.as_bytes();
    b.len() == 20
        && b[8] == b'T'
        && b[15] == b'.'
        && b[19] == b'Z'
        && b.iter().enumerate().all(|(i, c)| [8, 15, 19].contains(&i) || c.is_ascii_digit())
}

/// `tenant export --all --dir DIR --keep N`: every active or suspended tenant (probes
/// excepted) into `DIR/<slug>-<time>.tar.zst`, then all but the newest `keep` of that
/// tenant's exports removed. A failure is recorded and the others go on; older exports
/// of a tenant whose export failed are kept.
pub async fn all_to_dir(catalog: &Catalog, dir: &Path, keep: usize, report: Reporter<'_>) -> Result<Vec<Scheduled>> {
    if !dir.is_dir() {
        return Err(Error::InvalidInput {
            what: "export directory",
            value: dir.display().to_string(),
            reason: "it does not exist; create it first".into(),
        });
    }
    if keep == 0 {
        return Err(Error::InvalidInput { what: "--keep", value: "0".into(), reason: "keep at least the newest export (1 or more)".into() });
    }
    let mut out = Vec::new();
    for t in catalog.tenants().await? {
        if t.is_probe || !matches!(t.status, TenantStatus::Active | TenantStatus::Suspended) {
            continue;
        }
        let path: PathBuf = dir.join(scheduled_name(&t.slug, chrono::Utc::now()));
        match to_file(catalog, &t.slug, &path, report).await {
            Ok(e) => {
                let removed = prune(dir, &t.slug, keep)?;
                out.push(Scheduled { slug: t.slug, file: Some(e.file), bytes: e.bytes, rows: e.rows, removed, error: None });
            }
            Err(e) => out.push(Scheduled { slug: t.slug, file: None, bytes: 0, rows: 0, removed: Vec::new(), error: Some(e.to_string()) }),
        }
    }
    Ok(out)
}

/// Remove all but the newest `keep` scheduled exports of `slug` in `dir`.
fn prune(dir: &Path, slug: &str, keep: usize) -> Result<Vec<String>> {
    let io = |e| Error::Io { path: dir.display().to_string(), source: e };
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_scheduled_of(n, slug))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for n in names.into_iter().take(excess) {
        let p = dir.join(&n);
        std::fs::remove_file(&p).map_err(|e| Error::Io { path: p.display().to_string(), source: e })?;
        removed.push(p.display().to_string());
    }
    Ok(removed)
}

/// The row hash a manifest table was checksummed with.
pub fn row_hash_of(t: &Table) -> RowHash {
    RowHash::parse(&t.row_hash).unwrap_or(RowHash::Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_names_belong_to_exactly_one_slug() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-12-06T10:15:00.123Z").unwrap().with_timezone(&chrono::Utc);
        let n = scheduled_name("acme", at);
        assert_eq!(n, "acme-20261206T101500.123Z.tar.zst");
        assert!(is_scheduled_of(&n, "acme"));
        assert!(!is_scheduled_of(&scheduled_name("acme-eu", at), "acme"));
        assert!(!is_scheduled_of("acme-notes.tar.zst", "acme"));
    }
}
