//! Keys and indexes built after the copy, as `pg_restore` does, for a load into a tenant's
//! own tables (schema or database placement): inside the load's transaction the tables'
//! foreign keys, primary keys, unique constraints and plain indexes are dropped and the
//! tables truncated, the rows copied into bare tables (`COPY … FREEZE`), then every index
//! and key is created again from its own definition and the foreign keys validated.
//!
//! Why: an index updated row by row during `COPY` was most of the import's time at
//! 1,000,000 orders (a primary key on a random uuid above all), where one build by sorting
//! after the copy costs a fraction (bench/RESULTS.md, issue 20).
//!
//! Owns reading, dropping and re-creating those definitions. It must never:
//! - touch shared tables: the caller uses it only outside the pool, and it declines (the
//!   load then keeps its indexes) whenever the tables hold a row of another tenant, a key
//!   crosses the schema, a table is partitioned or inherited, or an index or key has a
//!   property it does not carry over (replica identity, clustering, a comment, an exclusion
//!   or trigger constraint);
//! - change a definition: what it creates is `pg_get_indexdef`/`pg_get_constraintdef` of what
//!   it dropped, read in the same transaction with `search_path` empty (as `pg_restore`
//!   runs), so names, columns, options and the referenced tables come back exactly;
//! - commit: everything happens in the caller's transaction, so a duplicate key or a
//!   dangling reference in the archive fails the whole load and leaves nothing (I9).

use std::time::Instant;

use tokio_postgres::Client;

use crate::mobility::rows;
use crate::error::{Error, Result};
use crate::model::TenantKey;
use crate::quote::ident;

/// The memory each index build may sort in (raised to this within the load's transaction
/// only, never lowered): the primary key of 1,000,000 orders sorts in memory with it.
pub const MAINTENANCE_WORK_MEM: &str = "256MB";

/// One dropped index or constraint and the statement that creates it again.
#[derive(Debug, Clone)]
struct Definition {
    table: String,
    name: String,
    /// The referenced table of a foreign key.
    parent: Option<String>,
    create: String,
}

/// What [`prepare`] dropped, to be created again by [`rebuild`].
#[derive(Debug)]
pub struct Deferred {
    /// Primary keys and unique constraints (their indexes included), then plain indexes.
    keys: Vec<Definition>,
    indexes: Vec<Definition>,
    foreign_keys: Vec<Definition>,
}

/// How long each part of [`rebuild`] took.
#[derive(Debug, Clone, Copy, Default)]
pub struct RebuildTimes {
    pub indexes_ms: u64,
    pub foreign_keys_ms: u64,
}

const SAVEPOINT: &str = "tg_deferred_indexes";

/// Whether the load into `tables` of `schema` can build its indexes after the copy; if so,
/// drop them and every key, truncate the tables and return what to build again. `None`
/// (nothing changed) when it cannot: the caller then loads the tables as they are.
/// Runs inside the caller's transaction; an unexpected refusal of a drop (a dependent
/// object, a missing privilege) is rolled back to a savepoint and also gives `None`.
pub async fn prepare(c: &Client, schema: &str, tables: &[String], key: &TenantKey) -> Result<Option<Deferred>> {
    if !eligible(c, schema, tables, key).await? {
        return Ok(None);
    }
    c.batch_execute(&format!("SAVEPOINT {SAVEPOINT}")).await.map_err(|e| Error::db("preparing the load", e))?;
    match drop_all(c, schema, tables).await {
        Ok(d) => {
            c.batch_execute(&format!("RELEASE SAVEPOINT {SAVEPOINT}")).await.map_err(|e| Error::db("preparing the load", e))?;
            Ok(Some(d))
        }
        Err(e) => {
            c.batch_execute(&format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}"))
                .await
                .map_err(|e2| Error::db(format!("undoing a deferred-index preparation that failed ({e})"), e2))?;
            tracing::info!(schema, error = %e, "the load keeps its indexes: they could not be dropped for it");
            Ok(None)
        }
    }
}

