//! `[gateway]` in tenantgate.toml: the listen address, the gate switch, per-tenant limits,
//! pool sizes, the per-server connection budget, timeouts and TLS.
//!
//! Owns parsing and validation of that table only (the control plane's `Config` keeps it as
//! an opaque `toml::Table` for this crate). It never opens a socket or reads a file.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::GatewayError;

/// The `[gateway]` table. Every field has a default, so an absent table is a working gateway
/// on 127.0.0.1:6432 with the gate on.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address the wire protocol listens on.
    pub listen: String,
    /// The SQL gate (DESIGN §5). `false` is for tests only: the database still isolates.
    pub gate: bool,
    /// Strict catalog mode: refuse catalog relations that enumerate other tenants.
    pub strict_catalog: bool,
    /// Allow `EXPLAIN ANALYZE` (it runs the statement).
    pub allow_explain_analyze: bool,
    /// Limits for every tenant unless `tenant_limits` names it.
    pub limits: LimitsConfig,
    /// Per-tenant overrides, by slug: `[gateway.tenant_limits.acme] statement_timeout_ms = 5000`.
    pub tenant_limits: HashMap<String, LimitsConfig>,
    /// Largest frontend message accepted (bytes), except COPY data.
    pub max_message_bytes: usize,
    /// Largest CopyData message accepted (bytes). PostgreSQL's own limit is 1 GiB.
    pub max_copy_message_bytes: usize,
    /// Backend connections one tenant may hold on a server, its read-write and read-only
    /// roles together.
    pub pool_max_per_tenant: usize,
    /// Places of each server's budget kept for tenants that hold no connection there yet
    /// (at most a quarter of the budget), so busy tenants cannot starve a newcomer.
    pub server_reserve: usize,
    /// How wire clients share backends: `session` (one backend per client connection) or
    /// `transaction` (a backend per transaction, lent among the clients of one tenant role).
    pub pool_mode: PoolMode,
    /// Per-tenant overrides of `pool_mode`, by slug: `[gateway.tenant_pool_mode] acme = "transaction"`.
    pub tenant_pool_mode: HashMap<String, PoolMode>,
    /// Backend connections the gateway may hold on one server (all tenants together).
    pub server_budget: usize,
    /// Per-server overrides of `server_budget`, by server name.
    pub server_budgets: HashMap<String, usize>,
    /// How long a client waits for a backend connection before it is refused (53300).
    pub checkout_timeout_ms: u64,
    /// Idle backend connections are closed after this long, so idle pools shrink to zero.
    pub pool_idle_timeout_ms: u64,
    /// Timeout for opening a backend connection.
    pub connect_timeout_ms: u64,
    /// A client must finish startup and authentication within this time.
    pub auth_timeout_ms: u64,
    /// How often the router re-reads routes of tenants with open sessions, in case a NOTIFY
    /// was missed (the catalog listener reconnects on its own).
    pub poll_interval_ms: u64,
    /// How long a cached route is trusted without a NOTIFY or poll confirming it.
    pub route_ttl_ms: u64,
    /// How long a new connection or HTTP request of a tenant waits while a move fences its
    /// writes for the cut-over (`tenant move`). It is let through to the new placement as
    /// soon as the route flips; past this bound it gets the retryable 57P03 (HTTP 503).
    pub move_hold_ms: u64,
    /// PEM certificate chain; with `tls_key`, SSLRequest is answered 'S'.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Threads that run `tenantgate serve` (wire and HTTP). 0 = one per CPU. Where the
    /// gateway shares a few cores with PostgreSQL and the clients, fewer threads spend less
    /// on waking each other (bench/RESULTS.md, "worker threads").
    pub worker_threads: usize,
    /// Forward authenticated plain-TCP sessions on the relay's epoll threads instead of a
    /// tokio task each (TLS sessions always stay on their task). Off is for comparison and
    /// as a fallback; both run the same forwarding rules.
    pub relay: bool,
    /// Relay threads. 0 = as many as `worker_threads` (one per CPU when that is 0).
    pub relay_threads: usize,
    /// What logins get while the catalog cannot be reached: `serve-known` (tenants and keys
    /// this gateway last saw, for `catalog_grace_ms`) or `fail-closed` (every login refused).
    pub catalog_outage: CatalogOutage,
    /// How long after the catalog last answered `serve-known` keeps serving from the routes
    /// last seen. A key revoked meanwhile through another path stays usable here that long.
    pub catalog_grace_ms: u64,
    /// A catalog read or connect that takes longer counts as an outage.
    pub catalog_timeout_ms: u64,
    /// Audit events waiting to be written to the catalog; past this, events are dropped and
    /// counted (`tenantgate_audit_dropped_total`).
    pub audit_buffer: usize,
    /// Gateway audit rows (`tg.audit_events`, actor `gateway`) older than this are deleted in
    /// the background, hourly. 0 = keep them forever.
    pub audit_retention_days: u32,
    /// `client_connection_check_interval` of every backend: the server checks this often
    /// whether the gateway's socket is still there while a statement runs, and cancels the
    /// statement if not (a gateway killed mid-statement). 0 = not set. PostgreSQL 14+.
    pub backend_check_interval_ms: u64,
    /// Connections still in startup or authentication, over all clients. Past it a new
    /// connection is refused at once (53300).
    pub max_startups: usize,
    /// Connections still in startup or authentication from one source IP address.
    pub max_startups_per_address: usize,
    /// How long an HTTP or MCP statement waits for a free concurrency place or a rate token
    /// of its tenant's quota before it is refused (53400). The wire door never waits.
    pub quota_wait_ms: u64,
    /// Per-tenant limits set at run time through the admin API (`PUT
    /// /admin/v1/tenants/{slug}/quotas`), kept in the catalog (`tg.tenant_quotas`) and
    /// published here by the router with each route it reads. Not read from the file; shared
    /// by every clone of this config, so every door of the process sees a change at once.
    #[serde(skip)]
    pub overrides: TenantOverrides,
}

