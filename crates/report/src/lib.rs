//! tenantgate reports (DESIGN §7): the multi-tenancy decision record, the re-evaluation
//! triggers and security-questionnaire answers, all generated from live state.
//!
//! Modules, one concept each:
//! - `facts`: the one read pass over catalog, config, servers and benchmark files that
//!   every report is rendered from; every fact carries its source;
//! - `requirements`: per-tenant declared requirements: parsing, validation, matching;
//! - `triggers`: evaluation of the re-evaluation triggers (ok / approaching / fired);
//! - `adr`: the Markdown decision record (stable: same facts, same bytes but the date);
//! - `questionnaire`: answers to the standard enterprise security questions;
//! - `text`: small, deterministic formatting helpers shared by the renderers.
//!
//! This crate only reads. The single write it offers is `requirements::update` (the
//! declared requirements of one tenant). It never prints a server URL unredacted and
//! never lets one tenant's report name another tenant.

pub mod adr;
pub mod error;
pub mod facts;
pub mod questionnaire;
pub mod requirements;
pub mod text;
pub mod triggers;

pub use error::{Error, Result};
