//! Per-tenant quotas on the data plane: how many statements a tenant may run at once, how
//! many it may start per second, and how many rows and bytes one statement may return, over
//! every door (wire, HTTP, MCP) of this gateway. The limits come from
//! [`GatewayConfig::limits_for`] (the catalog's override set through the admin API, which
//! the router publishes with each route it reads; else `[gateway.tenant_limits.<slug>]`;
//! else `[gateway.limits]`), read at each statement, so a change applies at once. Statement
//! timeout and the `work_mem` ceiling are the same table's, applied by PostgreSQL itself on
//! every backend session (see `backend::pool`).
//!
//! What a refused client sees (documented in the README's "Quotas" section):
//!
//! | limit | wire door | HTTP / MCP |
//! |---|---|---|
//! | `max_concurrent_statements` | 53400 at once | waits up to `gateway.quota_wait_ms`, then 429 + 53400 |
//! | `statements_per_second` | 53400 at once | waits for a token due within `quota_wait_ms`, else 429 + 53400 |
//! | `max_rows`, `max_bytes` | the statement cancelled on its backend, 54000 in place of its completion (or of the cancel's 57014) | result cut, `truncated: true` (the portal is executed with a row limit, so the statement stops there) |
//! | `statement_timeout_ms` | 57014 (PostgreSQL's) | 57014, 504 |
//!
//! 53400 (`configuration_limit_exceeded`, class 53 "insufficient resources") is retryable: the
//! same statement succeeds once the tenant's load drops. 54000 (`program_limit_exceeded`) is
//! not: the statement must ask for less (LIMIT, a cursor). A cut statement is cancelled, so it
//! stops using the server at the cut; like any error, its 54000 aborts an open transaction
//! block.
//!
//! Owns the per-tenant state ([`TenantQuota`]: the bucket, the places in use, the
//! [`TenantStats`] counters) and the [`Quotas`] registry. It never runs SQL, never sleeps on
//! the wire door's path (the relay threads must not block), and never lets one tenant's
//! load take another tenant's places: every count is per tenant.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{GatewayConfig, LimitsConfig};
use crate::usage::{Limit, TenantStats, TenantUsage};

/// Retryable: the tenant has too much going on right now.
pub const SQLSTATE_BUSY: &str = "53400";
/// Not retryable as is: the result is larger than the tenant may fetch in one statement.
pub const SQLSTATE_TOO_LARGE: &str = "54000";

/// A statement refused (or a result cut) by a quota.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct QuotaDenial {
    pub limit: Limit,
    pub sqlstate: &'static str,
    /// Names the tenant's limit and says what to do.
    pub message: String,
    /// When a retry may succeed (≥ 1 s for Retry-After).
    pub retry_after: Duration,
}

impl QuotaDenial {
    /// The rule name used in audit and problem codes, e.g. `quota.max_concurrent_statements`.
    pub fn rule(&self) -> &'static str {
        match self.limit {
            Limit::MaxConcurrentStatements => "quota.max_concurrent_statements",
            Limit::StatementsPerSecond => "quota.statements_per_second",
            Limit::MaxRows => "quota.max_rows",
            Limit::MaxBytes => "quota.max_bytes",
        }
    }

    fn busy(limit: Limit, value: u64, retry_after: Duration) -> QuotaDenial {
        let what = match limit {
            Limit::MaxConcurrentStatements => format!("it already runs {value} statements at once"),
            _ => format!("it already started {value} statements in the last second"),
        };
        QuotaDenial {
            limit,
            sqlstate: SQLSTATE_BUSY,
            message: format!(
                "tenantgate: statement refused by the tenant's quota {} = {value} ({what}); retry shortly, or ask the operator to raise the quota",
                limit.name()
            ),
            retry_after,
        }
    }

    /// A result over `max_rows` or `max_bytes` (the wire door's error).
    pub fn too_large(limit: Limit, value: u64) -> QuotaDenial {
        let unit = if limit == Limit::MaxRows { "rows" } else { "bytes" };
        QuotaDenial {
            limit,
            sqlstate: SQLSTATE_TOO_LARGE,
            message: format!(
                "tenantgate: the result is larger than the tenant's quota {} = {value} {unit} per statement; the rows past it were not sent \
                 and the statement was cancelled. Ask for fewer rows (LIMIT, or a cursor with FETCH)",
                limit.name()
            ),
            retry_after: Duration::ZERO,
        }
    }
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// One tenant's quota state and counters.
pub struct TenantQuota {
    slug: String,
    cfg: Arc<GatewayConfig>,
    pub stats: TenantStats,
    bucket: Mutex<Bucket>,
    freed: tokio::sync::Notify,
}