/// Per-tenant limits set at run time; they win over `tenant_limits` and `limits`. This is
/// the process's copy of the catalog's overrides (`tg.tenant_quotas`): the router sets a
/// tenant's entry whenever it reads the tenant's route (at a login, a NOTIFY, a poll).
#[derive(Debug, Clone, Default)]
pub struct TenantOverrides(std::sync::Arc<std::sync::RwLock<HashMap<String, LimitsConfig>>>);

impl TenantOverrides {
    pub fn get(&self, slug: &str) -> Option<LimitsConfig> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(slug).copied()
    }
    /// Set (`Some`) or drop (`None`) the override of `slug`.
    pub fn set(&self, slug: &str, limits: Option<LimitsConfig>) {
        let mut m = self.0.write().unwrap_or_else(|p| p.into_inner());
        match limits {
            Some(l) => m.insert(slug.to_string(), l),
            None => m.remove(slug),
        };
    }
}

/// `gateway.pool_mode`: how wire clients share backend connections (docs/decisions.md,
/// "Transaction pooling").
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PoolMode {
    /// One backend for the whole client connection, reset with `DISCARD ALL` at its end.
    #[default]
    Session,
    /// A backend for each transaction, returned at ReadyForQuery 'I' to serve other clients
    /// of the same tenant role; session state is refused, named statements are carried.
    Transaction,
}

/// `gateway.catalog_outage`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum CatalogOutage {
    #[default]
    ServeKnown,
    FailClosed,
}

