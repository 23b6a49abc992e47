//! One backend connection: a raw TCP stream to a tenant's server, logged in as one tenant
//! role (SCRAM-SHA-256 client), with the tenant's limits in its startup `options`.
//!
//! Owns the startup handshake and message-level reading and writing of one backend. It keeps
//! the server's ParameterStatus values, its cancel key and the transaction status current as
//! messages pass through [`BackendReader::recv`]. It never decodes rows and never sends SQL of
//! its own except `DISCARD ALL` on reset; it never logs a password.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::PoolError;
use crate::net::messages::{self, error_fields};
use crate::router::Login;

/// Largest backend message accepted (PostgreSQL never sends one over 1 GiB).
const MAX_BACKEND_MESSAGE: usize = (1 << 30) + 1024;

/// One message from the backend: its tag and raw bytes (tag, length, body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub tag: u8,
    pub bytes: Bytes,
}

impl RawMessage {
    pub fn body(&self) -> &[u8] {
        self.bytes.get(5..).unwrap_or(&[])
    }
}

/// Where to send a CancelRequest for this backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelTarget {
    pub host: String,
    pub port: u16,
    pub pid: u32,
    pub secret: u32,
}

impl CancelTarget {
    /// Send a CancelRequest to the backend's server. Best effort, like PostgreSQL's own.
    pub async fn cancel(&self) -> std::io::Result<()> {
        let mut s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect((self.host.as_str(), self.port)))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connecting to cancel"))??;
        let mut buf = BytesMut::new();
        frontend::cancel_request(self.pid as i32, self.secret as i32, &mut buf);
        s.write_all(&buf).await?;
        // Wait for the server to close, so the cancel has been delivered when we return.
        let mut sink = [0u8; 16];
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut sink)).await;
        Ok(())
    }
}

/// What a backend's reader knows beyond its socket: bytes read but not yet consumed, the
/// server's parameters and the transaction status. Kept apart from the socket so that the
/// `tg_proxy::relay` threads can frame backend messages with the same bookkeeping while they
/// own the socket.
#[derive(Debug)]
pub struct ReaderState {
    buf: BytesMut,
    /// Current server parameters (ParameterStatus), in arrival order of first report.
    params: Vec<(String, String)>,
    /// Transaction status from the last ReadyForQuery: b'I', b'T' or b'E'.
    txn_status: u8,
}

impl Default for ReaderState {
    fn default() -> Self {
        ReaderState::new()
    }
}

impl ReaderState {
    /// A fresh reader: nothing buffered, no parameters yet, idle.
    pub fn new() -> ReaderState {
        ReaderState { buf: BytesMut::with_capacity(8192), params: Vec::new(), txn_status: b'I' }
    }

    /// The length (tag included) of the whole message at the front of the buffer, after
    /// noting what it changes (transaction status, a server parameter); `None` if the buffer
    /// holds no whole message yet, in which case room is made for the rest of it. Call
    /// [`Self::consume`] with the length once the message has been handled.
    pub fn next_message(&mut self) -> Result<Option<usize>, PoolError> {
        let Some(len) = self.buffered_len()? else { return Ok(None) };
        match self.buf[0] {
            b'Z' => self.txn_status = self.buf.get(5).copied().unwrap_or(b'?'),
            b'S' => note_parameter(&mut self.params, &self.buf[5..len]),
            _ => {}
        }
        Ok(Some(len))
    }

    /// The first `len` buffered bytes (a message whose length [`Self::next_message`] gave).
    pub fn message(&self, len: usize) -> &[u8] {
        &self.buf[..len]
    }

    /// Drop the first `len` buffered bytes.
    pub fn consume(&mut self, len: usize) {
        self.buf.advance(len);
    }

    /// `b'I'`, `b'T'` or `b'E'`, from the last ReadyForQuery.
    pub fn transaction_status(&self) -> u8 {
        self.txn_status
    }

