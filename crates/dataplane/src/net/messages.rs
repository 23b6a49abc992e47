//! Building the few backend-format messages the gateway itself originates (authentication,
//! ErrorResponse, ReadyForQuery, ParameterStatus, BackendKeyData, NegotiateProtocolVersion)
//! and reading the fields of a backend ErrorResponse or NoticeResponse.
//!
//! Owns only message layout. It never decides what to say: callers choose severity, SQLSTATE
//! and wording, and never put secrets into a message.

use bytes::{BufMut, BytesMut};

/// Start a message with `tag` and a length placeholder; finish with [`finish`].
fn begin(out: &mut BytesMut, tag: u8) -> usize {
    out.put_u8(tag);
    let at = out.len();
    out.put_u32(0);
    at
}

fn finish(out: &mut BytesMut, at: usize) {
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_cstr(out: &mut BytesMut, s: &str) {
    // A NUL inside would end the field early; no caller passes one, but stay safe.
    out.put_slice(s.replace('\0', " ").as_bytes());
    out.put_u8(0);
}

/// Severity of an ErrorResponse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// ErrorResponse with severity, SQLSTATE, message and an optional hint.
pub fn error_response(out: &mut BytesMut, severity: Severity, code: &str, message: &str, hint: Option<&str>) {
    let at = begin(out, b'E');
    for (field, value) in [(b'S', severity.as_str()), (b'V', severity.as_str()), (b'C', code), (b'M', message)] {
        out.put_u8(field);
        put_cstr(out, value);
    }
    if let Some(h) = hint {
        out.put_u8(b'H');
        put_cstr(out, h);
    }
    out.put_u8(0);
    finish(out, at);
}

pub fn ready_for_query(out: &mut BytesMut, status: u8) {
    let at = begin(out, b'Z');
    out.put_u8(status);
    finish(out, at);
}

pub fn parameter_status(out: &mut BytesMut, name: &str, value: &str) {
    let at = begin(out, b'S');
    put_cstr(out, name);
    put_cstr(out, value);
    finish(out, at);
}

pub fn backend_key_data(out: &mut BytesMut, pid: u32, secret: u32) {
    let at = begin(out, b'K');
    out.put_u32(pid);
    out.put_u32(secret);
    finish(out, at);
}

pub fn auth_ok(out: &mut BytesMut) {
    let at = begin(out, b'R');
    out.put_u32(0);
    finish(out, at);
}

/// AuthenticationSASL offering SCRAM-SHA-256 only (no channel binding).
pub fn auth_sasl(out: &mut BytesMut) {
    let at = begin(out, b'R');
    out.put_u32(10);
    put_cstr(out, "SCRAM-SHA-256");
    out.put_u8(0);
    finish(out, at);
}

pub fn auth_sasl_continue(out: &mut BytesMut, data: &[u8]) {
    let at = begin(out, b'R');
    out.put_u32(11);
    out.put_slice(data);
    finish(out, at);
}

pub fn auth_sasl_final(out: &mut BytesMut, data: &[u8]) {
    let at = begin(out, b'R');
    out.put_u32(12);
    out.put_slice(data);
    finish(out, at);
}

/// NegotiateProtocolVersion: the newest minor version we speak (3.0) and the protocol
/// options (`_pq_.*`) we did not recognise.
pub fn negotiate_protocol_version(out: &mut BytesMut, newest_minor: u32, unrecognised: &[String]) {
    let at = begin(out, b'v');
    out.put_u32(newest_minor);
    out.put_u32(unrecognised.len() as u32);
    for o in unrecognised {
        put_cstr(out, o);
    }
    finish(out, at);
}

/// A simple Query message.
pub fn query(out: &mut BytesMut, sql: &str) {
    let at = begin(out, b'Q');
    put_cstr(out, sql);
    finish(out, at);
}

/// A Parse message with the parameter types of another (`param_types`: count and OIDs, as
/// `codec::ParseMsg` holds them).
pub fn parse_with_types(out: &mut BytesMut, name: &str, sql: &str, param_types: &[u8]) {
    let at = begin(out, b'P');
    put_cstr(out, name);
    put_cstr(out, sql);
    out.extend_from_slice(param_types);
    finish(out, at);
}

/// A Parse message with no parameter types.
pub fn parse(out: &mut BytesMut, name: &str, sql: &str) {
    let at = begin(out, b'P');
    put_cstr(out, name);
    put_cstr(out, sql);
    out.put_u16(0);
    finish(out, at);
}

/// A Bind message naming `statement`, with the rest of another Bind's body (`codec::BindHead`).
pub fn bind_renamed(out: &mut BytesMut, portal: &[u8], statement: &str, rest: &[u8]) {
    let at = begin(out, b'B');
    out.put_slice(portal);
    out.put_u8(0);
    put_cstr(out, statement);
    out.put_slice(rest);
    finish(out, at);
}

/// The fields of an ErrorResponse/NoticeResponse body that the gateway reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    pub severity: String,
    pub code: String,
    pub message: String,
}

/// Read severity, SQLSTATE and message from an ErrorResponse/NoticeResponse body. Total:
/// malformed input yields whatever fields were readable.
pub fn error_fields(body: &[u8]) -> ErrorFields {
    let mut f = ErrorFields::default();
    let mut b = body;
    while let Some((&kind, rest)) = b.split_first() {
        if kind == 0 {
            break;
        }
        b = rest;
        let Some(value) = crate::net::codec::take_cstr(&mut b) else { break };
        let value = String::from_utf8_lossy(value).into_owned();
        match kind {
            b'V' => f.severity = value,
            b'S' if f.severity.is_empty() => f.severity = value,
            b'C' => f.code = value,
            b'M' => f.message = value,
            _ => {}
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_roundtrip() {
        let mut b = BytesMut::new();
        error_response(&mut b, Severity::Fatal, "28P01", "password authentication failed for user \"x\"", Some("h"));
        assert_eq!(b[0], b'E');
        let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        assert_eq!(len + 1, b.len());
        let f = error_fields(&b[5..]);
        assert_eq!(f.severity, "FATAL");
        assert_eq!(f.code, "28P01");
        assert!(f.message.contains("password authentication failed"));
        assert_eq!(error_fields(b"Sx"), ErrorFields::default());
    }
}