/// Per-tenant limits (quotas), enforced on every backend connection, capped by the gate and
/// counted by [`crate::quota`]. 0 means "no limit" for each. A `[gateway.tenant_limits.<slug>]`
/// table replaces `[gateway.limits]` as a whole for that tenant (unset fields take the
/// built-in defaults, not `[gateway.limits]`'s).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// `statement_timeout` of every backend session, and the cap for a client's SET. 0 = none.
    pub statement_timeout_ms: u64,
    /// `idle_in_transaction_session_timeout` of every backend session, and its cap. 0 = none.
    pub idle_in_transaction_timeout_ms: u64,
    /// Statements of the tenant running at once, over all its clients and doors. Past it the
    /// wire door refuses at once and HTTP/MCP wait up to `gateway.quota_wait_ms` (53400).
    pub max_concurrent_statements: u32,
    /// Statements the tenant may start per second (a token bucket with one second of burst).
    pub statements_per_second: u32,
    /// Rows one statement may return. Over it: the wire door sends 54000 in place of the
    /// command's completion; HTTP/MCP cut the result (`truncated`).
    pub max_rows: u64,
    /// Bytes of rows one statement may return (as the backend sends them). As `max_rows`.
    pub max_bytes: u64,
    /// `work_mem` of every backend session, in kB. Tenants cannot SET work_mem (the gate's
    /// allow-list), so this is their ceiling.
    pub work_mem_kb: u64,
    /// A wire client that sends nothing for this long while outside a transaction is ended
    /// (FATAL 57P05, as PostgreSQL's `idle_session_timeout`) and its backend goes back to the
    /// pool. 0 = never. (Idle *in* a transaction is `idle_in_transaction_timeout_ms`.)
    pub client_idle_timeout_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            statement_timeout_ms: 60_000,
            idle_in_transaction_timeout_ms: 300_000,
            max_concurrent_statements: 0,
            statements_per_second: 0,
            max_rows: 0,
            max_bytes: 0,
            work_mem_kb: 0,
            client_idle_timeout_ms: 0,
        }
    }
}

impl LimitsConfig {
    /// Check values PostgreSQL or the quota would not take; `at` names the table in the message.
    pub fn validate(&self, at: &str) -> Result<(), GatewayError> {
        if self.work_mem_kb != 0 && !(64..=2_147_483_647).contains(&self.work_mem_kb) {
            return Err(GatewayError::Config(format!(
                "{at}.work_mem_kb = {} is out of range; use 0 (no ceiling) or 64 to 2147483647 (kB)",
                self.work_mem_kb
            )));
        }
        if self.statement_timeout_ms > i32::MAX as u64 || self.idle_in_transaction_timeout_ms > i32::MAX as u64 {
            return Err(GatewayError::Config(format!("{at}: timeouts must be at most {} ms", i32::MAX)));
        }
        Ok(())
    }

    pub fn gate_limits(&self) -> tg_gate::Limits {
        let opt = |v: u64| (v > 0).then_some(v);
        tg_gate::Limits {
            max_statement_timeout_ms: opt(self.statement_timeout_ms),
            max_idle_in_transaction_ms: opt(self.idle_in_transaction_timeout_ms),
            own_database: false,
            transaction_mode: false,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: "127.0.0.1:6432".into(),
            gate: true,
            strict_catalog: true,
            allow_explain_analyze: false,
            limits: LimitsConfig::default(),
            tenant_limits: HashMap::new(),
            max_message_bytes: 64 << 20,
            max_copy_message_bytes: 1 << 30,
            pool_max_per_tenant: 20,
            server_reserve: 4,
            pool_mode: PoolMode::Session,
            tenant_pool_mode: HashMap::new(),
            server_budget: 80,
            server_budgets: HashMap::new(),
            checkout_timeout_ms: 5_000,
            pool_idle_timeout_ms: 60_000,
            connect_timeout_ms: 10_000,
            auth_timeout_ms: 30_000,
            poll_interval_ms: 3_000,
            route_ttl_ms: 30_000,
            move_hold_ms: 10_000,
            tls_cert: None,
            tls_key: None,
            worker_threads: 0,
            relay: true,
            relay_threads: 0,
            catalog_outage: CatalogOutage::ServeKnown,
            catalog_grace_ms: 300_000,
            catalog_timeout_ms: 2_000,
            audit_buffer: 10_000,
            audit_retention_days: 90,
            backend_check_interval_ms: 5_000,
            max_startups: 1_000,
            max_startups_per_address: 100,
            quota_wait_ms: 1_000,
            overrides: TenantOverrides::default(),
        }
    }
}

