//! The router: where a tenant's data lives right now, and who may act as it.
//!
//! Owns the data plane's cached view of the catalog: for each tenant slug its status,
//! placement, server address, database and schema, and its active API keys (verifiers only).
//! The cache is invalidated by the catalog's NOTIFY channels (`tenantgate_routing`: a tenant
//! row changed; `tenantgate_keys`: a key was revoked or deleted) on a dedicated listening
//! connection that reconnects by itself, and by a poll of the tenants that have open sessions
//! every few seconds in case a notification was missed. Open sessions learn through
//! [`Router::subscribe`] that their key was revoked or their tenant suspended, moved or erased.
//!
//! This is the one public way into routing for every front end (the wire gateway here, and
//! the HTTP API): `route(slug)` → [`Route`] → `Route::login(scope)` → `Pools::checkout`.
//!
//! It must never: write to the catalog, provision anything, hand out a route for a tenant
//! that is not active (the caller gets a [`RouteError`] instead), or expose a key secret (it
//! never has one) or a backend password in `Debug` output or logs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tg_catalog::catalog::Catalog;
use tg_catalog::credentials::MasterKey;
use tg_catalog::keys::{ActiveKey, KeyScope};
use tg_catalog::model::{Placement, TenantKey, TenantStatus};
use tokio::sync::broadcast;

/// Channel the catalog notifies on when a tenant row changes (payload: tenant key).
pub const ROUTING_CHANNEL: &str = "tenantgate_routing";
/// Channel the catalog notifies on when a key is revoked or deleted (payload: key id).
pub const KEYS_CHANNEL: &str = "tenantgate_keys";

/// Where one tenant lives and which keys may act as it. Cheap to clone.
#[derive(Clone)]
pub struct Route {
    pub slug: String,
    pub tenant: TenantKey,
    pub status: TenantStatus,
    pub placement: Placement,
    /// Server name (catalog `tg.servers.name`).
    pub server: String,
    /// Host and port of the server, from its admin URL.
    pub host: String,
    pub port: u16,
    /// Database and schema of the tenant's tables.
    pub database: String,
    pub schema: String,
    /// The tenant's unrevoked keys (verifiers only; they share one salt).
    pub keys: Arc<Vec<ActiveKey>>,
    master: Arc<MasterKey>,
    fetched_at: Instant,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("slug", &self.slug)
            .field("tenant", &self.tenant)
            .field("status", &self.status)
            .field("placement", &self.placement)
            .field("server", &self.server)
            .field("database", &self.database)
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Credentials of a backend login role. `Debug` never shows the password.
#[derive(Clone)]
pub struct Login {
    pub role: String,
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({}, <redacted>)", self.role)
    }
}

impl Route {
    /// The backend role (read-write or read-only by the key's scope) and its derived password.
    pub fn login(&self, scope: KeyScope) -> Login {
        let role = match scope {
            KeyScope::ReadWrite => self.tenant.rw_role(),
            KeyScope::ReadOnly => self.tenant.ro_role(),
        };
        Login { password: self.master.role_password(&role), role }
    }

    /// An active key of this tenant by id.
    pub fn key(&self, id: &str) -> Option<&ActiveKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// Do both routes send traffic to the same place?
    pub fn same_location(&self, other: &Route) -> bool {
        self.tenant == other.tenant
            && self.host == other.host
            && self.port == other.port
            && self.database == other.database
            && self.schema == other.schema
    }

    /// `Ok` only for an active tenant.
    pub fn check_routable(&self) -> Result<(), RouteError> {
        match self.status {
            TenantStatus::Active => Ok(()),
            TenantStatus::Suspended => Err(RouteError::Suspended { slug: self.slug.clone() }),
            other => Err(RouteError::Unavailable { slug: self.slug.clone(), status: other.to_string() }),
        }
    }

