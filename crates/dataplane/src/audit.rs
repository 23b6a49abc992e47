//! Audit of the data plane: every connection attempt (tenant, key id, client address,
//! outcome) and every denied statement (tenant, key id, statement fingerprint, rule) go to
//! `tg.audit_events`; key use updates `tg.api_keys.last_used_at` at most once a minute per key.
//!
//! Owns the queue and the background writer. Sessions never wait on the catalog: events go
//! through a bounded channel and are dropped (with a warning) if the writer falls behind.
//! Each event is also counted for `/metrics` (`tenantgate_wire_*_total`), labelled only by its
//! outcome, rule or reason, all fixed sets.
//! It must never record a secret, a statement's text or a parameter value: only fingerprints,
//! rule ids, key ids and addresses; and it must never put a tenant, key or address in a
//! metric label.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::router::Router;

const QUEUE: usize = 4096;
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// One audit event.
#[derive(Debug, Clone)]
pub enum AuditEvent {
    Connection {
        /// Tenant key, when the tenant exists.
        tenant: Option<String>,
        /// The user name the client gave (a tenant slug, or whatever it sent; truncated).
        user: String,
        key_id: Option<String>,
        client: Option<SocketAddr>,
        /// `ok`, `auth-failed`, `suspended`, `refused`, `backend-error`, …
        outcome: &'static str,
    },
    Denied {
        tenant: String,
        key_id: String,
        /// `tg_gate::fingerprint` of the statement; never its text.
        fingerprint: String,
        rule: &'static str,
    },
    Ended {
        tenant: String,
        key_id: String,
        reason: &'static str,
    },
    KeyUsed {
        key_id: String,
    },
}

/// Handle for sessions. Cheap to clone; never blocks.
#[derive(Clone)]
pub struct Auditor {
    tx: mpsc::Sender<AuditEvent>,
}

impl Auditor {
    /// Start the background writer, which writes through the router's catalog connection.
    pub fn start(router: Router) -> Auditor {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(router, rx));
        Auditor { tx }
    }

    /// An auditor that drops everything (for tests of other modules).
    pub fn disabled() -> Auditor {
        let (tx, _) = mpsc::channel(1);
        Auditor { tx }
    }

    pub fn record(&self, e: AuditEvent) {
        count(&e);
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(e) {
            tracing::warn!("audit queue full; an audit event was dropped");
        }
    }
}

/// Names and help of the wire gateway's counters, for the exporter's `# HELP` lines.
pub fn describe_metrics() {
    metrics::describe_counter!("tenantgate_wire_connections_total", "Wire-protocol connection attempts, by outcome (ok, auth-failed, suspended, …)");
    metrics::describe_counter!("tenantgate_wire_denials_total", "Statements the SQL gate refused on the wire protocol, by rule");
    metrics::describe_counter!("tenantgate_wire_sessions_ended_total", "Open wire sessions ended from outside, by reason (key-revoked, suspended, moved, gone)");
}

/// Counts an event for `/metrics`; without an installed recorder this does nothing.
fn count(e: &AuditEvent) {
    match e {
        AuditEvent::Connection { outcome, .. } => metrics::counter!("tenantgate_wire_connections_total", "outcome" => *outcome).increment(1),
        AuditEvent::Denied { rule, .. } => metrics::counter!("tenantgate_wire_denials_total", "rule" => *rule).increment(1),
        AuditEvent::Ended { reason, .. } => metrics::counter!("tenantgate_wire_sessions_ended_total", "reason" => *reason).increment(1),
        AuditEvent::KeyUsed { .. } => {}
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

async fn writer(router: Router, mut rx: mpsc::Receiver<AuditEvent>) {
    let mut touched: HashMap<String, Instant> = HashMap::new();
    while let Some(e) = rx.recv().await {
        let (action, tenant, detail) = match e {
            AuditEvent::KeyUsed { key_id } => {
                if touched.get(&key_id).is_some_and(|t| t.elapsed() < TOUCH_EVERY) {
                    continue;
                }
                touched.insert(key_id.clone(), Instant::now());
                if touched.len() > 100_000 {
                    touched.retain(|_, t| t.elapsed() < TOUCH_EVERY);
                }
                if let Ok(cat) = router.catalog().await {
                    if let Err(err) = cat.touch_key(&key_id).await {
                        tracing::warn!("recording key use: {err}");
                    }
                }
                continue;
            }
            AuditEvent::Connection { tenant, user, key_id, client, outcome } => (
                "gateway.connect",
                tenant,
                serde_json::json!({
                    "user": truncate(&user, 64),
                    "key_id": key_id,
                    "client": client.map(|c| c.to_string()),
                    "outcome": outcome,
                }),
            ),
            AuditEvent::Denied { tenant, key_id, fingerprint, rule } => (
                "gateway.deny",
                Some(tenant),
                serde_json::json!({"key_id": key_id, "fingerprint": fingerprint, "rule": rule}),
            ),
            AuditEvent::Ended { tenant, key_id, reason } => {
                ("gateway.terminate", Some(tenant), serde_json::json!({"key_id": key_id, "reason": reason}))
            }
        };
        let result = match router.catalog().await {
            Ok(cat) => cat.audit_as("gateway", action, tenant.as_deref(), detail).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            tracing::warn!("writing an audit event ({action}) failed: {e}");
        }
    }
}
