//! Who is calling, for every door that takes a bearer credential (HTTP, MCP): the tenant
//! principal of a verified JWT or tenant API key (`tgk_…`), and its route.
//!
//! Owns every decision about identity shared by the doors. The tenant comes only from a
//! verified credential. API-key checks run PBKDF2 (4096 rounds) once, then are remembered by
//! the SHA-256 of the key for `key_cache_seconds`; a revocation, suspension or move (the
//! router's NOTIFY events) evicts at once. A read-only key or token gives a read-only principal,
//! which the pools log in as the tenant's `_ro` role.
//!
//! How a door carries the credential (a header, an environment variable) and how it shows a
//! refusal ([`AuthError`]) is the door's business. Must never log, return or label metrics
//! with a token, key or secret, and never name another tenant in an error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tg_catalog::keys::{KeyScope, ScramVerifier, SCRAM_ITERATIONS};

use crate::jwt::{JwtVerifier, TokenError};
use crate::router::{Route, RouteError, RouteEvent, Router};

/// How the principal proved itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Jwt,
    ApiKey { id: String },
}

/// An authenticated tenant principal.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: String,
    pub scope: KeyScope,
    pub via: Credential,
}

impl Principal {
    pub fn gate_scope(&self) -> tg_gate::Scope {
        match self.scope {
            KeyScope::ReadWrite => tg_gate::Scope::ReadWrite,
            KeyScope::ReadOnly => tg_gate::Scope::ReadOnly,
        }
    }
}

/// Why a credential or its tenant was refused. Every message is safe to show the caller: it
/// echoes nothing from the credential and names no tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The credential is missing, malformed, expired or not valid. `reason` is a short,
    /// fixed label for metrics.
    #[error("{message}")]
    Unauthorized { reason: &'static str, message: String },
    /// The credential is valid but its tenant may not be served (suspended, unavailable).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// Try again later (catalog unreachable, a move's cut-over).
    #[error("{0}")]
    Unavailable(String),
}

impl AuthError {
    fn unauthorized(reason: &'static str, message: impl Into<String>) -> AuthError {
        AuthError::Unauthorized { reason, message: message.into() }
    }
}

struct CachedKey {
    tenant: String,
    tenant_key: String,
    id: String,
    scope: KeyScope,
    at: Instant,
}

