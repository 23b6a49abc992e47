//! Why the MCP door could not start: a missing or refused credential, key material, stdio.
//! Errors of a single tool call are tool results (see `tools`), not this type.
//!
//! Messages say what to do and never contain a secret.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum McpError {
    /// No credential, or one that was refused (the text says why, and names no tenant).
    #[error("{0}")]
    Credential(String),

    #[error(transparent)]
    Jwt(#[from] tg_dataplane::jwt::JwtError),

    #[error("the MCP session over stdio failed: {0}")]
    Transport(String),
}
