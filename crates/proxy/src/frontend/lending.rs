//! Transaction mode's backends: a lane per tenant role of backends checked out of the shared
//! pools and lent to that role's clients one transaction at a time.
//!
//! A client borrows a backend when it starts work and gives it back at ReadyForQuery 'I'
//! (`frontend::transaction`); the next client of the same role gets it as it is: no
//! `DISCARD ALL` between transactions, because the session state a transaction could leave is
//! refused by the gate (rule `transaction-mode`) and the named statements left are the
//! role's own, under names derived from their text (`frontend::statements`). What differs
//! between clients of a role is their startup settings (application_name, TimeZone, …): a
//! backend carries the ones last applied and gets `RESET ALL` and the borrower's when they
//! differ. A backend idle in its lane for [`IDLE_RETURN`] goes back to the shared pools
//! (reset with `DISCARD ALL`), where the budget, eviction and reaping see it again.
//!
//! A client's own `RESET`/`RESET ALL`/`DISCARD ALL` (asyncpg's pool runs `RESET ALL` on every
//! release) takes the backend to the server's defaults, not the client's: [`Lent::settings_reset`]
//! notes it and [`Lending::restore`] applies the client's settings again before the backend
//! goes back, handing the client the ParameterStatus messages that bring its view back too.
//! With the gate off nothing vouches for what a transaction left (a plain `SET`, `LISTEN`, a
//! `PREPARE`), so a backend is marked with the client that used it ([`Lent::left_by`]) and
//! gets `DISCARD ALL` (I2's reset between clients) before another client borrows it.
//!
//! Owns the lanes: how many backends each holds (at most `gateway.pool_max_per_tenant`), who
//! waits for one, and for how long (`gateway.checkout_timeout_ms`, then 53300). It never
//! lends a backend to another role than its own (I2: a lane is keyed by server, database and
//! role), never lends one that is not idle, and never opens a connection itself (the shared
//! pools do, through `tg_dataplane::admission`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tg_catalog::keys::KeyScope;
use tokio::sync::oneshot;

use crate::backend::{Backend, CancelTarget, PoolError, Pools};
use crate::config::GatewayConfig;
use crate::net::messages::{self, error_fields};
use crate::router::{Route, Router};

/// How long a backend may sit idle in its lane before it goes back to the shared pools.
pub const IDLE_RETURN: Duration = Duration::from_secs(1);

/// Which backends a lane holds: one tenant role on one database of one server.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LaneKey {
    server: String,
    host: String,
    port: u16,
    database: String,
    role: String,
}

impl LaneKey {
    /// The lane of `route`'s tenant role for `scope`.
    pub fn of(route: &Route, scope: KeyScope) -> LaneKey {
        LaneKey {
            server: route.server.clone(),
            host: route.host.clone(),
            port: route.port,
            database: route.database.clone(),
            role: route.login(scope).role.clone(),
        }
    }
}

/// A lent backend with what it carries between clients.
pub struct Lent {
    pub backend: Backend,
    /// Server-side statements prepared on it (`frontend::statements`).
    pub prepared: HashSet<Arc<str>>,
    /// The startup settings applied on it, as `SET` statements ("" = none since its reset,
    /// [`UNKNOWN_SETTINGS`] = partly reset).
    applied: String,
    /// The client whose session state may be on it unvouched (the gate is off): another
    /// client gets it only after `DISCARD ALL`.
    left_by: Option<u64>,
    /// Its place in the lane; dropping it frees the place.
    place: Place,
}

/// Settings that match no client's: the next borrower re-applies its own after `RESET ALL`.
const UNKNOWN_SETTINGS: &str = "\0reset";

impl Lent {
    pub fn cancel_target(&self) -> Option<CancelTarget> {
        self.backend.cancel_target()
    }

    /// The client ran `RESET`, `RESET ALL` or `DISCARD ALL`: its settings may be gone (none
    /// to lose if it had none: the server's defaults are then its own).
    pub fn settings_reset(&mut self) {
        if !self.applied.is_empty() {
            self.applied = UNKNOWN_SETTINGS.to_string();
        }
    }

    /// `client` may have left session state on it that no gate vouched for.
    pub fn left_by(&mut self, client: u64) {
        self.left_by = Some(client);
    }
}

/// A backend's place in its lane, counted while it exists.
struct Place {
    lanes: Weak<Inner>,
    key: LaneKey,
}

