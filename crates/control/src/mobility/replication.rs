//! Logical replication for moves: the publication and slot on the source, the subscription
//! on the target, how far along they are, and their removal.
//!
//! Owns every replication object tenantgate creates. They are all named `tg_move_<op>`
//! after the move's operation id, so a crashed move's leftovers are found by name
//! ([`leftovers`]) and removed by `--resume`/`--abort`. It never publishes TRUNCATE (a
//! TRUNCATE ignores row filters and would empty the shared tables of every tenant), never
//! publishes a pooled table without the tenant's row filter, and never publishes a table
//! whose replica identity lacks `tenant_id` (UPDATE and DELETE on it would fail for every
//! tenant of the pool).

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::model::TenantKey;
use crate::quote::{ident, literal};

/// The prefix of every replication object a move creates.
pub const PREFIX: &str = "tg_move_";

/// The name of move `op`'s publication, slot and subscription.
pub fn name(op: i64) -> String {
    format!("{PREFIX}{op}")
}

/// Refuse to publish a table whose replica identity does not include `tenant_id`: a row
/// filter on such a table makes UPDATE and DELETE on it fail for every tenant of the pool,
/// and without a replica identity at all the subscriber cannot apply them.
pub async fn check_replica_identity(c: &Client, schema: &str) -> Result<()> {
    let rows = c
        .query(
            "SELECT c.relname, c.relreplident::text, \
                    EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey) \
                            WHERE i.indrelid = c.oid AND a.attname = 'tenant_id' \
                              AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident))) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r','p') ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(|e| Error::db("checking replica identities", e))?;
    for r in &rows {
        let (table, ident_kind, has_tenant): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
        if ident_kind == "f" || has_tenant {
            continue;
        }
        return Err(Error::Migration(format!(
            "table {schema}.{table} cannot be moved online: its replica identity ({}) does not include tenant_id. \
             The table contract (DESIGN I3) makes every primary key lead with tenant_id; add such a primary key \
             with a migration, then run the move again. Nothing was created",
            match ident_kind.as_str() {
                "n" => "nothing".to_string(),
                "d" => "the primary key, which is missing or lacks tenant_id".to_string(),
                other => format!("kind {other}"),
            }
        )));
    }
    Ok(())
}

/// Create the move's publication on the source database if it does not exist.
/// `filter`: publish only the tenant's rows of these shared tables (pooled source);
/// otherwise publish every table of `schema` (the tenant's own schema or database).
/// Only insert, update and delete are published.
pub async fn create_publication(c: &Client, pubname: &str, schema: &str, tables: &[String], filter: Option<&TenantKey>) -> Result<()> {
    let exists: bool = c
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", &[&pubname])
        .await
        .map_err(|e| Error::db("looking up the publication", e))?
        .get(0);
    if exists {
        return Ok(());
    }
    let what = match filter {
        Some(key) => {
            if tables.is_empty() {
                return Err(Error::Migration(format!("schema {schema} on the source has no tables to move; run `tenantgate migrate` first")));
            }
            let list: Vec<String> = tables
                .iter()
                .map(|t| format!("TABLE {}.{} WHERE (tenant_id = {})", ident(schema), ident(t), literal(key.as_str())))
                .collect();
            format!("FOR {}", list.join(", "))
        }
        None => format!("FOR TABLES IN SCHEMA {}", ident(schema)),
    };
    let sql = format!("CREATE PUBLICATION {} {what} WITH (publish = 'insert, update, delete')", ident(pubname));
    c.batch_execute(&sql).await.map_err(|e| Error::db("creating the publication", e))
}

/// Create the move's logical slot on the source database if it does not exist. It is made
/// here, not by CREATE SUBSCRIPTION: a subscription to the same cluster would wait for its
/// own transaction to create the slot and hang.
pub async fn create_slot(c: &Client, slot: &str) -> Result<()> {
    c.execute(
        "SELECT pg_create_logical_replication_slot($1, 'pgoutput') \
         WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
        &[&slot],
    )
    .await
    .map_err(|e| Error::db("creating the replication slot", e))?;
    Ok(())
}

/// Create the subscription on the target database if it does not exist, copying the
/// existing rows first. `conninfo` holds a password: it is never put in an error.
pub async fn create_subscription(c: &Client, sub: &str, conninfo: &str) -> Result<()> {
    let exists: bool = c
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1)", &[&sub])
        .await
        .map_err(|e| Error::db("looking up the subscription", e))?
        .get(0);
    if exists {
        return Ok(());
    }
    let sql = format!(
        "CREATE SUBSCRIPTION {s} CONNECTION {ci} PUBLICATION {s} \
         WITH (create_slot = false, slot_name = {sl}, copy_data = true, enabled = true)",
        s = ident(sub),
        ci = literal(conninfo),
        sl = literal(sub)
    );
    c.batch_execute(&sql).await.map_err(|e| Error::db("creating the subscription", e))
}

