//! The one raw PostgreSQL client of the project, without I/O: the bytes a client sends
//! (startup packets of any protocol version, SASL/SCRAM, simple queries, cancel requests,
//! all built with postgres-protocol's frontend encoders) and how it reads what comes back
//! (message splitting, error fields, the SCRAM login exchange). `verify`'s wire attacks
//! drive it over tokio sockets, the integration tests over blocking ones.
//!
//! Owns no socket and never judges anything; it must never send a password other than in
//! the SCRAM exchange.

use bytes::BytesMut;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;

/// The fields of an ErrorResponse or NoticeResponse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    pub severity: String,
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

/// Parse an ErrorResponse/NoticeResponse body.
pub fn error_fields(body: &[u8]) -> ErrorFields {
    let mut e = ErrorFields::default();
    for field in body.split(|b| *b == 0) {
        if field.is_empty() {
            continue;
        }
        let v = String::from_utf8_lossy(&field[1..]).into_owned();
        match field[0] {
            b'V' => e.severity = v,
            b'C' => e.code = v,
            b'M' => e.message = v,
            b'D' => e.detail = Some(v),
            b'H' => e.hint = Some(v),
            _ => {}
        }
    }
    e
}

/// Encode a frontend message with postgres-protocol's builders (they refuse only a NUL
/// inside a string).
pub fn encode(build: impl FnOnce(&mut BytesMut) -> std::io::Result<()>) -> std::io::Result<Vec<u8>> {
    let mut buf = BytesMut::new();
    build(&mut buf)?;
    Ok(buf.to_vec())
}

/// A protocol 3.0 startup packet.
pub fn startup_packet(params: &[(&str, &str)]) -> std::io::Result<Vec<u8>> {
    encode(|b| frontend::startup_message(params.iter().copied(), b))
}

/// A startup packet claiming any protocol `version` (postgres-protocol writes 3.0 only): for
/// the version negotiation a normal driver never attempts.
pub fn startup_packet_version(version: u32, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

/// A simple Query message.
pub fn query(sql: &str) -> std::io::Result<Vec<u8>> {
    encode(|b| frontend::query(sql, b))
}

/// An SSLRequest.
pub fn ssl_request() -> Vec<u8> {
    let mut m = BytesMut::new();
    frontend::ssl_request(&mut m);
    m.to_vec()
}

/// A CancelRequest for (pid, secret).
pub fn cancel_request(pid: i32, secret: i32) -> Vec<u8> {
    let mut m = BytesMut::new();
    frontend::cancel_request(pid, secret, &mut m);
    m.to_vec()
}

/// The whole messages at the start of `bytes`, as (tag, body); a trailing partial message
/// is left out.
pub fn messages(bytes: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut b = bytes;
    while b.len() >= 5 {
        let len = u32::from_be_bytes([b[1], b[2], b[3], b[4]]) as usize;
        if len < 4 || b.len() < len + 1 {
            break;
        }
        out.push((b[0], &b[5..len + 1]));
        b = &b[len + 1..];
    }
    out
}

/// What to do after a backend message during login.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginStep {
    /// Send these bytes, then read on.
    Send(Vec<u8>),
    /// Read on.
    Continue,
    /// ReadyForQuery: logged in.
    Ready,
    /// The server refused (an ErrorResponse).
    Refused(ErrorFields),
}

/// The client's side of startup: SCRAM-SHA-256 with `password`, then BackendKeyData up to
/// ReadyForQuery. Feed it every backend message, in order.
pub struct Login {
    password: Vec<u8>,
    scram: Option<ScramSha256>,
    /// From BackendKeyData, once seen.
    pub pid: i32,
    pub secret: i32,
}

impl Login {
    pub fn new(password: &str) -> Login {
        Login { password: password.as_bytes().to_vec(), scram: None, pid: 0, secret: 0 }
    }

    /// The next step after message (`tag`, `body`); `Err` for a protocol violation by the
    /// server (an unexpected authentication request, a bad SCRAM exchange).
    pub fn on_message(&mut self, tag: u8, body: &[u8]) -> Result<LoginStep, String> {
        match tag {
            b'E' => Ok(LoginStep::Refused(error_fields(body))),
            b'R' if body.len() >= 4 => {
                let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                match code {
                    0 => Ok(LoginStep::Continue),
                    10 => {
                        let s = ScramSha256::new(&self.password, ChannelBinding::unsupported());
                        let m = encode(|b| frontend::sasl_initial_response("SCRAM-SHA-256", s.message(), b)).map_err(|e| e.to_string())?;
                        self.scram = Some(s);
                        Ok(LoginStep::Send(m))
                    }
                    11 => {
                        let s = self.scram.as_mut().ok_or("SASL continue without SASL")?;
                        s.update(&body[4..]).map_err(|e| e.to_string())?;
                        Ok(LoginStep::Send(encode(|b| frontend::sasl_response(s.message(), b)).map_err(|e| e.to_string())?))
                    }
                    12 => {
                        let mut s = self.scram.take().ok_or("SASL final without SASL")?;
                        s.finish(&body[4..]).map_err(|e| format!("server signature rejected: {e}"))?;
                        Ok(LoginStep::Continue)
                    }
                    other => Err(format!("unsupported authentication request {other}")),
                }
            }
            b'K' if body.len() >= 8 => {
                self.pid = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                self.secret = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                Ok(LoginStep::Continue)
            }
            b'Z' => Ok(LoginStep::Ready),
            _ => Ok(LoginStep::Continue),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_packets_agree_for_protocol_3() {
        let params = [("user", "acme"), ("database", "x")];
        assert_eq!(startup_packet(&params).ok(), Some(startup_packet_version(196608, &params)));
    }

    #[test]
    fn messages_split_and_errors_parse() {
        let mut bytes = vec![b'E'];
        let body = b"SERROR\0VERROR\0C42501\0Mno\0Hdo this\0\0";
        bytes.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        bytes.extend_from_slice(body);
        bytes.extend_from_slice(b"Z\0\0\0\x05I");
        bytes.extend_from_slice(b"D\0\0"); // partial: left out
        let m = messages(&bytes);
        assert_eq!(m.len(), 2);
        let e = error_fields(m[0].1);
        assert_eq!((e.severity.as_str(), e.code.as_str(), e.message.as_str(), e.hint.as_deref()), ("ERROR", "42501", "no", Some("do this")));
        assert_eq!(m[1].0, b'Z');
    }

    #[test]
    fn a_login_refused_or_malformed_is_said_so() {
        let mut l = Login::new("tgk_x");
        assert!(matches!(l.on_message(b'E', b"C28P01\0Mwrong\0\0"), Ok(LoginStep::Refused(e)) if e.code == "28P01"));
        assert!(l.on_message(b'R', &[0, 0, 0, 11]).is_err(), "SASL continue before SASL");
        assert!(l.on_message(b'R', &[0, 0, 0, 3]).is_err(), "cleartext password requests are refused");
        assert!(matches!(l.on_message(b'R', &[0, 0, 0, 10]), Ok(LoginStep::Send(_))));
        assert_eq!(l.on_message(b'Z', b"I"), Ok(LoginStep::Ready));
    }
}
