//! Who is calling: the tenant principal of a request (from a verified JWT or a tenant API key
//! `Bearer tgk_…`), the `X-Tenant-ID` cross-check, and the admin token of `/admin/v1/`.
//!
//! Owns every decision about identity on the HTTP side. The tenant comes only from a verified
//! credential: never from a query string, a body, or a header on its own. `X-Tenant-ID`, when
//! sent, must appear once and equal the credential's tenant (403 otherwise). API-key checks run
//! PBKDF2 (4096 rounds) once, then are remembered by the SHA-256 of the key for
//! `key_cache_seconds`; a revocation, suspension or move (the router's NOTIFY events) evicts at
//! once. Must never log, return or label metrics with a token, key or admin secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tg_catalog::keys::{KeyScope, ScramVerifier, SCRAM_ITERATIONS};
use tg_dataplane::router::{Route, RouteError, RouteEvent, Router};

use crate::jwt::{JwtVerifier, TokenError};
use crate::metrics;
use crate::problem::Problem;

pub const TENANT_HEADER: &str = "x-tenant-id";

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

/// The one bearer token of a request, or a 401 that says what to send.
pub fn bearer(headers: &HeaderMap) -> Result<&str, Problem> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        metrics::auth_failure("missing");
        return Err(Problem::unauthorized(
            "send exactly one `Authorization: Bearer <token>` header, with a tenant JWT or API key (tgk_…)",
        ));
    };
    let v = v.to_str().unwrap_or("");
    let token = match v.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => "",
    };
    if token.is_empty() {
        metrics::auth_failure("malformed");
        return Err(Problem::unauthorized("the Authorization header must be `Bearer <token>`"));
    }
    Ok(token)
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

const BAD_KEY: &str = "the API key is not valid: it is unknown, revoked or mistyped. Ask the operator for a key (`tenantgate key create SLUG`)";