    /// The tenant's (shared) SCRAM salt and iteration count, if it has any active key.
    pub fn scram_salt(&self) -> Option<(&[u8], u32)> {
        self.keys.first().map(|k| (k.verifier.salt.as_slice(), k.verifier.iterations))
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RouteError {
    /// No such tenant. Front ends must answer this exactly like a wrong key.
    #[error("no tenant {0:?}")]
    UnknownTenant(String),
    #[error("tenant {slug:?} is suspended; its data cannot be reached until an operator runs `tenantgate tenant resume {slug}`")]
    Suspended { slug: String },
    #[error("tenant {slug:?} is not available (status {status}); ask the operator to finish or repair it (`tenantgate tenant show {slug}`)")]
    Unavailable { slug: String, status: String },
    #[error("tenantgate cannot read its catalog ({0}); try again in a moment")]
    Catalog(String),
}

/// A change the router learned of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteEvent {
    /// A tenant row changed (status, placement, server) or was deleted. Payload: tenant key.
    TenantChanged(String),
    /// A key was revoked or deleted. Payload: key id.
    KeyRevoked(String),
    /// Notifications may have been missed (listener reconnected): re-check everything.
    Resync,
}

/// Why an open session must end (see [`Subscription::ended`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    KeyRevoked,
    Suspended,
    Moved,
    Gone,
}

impl EndReason {
    /// A client-facing message (for a FATAL 57P01).
    pub fn message(self) -> &'static str {
        match self {
            EndReason::KeyRevoked => "terminating connection: API key revoked; connect again with an active key",
            EndReason::Suspended => "terminating connection: tenant suspended by the operator",
            EndReason::Moved => "terminating connection: the tenant's data moved; connect again to reach its new placement",
            EndReason::Gone => "terminating connection: the tenant is no longer available",
        }
    }
}

struct Cached {
    route: Route,
}

struct Inner {
    catalog_url: String,
    master: Arc<MasterKey>,
    catalog: tokio::sync::Mutex<Option<Arc<Catalog>>>,
    cache: Mutex<HashMap<String, Cached>>,
    watched: Mutex<HashMap<String, usize>>,
    events: broadcast::Sender<RouteEvent>,
    ttl: Duration,
}

/// Cached, invalidated routing from the catalog. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

/// Tuning for [`Router::new`].
#[derive(Debug, Clone, Copy)]
pub struct RouterOptions {
    /// How long a cached route is used without confirmation.
    pub ttl: Duration,
    /// How often routes of tenants with open sessions are re-read.
    pub poll_interval: Duration,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions { ttl: Duration::from_secs(30), poll_interval: Duration::from_secs(3) }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these short critical sections cannot leave the map
    // inconsistent, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Router {
    /// A router reading the catalog at `catalog_url` (admin URL of the catalog database).
    /// Spawns the NOTIFY listener and the poller on the current tokio runtime; they stop when
    /// the last clone of the router is dropped.
    pub fn new(catalog_url: &str, master: MasterKey, opts: RouterOptions) -> Router {
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            catalog_url: catalog_url.to_string(),
            master: Arc::new(master),
            catalog: tokio::sync::Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
            watched: Mutex::new(HashMap::new()),
            events,
            ttl: opts.ttl,
        });
        tokio::spawn(listen_task(Arc::downgrade(&inner)));
        tokio::spawn(poll_task(Arc::downgrade(&inner), opts.poll_interval));
        Router { inner }
    }

    /// The route of tenant `slug`, from the cache when fresh. Returns the route whatever
    /// the tenant's status; call [`Route::check_routable`] before sending traffic.
    pub async fn route(&self, slug: &str) -> Result<Route, RouteError> {
        if let Some(c) = lock(&self.inner.cache).get(slug) {
            if c.route.fetched_at.elapsed() < self.inner.ttl {
                return Ok(c.route.clone());
            }
        }
        self.route_fresh(slug).await
    }

    /// The route of tenant `slug`, read from the catalog now (and cached).
    pub async fn route_fresh(&self, slug: &str) -> Result<Route, RouteError> {
        let route = self.inner.fetch(slug).await;
        let mut cache = lock(&self.inner.cache);
        match &route {
            Ok(r) => {
                cache.insert(slug.to_string(), Cached { route: r.clone() });
            }
            Err(RouteError::UnknownTenant(_)) => {
                cache.remove(slug);
            }
            Err(_) => {}
        }
        route
    }

    /// Learn of changes: every [`RouteEvent`] from now on.
    pub fn events(&self) -> broadcast::Receiver<RouteEvent> {
        self.inner.events.subscribe()
    }

    /// Watch an open session of `route`'s tenant authenticated with key `key_id`: the
    /// subscription's [`Subscription::ended`] resolves when the session must end. While it
    /// lives, the tenant is also polled, so a missed NOTIFY delays the end by a poll interval
    /// at most.
    pub fn subscribe(&self, route: &Route, key_id: &str) -> Subscription {
        *lock(&self.inner.watched).entry(route.slug.clone()).or_insert(0) += 1;
        Subscription { router: self.clone(), route: route.clone(), key_id: key_id.to_string(), rx: self.events() }
    }

    /// Forget every cached route (tests, operators' reload).
    pub fn invalidate_all(&self) {
        lock(&self.inner.cache).clear();
    }

    /// The catalog connection the router uses (reconnecting if it was lost), for callers
    /// that must read or write the catalog too (e.g. the audit writer).
    pub async fn catalog(&self) -> Result<Arc<Catalog>, RouteError> {
        self.inner.catalog().await
    }
}

