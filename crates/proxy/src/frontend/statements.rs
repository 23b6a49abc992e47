//! Named prepared statements in transaction mode: a client's statements follow it from
//! backend to backend.
//!
//! In transaction mode a client's transactions run on whichever backend of its tenant role
//! is free, so a statement it prepared on one may be missing on the next. As PgBouncer 1.21
//! does, the gateway keeps each client's named statements (its name → the SQL the gate let
//! through and the parameter types) and prepares them on the backends under a name derived
//! from that SQL (`tg_` + a SHA-256 prefix), so clients of the same role share one server-side
//! statement for one text:
//! - Parse `name`: recorded; sent under the server name, or, when the backend already has it,
//!   replaced by an empty unnamed Parse so the client still gets its ParseComplete in order;
//! - Bind / Describe of `name`: renamed; if the backend lacks the statement, its Parse is sent
//!   first and its ParseComplete swallowed;
//! - Close of `name`: forgotten, answered by a Close of a name no backend has (the server's
//!   statement stays for the other clients);
//! - an error skips the rest of its batch (up to Sync): Parses skipped with it are undone.
//!
//! Unnamed statements and portals pass as they are: they never outlive a transaction here.
//!
//! Resets are read from the backend's CommandComplete tags, so they are seen whatever the gate
//! did and whichever protocol carried them: `RESET` (one setting or all) and `DISCARD ALL`
//! mark the client's settings as reset on the backend ([`Txn::take_reset`]: the transaction
//! loop restores them before the backend goes back); `DISCARD ALL` and `DEALLOCATE ALL` also
//! dropped every statement on the backend, and the client's own, as PostgreSQL does.
//!
//! Owns the client's statement names and what the backend it holds has prepared. It never
//! does I/O, never sends SQL the gate did not see (each Parse it sends carries the text the
//! gate allowed for this client, rewritten as the gate said), and never sends a client's own
//! statement name to a backend.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use postgres_protocol::message::frontend;
use sha2::{Digest, Sha256};
use tg_gate::Denial;

use crate::net::codec::{self, FrameError};
use crate::net::messages;

/// A name no backend statement has: Close of it answers CloseComplete and does nothing.
const NO_STATEMENT: &str = "tg_none";

/// A backend with more server-side statements than this goes back to the shared pool (reset
/// with `DISCARD ALL`) instead of staying lent, so no backend collects statements without end.
pub const MAX_PREPARED_PER_BACKEND: usize = 1_000;

/// What the flow does with a message after [`Txn`] saw it.
pub enum Step {
    /// Forward the client's bytes unchanged.
    Raw,
    /// What goes to the backend has been written.
    Wrote,
    /// Refuse the message, as PostgreSQL would (send a marker in its place).
    Refuse(Denial),
}

/// One client statement: its server name and the Parse that prepares it under that name.
struct Prepared {
    server: Arc<str>,
    parse: Bytes,
}

/// A Parse sent and not yet answered.
struct PendingParse {
    /// The sync point whose batch it is in (an error in that batch skips it).
    batch: u64,
    /// The server statement it creates on the backend, if it creates one.
    creates: Option<Arc<str>>,
    /// The client name it recorded (undone if skipped).
    client: Option<String>,
    /// Sent by the gateway, not the client: its ParseComplete is not forwarded.
    injected: bool,
}

/// The transaction-mode state of one session.
#[derive(Default)]
pub struct Txn {
    statements: HashMap<String, Prepared>,
    /// Server statements on the backend the client holds now.
    backend: HashSet<Arc<str>>,
    pending: VecDeque<PendingParse>,
    /// A message went to the backend after the last sync point (Sync, Query, FunctionCall).
    sent_since_sync: bool,
    /// Transaction status of the last ReadyForQuery.
    status: u8,
    /// A `RESET` or `DISCARD ALL` completed on the backend since [`Txn::take_reset`].
    reset: bool,
}

