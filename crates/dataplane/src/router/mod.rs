//! The router: where a tenant's data lives right now, and who may act as it.
//!
//! Owns the data plane's cached view of the catalog: for each tenant slug its status,
//! placement, server address, database and schema, its active API keys (verifiers only), and
//! its quota override (`tg.tenant_quotas`, published to the config's `TenantOverrides` at
//! every read, so `tg_dataplane::quota` follows the catalog).
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
//!
//! Files: [`route`] (what a route is, and why there is none), this file (lookup and its
//! cache), [`listener`] (NOTIFY and polling, which invalidate it), [`subscription`] (an open
//! session's watch on its tenant and key), [`health`] (whether the catalog answers, and
//! what may be served while it does not).
//!
//! **Catalog outages.** The cache keeps the routes (and key verifiers) last seen: a resync
//! marks them stale instead of dropping them, so they are re-read when the catalog answers
//! and, while it does not, [`Router::route`] answers from them for known tenants for the
//! grace period of [`OutagePolicy::ServeKnown`] (counted from the catalog's last answer), or
//! refuses everything under [`OutagePolicy::FailClosed`]. A tenant or key not in the cache is
//! refused during an outage. A catalog read that takes longer than the catalog timeout counts
//! as an outage, so a hanging catalog delays a login by that timeout at most, once.

mod health;
mod listener;
mod route;
mod subscription;

pub use health::{describe_metrics, OutagePolicy};
pub use route::{EndReason, Login, Route, RouteError, RouteEvent, KEYS_CHANNEL, ROUTING_CHANNEL};
pub use subscription::Subscription;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tg_catalog::catalog::Catalog;

use crate::config::{LimitsConfig, TenantOverrides};
use tg_catalog::credentials::MasterKey;
use tokio::sync::broadcast;

use listener::{listen_task, poll_task};

struct Cached {
    route: Route,
    /// Notifications may have been missed since it was read: re-read before use while the
    /// catalog answers; still usable as the last-seen route during an outage.
    stale: bool,
}

impl Cached {
    fn new(route: Route) -> Cached {
        Cached { route, stale: false }
    }
}

