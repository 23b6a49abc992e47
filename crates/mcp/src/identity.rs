//! Who is calling the MCP door: a call's credential, where it comes from, and the tenant
//! principal and route it proves.
//!
//! Over stdio the credential is the process's own (`TENANTGATE_MCP_TOKEN` or `--token`, a
//! tenant API key `tgk_…` or a JWT), optionally with the tenant slug it must belong to. Over
//! HTTP it is each request's `Authorization: Bearer` header, verified before the request
//! reaches the MCP service. Either way the check is `tg_dataplane::principal`'s, the same as the
//! HTTP door's, and it is repeated for every tool call (cheap: successful key checks are cached,
//! and a revocation, suspension or move evicts at once), so a key revoked mid-session stops
//! working at the next call.
//!
//! Must never: take a tenant from a tool argument, log or return a credential, or name another
//! tenant in a refusal.

use std::sync::Arc;
use std::time::Duration;

use tg_dataplane::jwt::JwtVerifier;
use tg_dataplane::principal::{AuthError, Authenticator, KeyCache, Principal};
use tg_dataplane::router::Route;
use tg_dataplane::statement::CallLimits;
use tg_dataplane::DataPlane;

use crate::error::McpError;
use crate::settings::McpSettings;

/// A verified caller: the principal and its tenant's route.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub route: Route,
}

/// Where a call's credential comes from.
#[derive(Clone)]
pub enum Source {
    /// The process's credential (stdio), and the tenant slug it must belong to, if given.
    Process { token: Arc<str>, tenant: Option<String> },
    /// The HTTP request's `Authorization` header, verified by [`crate::http`] into a [`Caller`].
    Request,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Process { tenant, .. } => write!(f, "Process(<redacted>, tenant: {tenant:?})"),
            Source::Request => f.write_str("Request"),
        }
    }
}

/// The door's shared state: the data plane, the credential verifiers and the call limits.
pub struct Identity {
    pub data: DataPlane,
    jwt: JwtVerifier,
    keys: Arc<KeyCache>,
    settings: McpSettings,
}

impl Identity {
    /// Load the JWT keys and start following the router's revocation events. Call inside the
    /// runtime.
    pub fn new(data: DataPlane, settings: McpSettings) -> Result<Arc<Identity>, McpError> {
        let jwt = JwtVerifier::load(&settings.jwt, &settings.base_dir)?;
        let keys = KeyCache::new(Duration::from_secs(settings.key_cache_seconds));
        keys.follow(&data.router);
        Ok(Arc::new(Identity { data, jwt, keys, settings }))
    }

    fn authenticator(&self) -> Authenticator<'_> {
        Authenticator { jwt: &self.jwt, router: &self.data.router, keys: &self.keys, api_keys: self.settings.api_keys }
    }

    /// Verify `token`; when `tenant` is given, the credential must belong to that tenant.
    pub async fn caller(&self, token: &str, tenant: Option<&str>) -> Result<Caller, AuthError> {
        let auth = self.authenticator();
        let principal = auth.verify(token).await?;
        if let Some(t) = tenant {
            if t != principal.tenant {
                return Err(AuthError::Forbidden {
                    code: "tenant-mismatch",
                    message: "the credential does not belong to the tenant named by TENANTGATE_MCP_TENANT (--tenant); \
                              use that tenant's key or token, or drop the setting"
                        .into(),
                });
            }
        }
        let route = auth.route(&principal).await?;
        Ok(Caller { principal, route })
    }

    /// The limits of one call of `tenant`.
    pub fn limits(&self, tenant: &str) -> CallLimits {
        let s = &self.settings;
        CallLimits::for_tenant(&self.data, tenant, s.max_rows, s.max_bytes, s.statement_timeout_ms)
    }
}

/// A refusal as one line for the agent (or the operator's terminal).
pub fn refusal(e: &AuthError) -> String {
    match e {
        AuthError::Unauthorized { message, .. } => format!("unauthorized: {message}"),
        AuthError::Forbidden { code, message } => format!("forbidden ({code}): {message}"),
        AuthError::Unavailable(message) => format!("unavailable: {message}"),
    }
}