impl Txn {
    pub fn new() -> Txn {
        Txn { status: b'I', ..Txn::default() }
    }

    /// The statements prepared on the backend now lent (see [`crate::frontend::lending`]).
    pub fn lend(&mut self, prepared: HashSet<Arc<str>>) {
        self.backend = prepared;
    }

    /// The backend's statements, when it goes back.
    pub fn give_back(&mut self) -> HashSet<Arc<str>> {
        std::mem::take(&mut self.backend)
    }

    /// May the backend go back now: idle, every sync point answered, nothing sent since?
    pub fn releasable(&self, syncs_sent: u64, ready_seen: u64) -> bool {
        syncs_sent == ready_seen && !self.sent_since_sync && self.status == b'I' && self.pending.is_empty()
    }

    /// Note a client message about to be forwarded.
    pub fn note_client(&mut self, tag: u8) {
        match tag {
            b'S' | b'Q' | b'F' => self.sent_since_sync = false,
            b'X' => {}
            _ => self.sent_since_sync = true,
        }
    }

    /// A named Parse the gate allowed, with the text to prepare (`text`, rewritten if the gate
    /// said so). `batch` is the sync point it belongs to.
    pub fn parse(&mut self, name: &str, text: &str, param_types: &[u8], batch: u64, out: &mut BytesMut) -> Step {
        if self.statements.contains_key(name) {
            return Step::Refuse(Denial {
                rule: "prepared-statement",
                sqlstate: "42P05",
                message: format!("prepared statement \"{name}\" already exists"),
            });
        }
        let server = server_name(text, param_types);
        let mut parse = BytesMut::new();
        messages::parse_with_types(&mut parse, &server, text, param_types);
        let creates = if self.backend.contains(&server) {
            // Already there: an empty unnamed Parse gets the client its ParseComplete in order.
            messages::parse(out, "", "");
            None
        } else {
            out.extend_from_slice(&parse);
            self.backend.insert(server.clone());
            Some(server.clone())
        };
        self.pending.push_back(PendingParse { batch, creates, client: Some(name.to_owned()), injected: false });
        self.statements.insert(name.to_owned(), Prepared { server, parse: parse.freeze() });
        Step::Wrote
    }

    /// A Bind: rename its statement.
    pub fn bind(&mut self, body: &[u8], batch: u64, out: &mut BytesMut) -> Result<Step, FrameError> {
        let b = codec::parse_bind_head(body)?;
        if b.statement.is_empty() {
            return Ok(Step::Raw);
        }
        let Some(server) = self.ensure(b.statement, batch, out) else { return Ok(Step::Refuse(missing(b.statement))) };
        messages::bind_renamed(out, b.portal, &server, b.rest);
        Ok(Step::Wrote)
    }

    /// A Describe: rename a statement's.
    pub fn describe(&mut self, body: &[u8], batch: u64, out: &mut BytesMut) -> Result<Step, FrameError> {
        let t = codec::parse_target(body, "Describe")?;
        if t.kind != b'S' || t.name.is_empty() {
            return Ok(Step::Raw);
        }
        let Some(server) = self.ensure(t.name, batch, out) else { return Ok(Step::Refuse(missing(t.name))) };
        put(frontend::describe(b'S', &server, out));
        Ok(Step::Wrote)
    }

    /// A Close: forget a statement (the server keeps it for other clients).
    pub fn close(&mut self, body: &[u8], out: &mut BytesMut) -> Result<Step, FrameError> {
        let t = codec::parse_target(body, "Close")?;
        if t.kind != b'S' || t.name.is_empty() {
            return Ok(Step::Raw);
        }
        self.statements.remove(t.name);
        put(frontend::close(b'S', NO_STATEMENT, out));
        Ok(Step::Wrote)
    }

