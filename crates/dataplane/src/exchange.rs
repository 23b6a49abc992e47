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
//! One write, one round trip. Each reply is decoded where it lies in the connection's read
//! buffer ([`BackendIo::recv_with`]): no copy and no allocation per message on the way to the
//! values. The statement runs in the implicit transaction that the Sync ends. The settings are
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

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;
use serde_json::Value;

use crate::values;

/// A checked-out backend connection, as the wire gateway's pool hands it out: whole frontend
/// messages go in; each whole backend message (tag, length, body) is lent to a closure where
/// it lies in the connection's read buffer, so no message is copied or allocated on its way
/// to the decoder.
pub trait BackendIo: Send {
    fn send_bytes(&mut self, bytes: &[u8]) -> impl Future<Output = Result<(), String>> + Send;
    fn recv_with<R: Send>(&mut self, f: impl FnOnce(&[u8]) -> R + Send) -> impl Future<Output = Result<R, String>> + Send;
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

/// The SQLSTATE and primary message of an ErrorResponse body; every other field is dropped.
pub fn error_fields(body: &[u8]) -> (String, String) {
    let mut code = String::from("XX000");
    let mut message = String::from("the database reported an error");
    let mut rest = body;
    // Fields: a type byte and a NUL-terminated value each, then a lone NUL.
    while let Some((&kind, tail)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let Some((value, after)) = cstr(tail) else { break };
        match kind {
            b'C' => code = String::from_utf8_lossy(value).into_owned(),
            b'M' => message = String::from_utf8_lossy(value).into_owned(),
            _ => {}
        }
        rest = after;
    }
    (code, message)
}

/// A NUL-terminated string at the front of `b`, and what follows its NUL.
fn cstr(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = b.iter().position(|&c| c == 0)?;
    Some((&b[..end], &b[end + 1..]))
}

fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([*b.get(at)?, *b.get(at + 1)?, *b.get(at + 2)?, *b.get(at + 3)?]))
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

/// The replies to one request, decoded message by message as they are read (each straight
/// from the connection's read buffer).
struct Replies {
    max_rows: usize,
    max_bytes: usize,
    out: Outcome,
    first_error: Option<(String, String)>,
    /// ReadyForQuery messages seen, counting the prelude's as one already when there is none:
    /// the statement's replies come while this is 1, and the exchange ends at 2.
    ready: u8,
}

fn broken(what: &str) -> ExecError {
    ExecError::Broken(format!("the backend sent a malformed {what}"))
}

impl Replies {
    /// Take one whole backend message (tag, length, body).
    fn take(&mut self, frame: &[u8]) -> Result<(), ExecError> {
        let (Some(&tag), Some(len)) = (frame.first(), be_u32(frame, 1)) else {
            return Err(ExecError::Broken("the backend sent a partial or oversized frame".into()));
        };
        if len as usize + 1 != frame.len() || len < 4 {
            return Err(ExecError::Broken("the backend sent a partial or oversized frame".into()));
        }
        let body = &frame[5..];
        let statement = self.ready == 1;
        match tag {
            b'Z' => self.ready += 1,
            b'E' => {
                if self.first_error.is_none() {
                    self.first_error = Some(error_fields(body));
                }
            }
            // Never passed through (see module docs): notices, ParameterStatus, notifications.
            b'N' | b'S' | b'A' => {}
            b'T' if statement => self.row_description(body)?,
            b'D' if statement => self.data_row(body)?,
            b'C' if statement => {
                let (tag, _) = cstr(body).ok_or_else(|| broken("CommandComplete"))?;
                let tag = std::str::from_utf8(tag).map_err(|_| broken("CommandComplete"))?;
                self.out.row_count = command_rows(tag).unwrap_or(self.out.rows.len() as u64);
            }
            b's' if statement => self.out.truncated = true,
            // ParseComplete, BindComplete, NoData, EmptyQueryResponse, the prelude's completions.
            b'1' | b'2' | b'n' | b'I' | b'C' => {}
            b'G' | b'H' => {
                // COPY cannot be driven through a one-statement door; the backend now waits for
                // data we will not send, so the connection must not be reused.
                return Err(ExecError::Unsupported(
                    "COPY is not available here; use the wire protocol (psql \\copy), or SELECT the rows".into(),
                ));
            }
            other => {
                return Err(ExecError::Broken(format!("unexpected backend message (tag {:?})", char::from(other))));
            }
        }
        Ok(())
    }

