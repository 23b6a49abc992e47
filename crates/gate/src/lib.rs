//! tenantgate's SQL gate: decides whether a tenant's SQL may run.
//!
//! Every statement a client sends (a simple query, possibly holding several statements, or an
//! extended-protocol Parse with `$1` parameters) goes through [`Gate::check`] before it reaches
//! PostgreSQL. The gate parses it with the real PostgreSQL parser (pg_query) and refuses, with a
//! [`Denial`] that names a rule and says why, anything a tenant has no business doing: changing
//! its identity or settings outside an allow-list, DDL, server files and programs, dangerous or
//! SQL-executing functions, catalog relations that enumerate other tenants (strict mode), and
//! writes from a read-only principal. See DESIGN.md §5.
//!
//! The gate is a *second* layer: the database already isolates tenants through per-tenant roles
//! and row-level security, and must do so with the gate switched off.
//!
//! What this crate must never do:
//! - touch a database: it only parses;
//! - rewrite SQL: a statement runs exactly as sent, or not at all;
//! - log SQL text or parameter values. Callers that audit should log [`fingerprint`]s and rule
//!   ids; policy messages hold identifiers only (syntax messages quote the parser).
//!
//! Analyses are cached by statement text (see `cache`); scope and limits are applied after the
//! lookup, so a repeated statement costs a hash lookup and a little logic. Analyses shared by
//! statement *shape* (inlined values) are kept apart per tenant: what one tenant's statement
//! seeded never decides another tenant's.

mod analyze;
mod cache;
mod denial;
mod nesting;
mod parse;
mod rules;
pub mod scoped;
mod session;
mod settings;
mod shape;
mod stack;
mod transcode;
mod walk;

#[cfg(test)]
mod tests;

/// For the fuzz targets (`fuzz/`, feature `fuzzing`) only.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    /// Whether the gate's parse (libpg_query's JSON converted to protobuf, see `parse`) gives
    /// the same tree, or the same error, as `pg_query::parse`.
    pub fn same_tree_as_pg_query(sql: &str) -> bool {
        let ours = crate::parse::parse(sql).map_err(|e| e.to_string());
        let theirs = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT)
            .map(|p| p.protobuf)
            .map_err(|e| e.to_string());
        ours == theirs
    }
}

pub use denial::Denial;
pub use settings::is_utf8_name;

use std::sync::Arc;

use analyze::Analysis;
use cache::AnalysisCache;

/// What a principal may do: its API key's or token's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    ReadWrite,
    ReadOnly,
}

/// How the gate is configured; fixed for the gate's life.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// `false` lets everything pass without parsing (tests only).
    pub enabled: bool,
    /// Refuse catalog relations and functions that enumerate other tenants (default `true`).
    pub strict_catalog: bool,
    /// Allow `EXPLAIN ANALYZE`, which runs the statement (default `false`).
    pub allow_explain_analyze: bool,
    /// Settings a tenant may SET/RESET, lower case; an entry ending in `*` matches a prefix.
    pub allowed_settings: Vec<String>,
    /// Cached statements (each full KiB of SQL text counts as one more); 0 disables the cache.
    pub cache_capacity: usize,
}

impl Default for GateConfig {
    fn default() -> GateConfig {
        GateConfig {
            enabled: true,
            strict_catalog: true,
            allow_explain_analyze: false,
            allowed_settings: settings::DEFAULT_ALLOWED
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            cache_capacity: 10_000,
        }
    }
}

/// Per-tenant limits the gate enforces on SET.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Cap for `statement_timeout` and `lock_timeout`, in milliseconds.
    pub max_statement_timeout_ms: Option<u64>,
    /// Cap for `idle_in_transaction_session_timeout`, in milliseconds.
    pub max_idle_in_transaction_ms: Option<u64>,
    /// The tenant has a database of its own (the `database` placement), so notification
    /// channels (LISTEN, NOTIFY, `pg_notify()`) reach only its own sessions and are allowed.
    /// Elsewhere they are database-wide and refused.
    pub own_database: bool,
    /// The tenant is in transaction pooling mode: statements that leave session state behind
    /// (SET, LISTEN, WITH HOLD cursors, PREPARE, DEALLOCATE) are refused with 0A000; resets
    /// (RESET, DISCARD) pass, and the wire door restores the client's settings after them.
    pub transaction_mode: bool,
}

