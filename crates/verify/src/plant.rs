//! Canary planting: one row carrying a unique marker in every table of a tenant's
//! application schema, written as the tenant's own read-write role.
//!
//! Owns the generic planter that fills any contract-shaped table: text columns get
//! the marker, foreign keys point at the parent's canary row, other required columns
//! get a harmless value, and CHECK constraints are satisfied by retrying with values
//! taken from the constraint itself. It writes only through the tenant's own role, so
//! it cannot put a marker where the tenant could not.

use std::collections::{BTreeMap, BTreeSet};

use tokio_postgres::Client;

use tg_control::quote::{ident, literal};

use crate::{Error, Result};

/// Where a marker landed: table → the column that holds it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Planted {
    pub tables: BTreeMap<String, String>,
    /// Tables the planter could not fill, with the reason.
    pub skipped: BTreeMap<String, String>,
}

struct Column {
    name: String,
    type_name: String,
    category: String,
    not_null: bool,
    has_default: bool,
    generated: bool,
}

struct ForeignKey {
    cols: Vec<String>,
    parent: String,
    parent_cols: Vec<String>,
}

/// Plant `canary` in every table of `schema`, connected as the tenant's rw role.
pub async fn plant(c: &Client, schema: &str, canary: &str) -> Result<Planted> {
    let tables: Vec<String> = c
        .query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r','p') ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(|e| db("listing tables to plant", e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let fk_rows = c
        .query(
            "SELECT cl.relname, pcl.relname, \
                    array(SELECT a.attname::text FROM unnest(co.conkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.n ORDER BY k.i), \
                    array(SELECT a.attname::text FROM unnest(co.confkey) WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = co.confrelid AND a.attnum = k.n ORDER BY k.i) \
             FROM pg_constraint co JOIN pg_class cl ON cl.oid = co.conrelid JOIN pg_namespace n ON n.oid = cl.relnamespace \
             JOIN pg_class pcl ON pcl.oid = co.confrelid WHERE co.contype = 'f' AND n.nspname = $1",
            &[&schema],
        )
        .await
        .map_err(|e| db("listing foreign keys", e))?;
    let mut fks: BTreeMap<String, Vec<ForeignKey>> = BTreeMap::new();
    for r in &fk_rows {
        fks.entry(r.get(0)).or_default().push(ForeignKey { parent: r.get(1), cols: r.get(2), parent_cols: r.get(3) });
    }
    let mut planted = Planted::default();
    for table in topo_order(&tables, &fks) {
        match plant_table(c, schema, &table, canary, fks.get(&table).map(Vec::as_slice).unwrap_or(&[]), &planted).await {
            Ok(col) => {
                planted.tables.insert(table, col);
            }
            Err(reason) => {
                planted.skipped.insert(table, reason);
            }
        }
    }
    Ok(planted)
}

/// Parents before children; tables in a cycle keep their alphabetical order.
fn topo_order(tables: &[String], fks: &BTreeMap<String, Vec<ForeignKey>>) -> Vec<String> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < tables.len() {
        let before = out.len();
        for t in tables {
            if done.contains(t) {
                continue;
            }
            let ready = fks.get(t).is_none_or(|v| v.iter().all(|f| &f.parent == t || done.contains(&f.parent) || !tables.contains(&f.parent)));
            if ready {
                done.insert(t.clone());
                out.push(t.clone());
            }
        }
        if out.len() == before {
            for t in tables {
                if done.insert(t.clone()) {
                    out.push(t.clone());
                }
            }
        }
    }
    out
}

