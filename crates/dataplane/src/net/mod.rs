//! PostgreSQL message framing: frontend messages ([`codec`]) and the backend-format messages
//! the data plane originates ([`messages`]). The client stream type (plain TCP or TLS) is the
//! wire door's (`tg_proxy::frontend::stream`).
//!
//! Owns bytes and message boundaries only. It never makes a policy decision (auth, gate,
//! routing) and never decodes rows: frames are forwarded as the raw bytes they arrived as.

pub mod codec;
pub mod messages;

/// Forwarded output is written once it reaches this size, even with more input waiting, and
/// no more is read from the other side until it has been written.
pub const FLUSH_AT: usize = 64 * 1024;