impl Authenticator<'_> {
    /// The principal of a request, and its tenant's route (not yet checked for routability).
    pub async fn principal(&self, headers: &HeaderMap) -> Result<(Principal, Route), Problem> {
        let token = bearer(headers)?;
        let principal = if token.starts_with("tgk_") {
            if !self.api_keys {
                metrics::auth_failure("api-key-disabled");
                return Err(Problem::unauthorized("API keys are not accepted over HTTP here (http.api_keys = false); use a JWT"));
            }
            self.api_key(token).await?
        } else {
            let claims = self.jwt.verify(token).map_err(|e| {
                metrics::auth_failure(match e {
                    TokenError::Expired => "expired",
                    TokenError::NotYetValid => "not-yet-valid",
                    TokenError::WrongIssuer => "issuer",
                    TokenError::WrongAudience => "audience",
                    TokenError::BadSignature => "signature",
                    _ => "malformed",
                });
                Problem::unauthorized(e.to_string())
            })?;
            Principal {
                tenant: claims.tenant,
                scope: if claims.read_only { KeyScope::ReadOnly } else { KeyScope::ReadWrite },
                via: Credential::Jwt,
            }
        };
        check_tenant_header(headers, &principal.tenant)?;
        let route = self.router.route(&principal.tenant).await.map_err(route_problem)?;
        // A tenant fenced by a move is held until its route flips (bounded; then 503).
        let route = self.router.hold_while_fenced(route).await.map_err(route_problem)?;
        route.check_routable().map_err(route_problem)?;
        // A cached key check is confirmed against the route's active keys (revocation evicts
        // those by NOTIFY too), so a revoked key stops working even before its cache entry ages.
        if let Credential::ApiKey { id } = &principal.via {
            if route.key(id).is_none() {
                self.keys.forget(id);
                metrics::auth_failure("api-key");
                return Err(Problem::unauthorized(BAD_KEY));
            }
        }
        Ok((principal, route))
    }

    async fn api_key(&self, token: &str) -> Result<Principal, Problem> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(p) = self.keys.get(&digest) {
            return Ok(p);
        }
        let Some(id) = tg_catalog::keys::key_id_of(token) else {
            metrics::auth_failure("api-key");
            return Err(Problem::unauthorized(BAD_KEY));
        };
        let owner = self.key_owner(id).await?;
        let route = match owner {
            Some(slug) => {
                let cached = self.router.route(&slug).await.map_err(route_problem)?;
                // Creating a key sends no NOTIFY, so a cached route may predate a new key.
                if cached.key(id).is_some() {
                    Some(cached)
                } else {
                    Some(self.router.route_fresh(&slug).await.map_err(route_problem)?)
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
            .map_err(|_| Problem::internal("the key check did not finish; try again"))?;
        let (true, true, Some(route)) = (ok, known, route) else {
            metrics::auth_failure("api-key");
            return Err(Problem::unauthorized(BAD_KEY));
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

    /// The slug of the tenant owning unrevoked key `id`.
    async fn key_owner(&self, id: &str) -> Result<Option<String>, Problem> {
        let cat = self.router.catalog().await.map_err(|_| catalog_down())?;
        cat.key_owner(id).await.map_err(|_| catalog_down())
    }
}

/// A verifier no key matches, derived once, checked against when a key id is unknown.
fn dummy_verifier() -> ScramVerifier {
    static DUMMY: std::sync::OnceLock<ScramVerifier> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| ScramVerifier::derive("tgk_dummy", b"tenantgate-dummy", SCRAM_ITERATIONS)).clone()
}

fn catalog_down() -> Problem {
    Problem::unavailable("tenantgate cannot read its catalog right now; try again in a moment")
}

/// `X-Tenant-ID`, if sent, must be sent once and name the credential's tenant.
pub fn check_tenant_header(headers: &HeaderMap, tenant: &str) -> Result<(), Problem> {
    let mut values = headers.get_all(TENANT_HEADER).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(()),
        (Some(_), Some(_)) => Err(Problem::bad_request(
            "duplicate-tenant-header",
            "send X-Tenant-ID at most once; the tenant comes from the token, and the header only confirms it",
        )),
        (Some(v), None) => {
            if v.as_bytes() == tenant.as_bytes() {
                Ok(())
            } else {
                metrics::auth_failure("tenant-mismatch");
                Err(Problem::forbidden(
                    "tenant-mismatch",
                    "X-Tenant-ID does not match the tenant of the credential; drop the header or use a credential of that tenant",
                ))
            }
        }
    }
}

/// A route that cannot be used. An unknown tenant in a *verified* credential reads like an
/// unavailable one, so the answer says nothing about which tenants exist.
fn route_problem(e: RouteError) -> Problem {
    match e {
        RouteError::Catalog(_) => catalog_down(),
        RouteError::Moving { .. } => Problem::unavailable(
            "this tenant is being moved to a new placement and the cut-over is not finished; retry in a moment",
        ),
        RouteError::Suspended { .. } => Problem::forbidden(
            "tenant-suspended",
            "this tenant is suspended; its data cannot be reached until the operator resumes it",
        ),
        RouteError::UnknownTenant(_) | RouteError::Unavailable { .. } => Problem::forbidden(
            "tenant-unavailable",
            "the credential's tenant is not available here; ask the operator (`tenantgate tenant show SLUG`)",
        ),
    }
}

/// The admin bearer token, kept as its SHA-256 so comparisons are constant-time and
/// length-independent.
#[derive(Clone)]
pub struct AdminToken([u8; 32]);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Shortest admin token accepted.
pub const MIN_ADMIN_TOKEN: usize = 24;

impl AdminToken {
    pub fn new(secret: &str) -> Option<AdminToken> {
        let s = secret.trim();
        (s.len() >= MIN_ADMIN_TOKEN).then(|| AdminToken(Sha256::digest(s.as_bytes()).into()))
    }

    pub fn check(&self, headers: &HeaderMap) -> Result<(), Problem> {
        let token = bearer(headers)?;
        let d: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if bool::from(d.ct_eq(&self.0)) {
            Ok(())
        } else {
            metrics::auth_failure("admin");
            Err(Problem::unauthorized("the admin token is not valid; use the one configured in http.admin_token_file or http.admin_token_env"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn tenant_header_rules() {
        let mut h = HeaderMap::new();
        assert!(check_tenant_header(&h, "acme").is_ok());
        h.insert(TENANT_HEADER, HeaderValue::from_static("acme"));
        assert!(check_tenant_header(&h, "acme").is_ok());
        assert_eq!(check_tenant_header(&h, "other").map_err(|p| p.status.as_u16()), Err(403));
        h.append(TENANT_HEADER, HeaderValue::from_static("acme"));
        assert_eq!(check_tenant_header(&h, "acme").map_err(|p| p.status.as_u16()), Err(400));
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert!(bearer(&h).is_err());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(bearer(&h).is_err());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer abc"));
        assert_eq!(bearer(&h).ok(), Some("abc"));
        h.append(header::AUTHORIZATION, HeaderValue::from_static("Bearer def"));
        assert!(bearer(&h).is_err(), "two Authorization headers are refused");
    }

    #[test]
    fn admin_token_compare() {
        assert!(AdminToken::new("short").is_none());
        let t = AdminToken::new("0123456789abcdef01234567").expect("long enough");
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer 0123456789abcdef01234567"));
        assert!(t.check(&h).is_ok());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer 0123456789abcdef01234568"));
        assert!(t.check(&h).is_err());
        assert!(!format!("{t:?}").contains("0123"));
    }
}
