//! tenantgate control plane: decides where each tenant's data lives and makes
//! isolation a property of the database itself (DESIGN I1–I9).
//!
//! The catalog and the shared vocabulary (`catalog`, `config`, `credentials`, `model`, `db`,
//! `error`) live in `tg-catalog` and are re-exported here under their old paths.
//!
//! Modules, one concept each:
//! - `servers`: registering and checking servers;
//! - `placement`: the DDL of the three placements (roles, RLS, grants);
//! - `migrate`: app-schema lint and fan-out;
//! - `keys`: issuing and revoking tenant API keys (the format and verifiers: `tg_catalog::keys`);
//! - `tenants`: the tenant lifecycle state machines;
//! - `mobility`: erasure, online moves, rebalancing, export/import/clone, point-in-time restore of a tenant;
//! - `backup`: pgBackRest (its config, backups, their status and recovery window).
//!
//! The data plane reads the catalog; nothing here ever depends on the data plane.

pub use tg_catalog::{catalog, config, credentials, db, error, model, quote};
pub mod backup;
pub mod keys;
pub mod migrate;
pub mod mobility;
pub mod placement;
pub mod servers;
pub mod tenants;

pub use error::{Error, Result};
