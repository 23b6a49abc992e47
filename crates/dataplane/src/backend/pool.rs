//! Per-tenant-role backend pools under a global connection budget per server.
//!
//! Owns which backend connections exist, who holds them and when they close:
//! - a pool is keyed by (server, database, role), so a connection belongs to exactly one
//!   tenant role for its whole life (DESIGN I2) and is reset with `DISCARD ALL` between clients;
//! - the exception: a backend the statement doors (HTTP, MCP) give back keeps the session
//!   settings they applied ([`Carried`]) and goes back unreset, so their next statement on it
//!   skips both the settings and the reset; a wire checkout ([`Door::Wire`]) that gets such a
//!   backend resets it first, so no wire client ever sees what a statement door left;
//! - each server has a budget of connections (idle + in use + connecting) over all tenants;
//!   when it is full, the longest-idle connection of another tenant is closed to make room;
//!   otherwise a checkout waits, up to a timeout, and then fails with 53300;
//! - fair shares: `pool_max_per_tenant` caps a tenant's connections on a server over both of
//!   its roles, and the last `server_reserve` places of a budget (at most a quarter of it) go
//!   only to tenants that hold no connection there yet, so a few busy tenants cannot take a
//!   whole server and a newcomer gets its first backend at once;
//! - waiters are served by tenant, not by arrival: a place that frees goes to the waiting
//!   tenant that holds the fewest connections on the server (then the earliest waiter), so
//!   waiting tenants take turns — round robin — and a tenant with none is served first; a
//!   newcomer that finds tenants with fewer connections waiting queues behind them;
//! - when the budget is full, an idle backend is closed to make room only if its tenant holds
//!   more connections on the server than the tenant that needs the room (so a busy tenant
//!   never takes a light tenant's last backend), those of tenants over their fair share (the
//!   budget over the tenants active on the server) first, the longest idle first;
//! - idle connections close after an idle timeout, so idle pools shrink to zero.
//!
//! It must never hand one tenant's connection to another, return a connection to a pool
//! without a successful reset (but a statement door's, tagged with what it carries), hand a
//! wire client a connection carrying a statement door's settings, or exceed a server's
//! budget by more than a connection being swapped for an evicted one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tg_catalog::keys::KeyScope;
use tokio::sync::Notify;

use super::conn::{BackendConn, BackendReader, BackendWriter, CancelTarget, ConnectParams, Parked, RawMessage, ReaderState};
use super::PoolError;
use crate::config::GatewayConfig;
use crate::router::Route;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    server: String,
    host: String,
    port: u16,
    database: String,
    role: String,
    /// The tenant key both of its roles share (for the per-tenant cap).
    tenant: String,
}

struct Idle {
    conn: BackendConn,
    slot: Slot,
    since: Instant,
    carried: Carried,
}

/// The session settings a backend carries beyond its startup values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Carried {
    /// None: fresh, or reset with `DISCARD ALL`.
    #[default]
    Nothing,
    /// The statement doors' settings (`crate::exchange`), with this `statement_timeout`.
    Statement { statement_timeout_ms: u64 },
}

/// Who checks a backend out, which decides what it may carry when handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// A wire session or a transaction-mode lane: gets a backend carrying nothing.
    Wire,
    /// A one-statement door (HTTP, MCP): takes a backend that carries the statement doors'
    /// settings as it is (preferred), or a reset one.
    Statement,
}

/// Take an idle backend from `list`, the newest one that suits `door` first.
fn pop_idle(list: &mut Vec<Idle>, door: Door) -> Option<Idle> {
    let wants = |i: &Idle| (i.carried == Carried::Nothing) == (door == Door::Wire);
    let at = list.iter().rposition(wants).or_else(|| list.len().checked_sub(1))?;
    Some(list.remove(at))
}

#[derive(Default)]
struct State {
    /// Open connections per server name (idle + in use + connecting).
    server_open: HashMap<String, usize>,
    /// Open connections per pool.
    pool_open: HashMap<PoolKey, usize>,
    /// Open connections per (server, tenant key), both roles together.
    tenant_open: HashMap<(String, String), usize>,
    idle: HashMap<PoolKey, Vec<Idle>>,
    /// Checkouts waiting for a new place, per server.
    waiting: HashMap<String, Vec<Waiting>>,
    /// The next waiter's ticket (tickets order waiters of equal standing by arrival).
    next_ticket: u64,
}

