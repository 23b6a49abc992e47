//! tenantgate's catalog, and the vocabulary both planes share.
//!
//! Modules, one concept each:
//! - `catalog`: the catalog's versioned schema and **every** statement against its tables
//!   (servers, tenants, roles, operations, audit events, app migrations, API keys, verify
//!   runs), behind typed methods of [`catalog::Catalog`];
//! - `model`: placements, statuses, tenant keys and slugs, and where a placement's tables
//!   live on a server;
//! - `config`: tenantgate.toml;
//! - `credentials`: the master key, derived role passwords;
//! - `keys`: the API key format and its SCRAM-SHA-256 verifiers;
//! - `db`: admin connections, URL redaction; `quote`: SQL identifier and literal quoting;
//! - `error`: the typed errors all of the above return.
//!
//! What this crate must never do: provision. It creates no role, database or table on a
//! tenant server and runs no tenant SQL; that is `tg-control`'s job (`placement`,
//! `tenants`, `migrate`, `mobility`). The data plane (`tg-proxy`) depends on this crate and
//! not on `tg-control`, so it can read the catalog but cannot provision. No other crate
//! holds SQL against the catalog's tables: ask [`catalog::Catalog`].

pub mod catalog;
pub mod config;
pub mod credentials;
pub mod db;
pub mod error;
pub mod keys;
pub mod model;
pub mod quote;

pub use error::{Error, Result};