/// A place among the tenant's `max_concurrent_statements`. Dropping it frees the place and
/// adds the time it was held to the tenant's time in the database.
pub struct Permit {
    quota: Arc<TenantQuota>,
    since: Instant,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let s = &self.quota.stats;
        s.active.fetch_sub(1, Ordering::AcqRel);
        TenantStats::add(&s.db_time_us, self.since.elapsed().as_micros() as u64);
        self.quota.freed.notify_one();
    }
}

impl TenantQuota {
    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// The limits in force now.
    pub fn limits(&self) -> LimitsConfig {
        self.cfg.limits_for(&self.slug)
    }

    /// Take a place without waiting (the wire door), under `limits` (from [`Self::limits`]).
    pub fn try_start(self: &Arc<Self>, limits: &LimitsConfig) -> Result<Permit, QuotaDenial> {
        self.place(limits.max_concurrent_statements).map_err(|d| self.refused(d))
    }

    fn place(self: &Arc<Self>, max: u32) -> Result<Permit, QuotaDenial> {
        let ok = self
            .stats
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |a| (max == 0 || a < i64::from(max)).then_some(a + 1))
            .is_ok();
        match ok {
            true => Ok(Permit { quota: Arc::clone(self), since: Instant::now() }),
            false => Err(QuotaDenial::busy(Limit::MaxConcurrentStatements, u64::from(max), Duration::from_secs(1))),
        }
    }

    /// Take a token of `statements_per_second` without waiting (the wire door).
    pub fn try_token(&self, limits: &LimitsConfig) -> Result<(), QuotaDenial> {
        self.token(limits.statements_per_second, Instant::now()).map_err(|d| self.refused(d))
    }

    fn token(&self, rate: u32, now: Instant) -> Result<(), QuotaDenial> {
        if rate == 0 {
            return Ok(());
        }
        let rate_f = f64::from(rate);
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate_f).min(rate_f.max(1.0));
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let due = Duration::from_secs_f64((1.0 - b.tokens) / rate_f);
        Err(QuotaDenial::busy(Limit::StatementsPerSecond, u64::from(rate), due))
    }

    /// Count a refusal and hand it back.
    fn refused(&self, d: QuotaDenial) -> QuotaDenial {
        self.stats.count_quota(d.limit);
        d
    }

    /// Count a result cut by `max_rows`/`max_bytes`.
    pub fn count_cut(&self, limit: Limit) {
        self.stats.count_quota(limit);
    }

    /// A token and a place, waiting up to `gateway.quota_wait_ms` for each (HTTP, MCP).
    pub async fn start(self: &Arc<Self>) -> Result<Permit, QuotaDenial> {
        let deadline = Instant::now() + GatewayConfig::ms(self.cfg.quota_wait_ms);
        let _waiting = TenantStats::hold(&self.stats.waiting);
        loop {
            match self.token(self.limits().statements_per_second, Instant::now()) {
                Ok(()) => break,
                Err(d) if Instant::now() + d.retry_after <= deadline => tokio::time::sleep(d.retry_after).await,
                Err(d) => return Err(self.refused(d)),
            }
        }
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let max = self.limits().max_concurrent_statements;
            match self.place(max) {
                Ok(p) => return Ok(p),
                Err(d) => {
                    let now = Instant::now();
                    if now >= deadline || tokio::time::timeout(deadline - now, freed).await.is_err() {
                        return Err(self.refused(d));
                    }
                }
            }
        }
    }

    pub fn usage(&self) -> TenantUsage {
        self.stats.snapshot(&self.slug, self.limits())
    }
}

/// Every tenant's quota state in this gateway process, shared by all doors.
#[derive(Clone)]
pub struct Quotas {
    cfg: Arc<GatewayConfig>,
    tenants: Arc<Mutex<HashMap<String, Arc<TenantQuota>>>>,
}

