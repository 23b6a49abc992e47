//! One client session, from the first byte to the last: startup (TLS, cancel, protocol
//! version, parameters), SCRAM authentication with a tenant API key, backend checkout, then
//! forwarding in both directions with every SQL-carrying message passed through the gate,
//! and the end (final bytes, FATAL, backend reset and return to its pool).
//!
//! Owns the session's life. The data path runs one way: auth → gate → router → pool. The
//! forwarding rules (gate, denial markers) are the [`Flow`]'s; this module picks the loop
//! that runs them: a plain-TCP session is handed to a [`crate::relay`] thread, a TLS session
//! (or any, with `gateway.relay = false`) forwards on its own task. Either way the session
//! ends here.
//!
//! It must never: forward a message the gate refused, forward anything before
//! authentication succeeded, reveal whether a tenant exists, or log SQL or secrets.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tg_catalog::keys::{ActiveKey, KeyScope};
use tg_gate::Scope;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::flow::Flow;
use super::scram;
use super::startup;
use super::Shared;
use crate::audit::AuditEvent;
use crate::backend::{Backend, BackendReader, BackendWriter, PoolError};
use crate::net::codec::{self, decode_frame, decode_startup, Frame, FrameError, FrameLimits, Startup};
use crate::net::messages::{self, error_fields, Severity};
use crate::frontend::stream::{ClientReader, ClientStream};
use crate::net::FLUSH_AT;

pub use super::error::Fatal;
use crate::relay::{Ended, FromClient, Job, Outcome, Refused, Relay};
use crate::router::{EndReason, Route, RouteError};

/// Limits while authenticating: nothing legitimate is bigger.
const AUTH_LIMITS: FrameLimits = FrameLimits { max_message: 8192, max_copy: 8192 };

/// How startup ended without a session.
enum StartupEnd {
    /// Say this and close.
    Fatal(Fatal),
    /// Close without a word (EOF, I/O error, a cancel request served).
    Quiet,
}

impl From<Fatal> for StartupEnd {
    fn from(f: Fatal) -> Self {
        StartupEnd::Fatal(f)
    }
}

impl From<FrameError> for StartupEnd {
    fn from(e: FrameError) -> Self {
        StartupEnd::Fatal(e.into())
    }
}

impl From<std::io::Error> for StartupEnd {
    fn from(_: std::io::Error) -> Self {
        StartupEnd::Quiet
    }
}

async fn write_fatal<W: AsyncWrite + Unpin + ?Sized>(w: &mut W, f: &Fatal) {
    let mut out = BytesMut::new();
    messages::error_response(&mut out, Severity::Fatal, &f.code, &f.message, f.hint.as_deref());
    let _ = w.write_all(&out).await;
    let _ = w.flush().await;
    let _ = w.shutdown().await;
}

/// Serve one client connection to its end. Never panics on client input; every failure is
/// a FATAL to this client only.
pub async fn run(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let mut stream = ClientStream::Plain(tcp);
    let mut buf = BytesMut::with_capacity(8192);
    let auth_timeout = crate::config::GatewayConfig::ms(shared.cfg.auth_timeout_ms);
    let started = tokio::time::timeout(auth_timeout, startup_phase(&shared, &mut stream, &mut buf, peer)).await;
    let ready = match started {
        Ok(Ok(ready)) => ready,
        Ok(Err(StartupEnd::Fatal(f))) => return write_fatal(&mut stream, &f).await,
        Ok(Err(StartupEnd::Quiet)) => return,
        Err(_) => {
            let f = Fatal::new("08006", "tenantgate: startup and authentication did not finish in time; connection closed");
            return write_fatal(&mut stream, &f).await;
        }
    };
    forward_phase(&shared, stream, buf, ready).await;
}

/// An authenticated session with its backend, ready for queries.
struct Ready {
    route: Route,
    key: ActiveKey,
    backend: Backend,
}

async fn read_startup(stream: &mut ClientStream, buf: &mut BytesMut) -> Result<Startup, StartupEnd> {
    loop {
        if let Some(s) = decode_startup(buf)? {
            return Ok(s);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(if buf.is_empty() {
                StartupEnd::Quiet
            } else {
                StartupEnd::Fatal(Fatal::new("08P01", "incomplete startup packet"))
            });
        }
    }
}

async fn read_frame(stream: &mut ClientStream, buf: &mut BytesMut, limits: &FrameLimits) -> Result<Frame, StartupEnd> {
    loop {
        if let Some(f) = decode_frame(buf, limits)? {
            return Ok(f);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(if buf.is_empty() {
                StartupEnd::Quiet
            } else {
                StartupEnd::Fatal(Fatal::new("08P01", "incomplete message from client: the connection closed in the middle of it"))
            });
        }
    }
}

