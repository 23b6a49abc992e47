//! The catalog's reachability as this gateway sees it, and what the gateway may do while the
//! catalog cannot be reached.
//!
//! Owns one small state: when the catalog last answered, since when it has not, and why. The
//! router's lookups, the NOTIFY listener and its heartbeat report here ([`Health::ok`],
//! [`Health::failed`]); the router asks [`Health::down`] and [`Health::may_serve_last_seen`]
//! before it answers from the routes it last saw instead of the catalog. The state is logged
//! on every change (and every 30 s while down) and exported as `tenantgate_catalog_up`.
//!
//! The grace period is counted from the last time the catalog answered, not from the moment
//! the outage was noticed, so it bounds how old the last-seen state can be.
//!
//! It must never decide a route itself, never hold a lock across an await, and never log a
//! catalog URL (it may carry a password).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the state is logged again while the catalog stays unreachable.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// What a gateway does with logins while its catalog cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutagePolicy {
    /// Serve known tenants and keys from the routes last seen, for at most this long after
    /// the catalog last answered.
    ServeKnown { grace: Duration },
    /// Refuse every login until the catalog answers again.
    FailClosed,
}

struct State {
    last_ok: Instant,
    down_since: Option<Instant>,
    error: String,
    logged_at: Instant,
    grace_over_logged: bool,
}

pub(super) struct Health {
    state: Mutex<State>,
    policy: OutagePolicy,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Health {
    pub(super) fn new(policy: OutagePolicy) -> Health {
        let now = Instant::now();
        Health {
            state: Mutex::new(State { last_ok: now, down_since: None, error: String::new(), logged_at: now, grace_over_logged: false }),
            policy,
        }
    }

    /// The catalog answered.
    pub(super) fn ok(&self) {
        let recovered = {
            let mut s = lock(&self.state);
            s.last_ok = Instant::now();
            s.grace_over_logged = false;
            s.down_since.take()
        };
        if let Some(since) = recovered {
            tracing::warn!("catalog reachable again after {:.1} s; routes are re-read from it", since.elapsed().as_secs_f64());
        }
        metrics::gauge!("tenantgate_catalog_up").set(1.0);
    }

    /// The catalog could not be reached (connection refused or lost, or no answer in time).
    pub(super) fn failed(&self, error: &str) {
        let first = {
            let mut s = lock(&self.state);
            s.error = error.to_string();
            let first = s.down_since.is_none();
            if first {
                s.down_since = Some(Instant::now());
                s.logged_at = Instant::now();
            }
            first
        };
        metrics::gauge!("tenantgate_catalog_up").set(0.0);
        if first {
            match self.policy {
                OutagePolicy::ServeKnown { grace } => tracing::warn!(
                    "catalog unreachable ({error}); serving known tenants and keys from the routes last seen for up to {} s, retrying",
                    grace.as_secs()
                ),
                OutagePolicy::FailClosed => {
                    tracing::warn!("catalog unreachable ({error}); refusing every login until it answers (gateway.catalog_outage = \"fail-closed\"), retrying")
                }
            }
        }
    }

    /// `Some(why)` while the catalog is considered unreachable.
    pub(super) fn down(&self) -> Option<String> {
        let s = lock(&self.state);
        s.down_since.map(|_| s.error.clone())
    }

    /// May a login be served from the routes last seen now? Only under `ServeKnown`, and only
    /// within the grace period after the catalog last answered.
    pub(super) fn may_serve_last_seen(&self) -> bool {
        let OutagePolicy::ServeKnown { grace } = self.policy else { return false };
        let mut s = lock(&self.state);
        let within = s.last_ok.elapsed() < grace;
        if !within && !s.grace_over_logged {
            s.grace_over_logged = true;
            drop(s);
            tracing::warn!("catalog still unreachable and the grace period ({} s) is over; refusing every login until it answers", grace.as_secs());
        }
        within
    }

    /// Log the state again if the catalog has been down for a while (called by the listener's
    /// retry loop), and keep the gauge current.
    pub(super) fn report(&self) {
        let line = {
            let mut s = lock(&self.state);
            match s.down_since {
                Some(since) if s.logged_at.elapsed() >= LOG_EVERY => {
                    s.logged_at = Instant::now();
                    Some((since.elapsed(), s.last_ok.elapsed(), s.error.clone()))
                }
                _ => None,
            }
        };
        if let Some((down, silent, error)) = line {
            let left = match self.policy {
                OutagePolicy::ServeKnown { grace } if silent < grace => format!("serving known tenants for {} s more", (grace - silent).as_secs()),
                _ => "refusing every login".to_string(),
            };
            tracing::warn!("catalog unreachable for {} s ({error}); {left}; retrying", down.as_secs());
        }
    }
}

/// Names and help of the router's metrics, for the exporter's `# HELP` lines.
pub fn describe_metrics() {
    metrics::describe_gauge!("tenantgate_catalog_up", "1 while the gateway can reach its catalog, 0 during an outage");
    metrics::describe_counter!(
        "tenantgate_catalog_last_seen_routes_total",
        "Route lookups answered from the routes last seen because the catalog was unreachable (within the grace period)"
    );
    metrics::describe_counter!(
        "tenantgate_catalog_refused_lookups_total",
        "Route lookups refused because the catalog was unreachable and no last-seen route could be used"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_counts_from_the_last_answer_and_fail_closed_never_serves() {
        let h = Health::new(OutagePolicy::ServeKnown { grace: Duration::from_millis(50) });
        assert!(h.down().is_none());
        h.failed("refused");
        assert_eq!(h.down().as_deref(), Some("refused"));
        assert!(h.may_serve_last_seen());
        std::thread::sleep(Duration::from_millis(60));
        assert!(!h.may_serve_last_seen(), "grace over");
        h.ok();
        assert!(h.down().is_none());
        assert!(h.may_serve_last_seen());

        let closed = Health::new(OutagePolicy::FailClosed);
        closed.failed("refused");
        assert!(!closed.may_serve_last_seen());
    }
}