impl Inner {
    async fn catalog(&self) -> Result<Arc<Catalog>, RouteError> {
        let mut slot = self.catalog.lock().await;
        if let Some(c) = slot.as_ref() {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let c = Arc::new(Catalog::connect(&self.catalog_url).await.map_err(|e| RouteError::Catalog(e.to_string()))?);
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn fetch(&self, slug: &str) -> Result<Route, RouteError> {
        let cat = self.catalog().await?;
        let db = |e: tg_catalog::Error| RouteError::Catalog(e.to_string());
        let tenant = match cat.tenant(slug).await {
            Ok(t) => t,
            Err(tg_catalog::Error::UnknownTenant(_)) => return Err(RouteError::UnknownTenant(slug.to_string())),
            Err(tg_catalog::Error::InvalidInput { .. }) => return Err(RouteError::UnknownTenant(slug.to_string())),
            Err(e) => return Err(db(e)),
        };
        let server = cat.server(&tenant.server).await.map_err(db)?;
        let (host, port) = tg_catalog::db::host_port(&server.url)
            .ok_or_else(|| RouteError::Catalog(format!("server {:?} has no usable host in its URL", server.name)))?;
        let keys = cat.active_keys(tenant.key.as_str()).await.map_err(db)?;
        let loc = tg_catalog::model::location(tenant.placement, &tenant.key);
        Ok(Route {
            slug: tenant.slug,
            tenant: tenant.key,
            status: tenant.status,
            placement: tenant.placement,
            server: server.name,
            host,
            port,
            database: loc.database,
            schema: loc.schema,
            keys: Arc::new(keys),
            master: self.master.clone(),
            fetched_at: Instant::now(),
        })
    }

    /// Drop cached routes matching `pred` and announce `event`.
    fn invalidate(&self, event: RouteEvent) {
        {
            let mut cache = lock(&self.cache);
            match &event {
                RouteEvent::TenantChanged(key) => cache.retain(|_, c| c.route.tenant.as_str() != key),
                RouteEvent::KeyRevoked(id) => cache.retain(|_, c| c.route.key(id).is_none()),
                RouteEvent::Resync => cache.clear(),
            }
        }
        let _ = self.events.send(event);
    }
}

/// LISTEN on the catalog's channels on a dedicated connection; reconnect on loss.
async fn listen_task(inner: std::sync::Weak<Inner>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let Some(url) = inner.upgrade().map(|i| i.catalog_url.clone()) else { return };
        match listen_once(&inner, &url).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => tracing::warn!("catalog listener: {e}; reconnecting"),
        }
        match inner.upgrade() {
            Some(i) => i.invalidate(RouteEvent::Resync),
            None => return,
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen_once(inner: &std::sync::Weak<Inner>, url: &str) -> Result<(), String> {
    use std::str::FromStr;
    let mut cfg = tokio_postgres::Config::from_str(url).map_err(|e| e.to_string())?;
    cfg.application_name("tenantgate-router");
    cfg.connect_timeout(Duration::from_secs(10));
    let (client, mut conn) = cfg.connect(tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if tx.send((n.channel().to_string(), n.payload().to_string())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("catalog listener connection: {e}");
                    return;
                }
            }
        }
    });
    let listen = client.batch_execute(&format!("LISTEN {ROUTING_CHANNEL}; LISTEN {KEYS_CHANNEL}")).await;
    if let Err(e) = listen {
        driver.abort();
        return Err(e.to_string());
    }
    // Anything that changed before LISTEN took effect is picked up by a resync.
    if let Some(i) = inner.upgrade() {
        i.invalidate(RouteEvent::Resync);
    }
    let mut alive = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            n = rx.recv() => match n {
                Some((channel, payload)) => {
                    let Some(i) = inner.upgrade() else { driver.abort(); return Ok(()) };
                    let event = if channel == KEYS_CHANNEL { RouteEvent::KeyRevoked(payload) } else { RouteEvent::TenantChanged(payload) };
                    i.invalidate(event);
                }
                None => { return Err("the listening connection closed".into()) }
            },
            _ = alive.tick() => {
                if inner.strong_count() == 0 {
                    driver.abort();
                    return Ok(());
                }
            }
        }
    }
}

