//! Per-tenant usage: what each tenant is doing to the servers right now and has done since
//! the gateway started (compare Citus' `citus_stat_tenants`), as every door counts it.
//!
//! Owns the counters ([`TenantStats`]), their snapshot ([`TenantUsage`], the shape the admin
//! API serves and `tenantgate top` reads) and their Prometheus text with bounded label
//! cardinality ([`render_prometheus`]: the `top` busiest tenants by time in the database get
//! their own `tenant` label, all others are summed under `_other`, so a scrape has at most
//! `top + 1` tenant label values whatever the number of tenants).
//!
//! It must never count or label by anything but the tenant slug (no SQL text, no key id, no
//! parameter value), and never block a statement: every update is one atomic add.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::config::LimitsConfig;

/// The label every tenant outside the top N shares (a slug cannot start with `_`).
pub const OTHER: &str = "_other";

/// Why a statement was refused or cut by a quota (see [`crate::quota`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    MaxConcurrentStatements,
    StatementsPerSecond,
    MaxRows,
    MaxBytes,
}

impl Limit {
    pub const ALL: [Limit; 4] = [Limit::MaxConcurrentStatements, Limit::StatementsPerSecond, Limit::MaxRows, Limit::MaxBytes];

    /// The setting's name, as in `[gateway.tenant_limits.<slug>]`.
    pub fn name(self) -> &'static str {
        match self {
            Limit::MaxConcurrentStatements => "max_concurrent_statements",
            Limit::StatementsPerSecond => "statements_per_second",
            Limit::MaxRows => "max_rows",
            Limit::MaxBytes => "max_bytes",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Live counters of one tenant. Counters only grow; gauges go up and down.
#[derive(Debug, Default)]
pub struct TenantStats {
    /// Statements finished (completed or failed), through any door.
    pub statements: AtomicU64,
    /// Statements PostgreSQL answered with an error.
    pub errors: AtomicU64,
    /// Statements the SQL gate refused.
    pub denials: AtomicU64,
    /// Statements refused or cut by a quota, by [`Limit`].
    pub quota: [AtomicU64; 4],
    /// Time with a statement in flight at the database, in microseconds.
    pub db_time_us: AtomicU64,
    /// Rows returned to clients.
    pub rows: AtomicU64,
    /// Bytes of rows returned to clients (DataRow messages as the backend sent them).
    pub bytes: AtomicU64,
    /// Statements (or wire pipelines) in flight now: what `max_concurrent_statements` caps.
    pub active: AtomicI64,
    /// HTTP/MCP statements waiting for a place or a token of the quota now.
    pub waiting: AtomicI64,
    /// Clients connected now: wire sessions, and HTTP/MCP calls in progress.
    pub clients: AtomicI64,
    /// Backend connections the doors hold for the tenant now.
    pub backends: AtomicI64,
}

impl TenantStats {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub fn count_quota(&self, limit: Limit) {
        self.quota[limit.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A gauge that goes up now and down when the guard drops.
    pub fn hold(gauge: &AtomicI64) -> GaugeGuard<'_> {
        gauge.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(gauge)
    }

    pub fn snapshot(&self, slug: &str, limits: LimitsConfig) -> TenantUsage {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let gauge = |g: &AtomicI64| g.load(Ordering::Relaxed).max(0) as u64;
        TenantUsage {
            tenant: slug.to_string(),
            statements: get(&self.statements),
            errors: get(&self.errors),
            denials: get(&self.denials),
            quota_refusals: Limit::ALL.iter().map(|l| (l.name().to_string(), get(&self.quota[l.index()]))).collect(),
            db_time_seconds: get(&self.db_time_us) as f64 / 1e6,
            rows: get(&self.rows),
            bytes: get(&self.bytes),
            active: gauge(&self.active),
            waiting: gauge(&self.waiting),
            clients: gauge(&self.clients),
            backends: gauge(&self.backends),
            limits,
        }
    }
}

/// Decrements its gauge when dropped.
pub struct GaugeGuard<'a>(&'a AtomicI64);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One tenant's numbers and limits, as the admin API serves them (`GET /admin/v1/usage`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TenantUsage {
    /// The tenant's slug, or `_other` for the sum of the tenants outside the top N.
    pub tenant: String,
    pub statements: u64,
    pub errors: u64,
    pub denials: u64,
    /// Refused or cut statements by limit name (`max_concurrent_statements`, …).
    pub quota_refusals: std::collections::BTreeMap<String, u64>,
    pub db_time_seconds: f64,
    pub rows: u64,
    pub bytes: u64,
    pub active: u64,
    pub waiting: u64,
    pub clients: u64,
    pub backends: u64,
    /// The limits in force for the tenant now (0 = none).
    pub limits: LimitsConfig,
}

impl TenantUsage {
    /// Busiest first: time in the database, then statements, then slug.
    pub fn busiest_first(list: &mut [TenantUsage]) {
        list.sort_by(|a, b| {
            b.db_time_seconds
                .total_cmp(&a.db_time_seconds)
                .then(b.statements.cmp(&a.statements))
                .then_with(|| a.tenant.cmp(&b.tenant))
        });
    }

