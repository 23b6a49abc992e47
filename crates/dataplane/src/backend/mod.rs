//! The backend side: connections to tenant servers ([`conn`]) and the per-tenant-role pools
//! under a per-server budget ([`pool`]).
//!
//! Owns every connection the gateway opens to a tenant server. It never chooses a tenant or
//! a scope itself (the caller passes a [`crate::router::Route`] and a key scope), never shares
//! a connection across tenant roles, and never logs a password.

pub mod conn;
pub mod pool;

pub use conn::{BackendReader, BackendWriter, CancelTarget, Parked, RawMessage, ReaderState};
pub use pool::{Backend, Carried, Door, PoolStats, Pools};

/// Why a backend connection could not be had or used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    #[error("too many connections for server {server}: {why}; waited {waited_ms} ms. Try again shortly, or ask the operator to raise {limit}")]
    Exhausted { server: String, why: String, waited_ms: u64, limit: &'static str },
    #[error("{0}")]
    NotRoutable(String),
    #[error("cannot reach the tenant's database server: {0}")]
    Unreachable(String),
    #[error("{message}")]
    Backend { code: String, message: String },
    #[error("protocol error talking to the database server: {0}")]
    Protocol(String),
    #[error("lost the connection to the database server")]
    Closed,
}

impl PoolError {
    pub fn io(e: std::io::Error) -> PoolError {
        PoolError::Unreachable(e.to_string())
    }

    /// The SQLSTATE to report to a client.
    pub fn sqlstate(&self) -> &str {
        match self {
            PoolError::Exhausted { .. } => "53300",
            PoolError::NotRoutable(_) => "57P03",
            PoolError::Unreachable(_) | PoolError::Closed => "08006",
            PoolError::Backend { code, .. } if !code.is_empty() => code,
            PoolError::Backend { .. } => "XX000",
            PoolError::Protocol(_) => "08P01",
        }
    }
}