/// Re-read the routes of tenants with open sessions; announce any difference.
async fn poll_task(inner: std::sync::Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(i) = inner.upgrade() else { return };
        let slugs: Vec<String> = lock(&i.watched).keys().cloned().collect();
        for slug in slugs {
            let before = lock(&i.cache).get(&slug).map(|c| c.route.clone());
            let after = i.fetch(&slug).await;
            let changed = match (&before, &after) {
                (_, Err(RouteError::Catalog(_))) => None,
                (Some(b), Ok(a)) => {
                    let keys = |r: &Route| r.keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>();
                    (b.status != a.status || !b.same_location(a) || keys(b) != keys(a)).then(|| b.tenant.to_string())
                }
                (Some(b), Err(_)) => Some(b.tenant.to_string()),
                (None, Ok(a)) => Some(a.tenant.to_string()),
                (None, Err(_)) => Some(String::new()),
            };
            if let Some(key) = changed {
                i.invalidate(if key.is_empty() { RouteEvent::Resync } else { RouteEvent::TenantChanged(key) });
            }
            if let Ok(a) = after {
                lock(&i.cache).insert(slug.clone(), Cached { route: a });
            }
        }
    }
}

/// An open session's watch on its tenant and key; see [`Router::subscribe`].
pub struct Subscription {
    router: Router,
    route: Route,
    key_id: String,
    rx: broadcast::Receiver<RouteEvent>,
}

impl Subscription {
    /// Resolves when the session must end: its key was revoked, or its tenant was suspended,
    /// erased or moved. Never resolves otherwise (a catalog outage does not end sessions).
    /// Cancel-safe.
    pub async fn ended(&mut self) -> EndReason {
        loop {
            let event = self.rx.recv().await;
            match event {
                Ok(RouteEvent::KeyRevoked(id)) if id == self.key_id => return EndReason::KeyRevoked,
                Ok(RouteEvent::TenantChanged(k)) if k == self.route.tenant.as_str() => {}
                Ok(RouteEvent::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
            }
            if let Some(reason) = self.check().await {
                return reason;
            }
        }
    }

    /// Re-check the session against the catalog now.
    pub async fn check(&self) -> Option<EndReason> {
        match self.router.route(&self.route.slug).await {
            Ok(now) if now.tenant != self.route.tenant => Some(EndReason::Gone),
            Ok(now) if now.status == TenantStatus::Suspended => Some(EndReason::Suspended),
            Ok(now) if now.status != TenantStatus::Active => Some(EndReason::Gone),
            Ok(now) if !now.same_location(&self.route) => Some(EndReason::Moved),
            Ok(now) if now.key(&self.key_id).is_none() => Some(EndReason::KeyRevoked),
            Ok(_) => None,
            Err(RouteError::UnknownTenant(_)) => Some(EndReason::Gone),
            Err(_) => None,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut w = lock(&self.router.inner.watched);
        if let Some(n) = w.get_mut(&self.route.slug) {
            *n -= 1;
            if *n == 0 {
                w.remove(&self.route.slug);
            }
        }
    }
}
