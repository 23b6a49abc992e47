//! The forwarding rules of one authenticated session, without I/O: which client messages go
//! to the backend (every SQL-carrying one through the gate), what is sent in a denied
//! statement's place, and which backend error is swapped for the gate's 42501 on the way back.
//!
//! Both forwarding loops run these rules: the session's own tokio task (TLS clients) and the
//! [`crate::relay`] threads (plain TCP clients), so a statement is judged the same way
//! whichever loop carries it.
//!
//! How a denial keeps PostgreSQL's semantics: a denied Query, Parse or FunctionCall is
//! replaced by a message that makes the backend itself fail at the same point with a unique
//! marker (`tenantgate_denied_…`, a syntax error). The backend then does what PostgreSQL does
//! after any error (aborts the transaction block, skips extended-protocol messages until Sync,
//! sends ReadyForQuery with the right status), and the marker's ErrorResponse is replaced by
//! the gate's 42501 on the way back. Ordering stays exact under pipelining.
//!
//! Quotas (`tg_dataplane::quota`) hook in at the same two points: a statement is let out
//! only with a place among the tenant's concurrent statements (and a rate token), taken
//! without waiting (a refusal goes the denial-marker way, 53400), and freed at the
//! ReadyForQuery that answers every sync point sent; rows and bytes of a result are counted
//! on the way back, and past the tenant's limit the rest are dropped, the statement is
//! cancelled on its backend ([`Flow::take_cancel`]: the loop sends the CancelRequest and waits
//! for it to be delivered before it reads on), and the command's completion, or the cancel's
//! 57014, becomes a 54000 error. The backend answers up to its ReadyForQuery as after any
//! error and stays usable.
//!
//! In transaction mode (`Flow::transaction_mode`) the flow also carries the client's named
//! statements from backend to backend ([`super::statements`]) and says when the backend may
//! go back to its lane ([`Flow::releasable`]).
//!
//! Owns the session's denial bookkeeping (sync points sent, ReadyForQuery seen, markers
//! pending). It never does I/O, never blocks, never lets a refused message through, and
//! never records SQL text (only its fingerprint, in the audit).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tg_dataplane::quota::{Permit, QuotaDenial, TenantQuota};
use tg_dataplane::usage::{Limit, TenantStats};
use tg_gate::{Denial, Scope, Verdict};

use super::error::Fatal;
use crate::backend::CancelTarget;
use super::idle::Activity;
use super::statements::{Step, Txn};
use super::Shared;
use crate::audit::AuditEvent;
use crate::net::codec::{self, decode_frame, FrameLimits};
use crate::net::messages::{self, error_fields, Severity};
use crate::net::FLUSH_AT;
use crate::relay::{Forwarder, FromClient};

/// A gate denial waiting for its marker error to come back from the backend.
struct PendingDenial {
    marker: String,
    /// ReadyForQuery number by which the marker's error must have arrived.
    by_sync: u64,
    denial: Denial,
}

/// What changes as messages pass.
#[derive(Default)]
struct State {
    /// Sync points sent to the backend (Query, Sync, FunctionCall).
    syncs_sent: u64,
    /// ReadyForQuery messages received.
    ready_seen: u64,
    pending: VecDeque<PendingDenial>,
    marker_seq: u64,
    /// Transaction mode's statement bookkeeping; `None` in session mode.
    txn: Option<Txn>,
    /// The tenant's quota place, held from a statement's first message until every sync
    /// point is answered.
    permit: Option<Permit>,
    /// Rows and bytes of the statement being answered.
    rows: u64,
    bytes: u64,
    /// The quota the answer ran over; its remaining rows are dropped.
    cut: Option<Limit>,
    /// `max_rows` and `max_bytes` as they were when the statement was let out (0 = none).
    result_limits: (u64, u64),
    /// Where a CancelRequest reaches the backend now.
    cancel_target: Option<CancelTarget>,
    /// A cut result's statement must be cancelled ([`Flow::take_cancel`]).
    cancel_due: bool,
    /// A ReadyForQuery held back until the client's settings are restored.
    deferred_ready: Option<Vec<u8>>,
}

