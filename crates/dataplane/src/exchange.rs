//! One statement over a checked-out backend connection, in the extended query protocol.
//!
//! The whole exchange is written at once and read back in one pass:
//!
//! ```text
//! Query  "SET DateStyle = 'ISO, MDY'; SET bytea_output = 'hex'; …; SET statement_timeout = …"
//!        (only what the backend does not carry already; often nothing)
//! Parse  (unnamed, the tenant's SQL, every parameter of unspecified type 0)
//! Bind   (text parameters, text results) · Describe portal · Execute (max_rows + 1) · Sync
//! ```
//!
//! The statement runs in the implicit transaction that the Sync ends. The settings are
//! session settings, applied once per pooled backend ([`Settings`]): the pool keeps a
//! backend's settings for the statement doors' next statement and resets the backend before
//! a wire client gets it (`crate::backend::pool`). Parameters are bound, never interpolated,
//! and a Parse message can hold only one statement, so PostgreSQL itself refuses a second one
//! even with the gate off.
//!
//! Owns message order and decoding. It must never forward a NoticeResponse, or any
//! ErrorResponse field but the SQLSTATE and the primary message: DETAIL, HINT, CONTEXT and
//! the rest can carry data into an LLM's context. A backend that breaks the protocol, or an
//! exchange cut short, is reported as [`ExecError::Broken`] so the caller discards the
//! connection instead of returning it to the pool.

use std::future::Future;

use bytes::{Bytes, BytesMut};
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::{backend, frontend};
use postgres_protocol::IsNull;
use serde_json::Value;

use crate::values;

/// A checked-out backend connection, as the wire gateway's pool hands it out: whole frontend
/// messages go in, whole backend frames (tag, length, body) come out.
pub trait BackendIo: Send {
    fn send_bytes(&mut self, bytes: &[u8]) -> impl Future<Output = Result<(), String>> + Send;
    fn recv_frame(&mut self) -> impl Future<Output = Result<Bytes, String>> + Send;
}

/// What to run and how much to bring back.
pub struct Statement<'a> {
    pub sql: &'a str,
    pub params: &'a [Option<String>],
    pub statement_timeout_ms: u64,
    pub max_rows: u32,
    pub max_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
    /// Rows affected or returned, from the command tag when there is one.
    pub row_count: u64,
    pub truncated: bool,
    /// Bytes of the rows returned (DataRow messages as the backend sent them).
    pub bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecError {
    /// PostgreSQL refused the statement; the connection is healthy.
    Db { sqlstate: String, message: String },
    /// Not safe to reuse the connection (I/O error, protocol surprise, cut short).
    Broken(String),
    /// The statement needs something a one-statement door cannot do (COPY); the connection must be discarded.
    Unsupported(String),
}

fn enc(e: std::io::Error) -> ExecError {
    ExecError::Broken(format!("encoding a frontend message: {e}"))
}

/// The session settings a backend already carries for this module, if any (as the pool's
/// [`crate::backend::Carried`] records them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settings {
    /// Startup values only: every setting is applied.
    None,
    /// The output settings and this `statement_timeout`.
    Applied { statement_timeout_ms: u64 },
}

/// The settings to apply before `st` on a backend carrying `have`, if any.
pub fn prelude(st: &Statement<'_>, have: Settings) -> Option<String> {
    match have {
        Settings::Applied { statement_timeout_ms } if statement_timeout_ms == st.statement_timeout_ms => None,
        Settings::Applied { .. } => Some(format!("SET statement_timeout = {}", st.statement_timeout_ms)),
        Settings::None => Some(format!(
            "SET DateStyle = 'ISO, MDY'; SET bytea_output = 'hex'; SET extra_float_digits = 3; \
             SET statement_timeout = {}",
            st.statement_timeout_ms
        )),
    }
}