impl Drop for Place {
    fn drop(&mut self) {
        let Some(inner) = self.lanes.upgrade() else { return };
        let mut lanes = lock(&inner.lanes);
        let Some(lane) = lanes.get_mut(&self.key) else { return };
        lane.open = lane.open.saturating_sub(1);
        // Room for a new backend: the first waiter wakes (its sender dropped) and opens one.
        lane.waiters.pop_front();
    }
}

struct Lane {
    idle: Vec<(Lent, Instant)>,
    /// Backends of the lane: idle, lent or being opened.
    open: usize,
    /// Clients waiting for a backend, first come first served: a backend given back goes
    /// straight to the first, so a client that gives one back and at once wants another
    /// queues behind them instead of taking it again.
    waiters: VecDeque<oneshot::Sender<Lent>>,
}

struct Inner {
    lanes: Mutex<HashMap<LaneKey, Lane>>,
    /// The last client number given out ([`Lending::client_id`]).
    clients: std::sync::atomic::AtomicU64,
    cfg: Arc<GatewayConfig>,
    pools: Pools,
}

fn lock(m: &Mutex<HashMap<LaneKey, Lane>>) -> std::sync::MutexGuard<'_, HashMap<LaneKey, Lane>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The lanes of one gateway.
pub struct Lending {
    inner: Arc<Inner>,
}

enum Next {
    Take(Lent),
    Open,
    Wait(oneshot::Receiver<Lent>),
}

impl Lending {
    /// Lanes over `pools`; spawns the task that returns idle backends to the pools.
    pub fn new(cfg: Arc<GatewayConfig>, pools: Pools) -> Lending {
        let inner = Arc::new(Inner { lanes: Mutex::new(HashMap::new()), clients: Default::default(), cfg, pools });
        tokio::spawn(return_idle(Arc::downgrade(&inner)));
        Lending { inner }
    }

    /// A number for one client session, unique in this gateway (see [`Lent::left_by`]).
    pub fn client_id(&self) -> u64 {
        self.inner.clients.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }

    /// A backend of `key`'s lane for a client whose startup settings are `settings` (as
    /// `SET` statements): an idle one, a new one while the lane has room, or the next one
    /// given back, waiting up to `gateway.checkout_timeout_ms`. For a session's welcome.
    pub async fn borrow(&self, router: &Router, route: &Route, scope: KeyScope, key: &LaneKey, settings: &str) -> Result<Lent, PoolError> {
        self.borrow_as(router, route, scope, key, settings, None).await
    }

    /// [`Lending::borrow`] for client number `client` ([`Lending::client_id`]; `None`: a
    /// session not numbered yet) to run its transaction on: a backend another client left
    /// unvouched state on is reset first.
    pub async fn borrow_as(
        &self,
        router: &Router,
        route: &Route,
        scope: KeyScope,
        key: &LaneKey,
        settings: &str,
        client: Option<u64>,
    ) -> Result<Lent, PoolError> {
        let cfg = &self.inner.cfg;
        let wait = GatewayConfig::ms(cfg.checkout_timeout_ms);
        let deadline = Instant::now() + wait;
        loop {
            let next = {
                let mut lanes = lock(&self.inner.lanes);
                let lane = lanes.entry(key.clone()).or_insert_with(|| Lane { idle: Vec::new(), open: 0, waiters: VecDeque::new() });
                if let Some((lent, _)) = lane.idle.pop() {
                    Next::Take(lent)
                } else if lane.open < cfg.pool_max_per_tenant {
                    lane.open += 1;
                    Next::Open
                } else {
                    let (tx, rx) = oneshot::channel();
                    lane.waiters.push_back(tx);
                    Next::Wait(rx)
                }
            };
            let mut lent = match next {
                Next::Take(mut lent) => {
                    // Closed by the server meanwhile (e.g. the tenant was suspended)?
                    let stale = lent.backend.io().map(|(r, _)| r.is_stale()).unwrap_or(true);
                    if stale {
                        continue;
                    }
                    lent
                }
                Next::Open => {
                    let place = Place { lanes: Arc::downgrade(&self.inner), key: key.clone() };
                    let (_, backend) = tg_dataplane::admission::checkout(router, &self.inner.pools, route.clone(), scope).await?;
                    Lent { backend, prepared: HashSet::new(), applied: String::new(), left_by: None, place }
                }
                Next::Wait(rx) => {
                    let now = Instant::now();
                    let handed = if now >= deadline { Err(()) } else { tokio::time::timeout(deadline - now, rx).await.map_err(|_| ()) };
                    match handed {
                        // Handed over by `give_back`.
                        Ok(Ok(lent)) => lent,
                        // Room to open one (a backend closed): try again.
                        Ok(Err(_)) => continue,
                        Err(()) => return Err(PoolError::Exhausted {
                            server: route.server.clone(),
                            why: format!(
                                "all {} backends of this tenant role are busy with other clients' transactions (transaction pooling)",
                                cfg.pool_max_per_tenant
                            ),
                            waited_ms: wait.as_millis() as u64,
                            limit: "gateway.pool_max_per_tenant",
                        }),
                    }
                }
            };
            // A new session's welcome (`client` None) is another client too: the parameters
            // it is welcomed with must be its own.
            if let Some(by) = lent.left_by {
                if client != Some(by) {
                    // DISCARD ALL cannot share a query string: its own round trip.
                    run(&mut lent.backend, "DISCARD ALL", None).await?;
                    lent.prepared.clear();
                    lent.applied.clear();
                    lent.left_by = None;
                }
            }
            self.restore(&mut lent, settings, None).await?;
            return Ok(lent);
        }
    }