/// One checkout waiting for a place on a server's budget.
struct Waiting {
    ticket: u64,
    tenant: String,
}

impl State {
    fn tenant_open(&self, server: &str, tenant: &str) -> usize {
        // Keyed by owned strings; a lookup by borrowed pair needs an owned key.
        self.tenant_open.get(&(server.to_string(), tenant.to_string())).copied().unwrap_or(0)
    }

    /// The checkouts of other tenants that go before `tenant`'s on `server`, not counting
    /// those held back by their own `pool_max_per_tenant`. For a new place (`Ahead::NewPlace`):
    /// waiters whose tenant holds fewer connections there, or as many and came earlier than
    /// `ticket`. For `tenant`'s own idle backend (`Ahead::OwnIdle`): only those holding fewer,
    /// since only they may evict it (`take_idle_victim`); one holding as many could not use it.
    fn waiting_ahead(&self, server: &str, tenant: &str, ticket: Option<u64>, max_per_tenant: usize, what: Ahead) -> usize {
        let Some(list) = self.waiting.get(server) else { return 0 };
        let mine = (self.tenant_open(server, tenant), ticket.unwrap_or(u64::MAX));
        list.iter()
            .filter(|w| w.tenant != tenant)
            .filter(|w| {
                let open = self.tenant_open(server, &w.tenant);
                open < max_per_tenant
                    && match what {
                        Ahead::OwnIdle => open < mine.0,
                        Ahead::NewPlace => (open, w.ticket) < mine,
                    }
            })
            .count()
    }
}

/// What a checkout would take, for [`State::waiting_ahead`].
#[derive(Clone, Copy)]
enum Ahead {
    OwnIdle,
    NewPlace,
}

struct Inner {
    cfg: Arc<GatewayConfig>,
    state: Mutex<State>,
    notify: Notify,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Accounting for one open connection; closing it (drop) frees its place in the budget.
struct Slot {
    inner: Arc<Inner>,
    key: PoolKey,
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut st = lock(&self.inner.state);
            if let Some(n) = st.server_open.get_mut(&self.key.server) {
                *n = n.saturating_sub(1);
            }
            if let Some(n) = st.pool_open.get_mut(&self.key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    st.pool_open.remove(&self.key);
                }
            }
            let tk = (self.key.server.clone(), self.key.tenant.clone());
            if let Some(n) = st.tenant_open.get_mut(&tk) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    st.tenant_open.remove(&tk);
                }
            }
        }
        self.inner.notify.notify_waiters();
    }
}

/// A checkout's place in its server's queue of waiters; leaving it (drop) wakes the others,
/// since the waiter may have been the one ahead of them.
struct Queued {
    inner: Arc<Inner>,
    server: String,
    ticket: u64,
}

impl Drop for Queued {
    fn drop(&mut self) {
        {
            let mut st = lock(&self.inner.state);
            if let Some(list) = st.waiting.get_mut(&self.server) {
                list.retain(|w| w.ticket != self.ticket);
                if list.is_empty() {
                    st.waiting.remove(&self.server);
                }
            }
        }
        self.inner.notify.notify_waiters();
    }
}

/// The backend pools of one gateway process. Cheap to clone.
#[derive(Clone)]
pub struct Pools {
    inner: Arc<Inner>,
}

/// Counts for observability and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub open: usize,
    pub idle: usize,
    /// Checkouts waiting for a place on the server's budget.
    pub waiting: usize,
}

impl Pools {
    /// Pools sized by `[gateway]`; spawns the idle reaper on the current runtime (it stops
    /// when the last clone is dropped).
    pub fn new(cfg: Arc<GatewayConfig>) -> Pools {
        let inner = Arc::new(Inner { cfg, state: Mutex::new(State::default()), notify: Notify::new() });
        tokio::spawn(reap_task(Arc::downgrade(&inner)));
        Pools { inner }
    }

    /// A backend connection for `route`'s tenant, logged in as the role of `scope`, from
    /// the tenant's pool or newly opened. Checks that the tenant is routable first.
    /// Waits up to `gateway.checkout_timeout_ms` when the server's budget is exhausted.
    /// The backend carries nothing but its startup settings (see [`Self::checkout_for`]).
    pub async fn checkout(&self, route: &Route, scope: KeyScope) -> Result<Backend, PoolError> {
        self.checkout_for(route, scope, Door::Wire).await
    }