/// Successful API-key checks, by SHA-256 of the key string.
pub struct KeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], CachedKey>>,
    touched: Mutex<HashMap<String, Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl KeyCache {
    pub fn new(ttl: Duration) -> Arc<KeyCache> {
        Arc::new(KeyCache { ttl, entries: Mutex::new(HashMap::new()), touched: Mutex::new(HashMap::new()) })
    }

    /// Evict on the router's events for as long as the cache lives.
    pub fn follow(self: &Arc<Self>, router: &Router) {
        let weak: Weak<KeyCache> = Arc::downgrade(self);
        let mut rx = router.events();
        tokio::spawn(async move {
            loop {
                let ev = rx.recv().await;
                let Some(cache) = weak.upgrade() else { return };
                let mut e = lock(&cache.entries);
                match ev {
                    Ok(RouteEvent::KeyRevoked(id)) => e.retain(|_, k| k.id != id),
                    Ok(RouteEvent::TenantChanged(key)) => e.retain(|_, k| k.tenant_key != key),
                    // Resync, or events were missed (lagged): forget everything.
                    Ok(RouteEvent::Resync) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => e.clear(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    fn get(&self, digest: &[u8; 32]) -> Option<Principal> {
        let mut e = lock(&self.entries);
        match e.get(digest) {
            Some(k) if k.at.elapsed() < self.ttl => {
                Some(Principal { tenant: k.tenant.clone(), scope: k.scope, via: Credential::ApiKey { id: k.id.clone() } })
            }
            Some(_) => {
                e.remove(digest);
                None
            }
            None => None,
        }
    }

    fn put(&self, digest: [u8; 32], route: &Route, id: &str, scope: KeyScope) {
        let mut e = lock(&self.entries);
        if e.len() > 100_000 {
            e.clear();
        }
        e.insert(
            digest,
            CachedKey { tenant: route.slug.clone(), tenant_key: route.tenant.to_string(), id: id.to_string(), scope, at: Instant::now() },
        );
    }

    fn forget(&self, id: &str) {
        lock(&self.entries).retain(|_, k| k.id != id);
    }

    /// Should `last_used_at` of key `id` be written now? (At most once a minute per key.)
    fn should_touch(&self, id: &str) -> bool {
        let mut t = lock(&self.touched);
        let now = Instant::now();
        match t.get(id) {
            Some(at) if now.duration_since(*at) < Duration::from_secs(60) => false,
            _ => {
                if t.len() > 100_000 {
                    t.clear();
                }
                t.insert(id.to_string(), now);
                true
            }
        }
    }
}

/// Everything authentication needs.
pub struct Authenticator<'a> {
    pub jwt: &'a JwtVerifier,
    pub router: &'a Router,
    pub keys: &'a Arc<KeyCache>,
    pub api_keys: bool,
}

pub const BAD_KEY: &str = "the API key is not valid: it is unknown, revoked or mistyped. Ask the operator for a key (`tenantgate key create SLUG`)";

impl Authenticator<'_> {
    /// The principal a bearer credential proves: a `tgk_` API key or a JWT. Its route is
    /// not looked at yet (see [`Authenticator::route`]), so a door may check what else the
    /// request says about the tenant in between.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::unauthorized("missing", "no credential was given; use a tenant API key (tgk_…) or a tenant JWT"));
        }
        if token.starts_with("tgk_") {
            if !self.api_keys {
                return Err(AuthError::unauthorized(
                    "api-key-disabled",
                    "API keys are not accepted here (http.api_keys = false); use a JWT",
                ));
            }
            return self.api_key(token).await;
        }
        let claims = self.jwt.verify(token).map_err(|e| {
            let reason = match e {
                TokenError::Expired => "expired",
                TokenError::NotYetValid => "not-yet-valid",
                TokenError::WrongIssuer => "issuer",
                TokenError::WrongAudience => "audience",
                TokenError::BadSignature => "signature",
                _ => "malformed",
            };
            AuthError::unauthorized(reason, e.to_string())
        })?;
        Ok(Principal {
            tenant: claims.tenant,
            scope: if claims.read_only { KeyScope::ReadOnly } else { KeyScope::ReadWrite },
            via: Credential::Jwt,
        })
    }

    /// The route of a verified principal's tenant, held through a move's fence and checked
    /// routable; an API key is confirmed against the route's active keys.
    pub async fn route(&self, principal: &Principal) -> Result<Route, AuthError> {
        let route = self.router.route(&principal.tenant).await.map_err(route_error)?;
        // A tenant fenced by a move is held until its route flips (bounded; then unavailable).
        let route = self.router.hold_while_fenced(route).await.map_err(route_error)?;
        route.check_routable().map_err(route_error)?;
        // A cached key check is confirmed against the route's active keys (revocation evicts
        // those by NOTIFY too), so a revoked key stops working even before its cache entry ages.
        if let Credential::ApiKey { id } = &principal.via {
            if route.key(id).is_none() {
                self.keys.forget(id);
                return Err(AuthError::unauthorized("api-key", BAD_KEY));
            }
        }
        Ok(route)
    }

    /// [`verify`](Self::verify) then [`route`](Self::route).
    pub async fn principal(&self, token: &str) -> Result<(Principal, Route), AuthError> {
        let p = self.verify(token).await?;
        let r = self.route(&p).await?;
        Ok((p, r))
    }

    async fn api_key(&self, token: &str) -> Result<Principal, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(p) = self.keys.get(&digest) {
            return Ok(p);
        }
        let Some(id) = tg_catalog::keys::key_id_of(token) else {
            return Err(AuthError::unauthorized("api-key", BAD_KEY));
        };
        let owner = self.key_owner(id).await?;
        let route = match owner {
            Some(slug) => {
                let cached = self.router.route(&slug).await.map_err(route_error)?;
                // Creating a key sends no NOTIFY, so a cached route may predate a new key.
                if cached.key(id).is_some() {
                    Some(cached)
                } else {
                    Some(self.router.route_fresh(&slug).await.map_err(route_error)?)
                }
            }
            None => None,
        };
        let verifier: Option<(ScramVerifier, KeyScope)> =
            route.as_ref().and_then(|r| r.key(id)).map(|k| (k.verifier.clone(), k.scope));
        // An unknown id costs the same PBKDF2 as a wrong secret.
        let (v, scope, known) = match verifier {
            Some((v, s)) => (v, s, true),
            None => (dummy_verifier(), KeyScope::ReadOnly, false),
        };
        let secret = token.to_string();
        let ok = tokio::task::spawn_blocking(move || v.check_password(&secret))
            .await
            .map_err(|_| AuthError::Unavailable("the key check did not finish; try again".into()))?;
        let (true, true, Some(route)) = (ok, known, route) else {
            return Err(AuthError::unauthorized("api-key", BAD_KEY));
        };
        self.keys.put(digest, &route, id, scope);
        if self.keys.should_touch(id) {
            let router = self.router.clone();
            let id = id.to_string();
            tokio::spawn(async move {
                if let Ok(cat) = router.catalog().await {
                    let _ = cat.touch_key(&id).await;
                }
            });
        }
        Ok(Principal { tenant: route.slug.clone(), scope, via: Credential::ApiKey { id: id.to_string() } })
    }

    /// The slug of the tenant owning unrevoked key `id`. While the catalog cannot be reached,
    /// the owner among the routes last seen (the router then decides whether those may serve).
    async fn key_owner(&self, id: &str) -> Result<Option<String>, AuthError> {
        let cat = match self.router.catalog().await {
            Ok(cat) => cat,
            Err(_) => return self.router.last_seen_key_owner(id).map(Some).ok_or_else(catalog_down),
        };
        cat.key_owner(id).await.map_err(|_| catalog_down())
    }
}

/// A verifier no key matches, derived once, checked against when a key id is unknown.
fn dummy_verifier() -> ScramVerifier {
    static DUMMY: std::sync::OnceLock<ScramVerifier> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| ScramVerifier::derive("tgk_dummy", b"tenantgate-dummy", SCRAM_ITERATIONS)).clone()
}

fn catalog_down() -> AuthError {
    AuthError::Unavailable("tenantgate cannot read its catalog right now; try again in a moment".into())
}

/// A route that cannot be used. An unknown tenant in a *verified* credential reads like an
/// unavailable one, so the answer says nothing about which tenants exist.
fn route_error(e: RouteError) -> AuthError {
    match e {
        RouteError::Catalog(_) => catalog_down(),
        RouteError::Moving { .. } => AuthError::Unavailable(
            "this tenant is being moved to a new placement and the cut-over is not finished; retry in a moment".into(),
        ),
        RouteError::Suspended { .. } => AuthError::Forbidden {
            code: "tenant-suspended",
            message: "this tenant is suspended; its data cannot be reached until the operator resumes it".into(),
        },
        RouteError::UnknownTenant(_) | RouteError::Unavailable { .. } => AuthError::Forbidden {
            code: "tenant-unavailable",
            message: "the credential's tenant is not available here; ask the operator (`tenantgate tenant show SLUG`)".into(),
        },
    }
}
