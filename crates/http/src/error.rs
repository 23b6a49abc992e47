//! The library's own errors: what can go wrong while *setting up* the HTTP API (config, key
//! material, binding the listener). Errors that answer a request are `problem::Problem`s.
//!
//! Messages say what to do and never contain a secret: key material is named by file or
//! environment variable only.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("http config: {0}")]
    Config(String),

    #[error("http key material: {0}")]
    Key(String),

    #[error("cannot listen on {addr}: {source}. Pick a free address with `listen` in [http] of tenantgate.toml")]
    Bind { addr: String, #[source] source: std::io::Error },

    #[error("http server stopped: {0}")]
    Serve(String),

    #[error(transparent)]
    Control(#[from] tg_catalog::Error),

    #[error(transparent)]
    Jwt(#[from] tg_dataplane::jwt::JwtError),
}