    /// The buffer to read more bytes into.
    pub fn buf_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The length (tag included) of the whole message at the front of the buffer, if one is
    /// there; otherwise makes room for the rest of it.
    fn buffered_len(&mut self) -> Result<Option<usize>, PoolError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if !(4..=MAX_BACKEND_MESSAGE).contains(&len) {
            return Err(PoolError::Protocol(format!("the server sent a message with invalid length {len}")));
        }
        if self.buf.len() < len + 1 {
            self.buf.reserve(len + 1 - self.buf.len());
            return Ok(None);
        }
        Ok(Some(len + 1))
    }

    /// Is a whole message waiting in the buffer?
    pub fn has_buffered_message(&self) -> bool {
        if self.buf.len() < 5 {
            return false;
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        self.buf.len() > len
    }
}

/// The reading half of a backend connection.
pub struct BackendReader {
    stream: OwnedReadHalf,
    state: ReaderState,
}

/// The writing half of a backend connection.
pub struct BackendWriter {
    stream: OwnedWriteHalf,
}

impl BackendWriter {
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), PoolError> {
        self.stream.write_all(bytes).await.map_err(PoolError::io)
    }

    /// Write without waiting; for a best-effort Terminate on close.
    pub fn try_send(&self, bytes: &[u8]) {
        let _ = self.stream.try_write(bytes);
    }
}

impl BackendReader {
    /// Read one whole message. Keeps parameters and transaction status current.
    pub async fn recv(&mut self) -> Result<RawMessage, PoolError> {
        let len = self.next_message().await?;
        let bytes = self.state.buf.split_to(len).freeze();
        Ok(RawMessage { tag: bytes[0], bytes })
    }

    /// Read one whole message and lend its raw bytes (tag, length, body) to `f` instead of
    /// handing out a `Bytes` of it: the forwarding path copies each message once, into its
    /// output. Keeps parameters and transaction status current, like [`Self::recv`].
    pub async fn recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, PoolError> {
        let len = self.next_message().await?;
        let r = f(self.state.message(len));
        self.state.consume(len);
        Ok(r)
    }

    /// Read until a whole message is at the front of the buffer, note what it changes
    /// (transaction status, a server parameter) and return its length, tag included.
    async fn next_message(&mut self) -> Result<usize, PoolError> {
        loop {
            if let Some(len) = self.state.next_message()? {
                return Ok(len);
            }
            let n = self.stream.read_buf(&mut self.state.buf).await.map_err(PoolError::io)?;
            if n == 0 {
                return Err(PoolError::Closed);
            }
        }
    }

    /// Is a whole message waiting in the buffer?
    pub fn has_buffered_message(&self) -> bool {
        self.state.has_buffered_message()
    }

    /// Bytes buffered but not yet returned.
    pub fn buffered(&self) -> usize {
        self.state.buf.len()
    }

    pub fn params(&self) -> &[(String, String)] {
        &self.state.params
    }

    pub fn transaction_status(&self) -> u8 {
        self.state.transaction_status()
    }

    /// Has the server sent anything (a FATAL, EOF) while we were not reading? Used on idle
    /// connections before reuse; never blocks.
    pub fn is_stale(&mut self) -> bool {
        if !self.state.buf.is_empty() {
            return true;
        }
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Ok(_) => true, // data (e.g. a termination notice) or EOF
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(_) => true,
        }
    }
}

/// Record a ParameterStatus body (name, value) in `params`, replacing an earlier value.
fn note_parameter(params: &mut Vec<(String, String)>, body: &[u8]) {
    let mut b = body;
    let (Some(name), Some(value)) = (crate::net::codec::take_cstr(&mut b), crate::net::codec::take_cstr(&mut b)) else {
        return;
    };
    let (name, value) = (String::from_utf8_lossy(name).into_owned(), String::from_utf8_lossy(value).into_owned());
    match params.iter_mut().find(|(n, _)| *n == name) {
        Some(p) => p.1 = value,
        None => params.push((name, value)),
    }
}