/// One session's forwarding rules and bookkeeping.
///
/// The state sits behind a mutex because the tokio loop runs its two directions as two
/// futures of one task; neither holds the lock across an await, so it is never contended.
/// The relay owns the flow outright and reaches the state without locking.
pub struct Flow {
    rules: Rules,
    state: Mutex<State>,
}

/// What does not change during a session.
struct Rules {
    shared: Arc<Shared>,
    tenant: String,
    key_id: String,
    scope: Scope,
    limits: tg_gate::Limits,
    frame_limits: FrameLimits,
    marker_tag: String,
    quota: Arc<TenantQuota>,
    /// The idle clock the session task's `client_idle_timeout_ms` timer reads.
    activity: Arc<Activity>,
}

impl Flow {
    /// `slug` names the tenant for its quotas and usage.
    pub fn new(shared: Arc<Shared>, tenant: String, key_id: String, scope: Scope, limits: tg_gate::Limits, slug: &str) -> Flow {
        let mut nonce = [0u8; 4];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
        let frame_limits = FrameLimits { max_message: shared.cfg.max_message_bytes, max_copy: shared.cfg.max_copy_message_bytes };
        let marker_tag = format!("tenantgate_denied_{:08x}", u32::from_be_bytes(nonce));
        let quota = shared.quotas.tenant(slug);
        // A wire session holds its backend for its whole life (session pooling).
        quota.stats.clients.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        quota.stats.backends.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Flow {
            rules: Rules { shared, tenant, key_id, scope, limits, frame_limits, marker_tag, quota, activity: Arc::default() },
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session's idle clock (see [`super::idle`]).
    pub fn activity(&self) -> Arc<Activity> {
        Arc::clone(&self.rules.activity)
    }

    /// Cancel through `target` the statements whose result the tenant's quota cuts.
    pub fn cancels(self, target: Option<CancelTarget>) -> Flow {
        self.lock().cancel_target = target;
        self
    }

    /// A result was just cut by the tenant's quota: the backend to send a CancelRequest to.
    /// The caller sends it and waits until it is delivered (the server closes the cancel
    /// connection) before reading on, so the cancel cannot reach a later statement: one that
    /// lands after the statement ended finds the backend idle, where PostgreSQL ignores it.
    pub fn take_cancel(&self) -> Option<CancelTarget> {
        let mut st = self.lock();
        if !std::mem::take(&mut st.cancel_due) {
            return None;
        }
        st.cancel_target.clone()
    }

    /// Has every sync point sent to the backend been answered with ReadyForQuery?
    pub fn answered(&self) -> bool {
        let st = self.lock();
        st.syncs_sent == st.ready_seen
    }

    /// Take whole frames from `input`, gate them and append what goes to the backend to
    /// `out`. Stops when no whole frame is left, when `out` reaches [`FLUSH_AT`], at a
    /// Terminate (what came before it is in `out`) or at a protocol error.
    pub fn client_frames(&self, input: &mut BytesMut, out: &mut BytesMut) -> FromClient<Fatal> {
        let mut st = self.lock();
        self.rules.client_frames(&mut st, input, out)
    }

    /// Handle one whole backend message (tag, length, body): append what goes to the client
    /// to `out`.
    pub fn backend_message(&self, m: &[u8], out: &mut BytesMut) {
        let mut st = self.lock();
        self.rules.backend_message(&mut st, m, out)
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        let s = &self.rules.quota.stats;
        s.clients.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        s.backends.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Rules {
    /// The tenant's quota for a statement's message: a rate token for each execution (Query,
    /// Bind, FunctionCall), a place for the first message while none is held.
    fn admit(&self, st: &mut State, executes: bool) -> Result<(), QuotaDenial> {
        let l = self.quota.limits();
        st.result_limits = (l.max_rows, l.max_bytes);
        if executes {
            self.quota.try_token(&l)?;
        }
        if st.permit.is_none() {
            st.permit = Some(self.quota.try_start(&l)?);
        }
        Ok(())
    }

    /// Send a refused statement's marker in its place (as [`Rules::deny`], without an audit row:
    /// quota refusals are counted, not audited one by one).
    fn refuse(&self, st: &mut State, d: QuotaDenial, by_sync: u64) -> String {
        let n = st.marker_seq;
        st.marker_seq += 1;
        let marker = format!("{}_{n}", self.marker_tag);
        let denial = Denial { rule: d.rule(), sqlstate: d.sqlstate, message: d.message };
        st.pending.push_back(PendingDenial { marker: marker.clone(), by_sync, denial });
        marker
    }

    fn client_frames(&self, st: &mut State, input: &mut BytesMut, out: &mut BytesMut) -> FromClient<Fatal> {
        let gate = &self.shared.gate;
        if !input.is_empty() {
            self.activity.client();
        }
        loop {
            let frame = match decode_frame(input, &self.frame_limits) {
                Ok(Some(f)) => f,
                Ok(None) => return FromClient::Drained,
                Err(e) => return FromClient::Fault(e.into()),
            };
            if let Some(t) = st.txn.as_mut() {
                t.note_client(frame.tag);
            }
            match frame.tag {
                b'X' => return FromClient::Terminate,
                b'Q' => {
                    let sql = match codec::parse_query(frame.body()) {
                        Ok(s) => s,
                        Err(e) => return FromClient::Fault(e.into()),
                    };
                    let sync = st.syncs_sent + 1;
                    if let Err(d) = self.admit(st, true) {
                        let marker = self.refuse(st, d, sync);
                        messages::query(out, &marker);
                        st.syncs_sent = sync;
                        continue;
                    }
                    match gate.check(&self.tenant, sql, self.scope, &self.limits) {
                        Ok(Verdict { rewritten: Some(text), .. }) => messages::query(out, &text),
                        Ok(_) => out.extend_from_slice(&frame.raw),
                        Err(d) => {
                            let marker = self.deny(st, Some(sql), d, sync);
                            messages::query(out, &marker);
                        }
                    }
                    st.syncs_sent = sync;
                }
                b'P' => {
                    let p = match codec::parse_parse(frame.body()) {
                        Ok(p) => p,
                        Err(e) => return FromClient::Fault(e.into()),
                    };
                    let sync = st.syncs_sent + 1;
                    if let Err(d) = self.admit(st, false) {
                        // Unnamed: a client's statement name never needs to reach the backend.
                        let marker = self.refuse(st, d, sync);
                        messages::parse(out, "", &marker);
                        continue;
                    }
                    match (gate.check(&self.tenant, p.query, self.scope, &self.limits), st.txn.as_mut()) {
                        // Transaction mode: a named statement is prepared under its server name.
                        (Ok(v), Some(t)) if !p.name.is_empty() => {
                            let text = v.rewritten.as_deref().unwrap_or(p.query);
                            if let Step::Refuse(d) = t.parse(p.name, text, p.param_types, sync, out) {
                                let marker = self.mark(st, d, sync);
                                messages::parse(out, "", &marker);
                            }
                        }
                        (Ok(Verdict { rewritten: Some(text), .. }), _) => messages::parse_with_types(out, p.name, &text, p.param_types),
                        (Ok(_), _) => out.extend_from_slice(&frame.raw),
                        (Err(d), txn) => {
                            // A client's statement name never reaches a shared backend.
                            let name = if txn.is_some() { "" } else { p.name };
                            let marker = self.deny(st, Some(p.query), d, sync);
                            messages::parse(out, name, &marker);
                        }
                    }
                }
                b'F' => {
                    let sync = st.syncs_sent + 1;
                    if let Err(d) = self.admit(st, true) {
                        let marker = self.refuse(st, d, sync);
                        messages::query(out, &marker);
                        st.syncs_sent = sync;
                        continue;
                    }
                    if gate.config().enabled {
                        let d = Denial {
                            rule: "fastpath",
                            sqlstate: "42501",
                            message: "tenantgate: function calls over the fast-path protocol are not allowed (rule fastpath): \
                                      they bypass statement checks; call the function in a SELECT"
                                .into(),
                        };
                        let marker = self.deny(st, None, d, sync);
                        messages::query(out, &marker);
                    } else {
                        out.extend_from_slice(&frame.raw);
                    }
                    st.syncs_sent = sync;
                }
                b'S' => {
                    out.extend_from_slice(&frame.raw);
                    st.syncs_sent += 1;
                }
                b'B' => match self.admit(st, true) {
                    Ok(()) => {
                        if let Err(e) = self.statement_message(st, &frame, out) {
                            return FromClient::Fault(e.into());
                        }
                    }
                    Err(d) => {
                        // An unnamed Parse that fails makes the backend skip to the Sync,
                        // this Bind and its Execute included.
                        let marker = self.refuse(st, d, st.syncs_sent + 1);
                        messages::parse(out, "", &marker);
                    }
                },
                b'D' | b'C' => {
                    if let Err(e) = self.statement_message(st, &frame, out) {
                        return FromClient::Fault(e.into());
                    }
                }
                b'E' | b'H' | b'd' | b'c' | b'f' => out.extend_from_slice(&frame.raw),
                other => {
                    return FromClient::Fault(Fatal::new(
                        "08P01",
                        format!("invalid frontend message type {:?} ({other})", other as char),
                    ))
                }
            }
            if out.len() >= FLUSH_AT {
                return FromClient::Full;
            }
        }
    }

    fn backend_message(&self, st: &mut State, m: &[u8], out: &mut BytesMut) {
        if let Some(t) = st.txn.as_mut() {
            if !t.on_backend(m, st.ready_seen + 1) {
                return;
            }
        }
        match m[0] {
            b'D' => {
                st.rows += 1;
                st.bytes += m.len() as u64;
                if st.cut.is_none() {
                    let (max_rows, max_bytes) = st.result_limits;
                    if max_rows > 0 && st.rows > max_rows {
                        st.cut = Some(Limit::MaxRows);
                    } else if max_bytes > 0 && st.bytes > max_bytes {
                        st.cut = Some(Limit::MaxBytes);
                    }
                    // The rest would only be read and dropped: stop the statement.
                    st.cancel_due = st.cut.is_some();
                }
                if st.cut.is_none() {
                    out.extend_from_slice(m);
                }
            }
            // The end of one statement's answer (CommandComplete, PortalSuspended, EmptyQuery).
            b'C' | b's' | b'I' => {
                self.end_statement(st, false);
                st.cancel_due = false;
                match st.cut.take() {
                    Some(limit) => self.cut_error(st, limit, out),
                    None => out.extend_from_slice(m),
                }
            }
            b'E' => {
                let mut denied = false;
                if !st.pending.is_empty() {
                    let fields = error_fields(m.get(5..).unwrap_or(&[]));
                    let hit = st.pending.iter().position(|p| fields.message.contains(&format!("\"{}\"", p.marker)));
                    if let Some(p) = hit.and_then(|i| st.pending.remove(i)) {
                        messages::error_response(out, Severity::Error, p.denial.sqlstate, &p.denial.message, None);
                        denied = true;
                    }
                }
                st.cancel_due = false;
                if !denied {
                    match st.cut.take() {
                        // The cut statement cancelled (57014): the quota's error in its place.
                        Some(limit) if error_fields(m.get(5..).unwrap_or(&[])).code == "57014" => {
                            self.end_statement(st, false);
                            self.cut_error(st, limit, out);
                        }
                        _ => {
                            self.end_statement(st, true);
                            out.extend_from_slice(m);
                        }
                    }
                }
                st.cut = None;
            }
            b'Z' => {
                st.ready_seen += 1;
                if !st.pending.is_empty() {
                    let n = st.ready_seen;
                    st.pending.retain(|p| p.by_sync > n);
                }
                if st.ready_seen >= st.syncs_sent {
                    // Every sync point answered: the place goes back (its time is counted).
                    st.permit = None;
                }
                self.activity.ready(st.ready_seen >= st.syncs_sent && m.get(5) == Some(&b'I'));
                // Transaction mode, after the client's RESET or DISCARD ALL, at the
                // ReadyForQuery that frees the backend: held back until the client's settings
                // are restored ([`Flow::take_deferred_ready`]), so the client is ready only
                // once they are, as it would be on its own session.
                let (sent, seen) = (st.syncs_sent, st.ready_seen);
                if st.txn.as_ref().is_some_and(|t| t.reset_pending() && t.releasable(sent, seen)) {
                    st.deferred_ready = Some(m.to_vec());
                } else {
                    out.extend_from_slice(m);
                }
            }
            _ => out.extend_from_slice(m),
        }
    }

    /// The error that ends a result cut at `limit` (counted as a cut).
    fn cut_error(&self, st: &State, limit: Limit, out: &mut BytesMut) {
        self.quota.count_cut(limit);
        let value = if limit == Limit::MaxRows { st.result_limits.0 } else { st.result_limits.1 };
        let d = QuotaDenial::too_large(limit, value);
        messages::error_response(out, Severity::Error, d.sqlstate, &d.message, None);
    }

    /// Count a finished statement's rows and bytes (as many as the client got).
    fn end_statement(&self, st: &mut State, failed: bool) {
        let s = &self.quota.stats;
        TenantStats::add(&s.statements, 1);
        if failed {
            TenantStats::add(&s.errors, 1);
        }
        // As many as the client got.
        let cap = |n: u64, max: u64| if max > 0 { n.min(max) } else { n };
        TenantStats::add(&s.rows, cap(st.rows, st.result_limits.0));
        TenantStats::add(&s.bytes, cap(st.bytes, st.result_limits.1));
        st.rows = 0;
        st.bytes = 0;
    }

    /// A Bind, Describe or Close: as it came, or, in transaction mode, naming the server's
    /// statement (prepared first on this backend if need be).
    fn statement_message(&self, st: &mut State, frame: &codec::Frame, out: &mut BytesMut) -> Result<(), codec::FrameError> {
        let batch = st.syncs_sent + 1;
        let step = match st.txn.as_mut() {
            None => Step::Raw,
            Some(t) => match frame.tag {
                b'B' => t.bind(frame.body(), batch, out)?,
                b'D' => t.describe(frame.body(), batch, out)?,
                _ => t.close(frame.body(), out)?,
            },
        };
        match step {
            Step::Raw => out.extend_from_slice(&frame.raw),
            Step::Wrote => {}
            // An unnamed Parse that fails makes the backend skip to the Sync, as the refused
            // message would have.
            Step::Refuse(d) => {
                let marker = self.mark(st, d, batch);
                messages::parse(out, "", &marker);
            }
        }
        Ok(())
    }

    /// Send a marker in a refused message's place, without an audit row (PostgreSQL's own
    /// errors about statement names, which the gateway answers in transaction mode).
    fn mark(&self, st: &mut State, denial: Denial, by_sync: u64) -> String {
        let n = st.marker_seq;
        st.marker_seq += 1;
        let marker = format!("{}_{n}", self.marker_tag);
        st.pending.push_back(PendingDenial { marker: marker.clone(), by_sync, denial });
        marker
    }

    /// Record a denial and return the marker to send in the statement's place.
    fn deny(&self, st: &mut State, sql: Option<&str>, denial: Denial, by_sync: u64) -> String {
        let n = st.marker_seq;
        st.marker_seq += 1;
        let marker = format!("{}_{n}", self.marker_tag);
        TenantStats::add(&self.quota.stats.denials, 1);
        self.shared.auditor.record(AuditEvent::Denied {
            tenant: self.tenant.clone(),
            key_id: self.key_id.clone(),
            fingerprint: sql.map(tg_gate::fingerprint).unwrap_or_else(|| "fastpath".into()),
            rule: denial.rule,
        });
        st.pending.push_back(PendingDenial { marker: marker.clone(), by_sync, denial });
        marker
    }
}

/// Transaction mode (`frontend::transaction`; never on the relay).
impl Flow {
    /// Carry named statements across backends and track when the backend may go back.
    pub fn transaction_mode(self) -> Flow {
        self.lock().txn = Some(Txn::new());
        self
    }

    /// May the backend go back to its lane now (idle, nothing outstanding, nothing sent since
    /// the last answered sync point)? Always `false` in session mode.
    pub fn releasable(&self) -> bool {
        let st = self.lock();
        st.txn.as_ref().is_some_and(|t| t.releasable(st.syncs_sent, st.ready_seen))
    }

    /// A backend was lent with these server-side statements; `cancel` reaches it.
    pub fn lend(&self, prepared: std::collections::HashSet<Arc<str>>, cancel: Option<CancelTarget>) {
        let mut st = self.lock();
        st.cancel_target = cancel;
        if let Some(t) = st.txn.as_mut() {
            t.lend(prepared);
        }
    }

    /// Did a `RESET` or `DISCARD ALL` complete on the backend since the last call (the
    /// client's settings must be restored on it)?
    pub fn take_reset(&self) -> bool {
        self.lock().txn.as_mut().is_some_and(Txn::take_reset)
    }

    /// The ReadyForQuery held back after a reset: the caller sends it once the client's
    /// settings are restored, or at once if the backend is not going back after all.
    pub fn take_deferred_ready(&self) -> Option<Vec<u8>> {
        self.lock().deferred_ready.take()
    }

    /// The backend goes back: its server-side statements, to keep with it.
    pub fn give_back(&self) -> std::collections::HashSet<Arc<str>> {
        self.lock().txn.as_mut().map(Txn::give_back).unwrap_or_default()
    }
}

/// The relay owns the flow, so it reaches the state without locking.
impl Forwarder for Flow {
    type Fault = Fatal;

    fn on_client(&mut self, input: &mut BytesMut, to_backend: &mut BytesMut) -> FromClient<Fatal> {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        self.rules.client_frames(st, input, to_backend)
    }

    fn on_backend(&mut self, m: &[u8], to_client: &mut BytesMut) {
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        self.rules.backend_message(st, m, to_client);
        if st.cancel_due {
            st.cancel_due = false;
            // The relay thread has no runtime to wait on: the cancel is sent from here, and
            // the thread reads on only once it is delivered (a local round trip, rare).
            if let Some(t) = &st.cancel_target {
                cancel_blocking(t);
            }
        }
    }
}

/// Send a CancelRequest to `t` and wait for the server to close the connection (the cancel
/// is then delivered), within a second for each step. Best effort, like PostgreSQL's own.
fn cancel_blocking(t: &CancelTarget) {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    const STEP: std::time::Duration = std::time::Duration::from_secs(1);
    let mut packet = BytesMut::with_capacity(16);
    postgres_protocol::message::frontend::cancel_request(t.pid as i32, t.secret as i32, &mut packet);
    let addrs = match (t.host.as_str(), t.port).to_socket_addrs() {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!("cancelling a cut statement: {e}");
            return;
        }
    };
    for addr in addrs {
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, STEP) else { continue };
        let _ = s.set_read_timeout(Some(STEP));
        let _ = s.set_write_timeout(Some(STEP));
        if s.write_all(&packet).is_ok() {
            let mut sink = [0u8; 16];
            let _ = s.read(&mut sink);
        }
        return;
    }
    tracing::debug!("cancelling a cut statement: no address of {}:{} answered", t.host, t.port);
}