async fn send(stream: &mut ClientStream, out: &BytesMut) -> Result<(), StartupEnd> {
    stream.write_all(out).await?;
    stream.flush().await?;
    Ok(())
}

fn auth_failed(user: &str) -> Fatal {
    Fatal::new("28P01", format!("password authentication failed for user \"{user}\""))
        .hint("user is the tenant's slug and the password one of its active API keys (tenantgate key create SLUG)")
}

async fn startup_phase(shared: &Shared, stream: &mut ClientStream, buf: &mut BytesMut, peer: SocketAddr) -> Result<Ready, StartupEnd> {
    let mut encrypted = false;
    let (version, params) = loop {
        match read_startup(stream, buf).await? {
            Startup::Ssl | Startup::GssEnc if !buf.is_empty() => {
                // Bytes sent before our answer could not have been encrypted: an injection
                // attempt (CVE-2021-23214). Refuse.
                return Err(Fatal::new("08P01", "received unencrypted data after SSL request").into());
            }
            Startup::Ssl if encrypted => return Err(Fatal::new("08P01", "SSL request on an encrypted connection").into()),
            Startup::Ssl => match &shared.tls {
                Some(acceptor) => {
                    stream.write_all(b"S").await?;
                    stream.flush().await?;
                    let Some(plain) = stream.take_tcp() else {
                        return Err(Fatal::new("08P01", "SSL request on an encrypted connection").into());
                    };
                    let tls = acceptor.accept(plain).await?;
                    *stream = ClientStream::Tls(Box::new(tls));
                    encrypted = true;
                }
                None => {
                    stream.write_all(b"N").await?;
                    stream.flush().await?;
                }
            },
            Startup::GssEnc => {
                stream.write_all(b"N").await?;
                stream.flush().await?;
            }
            Startup::Cancel { pid, secret } => {
                shared.cancels.cancel(pid, secret).await;
                return Err(StartupEnd::Quiet);
            }
            Startup::Message { version, params } => break (version, params),
        }
    };
    let (major, minor) = (version >> 16, version & 0xffff);
    if major != 3 {
        return Err(Fatal::new(
            "0A000",
            format!("unsupported frontend protocol {major}.{minor}: tenantgate supports protocol 3.0"),
        )
        .into());
    }
    let req = startup::check(&params).map_err(|r| Fatal::new(r.code, r.message))?;
    if minor > 0 || !req.protocol_options.is_empty() {
        let mut out = BytesMut::new();
        messages::negotiate_protocol_version(&mut out, 0, &req.protocol_options);
        send(stream, &out).await?;
    }
    let audit_conn = |tenant: Option<&Route>, key: Option<&str>, outcome: &'static str| {
        shared.auditor.record(AuditEvent::Connection {
            tenant: tenant.map(|r| r.tenant.to_string()),
            user: req.user.clone(),
            key_id: key.map(str::to_string),
            client: Some(peer),
            outcome,
        })
    };

    // SCRAM-SHA-256.
    let mut out = BytesMut::new();
    messages::auth_sasl(&mut out);
    send(stream, &out).await?;
    let f = read_frame(stream, buf, &AUTH_LIMITS).await?;
    if f.tag != b'p' {
        return Err(Fatal::new("08P01", "expected a SASL response (password message) from the client").into());
    }
    let (mechanism, data) = codec::parse_sasl_initial(f.body())?;
    if mechanism != "SCRAM-SHA-256" {
        return Err(Fatal::new("28000", format!("SASL mechanism {mechanism:?} is not supported; use SCRAM-SHA-256")).into());
    }
    let cf = scram::parse_client_first(data).map_err(|e| Fatal::new("28000", e.to_string()))?;
    let route = match shared.router.route(&req.user).await {
        Ok(r) => Some(r),
        Err(RouteError::UnknownTenant(_)) => None,
        Err(e) => return Err(Fatal::new("08006", e.to_string()).into()),
    };
    let (salt, iterations) = match route.as_ref().and_then(|r| r.scram_salt()) {
        Some((s, i)) => (s.to_vec(), i),
        None => (scram::decoy_salt(&shared.decoy_secret, &req.user), tg_catalog::keys::SCRAM_ITERATIONS),
    };
    let (sf, nonce) = scram::server_first(&cf, &salt, iterations);
    let mut out = BytesMut::new();
    messages::auth_sasl_continue(&mut out, sf.as_bytes());
    send(stream, &out).await?;
    let f = read_frame(stream, buf, &AUTH_LIMITS).await?;
    if f.tag != b'p' {
        return Err(Fatal::new("08P01", "expected a SASL response (password message) from the client").into());
    }
    let fin = scram::parse_client_final(f.body(), &cf, &nonce).map_err(|e| Fatal::new("08P01", e.to_string()))?;
    let mut matched = route.as_ref().and_then(|r| scram::verify(&r.keys, &cf, &sf, &fin).map(|(k, v)| (r.clone(), k.clone(), v)));
    if matched.is_none() && route.is_some() {
        // The key may be newer than the cached route; re-read once. Only the same salt can
        // match, and new keys reuse the tenant's salt.
        if let Ok(fresh) = shared.router.route_fresh(&req.user).await {
            if fresh.scram_salt().map(|(s, _)| s) == Some(salt.as_slice()) {
                matched = scram::verify(&fresh.keys, &cf, &sf, &fin).map(|(k, v)| (fresh.clone(), k.clone(), v));
            }
        }
    }
    let Some((route, key, server_final)) = matched else {
        audit_conn(route.as_ref(), None, "auth-failed");
        return Err(auth_failed(&req.user).into());
    };
    let mut out = BytesMut::new();
    messages::auth_sasl_final(&mut out, server_final.as_bytes());
    send(stream, &out).await?;

    // Authenticated: the tenant may learn its own status.
    if let Err(e) = route.check_routable() {
        audit_conn(Some(&route), Some(&key.id), if matches!(e, RouteError::Suspended { .. }) { "suspended" } else { "unavailable" });
        return Err(Fatal::new("57P03", e.to_string()).into());
    }
    let mut backend = match shared.pools.checkout(&route, key.scope).await {
        Ok(b) => b,
        Err(e) => {
            audit_conn(Some(&route), Some(&key.id), if matches!(e, PoolError::Exhausted { .. }) { "budget-exhausted" } else { "backend-error" });
            return Err(pool_fatal(&e).into());
        }
    };
    if !req.settings.is_empty() {
        if let Err(f) = apply_settings(&mut backend, &req.settings).await {
            audit_conn(Some(&route), Some(&key.id), "bad-parameter");
            backend.release().await;
            return Err(f.into());
        }
    }
    audit_conn(Some(&route), Some(&key.id), "ok");
    shared.auditor.record(AuditEvent::KeyUsed { key_id: key.id.clone() });
    Ok(Ready { route, key, backend })
}