/// Build the pipelined request for a backend carrying `have`.
pub fn encode(st: &Statement<'_>, have: Settings) -> Result<BytesMut, ExecError> {
    let mut buf = BytesMut::new();
    if let Some(prelude) = prelude(st, have) {
        frontend::query(&prelude, &mut buf).map_err(enc)?;
    }
    frontend::parse("", st.sql, std::iter::repeat_n(0u32, st.params.len()), &mut buf).map_err(enc)?;
    frontend::bind(
        "",
        "",
        std::iter::once(0i16),
        st.params.iter(),
        |p: &Option<String>, out: &mut BytesMut| match p {
            Some(s) => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        },
        std::iter::once(0i16),
        &mut buf,
    )
    .map_err(|e| match e {
        frontend::BindError::Conversion(e) => ExecError::Broken(format!("encoding a parameter: {e}")),
        frontend::BindError::Serialization(e) => enc(e),
    })?;
    frontend::describe(b'P', "", &mut buf).map_err(enc)?;
    let limit = i32::try_from(st.max_rows.saturating_add(1)).unwrap_or(i32::MAX);
    frontend::execute("", limit, &mut buf).map_err(enc)?;
    frontend::sync(&mut buf);
    Ok(buf)
}

/// The SQLSTATE and primary message of an ErrorResponse; every other field is dropped.
pub fn error_fields(body: &backend::ErrorResponseBody) -> (String, String) {
    let mut code = String::from("XX000");
    let mut message = String::from("the database reported an error");
    let mut fields = body.fields();
    while let Ok(Some(f)) = fields.next() {
        match f.type_() {
            b'C' => code = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            b'M' => message = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            _ => {}
        }
    }
    (code, message)
}

fn parse_frame(frame: Bytes) -> Result<backend::Message, ExecError> {
    let mut buf = BytesMut::from(&frame[..]);
    match backend::Message::parse(&mut buf) {
        Ok(Some(m)) if buf.is_empty() => Ok(m),
        Ok(_) => Err(ExecError::Broken("the backend sent a partial or oversized frame".into())),
        Err(e) => Err(ExecError::Broken(format!("the backend sent an unreadable message: {e}"))),
    }
}

fn command_rows(tag: &str) -> Option<u64> {
    // "SELECT 5", "INSERT 0 5", "UPDATE 5", "DELETE 5", "MERGE 5", "FETCH 5", "COPY 5".
    let mut words = tag.split_whitespace();
    let verb = words.next()?;
    let last = tag.rsplit(' ').next()?;
    match verb {
        "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "FETCH" | "MOVE" | "COPY" => last.parse().ok(),
        _ => None,
    }
}

