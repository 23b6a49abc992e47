//! tenantgate's MCP door (DESIGN §1, §3): an MCP server for LLM agents (Text2SQL), over stdio
//! (`tenantgate mcp`) and streamable HTTP (`/mcp` on `tenantgate serve`), built on the official
//! Rust SDK (`rmcp`).
//!
//! Four tools: `list_tables`, `describe_table` (columns, types, keys and the column comments),
//! `run_sql` (one statement, under the call limits) and `explain`. Each call authenticates with
//! a tenant API key or JWT and runs as that tenant's own PostgreSQL role (the read-only role for
//! a read-only credential) through the same gate, router, pools and audit as the other doors:
//! `tg-dataplane` (`principal`, `statement`, `schema`). Isolation does not depend on this crate:
//! whatever SQL the model writes, the database's roles, grants and RLS keep it inside its tenant.
//!
//! Modules, one concept each:
//! - [`settings`]: what the door is configured with (credential settings, call limits);
//! - [`identity`]: where a call's credential comes from (the process's, or the request's
//!   `Authorization` header) and the principal it proves;
//! - [`tools`]: the four tools and their answers;
//! - [`stdio`]: serving one credential's session over stdin/stdout;
//! - [`http`]: the streamable HTTP endpoint, mounted by `serve` under `/mcp`;
//! - [`error`]: why the door could not start.
//!
//! What this crate must never do: depend on another door (`tg-http`, `tg-proxy`); open a
//! backend connection outside the shared pools; trust a tenant named in a tool argument; pass a
//! PostgreSQL NOTICE, DETAIL, HINT or CONTEXT to the agent; log or return a secret; provision.

pub mod error;
pub mod http;
pub mod identity;
pub mod settings;
pub mod stdio;
pub mod tools;

pub use error::McpError;
pub use settings::McpSettings;
