//! Half-open connections: how many clients are still in startup or authentication, overall
//! and per source IP address, and the caps on both (`gateway.max_startups`,
//! `gateway.max_startups_per_address`).
//!
//! Owns the two counts. A session takes a [`StartupSlot`] before it reads a byte and gives it
//! back (drop) once it is authenticated or has ended, so connections that never finish their
//! startup hold at most the caps' worth of memory, and one address cannot take all of it.
//! Exported as `tenantgate_wire_startups` (in progress) and
//! `tenantgate_wire_startups_refused_total{limit}`.
//!
//! It must never count an authenticated session, and never put an address in a metric label.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The counts and their caps. Share one per gateway.
pub struct Startups {
    max: usize,
    max_per_address: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Global,
    PerAddress,
}

impl Refused {
    /// The client-facing message (FATAL 53300).
    pub fn message(self) -> &'static str {
        match self {
            Refused::Global => "tenantgate: too many connections are still starting up; try again shortly",
            Refused::PerAddress => "tenantgate: too many connections from this address are still starting up; try again shortly",
        }
    }
}

/// A connection in startup; dropping it frees its place.
pub struct StartupSlot {
    owner: Arc<Startups>,
    ip: IpAddr,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Startups {
    pub fn new(max: usize, max_per_address: usize) -> Arc<Startups> {
        Arc::new(Startups { max, max_per_address, state: Mutex::new(State::default()) })
    }

    /// A place for a connection from `ip` in startup, unless a cap is reached.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Result<StartupSlot, Refused> {
        let total = {
            let mut st = lock(&self.state);
            let refused = if st.total >= self.max {
                Some(Refused::Global)
            } else if st.by_address.get(&ip).copied().unwrap_or(0) >= self.max_per_address {
                Some(Refused::PerAddress)
            } else {
                None
            };
            if let Some(r) = refused {
                drop(st);
                let limit = if r == Refused::Global { "global" } else { "per-address" };
                metrics::counter!("tenantgate_wire_startups_refused_total", "limit" => limit).increment(1);
                return Err(r);
            }
            st.total += 1;
            *st.by_address.entry(ip).or_insert(0) += 1;
            st.total
        };
        metrics::gauge!("tenantgate_wire_startups").set(total as f64);
        Ok(StartupSlot { owner: self.clone(), ip })
    }

    /// Connections in startup now.
    pub fn in_progress(&self) -> usize {
        lock(&self.state).total
    }
}

impl Drop for StartupSlot {
    fn drop(&mut self) {
        let total = {
            let mut st = lock(&self.owner.state);
            st.total = st.total.saturating_sub(1);
            if let Some(n) = st.by_address.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    st.by_address.remove(&self.ip);
                }
            }
            st.total
        };
        metrics::gauge!("tenantgate_wire_startups").set(total as f64);
    }
}

/// Names and help of these metrics.
pub fn describe_metrics() {
    metrics::describe_gauge!("tenantgate_wire_startups", "Wire connections still in startup or authentication");
    metrics::describe_counter!(
        "tenantgate_wire_startups_refused_total",
        "Wire connections refused because too many were still starting up, by limit (global, per-address)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_address_and_overall() {
        let s = Startups::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = s.enter(a).unwrap();
        let _a2 = s.enter(a).unwrap();
        assert_eq!(s.enter(a).err(), Some(Refused::PerAddress));
        let _b1 = s.enter(b).unwrap();
        assert_eq!(s.enter(b).err(), Some(Refused::Global));
        drop(a1);
        assert_eq!(s.in_progress(), 2);
        let _a3 = s.enter(a).unwrap();
    }
}