impl GatewayConfig {
    /// Parse and validate `[gateway]` (the table from `tg_catalog::config::Config::gateway`).
    pub fn from_table(table: &toml::Table) -> Result<GatewayConfig, GatewayError> {
        let cfg: GatewayConfig = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e| GatewayError::Config(format!("[gateway] is not valid: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), GatewayError> {
        let bad = |m: String| Err(GatewayError::Config(m));
        self.limits.validate("gateway.limits")?;
        for (slug, l) in &self.tenant_limits {
            l.validate(&format!("gateway.tenant_limits.{slug}"))?;
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return bad(format!("gateway.listen = {:?} is not an address; use e.g. \"127.0.0.1:6432\"", self.listen));
        }
        if self.max_message_bytes < 1024 || self.max_message_bytes > (1 << 30) {
            return bad("gateway.max_message_bytes must be between 1024 and 1073741824".into());
        }
        if self.max_copy_message_bytes < 1024 || self.max_copy_message_bytes > (1 << 30) {
            return bad("gateway.max_copy_message_bytes must be between 1024 and 1073741824".into());
        }
        if self.pool_max_per_tenant == 0 || self.server_budget == 0 || self.server_budgets.values().any(|v| *v == 0) {
            return bad("gateway.pool_max_per_tenant and gateway.server_budget(s) must be at least 1".into());
        }
        if self.worker_threads > 1024 {
            return bad(format!("gateway.worker_threads = {} is too many; use 0 (one per CPU) or a number up to 1024", self.worker_threads));
        }
        if self.relay_threads > 1024 {
            return bad(format!("gateway.relay_threads = {} is too many; use 0 (as many as worker_threads) or a number up to 1024", self.relay_threads));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return bad("set both gateway.tls_cert and gateway.tls_key, or neither".into());
        }
        for (name, v) in [
            ("checkout_timeout_ms", self.checkout_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("auth_timeout_ms", self.auth_timeout_ms),
            ("poll_interval_ms", self.poll_interval_ms),
            ("move_hold_ms", self.move_hold_ms),
            ("catalog_grace_ms", self.catalog_grace_ms),
            ("catalog_timeout_ms", self.catalog_timeout_ms),
            ("audit_buffer", self.audit_buffer as u64),
            ("max_startups", self.max_startups as u64),
            ("max_startups_per_address", self.max_startups_per_address as u64),
        ] {
            if v == 0 {
                return bad(format!("gateway.{name} must be greater than 0"));
            }
        }
        Ok(())
    }

    /// How many relay threads to start (`relay_threads`, resolved).
    pub fn relay_thread_count(&self) -> usize {
        match (self.relay_threads, self.worker_threads) {
            (0, 0) => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            (0, w) => w,
            (r, _) => r,
        }
    }

    /// The router's settings from this table.
    pub fn router_options(&self) -> crate::router::RouterOptions {
        crate::router::RouterOptions {
            ttl: Self::ms(self.route_ttl_ms),
            poll_interval: Self::ms(self.poll_interval_ms),
            move_hold: Self::ms(self.move_hold_ms),
            outage: match self.catalog_outage {
                CatalogOutage::ServeKnown => crate::router::OutagePolicy::ServeKnown { grace: Self::ms(self.catalog_grace_ms) },
                CatalogOutage::FailClosed => crate::router::OutagePolicy::FailClosed,
            },
            catalog_timeout: Self::ms(self.catalog_timeout_ms),
        }
    }

    /// The limits of tenant `slug`: the admin API's override, else `tenant_limits`, else `limits`.
    pub fn limits_for(&self, slug: &str) -> LimitsConfig {
        self.overrides.get(slug).or_else(|| self.tenant_limits.get(slug).copied()).unwrap_or(self.limits)
    }

    /// The pool mode of tenant `slug`.
    pub fn pool_mode_for(&self, slug: &str) -> PoolMode {
        self.tenant_pool_mode.get(slug).copied().unwrap_or(self.pool_mode)
    }

    /// The connection budget of server `name`.
    pub fn budget_for(&self, name: &str) -> usize {
        self.server_budgets.get(name).copied().unwrap_or(self.server_budget)
    }

    pub fn gate_config(&self) -> tg_gate::GateConfig {
        tg_gate::GateConfig {
            enabled: self.gate,
            strict_catalog: self.strict_catalog,
            allow_explain_analyze: self.allow_explain_analyze,
            ..tg_gate::GateConfig::default()
        }
    }

    pub fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = GatewayConfig::from_table(&toml::Table::new()).unwrap();
        assert_eq!(c.listen, "127.0.0.1:6432");
        assert!(c.gate && c.strict_catalog);
        assert_eq!(c.worker_threads, 0);
        assert_eq!(c.catalog_outage, CatalogOutage::ServeKnown);
        assert_eq!(c.audit_retention_days, 90);
        let t: toml::Table = toml::from_str("catalog_outage = \"fail-closed\"").unwrap();
        assert_eq!(GatewayConfig::from_table(&t).unwrap().router_options().outage, crate::router::OutagePolicy::FailClosed);
        let t: toml::Table = toml::from_str(
            "listen = \"127.0.0.1:7000\"\ngate = false\nserver_budget = 3\nworker_threads = 1\n[tenant_limits.acme]\nstatement_timeout_ms = 5\n",
        )
        .unwrap();
        let c = GatewayConfig::from_table(&t).unwrap();
        assert!(!c.gate);
        assert_eq!(c.worker_threads, 1);
        assert_eq!(c.budget_for("x"), 3);
        assert_eq!(c.limits_for("acme").statement_timeout_ms, 5);
        assert_eq!(c.limits_for("acme").idle_in_transaction_timeout_ms, 300_000);
        assert_eq!(c.pool_mode_for("acme"), PoolMode::Session);
        let m: toml::Table = toml::from_str("pool_mode = \"transaction\"\n[tenant_pool_mode]\nacme = \"session\"\n").unwrap();
        let m = GatewayConfig::from_table(&m).unwrap();
        assert_eq!((m.pool_mode_for("acme"), m.pool_mode_for("other")), (PoolMode::Session, PoolMode::Transaction));
        assert!(GatewayConfig::from_table(&toml::from_str("pool_mode = \"statement\"").unwrap()).is_err());
        // The relay: on by default, as many threads as the runtime unless set.
        assert!(c.relay);
        assert_eq!(c.relay_thread_count(), 1);
        let t: toml::Table = toml::from_str("relay = false
relay_threads = 3
worker_threads = 1
").unwrap();
        let c = GatewayConfig::from_table(&t).unwrap();
        assert!(!c.relay);
        assert_eq!(c.relay_thread_count(), 3);
    }

    #[test]
    fn refuses_unknown_and_bad_values() {
        for bad in ["catalog_outage = \"open\"", "catalog_grace_ms = 0", "max_startups_per_address = 0", "bogus = 1", "listen = \"nowhere\"", "tls_cert = \"a.pem\"", "server_budget = 0", "worker_threads = 5000", "worker_threads = -1", "relay_threads = 5000", "relay = 1"] {
            let t: toml::Table = toml::from_str(bad).unwrap();
            assert!(GatewayConfig::from_table(&t).is_err(), "{bad}");
        }
    }
}
