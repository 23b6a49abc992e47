//! Audit of the data plane: every connection attempt (tenant, key id, client address,
//! outcome) and every denied statement (tenant, key id, statement fingerprint, rule) go to
//! `tg.audit_events`; key use updates `tg.api_keys.last_used_at` at most once a minute per key.
//!
//! Owns the queue, the batched background writer and the retention pruner. Sessions never
//! wait on the catalog: [`Auditor::record`] puts the event in a bounded queue
//! (`gateway.audit_buffer`) and returns. The writer takes up to [`BATCH`] events at a time and
//! writes them in one statement on a catalog connection of its own (never the router's, so a
//! slow or locked audit table cannot hold up route lookups), within a timeout. While the
//! catalog cannot be written, it keeps the batch and retries with backoff; events that do not
//! fit in the queue meanwhile are dropped and counted (`tenantgate_audit_dropped_total`, with
//! a warning at most every 10 s), never silently. The pruner deletes the gateway's rows older
//! than `gateway.audit_retention_days`, at start and hourly, in batches (a failed round is
//! retried after 5 s, doubling up to the hour).
//!
//! Each event is also counted for `/metrics` (`tenantgate_wire_*_total`), labelled only by its
//! outcome, rule or reason, all fixed sets.
//! It must never record a secret, a statement's text or a parameter value: only fingerprints,
//! rule ids, key ids and addresses; and it must never put a tenant, key or address in a
//! metric label. Only `tg-catalog` speaks SQL to the catalog; this module calls its methods.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tg_catalog::catalog::Catalog;
use tokio::sync::mpsc;

/// Most events written in one statement.
pub const BATCH: usize = 500;
const TOUCH_EVERY: Duration = Duration::from_secs(60);
const WARN_EVERY: Duration = Duration::from_secs(10);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const PRUNE_RETRY_FIRST: Duration = Duration::from_secs(5);
const PRUNE_BATCH: i64 = 10_000;
const PRUNE_STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The actor of the gateway's rows in `tg.audit_events` (the only rows its retention prunes).
pub const ACTOR: &str = "gateway";

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

/// Where and how the audit writer works (from `[gateway]`).
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The catalog database's URL (the writer opens its own connection).
    pub catalog_url: String,
    /// Events that may wait in memory.
    pub buffer: usize,
    /// Gateway rows older than this many days are pruned; 0 = never.
    pub retention_days: u32,
    /// A write (or connect) that takes longer is abandoned and retried.
    pub timeout: Duration,
}

struct Overflow {
    dropped: AtomicU64,
    warned: Mutex<Option<Instant>>,
}

/// Handle for sessions. Cheap to clone; never blocks.
#[derive(Clone)]
pub struct Auditor {
    tx: mpsc::Sender<AuditEvent>,
    overflow: Arc<Overflow>,
}

impl Auditor {
    /// Start the background writer and the retention pruner on the current runtime; both
    /// stop when the last clone of the auditor is dropped.
    pub fn start(opts: AuditOptions) -> Auditor {
        let (tx, rx) = mpsc::channel(opts.buffer.max(1));
        let opts = Arc::new(opts);
        tokio::spawn(writer(opts.clone(), rx, tx.downgrade()));
        if opts.retention_days > 0 {
            tokio::spawn(pruner(opts, tx.downgrade()));
        }
        Auditor { tx, overflow: Arc::new(Overflow { dropped: AtomicU64::new(0), warned: Mutex::new(None) }) }
    }

    /// An auditor that drops everything (for tests of other modules).
    pub fn disabled() -> Auditor {
        let (tx, _) = mpsc::channel(1);
        Auditor { tx, overflow: Arc::new(Overflow { dropped: AtomicU64::new(0), warned: Mutex::new(None) }) }
    }

    /// Queue `e` for the catalog; never waits. A full queue drops the event and counts it.
    pub fn record(&self, e: AuditEvent) {
        count(&e);
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(e) {
            metrics::counter!("tenantgate_audit_dropped_total").increment(1);
            let total = self.overflow.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let mut warned = self.overflow.warned.lock().unwrap_or_else(|p| p.into_inner());
            if warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                *warned = Some(Instant::now());
                tracing::warn!("audit queue full (gateway.audit_buffer): {total} audit events dropped so far; the catalog is not keeping up");
            }
        }
    }

    /// Events dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.overflow.dropped.load(Ordering::Relaxed)
    }
}

