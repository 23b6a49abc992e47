//! tenantgate's wire door: the PostgreSQL wire-protocol gateway (DESIGN §3–5), on the
//! data-plane core `tg-dataplane` (router, pools, audit, limits, framing; re-exported here).
//!
//! Clients speak plain PostgreSQL to it with user = tenant slug and password = an API key.
//! Data flows one way through these modules, and nothing reaches back:
//!
//! ```text
//! net (frames) → frontend (startup, SCRAM auth) → gate (tg-gate) → router (catalog view)
//!              → backend (per-tenant-role pools under a per-server budget) → tenant's server
//! ```
//!
//! - [`config`]: the `[gateway]` table of tenantgate.toml;
//! - [`net`]: frontend message framing and the few backend messages the gateway writes;
//! - [`frontend`]: client sessions, SCRAM, startup parameters, cancel keys;
//! - [`relay`]: epoll threads that forward authenticated plain-TCP sessions;
//! - [`router`]: cached routing from the catalog, invalidated by NOTIFY and polling;
//! - [`backend`]: backend connections and pools;
//! - [`audit`]: connection and denial audit into the catalog, off the session's path;
//! - [`tls`]: the rustls acceptor.
//!
//! The HTTP door (`tg-http`) uses the same core directly and does not depend on this crate.
//! This crate reads the catalog but never writes tenant state or provisions anything; it
//! never shares a backend connection between tenant roles (DESIGN I2) and never logs SQL
//! text, parameter values or secrets.

pub mod frontend;
pub mod relay;
pub mod tls;

// The data-plane core every door shares, under the paths this crate always used.
pub use tg_dataplane::{audit, backend, config, error, net, router};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use backend::{Backend, PoolError, Pools, RawMessage};
pub use config::GatewayConfig;
pub use error::GatewayError;
pub use router::{EndReason, Login, Route, RouteError, RouteEvent, Router, RouterOptions, Subscription};

use tg_catalog::config::Config;
use tokio::net::TcpListener;

/// A configured gateway: router, pools, gate, audit and TLS. Bind it and serve.
pub struct Gateway {
    shared: Arc<frontend::Shared>,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
}

impl Gateway {
    /// Build from tenantgate.toml: parse `[gateway]`, connect to the catalog and check the
    /// master key against it.
    pub async fn from_config(cfg: &Config) -> Result<Gateway, GatewayError> {
        let gw = GatewayConfig::from_table(&cfg.gateway)?;
        let catalog = tg_catalog::catalog::Catalog::connect(&cfg.catalog.url).await?;
        let master = tg_catalog::credentials::master_key(cfg, &catalog).await?;
        Gateway::new(gw, &cfg.catalog.url, master, &cfg.base_dir)
    }

    /// Build from parts. `base_dir` resolves relative TLS paths. Must run inside a tokio runtime.
    pub fn new(
        cfg: GatewayConfig,
        catalog_url: &str,
        master: tg_catalog::credentials::MasterKey,
        base_dir: &std::path::Path,
    ) -> Result<Gateway, GatewayError> {
        let tls = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(c), Some(k)) => {
                let resolve = |p: &std::path::Path| if p.is_absolute() { p.to_path_buf() } else { base_dir.join(p) };
                Some(tls::acceptor(&resolve(c), &resolve(k))?)
            }
            _ => None,
        };
        let cfg = Arc::new(cfg);
        let router = Router::new(catalog_url, master, cfg.router_options(), cfg.overrides.clone());
        let pools = Pools::new(cfg.clone());
        // Idle connections of a tenant that changed (suspended, moved, erased) are closed.
        let mut events = router.events();
        let p = pools.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(RouteEvent::TenantChanged(key)) => p.close_idle_of(&key),
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        let auditor = audit::Auditor::start(audit::AuditOptions {
            catalog_url: catalog_url.to_string(),
            buffer: cfg.audit_buffer,
            retention_days: cfg.audit_retention_days,
            timeout: GatewayConfig::ms(cfg.catalog_timeout_ms),
        });
        let gate = Arc::new(tg_gate::Gate::new(cfg.gate_config()));
        let mut decoy_secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut decoy_secret);
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let relay = match cfg.relay {
            true => Some(relay::Relay::start(cfg.relay_thread_count()).map_err(|e| {
                GatewayError::Config(format!("cannot start the relay threads: {e}; set gateway.relay = false to forward on tokio tasks"))
            })?),
            false => None,
        };
        let startups = frontend::startups::Startups::new(cfg.max_startups, cfg.max_startups_per_address);
        let shared = Arc::new(frontend::Shared {
            quotas: tg_dataplane::quota::Quotas::new(cfg.clone()),
            startups,
            relay,
            lending: frontend::lending::Lending::new(cfg.clone(), pools.clone()),
            cfg,
            router,
            pools,
            gate,
            auditor,
            cancels: Arc::new(frontend::cancel::CancelRegistry::default()),
            tls,
            decoy_secret,
            shutdown: shutdown_rx,
        });
        Ok(Gateway { shared, shutdown_tx })
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.shared.cfg
    }

    /// The router (shared with the HTTP API).
    pub fn router(&self) -> &Router {
        &self.shared.router
    }

    /// The backend pools (shared with the HTTP API).
    pub fn pools(&self) -> &Pools {
        &self.shared.pools
    }

    /// The gate sessions use.
    pub fn gate(&self) -> &Arc<tg_gate::Gate> {
        &self.shared.gate
    }

    /// This gateway's router, pools, gate and settings, for another door (the HTTP API) to
    /// serve from the same data plane.
    pub fn data_plane(&self) -> tg_dataplane::DataPlane {
        tg_dataplane::DataPlane {
            router: self.shared.router.clone(),
            pools: self.shared.pools.clone(),
            gate: self.shared.gate.clone(),
            gateway: Arc::new((*self.shared.cfg).clone()),
            quotas: self.shared.quotas.clone(),
        }
    }

    /// Bind the listen address (`addr` overrides `gateway.listen`; port 0 picks a free one).
    pub async fn bind(&self, addr: Option<&str>) -> Result<TcpListener, GatewayError> {
        let addr = addr.unwrap_or(&self.shared.cfg.listen).to_string();
        TcpListener::bind(&addr).await.map_err(|source| GatewayError::Listen { addr, source })
    }

    /// Accept clients until `shutdown` resolves; then tell open sessions to end and wait up
    /// to five seconds for them.
    pub async fn serve(&self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        frontend::listener::accept(&self.shared, listener, &self.shutdown_tx, shutdown).await
    }

    /// Address helper for callers printing where the gateway listens.
    pub fn local_addr(listener: &TcpListener) -> Option<SocketAddr> {
        listener.local_addr().ok()
    }
}