    /// As [`Self::checkout`], for `door`: a [`Door::Wire`] checkout resets a backend that a
    /// statement door gave back (`DISCARD ALL`) before handing it over; a
    /// [`Door::Statement`] one takes it as it is ([`Backend::carried`] says what it carries).
    pub async fn checkout_for(&self, route: &Route, scope: KeyScope, door: Door) -> Result<Backend, PoolError> {
        route.check_routable().map_err(|e| PoolError::NotRoutable(e.to_string()))?;
        let login = route.login(scope);
        let key = PoolKey {
            server: route.server.clone(),
            host: route.host.clone(),
            port: route.port,
            database: route.database.clone(),
            role: login.role.clone(),
            tenant: route.tenant.to_string(),
        };
        let cfg = &self.inner.cfg;
        let budget = cfg.budget_for(&route.server);
        let reserve = cfg.server_reserve.min(budget / 4);
        let wait = GatewayConfig::ms(cfg.checkout_timeout_ms);
        let deadline = Instant::now() + wait;
        // Set when this checkout first has to wait; it keeps its turn until it returns.
        let mut queued: Option<Queued> = None;
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let action = {
                let mut st = lock(&self.inner.state);
                let ticket = queued.as_ref().map(|q| q.ticket);
                let open_here = st.tenant_open(&key.server, &key.tenant);
                let server_open = st.server_open.get(&key.server).copied().unwrap_or(0);
                let fair_share_wait = |n: usize| {
                    Action::Wait(
                        format!("all {budget} connections of the gateway's budget for this server are taken and {n} waiting client(s) of tenants holding fewer connections go first (fair share)"),
                        "gateway.server_budget",
                    )
                };
                let action = if let n @ 1.. = st.waiting_ahead(&key.server, &key.tenant, ticket, cfg.pool_max_per_tenant, Ahead::OwnIdle) {
                    // Waiting tenants with fewer connections go first (round robin by tenant);
                    // they may take this tenant's idle backends too, so it does not reuse them.
                    fair_share_wait(n)
                } else if let Some(idle) = st.idle.get_mut(&key).and_then(|v| pop_idle(v, door)) {
                    Action::Reuse(idle)
                } else if open_here >= cfg.pool_max_per_tenant {
                    Action::Wait(
                        format!("the tenant already holds {} connections over its roles (gateway.pool_max_per_tenant)", cfg.pool_max_per_tenant),
                        "gateway.pool_max_per_tenant",
                    )
                } else if let n @ 1.. = st.waiting_ahead(&key.server, &key.tenant, ticket, cfg.pool_max_per_tenant, Ahead::NewPlace) {
                    fair_share_wait(n)
                } else if open_here > 0 && server_open + reserve >= budget {
                    // The last `reserve` places are for tenants with no connection here yet.
                    if let Some(victim) = take_idle_victim(&mut st, &key, budget) {
                        Action::Connect(self.reserve(&mut st, &key), Some(victim))
                    } else {
                        Action::Wait(
                            format!("the tenant holds connections and the last {reserve} of the {budget} places are kept for tenants with none (gateway.server_reserve)"),
                            "gateway.server_budget",
                        )
                    }
                } else if server_open < budget {
                    Action::Connect(self.reserve(&mut st, &key), None)
                } else if let Some(victim) = take_idle_victim(&mut st, &key, budget) {
                    Action::Connect(self.reserve(&mut st, &key), Some(victim))
                } else {
                    Action::Wait(format!("all {budget} connections of the gateway's budget for this server are in use"), "gateway.server_budget")
                };
                if matches!(action, Action::Wait(..)) && queued.is_none() {
                    let ticket = st.next_ticket;
                    st.next_ticket += 1;
                    st.waiting.entry(key.server.clone()).or_default().push(Waiting { ticket, tenant: key.tenant.clone() });
                    queued = Some(Queued { inner: self.inner.clone(), server: key.server.clone(), ticket });
                }
                action
            };
            if !matches!(action, Action::Wait(..)) {
                // Leave the queue (waking the others) before the slow part, a connect.
                drop(queued.take());
            }
            match action {
                Action::Reuse(mut idle) => {
                    if idle.conn.reader.is_stale() {
                        drop(idle); // closed by the server meanwhile (e.g. the tenant was suspended)
                        continue;
                    }
                    let mut carried = idle.carried;
                    if door == Door::Wire && carried != Carried::Nothing {
                        if let Err(e) = idle.conn.reset().await {
                            tracing::debug!("closing a statement door's backend that did not reset: {e}");
                            idle.conn.terminate();
                            continue;
                        }
                        carried = Carried::Nothing;
                    }
                    return Ok(Backend { conn: Some(idle.conn), parked: None, slot: Some(idle.slot), pools: self.clone(), carried });
                }
                Action::Connect(slot, victim) => {
                    if let Some(v) = victim {
                        v.conn.terminate();
                        drop(v);
                    }
                    let settings = limit_settings(cfg, &route.slug);
                    let conn = BackendConn::connect(&ConnectParams {
                        host: &key.host,
                        port: key.port,
                        database: &key.database,
                        login: &login,
                        settings: &settings,
                        connect_timeout: GatewayConfig::ms(cfg.connect_timeout_ms),
                    })
                    .await?;
                    return Ok(Backend { conn: Some(conn), parked: None, slot: Some(slot), pools: self.clone(), carried: Carried::Nothing });
                }
                Action::Wait(why, limit) => {
                    let now = Instant::now();
                    if now >= deadline || tokio::time::timeout(deadline - now, notified).await.is_err() {
                        return Err(PoolError::Exhausted { server: route.server.clone(), why, waited_ms: wait.as_millis() as u64, limit });
                    }
                }
            }
        }
    }

    fn reserve(&self, st: &mut State, key: &PoolKey) -> Slot {
        *st.server_open.entry(key.server.clone()).or_insert(0) += 1;
        *st.pool_open.entry(key.clone()).or_insert(0) += 1;
        *st.tenant_open.entry((key.server.clone(), key.tenant.clone())).or_insert(0) += 1;
        Slot { inner: self.inner.clone(), key: key.clone() }
    }

    /// Close every idle connection of a tenant (by tenant key), e.g. after it was suspended
    /// or moved. Connections in use close when their sessions end.
    pub fn close_idle_of(&self, tenant_key: &str) {
        let victims: Vec<Idle> = {
            let mut st = lock(&self.inner.state);
            let keys: Vec<PoolKey> = st
                .idle
                .keys()
                .filter(|k| k.role == tenant_key || k.role.strip_suffix("_ro") == Some(tenant_key))
                .cloned()
                .collect();
            keys.into_iter().filter_map(|k| st.idle.remove(&k)).flatten().collect()
        };
        for v in victims {
            v.conn.terminate();
        }
    }

    /// Open and idle connections on server `name`.
    pub fn stats(&self, server: &str) -> PoolStats {
        let st = lock(&self.inner.state);
        let idle = st.idle.iter().filter(|(k, _)| k.server == server).map(|(_, v)| v.len()).sum();
        let waiting = st.waiting.get(server).map(Vec::len).unwrap_or(0);
        PoolStats { open: st.server_open.get(server).copied().unwrap_or(0), idle, waiting }
    }

    fn put_idle(&self, conn: BackendConn, slot: Slot, carried: Carried) {
        let key = slot.key.clone();
        lock(&self.inner.state).idle.entry(key).or_default().push(Idle { conn, slot, since: Instant::now(), carried });
        self.inner.notify.notify_waiters();
    }
}