    /// Make `settings` the backend's settings if they are not (`RESET ALL` and the `SET`s);
    /// the ParameterStatus messages the server sends on the way are appended to `statuses`.
    pub async fn restore(&self, lent: &mut Lent, settings: &str, statuses: Option<&mut BytesMut>) -> Result<(), PoolError> {
        if lent.applied == settings {
            return Ok(());
        }
        let sql = if settings.is_empty() { "RESET ALL".to_string() } else { format!("RESET ALL; {settings}") };
        run(&mut lent.backend, &sql, statuses).await?;
        lent.applied = settings.to_string();
        Ok(())
    }

    /// Give a backend back to its lane after a transaction: kept if it is idle with nothing
    /// unread, closed otherwise; a backend holding many statements goes back to the shared
    /// pools instead, to be reset.
    pub fn give_back(&self, mut lent: Lent) {
        let idle = lent.backend.transaction_status() == b'I' && matches!(lent.backend.io(), Ok((r, _)) if r.buffered() == 0);
        if !idle {
            return; // dropped: closed, its place freed
        }
        if lent.prepared.len() > super::statements::MAX_PREPARED_PER_BACKEND {
            tokio::spawn(async move {
                let Lent { backend, place, .. } = lent;
                backend.release().await;
                drop(place);
            });
            return;
        }
        let mut lanes = lock(&self.inner.lanes);
        let Some(lane) = lanes.get_mut(&lent.place.key) else {
            drop(lanes);
            return; // (a lane outlives its places; dropped here, the backend closes)
        };
        // Straight to the first client still waiting.
        while let Some(w) = lane.waiters.pop_front() {
            match w.send(lent) {
                Ok(()) => return,
                Err(back) => lent = back,
            }
        }
        lane.idle.push((lent, Instant::now()));
    }
}

/// Run `sql` (settings or a reset only) on a backend and wait for its ReadyForQuery; the
/// ParameterStatus messages it sends are appended to `statuses`, whole.
async fn run(backend: &mut Backend, sql: &str, mut statuses: Option<&mut BytesMut>) -> Result<(), PoolError> {
    let mut q = BytesMut::new();
    messages::query(&mut q, sql);
    backend.send(&q).await?;
    let mut failed = None;
    loop {
        let m = backend.recv().await?;
        match m.tag {
            b'E' => failed = Some(error_fields(m.body())),
            b'Z' => break,
            b'S' => {
                if let Some(out) = statuses.as_deref_mut() {
                    let body = m.body();
                    out.extend_from_slice(b"S");
                    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
                    out.extend_from_slice(body);
                }
            }
            _ => {}
        }
    }
    match failed {
        Some(f) => Err(PoolError::Backend { code: f.code, message: format!("preparing a backend for this connection (applying its startup settings, or a reset between clients): {}", f.message) }),
        None => Ok(()),
    }
}

/// Return backends idle in their lanes for [`IDLE_RETURN`] to the shared pools.
async fn return_idle(inner: Weak<Inner>) {
    loop {
        tokio::time::sleep(IDLE_RETURN / 4).await;
        let Some(i) = inner.upgrade() else { return };
        let expired: Vec<Lent> = {
            let mut lanes = lock(&i.lanes);
            let mut out = Vec::new();
            for lane in lanes.values_mut() {
                let (old, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut lane.idle).into_iter().partition(|(_, since)| since.elapsed() >= IDLE_RETURN);
                lane.idle = keep;
                out.extend(old.into_iter().map(|(l, _)| l));
            }
            out
        };
        drop(i);
        for Lent { backend, place, .. } in expired {
            backend.release().await;
            drop(place);
        }
    }
}