    /// The server name of `name`, prepared on the backend first if it lacks it.
    fn ensure(&mut self, name: &str, batch: u64, out: &mut BytesMut) -> Option<Arc<str>> {
        let p = self.statements.get(name)?;
        if !self.backend.contains(&p.server) {
            out.extend_from_slice(&p.parse);
            self.backend.insert(p.server.clone());
            self.pending.push_back(PendingParse { batch, creates: Some(p.server.clone()), client: None, injected: true });
        }
        Some(p.server.clone())
    }

    /// A backend message: `false` if it must not reach the client (the ParseComplete of a
    /// Parse the gateway injected). `failing_batch` is the sync point an error now belongs to.
    pub fn on_backend(&mut self, m: &[u8], failing_batch: u64) -> bool {
        match m[0] {
            b'1' => match self.pending.pop_front() {
                Some(p) => !p.injected,
                None => true,
            },
            b'E' => {
                // The backend skips the rest of the batch: its Parses never happen.
                while self.pending.front().is_some_and(|p| p.batch <= failing_batch) {
                    let Some(p) = self.pending.pop_front() else { break };
                    if let Some(s) = &p.creates {
                        self.backend.remove(s);
                    }
                    if let Some(c) = &p.client {
                        self.statements.remove(c);
                    }
                }
                true
            }
            b'Z' => {
                self.status = m.get(5).copied().unwrap_or(b'?');
                true
            }
            b'C' => {
                match command_tag(m) {
                    b"RESET" => self.reset = true,
                    b"DISCARD ALL" => {
                        self.reset = true;
                        self.forget_all();
                    }
                    b"DEALLOCATE ALL" => self.forget_all(),
                    _ => {}
                }
                true
            }
            _ => true,
        }
    }

    /// Has a `RESET` or `DISCARD ALL` completed that [`Txn::take_reset`] has not taken?
    pub fn reset_pending(&self) -> bool {
        self.reset
    }

    /// Did a `RESET` or `DISCARD ALL` complete since the last call? The client's settings must
    /// then be restored on the backend before anyone else's transaction runs on it.
    pub fn take_reset(&mut self) -> bool {
        std::mem::take(&mut self.reset)
    }

    /// Every statement on the backend is gone (`DISCARD ALL`, `DEALLOCATE ALL`), and with
    /// them the client's own names, as PostgreSQL does.
    fn forget_all(&mut self) {
        self.backend.clear();
        self.statements.clear();
    }
}

/// A CommandComplete's tag (without its NUL).
fn command_tag(m: &[u8]) -> &[u8] {
    let body = m.get(5..).unwrap_or(&[]);
    body.split(|b| *b == 0).next().unwrap_or(&[])
}

/// The server-side name of a statement: the same text and parameter types give the same name,
/// so clients of one role share it on each backend.
fn server_name(text: &str, param_types: &[u8]) -> Arc<str> {
    let mut h = Sha256::new();
    h.update(text.as_bytes());
    h.update([0]);
    h.update(param_types);
    let d = h.finalize();
    let hex: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
    Arc::from(format!("tg_{hex}"))
}

fn missing(name: &str) -> Denial {
    Denial { rule: "prepared-statement", sqlstate: "26000", message: format!("prepared statement \"{name}\" does not exist") }
}