async fn plant_table(c: &Client, schema: &str, table: &str, canary: &str, fks: &[ForeignKey], planted: &Planted) -> std::result::Result<String, String> {
    let cols: Vec<Column> = c
        .query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typcategory::text, a.attnotnull, a.atthasdef, \
                    a.attidentity <> '' OR a.attgenerated <> '' \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = ($1 || '.' || $2)::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&ident(schema), &ident(table)],
        )
        .await
        .map_err(|e| format!("cannot read its columns: {e}"))?
        .iter()
        .map(|r| Column { name: r.get(0), type_name: r.get(1), category: r.get(2), not_null: r.get(3), has_default: r.get(4), generated: r.get(5) })
        .collect();
    // Values: column → SQL expression. `None` = leave to the default / NULL.
    let mut values: BTreeMap<String, Option<String>> = BTreeMap::new();
    for fk in fks {
        let Some(parent_col) = planted.tables.get(&fk.parent) else {
            if fk.cols.iter().all(|c| c == "tenant_id") {
                continue;
            }
            return Err(format!("its parent {} has no canary row", fk.parent));
        };
        for (col, pcol) in fk.cols.iter().zip(&fk.parent_cols) {
            if col == "tenant_id" {
                continue;
            }
            values.insert(
                col.clone(),
                Some(format!(
                    "(SELECT {pcol} FROM {s}.{p} WHERE {pc} = {lit} LIMIT 1)",
                    pcol = ident(pcol),
                    s = ident(schema),
                    p = ident(&fk.parent),
                    pc = ident(parent_col),
                    lit = literal(canary)
                )),
            );
        }
    }
    for col in &cols {
        if col.name == "tenant_id" || col.generated || values.contains_key(&col.name) {
            continue;
        }
        let v = if col.category == "S" {
            Some(literal(canary))
        } else if col.has_default || !col.not_null {
            None
        } else {
            match (col.category.as_str(), col.type_name.as_str()) {
                ("N", _) => Some("1".into()),
                ("B", _) => Some("true".into()),
                ("D", _) => Some("now()".into()),
                (_, "uuid") => Some("gen_random_uuid()".into()),
                (_, "jsonb") | (_, "json") => Some(format!("to_jsonb({}::text)", literal(canary))),
                _ => return Err(format!("column {} of type {} needs a value the planter cannot invent", col.name, col.type_name)),
            }
        };
        values.insert(col.name.clone(), v);
    }
    // Try, and on a CHECK violation replace the constrained text columns' values.
    let mut alternatives: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for _ in 0..12 {
        let chosen: Vec<(&String, &String)> = values.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k, v))).collect();
        let sql = if chosen.is_empty() {
            format!("INSERT INTO {}.{} DEFAULT VALUES", ident(schema), ident(table))
        } else {
            format!(
                "INSERT INTO {}.{} ({}) VALUES ({})",
                ident(schema),
                ident(table),
                chosen.iter().map(|(k, _)| ident(k)).collect::<Vec<_>>().join(", "),
                chosen.iter().map(|(_, v)| v.as_str()).collect::<Vec<_>>().join(", ")
            )
        };
        match c.batch_execute(&sql).await {
            Ok(()) => {
                let lit = literal(canary);
                return values
                    .iter()
                    .find(|(_, v)| v.as_deref() == Some(lit.as_str()))
                    .map(|(k, _)| k.clone())
                    .ok_or_else(|| "no text column could hold the marker".to_string());
            }
            Err(e) => {
                let Some(dbe) = e.as_db_error() else { return Err(format!("insert failed: {e}")) };
                if dbe.code().code() != "23514" {
                    return Err(format!("insert failed: {}", dbe.message()));
                }
                let constraint = dbe.constraint().unwrap_or_default().to_string();
                let row = c
                    .query_opt(
                        "SELECT pg_get_constraintdef(co.oid), array(SELECT a.attname::text FROM unnest(co.conkey) k(n) JOIN pg_attribute a ON a.attrelid = co.conrelid AND a.attnum = k.n) \
                         FROM pg_constraint co WHERE co.conrelid = ($1 || '.' || $2)::regclass AND co.conname = $3",
                        &[&ident(schema), &ident(table), &constraint],
                    )
                    .await
                    .map_err(|e| format!("cannot read constraint {constraint}: {e}"))?
                    .ok_or_else(|| format!("violates CHECK {constraint}"))?;
                let def: String = row.get(0);
                let ccols: Vec<String> = row.get(1);
                let mut changed = false;
                for cc in ccols {
                    let Some(col) = cols.iter().find(|c| c.name == cc) else { continue };
                    let alts = alternatives.entry(cc.clone()).or_insert_with(|| {
                        let mut a: Vec<Option<String>> = Vec::new();
                        if col.has_default || !col.not_null {
                            a.push(None);
                        }
                        a.extend(quoted_literals(&def).into_iter().map(|l| Some(literal(&l))));
                        a.extend(["'XX'", "'x'", "1"].iter().map(|s| Some(s.to_string())));
                        a
                    });
                    if !alts.is_empty() {
                        let next = alts.remove(0);
                        values.insert(cc, next);
                        changed = true;
                    }
                }
                if !changed {
                    return Err(format!("cannot satisfy CHECK {constraint}"));
                }
            }
        }
    }
    Err("gave up after 12 attempts to satisfy its CHECK constraints".into())
}

/// The single-quoted literals of a constraint definition, e.g. `'mains'` from `category IN ('starters','mains')`.
fn quoted_literals(def: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = def.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch != '\'' {
            continue;
        }
        let mut s = String::new();
        loop {
            match chars.next() {
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    s.push('\'');
                }
                Some('\'') | None => break,
                Some(c) => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

fn db(context: &str, e: tokio_postgres::Error) -> Error {
    Error::Control(tg_control::Error::db(context, e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn literals_come_out_of_constraint_definitions() {
        assert_eq!(
            super::quoted_literals("CHECK ((category = ANY (ARRAY['starters'::text, 'it''s'::text])))"),
            vec!["starters".to_string(), "it's".to_string()]
        );
        assert!(super::quoted_literals("CHECK ((price >= (0)::numeric))").is_empty());
    }
}