    fn row_description(&mut self, body: &[u8]) -> Result<(), ExecError> {
        let n = be_u16(body, 0).ok_or_else(|| broken("RowDescription"))?;
        let mut rest = &body[2..];
        self.out.columns.reserve(usize::from(n));
        for _ in 0..n {
            let (name, after) = cstr(rest).ok_or_else(|| broken("RowDescription"))?;
            // Table oid (4), column number (2), type oid (4), size (2), modifier (4), format (2).
            let type_oid = be_u32(after, 6).ok_or_else(|| broken("RowDescription"))?;
            rest = after.get(18..).ok_or_else(|| broken("RowDescription"))?;
            let name = std::str::from_utf8(name).map_err(|_| broken("RowDescription"))?;
            self.out.columns.push(Column { name: name.to_string(), type_oid });
        }
        Ok(())
    }

    fn data_row(&mut self, body: &[u8]) -> Result<(), ExecError> {
        if self.out.rows.len() >= self.max_rows {
            self.out.truncated = true;
            return Ok(());
        }
        // The row's size as counted against max_bytes: its values and their lengths.
        let size = body.len().saturating_sub(2);
        if self.out.truncated || self.out.bytes.saturating_add(size) > self.max_bytes {
            self.out.truncated = true;
            return Ok(());
        }
        let n = be_u16(body, 0).ok_or_else(|| broken("DataRow"))?;
        let mut at = 2usize;
        let mut row = Vec::with_capacity(usize::from(n));
        for i in 0..usize::from(n) {
            let len = be_u32(body, at).ok_or_else(|| broken("DataRow"))? as i32;
            at += 4;
            if len < 0 {
                row.push(Value::Null);
                continue;
            }
            let end = at.checked_add(len as usize).ok_or_else(|| broken("DataRow"))?;
            let raw = body.get(at..end).ok_or_else(|| broken("DataRow"))?;
            at = end;
            let oid = self.out.columns.get(i).map_or(25, |c| c.type_oid);
            row.push(match std::str::from_utf8(raw) {
                Ok(text) => values::to_json(oid, text),
                Err(_) => values::to_json(oid, &String::from_utf8_lossy(raw)),
            });
        }
        self.out.bytes += size;
        self.out.rows.push(row);
        Ok(())
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
    let mut replies = Replies {
        max_rows: st.max_rows as usize,
        max_bytes: st.max_bytes,
        out: Outcome::default(),
        first_error: None,
        // The statement's replies come after the prelude's ReadyForQuery, when there is one.
        ready: u8::from(prelude(st, have).is_none()),
    };
    while replies.ready < 2 {
        let r = &mut replies;
        b.recv_with(move |frame| r.take(frame)).await.map_err(ExecError::Broken)??;
    }
    let mut out = replies.out;
    if out.truncated {
        // The row count a truncated SELECT reports is the rows returned.
        out.row_count = out.row_count.max(out.rows.len() as u64);
    }
    match replies.first_error {
        Some((sqlstate, message)) => Err(ExecError::Db { sqlstate, message }),
        None => Ok(out),
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

    /// A backend that answers from a script of whole messages.
    struct Script {
        frames: std::collections::VecDeque<Vec<u8>>,
        sent: usize,
    }

    impl BackendIo for Script {
        async fn send_bytes(&mut self, _bytes: &[u8]) -> Result<(), String> {
            self.sent += 1;
            Ok(())
        }
        async fn recv_with<R: Send>(&mut self, f: impl FnOnce(&[u8]) -> R + Send) -> Result<R, String> {
            let frame = self.frames.pop_front().ok_or_else(|| "connection closed".to_string())?;
            Ok(f(&frame))
        }
    }

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn row_description(cols: &[(&str, u32)]) -> Vec<u8> {
        let mut b = (cols.len() as u16).to_be_bytes().to_vec();
        for (name, oid) in cols {
            b.extend_from_slice(name.as_bytes());
            b.push(0);
            b.extend_from_slice(&0u32.to_be_bytes()); // table
            b.extend_from_slice(&0u16.to_be_bytes()); // column
            b.extend_from_slice(&oid.to_be_bytes());
            b.extend_from_slice(&(-1i16).to_be_bytes()); // size
            b.extend_from_slice(&(-1i32).to_be_bytes()); // modifier
            b.extend_from_slice(&0u16.to_be_bytes()); // format
        }
        msg(b'T', &b)
    }

    fn data_row(values: &[Option<&str>]) -> Vec<u8> {
        let mut b = (values.len() as u16).to_be_bytes().to_vec();
        for v in values {
            match v {
                Some(v) => {
                    b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                    b.extend_from_slice(v.as_bytes());
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        msg(b'D', &b)
    }

    fn ready() -> Vec<u8> {
        msg(b'Z', b"I")
    }

    fn script(frames: Vec<Vec<u8>>) -> Script {
        Script { frames: frames.into(), sent: 0 }
    }

    fn point_read() -> Statement<'static> {
        Statement { sql: "SELECT 1", params: &[], statement_timeout_ms: 1000, max_rows: 10, max_bytes: 1 << 20 }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
    }

    #[test]
    fn decodes_a_point_read_in_one_round_trip() {
        let mut b = script(vec![
            msg(b'1', b""),
            msg(b'2', b""),
            row_description(&[("id", values::INT4), ("at", values::TIMESTAMPTZ), ("note", 25)]),
            msg(b'N', b"SWARNING\0Mnot for the caller\0\0"),
            data_row(&[Some("7"), Some("2024-03-01 12:34:56.5+00"), None]),
            msg(b'C', b"SELECT 1\0"),
            ready(),
        ]);
        let out = block_on(run(&mut b, &point_read(), Settings::Applied { statement_timeout_ms: 1000 })).expect("ran");
        assert_eq!(b.sent, 1, "one write: Parse/Bind/Describe/Execute/Sync together");
        assert!(b.frames.is_empty(), "read up to the ReadyForQuery and no further");
        let cols: Vec<(&str, u32)> = out.columns.iter().map(|c| (c.name.as_str(), c.type_oid)).collect();
        assert_eq!(cols, vec![("id", values::INT4), ("at", values::TIMESTAMPTZ), ("note", 25)]);
        assert_eq!(out.rows, vec![vec![Value::from(7), Value::from("2024-03-01T12:34:56.500Z"), Value::Null]]);
        assert_eq!((out.row_count, out.truncated), (1, false));
        assert_eq!(out.bytes, data_row(&[Some("7"), Some("2024-03-01 12:34:56.5+00"), None]).len() - 7);
    }

    #[test]
    fn a_prelude_is_read_past_and_errors_keep_only_code_and_message() {
        let mut b = script(vec![
            msg(b'C', b"SET\0"),
            msg(b'S', b"DateStyle\0ISO, MDY\0"),
            ready(),
            msg(b'E', b"SERROR\0C42P01\0Mrelation \"nope\" does not exist\0Dsecret detail\0Hhint\0\0"),
            ready(),
        ]);
        let err = block_on(run(&mut b, &point_read(), Settings::None)).expect_err("refused");
        assert_eq!(err, ExecError::Db { sqlstate: "42P01".into(), message: "relation \"nope\" does not exist".into() });
    }

    #[test]
    fn rows_past_the_limits_are_cut() {
        let frames = |n: usize| {
            let mut f = vec![msg(b'1', b""), msg(b'2', b""), row_description(&[("v", 25)])];
            f.extend((0..n).map(|_| data_row(&[Some("abcdef")])));
            f.extend([msg(b's', b""), ready()]);
            f
        };
        let st = Statement { max_rows: 2, ..point_read() };
        let out = block_on(run(&mut script(frames(3)), &st, Settings::Applied { statement_timeout_ms: 1000 })).expect("ran");
        assert_eq!((out.rows.len(), out.truncated, out.row_count), (2, true, 2));
        let st = Statement { max_bytes: 25, ..point_read() };
        let out = block_on(run(&mut script(frames(3)), &st, Settings::Applied { statement_timeout_ms: 1000 })).expect("ran");
        assert_eq!((out.rows.len(), out.truncated, out.bytes), (2, true, 20), "10 bytes a row: its length word and value");
    }

    #[test]
    fn malformed_or_unexpected_messages_break_the_connection() {
        let applied = Settings::Applied { statement_timeout_ms: 1000 };
        let cut_row = {
            let mut m = data_row(&[Some("abcdef")]);
            // Claim a longer value than the message holds.
            m[7..11].copy_from_slice(&100i32.to_be_bytes());
            m
        };
        for frames in [
            vec![row_description(&[("v", 25)]), cut_row],
            vec![msg(b'T', b"\x00\x01v")],
            vec![msg(b'K', b"12345678")],
            vec![{
                let mut m = ready();
                m[4] = 9; // a length past the frame
                m
            }],
            vec![msg(b'1', b"")], // the connection ends before ReadyForQuery
        ] {
            let r = block_on(run(&mut script(frames.clone()), &point_read(), applied));
            assert!(matches!(r, Err(ExecError::Broken(_))), "{frames:?}: {r:?}");
        }
        let r = block_on(run(&mut script(vec![msg(b'G', b"\0\0\0")]), &point_read(), applied));
        assert!(matches!(r, Err(ExecError::Unsupported(_))), "{r:?}");
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
