//! One tenant statement, for the doors that take a statement at a time (HTTP, MCP): the gate
//! (one statement, the principal's scope, the timeout cap), the tenant's quota (a rate token
//! and a place among its concurrent statements, waited for briefly; rows and bytes capped; see
//! [`crate::quota`]), a backend of the tenant's own role
//! from the shared pools (held through a move's fence), the [`exchange`](crate::exchange) under
//! the call's row, byte and time limits, and the result columns' type names.
//!
//! A backend goes back to the pool carrying the exchange's session settings, unreset, for the
//! next statement of the same tenant role ([`Backend::keep`]); after a statement the gate
//! cannot vouch for (one that may leave session state of its own, or any with the gate off) it
//! is reset with `DISCARD ALL` instead. A wire checkout resets it either way.
//!
//! Owns the order of those steps and the per-call limits ([`CallLimits`]); a door owns how a
//! request arrives and how a [`StatementError`] is shown. Must never: run a statement the
//! gate refused, run anything but the gate's rewritten text when it gives one, interpolate a
//! parameter into SQL, pass NOTICE/DETAIL/HINT text on (the exchange drops them), or give a
//! connection back to the pool when its exchange did not finish cleanly.

use std::time::Duration;

use serde_json::Value;
use tg_catalog::keys::KeyScope;

use crate::backend::{Backend, Carried, Door, PoolError};
use crate::exchange::{self, BackendIo, Column, ExecError, Outcome, Settings, Statement};
use crate::principal::Principal;
use crate::quota::QuotaDenial;
use crate::usage::{Limit, TenantStats};
use crate::router::Route;
use crate::{values, DataPlane};

/// Extra time given to the database beyond `statement_timeout` before the gateway gives up on
/// the connection itself.
const GRACE: Duration = Duration::from_secs(5);
/// PostgreSQL's limit on parameters in one Bind message.
pub const MAX_PARAMS: usize = 65_535;

/// The limits of one call for one tenant.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    pub max_rows: u32,
    pub max_bytes: usize,
    pub statement_timeout_ms: u64,
}

impl CallLimits {
    /// A door's own limits, with the statement timeout capped by the wire gateway's per-tenant
    /// cap when it has one (`gateway_cap_ms`).
    pub fn new(max_rows: u32, max_bytes: usize, statement_timeout_ms: u64, gateway_cap_ms: Option<u64>) -> CallLimits {
        let t = match gateway_cap_ms {
            Some(cap) if cap > 0 => statement_timeout_ms.min(cap),
            _ => statement_timeout_ms,
        };
        CallLimits { max_rows, max_bytes, statement_timeout_ms: t }
    }

    /// The limits of `tenant` on `data`: the door's own, capped by `[gateway]`'s per tenant.
    pub fn for_tenant(data: &DataPlane, tenant: &str, max_rows: u32, max_bytes: usize, statement_timeout_ms: u64) -> CallLimits {
        let cap = data.gateway.limits_for(tenant).statement_timeout_ms;
        CallLimits::new(max_rows, max_bytes, statement_timeout_ms, Some(cap))
    }

    /// What the gate caps a tenant's own `SET statement_timeout` to.
    pub fn gate_limits(&self) -> tg_gate::Limits {
        // No LISTEN here: a call has no session to deliver notifications to.
        tg_gate::Limits { max_statement_timeout_ms: Some(self.statement_timeout_ms), max_idle_in_transaction_ms: None, own_database: false, transaction_mode: false }
    }
}

/// Why a statement did not run, or did not finish.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StatementError {
    /// The gate refused it (the denial names the rule).
    #[error("{}", .0.message)]
    Denied(tg_gate::Denial),
    /// More than one statement in one call.
    #[error("send one statement per call; this one holds {0}")]
    NotOne(usize),
    /// No statement at all.
    #[error("the SQL holds no statement")]
    Empty,
    /// Too many parameters for one Bind message.
    #[error("at most {MAX_PARAMS} params are allowed")]
    TooManyParams,
    /// No backend could be checked out.
    #[error("{0}")]
    Pool(PoolError),
    /// PostgreSQL refused the statement: SQLSTATE and primary message only.
    #[error("{message}")]
    Db { sqlstate: String, message: String },
    /// COPY and the like; the connection was discarded.
    #[error("{0}")]
    Unsupported(String),
    /// The backend connection broke during the statement; it was discarded.
    #[error("the connection to the tenant's database broke during the statement; retry")]
    Broken,
    /// The gateway's own wall-clock guard fired; the statement was cancelled.
    #[error("canceling statement due to statement timeout")]
    Timeout,
    /// The tenant's quota refused the statement (53400, retryable; the message names the limit).
    #[error("{0}")]
    Quota(QuotaDenial),
}

