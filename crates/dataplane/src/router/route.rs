//! What a route is: where one tenant lives and which keys may act as it ([`Route`]), the
//! backend login it gives ([`Login`]), why there is no route ([`RouteError`]), and the
//! changes the router announces ([`RouteEvent`], [`EndReason`]).

use std::sync::Arc;
use std::time::Instant;

use tg_catalog::credentials::MasterKey;
use tg_catalog::keys::{ActiveKey, KeyScope};
use tg_catalog::model::{Placement, TenantKey, TenantStatus};

use crate::config::LimitsConfig;

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
    /// A move is cutting the tenant over: its writes are fenced in the database, and new
    /// connections wait ([`super::Router::hold_while_fenced`]) until the route flips.
    pub fenced: bool,
    /// The tenant's unrevoked keys (verifiers only; they share one salt).
    pub keys: Arc<Vec<ActiveKey>>,
    /// The tenant's quota override from the catalog (`tg.tenant_quotas`, set through the
    /// admin API), which wins over `[gateway.tenant_limits.<slug>]`; `None` when it has none.
    pub quotas: Option<LimitsConfig>,
    pub(super) master: Arc<MasterKey>,
    pub(super) fetched_at: Instant,
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
            .field("quotas", &self.quotas)
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
    /// The tenant stayed fenced for a move longer than the gateway holds a connection.
    /// Retryable: front ends answer 57P03 (wire) or 503 with Retry-After (HTTP).
    #[error("tenant {slug:?} is being moved and its cut-over took longer than {held_ms} ms; connect again in a moment")]
    Moving { slug: String, held_ms: u64 },
}

/// A change the router learned of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteEvent {
    /// A tenant row changed (status, placement, server), its quota override changed, or it
    /// was deleted. Payload: tenant key.
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

