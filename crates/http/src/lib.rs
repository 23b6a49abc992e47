//! tenantgate's HTTP API (DESIGN §4, §8): tenant-scoped SQL and schema for apps and Text2SQL
//! agents, authenticated by JWT or tenant API key; OpenAPI, health and metrics. The admin API is
//! the control plane's (`tg-admin`), mounted on this server as an [`server::Extension`].
//!
//! The tenant of every request comes from a verified credential, and every statement runs as
//! that tenant's own PostgreSQL role through the *same* gate, router and per-tenant pools as the
//! wire gateway (`tg-proxy`): this crate opens no backend connection of its own and keeps no
//! pool. The database, not this crate, is what isolates tenants; the gate is the second layer.
//!
//! Modules, one concept each:
//! - `config`: the `[http]` table;
//! - `auth`: the bearer header, `X-Tenant-ID`, the admin token; the credential itself is
//!   verified by `tg_dataplane::principal` (shared with the MCP door);
//! - `limits`: the per-tenant rate limit and the per-call row/byte/time limits of `[http]`;
//! - `sql`: `POST /v1/sql`; `schema`: `GET /v1/schema`; `tenant_keys`: `GET /v1/keys…`;
//! - `problem`: RFC 9457 errors; `metrics`: `/metrics`;
//! - `openapi`: `/openapi.json`; `server`: routes, middleware, state and `serve`.
//!
//! JWT verification, the principal, the one-statement exchange and the schema description live
//! in `tg-dataplane` (`jwt`, `principal`, `exchange`, `values`, `statement`, `schema`), shared
//! with the MCP door; `jwt` is re-exported here for the callers that sign development tokens.
//!
//! What this crate must never do: trust a tenant id from a query string, a body or a header on
//! its own; pass a PostgreSQL NOTICE, DETAIL, HINT or CONTEXT to a client; log or return a
//! secret; provision anything (it depends on `tg-catalog`, not on `tg-control`).

pub mod auth;
pub mod config;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod schema;
pub mod server;
pub mod sql;
pub mod tenant_keys;

pub use tg_dataplane::jwt;

pub use config::HttpConfig;
pub use error::HttpError;
pub use server::{serve, AppState, DataPlane, Extension, HttpServer, Mount};
