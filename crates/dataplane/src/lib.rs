//! tenantgate's data-plane core: what every door (the wire gateway `tg-proxy`, the HTTP API
//! `tg-http`, the MCP server `tg-mcp`) shares, so that a request through any of them takes the same route, the same
//! per-tenant pools and the same limits.
//!
//! - [`config`]: the `[gateway]` table of tenantgate.toml (budgets, per-tenant limits);
//! - [`admission`]: route → backend across a move's fence (held, then retried on the new route);
//! - [`router`]: route lookup from the catalog, its cache, invalidated by NOTIFY and polling;
//! - [`quota`]: per-tenant quotas (concurrent statements, statements per second, rows and
//!   bytes per statement) that every door asks before and after a statement;
//! - [`usage`]: per-tenant counters (statements, errors, time in the database, …), their
//!   snapshot for the admin API and `tenantgate top`, and their bounded Prometheus text;
//! - [`backend`]: backend connections and per-tenant-role pools under a per-server budget;
//! - [`audit`]: connection and denial audit into the catalog, off the request's path;
//! - [`net`]: PostgreSQL message framing and the few messages the data plane writes;
//! - [`jwt`]: tenant JWTs (pinned-algorithm verification, development signing);
//! - [`principal`]: who is calling, from a bearer credential (JWT or `tgk_` key) → principal and route;
//! - [`exchange`]: one statement over a pooled backend in the extended query protocol;
//! - [`values`]: PostgreSQL text values to JSON;
//! - [`statement`]: one tenant statement through gate → admission → exchange, under per-call limits;
//! - [`schema`]: the tenant's schema description (tables, columns, keys, comments);
//! - [`error`]: why the data plane could not start.
//!
//! Per connection: route lookup (router) → authentication (the door's) → pool checkout
//! (backend); per message: the gate (tg-gate, called by the door) → backend. Nothing here
//! reaches back into a door. This crate reads the catalog (through `tg-catalog`) and never
//! writes tenant state or provisions anything; it never shares a backend connection between
//! tenant roles (DESIGN I2) and never logs SQL text, parameter values or secrets.

pub mod admission;
pub mod audit;
pub mod backend;
pub mod config;
pub mod error;
pub mod exchange;
pub mod jwt;
pub mod net;
pub mod principal;
pub mod quota;
pub mod router;
pub mod schema;
pub mod statement;
pub mod usage;
pub mod values;

pub use backend::{Backend, PoolError, Pools, RawMessage};
pub use config::GatewayConfig;
pub use error::GatewayError;
pub use router::{EndReason, Login, Route, RouteError, RouteEvent, Router, RouterOptions, Subscription};

/// The data plane one process serves every door from: the same router, pools, gate and
/// `[gateway]` settings, so a request takes the same route whichever door it came in by.
#[derive(Clone)]
pub struct DataPlane {
    pub router: Router,
    pub pools: Pools,
    pub gate: std::sync::Arc<tg_gate::Gate>,
    pub gateway: std::sync::Arc<GatewayConfig>,
    /// Per-tenant quotas and usage, shared with the wire door.
    pub quotas: quota::Quotas,
}