/// How far the initial copy is: (tables, tables copied, sync errors so far).
pub async fn copy_state(c: &Client, sub: &str) -> Result<(i64, i64, i64)> {
    let r = c
        .query_one(
            "SELECT count(r.*), count(r.*) FILTER (WHERE r.srsubstate IN ('r','s')), \
                    coalesce((SELECT st.sync_error_count + st.apply_error_count FROM pg_stat_subscription_stats st WHERE st.subid = s.oid), 0) \
             FROM pg_subscription s LEFT JOIN pg_subscription_rel r ON r.srsubid = s.oid \
             WHERE s.subname = $1 GROUP BY s.oid",
            &[&sub],
        )
        .await
        .map_err(|e| Error::db("reading the copy state", e))?;
    Ok((r.get(0), r.get(1), r.get(2)))
}

/// Rows the copy has written so far into the target, from `pg_stat_progress_copy`
/// (tables being copied) — a progress figure, not a count.
pub async fn copy_progress_rows(c: &Client) -> Result<i64> {
    let r = c
        .query_one("SELECT coalesce(sum(tuples_processed), 0)::bigint FROM pg_stat_progress_copy WHERE command = 'COPY FROM'", &[])
        .await
        .map_err(|e| Error::db("reading copy progress", e))?;
    Ok(r.get(0))
}

/// The source's current WAL *insert* position: past every record any backend has inserted,
/// including the commit of a transaction whose backend was ended while it waited for its
/// WAL to be written (`pg_current_wal_lsn()`, the write position, can be short of it, and a
/// final catch-up to it can then miss that commit).
pub async fn current_lsn(c: &Client) -> Result<String> {
    let r = c
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .map_err(|e| Error::db("reading the WAL position", e))?;
    Ok(r.get(0))
}

/// Bytes of WAL from the slot's confirmed position to `upto` (or to now): the replication
/// lag of the move. `None` if the slot does not exist.
pub async fn lag_bytes(c: &Client, slot: &str, upto: Option<&str>) -> Result<Option<i64>> {
    let r = c
        .query_opt(
            "SELECT greatest(pg_wal_lsn_diff(coalesce($2::text, pg_current_wal_lsn()::text)::pg_lsn, confirmed_flush_lsn), 0)::bigint \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot, &upto],
        )
        .await
        .map_err(|e| Error::db("reading the replication lag", e))?;
    Ok(r.and_then(|r| r.get::<_, Option<i64>>(0)))
}

