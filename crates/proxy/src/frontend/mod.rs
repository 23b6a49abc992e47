//! The client side of the wire gateway: the accept loop ([`listener`]), one task per client
//! connection ([`session`]: startup, route lookup, SCRAM, checkout; then [`forward`]:
//! forwarding and the end), with
//! SCRAM authentication by tenant API key ([`scram`]), the startup-parameter allow-list
//! ([`startup`]), the caps on connections still starting up ([`startups`]), cancel-key mapping ([`cancel`]), the client stream, plain or TLS ([`stream`]),
//! transaction mode's lanes of lent backends ([`lending`]), session loop ([`transaction`]) and
//! named statements carried across backends ([`statements`]),
//! the client idle timeout ([`idle`]), and the forwarding rules ([`flow`]), which
//! the session's task or a [`crate::relay`] thread runs once the session is authenticated.
//!
//! Owns everything a client can see. It never opens a backend connection itself (it asks
//! [`crate::backend::Pools`]), never reads the catalog itself (it asks [`crate::router::Router`]),
//! and never forwards a statement the gate refused.

pub mod cancel;
pub mod error;
pub mod flow;
pub mod forward;
pub mod idle;
pub mod lending;
pub mod listener;
pub mod scram;
pub mod session;
pub mod startup;
pub mod startups;
pub mod statements;
pub mod stream;
pub mod transaction;

use std::sync::Arc;

use crate::audit::Auditor;
use crate::backend::Pools;
use crate::config::GatewayConfig;
use crate::router::Router;

/// What every session of one gateway shares.
pub struct Shared {
    pub cfg: Arc<GatewayConfig>,
    pub router: Router,
    pub pools: Pools,
    /// Transaction mode's lanes of lent backends, over `pools`.
    pub lending: lending::Lending,
    pub gate: Arc<tg_gate::Gate>,
    /// Per-tenant quotas and usage, shared with the other doors (`DataPlane::quotas`).
    pub quotas: tg_dataplane::quota::Quotas,
    pub auditor: Auditor,
    pub cancels: Arc<cancel::CancelRegistry>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Per-process secret for decoy SCRAM salts of unknown tenants.
    pub decoy_secret: [u8; 32],
    /// The relay threads for plain-TCP sessions; `None` when `gateway.relay = false`.
    pub relay: Option<crate::relay::Relay<flow::Flow>>,
    /// Connections still in startup, capped overall and per source address.
    pub startups: Arc<startups::Startups>,
    /// Becomes `true` when the gateway shuts down.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}