/// An open, authenticated backend connection.
pub struct BackendConn {
    pub reader: BackendReader,
    pub writer: BackendWriter,
    pub cancel: CancelTarget,
    pub role: String,
}

/// What a backend connection keeps while a relay thread owns its socket and reader state.
#[derive(Debug)]
pub struct Parked {
    cancel: CancelTarget,
    role: String,
}

/// What to log in with.
pub struct ConnectParams<'a> {
    pub host: &'a str,
    pub port: u16,
    pub database: &'a str,
    pub login: &'a Login,
    /// `-c name=value` settings for the startup packet's `options`.
    pub settings: &'a [(String, String)],
    pub connect_timeout: Duration,
}

impl BackendConn {
    /// Connect and log in. Errors say what failed without revealing the password.
    pub async fn connect(p: &ConnectParams<'_>) -> Result<BackendConn, PoolError> {
        let fut = async {
            let stream = TcpStream::connect((p.host, p.port)).await.map_err(PoolError::io)?;
            let _ = stream.set_nodelay(true);
            let (r, w) = stream.into_split();
            let mut conn = BackendConn {
                reader: BackendReader { stream: r, state: ReaderState::new() },
                writer: BackendWriter { stream: w },
                cancel: CancelTarget { host: p.host.to_string(), port: p.port, pid: 0, secret: 0 },
                role: p.login.role.clone(),
            };
            conn.startup(p).await?;
            Ok(conn)
        };
        match tokio::time::timeout(p.connect_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(PoolError::Unreachable(format!(
                "no answer from the database server within {} ms",
                p.connect_timeout.as_millis()
            ))),
        }
    }