fn pool_fatal(e: &PoolError) -> Fatal {
    Fatal::new(e.sqlstate(), format!("tenantgate: {e}"))
}

/// Apply the client's allowed startup settings on the backend with SET.
async fn apply_settings(backend: &mut Backend, settings: &[(String, String)]) -> Result<(), Fatal> {
    let mut q = BytesMut::new();
    messages::query(&mut q, &startup::set_statements(settings));
    backend.send(&q).await.map_err(|e| pool_fatal(&e))?;
    let mut error = None;
    loop {
        let m = backend.recv().await.map_err(|e| pool_fatal(&e))?;
        match m.tag {
            b'E' => error = Some(error_fields(m.body())),
            b'Z' => break,
            _ => {}
        }
    }
    match error {
        Some(e) => Err(Fatal::new(&e.code, format!("invalid startup parameter: {}", e.message))),
        None => Ok(()),
    }
}

enum End {
    /// The client said Terminate or closed cleanly between messages.
    Client,
    ClientError(Fatal),
    /// The backend closed or failed (its own FATAL, if any, was forwarded).
    Backend(PoolError),
    Revoked(EndReason),
    Shutdown,
}

async fn forward_phase(shared: &Arc<Shared>, mut stream: ClientStream, buf: BytesMut, ready: Ready) {
    let Ready { route, key, mut backend } = ready;
    let Some(target) = backend.cancel_target() else { return };
    let cancel_key = shared.cancels.register(target);
    let mut stop = watch_for_stop(shared, &route, &key.id);

    // Welcome: AuthenticationOk, the backend's parameters, our cancel key, ReadyForQuery.
    let mut out = BytesMut::new();
    messages::auth_ok(&mut out);
    for (n, v) in backend.parameters() {
        messages::parameter_status(&mut out, n, v);
    }
    messages::backend_key_data(&mut out, cancel_key.pid, cancel_key.secret);
    messages::ready_for_query(&mut out, b'I');
    if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
        backend.release().await;
        return;
    }

    let scope = match key.scope {
        KeyScope::ReadWrite => Scope::ReadWrite,
        KeyScope::ReadOnly => Scope::ReadOnly,
    };
    let limits = shared.cfg.limits_for(&route.slug).gate_limits();
    let flow = Flow::new(Arc::clone(shared), route.tenant.to_string(), key.id.clone(), scope, limits);
    let (end, mut stream, answered) = match (stream, &shared.relay) {
        (ClientStream::Plain(tcp), Some(relay)) => relayed(relay, tcp, buf, &mut backend, flow, &mut stop).await,
        (stream, _) => in_task(stream, buf, &mut backend, flow, &mut stop).await,
    };
    drop(stop);
    drop(cancel_key);
    let idle = answered && backend.transaction_status() == b'I';
    match end {
        End::Client => {
            if idle {
                backend.release().await;
            }
        }
        End::ClientError(f) => {
            write_fatal(&mut stream, &f).await;
            if idle {
                backend.release().await;
            }
        }
        End::Backend(e) => {
            if !matches!(e, PoolError::Closed) {
                write_fatal(&mut stream, &pool_fatal(&e)).await;
            }
        }
        End::Revoked(reason) => {
            shared.auditor.record(AuditEvent::Ended {
                tenant: route.tenant.to_string(),
                key_id: key.id.clone(),
                reason: match reason {
                    EndReason::KeyRevoked => "key-revoked",
                    EndReason::Suspended => "suspended",
                    EndReason::Moved => "moved",
                    EndReason::Gone => "gone",
                },
            });
            write_fatal(&mut stream, &Fatal::new("57P01", reason.message())).await;
        }
        End::Shutdown => {
            write_fatal(&mut stream, &Fatal::new("57P01", "terminating connection: tenantgate is shutting down; reconnect shortly")).await;
        }
    }
}

