//! One client session's start: startup (TLS, cancel, protocol version, parameters), route
//! lookup, SCRAM authentication with a tenant API key, backend checkout; then it hands the
//! session to [`super::forward`], which forwards and ends it.
//!
//! Owns the session up to an authenticated backend. The path runs one way: route lookup →
//! SCRAM → pool checkout, then per message gate → backend (in `forward`).
//!
//! It must never: forward a message the gate refused, forward anything before
//! authentication succeeded, reveal whether a tenant exists, or log SQL or secrets.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tg_catalog::keys::ActiveKey;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::scram;
use super::startup;
use super::Shared;
use crate::audit::AuditEvent;
use crate::backend::{Backend, PoolError};
use crate::net::codec::{self, decode_frame, decode_startup, Frame, FrameError, FrameLimits, Startup};
use crate::net::messages::{self, error_fields, Severity};
use crate::frontend::stream::ClientStream;

pub use super::error::Fatal;
use crate::router::{Route, RouteError};

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

pub(super) async fn write_fatal<W: AsyncWrite + Unpin + ?Sized>(w: &mut W, f: &Fatal) {
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
    // Until it is authenticated, the connection holds a place under the half-open caps.
    let slot = match shared.startups.enter(peer.ip()) {
        Ok(slot) => slot,
        Err(refused) => return write_fatal(&mut stream, &Fatal::new("53300", refused.message())).await,
    };
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
    drop(slot);
    super::forward::forward_phase(&shared, stream, buf, ready).await;
}

/// An authenticated session with its backend, ready for queries.
pub(super) struct Ready {
    pub(super) route: Route,
    pub(super) key: ActiveKey,
    pub(super) held: Held,
}

/// The backend a session starts with, by the tenant's pool mode.
pub(super) enum Held {
    /// Its own for the whole session.
    Session(Backend),
    /// Borrowed for the welcome; the session borrows one per transaction after it.
    Transaction(super::transaction::Start),
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
    // With the catalog unreachable, the router answers from the routes it last saw (or not at
    // all). The exchange runs on either way, so a tenant this gateway does not know and a wrong
    // key both end in the same 08006 below: an outage reveals nothing about which tenants exist.
    let (route, catalog_down) = match shared.router.route(&req.user).await {
        Ok(r) => (Some(r), None),
        Err(RouteError::UnknownTenant(_)) => (None, None),
        Err(e) => (None, Some(e)),
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
        let down = catalog_down.or_else(|| shared.router.catalog_unreachable().map(RouteError::Catalog));
        if let Some(e) = down {
            audit_conn(route.as_ref(), None, "catalog-unreachable");
            return Err(Fatal::new("08006", e.to_string()).into());
        }
        audit_conn(route.as_ref(), None, "auth-failed");
        return Err(auth_failed(&req.user).into());
    };
    let mut out = BytesMut::new();
    messages::auth_sasl_final(&mut out, server_final.as_bytes());
    send(stream, &out).await?;

    // Authenticated: the tenant may learn its own status. A tenant fenced by a move is held
    // here until its route flips, then goes to the new placement.
    let route = match shared.router.hold_while_fenced(route.clone()).await {
        Ok(r) => r,
        Err(e) => {
            audit_conn(Some(&route), Some(&key.id), "moving");
            return Err(Fatal::new("57P03", e.to_string()).into());
        }
    };
    if let Err(e) = route.check_routable() {
        audit_conn(Some(&route), Some(&key.id), if matches!(e, RouteError::Suspended { .. }) { "suspended" } else { "unavailable" });
        return Err(Fatal::new("57P03", e.to_string()).into());
    }
    // The startup settings pass the same gate as a SET would, under this tenant's caps: a
    // statement_timeout at startup (node-postgres' option, libpq's `options=-c …`) is held to
    // the cap exactly as `SET statement_timeout` is.
    if !req.settings.is_empty() {
        let limits = shared.cfg.limits_for(&route.slug).gate_limits();
        if let Err(d) = shared.gate.check(&route.slug, &startup::set_statements(&req.settings), gate_scope(key.scope), &limits) {
            audit_conn(Some(&route), Some(&key.id), "bad-parameter");
            return Err(Fatal::new(d.sqlstate, format!("startup parameter refused: {}", d.message)).into());
        }
    }
    if shared.cfg.pool_mode_for(&route.slug) == crate::config::PoolMode::Transaction {
        // Transaction mode: a backend of the role's lane, with the client's settings applied.
        let lane = super::lending::LaneKey::of(&route, key.scope);
        let settings = startup::set_statements(&req.settings);
        let lent = match shared.lending.borrow(&shared.router, &route, key.scope, &lane, &settings).await {
            Ok(l) => l,
            Err(e) => {
                audit_conn(Some(&route), Some(&key.id), if matches!(e, PoolError::Exhausted { .. }) { "budget-exhausted" } else { "backend-error" });
                return Err(pool_fatal(&e).into());
            }
        };
        audit_conn(Some(&route), Some(&key.id), "ok");
        shared.auditor.record(AuditEvent::KeyUsed { key_id: key.id.clone() });
        return Ok(Ready { route, key, held: Held::Transaction(super::transaction::Start { lent, lane, settings }) });
    }
    // A move may have closed the old placement before this gateway heard of it: admission
    // holds and retries on the route as the catalog has it now.
    let (route, mut backend) = match tg_dataplane::admission::checkout(&shared.router, &shared.pools, route.clone(), key.scope).await {
        Ok(rb) => rb,
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
    Ok(Ready { route, key, held: Held::Session(backend) })
}

/// The gate's scope for a key's scope.
pub(super) fn gate_scope(scope: tg_catalog::keys::KeyScope) -> tg_gate::Scope {
    match scope {
        tg_catalog::keys::KeyScope::ReadWrite => tg_gate::Scope::ReadWrite,
        tg_catalog::keys::KeyScope::ReadOnly => tg_gate::Scope::ReadOnly,
    }
}

pub(super) fn pool_fatal(e: &PoolError) -> Fatal {
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

