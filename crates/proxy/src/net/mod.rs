//! The wire: framing of frontend messages ([`codec`]) and the backend-format messages the
//! gateway originates ([`messages`]), plus the client stream type (plain TCP or TLS).
//!
//! Owns bytes and message boundaries only. It never makes a policy decision (auth, gate,
//! routing) and never decodes rows: frames are forwarded as the raw bytes they arrived as.

pub mod codec;
pub mod messages;

mod stream;

pub use stream::{ClientReader, ClientStream, ClientWriter};

/// Forwarded output is written once it reaches this size, even with more input waiting, and
/// no more is read from the other side until it has been written.
pub const FLUSH_AT: usize = 64 * 1024;
