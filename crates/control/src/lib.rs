//! tenantgate control plane: decides where each tenant's data lives and makes
//! isolation a property of the database itself (DESIGN I1–I9).
//!
//! Modules, one concept each:
//! - `config`: tenantgate.toml;
//! - `credentials`: the master key, derived role passwords, SCRAM verifiers;
//! - `model`: placements, statuses, tenant keys and slugs;
//! - `db`: admin connections and SQL quoting;
//! - `catalog`: the catalog schema and store (the single source of truth);
//! - `servers`: registering and checking servers;
//! - `placement`: the DDL of the three placements (roles, RLS, grants);
//! - `migrate`: app-schema lint and fan-out;
//! - `keys`: tenant API keys and their SCRAM verifiers;
//! - `tenants`: the tenant lifecycle state machines;
//! - `mobility`: erasure (and, later, move/export/import).
//!
//! The data plane reads the catalog; nothing here ever depends on the data plane.

pub mod catalog;
pub mod config;
pub mod credentials;
pub mod db;
pub mod error;
pub mod keys;
pub mod migrate;
pub mod mobility;
pub mod model;
pub mod placement;
pub mod servers;
pub mod tenants;

pub use error::{Error, Result};
