//! The report crate's typed errors. Every message says what went wrong and what to do.
//! Messages never contain secrets: server URLs are redacted before they get here.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Control(#[from] tg_control::Error),

    #[error("config: {0}")]
    Config(String),

    #[error("invalid requirement {value:?}: {reason}. Known requirements: dedicated-database, dedicated-schema, region:<region> (e.g. `--requires dedicated-database,region:eu-central`); pass `--requires ''` to clear them")]
    InvalidRequirement { value: String, reason: String },

    #[error("cannot measure tenant sizes on server {server:?} ({what}): {message}. Check that the server is running and reachable at the URL registered for it (`tenantgate server list`)")]
    Measure { server: String, what: String, message: String },

    #[error("move benchmark {path}: {reason}. Fix the file (format: docs/reports.md) or unset reports.move_benchmark in tenantgate.toml")]
    Benchmark { path: String, reason: String },

    #[error("cannot write {path}: {source}. Check that the directory exists and is writable")]
    Write { path: String, #[source] source: std::io::Error },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn measure(server: &str, what: impl Into<String>, e: tg_control::Error) -> Error {
        Error::Measure { server: server.to_string(), what: what.into(), message: e.to_string() }
    }

    pub(crate) fn measure_db(server: &str, what: impl Into<String>, e: tokio_postgres::Error) -> Error {
        let message = match e.as_db_error() {
            Some(d) => format!("{} (SQLSTATE {})", d.message(), d.code().code()),
            None => e.to_string(),
        };
        Error::Measure { server: server.to_string(), what: what.into(), message }
    }
}
