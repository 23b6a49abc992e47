//! The control plane's typed errors.
//!
//! Every variant's message says what went wrong *and* what to do about it, because
//! these messages reach operators verbatim through the CLI and the admin API.
//! Messages must never contain secrets: URLs are redacted before they get here.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("config: {0}")]
    Config(String),

    #[error("master key not available: {0}. Set TENANTGATE_MASTER_KEY, or point `master_key.file` in tenantgate.toml at a file holding at least 32 random bytes (e.g. `openssl rand -hex 32 > master.key`)")]
    MasterKeyMissing(String),

    #[error("master key does not match the one this catalog was set up with (fingerprint {expected} expected, {actual} given). Use the original key; rotating it needs `tenantgate` to re-derive every role password")]
    MasterKeyMismatch { expected: String, actual: String },

    #[error("invalid tenant slug {slug:?}: {reason}. A slug is 3-40 characters of lowercase letters, digits and '-', starting with a letter, e.g. `acme-corp`")]
    InvalidSlug { slug: String, reason: &'static str },

    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput { what: &'static str, value: String, reason: String },

    #[error("tenant {0:?} already exists. Pick another slug, or `tenantgate tenant show {0}` to see it")]
    DuplicateTenant(String),

    #[error("no tenant {0:?}. `tenantgate tenant list` shows the tenants that exist")]
    UnknownTenant(String),

    #[error("tenant {slug:?} has no key {id:?}. `tenantgate key list {slug}` shows its keys")]
    UnknownKey { slug: String, id: String },

    #[error("no server {0:?}. `tenantgate server list` shows the servers; add one with `tenantgate server add NAME --url URL --region REGION`")]
    UnknownServer(String),

    #[error("server {0:?} already exists. `tenantgate server list` shows it")]
    DuplicateServer(String),

    #[error("no servers are registered. Add one with `tenantgate server add NAME --url URL --region REGION`")]
    NoServers,

    #[error("residency violation: tenant {slug:?} may only be stored in region(s) {allowed}, but server {server:?} is in region {region:?}. Choose a server in an allowed region with --server, or change --residency. Nothing was created")]
    Residency { slug: String, allowed: String, server: String, region: String },

    #[error("no server in region(s) {0} is registered. Add one with `tenantgate server add NAME --url URL --region REGION`, or change --residency")]
    NoServerInResidency(String),

    #[error("cannot reach {what} at {url}: {source}. Check that the server is running and the URL, user and password are right")]
    Unreachable { what: String, url: String, #[source] source: tokio_postgres::Error },

    #[error("server {server:?} is not usable: {reason}")]
    ServerCheck { server: String, reason: String },

    #[error("catalog is not initialised (or is older than this binary). Run `tenantgate init`")]
    CatalogNotInitialised,

    #[error("database error during {context}: {message}")]
    Db { context: String, message: String },

    #[error("tenant {slug:?} is {status}; {hint}")]
    WrongStatus { slug: String, status: String, hint: String },

    #[error("refusing to erase {slug:?}: pass `--confirm {slug}` to confirm; erasure cannot be undone")]
    EraseNotConfirmed { slug: String },

    #[error("migrations: {0}")]
    Migration(String),

    #[error("io error on {path}: {source}")]
    Io { path: String, #[source] source: std::io::Error },

    /// Source and target of a move disagree under the fence (the move is rolled back).
    #[error("verification failed: {0}")]
    Verify(String),

    /// A tenant archive that cannot be read or trusted (the message says which file and why).
    #[error("{0}")]
    Archive(String),

    /// An import refused or rolled back (the message says what was kept and what to do).
    #[error("{0}")]
    Import(String),

    /// pgBackRest or a point-in-time restore failed (the message says what to do).
    #[error("{0}")]
    Backup(String),

    #[error("simulated crash at failpoint {0} (TENANTGATE_FAILPOINT)")]
    Failpoint(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wrap a database error with what we were doing. The full server message
    /// (including DETAIL) is kept: control-plane errors go to operators, not tenants.
    pub fn db(context: impl Into<String>, err: tokio_postgres::Error) -> Self {
        let message = match err.as_db_error() {
            Some(db) => {
                let mut m = format!("{} (SQLSTATE {})", db.message(), db.code().code());
                if let Some(d) = db.detail() {
                    m.push_str(&format!("; detail: {d}"));
                }
                m
            }
            None => err.to_string(),
        };
        Error::Db { context: context.into(), message }
    }
}