struct Inner {
    catalog_url: String,
    master: Arc<MasterKey>,
    catalog: tokio::sync::Mutex<Option<Arc<Catalog>>>,
    cache: Mutex<HashMap<String, Cached>>,
    watched: Mutex<HashMap<String, usize>>,
    events: broadcast::Sender<RouteEvent>,
    ttl: Duration,
    move_hold: Duration,
    health: health::Health,
    catalog_timeout: Duration,
    /// Where the quota overrides read with each route are published (the config's, shared by
    /// every door of the process).
    quota_overrides: TenantOverrides,
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
    /// How long a new connection of a tenant fenced by a move waits for the cut-over.
    pub move_hold: Duration,
    /// What to do with logins while the catalog cannot be reached.
    pub outage: OutagePolicy,
    /// A catalog read (or connect) that takes longer counts as the catalog being unreachable.
    pub catalog_timeout: Duration,
}

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            ttl: Duration::from_secs(30),
            poll_interval: Duration::from_secs(3),
            move_hold: Duration::from_secs(10),
            outage: OutagePolicy::ServeKnown { grace: Duration::from_secs(300) },
            catalog_timeout: Duration::from_secs(2),
        }
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
    ///
    /// Every route read from the catalog publishes the tenant's quota override (or its
    /// absence) to `quota_overrides`, so the quotas of every door follow the catalog.
    pub fn new(catalog_url: &str, master: MasterKey, opts: RouterOptions, quota_overrides: TenantOverrides) -> Router {
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            catalog_url: catalog_url.to_string(),
            master: Arc::new(master),
            catalog: tokio::sync::Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
            watched: Mutex::new(HashMap::new()),
            events,
            ttl: opts.ttl,
            move_hold: opts.move_hold,
            health: health::Health::new(opts.outage),
            catalog_timeout: opts.catalog_timeout,
            quota_overrides,
        });
        tokio::spawn(listen_task(Arc::downgrade(&inner)));
        tokio::spawn(poll_task(Arc::downgrade(&inner), opts.poll_interval));
        Router { inner }
    }

    /// The route of tenant `slug`, from the cache when fresh. Returns the route whatever
    /// the tenant's status; call [`Route::check_routable`] before sending traffic.
    ///
    /// While the catalog cannot be reached, the route last seen is returned within the grace
    /// period (never under `FailClosed`); a tenant not seen before gets [`RouteError::Catalog`].
    pub async fn route(&self, slug: &str) -> Result<Route, RouteError> {
        if let Some(down) = self.inner.health.down() {
            return self.inner.last_seen(slug, down);
        }
        if let Some(c) = lock(&self.inner.cache).get(slug) {
            if !c.stale && c.route.fetched_at.elapsed() < self.inner.ttl {
                return Ok(c.route.clone());
            }
        }
        match self.route_fresh(slug).await {
            Err(RouteError::Catalog(e)) if self.inner.health.down().is_some() => self.inner.last_seen(slug, e),
            r => r,
        }
    }

    /// The slug of the tenant whose last-seen route holds key `id` (for a door that finds a
    /// key's tenant by the key, during a catalog outage). Scans the cache.
    pub fn last_seen_key_owner(&self, id: &str) -> Option<String> {
        lock(&self.inner.cache).values().find(|c| c.route.key(id).is_some()).map(|c| c.route.slug.clone())
    }

    /// `Some(why)` while this gateway considers its catalog unreachable.
    pub fn catalog_unreachable(&self) -> Option<String> {
        self.inner.health.down()
    }

    /// The route of tenant `slug`, read from the catalog now (and cached). Fails at once
    /// while the catalog is known to be unreachable (the listener notices its return).
    pub async fn route_fresh(&self, slug: &str) -> Result<Route, RouteError> {
        if let Some(down) = self.inner.health.down() {
            return Err(RouteError::Catalog(down));
        }
        self.inner.fetch_cached(slug).await
    }

    /// Hold an authenticated connection of a tenant that a move has fenced: wait until the
    /// catalog flips its route and lifts the fence, for at most `bound`, and return the route
    /// as it is then (usually the new placement). A route that is not fenced is returned at
    /// once. The bound is [`RouterOptions::move_hold`]. Past it the caller gets [`RouteError::Moving`], which is retryable.
    ///
    /// Woken by the routing NOTIFY, and re-reads the catalog every 50 ms besides, so a
    /// missed notification costs at most that.
    pub async fn hold_while_fenced(&self, route: Route) -> Result<Route, RouteError> {
        if !route.fenced {
            return Ok(route);
        }
        let bound = self.inner.move_hold;
        let deadline = tokio::time::Instant::now() + bound;
        let mut rx = self.events();
        loop {
            let now = self.route_fresh(&route.slug).await?;
            if now.tenant != route.tenant || !now.fenced {
                return Ok(now);
            }
            let tick = tokio::time::Instant::now() + Duration::from_millis(50);
            if tick >= deadline {
                return Err(RouteError::Moving { slug: route.slug.clone(), held_ms: bound.as_millis() as u64 });
            }
            let wait = async {
                loop {
                    match rx.recv().await {
                        Ok(RouteEvent::TenantChanged(k)) if k == route.tenant.as_str() => return,
                        Ok(RouteEvent::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
                    }
                }
            };
            let _ = tokio::time::timeout_at(tick, wait).await;
        }
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

    /// The catalog connection the router uses (reconnecting if it was lost, within the
    /// catalog timeout), for callers that must read the catalog too (the HTTP door's key
    /// lookup). Fails at once while the catalog is known to be unreachable.
    pub async fn catalog(&self) -> Result<Arc<Catalog>, RouteError> {
        if let Some(down) = self.inner.health.down() {
            return Err(RouteError::Catalog(down));
        }
        let t = self.inner.catalog_timeout;
        match tokio::time::timeout(t, self.inner.catalog()).await {
            Ok(r) => r,
            Err(_) => Err(self.inner.timed_out()),
        }
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
        match Catalog::connect(&self.catalog_url).await {
            Ok(c) => {
                let c = Arc::new(c);
                *slot = Some(c.clone());
                Ok(c)
            }
            Err(e) => {
                let e = e.to_string();
                self.health.failed(&e);
                Err(RouteError::Catalog(e))
            }
        }
    }

    /// The catalog did not answer within the timeout: count it as down and drop the
    /// connection (the next attempt opens a new one).
    fn timed_out(&self) -> RouteError {
        let e = format!("no answer within {} ms", self.catalog_timeout.as_millis());
        self.health.failed(&e);
        if let Ok(mut slot) = self.catalog.try_lock() {
            *slot = None;
        }
        RouteError::Catalog(e)
    }

    /// The route last seen for `slug`, if the outage policy allows serving it now.
    fn last_seen(&self, slug: &str, why: String) -> Result<Route, RouteError> {
        if self.health.may_serve_last_seen() {
            if let Some(c) = lock(&self.cache).get(slug) {
                metrics::counter!("tenantgate_catalog_last_seen_routes_total").increment(1);
                return Ok(c.route.clone());
            }
        }
        metrics::counter!("tenantgate_catalog_refused_lookups_total").increment(1);
        Err(RouteError::Catalog(why))
    }

    /// Read `slug`'s route from the catalog and cache it (or forget a tenant that is gone).
    async fn fetch_cached(&self, slug: &str) -> Result<Route, RouteError> {
        let route = self.fetch(slug).await;
        let mut cache = lock(&self.cache);
        match &route {
            Ok(r) => {
                cache.insert(slug.to_string(), Cached::new(r.clone()));
            }
            Err(RouteError::UnknownTenant(_)) => {
                cache.remove(slug);
            }
            Err(_) => {}
        }
        route
    }

    /// Read `slug`'s route from the catalog, within the catalog timeout, noting whether the
    /// catalog answered, and publish the tenant's quota override read with it.
    async fn fetch(&self, slug: &str) -> Result<Route, RouteError> {
        let route = match tokio::time::timeout(self.catalog_timeout, self.fetch_once(slug)).await {
            Ok(r) => {
                if !matches!(r, Err(RouteError::Catalog(_))) {
                    self.health.ok();
                }
                r
            }
            Err(_) => Err(self.timed_out()),
        };
        match &route {
            Ok(r) => self.quota_overrides.set(&r.slug, r.quotas),
            Err(RouteError::UnknownTenant(_)) => self.quota_overrides.set(slug, None),
            // Unknown now: the override last read stays, as the route last seen does.
            Err(_) => {}
        }
        route
    }

    /// The tenant's quota override from the catalog. One the gateway cannot use (written
    /// by hand, or by a newer version) is logged and ignored: the config's limits apply.
    async fn quotas_of(&self, cat: &Catalog, slug: &str, key: &tg_catalog::model::TenantKey) -> Result<Option<LimitsConfig>, tg_catalog::Error> {
        let Some(v) = cat.tenant_quotas(key).await? else { return Ok(None) };
        let at = format!("the quota override of {slug} in the catalog (tg.tenant_quotas)");
        let parsed = serde_json::from_value::<LimitsConfig>(v).map_err(|e| e.to_string()).and_then(|l| l.validate(&at).map(|()| l).map_err(|e| e.to_string()));
        match parsed {
            Ok(l) => Ok(Some(l)),
            Err(e) => {
                tracing::warn!("ignoring {at}: {e}; set it again with PUT /admin/v1/tenants/{slug}/quotas or clear it with DELETE");
                Ok(None)
            }
        }
    }

    async fn fetch_once(&self, slug: &str) -> Result<Route, RouteError> {
        let cat = self.catalog().await?;
        let db = |e: tg_catalog::Error| {
            let e = e.to_string();
            if cat.is_closed() {
                self.health.failed(&e);
            }
            RouteError::Catalog(e)
        };
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
        let quotas = self.quotas_of(&cat, &tenant.slug, &tenant.key).await.map_err(db)?;
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
            fenced: tenant.fenced,
            keys: Arc::new(keys),
            quotas,
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
                // Kept as the last-seen routes for an outage; re-read before use otherwise.
                RouteEvent::Resync => cache.values_mut().for_each(|c| c.stale = true),
            }
        }
        let _ = self.events.send(event);
    }
}