/// Stop and remove the subscription on the target, leaving the slot on the source to
/// [`drop_slot`] (so this works whether or not the source is reachable). Idempotent.
pub async fn drop_subscription(c: &Client, sub: &str) -> Result<()> {
    let exists: bool = c
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1)", &[&sub])
        .await
        .map_err(|e| Error::db("looking up the subscription", e))?
        .get(0);
    if !exists {
        return Ok(());
    }
    let s = ident(sub);
    for sql in [
        format!("ALTER SUBSCRIPTION {s} DISABLE"),
        format!("ALTER SUBSCRIPTION {s} SET (slot_name = NONE)"),
        format!("DROP SUBSCRIPTION {s}"),
    ] {
        c.batch_execute(&sql).await.map_err(|e| Error::db("removing the subscription", e))?;
    }
    Ok(())
}

/// Remove the slot on the source (ending the walsender that still holds it). Idempotent.
pub async fn drop_slot(c: &Client, slot: &str) -> Result<()> {
    for _ in 0..250 {
        let row = c
            .query_opt("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", &[&slot])
            .await
            .map_err(|e| Error::db("looking up the replication slot", e))?;
        let Some(row) = row else { return Ok(()) };
        match row.get::<_, Option<i32>>(0) {
            Some(pid) => {
                c.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.map_err(|e| Error::db("ending the walsender", e))?;
            }
            None => match c.execute("SELECT pg_drop_replication_slot($1)", &[&slot]).await {
                Ok(_) => return Ok(()),
                // Taken again by a walsender in between (55006) or dropped by someone else (42704).
                Err(e) if e.as_db_error().map(|d| d.code().code()) == Some("42704") => return Ok(()),
                Err(e) if e.as_db_error().map(|d| d.code().code()) == Some("55006") => {}
                Err(e) => return Err(Error::db("dropping the replication slot", e)),
            },
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Err(Error::Migration(format!("replication slot {slot} stayed in use for 5 s; run the command again")))
}

/// Remove the publication on the source. Idempotent.
pub async fn drop_publication(c: &Client, pubname: &str) -> Result<()> {
    c.batch_execute(&format!("DROP PUBLICATION IF EXISTS {}", ident(pubname)))
        .await
        .map_err(|e| Error::db("dropping the publication", e))
}

/// Replication objects of moves on the server of `c` (any database for slots; this
/// database for publications and subscriptions): `(kind, name, database)`.
pub async fn leftovers(c: &Client) -> Result<Vec<(String, String, String)>> {
    let like = format!("{PREFIX}%");
    let rows = c
        .query(
            "SELECT 'slot', slot_name::text, coalesce(database::text, '') FROM pg_replication_slots WHERE slot_name LIKE $1 \
             UNION ALL SELECT 'publication', pubname::text, current_database()::text FROM pg_publication WHERE pubname LIKE $1 \
             UNION ALL SELECT 'subscription', s.subname::text, d.datname::text FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid WHERE s.subname LIKE $1 \
             ORDER BY 1, 2",
            &[&like],
        )
        .await
        .map_err(|e| Error::db("listing replication objects", e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}

/// How a table's rows are hashed for [`table_checksum`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowHash {
    /// `hash_record_extended(row, 0)`: each column by its type's own hash function (no
    /// text conversion: about 3× faster, and independent of output settings).
    Record,
    /// `hashtextextended(row::text, 0)`, for tables with a column type that has no hash
    /// function (PostgreSQL then refuses `hash_record_extended`).
    Text,
}

impl RowHash {
    pub fn as_str(self) -> &'static str {
        match self {
            RowHash::Record => "record",
            RowHash::Text => "text",
        }
    }

    pub fn parse(s: &str) -> Option<RowHash> {
        match s {
            "record" => Some(RowHash::Record),
            "text" => Some(RowHash::Text),
            _ => None,
        }
    }
}

/// Per-table row count and an order-independent checksum of the tenant's rows: the sum of
/// a 64-bit hash of each row. Both sides must use the same [`RowHash`]; with `Text` they
/// are read under [`CHECKSUM_SETTINGS`], so equal rows give equal text.
pub async fn table_checksum(c: &Client, schema: &str, table: &str, key: &TenantKey, how: RowHash) -> Result<(i64, String)> {
    columns_checksum(c, schema, table, key, how, None).await
}

/// [`table_checksum`] over a row of `columns` only, when given (an archive leaves out
/// `tenant_id`, which a clone rewrites), else over the whole row.
pub async fn columns_checksum(
    c: &Client,
    schema: &str,
    table: &str,
    key: &TenantKey,
    how: RowHash,
    columns: Option<&[String]>,
) -> Result<(i64, String)> {
    let row = match columns {
        None => None,
        Some(cols) => Some(format!("ROW({})", cols.iter().map(|c| format!("t.{}", ident(c))).collect::<Vec<_>>().join(", "))),
    };
    let hash = match (how, &row) {
        (_, Some(r)) if r == "ROW()" => "0".to_string(),
        (RowHash::Record, None) => "hash_record_extended(t.*, 0)".to_string(),
        (RowHash::Text, None) => "hashtextextended(t::text, 0)".to_string(),
        (RowHash::Record, Some(r)) => format!("hash_record_extended({r}, 0)"),
        (RowHash::Text, Some(r)) => format!("hashtextextended({r}::text, 0)"),
    };
    let sql = format!(
        "SELECT count(*), coalesce(sum({hash}::numeric), 0)::text FROM {}.{} t WHERE tenant_id = $1",
        ident(schema),
        ident(table)
    );
    let r = c.query_one(&sql, &[&key.as_str()]).await.map_err(|e| Error::db(format!("checksumming {table}"), e))?;
    Ok((r.get(0), r.get(1)))
}

/// Whether every column of `schema.table` can be hashed as a record (probed on an empty
/// selection, so it costs nothing).
pub async fn row_hash_for(c: &Client, schema: &str, table: &str) -> Result<RowHash> {
    let sql = format!("SELECT hash_record_extended(t.*, 0) FROM {}.{} t LIMIT 0", ident(schema), ident(table));
    match c.query(&sql, &[]).await {
        Ok(_) => Ok(RowHash::Record),
        Err(e) if e.as_db_error().map(|d| d.code().code()) == Some("42883") => Ok(RowHash::Text),
        Err(e) => Err(Error::db(format!("probing {table}'s row hash"), e)),
    }
}

/// The session settings under which [`table_checksum`] reads rows, on both sides.
pub const CHECKSUM_SETTINGS: &str =
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET bytea_output = 'hex';";

/// Sequences of `schema` with their last values.
pub async fn sequences(c: &Client, schema: &str) -> Result<Vec<(String, Option<i64>)>> {
    let rows = c
        .query("SELECT sequencename::text, last_value FROM pg_sequences WHERE schemaname = $1 ORDER BY 1", &[&schema])
        .await
        .map_err(|e| Error::db("reading sequences", e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Bring the target's sequences up to the source's (never down: a pooled target's
/// sequences are shared with other tenants). Logical replication does not carry them.
pub async fn sync_sequences(src: &Client, src_schema: &str, tgt: &Client, tgt_schema: &str) -> Result<usize> {
    let mut n = 0;
    for (seq, last) in sequences(src, src_schema).await? {
        let Some(last) = last else { continue };
        raise_sequence(tgt, tgt_schema, &seq, last).await?;
        n += 1;
    }
    Ok(n)
}

/// Set sequence `schema.seq` to at least `last` (never down).
pub async fn raise_sequence(c: &Client, schema: &str, seq: &str, last: i64) -> Result<()> {
    let q = format!("{}.{}", ident(schema), ident(seq));
    c.execute(
        "SELECT setval($1::regclass, greatest($2, (SELECT coalesce(last_value, $2) FROM pg_sequences WHERE schemaname = $3 AND sequencename = $4)))",
        &[&q, &last, &schema, &seq],
    )
    .await
    .map_err(|e| Error::db(format!("setting sequence {seq}"), e))?;
    Ok(())
}