/// The conditions of the module doc, each one query over the catalog or the tables.
async fn eligible(c: &Client, schema: &str, tables: &[String], key: &TenantKey) -> Result<bool> {
    let present = rows::tables_in(c, schema).await?;
    let mut want = tables.to_vec();
    want.sort();
    if present != want {
        return Ok(false);
    }
    let blocked: bool = c
        .query_one(
            "WITH t AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                        WHERE n.nspname = $1 AND c.relname = ANY($2)) \
             SELECT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid IN (SELECT oid FROM t) AND c.relkind <> 'r') \
                 OR EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid IN (SELECT oid FROM t) OR i.inhparent IN (SELECT oid FROM t)) \
                 OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.contype = 'f' \
                            AND ((k.conrelid IN (SELECT oid FROM t)) <> (k.confrelid IN (SELECT oid FROM t)))) \
                 OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid IN (SELECT oid FROM t) AND k.contype IN ('x', 't')) \
                 OR EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM t) AND (i.indisreplident OR i.indisclustered OR NOT i.indisvalid)) \
                 OR EXISTS (SELECT 1 FROM pg_description d JOIN pg_index i ON d.objoid = i.indexrelid AND d.classoid = 'pg_class'::regclass \
                            WHERE i.indrelid IN (SELECT oid FROM t)) \
                 OR EXISTS (SELECT 1 FROM pg_description d JOIN pg_constraint k ON d.objoid = k.oid AND d.classoid = 'pg_constraint'::regclass \
                            WHERE k.conrelid IN (SELECT oid FROM t))",
            &[&schema, &tables],
        )
        .await
        .map_err(|e| Error::db("reading the tables' indexes and keys", e))?
        .get(0);
    if blocked {
        return Ok(false);
    }
    // Only the tenant's own rows may go: TRUNCATE takes all of a table's rows.
    for t in tables {
        let other: bool = c
            .query_one(
                &format!("SELECT EXISTS (SELECT 1 FROM {}.{} WHERE tenant_id IS DISTINCT FROM $1)", ident(schema), ident(t)),
                &[&key.as_str()],
            )
            .await
            .map_err(|e| Error::db(format!("checking the rows of {t}"), e))?
            .get(0);
        if other {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Read every definition, then drop foreign keys, keys and indexes, and truncate.
async fn drop_all(c: &Client, schema: &str, tables: &[String]) -> Result<Deferred> {
    // As pg_restore: with an empty search_path every name in a definition is qualified.
    let prior = empty_search_path(c).await?;
    let q = |kinds: &'static str| {
        format!(
            "SELECT c.relname::text, k.conname::text, p.relname::text, pg_get_constraintdef(k.oid) \
             FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_class p ON p.oid = k.confrelid \
             WHERE n.nspname = $1 AND c.relname = ANY($2) AND k.contype IN ({kinds}) ORDER BY 1, 2"
        )
    };
    let read = |rows: Vec<tokio_postgres::Row>| -> Vec<Definition> {
        rows.iter()
            .map(|r| {
                let (table, name, def): (String, String, String) = (r.get(0), r.get(1), r.get(3));
                let create = format!("ALTER TABLE {}.{} ADD CONSTRAINT {} {def}", ident(schema), ident(&table), ident(&name));
                Definition { table, name, parent: r.get(2), create }
            })
            .collect()
    };
    let foreign_keys = read(c.query(&q("'f'"), &[&schema, &tables]).await.map_err(|e| Error::db("reading foreign keys", e))?);
    let keys = read(c.query(&q("'p', 'u'"), &[&schema, &tables]).await.map_err(|e| Error::db("reading keys", e))?);
    let indexes: Vec<Definition> = c
        .query(
            "SELECT t.relname::text, x.relname::text, pg_get_indexdef(i.indexrelid) \
             FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class x ON x.oid = i.indexrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             WHERE n.nspname = $1 AND t.relname = ANY($2) \
               AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x')) \
             ORDER BY 1, 2",
            &[&schema, &tables],
        )
        .await
        .map_err(|e| Error::db("reading indexes", e))?
        .iter()
        .map(|r| Definition { table: r.get(0), name: r.get(1), parent: None, create: r.get(2) })
        .collect();
    let mut sql = String::new();
    for d in foreign_keys.iter().chain(&keys) {
        sql.push_str(&format!("ALTER TABLE {}.{} DROP CONSTRAINT {};\n", ident(schema), ident(&d.table), ident(&d.name)));
    }
    for d in &indexes {
        sql.push_str(&format!("DROP INDEX {}.{};\n", ident(schema), ident(&d.name)));
    }
    let all = tables.iter().map(|t| format!("{}.{}", ident(schema), ident(t))).collect::<Vec<_>>().join(", ");
    sql.push_str(&format!("TRUNCATE {all};"));
    c.batch_execute(&sql).await.map_err(|e| Error::db("dropping indexes and keys for the load", e))?;
    restore_search_path(c, &prior).await?;
    Ok(Deferred { keys, indexes, foreign_keys })
}

/// Create every index and key again, then the foreign keys (each validated over the loaded
/// rows). A duplicate key or a reference to no row refuses the archive: the caller's
/// transaction then rolls back. `source` names the archive in the errors.
pub async fn rebuild(c: &Client, d: &Deferred, source: &str) -> Result<RebuildTimes> {
    let t0 = Instant::now();
    let prior = empty_search_path(c).await?;
    c.batch_execute(&format!(
        "SELECT set_config('maintenance_work_mem', '{MAINTENANCE_WORK_MEM}', true) \
         WHERE pg_size_bytes(current_setting('maintenance_work_mem')) < pg_size_bytes('{MAINTENANCE_WORK_MEM}')"
    ))
    .await
    .map_err(|e| Error::db("preparing the index builds", e))?;
    for k in d.keys.iter().chain(&d.indexes) {
        c.batch_execute(&k.create).await.map_err(|e| match e.as_db_error() {
            Some(db) if db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION => Error::Verify(format!(
                "table {} in {source} holds two rows with the same key of {} ({}). The archive is damaged or was altered; \
                 use another copy. Nothing was imported",
                k.table,
                k.name,
                db.detail().unwrap_or("a duplicate key").trim_end_matches('.')
            )),
            _ => Error::db(format!("building index {} of {} after the load", k.name, k.table), e),
        })?;
    }
    let indexes_ms = t0.elapsed().as_millis() as u64;
    let t1 = Instant::now();
    for k in &d.foreign_keys {
        c.batch_execute(&k.create).await.map_err(|e| match e.as_db_error() {
            Some(db) if db.code() == &tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION => Error::Verify(format!(
                "row(s) of table {} in {source} reference no row of the tenant's own in {} (foreign key {}; {}). \
                 The archive is damaged or was altered; use another copy. Nothing was imported",
                k.table,
                k.parent.as_deref().unwrap_or("its parent table"),
                k.name,
                db.detail().unwrap_or("a missing row").trim_end_matches('.')
            )),
            _ => Error::db(format!("adding foreign key {} of {} after the load", k.name, k.table), e),
        })?;
    }
    restore_search_path(c, &prior).await?;
    Ok(RebuildTimes { indexes_ms, foreign_keys_ms: t1.elapsed().as_millis() as u64 })
}

/// Set `search_path` to empty for the rest of the transaction; returns the one it replaced.
async fn empty_search_path(c: &Client) -> Result<String> {
    let prior: String = c
        .query_one("SELECT current_setting('search_path')", &[])
        .await
        .map_err(|e| Error::db("reading the search path of the load", e))?
        .get(0);
    restore_search_path(c, "").await?;
    Ok(prior)
}

async fn restore_search_path(c: &Client, prior: &str) -> Result<()> {
    c.query_one("SELECT set_config('search_path', $1, true)", &[&prior])
        .await
        .map_err(|e| Error::db("restoring the search path of the load", e))?;
    Ok(())
}

impl Deferred {
    /// How many indexes and keys were deferred (for the record).
    pub fn count(&self) -> usize {
        self.keys.len() + self.indexes.len() + self.foreign_keys.len()
    }
}