/// Names and help of the wire gateway's and the audit writer's metrics, for `# HELP` lines.
pub fn describe_metrics() {
    metrics::describe_counter!("tenantgate_wire_connections_total", "Wire-protocol connection attempts, by outcome (ok, auth-failed, suspended, …)");
    metrics::describe_counter!("tenantgate_wire_denials_total", "Statements the SQL gate refused on the wire protocol, by rule");
    metrics::describe_counter!("tenantgate_wire_sessions_ended_total", "Open wire sessions ended from outside, by reason (key-revoked, suspended, moved, gone)");
    metrics::describe_counter!("tenantgate_audit_dropped_total", "Audit events dropped because the queue (gateway.audit_buffer) was full");
    metrics::describe_counter!("tenantgate_audit_written_total", "Audit events written to the catalog");
    metrics::describe_gauge!("tenantgate_audit_pending", "Audit events waiting to be written to the catalog");
    metrics::describe_counter!("tenantgate_audit_pruned_total", "Gateway audit rows deleted by retention (gateway.audit_retention_days)");
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

/// One row of `tg.audit_events`: (action, tenant key, detail).
type Row = (&'static str, Option<String>, serde_json::Value);

fn row(e: AuditEvent) -> Option<Row> {
    Some(match e {
        AuditEvent::KeyUsed { .. } => return None,
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
        AuditEvent::Denied { tenant, key_id, fingerprint, rule } => {
            ("gateway.deny", Some(tenant), serde_json::json!({"key_id": key_id, "fingerprint": fingerprint, "rule": rule}))
        }
        AuditEvent::Ended { tenant, key_id, reason } => ("gateway.terminate", Some(tenant), serde_json::json!({"key_id": key_id, "reason": reason})),
    })
}

/// The writer's own catalog connection, reopened when lost.
struct Conn {
    opts: Arc<AuditOptions>,
    cat: Option<Catalog>,
}

impl Conn {
    async fn get(&mut self) -> Result<&Catalog, String> {
        if self.cat.as_ref().is_none_or(|c| c.is_closed()) {
            self.cat = None;
            let c = tokio::time::timeout(self.opts.timeout, Catalog::connect(&self.opts.catalog_url))
                .await
                .map_err(|_| format!("no answer within {} ms", self.opts.timeout.as_millis()))?
                .map_err(|e| e.to_string())?;
            // The server gives up first, so a write stuck behind a lock does not linger.
            c.set_statement_timeout(self.opts.timeout.as_millis() as u64).await.map_err(|e| e.to_string())?;
            self.cat = Some(c);
        }
        self.cat.as_ref().ok_or_else(|| "no catalog connection".to_string())
    }
}

async fn writer(opts: Arc<AuditOptions>, mut rx: mpsc::Receiver<AuditEvent>, tx: mpsc::WeakSender<AuditEvent>) {
    let mut conn = Conn { opts: opts.clone(), cat: None };
    let mut touched: HashMap<String, Instant> = HashMap::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let mut events = Vec::with_capacity(BATCH);
    let mut failing_since: Option<Instant> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        if rows.is_empty() && keys.is_empty() {
            if rx.recv_many(&mut events, BATCH).await == 0 {
                return; // every Auditor is gone
            }
            for e in events.drain(..) {
                if let AuditEvent::KeyUsed { key_id } = &e {
                    if touched.get(key_id).is_none_or(|t| t.elapsed() >= TOUCH_EVERY) {
                        touched.insert(key_id.clone(), Instant::now());
                        keys.push(key_id.clone());
                    }
                    continue;
                }
                rows.extend(row(e));
            }
            if touched.len() > 100_000 {
                touched.retain(|_, t| t.elapsed() < TOUCH_EVERY);
            }
        }
        if let Some(tx) = tx.upgrade() {
            metrics::gauge!("tenantgate_audit_pending").set((tx.max_capacity() - tx.capacity() + rows.len()) as f64);
        }
        match write(&mut conn, &rows, &keys).await {
            Ok(()) => {
                metrics::counter!("tenantgate_audit_written_total").increment(rows.len() as u64);
                rows.clear();
                keys.clear();
                backoff = Duration::from_millis(100);
                if let Some(since) = failing_since.take() {
                    tracing::warn!("audit events are written to the catalog again (after {:.1} s)", since.elapsed().as_secs_f64());
                }
            }
            Err(e) => {
                conn.cat = None;
                if failing_since.is_none() {
                    failing_since = Some(Instant::now());
                    tracing::warn!("writing audit events failed ({e}); keeping them (up to gateway.audit_buffer) and retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn write(conn: &mut Conn, rows: &[Row], keys: &[String]) -> Result<(), String> {
    let timeout = conn.opts.timeout;
    let cat = conn.get().await?;
    let work = async {
        if !rows.is_empty() {
            let batch: Vec<(&str, Option<&str>, serde_json::Value)> = rows.iter().map(|(a, t, d)| (*a, t.as_deref(), d.clone())).collect();
            cat.audit_batch(ACTOR, &batch).await.map_err(|e| e.to_string())?;
        }
        if !keys.is_empty() {
            let ids: Vec<&str> = keys.iter().map(String::as_str).collect();
            cat.touch_keys(&ids).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    let grace = timeout + Duration::from_secs(1);
    tokio::time::timeout(grace, work).await.map_err(|_| format!("no answer within {} ms", grace.as_millis()))?
}

/// Delete the gateway's audit rows past retention, at start and hourly, a batch at a time.
async fn pruner(opts: Arc<AuditOptions>, alive: mpsc::WeakSender<AuditEvent>) {
    let mut conn = Conn { opts: opts.clone(), cat: None };
    // After a failure the next try comes sooner than the next round: 5 s, doubling up to it.
    let mut retry = PRUNE_RETRY_FIRST;
    loop {
        if alive.upgrade().is_none() {
            return;
        }
        let mut total = 0u64;
        let result: Result<(), String> = async {
            loop {
                let cat = conn.get().await?;
                let n = tokio::time::timeout(PRUNE_STATEMENT_TIMEOUT, cat.prune_audit(ACTOR, opts.retention_days, PRUNE_BATCH))
                    .await
                    .map_err(|_| "a batch took longer than a minute".to_string())?
                    .map_err(|e| e.to_string())?;
                total += n;
                metrics::counter!("tenantgate_audit_pruned_total").increment(n);
                if n < PRUNE_BATCH as u64 {
                    return Ok(());
                }
            }
        }
        .await;
        let next = match result {
            Ok(()) => {
                if total > 0 {
                    tracing::info!("audit retention: deleted {total} gateway audit rows older than {} days", opts.retention_days);
                }
                retry = PRUNE_RETRY_FIRST;
                PRUNE_EVERY
            }
            Err(e) => {
                let next = retry;
                retry = (retry * 2).min(PRUNE_EVERY);
                tracing::warn!("audit retention: pruning failed ({e}); trying again in {} s", next.as_secs());
                next
            }
        };
        // One connection less while idle: the next round opens its own.
        conn.cat = None;
        tokio::time::sleep(next).await;
    }
}