    async fn startup(&mut self, p: &ConnectParams<'_>) -> Result<(), PoolError> {
        let options: Vec<String> = p.settings.iter().map(|(n, v)| format!("-c {n}={v}")).collect();
        let options = options.join(" ");
        let mut params: Vec<(&str, &str)> = vec![
            ("user", p.login.role.as_str()),
            ("database", p.database),
            ("application_name", "tenantgate"),
            ("client_encoding", "UTF8"),
            // The settings the gate pins (tg_gate's PINNED) start at their pinned values
            // whatever the server's configuration, so RESET and RESET ALL return to them.
            ("standard_conforming_strings", "on"),
            ("backslash_quote", "safe_encoding"),
        ];
        if !options.is_empty() {
            params.push(("options", options.as_str()));
        }
        let mut buf = BytesMut::new();
        frontend::startup_message(params.iter().copied(), &mut buf).map_err(PoolError::io)?;
        self.writer.send(&buf).await?;

        let mut scram: Option<ScramSha256> = None;
        loop {
            let m = self.reader.recv().await?;
            match m.tag {
                b'R' => {
                    let mut body = m.body();
                    if body.len() < 4 {
                        return Err(PoolError::Protocol("short authentication message".into()));
                    }
                    let code = body.get_u32();
                    let mut out = BytesMut::new();
                    match code {
                        0 => {}
                        3 => {
                            frontend::password_message(p.login.password.as_bytes(), &mut out).map_err(PoolError::io)?;
                        }
                        5 => {
                            if body.len() < 4 {
                                return Err(PoolError::Protocol("short MD5 salt".into()));
                            }
                            let salt = [body[0], body[1], body[2], body[3]];
                            let h = postgres_protocol::authentication::md5_hash(p.login.role.as_bytes(), p.login.password.as_bytes(), salt);
                            frontend::password_message(h.as_bytes(), &mut out).map_err(PoolError::io)?;
                        }
                        10 => {
                            let mut mechs = body;
                            let mut ok = false;
                            while let Some(m) = crate::net::codec::take_cstr(&mut mechs) {
                                if m.is_empty() {
                                    break;
                                }
                                ok |= m == b"SCRAM-SHA-256";
                            }
                            if !ok {
                                return Err(PoolError::Protocol("the server offers no SCRAM-SHA-256".into()));
                            }
                            let s = ScramSha256::new(p.login.password.as_bytes(), ChannelBinding::unsupported());
                            frontend::sasl_initial_response("SCRAM-SHA-256", s.message(), &mut out).map_err(PoolError::io)?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| PoolError::Protocol("SASL continue without start".into()))?;
                            s.update(body).map_err(|e| PoolError::Protocol(format!("SCRAM: {e}")))?;
                            frontend::sasl_response(s.message(), &mut out).map_err(PoolError::io)?;
                        }
                        12 => {
                            let mut s = scram.take().ok_or_else(|| PoolError::Protocol("SASL final without start".into()))?;
                            s.finish(body).map_err(|e| PoolError::Protocol(format!("SCRAM server signature: {e}")))?;
                        }
                        other => {
                            return Err(PoolError::Protocol(format!("unsupported authentication method {other} requested by the server")))
                        }
                    }
                    if !out.is_empty() {
                        self.writer.send(&out).await?;
                    }
                }
                b'K' => {
                    let mut body = m.body();
                    if body.len() >= 8 {
                        self.cancel.pid = body.get_u32();
                        self.cancel.secret = body.get_u32();
                    }
                }
                b'S' | b'N' => {}
                b'Z' => return Ok(()),
                b'E' => {
                    let f = error_fields(m.body());
                    return Err(PoolError::Backend { code: f.code, message: f.message });
                }
                other => return Err(PoolError::Protocol(format!("unexpected message {:?} during startup", other as char))),
            }
        }
    }

    /// Run `DISCARD ALL` (and nothing else) and wait for it. `Ok` only if the session is
    /// clean and idle afterwards.
    pub async fn reset(&mut self) -> Result<(), PoolError> {
        if self.reader.transaction_status() != b'I' || self.reader.buffered() > 0 {
            return Err(PoolError::Protocol("the backend is not idle".into()));
        }
        let mut q = BytesMut::new();
        messages::query(&mut q, "DISCARD ALL");
        self.writer.send(&q).await?;
        let mut failed = None;
        loop {
            let m = self.reader.recv().await?;
            match m.tag {
                b'E' => failed = Some(error_fields(m.body())),
                b'Z' => break,
                _ => {}
            }
        }
        match failed {
            Some(f) => Err(PoolError::Backend { code: f.code, message: f.message }),
            None if self.reader.transaction_status() == b'I' => Ok(()),
            None => Err(PoolError::Protocol("the backend stayed in a transaction after DISCARD ALL".into())),
        }
    }

    /// Take the socket out of tokio, for a `tg_proxy::relay` thread to drive; the reader's
    /// buffer and bookkeeping go with it, the rest stays in [`Parked`]. Put it back with
    /// [`Self::attach`].
    pub fn detach(self) -> Result<(std::net::TcpStream, ReaderState, Parked), PoolError> {
        let BackendConn { reader, writer, cancel, role } = self;
        let state = reader.state;
        let tcp = reader.stream.reunite(writer.stream).map_err(|e| PoolError::Protocol(format!("backend halves do not match: {e}")))?;
        let std = tcp.into_std().map_err(PoolError::io)?;
        Ok((std, state, Parked { cancel, role }))
    }

    /// A connection again from a detached socket and its state. Must run inside the tokio
    /// runtime.
    pub fn attach(std: std::net::TcpStream, state: ReaderState, parked: Parked) -> Result<BackendConn, PoolError> {
        std.set_nonblocking(true).map_err(PoolError::io)?;
        let (r, w) = TcpStream::from_std(std).map_err(PoolError::io)?.into_split();
        Ok(BackendConn {
            reader: BackendReader { stream: r, state },
            writer: BackendWriter { stream: w },
            cancel: parked.cancel,
            role: parked.role,
        })
    }

    /// Close politely (Terminate) without waiting.
    pub fn terminate(&self) {
        self.writer.try_send(b"X\0\0\0\x04");
    }
}