fn stopped(s: Result<Stop, tokio::sync::oneshot::error::RecvError>) -> End {
    match s {
        Ok(Stop::Revoked(reason)) => End::Revoked(reason),
        Ok(Stop::Shutdown) | Err(_) => End::Shutdown,
    }
}

fn incomplete() -> Fatal {
    Fatal::new("08P01", "incomplete message from client: the connection closed in the middle of it")
}

/// Forward on this task: both directions as futures of one `select!`. For TLS clients, and
/// for all clients when the relay is off. Returns how it ended, the client stream, and
/// whether every sync point sent to the backend was answered.
async fn in_task(mut stream: ClientStream, buf: BytesMut, backend: &mut Backend, flow: Flow, stop: &mut StopWatch) -> (End, ClientStream, bool) {
    let end = {
        let (mut cr, mut cw) = stream.split();
        match backend.io() {
            Err(e) => End::Backend(e),
            Ok((br, bw)) => tokio::select! {
                biased;
                e = client_to_backend(&flow, &mut cr, buf, bw) => e,
                e = backend_to_client(&flow, br, &mut cw) => e,
                s = &mut stop.rx => stopped(s),
            },
        }
    };
    (end, stream, flow.answered())
}

/// Forward on a relay thread: hand it both sockets and wait for them to come back. If the
/// relay is gone, forward on this task instead.
async fn relayed(
    relay: &Relay<Flow>,
    tcp: TcpStream,
    buf: BytesMut,
    backend: &mut Backend,
    flow: Flow,
    stop: &mut StopWatch,
) -> (End, ClientStream, bool) {
    let client = match tcp.into_std() {
        Ok(c) => c,
        Err(_) => return (End::Client, ClientStream::Detached, false),
    };
    let (backend_tcp, backend_state) = match backend.detach() {
        Ok(b) => b,
        Err(e) => return (End::Backend(e), reattach_client(client), false),
    };
    let job = Job { client, client_buf: buf, backend: backend_tcp, backend_state, forwarder: flow };
    let mut ticket = match relay.submit(job) {
        Ok(t) => t,
        Err(Refused(job)) => {
            let Job { client, client_buf, backend: backend_tcp, backend_state, forwarder } = *job;
            let stream = reattach_client(client);
            if let Err(e) = backend.attach(backend_tcp, backend_state) {
                return (End::Backend(e), stream, false);
            }
            return in_task(stream, client_buf, backend, forwarder, stop).await;
        }
    };
    let mut why = None;
    let outcome = tokio::select! {
        o = &mut ticket.outcome => o,
        s = &mut stop.rx => {
            why = Some(stopped(s));
            ticket.stop();
            (&mut ticket.outcome).await
        }
    };
    ticket.settled();
    let Ok(o) = outcome else {
        // The relay thread is gone and the sockets with it.
        return (End::Backend(PoolError::Closed), ClientStream::Detached, false);
    };
    let Outcome { ended, client, to_client, backend: backend_tcp, backend_state, to_backend, forwarder, .. } = o;
    let mut stream = reattach_client(client);
    if let Err(e) = backend.attach(backend_tcp, backend_state) {
        return (End::Backend(e), stream, false);
    }
    let end = match ended {
        Ended::Terminated => {
            if !to_backend.is_empty() {
                if let Err(e) = backend.send(&to_backend).await {
                    return (End::Backend(e), stream, false);
                }
            }
            End::Client
        }
        Ended::ClientClosed { partial: false } => End::Client,
        Ended::ClientClosed { partial: true } => End::ClientError(incomplete()),
        Ended::Fault(f) => End::ClientError(f),
        Ended::Backend(e) => {
            if !to_client.is_empty() {
                let _ = stream.write_all(&to_client).await;
                let _ = stream.flush().await;
            }
            End::Backend(e)
        }
        Ended::Stopped => why.unwrap_or(End::Shutdown),
    };
    (end, stream, forwarder.answered())
}