impl Quotas {
    /// `cfg` must be the config the doors read limits from (its overrides are shared by clones).
    pub fn new(cfg: Arc<GatewayConfig>) -> Quotas {
        Quotas { cfg, tenants: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// The quota state of tenant `slug` (created on first use).
    pub fn tenant(&self, slug: &str) -> Arc<TenantQuota> {
        let mut m = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = m.get(slug) {
            return Arc::clone(t);
        }
        let t = Arc::new(TenantQuota {
            slug: slug.to_string(),
            cfg: Arc::clone(&self.cfg),
            stats: TenantStats::default(),
            bucket: Mutex::new(Bucket { tokens: f64::MAX, last: Instant::now() }),
            freed: tokio::sync::Notify::new(),
        });
        m.insert(slug.to_string(), Arc::clone(&t));
        t
    }

    /// Every tenant seen since start, busiest first.
    pub fn usage(&self) -> Vec<TenantUsage> {
        let all: Vec<Arc<TenantQuota>> = self.tenants.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let mut list: Vec<TenantUsage> = all.iter().map(|t| t.usage()).collect();
        TenantUsage::busiest_first(&mut list);
        list
    }

    /// The limits of `slug` in force now.
    pub fn limits_for(&self, slug: &str) -> LimitsConfig {
        self.cfg.limits_for(slug)
    }

    /// Set (`Some`) or drop (`None`) the override of `slug`'s limits in this process only
    /// (the router does this from the catalog; the admin API writes the catalog).
    pub fn set_override(&self, slug: &str, limits: Option<LimitsConfig>) -> Result<(), crate::GatewayError> {
        if let Some(l) = &limits {
            l.validate(&format!("the quotas of {slug}"))?;
        }
        self.cfg.overrides.set(slug, limits);
        Ok(())
    }

    /// Whether `slug`'s limits come from an override.
    pub fn has_override(&self, slug: &str) -> bool {
        self.cfg.overrides.get(slug).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(table: &str) -> Quotas {
        let t: toml::Table = toml::from_str(table).expect("toml");
        Quotas::new(Arc::new(GatewayConfig::from_table(&t).expect("config")))
    }

    #[test]
    fn concurrency_is_per_tenant_and_freed_on_drop() {
        let q = quotas("[tenant_limits.heavy]\nmax_concurrent_statements = 2\n");
        let h = q.tenant("heavy");
        let a = h.try_start(&h.limits()).expect("first");
        let l = h.limits();
        let _b = h.try_start(&l).expect("second");
        let d = h.try_start(&l).err().expect("third is refused");
        assert_eq!(d.sqlstate, SQLSTATE_BUSY);
        assert!(d.message.contains("max_concurrent_statements = 2"), "{}", d.message);
        let other = q.tenant("light");
        let _c: Vec<_> = (0..10).map(|_| other.try_start(&other.limits()).expect("no limit")).collect();
        drop(a);
        assert!(h.try_start(&l).is_ok());
        assert_eq!(h.usage().quota_refusals["max_concurrent_statements"], 1);
    }

    #[test]
    fn rate_bucket_and_override() {
        let q = quotas("[tenant_limits.chatty]\nstatements_per_second = 2\n");
        let c = q.tenant("chatty");
        assert!(c.try_token(&c.limits()).is_ok());
        assert!(c.try_token(&c.limits()).is_ok());
        let d = c.try_token(&c.limits()).err().expect("third in the same second");
        assert!(d.message.contains("statements_per_second = 2"));
        q.set_override("chatty", Some(LimitsConfig { statements_per_second: 0, ..LimitsConfig::default() })).expect("set");
        assert!(c.try_token(&c.limits()).is_ok(), "the override applies at once");
        assert!(q.has_override("chatty"));
        q.set_override("chatty", None).expect("drop");
        assert_eq!(c.limits().statements_per_second, 2);
        assert!(q.set_override("chatty", Some(LimitsConfig { work_mem_kb: 1, ..LimitsConfig::default() })).is_err());
    }

    #[tokio::test]
    async fn start_waits_for_a_place() {
        let q = quotas("quota_wait_ms = 2000\n[tenant_limits.heavy]\nmax_concurrent_statements = 1\n");
        let h = q.tenant("heavy");
        let p = h.start().await.expect("first");
        let h2 = Arc::clone(&h);
        let waiter = tokio::spawn(async move { h2.start().await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(h.usage().waiting, 1);
        drop(p);
        assert!(waiter.await.expect("join").is_ok());
    }
}
