//! The gateway's top-level error: why `tenantgate serve` could not start or stopped.
//!
//! Session-level problems are not errors of this kind: they become a FATAL/ERROR message to
//! that one client and never stop the gateway. Messages never contain secrets.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum GatewayError {
    #[error("gateway config: {0}")]
    Config(String),

    #[error(transparent)]
    Control(#[from] tg_catalog::Error),

    #[error("cannot listen on {addr}: {source}. Pick a free address with gateway.listen in tenantgate.toml or --listen")]
    Listen { addr: String, #[source] source: std::io::Error },

    #[error("TLS setup: {0}")]
    Tls(String),
}