    fn absorb(&mut self, o: &TenantUsage) {
        self.statements += o.statements;
        self.errors += o.errors;
        self.denials += o.denials;
        for (k, v) in &o.quota_refusals {
            *self.quota_refusals.entry(k.clone()).or_insert(0) += v;
        }
        self.db_time_seconds += o.db_time_seconds;
        self.rows += o.rows;
        self.bytes += o.bytes;
        self.active += o.active;
        self.waiting += o.waiting;
        self.clients += o.clients;
        self.backends += o.backends;
    }
}

/// The top `top` of `list` (busiest first) and, when any are left, one `_other` row summing
/// the rest (its `limits` are meaningless and left at the defaults).
pub fn top_and_other(mut list: Vec<TenantUsage>, top: usize) -> Vec<TenantUsage> {
    TenantUsage::busiest_first(&mut list);
    if list.len() <= top {
        return list;
    }
    let rest = list.split_off(top);
    let mut other = TenantUsage {
        tenant: OTHER.to_string(),
        statements: 0,
        errors: 0,
        denials: 0,
        quota_refusals: Limit::ALL.iter().map(|l| (l.name().to_string(), 0)).collect(),
        db_time_seconds: 0.0,
        rows: 0,
        bytes: 0,
        active: 0,
        waiting: 0,
        clients: 0,
        backends: 0,
        limits: LimitsConfig::default(),
    };
    for r in &rest {
        other.absorb(r);
    }
    list.push(other);
    list
}

/// Prometheus text (format 0.0.4) of the per-tenant numbers: at most `top + 1` tenant label
/// values. A tenant entering or leaving the top N moves its totals between its own series and
/// `_other`, which Prometheus reads as a counter reset.
pub fn render_prometheus(list: Vec<TenantUsage>, top: usize) -> String {
    use std::fmt::Write as _;
    let rows = top_and_other(list, top);
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&TenantUsage) -> String| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for r in &rows {
            let _ = writeln!(out, "{name}{{tenant=\"{}\"}} {}", r.tenant, value(r));
        }
    };
    family("tenantgate_tenant_statements_total", "counter", "Statements finished, by tenant (top N by time in the database, else _other)", &|r| r.statements.to_string());
    family("tenantgate_tenant_errors_total", "counter", "Statements the database answered with an error, by tenant", &|r| r.errors.to_string());
    family("tenantgate_tenant_denials_total", "counter", "Statements the SQL gate refused, by tenant", &|r| r.denials.to_string());
    family("tenantgate_tenant_db_seconds_total", "counter", "Time with a statement in flight at the database, by tenant", &|r| format!("{}", r.db_time_seconds));
    family("tenantgate_tenant_rows_total", "counter", "Rows returned, by tenant", &|r| r.rows.to_string());
    family("tenantgate_tenant_bytes_total", "counter", "Bytes of rows returned, by tenant", &|r| r.bytes.to_string());
    family("tenantgate_tenant_active_statements", "gauge", "Statements in flight now, by tenant", &|r| r.active.to_string());
    family("tenantgate_tenant_waiting_statements", "gauge", "Statements waiting for the tenant's quota now, by tenant", &|r| r.waiting.to_string());
    family("tenantgate_tenant_clients", "gauge", "Wire sessions and HTTP/MCP calls in progress, by tenant", &|r| r.clients.to_string());
    family("tenantgate_tenant_backends", "gauge", "Backend connections held for the tenant by the doors now", &|r| r.backends.to_string());
    let name = "tenantgate_tenant_quota_refusals_total";
    let _ = writeln!(out, "# HELP {name} Statements refused or cut by a quota, by tenant and limit");
    let _ = writeln!(out, "# TYPE {name} counter");
    for r in &rows {
        for (limit, n) in &r.quota_refusals {
            let _ = writeln!(out, "{name}{{tenant=\"{}\",limit=\"{limit}\"}} {n}", r.tenant);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(slug: &str, secs: f64) -> TenantUsage {
        let s = TenantStats::default();
        TenantStats::add(&s.db_time_us, (secs * 1e6) as u64);
        TenantStats::add(&s.statements, 1);
        s.snapshot(slug, LimitsConfig::default())
    }

    #[test]
    fn top_n_plus_other() {
        let list: Vec<_> = (0..50).map(|i| usage(&format!("t{i:02}"), f64::from(i))).collect();
        let rows = top_and_other(list, 3);
        let names: Vec<_> = rows.iter().map(|r| r.tenant.as_str()).collect();
        assert_eq!(names, ["t49", "t48", "t47", OTHER]);
        assert_eq!(rows[3].statements, 47);
        let text = render_prometheus((0..50).map(|i| usage(&format!("t{i:02}"), 1.0)).collect(), 3);
        let labels: std::collections::BTreeSet<_> =
            text.lines().filter_map(|l| l.split("tenant=\"").nth(1)).map(|l| l.split('"').next().unwrap_or("")).collect();
        assert_eq!(labels.len(), 4, "{labels:?}");
    }
}
