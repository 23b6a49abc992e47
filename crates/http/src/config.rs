//! `[http]` in tenantgate.toml: where the API listens, which JWT keys it trusts, the admin
//! token, per-tenant limits and metrics labels.
//!
//! Owns parsing, defaults and validation of the table only. It reads no key material itself
//! (see `jwt` and `admin`) and never prints a secret: secrets are named by file or env var.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::HttpError;

/// Default listen address (DESIGN §8).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `false` keeps `tenantgate serve` from starting the HTTP API.
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Keys that may sign tenant JWTs; each pins its algorithm.
    #[serde(default)]
    pub jwt_keys: Vec<JwtKeyConfig>,
    /// Required `iss`, when set.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values, when set (one string or a list).
    #[serde(default, deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// Claim holding the tenant slug.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// Claim holding the scope: `read` or `write` (a space-separated list or an array is accepted).
    #[serde(default = "default_scope_claim")]
    pub scope_claim: String,
    /// Accept tenant API keys (`Authorization: Bearer tgk_…`).
    #[serde(default = "yes")]
    pub api_keys: bool,
    /// How long a successful API-key check is remembered (revocation evicts at once via NOTIFY).
    #[serde(default = "default_key_cache")]
    pub key_cache_seconds: u64,
    /// File holding the admin bearer token (takes precedence over `admin_token_env`).
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// Environment variable holding the admin bearer token.
    #[serde(default)]
    pub admin_token_env: Option<String>,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_body")]
    pub max_body_bytes: usize,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
}

/// The JWT key types live with the verifier, in `tg_dataplane::jwt`.
pub use tg_dataplane::jwt::{Alg, JwtKeyConfig};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Rows returned by one `/v1/sql` call; more sets `truncated`.
    #[serde(default = "default_rows")]
    pub max_rows: u32,
    /// Bytes of row data returned by one call (PostgreSQL text form); more sets `truncated`.
    #[serde(default = "default_bytes")]
    pub max_bytes: usize,
    /// `statement_timeout` for every statement, and the cap a tenant may SET.
    #[serde(default = "default_timeout")]
    pub statement_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig { max_rows: default_rows(), max_bytes: default_bytes(), statement_timeout_ms: default_timeout() }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests per second each tenant may sustain; 0 disables the limit.
    #[serde(default = "default_rate")]
    pub rate_per_second: f64,
    /// Requests a tenant may send at once after being idle.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig { rate_per_second: default_rate(), burst: default_burst() }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// The busiest N tenants get their own label; the rest share `other`. 0 labels none.
    #[serde(default = "default_top")]
    pub top_tenants: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { top_tenants: default_top() }
    }
}

