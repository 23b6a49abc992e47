//! The four tools an agent calls, and the shape of their answers.
//!
//! - `list_tables`: the tenant's tables and views, each with its comment;
//! - `describe_table`: one table's columns (type, nullability, comment), keys and foreign keys;
//! - `run_sql`: one statement, `$1`… bound to `params`, under the tenant's row, byte and time
//!   limits; `truncated` says a limit cut the rows short;
//! - `explain`: `EXPLAIN` of one statement (the plan, not the rows).
//!
//! Every call first resolves its caller ([`crate::identity`]) and then goes through
//! `tg_dataplane` exactly like `POST /v1/sql` and `GET /v1/schema`: the gate, the tenant's own
//! role from the shared pools, the exchange that drops NOTICE/DETAIL/HINT. A refused or failed
//! statement is a tool result with `isError` set and one line of text (SQLSTATE and message),
//! so the agent can correct itself; a refused credential is a protocol error.
//!
//! Owns the tool descriptions and answer shapes. Must never take the tenant from an argument,
//! run SQL of its own making other than the fixed `EXPLAIN` prefix, or add anything from the
//! database to an answer but the rows, the column names and types, and the primary message.

use std::sync::Arc;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};
use tg_dataplane::statement::{self, StatementError, MAX_PARAMS};

use crate::identity::{refusal, Caller, Identity, Source};

/// The tool server of one MCP session.
#[derive(Clone)]
pub struct TenantTools {
    identity: Arc<Identity>,
    source: Source,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DescribeArgs {
    /// The table's name, as `list_tables` shows it.
    pub table: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SqlArgs {
    /// Exactly one SQL statement (PostgreSQL dialect). `$1`, `$2`, … refer to `params`.
    pub sql: String,
    /// Parameter values, bound (never interpolated) in text form: strings as they are, numbers
    /// and booleans as their JSON text, objects and arrays as JSON, null as NULL.
    #[serde(default)]
    pub params: Vec<Value>,
}

fn text_params(params: &[Value]) -> Vec<Option<String>> {
    params
        .iter()
        .map(|v| match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        })
        .collect()
}

/// A failed statement as a tool error the agent can act on.
fn statement_error(e: &StatementError) -> CallToolResult {
    let line = match e {
        StatementError::Denied(d) => format!("ERROR {}: {} (refused by the gateway, rule {})", d.sqlstate, d.message, d.rule),
        StatementError::NotOne(_) | StatementError::Empty => format!("ERROR 42601: {e}"),
        StatementError::TooManyParams => format!("ERROR 54023: {e}"),
        StatementError::Db { sqlstate, message } => format!("ERROR {sqlstate}: {message}"),
        StatementError::Timeout => format!("ERROR 57014: {e}"),
        StatementError::Pool(_) => {
            "ERROR 53300: the tenant's database cannot be reached or has no free connection right now; retry shortly".to_string()
        }
        StatementError::Unsupported(m) => format!("ERROR 0A000: {m}"),
        StatementError::Broken => format!("ERROR 08006: {e}"),
        StatementError::Quota(d) => format!("ERROR {}: {}", d.sqlstate, d.message),
    };
    CallToolResult::error(vec![ContentBlock::text(line)])
}

fn json_result(v: &Value) -> CallToolResult {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    CallToolResult::success(vec![ContentBlock::text(text)])
}

fn tool_error(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text.into())])
}

#[tool_router]
impl TenantTools {
    pub fn new(identity: Arc<Identity>, source: Source) -> TenantTools {
        TenantTools { identity, source }
    }

