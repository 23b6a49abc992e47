//! What the MCP door is configured with. It takes the same credentials and the same per-call
//! limits as the HTTP door, from `[http]` of tenantgate.toml; the binary reads that table (it
//! owns config parsing) and hands the values over, so this crate never parses another door's
//! table or depends on its crate.
//!
//! Owns the defaults a test or embedder may start from; holds no secret (keys are named by file
//! or environment variable in [`JwtConfig`]).

use std::path::PathBuf;

use tg_dataplane::jwt::JwtConfig;

#[derive(Debug, Clone)]
pub struct McpSettings {
    /// The JWT keys and claims (`[http]` `jwt_keys`, `issuer`, `audience`, …).
    pub jwt: JwtConfig,
    /// Resolves relative key file names (the config's directory).
    pub base_dir: PathBuf,
    /// Accept tenant API keys (`tgk_…`).
    pub api_keys: bool,
    /// How long a successful API-key check is remembered (revocation evicts at once).
    pub key_cache_seconds: u64,
    /// Rows one `run_sql` returns; more sets `truncated`.
    pub max_rows: u32,
    /// Bytes of row data one `run_sql` returns; more sets `truncated`.
    pub max_bytes: usize,
    /// `statement_timeout` of every call (capped by `[gateway]`'s per-tenant cap).
    pub statement_timeout_ms: u64,
}
