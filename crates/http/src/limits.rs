//! Per-tenant limits of the HTTP API: the request-rate token bucket (429 + `Retry-After`) and
//! the row, byte and time limits of one `/v1/sql` call (`[http.limits]`, as a
//! `tg_dataplane::statement::CallLimits`).
//!
//! Owns the arithmetic and the buckets' memory (bounded: idle buckets are pruned). It never
//! decides who a tenant is (callers pass the authenticated tenant) and never sleeps or queues a
//! request: over the limit is refused at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::config::{LimitsConfig, RateLimitConfig};

/// Buckets kept before idle ones are pruned.
const PRUNE_AT: usize = 10_000;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per tenant: `rate_per_second` refill, `burst` capacity.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(cfg: &RateLimitConfig) -> RateLimiter {
        RateLimiter { rate: cfg.rate_per_second, burst: f64::from(cfg.burst), buckets: Mutex::new(HashMap::new()) }
    }

    /// Take one token for `tenant`. `Err(seconds)` says when the next token is due (≥ 1).
    pub fn check(&self, tenant: &str) -> Result<(), u64> {
        self.check_at(tenant, Instant::now())
    }

    fn check_at(&self, tenant: &str, now: Instant) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        // A poisoned lock only means another request panicked mid-update; the map is still usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= PRUNE_AT && !buckets.contains_key(tenant) {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.last).as_secs_f64() * rate < burst);
        }
        let b = buckets.entry(tenant.to_string()).or_insert(Bucket { tokens: self.burst, last: now });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - b.tokens) / self.rate;
            Err(wait.ceil().max(1.0) as u64)
        }
    }
}

/// The limits of one `/v1/sql` call for one tenant.
pub type SqlLimits = tg_dataplane::statement::CallLimits;

/// HTTP's own limits, with the statement timeout capped by the wire gateway's per-tenant cap
/// when it has one (`gateway_cap_ms`).
pub fn sql_limits(cfg: &LimitsConfig, gateway_cap_ms: Option<u64>) -> SqlLimits {
    SqlLimits::new(cfg.max_rows, cfg.max_bytes, cfg.statement_timeout_ms, gateway_cap_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_and_refuses() {
        let rl = RateLimiter::new(&RateLimitConfig { rate_per_second: 1.0, burst: 2 });
        let t0 = Instant::now();
        assert!(rl.check_at("a", t0).is_ok());
        assert!(rl.check_at("a", t0).is_ok());
        assert_eq!(rl.check_at("a", t0), Err(1));
        assert!(rl.check_at("b", t0).is_ok(), "tenants have separate buckets");
        assert!(rl.check_at("a", t0 + Duration::from_millis(1100)).is_ok());
    }

    #[test]
    fn zero_rate_disables() {
        let rl = RateLimiter::new(&RateLimitConfig { rate_per_second: 0.0, burst: 0 });
        for _ in 0..100 {
            assert!(rl.check("a").is_ok());
        }
    }

    #[test]
    fn slow_rate_retry_after() {
        let rl = RateLimiter::new(&RateLimitConfig { rate_per_second: 0.1, burst: 1 });
        let t0 = Instant::now();
        assert!(rl.check_at("a", t0).is_ok());
        assert_eq!(rl.check_at("a", t0), Err(10));
    }
}