/// A statement's result, with the type name of each column.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// `(name, type name)` per column, e.g. `("price", "numeric")`.
    pub columns: Vec<(String, String)>,
    pub rows: Vec<Vec<Value>>,
    pub row_count: u64,
    pub truncated: bool,
}

/// `BackendIo` over the wire gateway's pooled backend.
pub struct Pooled<'a>(pub &'a mut Backend);

impl BackendIo for Pooled<'_> {
    async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.0.send(bytes).await.map_err(|e| e.to_string())
    }
    async fn recv_frame(&mut self) -> Result<bytes::Bytes, String> {
        self.0.recv().await.map(|m| m.bytes).map_err(|e| e.to_string())
    }
}

/// Run one statement on a backend checked out for [`Door::Statement`], with a wall-clock
/// guard. When the exchange ended cleanly the backend goes back to the pool: carrying the
/// exchange's settings if `keep` (the statement leaves no session state of its own), reset
/// otherwise. It is closed when the exchange did not end cleanly.
pub async fn execute(mut backend: Backend, st: &Statement<'_>, keep: bool) -> Result<Outcome, StatementError> {
    let guard = Duration::from_millis(st.statement_timeout_ms) + GRACE;
    let have = match backend.carried() {
        Carried::Statement { statement_timeout_ms } => Settings::Applied { statement_timeout_ms },
        Carried::Nothing => Settings::None,
    };
    let prelude_sent = exchange::prelude(st, have).is_some();
    let result = tokio::time::timeout(guard, exchange::run(&mut Pooled(&mut backend), st, have)).await;
    // What the backend carries now, for the next statement doors' statement.
    let now = Carried::Statement { statement_timeout_ms: st.statement_timeout_ms };
    match result {
        Ok(Ok(out)) => {
            give_back(backend, if keep { now } else { Carried::Nothing });
            Ok(out)
        }
        Ok(Err(ExecError::Db { sqlstate, message })) => {
            // An error may have come from the settings: then what the backend carries is unknown.
            give_back(backend, if keep && !prelude_sent { now } else { Carried::Nothing });
            Err(StatementError::Db { sqlstate, message })
        }
        Ok(Err(ExecError::Unsupported(m))) => {
            backend.close();
            Err(StatementError::Unsupported(m))
        }
        Ok(Err(ExecError::Broken(_))) => {
            backend.close();
            Err(StatementError::Broken)
        }
        Err(_) => {
            if let Some(c) = backend.cancel_target() {
                tokio::spawn(async move {
                    let _ = c.cancel().await;
                });
            }
            backend.close();
            Err(StatementError::Timeout)
        }
    }
}

/// Back to the pool: unreset, carrying `carried`, or reset when it carries [`Carried::Nothing`]
/// (the backend may hold settings a wire client must not see).
fn give_back(mut backend: Backend, carried: Carried) {
    if carried == Carried::Nothing {
        tokio::spawn(backend.release());
    } else {
        backend.set_carried(carried);
        backend.keep();
    }
}