fn yes() -> bool {
    true
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_leeway() -> u64 {
    30
}
fn default_tenant_claim() -> String {
    "tenant".into()
}
fn default_scope_claim() -> String {
    "scope".into()
}
fn default_key_cache() -> u64 {
    30
}
fn default_body() -> usize {
    1 << 20
}
fn default_rows() -> u32 {
    1000
}
fn default_bytes() -> usize {
    4 << 20
}
fn default_timeout() -> u64 {
    30_000
}
fn default_rate() -> f64 {
    50.0
}
fn default_burst() -> u32 {
    100
}
fn default_top() -> usize {
    20
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl Default for HttpConfig {
    fn default() -> Self {
        // An empty table yields every default; this cannot fail.
        HttpConfig::from_table(&toml::Table::new()).unwrap_or_else(|_| unreachable!())
    }
}

impl HttpConfig {
    /// What the JWT verifier (and the development signer) need, for this door and the MCP door.
    pub fn jwt(&self) -> tg_dataplane::jwt::JwtConfig {
        tg_dataplane::jwt::JwtConfig {
            keys: self.jwt_keys.clone(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway_seconds: self.leeway_seconds,
            tenant_claim: self.tenant_claim.clone(),
            scope_claim: self.scope_claim.clone(),
        }
    }

    /// Parse `[http]` (`tg_catalog::config::Config::http`) strictly.
    pub fn from_table(table: &toml::Table) -> Result<HttpConfig, HttpError> {
        let cfg: HttpConfig = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e| HttpError::Config(format!("[http] is not valid: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), HttpError> {
        let bad = |m: String| Err(HttpError::Config(m));
        for (i, k) in self.jwt_keys.iter().enumerate() {
            let at = format!("[[http.jwt_keys]] #{}", i + 1);
            match k.alg {
                Alg::HS256 => {
                    if k.secret_file.is_none() && k.secret_env.is_none() {
                        return bad(format!("{at}: an HS256 key needs secret_file or secret_env"));
                    }
                    if k.jwks_file.is_some() {
                        return bad(format!("{at}: an HS256 key takes a secret, not jwks_file (pinning: a public key is never an HMAC secret)"));
                    }
                }
                Alg::RS256 | Alg::ES256 => {
                    if k.jwks_file.is_none() {
                        return bad(format!("{at}: an {} key needs jwks_file", k.alg.as_str()));
                    }
                    if k.secret_file.is_some() || k.secret_env.is_some() {
                        return bad(format!("{at}: an {} key takes jwks_file, not a secret", k.alg.as_str()));
                    }
                }
            }
        }
        if self.tenant_claim.is_empty() || self.scope_claim.is_empty() {
            return bad("http.tenant_claim and http.scope_claim must not be empty".into());
        }
        if !(self.rate_limit.rate_per_second >= 0.0 && self.rate_limit.rate_per_second.is_finite()) {
            return bad("http.rate_limit.rate_per_second must be a number ≥ 0 (0 disables the limit)".into());
        }
        if self.rate_limit.rate_per_second > 0.0 && self.rate_limit.burst == 0 {
            return bad("http.rate_limit.burst must be at least 1".into());
        }
        if self.limits.max_rows == 0 || self.limits.max_bytes == 0 {
            return bad("http.limits.max_rows and max_bytes must be at least 1".into());
        }
        if self.limits.statement_timeout_ms == 0 {
            return bad("http.limits.statement_timeout_ms must be at least 1 (a statement always has a timeout over HTTP)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = HttpConfig::default();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.leeway_seconds, 30);
        assert_eq!(c.tenant_claim, "tenant");
        assert_eq!(c.scope_claim, "scope");
        assert!(c.enabled && c.api_keys);
    }

    #[test]
    fn parses_full_table() {
        let t: toml::Table = toml::from_str(
            r#"
            listen = "127.0.0.1:9999"
            issuer = "https://issuer"
            audience = "tenantgate"
            [[jwt_keys]]
            kid = "dev"
            alg = "HS256"
            secret_file = "jwt.secret"
            [[jwt_keys]]
            alg = "RS256"
            jwks_file = "keys.json"
            [rate_limit]
            rate_per_second = 5
            burst = 2
            "#,
        )
        .expect("toml");
        let c = HttpConfig::from_table(&t).expect("valid");
        assert_eq!(c.audience, vec!["tenantgate".to_string()]);
        assert_eq!(c.jwt_keys.len(), 2);
        assert_eq!(c.rate_limit.burst, 2);
    }

    #[test]
    fn refuses_unknown_keys_and_mixed_material() {
        let t: toml::Table = toml::from_str("bogus = 1").expect("toml");
        assert!(HttpConfig::from_table(&t).is_err());
        let t: toml::Table =
            toml::from_str("[[jwt_keys]]\nalg = \"HS256\"\njwks_file = \"k.json\"\nsecret_env = \"X\"").expect("toml");
        assert!(HttpConfig::from_table(&t).is_err());
        let t: toml::Table = toml::from_str("[[jwt_keys]]\nalg = \"none\"\nsecret_env = \"X\"").expect("toml");
        assert!(HttpConfig::from_table(&t).is_err());
    }
}
