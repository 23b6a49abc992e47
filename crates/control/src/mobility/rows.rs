//! A tenant's rows in tables it shares or owns: listing tables, their keys and columns,
//! deleting one tenant's rows in batches, and checking in one pass per foreign key that its
//! rows reference only rows of the same tenant (for loads that skip the per-row triggers).
//!
//! Owns row-level work that erasure and moves share. Every delete here is keyed on
//! `tenant_id`, so it never touches a row that is not the tenant's.

use std::collections::HashSet;

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::model::TenantKey;
use crate::quote::ident;

/// The tables of `schema`, by name.
pub async fn tables_in(c: &Client, schema: &str) -> Result<Vec<String>> {
    let rows = c
        .query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r','p') ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(|e| Error::db("listing tables", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Every pooled tenant's bytes in a server's shared tables (`tg_pool`, schema `app`), by
/// tenant key: an estimate, `sum(pg_column_size(row))` over its rows in every shared table
/// with a `tenant_id` column (row data only: no indexes, no per-page or dead-row overhead).
pub async fn pooled_bytes(c: &Client) -> Result<std::collections::HashMap<String, u64>> {
    let tables = c
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped) \
             ORDER BY 1",
            &[&crate::placement::APP_SCHEMA],
        )
        .await
        .map_err(|e| Error::db("listing the shared tables", e))?;
    let mut sizes = std::collections::HashMap::new();
    for t in tables {
        let table: String = t.get(0);
        // `table` was quoted by format('%I.%I') above.
        let sql = format!("SELECT tenant_id::text, coalesce(sum(pg_column_size(x.*)), 0)::bigint FROM {table} x GROUP BY 1");
        let rows = c.query(&sql, &[]).await.map_err(|e| Error::db(format!("measuring {table}"), e))?;
        for r in rows {
            let key: Option<String> = r.get(0);
            let bytes: i64 = r.get(1);
            if let Some(k) = key {
                *sizes.entry(k).or_default() += bytes.max(0) as u64;
            }
        }
    }
    Ok(sizes)
}