fn reattach_client(client: std::net::TcpStream) -> ClientStream {
    match TcpStream::from_std(client) {
        Ok(tcp) => ClientStream::Plain(tcp),
        Err(_) => ClientStream::Detached,
    }
}

/// Why a session must end from outside: its key or tenant changed, or the gateway stops.
enum Stop {
    Revoked(EndReason),
    Shutdown,
}

/// The session's stop signal. A separate task waits on the router's events and the shutdown
/// flag, so the forwarding loop, which wakes for every message, polls one cheap oneshot
/// instead of a broadcast receiver and a watch (each takes a lock when polled).
struct StopWatch {
    rx: tokio::sync::oneshot::Receiver<Stop>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StopWatch {
    fn drop(&mut self) {
        // Dropping the task drops its router subscription.
        self.task.abort();
    }
}

fn watch_for_stop(shared: &Shared, route: &Route, key_id: &str) -> StopWatch {
    let mut sub = shared.router.subscribe(route, key_id);
    let mut shutdown = shared.shutdown.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        let stop = tokio::select! {
            reason = sub.ended() => Stop::Revoked(reason),
            _ = shutdown.wait_for(|s| *s) => Stop::Shutdown,
        };
        let _ = tx.send(stop);
    });
    StopWatch { rx, task }
}

/// Client → backend: read, frame and gate (the [`Flow`]), forward.
async fn client_to_backend(flow: &Flow, cr: &mut ClientReader<'_>, mut buf: BytesMut, bw: &mut BackendWriter) -> End {
    let mut out = BytesMut::with_capacity(8192);
    loop {
        loop {
            let step = match flow.client_frames(&mut buf, &mut out) {
                // Like the relay, send nothing of a batch that ends in a protocol error.
                FromClient::Fault(f) => return End::ClientError(f),
                step => step,
            };
            if !out.is_empty() {
                if let Err(e) = bw.send(&out).await {
                    return End::Backend(e);
                }
                out.clear();
            }
            match step {
                FromClient::Drained => break,
                FromClient::Full => {}
                FromClient::Terminate | FromClient::Fault(_) => return End::Client,
            }
        }
        match cr.read_buf(&mut buf).await {
            Ok(0) if buf.is_empty() => return End::Client,
            Ok(0) => return End::ClientError(incomplete()),
            Ok(_) => {}
            Err(_) => return End::Client,
        }
    }
}

/// Backend → client: forward, through the [`Flow`] (ReadyForQuery counted, marker errors
/// swapped for denials).
async fn backend_to_client<W: AsyncWrite + Unpin>(flow: &Flow, br: &mut BackendReader, cw: &mut W) -> End {
    let mut out = BytesMut::with_capacity(8192);
    loop {
        let forwarded = br.recv_with(|m| flow.backend_message(m, &mut out)).await;
        if let Err(e) = forwarded {
            if !out.is_empty() {
                let _ = cw.write_all(&out).await;
                let _ = cw.flush().await;
            }
            return End::Backend(e);
        }
        if !br.has_buffered_message() || out.len() >= FLUSH_AT {
            if cw.write_all(&out).await.is_err() || cw.flush().await.is_err() {
                return End::Client;
            }
            out.clear();
        }
    }
}