enum Action {
    Reuse(Idle),
    Connect(Slot, Option<Idle>),
    /// Why, and the setting that limits it (named in the error).
    Wait(String, &'static str),
}

/// An idle connection on `key`'s server of another pool, to close for `key`'s new one.
///
/// Only a tenant that holds more connections on the server than `key`'s tenant gives one up,
/// so an eviction never leaves its victim with fewer than the tenant it serves: a tenant that
/// holds none may take any tenant's idle backend (round robin over more tenants than the
/// budget), but a busy tenant cannot take the last backend of a tenant that holds one (its
/// next connect would find the budget full of the busy tenant's sessions). Among those, the
/// longest idle of a tenant over its fair share (`budget` over the tenants that hold or wait
/// for connections on the server) goes first, else the longest idle.
fn take_idle_victim(st: &mut State, key: &PoolKey, budget: usize) -> Option<Idle> {
    let held: HashMap<&str, usize> =
        st.tenant_open.iter().filter(|((s, _), _)| *s == key.server).map(|((_, t), n)| (t.as_str(), *n)).collect();
    let mine = held.get(key.tenant.as_str()).copied().unwrap_or(0);
    let mut active = held.len() + usize::from(mine == 0);
    if let Some(w) = st.waiting.get(&key.server) {
        let waiting: std::collections::HashSet<&str> =
            w.iter().map(|w| w.tenant.as_str()).filter(|t| !held.contains_key(t) && *t != key.tenant).collect();
        active += waiting.len();
    }
    let share = (budget / active.max(1)).max(1);
    let (victim_key, idx) = st
        .idle
        .iter()
        .filter(|(k, _)| k.server == key.server && *k != key)
        .filter_map(|(k, v)| {
            let open = held.get(k.tenant.as_str()).copied().unwrap_or(0);
            (open > mine).then_some((k, v, open))
        })
        .flat_map(|(k, v, open)| v.iter().enumerate().map(move |(i, idle)| (k, i, open <= share, idle.since)))
        .min_by_key(|(_, _, within_share, since)| (*within_share, *since))
        .map(|(k, i, _, _)| (k.clone(), i))?;
    let list = st.idle.get_mut(&victim_key)?;
    let v = list.remove(idx);
    if list.is_empty() {
        st.idle.remove(&victim_key);
    }
    Some(v)
}

/// The per-tenant limits as backend startup settings. Set in the startup packet, they are
/// the session's reset values, so a client's RESET ALL or DISCARD ALL returns to them.
fn limit_settings(cfg: &GatewayConfig, slug: &str) -> Vec<(String, String)> {
    let l = cfg.limits_for(slug);
    let mut s = Vec::new();
    if l.statement_timeout_ms > 0 {
        s.push(("statement_timeout".to_string(), l.statement_timeout_ms.to_string()));
    }
    if l.idle_in_transaction_timeout_ms > 0 {
        s.push(("idle_in_transaction_session_timeout".to_string(), l.idle_in_transaction_timeout_ms.to_string()));
    }
    // The tenant's work_mem ceiling (the gate does not let a tenant SET work_mem).
    if l.work_mem_kb > 0 {
        s.push(("work_mem".to_string(), format!("{}kB", l.work_mem_kb)));
    }
    // The server checks the gateway's socket this often while a statement runs, so a gateway
    // killed mid-statement does not leave the statement (and its locks) running.
    if cfg.backend_check_interval_ms > 0 {
        s.push(("client_connection_check_interval".to_string(), cfg.backend_check_interval_ms.to_string()));
    }
    s
}

async fn reap_task(inner: std::sync::Weak<Inner>) {
    loop {
        let every = match inner.upgrade() {
            Some(i) => (GatewayConfig::ms(i.cfg.pool_idle_timeout_ms) / 4).clamp(Duration::from_millis(100), Duration::from_secs(5)),
            None => return,
        };
        tokio::time::sleep(every).await;
        let Some(i) = inner.upgrade() else { return };
        let max_idle = GatewayConfig::ms(i.cfg.pool_idle_timeout_ms);
        let expired: Vec<Idle> = {
            let mut st = lock(&i.state);
            let mut out = Vec::new();
            for list in st.idle.values_mut() {
                let mut k = 0;
                while k < list.len() {
                    if list[k].since.elapsed() >= max_idle || list[k].conn.reader.is_stale() {
                        out.push(list.remove(k));
                    } else {
                        k += 1;
                    }
                }
            }
            st.idle.retain(|_, v| !v.is_empty());
            out
        };
        for e in expired {
            e.conn.terminate();
        }
    }
}

/// A checked-out backend connection, held by one client session (or one HTTP request).
///
/// Use [`Backend::send`]/[`Backend::recv`] for request/response use, or [`Backend::io`] for
/// full-duplex forwarding. Give it back with [`Backend::release`] (reset with `DISCARD ALL`,
/// then pooled) or, from a statement door, [`Backend::keep`]; dropping it instead closes
/// the connection.
pub struct Backend {
    conn: Option<BackendConn>,
    /// The rest of the connection while a relay thread has its socket ([`Backend::detach`]).
    parked: Option<Parked>,
    slot: Option<Slot>,
    pools: Pools,
    carried: Carried,
}

impl Backend {
    fn conn(&mut self) -> Result<&mut BackendConn, PoolError> {
        self.conn.as_mut().ok_or(PoolError::Closed)
    }