    /// The verified caller of this call.
    async fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
        match &self.source {
            Source::Process { token, tenant } => self
                .identity
                .caller(token, tenant.as_deref())
                .await
                .map_err(|e| ErrorData::invalid_request(refusal(&e), None)),
            Source::Request => ctx
                .extensions
                .get::<axum::http::request::Parts>()
                .and_then(|p| p.extensions.get::<Caller>())
                .cloned()
                .ok_or_else(|| ErrorData::invalid_request("unauthorized: send `Authorization: Bearer <tenant API key or JWT>`", None)),
        }
    }

    async fn tables(&self, caller: &Caller) -> Result<Vec<Value>, CallToolResult> {
        match tg_dataplane::schema::describe(&self.identity.data, &caller.principal, &caller.route).await {
            Ok(Value::Array(tables)) => Ok(tables),
            Ok(_) => Ok(Vec::new()),
            Err(e) => Err(statement_error(&e)),
        }
    }

    #[tool(description = "List the tables and views this tenant can query, each with its description. Start here, then describe_table for columns.")]
    async fn list_tables(&self, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let caller = self.caller(&ctx).await?;
        let tables = match self.tables(&caller).await {
            Ok(t) => t,
            Err(r) => return Ok(r),
        };
        let list: Vec<Value> = tables
            .iter()
            .map(|t| {
                let mut o = json!({"name": t.get("name"), "kind": t.get("kind")});
                if let Some(c) = t.get("comment") {
                    o["comment"] = c.clone();
                }
                o
            })
            .collect();
        Ok(json_result(&json!({ "tables": list })))
    }

    #[tool(description = "Describe one table: its columns with types, nullability and comments (what each column means), its primary key, unique keys and foreign keys. Rows are already limited to this tenant; never filter on a tenant column.")]
    async fn describe_table(
        &self,
        Parameters(args): Parameters<DescribeArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = self.caller(&ctx).await?;
        let tables = match self.tables(&caller).await {
            Ok(t) => t,
            Err(r) => return Ok(r),
        };
        let wanted = args.table.trim().trim_matches('"');
        let found = tables
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(wanted))
            .or_else(|| tables.iter().find(|t| t.get("name").and_then(Value::as_str).is_some_and(|n| n.eq_ignore_ascii_case(wanted))));
        match found {
            Some(t) => Ok(json_result(t)),
            None => Ok(tool_error(format!("no table named {wanted:?} is visible to this tenant; list_tables shows the tables"))),
        }
    }

    #[tool(description = "Run exactly one SQL statement (PostgreSQL) as this tenant and return {columns, rows, row_count, truncated}. Bind values with $1, $2, … and params. Results are capped; truncated=true means more rows exist (add LIMIT or aggregate).")]
    async fn run_sql(&self, Parameters(args): Parameters<SqlArgs>, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let caller = self.caller(&ctx).await?;
        if args.params.len() > MAX_PARAMS {
            return Ok(statement_error(&StatementError::TooManyParams));
        }
        let params = text_params(&args.params);
        let limits = self.identity.limits(&caller.principal.tenant);
        match statement::run(&self.identity.data, &caller.principal, &caller.route, &args.sql, &params, &limits).await {
            Ok(a) => Ok(json_result(&json!({
                "columns": a.columns.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>(),
                "rows": a.rows,
                "row_count": a.row_count,
                "truncated": a.truncated,
            }))),
            Err(e) => Ok(statement_error(&e)),
        }
    }

    #[tool(description = "Show PostgreSQL's query plan (EXPLAIN) for one statement, without running it. Pass the statement itself, not EXPLAIN …")]
    async fn explain(&self, Parameters(args): Parameters<SqlArgs>, ctx: RequestContext<RoleServer>) -> Result<CallToolResult, ErrorData> {
        let caller = self.caller(&ctx).await?;
        let sql = args.sql.trim_start();
        if sql.get(..7).is_some_and(|w| w.eq_ignore_ascii_case("explain")) {
            return Ok(tool_error("pass the statement to explain without the EXPLAIN keyword"));
        }
        if args.params.len() > MAX_PARAMS {
            return Ok(statement_error(&StatementError::TooManyParams));
        }
        let params = text_params(&args.params);
        let limits = self.identity.limits(&caller.principal.tenant);
        // The whole EXPLAIN goes through the gate, so a second statement, or one the gate
        // refuses, is refused here too.
        let explained = format!("EXPLAIN (FORMAT TEXT) {sql}");
        match statement::run(&self.identity.data, &caller.principal, &caller.route, &explained, &params, &limits).await {
            Ok(a) => {
                let plan: Vec<String> = a
                    .rows
                    .iter()
                    .filter_map(|r| r.first().and_then(Value::as_str).map(str::to_string))
                    .collect();
                Ok(CallToolResult::success(vec![ContentBlock::text(plan.join("\n"))]))
            }
            Err(e) => Ok(statement_error(&e)),
        }
    }
}

#[tool_handler]
impl ServerHandler for TenantTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("tenantgate", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "tenantgate: SQL over one tenant's PostgreSQL data. Every query runs as this tenant's own database role, \
                 so rows are already limited to this tenant. Call list_tables, then describe_table (the column comments \
                 say what each column means), then run_sql with one statement at a time; explain shows a plan.",
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_text() {
        assert_eq!(
            text_params(&[json!(1), json!("a"), json!(null), json!(true), json!([1])]),
            vec![Some("1".into()), Some("a".into()), None, Some("true".into()), Some("[1]".into())]
        );
    }

    #[test]
    fn errors_carry_sqlstate_and_message_only() {
        let r = statement_error(&StatementError::Db { sqlstate: "42P01".into(), message: "relation \"x\" does not exist".into() });
        assert_eq!(r.is_error, Some(true));
        let text = serde_json::to_string(&r.content).unwrap_or_default();
        assert!(text.contains("ERROR 42P01: relation"), "{text}");
    }
}