/// The gate's answer for an allowed query string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Number of statements in the string (0 for an empty string or only comments).
    pub statements: usize,
    /// No statement writes (no INSERT/UPDATE/DELETE/MERGE, data-modifying CTE, FOR UPDATE/SHARE,
    /// COPY FROM, nextval/setval).
    pub read_only: bool,
    /// Send this instead of the SQL checked: the same statements, their catalog references
    /// mapped onto the tenant-scoped catalog (strict catalog mode; see [`scoped`]).
    pub rewritten: Option<Arc<str>>,
}

/// The SQL gate. `Send + Sync`: share one behind an `Arc` across all sessions.
pub struct Gate {
    cfg: GateConfig,
    cache: AnalysisCache,
}

impl Gate {
    pub fn new(cfg: GateConfig) -> Gate {
        let cache = AnalysisCache::new(cfg.cache_capacity);
        Gate { cfg, cache }
    }

    pub fn config(&self) -> &GateConfig {
        &self.cfg
    }

    /// Check one query string (may hold several statements; each is checked, and the first
    /// refused one decides the denial) for `tenant` (its slug: the partition of the shape
    /// cache, so that a shape one tenant seeded never decides another tenant's statement).
    ///
    /// With the gate disabled this returns `Verdict { statements: 0, read_only: false }` at once:
    /// nothing was parsed, so nothing is claimed.
    pub fn check(&self, tenant: &str, sql: &str, scope: Scope, limits: &Limits) -> Result<Verdict, Denial> {
        if !self.cfg.enabled {
            return Ok(Verdict {
                statements: 0,
                read_only: false,
                rewritten: None,
            });
        }
        let analysis = self
            .cache
            .get_or_analyze(tenant, sql, || analyze::analyze(sql, &self.cfg));
        apply(&analysis, scope, limits)
    }

    /// Whether `sql` may leave state on the backend session after its transaction ends (a
    /// session `SET`, `set_config(…, false)`, `LISTEN`, a held cursor, …; see [`session`]),
    /// whatever the tenant's pooling mode. `true` when nothing can be claimed: the gate is off,
    /// or the text holds a statement the gate refuses. A door that keeps a backend's session
    /// for its next statement resets it instead after such a statement.
    pub fn leaves_session_state(&self, tenant: &str, sql: &str) -> bool {
        if !self.cfg.enabled {
            return true;
        }
        let analysis = self
            .cache
            .get_or_analyze(tenant, sql, || analyze::analyze(sql, &self.cfg));
        analysis.denial.is_some() || analysis.statements.iter().any(|s| s.session.is_some())
    }
}

/// Applies a principal's scope and a tenant's limits to a (cached) analysis, statement by
/// statement, so the first statement that fails decides the denial.
fn apply(analysis: &Analysis, scope: Scope, limits: &Limits) -> Result<Verdict, Denial> {
    let mut read_only = true;
    for statement in &analysis.statements {
        if let Some(kind) = statement.writes {
            if scope == Scope::ReadOnly {
                return Err(Denial::policy(
                    "read-only",
                    kind,
                    "this principal has read-only scope",
                ));
            }
            read_only = false;
        }
        if let Some(timeout) = &statement.timeout {
            settings::check_cap(timeout, limits)?;
        }
        if let (Some(state), true) = (statement.session, limits.transaction_mode) {
            if !state.reset {
                return Err(session::denial(state));
            }
        }
        if let (Some(what), false) = (statement.channel, limits.own_database) {
            return Err(Denial::policy(
                "listen-notify",
                what,
                "notification channels are shared by every tenant of this placement's database; they work for a tenant \
                 with a database of its own (the database placement: `tenantgate tenant move SLUG --to database`)",
            ));
        }
    }
    match &analysis.denial {
        Some(denial) => Err(denial.clone()),
        None => Ok(Verdict {
            statements: analysis.statements.len(),
            read_only,
            rewritten: analysis.rewritten.clone(),
        }),
    }
}

/// Returned by [`fingerprint`] for SQL that does not parse.
const UNPARSABLE_FINGERPRINT: &str = "0000000000000000";

/// Stable fingerprint of a statement for audit logs (pg_query fingerprint, 16 hex digits); never
/// contains literals. SQL that does not parse gets `0000000000000000`.
pub fn fingerprint(sql: &str) -> String {
    stack::run(sql.len(), || pg_query::fingerprint(sql, pg_query::ParserOptions::DEFAULT, pg_query::FingerprintOptions::DEFAULT).ok().map(|f| f.hex))
        .flatten()
        .unwrap_or_else(|| UNPARSABLE_FINGERPRINT.to_owned())
}