    /// Send raw frontend message bytes (one or more whole messages).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), PoolError> {
        self.conn()?.writer.send(bytes).await
    }

    /// Receive one whole backend message.
    pub async fn recv(&mut self) -> Result<RawMessage, PoolError> {
        self.conn()?.reader.recv().await
    }

    /// Both halves, for forwarding in both directions at once.
    pub fn io(&mut self) -> Result<(&mut BackendReader, &mut BackendWriter), PoolError> {
        let c = self.conn()?;
        Ok((&mut c.reader, &mut c.writer))
    }

    /// Hand the socket to a `tg_proxy::relay` thread. Until [`Self::attach`] gives it back,
    /// the connection keeps its budget slot and every other method sees it closed.
    pub fn detach(&mut self) -> Result<(std::net::TcpStream, ReaderState), PoolError> {
        let conn = self.conn.take().ok_or(PoolError::Closed)?;
        let (std, state, parked) = conn.detach()?;
        self.parked = Some(parked);
        Ok((std, state))
    }

    /// Take the socket back from a relay thread. Must run inside the tokio runtime.
    pub fn attach(&mut self, std: std::net::TcpStream, state: ReaderState) -> Result<(), PoolError> {
        let parked = self.parked.take().ok_or(PoolError::Closed)?;
        self.conn = Some(BackendConn::attach(std, state, parked)?);
        Ok(())
    }