/// Run `sql` (exactly one statement, `$n` bound to `params`) as `principal` on `route`:
/// gate → admission → exchange → type names.
pub async fn run(
    data: &DataPlane,
    principal: &Principal,
    route: &Route,
    sql: &str,
    params: &[Option<String>],
    limits: &CallLimits,
) -> Result<Answer, StatementError> {
    if params.len() > MAX_PARAMS {
        return Err(StatementError::TooManyParams);
    }
    let quota = data.quotas.tenant(&principal.tenant);
    let stats = &quota.stats;
    let _client = TenantStats::hold(&stats.clients);
    let verdict = data.gate.check(&principal.tenant, sql, principal.gate_scope(), &limits.gate_limits()).map_err(|d| {
        TenantStats::add(&stats.denials, 1);
        StatementError::Denied(d)
    })?;
    // Whether the backend may keep its settings for the next statement (no state of the tenant's own).
    let keep = !data.gate.leaves_session_state(&principal.tenant, sql);
    if verdict.statements > 1 {
        return Err(StatementError::NotOne(verdict.statements));
    }
    if verdict.statements == 0 && data.gate.config().enabled {
        return Err(StatementError::Empty);
    }
    // A rate token and a place of the tenant's quota, waited for up to gateway.quota_wait_ms.
    let permit = quota.start().await.map_err(StatementError::Quota)?;
    let q = quota.limits();
    let cap = |door: u64, tenant: u64| if tenant > 0 { door.min(tenant) } else { door };
    let max_rows = cap(u64::from(limits.max_rows), q.max_rows) as u32;
    let max_bytes = cap(limits.max_bytes as u64, q.max_bytes) as usize;
    // Held through a move's fence, retried on the new route if the old one was just closed.
    let (_, backend) = crate::admission::checkout_for(&data.router, &data.pools, route.clone(), principal.scope, Door::Statement)
        .await
        .map_err(StatementError::Pool)?;
    let backend_held = TenantStats::hold(&stats.backends);
    // In strict catalog mode a catalog read runs as rewritten onto the tenant-scoped catalog.
    let sql = verdict.rewritten.as_deref().unwrap_or(sql);
    let statement = Statement {
        sql,
        params,
        statement_timeout_ms: limits.statement_timeout_ms,
        max_rows,
        max_bytes,
    };
    let result = execute(backend, &statement, keep).await;
    drop(backend_held);
    drop(permit);
    TenantStats::add(&stats.statements, 1);
    let out = match result {
        Ok(out) => out,
        Err(e) => {
            if matches!(e, StatementError::Db { .. } | StatementError::Timeout) {
                TenantStats::add(&stats.errors, 1);
            }
            return Err(e);
        }
    };
    TenantStats::add(&stats.rows, out.rows.len() as u64);
    TenantStats::add(&stats.bytes, out.bytes as u64);
    if out.truncated {
        // Cut by the tenant's quota rather than the door's own limit: count it as the quota's.
        if q.max_rows > 0 && u64::from(max_rows) == q.max_rows && out.rows.len() >= max_rows as usize {
            quota.count_cut(Limit::MaxRows);
        } else if q.max_bytes > 0 && max_bytes as u64 == q.max_bytes {
            quota.count_cut(Limit::MaxBytes);
        }
    }
    let names = type_names(data, route, principal.scope, &out.columns).await;
    Ok(Answer {
        columns: out.columns.iter().zip(names).map(|(c, t)| (c.name.clone(), t)).collect(),
        rows: out.rows,
        row_count: out.row_count,
        truncated: out.truncated,
    })
}

/// Type names of the result columns: built-ins from a table; others (the tenant's own enums,
/// domains, …) from the tenant's own database, through the pool, when there are any.
async fn type_names(data: &DataPlane, route: &Route, scope: KeyScope, cols: &[Column]) -> Vec<String> {
    let unknown: Vec<u32> = cols.iter().filter(|c| values::builtin_type_name(c.type_oid).is_none()).map(|c| c.type_oid).collect();
    let mut looked_up = std::collections::HashMap::new();
    if !unknown.is_empty() {
        if let Ok(backend) = data.pools.checkout_for(route, scope, Door::Statement).await {
            let list = format!("{{{}}}", unknown.iter().map(u32::to_string).collect::<Vec<_>>().join(","));
            let params = [Some(list)];
            let q = Statement {
                sql: "SELECT t.oid::int8, pg_catalog.format_type(t.oid, NULL) FROM pg_catalog.pg_type t WHERE t.oid = ANY ($1::oid[])",
                params: &params,
                statement_timeout_ms: 5_000,
                max_rows: 1_000,
                max_bytes: 1 << 20,
            };
            if let Ok(out) = execute(backend, &q, true).await {
                for r in out.rows {
                    if let (Some(Value::Number(oid)), Some(Value::String(name))) = (r.first(), r.get(1)) {
                        if let Some(oid) = oid.as_u64() {
                            looked_up.insert(oid, name.clone());
                        }
                    }
                }
            }
        }
    }
    cols.iter()
        .map(|c| match values::builtin_type_name(c.type_oid) {
            Some(n) => n.to_string(),
            None => looked_up.get(&u64::from(c.type_oid)).cloned().unwrap_or_else(|| "unknown".to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_is_capped_by_the_gateway() {
        assert_eq!(CallLimits::new(10, 100, 30_000, Some(5_000)).statement_timeout_ms, 5_000);
        assert_eq!(CallLimits::new(10, 100, 30_000, Some(0)).statement_timeout_ms, 30_000);
        assert_eq!(CallLimits::new(10, 100, 3_000, Some(5_000)).statement_timeout_ms, 3_000);
    }
}