/// The columns of `schema.table`, in order.
pub async fn columns(c: &Client, schema: &str, table: &str) -> Result<Vec<String>> {
    let rows = c
        .query(
            "SELECT a.attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&schema, &table],
        )
        .await
        .map_err(|e| Error::db("reading columns", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The primary-key columns of `schema.table`, in key order.
pub async fn primary_key(c: &Client, schema: &str, table: &str) -> Result<Vec<String>> {
    let rows = c
        .query(
            "SELECT a.attname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum \
             WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary ORDER BY k.ord",
            &[&schema, &table],
        )
        .await
        .map_err(|e| Error::db("reading the primary key", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Foreign-key edges (child, parent) between tables of `schema`.
pub async fn foreign_keys(c: &Client, schema: &str) -> Result<Vec<(String, String)>> {
    let edges = c
        .query(
            "SELECT child.relname::text, parent.relname::text FROM pg_constraint k \
             JOIN pg_class child ON child.oid = k.conrelid JOIN pg_class parent ON parent.oid = k.confrelid \
             JOIN pg_namespace n ON n.oid = child.relnamespace \
             WHERE k.contype = 'f' AND n.nspname = $1 AND child.oid <> parent.oid",
            &[&schema],
        )
        .await
        .map_err(|e| Error::db("reading foreign keys", e))?;
    Ok(edges.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Delete every row of tenant `key` from the shared tables of `schema`, children before
/// parents, in batches of 50,000 rows (each its own transaction, so the shared tables are
/// never locked for long), then VACUUM the tables. Returns the rows deleted.
pub async fn delete_tenant_rows(c: &Client, schema: &str, key: &TenantKey) -> Result<u64> {
    let tables = tables_in(c, schema).await?;
    let order = children_first(&tables, &foreign_keys(c, schema).await?);
    // Children go first, so no row left behind ever references a deleted one, and every
    // foreign key includes tenant_id, so no other tenant's row references these: the
    // per-row foreign-key triggers can be skipped (they made up most of the cost).
    c.batch_execute("SET session_replication_role = replica").await.map_err(|e| Error::db("preparing the delete", e))?;
    let mut total = 0;
    for table in &order {
        let t = format!("{}.{}", ident(schema), ident(table));
        let sql = format!(
            "DELETE FROM {t} WHERE tenant_id = $1 AND ctid = ANY (ARRAY(SELECT ctid FROM {t} WHERE tenant_id = $1 LIMIT 50000))"
        );
        loop {
            let n = c.execute(&sql, &[&key.as_str()]).await.map_err(|e| Error::db(format!("deleting rows of {table}"), e))?;
            total += n;
            if n == 0 {
                break;
            }
        }
    }
    c.batch_execute("RESET session_replication_role").await.map_err(|e| Error::db("finishing the delete", e))?;
    for table in &order {
        c.batch_execute(&format!("VACUUM (ANALYZE) {}.{}", ident(schema), ident(table)))
            .await
            .map_err(|e| Error::db(format!("vacuuming {table}"), e))?;
    }
    Ok(total)
}

/// A foreign key of a tenant's table whose rows reference nothing of the tenant's own.
#[derive(Debug, Clone, PartialEq)]
pub struct DanglingReference {
    pub constraint: String,
    pub table: String,
    pub parent: String,
    /// Rows of the tenant in `table` that break it.
    pub rows: i64,
}

/// Check, one set-based query per foreign key, every foreign key of the tables `tables` of
/// `schema` over tenant `key`'s rows: each must reference an existing row (the key's own
/// semantics, MATCH SIMPLE or FULL) and, where the referenced table has a `tenant_id`, a row
/// of the same tenant. What the per-row foreign-key triggers would have checked for these
/// rows, and the isolation invariant on top, for a load that ran without those triggers
/// (`session_replication_role = replica`). Returns every key broken, empty if none.
pub async fn dangling_references(c: &Client, schema: &str, tables: &[String], key: &TenantKey) -> Result<Vec<DanglingReference>> {
    let fks = c
        .query(
            "SELECT k.conname::text, child.relname::text, pn.nspname::text, parent.relname::text, k.confmatchtype = 'f', \
                    ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(n, i) \
                          JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i), \
                    ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(n, i) \
                          JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i), \
                    EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = k.confrelid AND a.attname = 'tenant_id' AND NOT a.attisdropped) \
             FROM pg_constraint k JOIN pg_class child ON child.oid = k.conrelid JOIN pg_namespace n ON n.oid = child.relnamespace \
             JOIN pg_class parent ON parent.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = parent.relnamespace \
             WHERE k.contype = 'f' AND n.nspname = $1 ORDER BY 2, 1",
            &[&schema],
        )
        .await
        .map_err(|e| Error::db("reading foreign keys", e))?;
    let mut broken = Vec::new();
    for fk in fks {
        let (constraint, table, parent_schema, parent): (String, String, String, String) = (fk.get(0), fk.get(1), fk.get(2), fk.get(3));
        let (full, cols, parent_cols, parent_tenant): (bool, Vec<String>, Vec<String>, bool) = (fk.get(4), fk.get(5), fk.get(6), fk.get(7));
        if !tables.contains(&table) || cols.is_empty() || cols.len() != parent_cols.len() {
            continue;
        }
        let sql = reference_check_sql(schema, &table, &parent_schema, &parent, &cols, &parent_cols, full, parent_tenant);
        let rows: i64 = c
            .query_one(&sql, &[&key.as_str()])
            .await
            .map_err(|e| Error::db(format!("checking foreign key {constraint} of {table}"), e))?
            .get(0);
        if rows > 0 {
            broken.push(DanglingReference { constraint, table, parent, rows });
        }
    }
    Ok(broken)
}

/// The count of tenant `$1`'s rows of `schema.table` that break the foreign key
/// `cols → parent(parent_cols)`: an anti-join, one pass over the tenant's rows.
#[allow(clippy::too_many_arguments)]
fn reference_check_sql(
    schema: &str,
    table: &str,
    parent_schema: &str,
    parent: &str,
    cols: &[String],
    parent_cols: &[String],
    full: bool,
    parent_tenant: bool,
) -> String {
    let child_cols: Vec<String> = cols.iter().map(|c| format!("c.{}", ident(c))).collect();
    let mut matches: Vec<String> = child_cols.iter().zip(parent_cols).map(|(c, p)| format!("p.{} = {c}", ident(p))).collect();
    let same_tenant_in_key = cols.iter().zip(parent_cols).any(|(c, p)| c == "tenant_id" && p == "tenant_id");
    if parent_tenant && !same_tenant_in_key {
        matches.push("p.tenant_id = c.tenant_id".into());
    }
    let present = child_cols.iter().map(|c| format!("{c} IS NOT NULL")).collect::<Vec<_>>().join(" AND ");
    let missing = format!(
        "({present} AND NOT EXISTS (SELECT 1 FROM {}.{} p WHERE {}))",
        ident(parent_schema),
        ident(parent),
        matches.join(" AND ")
    );
    // MATCH FULL: a key that is partly null is a violation too.
    let broken = if full && cols.len() > 1 {
        format!("({missing} OR num_nonnulls({0}) BETWEEN 1 AND {1})", child_cols.join(", "), cols.len() - 1)
    } else {
        missing
    };
    format!("SELECT count(*) FROM {}.{} c WHERE c.tenant_id = $1 AND {broken}", ident(schema), ident(table))
}

/// Order tables so that every referencing (child) table comes before the tables it references.
pub fn children_first(tables: &[String], edges: &[(String, String)]) -> Vec<String> {
    let mut done: HashSet<&str> = HashSet::new();
    let mut order = Vec::new();
    while order.len() < tables.len() {
        let before = order.len();
        for t in tables {
            if done.contains(t.as_str()) {
                continue;
            }
            // t can go once every table referencing it is done.
            let blocked = edges.iter().any(|(child, parent)| parent == t && !done.contains(child.as_str()));
            if !blocked {
                done.insert(t);
                order.push(t.clone());
            }
        }
        if order.len() == before {
            // A cycle: append the rest; the caller's delete fails cleanly if it must.
            order.extend(tables.iter().filter(|t| !done.contains(t.as_str())).cloned());
            break;
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_before_parents() {
        let t = |s: &str| s.to_string();
        let tables = vec![t("branches"), t("menu_items"), t("order_items"), t("orders")];
        let edges = vec![
            (t("menu_items"), t("branches")),
            (t("orders"), t("branches")),
            (t("order_items"), t("orders")),
            (t("order_items"), t("menu_items")),
        ];
        let order = children_first(&tables, &edges);
        let pos = |n: &str| order.iter().position(|x| x == n).unwrap();
        assert!(pos("order_items") < pos("orders"));
        assert!(pos("order_items") < pos("menu_items"));
        assert!(pos("orders") < pos("branches"));
        assert_eq!(order.len(), 4);
    }

    #[test]
    fn reference_check_is_an_anti_join_within_the_tenant() {
        let t = |s: &str| s.to_string();
        let sql = reference_check_sql("app", "orders", "app", "branches", &[t("tenant_id"), t("branch_id")], &[t("tenant_id"), t("branch_id")], false, true);
        assert_eq!(
            sql,
            "SELECT count(*) FROM \"app\".\"orders\" c WHERE c.tenant_id = $1 AND (c.\"tenant_id\" IS NOT NULL AND c.\"branch_id\" IS NOT NULL AND \
             NOT EXISTS (SELECT 1 FROM \"app\".\"branches\" p WHERE p.\"tenant_id\" = c.\"tenant_id\" AND p.\"branch_id\" = c.\"branch_id\"))"
        );
        // A key without tenant_id into a tenant's table still only matches the tenant's rows.
        let loose = reference_check_sql("app", "a", "app", "b", &[t("b_id")], &[t("id")], false, true);
        assert!(loose.contains("p.\"id\" = c.\"b_id\" AND p.tenant_id = c.tenant_id"), "{loose}");
        let full = reference_check_sql("app", "a", "app", "b", &[t("x"), t("y")], &[t("x"), t("y")], true, false);
        assert!(full.ends_with("OR num_nonnulls(c.\"x\", c.\"y\") BETWEEN 1 AND 1)"), "{full}");
    }
}
