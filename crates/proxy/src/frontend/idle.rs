//! The client idle timeout (`client_idle_timeout_ms`, per tenant): a wire client that has sent
//! nothing for that long while outside a transaction is ended with FATAL 57P05, as
//! PostgreSQL's own `idle_session_timeout` would, and its backend goes back to the pool.
//! Without it an idle client holds a backend (session mode) or a place in the gateway for
//! ever.
//!
//! Owns a session's idle clock: [`Activity`] is stamped by the [`super::flow::Flow`] on
//! whichever thread forwards (a relay thread or the session task) and read by the session
//! task's timer ([`expired`]). It never ends a session in a transaction or with a statement
//! outstanding, and costs the forwarding path a clock read and two relaxed atomic stores per batch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::error::Fatal;

/// When the client last did something, and whether the session is quiet since: every sync
/// point answered and no transaction open.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    /// Milliseconds after `epoch` of the last client bytes or the ReadyForQuery that made
    /// the session quiet.
    last_ms: AtomicU64,
    quiet: AtomicBool,
}

impl Default for Activity {
    fn default() -> Self {
        // A session starts quiet: it was just welcomed with ReadyForQuery 'I'.
        Activity { epoch: Instant::now(), last_ms: AtomicU64::new(0), quiet: AtomicBool::new(true) }
    }
}

impl Activity {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The client sent bytes: the session is busy until the backend says otherwise.
    pub fn client(&self) {
        self.quiet.store(false, Ordering::Relaxed);
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A ReadyForQuery went to the client; `quiet` if it answered every sync point sent and
    /// no transaction is open.
    pub fn ready(&self, quiet: bool) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
        self.quiet.store(quiet, Ordering::Relaxed);
    }

    /// How long the session has been quiet, if it is.
    fn quiet_for(&self) -> Option<Duration> {
        if !self.quiet.load(Ordering::Relaxed) {
            return None;
        }
        let since = self.last_ms.load(Ordering::Relaxed);
        Some(Duration::from_millis(self.now_ms().saturating_sub(since)))
    }
}

/// Resolves once the session has been quiet for `timeout`; never when `timeout` is `None`.
pub async fn expired(activity: &Activity, timeout: Option<Duration>) {
    let Some(timeout) = timeout else { return std::future::pending().await };
    loop {
        match activity.quiet_for() {
            Some(d) if d >= timeout => return,
            Some(d) => tokio::time::sleep(timeout - d).await,
            None => tokio::time::sleep(timeout).await,
        }
    }
}

/// Resolves `timeout` after `since`; never when `timeout` is `None`. For a session task that
/// reads the client itself (transaction mode between transactions) and so keeps its own clock.
pub async fn after(since: tokio::time::Instant, timeout: Option<Duration>) {
    match timeout {
        Some(t) => tokio::time::sleep_until(since + t).await,
        None => std::future::pending().await,
    }
}

/// `client_idle_timeout_ms` as a timeout (0 = none).
pub fn timeout(ms: u64) -> Option<Duration> {
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// What an idle client is told as its session ends.
pub fn fatal(timeout: Duration) -> Fatal {
    Fatal::new(
        "57P05",
        format!(
            "terminating connection due to idle-session timeout: the client sent nothing for {} ms outside a transaction (the tenant's client_idle_timeout_ms); reconnect when needed",
            timeout.as_millis()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_quiet_session_expires_and_a_busy_one_does_not() {
        let a = Activity::default();
        let t = Some(Duration::from_millis(50));
        // Busy (a statement outstanding): never expires.
        a.client();
        assert!(tokio::time::timeout(Duration::from_millis(300), expired(&a, t)).await.is_err());
        // Quiet since now: expires once the timeout has passed, not before.
        a.ready(true);
        let since = Instant::now();
        assert!(tokio::time::timeout(Duration::from_secs(5), expired(&a, t)).await.is_ok());
        assert!(since.elapsed() >= Duration::from_millis(45), "expired after {:?}", since.elapsed());
        // No timeout configured: never.
        assert!(tokio::time::timeout(Duration::from_millis(200), expired(&a, None)).await.is_err());
        // In a transaction (ReadyForQuery 'T'): not quiet.
        a.ready(false);
        assert!(tokio::time::timeout(Duration::from_millis(300), expired(&a, t)).await.is_err());
    }
}