/// postgres-protocol's builders fail only on a NUL inside a name, which a name read from a
/// C string cannot hold.
fn put(r: std::io::Result<()>) {
    if let Err(e) = r {
        tracing::debug!("a statement name could not be encoded: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::codec::{decode_frame, parse_parse, FrameLimits};

    fn frames(mut b: BytesMut) -> Vec<(u8, Vec<u8>)> {
        let mut v = Vec::new();
        while let Ok(Some(f)) = decode_frame(&mut b, &FrameLimits::default()) {
            v.push((f.tag, f.body().to_vec()));
        }
        v
    }

    fn bind(stmt: &str) -> Vec<u8> {
        let mut b = BytesMut::new();
        messages::bind_renamed(&mut b, b"", stmt, &[0, 0, 0, 0, 0, 0]);
        b[5..].to_vec()
    }

    #[test]
    fn statements_follow_the_client_across_backends() {
        let mut t = Txn::new();
        let mut out = BytesMut::new();
        assert!(matches!(t.parse("s1", "SELECT $1", b"\0\0", 1, &mut out), Step::Wrote));
        let f = frames(out.split());
        let p = parse_parse(&f[0].1).unwrap();
        assert!(p.name.starts_with("tg_") && p.query == "SELECT $1");
        let server = p.name.to_owned();
        assert!(t.on_backend(b"1\0\0\0\x04", 1), "the client's own ParseComplete is forwarded");
        // The same name twice: PostgreSQL's 42P05.
        assert!(matches!(t.parse("s1", "SELECT 2", b"\0\0", 1, &mut out), Step::Refuse(d) if d.sqlstate == "42P05"));
        // Another backend: the Bind brings its Parse along; that ParseComplete is swallowed.
        let first = t.give_back();
        assert!(first.contains(server.as_str()));
        t.lend(HashSet::new());
        assert!(matches!(t.bind(&bind("s1"), 2, &mut out).unwrap(), Step::Wrote));
        let f = frames(out.split());
        assert_eq!(f.iter().map(|x| x.0).collect::<Vec<_>>(), vec![b'P', b'B']);
        assert_eq!(parse_parse(&f[0].1).unwrap().name, server);
        assert_eq!(codec::parse_bind_head(&f[1].1).unwrap().statement, server);
        assert!(!t.on_backend(b"1\0\0\0\x04", 2));
        // Back on the first backend, a second client's Parse of the same text is an empty one.
        let mut other = Txn::new();
        other.lend(first);
        assert!(matches!(other.parse("a", "SELECT $1", b"\0\0", 1, &mut out), Step::Wrote));
        assert_eq!(parse_parse(&frames(out.split())[0].1).unwrap().name, "");
        // Unknown names: PostgreSQL's 26000; Close forgets locally.
        assert!(matches!(t.bind(&bind("nope"), 3, &mut out).unwrap(), Step::Refuse(d) if d.sqlstate == "26000"));
        assert!(matches!(t.close(b"Ss1\0", &mut out).unwrap(), Step::Wrote));
        assert_eq!(codec::parse_target(&frames(out.split())[0].1, "Close").unwrap().name, NO_STATEMENT);
        assert!(matches!(t.bind(&bind("s1"), 3, &mut out).unwrap(), Step::Refuse(_)));
    }

    #[test]
    fn resets_are_read_from_the_completion_tags() {
        let mut t = Txn::new();
        let mut out = BytesMut::new();
        let _ = t.parse("s1", "SELECT 1", b"\0\0", 1, &mut out);
        t.on_backend(b"1\0\0\0\x04", 1);
        assert!(!t.take_reset());
        t.on_backend(b"C\0\0\0\x0aRESET\0", 1);
        assert!(t.take_reset() && !t.take_reset(), "taken once");
        assert!(!t.backend.is_empty() && t.statements.contains_key("s1"), "RESET keeps the statements");
        t.on_backend(b"C\0\0\0\x10DISCARD ALL\0", 2);
        assert!(t.take_reset());
        assert!(t.backend.is_empty() && t.statements.is_empty(), "DISCARD ALL drops them all");
        t.on_backend(b"C\0\0\0\x0bSELECT 1\0", 3);
        assert!(!t.take_reset());
    }

    #[test]
    fn an_error_undoes_the_parses_it_skipped() {
        let mut t = Txn::new();
        let mut out = BytesMut::new();
        let _ = t.parse("bad", "SELECT nope", b"\0\0", 1, &mut out);
        assert!(!t.releasable(1, 0));
        t.on_backend(b"E\0\0\0\x04", 1);
        assert!(t.backend.is_empty() && t.statements.is_empty());
        t.note_client(b'S');
        t.on_backend(b"Z\0\0\0\x05I", 1);
        assert!(t.releasable(1, 1));
    }
}
