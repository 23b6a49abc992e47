//! The tenant's schema description: its tables, columns, types, keys and comments, compact
//! enough to paste into an LLM prompt. `GET /v1/schema` (HTTP) and `list_tables` /
//! `describe_table` (MCP) both show it.
//!
//! The description is read *as the tenant's own role* through the shared pools, from the
//! schemas on that role's search_path (its placement's schema) and only for relations it may
//! SELECT, so it can only describe what the tenant can reach. `tenant_id` is left out
//! everywhere (columns and keys): RLS fills and filters it, and a Text2SQL agent never needs it.
//!
//! Owns the description query. Must never run it as anything but the tenant's role, or list
//! the `tenantgate` helper schema.

use serde_json::Value;

use crate::backend::Door;
use crate::exchange::Statement;
use crate::principal::Principal;
use crate::router::Route;
use crate::statement::{execute, StatementError};
use crate::DataPlane;

/// One JSON document describing every relation the tenant role can read on its search_path.
pub const DESCRIBE: &str = r#"
WITH rel AS (
    SELECT c.oid, c.relname, c.relkind
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY (pg_catalog.current_schemas(false))
      AND n.nspname NOT IN ('tenantgate', 'tenantgate_admin', 'pg_catalog', 'information_schema')
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND pg_catalog.has_table_privilege(c.oid, 'SELECT')
),
cols AS (
    SELECT k.conrelid, k.oid AS conoid,
           (SELECT pg_catalog.json_agg(a.attname ORDER BY x.o)
              FROM unnest(k.conkey) WITH ORDINALITY AS x(n, o)
              JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.n
             WHERE a.attname <> 'tenant_id') AS names,
           (SELECT pg_catalog.json_agg(a.attname ORDER BY x.o)
              FROM unnest(k.confkey) WITH ORDINALITY AS x(n, o)
              JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = x.n
             WHERE a.attname <> 'tenant_id') AS fnames
    FROM pg_catalog.pg_constraint k
    WHERE k.conrelid IN (SELECT oid FROM rel) AND k.contype IN ('p', 'u', 'f')
)
SELECT pg_catalog.json_strip_nulls(coalesce(pg_catalog.json_agg(t ORDER BY t.name), '[]'))
FROM (
    SELECT r.relname AS name,
           CASE r.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' ELSE 'table' END AS kind,
           pg_catalog.obj_description(r.oid, 'pg_class') AS comment,
           (SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
                       'name', a.attname,
                       'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
                       'nullable', NOT a.attnotnull,
                       'comment', pg_catalog.col_description(r.oid, a.attnum)) ORDER BY a.attnum)
              FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> 'tenant_id') AS columns,
           (SELECT c.names FROM cols c JOIN pg_catalog.pg_constraint k ON k.oid = c.conoid
             WHERE c.conrelid = r.oid AND k.contype = 'p' AND c.names IS NOT NULL) AS primary_key,
           (SELECT pg_catalog.json_agg(c.names ORDER BY k.conname) FROM cols c JOIN pg_catalog.pg_constraint k ON k.oid = c.conoid
             WHERE c.conrelid = r.oid AND k.contype = 'u' AND c.names IS NOT NULL) AS unique_keys,
           (SELECT pg_catalog.json_agg(pg_catalog.json_build_object(
                       'columns', c.names, 'references', f.relname, 'referenced_columns', c.fnames) ORDER BY k.conname)
              FROM cols c JOIN pg_catalog.pg_constraint k ON k.oid = c.conoid
              JOIN pg_catalog.pg_class f ON f.oid = k.confrelid
             WHERE c.conrelid = r.oid AND k.contype = 'f') AS foreign_keys
    FROM rel r
) t
"#;

/// The description document: a JSON array of tables, each `{name, kind, comment?, columns:
/// [{name, type, nullable, comment?}], primary_key?, unique_keys?, foreign_keys?}`.
pub async fn describe(data: &DataPlane, principal: &Principal, route: &Route) -> Result<Value, StatementError> {
    // Held through a move's fence, retried on the new route if the old one was just closed.
    let (_, backend) = crate::admission::checkout_for(&data.router, &data.pools, route.clone(), principal.scope, Door::Statement)
        .await
        .map_err(StatementError::Pool)?;
    let statement = Statement { sql: DESCRIBE, params: &[], statement_timeout_ms: 15_000, max_rows: 1, max_bytes: 64 << 20 };
    let out = execute(backend, &statement, true).await?;
    Ok(out.rows.into_iter().next().and_then(|r| r.into_iter().next()).unwrap_or(Value::Array(vec![])))
}