/// Run the statement on a backend carrying `have`. On `Ok` and on `Err(Db)` the connection
/// is reusable once idle (the caller checks: a tenant's lone `BEGIN` leaves it in a
/// transaction), and carries the settings of `st`, unless the error came from the settings
/// themselves ([`prelude`]), which the caller cannot tell apart: it should reset the backend
/// after an `Err(Db)` when a prelude was sent.
pub async fn run<B: BackendIo>(b: &mut B, st: &Statement<'_>, have: Settings) -> Result<Outcome, ExecError> {
    let request = encode(st, have)?;
    b.send_bytes(&request).await.map_err(ExecError::Broken)?;

    let mut out = Outcome::default();
    let mut first_error: Option<(String, String)> = None;
    let mut bytes = 0usize;
    // The statement's replies come after the prelude's ReadyForQuery, when there is one.
    let mut ready = u8::from(prelude(st, have).is_none());
    // 0: prelude, 1: the statement.
    while ready < 2 {
        let msg = parse_frame(b.recv_frame().await.map_err(ExecError::Broken)?)?;
        match msg {
            backend::Message::ReadyForQuery(_) => ready += 1,
            backend::Message::ErrorResponse(body) => {
                if first_error.is_none() {
                    first_error = Some(error_fields(&body));
                }
            }
            // Never passed through (see module docs); ParameterStatus and notifications neither.
            backend::Message::NoticeResponse(_)
            | backend::Message::ParameterStatus(_)
            | backend::Message::NotificationResponse(_) => {}
            backend::Message::RowDescription(body) if ready == 1 => {
                let mut fields = body.fields();
                while let Some(f) = fields.next().map_err(|e| ExecError::Broken(format!("bad RowDescription: {e}")))? {
                    out.columns.push(Column { name: f.name().to_string(), type_oid: f.type_oid() });
                }
            }
            backend::Message::DataRow(row) if ready == 1 => {
                if out.rows.len() >= st.max_rows as usize {
                    out.truncated = true;
                    continue;
                }
                let buf = row.buffer();
                let size = buf.len();
                if out.truncated || bytes.saturating_add(size) > st.max_bytes {
                    out.truncated = true;
                    continue;
                }
                bytes += size;
                let mut values_out = Vec::with_capacity(out.columns.len());
                let mut ranges = row.ranges();
                let mut i = 0usize;
                while let Some(r) = ranges.next().map_err(|e| ExecError::Broken(format!("bad DataRow: {e}")))? {
                    let oid = out.columns.get(i).map_or(25, |c| c.type_oid);
                    values_out.push(match r {
                        None => Value::Null,
                        Some(r) => values::to_json(oid, &String::from_utf8_lossy(buf.get(r).unwrap_or(&[]))),
                    });
                    i += 1;
                }
                out.rows.push(values_out);
            }
            backend::Message::CommandComplete(body) if ready == 1 => {
                let tag = body.tag().map_err(|e| ExecError::Broken(format!("bad CommandComplete: {e}")))?;
                out.row_count = command_rows(tag).unwrap_or(out.rows.len() as u64);
            }
            backend::Message::PortalSuspended if ready == 1 => out.truncated = true,
            backend::Message::ParseComplete
            | backend::Message::BindComplete
            | backend::Message::NoData
            | backend::Message::EmptyQueryResponse
            | backend::Message::CommandComplete(_) => {}
            backend::Message::CopyInResponse(_) | backend::Message::CopyOutResponse(_) => {
                // COPY cannot be driven through a one-statement door; the backend now waits for data we will not
                // send, so the connection must not be reused.
                return Err(ExecError::Unsupported(
                    "COPY is not available here; use the wire protocol (psql \\copy), or SELECT the rows".into(),
                ));
            }
            other => {
                return Err(ExecError::Broken(format!("unexpected backend message (tag {:?})", tag_of(&other))));
            }
        }
    }
    out.bytes = bytes;
    if out.truncated {
        // The row count a truncated SELECT reports is the rows returned.
        out.row_count = out.row_count.max(out.rows.len() as u64);
    }
    match first_error {
        Some((sqlstate, message)) => Err(ExecError::Db { sqlstate, message }),
        None => Ok(out),
    }
}

fn tag_of(m: &backend::Message) -> &'static str {
    match m {
        backend::Message::DataRow(_) => "D",
        backend::Message::RowDescription(_) => "T",
        backend::Message::CopyData(_) => "d",
        backend::Message::PortalSuspended => "s",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tags() {
        assert_eq!(command_rows("SELECT 5"), Some(5));
        assert_eq!(command_rows("INSERT 0 3"), Some(3));
        assert_eq!(command_rows("UPDATE 0"), Some(0));
        assert_eq!(command_rows("SET"), None);
    }

    #[test]
    fn encodes_one_parse_with_untyped_params() {
        let params = vec![Some("1".to_string()), None];
        let st = Statement { sql: "SELECT $1, $2", params: &params, statement_timeout_ms: 1000, max_rows: 10, max_bytes: 100 };
        let buf = encode(&st, Settings::None).expect("encode");
        let tags: Vec<u8> = {
            let mut v = Vec::new();
            let mut i = 0;
            while i < buf.len() {
                v.push(buf[i]);
                let len = u32::from_be_bytes([buf[i + 1], buf[i + 2], buf[i + 3], buf[i + 4]]) as usize;
                i += 1 + len;
            }
            v
        };
        assert_eq!(tags, b"QPBDES".to_vec());
    }

    #[test]
    fn settings_are_applied_once() {
        let st = Statement { sql: "SELECT 1", params: &[], statement_timeout_ms: 1000, max_rows: 10, max_bytes: 100 };
        assert!(prelude(&st, Settings::None).is_some_and(|p| p.contains("DateStyle") && p.contains("= 1000")));
        assert_eq!(prelude(&st, Settings::Applied { statement_timeout_ms: 1000 }), None);
        assert_eq!(prelude(&st, Settings::Applied { statement_timeout_ms: 5 }).as_deref(), Some("SET statement_timeout = 1000"));
        let buf = encode(&st, Settings::Applied { statement_timeout_ms: 1000 }).expect("encode");
        assert_eq!(buf[0], b'P');
    }
}