    /// The server's current ParameterStatus values.
    pub fn parameters(&self) -> &[(String, String)] {
        self.conn.as_ref().map(|c| c.reader.params()).unwrap_or(&[])
    }

    /// Where to send a CancelRequest for this backend.
    pub fn cancel_target(&self) -> Option<CancelTarget> {
        self.conn.as_ref().map(|c| c.cancel.clone())
    }

    /// `b'I'` idle, `b'T'` in a transaction, `b'E'` in a failed transaction.
    pub fn transaction_status(&self) -> u8 {
        self.conn.as_ref().map(|c| c.reader.transaction_status()).unwrap_or(b'?')
    }

    /// The backend role this connection is logged in as.
    pub fn role(&self) -> &str {
        self.conn.as_ref().map(|c| c.role.as_str()).unwrap_or("")
    }

    /// The session settings this backend carries beyond its startup values.
    pub fn carried(&self) -> Carried {
        self.carried
    }

    /// Record what the caller has just applied to the session (a statement door's settings).
    pub fn set_carried(&mut self, carried: Carried) {
        self.carried = carried;
    }

    /// Return to the pool without a reset, carrying [`Self::carried`], for the statement
    /// doors' next statement (a wire checkout resets it first), at once: the next statement
    /// finds it. Falls back to [`Self::release`] (spawned) when it carries nothing, and closes
    /// it unless idle with nothing unread.
    pub fn keep(mut self) {
        if self.carried == Carried::Nothing {
            tokio::spawn(self.release());
            return;
        }
        let (Some(conn), Some(slot)) = (self.conn.take(), self.slot.take()) else { return };
        if conn.reader.transaction_status() != b'I' || conn.reader.buffered() > 0 {
            tracing::debug!("closing a statement door's backend that is not idle");
            conn.terminate();
            return;
        }
        self.pools.put_idle(conn, slot, self.carried);
    }

    /// Reset with `DISCARD ALL` and return to the pool; close instead if the connection is
    /// in a transaction, has unread data, or the reset fails.
    pub async fn release(mut self) {
        let (Some(mut conn), Some(slot)) = (self.conn.take(), self.slot.take()) else { return };
        match conn.reset().await {
            Ok(()) => self.pools.put_idle(conn, slot, Carried::Nothing),
            Err(e) => {
                tracing::debug!("closing backend instead of pooling it: {e}");
                conn.terminate();
            }
        }
    }

    /// Close the connection now (it is not reused).
    pub fn close(mut self) {
        if let Some(c) = self.conn.take() {
            c.terminate();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(c) = self.conn.take() {
            c.terminate();
        }
    }
}
