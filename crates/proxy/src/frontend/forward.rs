//! Forwarding and the session's end: both directions with every SQL-carrying message passed
//! through the gate, then the end (final bytes, FATAL, backend reset and return to its pool).
//!
//! The forwarding rules (gate, denial markers) are the [`Flow`]'s; this module picks the loop
//! that runs them: a plain-TCP session is handed to a [`crate::relay`] thread, a TLS session
//! (or any, with `gateway.relay = false`) forwards on its own task. A tenant in transaction
//! mode goes to [`super::transaction`], which borrows a backend per transaction and uses this
//! module's task loop, welcome and end. Either way the session ends here.
//!
//! It must never: forward a message the gate refused, or log SQL or secrets.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::Fatal;
use super::flow::Flow;
use super::idle;
use super::cancel::CancelKey;
use super::session::{pool_fatal, write_fatal, Held, Ready};
use super::Shared;
use crate::audit::AuditEvent;
use crate::backend::{Backend, BackendReader, BackendWriter, PoolError};
use crate::frontend::stream::{ClientReader, ClientStream};
use crate::net::messages;
use crate::net::FLUSH_AT;
use crate::relay::{Ended, FromClient, Job, Outcome, Refused, Relay};
use crate::router::{EndReason, Route};

pub(super) enum End {
    /// The client said Terminate or closed cleanly between messages.
    Client,
    ClientError(Fatal),
    /// The backend closed or failed (its own FATAL, if any, was forwarded).
    Backend(PoolError),
    Revoked(EndReason),
    Shutdown,
    /// Transaction mode: the backend may go back to its lane (idle, nothing outstanding).
    Released,
}

pub(super) async fn forward_phase(shared: &Arc<Shared>, mut stream: ClientStream, buf: BytesMut, ready: Ready) {
    let Ready { route, key, held } = ready;
    let mut backend = match held {
        Held::Session(b) => b,
        Held::Transaction(t) => return super::transaction::serve(shared, stream, buf, route, key, t).await,
    };
    let Some(target) = backend.cancel_target() else { return };
    let cancel_key = shared.cancels.register(target.clone());
    let mut stop = watch_for_stop(shared, &route, &key.id);

    if !welcome(&mut stream, backend.parameters(), &cancel_key).await {
        backend.release().await;
        return;
    }

    let scope = super::session::gate_scope(key.scope);
    let tenant_limits = shared.cfg.limits_for(&route.slug);
    let idle_timeout = idle::timeout(tenant_limits.client_idle_timeout_ms);
    let mut limits = tenant_limits.gate_limits();
    // LISTEN/NOTIFY reach only the tenant's own sessions when it has a database of its own.
    limits.own_database = route.placement == tg_catalog::model::Placement::Database;
    let flow = Flow::new(Arc::clone(shared), route.tenant.to_string(), key.id.clone(), scope, limits, &route.slug).cancels(Some(target));
    let (end, mut stream, answered) = match (stream, &shared.relay) {
        (ClientStream::Plain(tcp), Some(relay)) => relayed(relay, tcp, buf, &mut backend, flow, &mut stop, idle_timeout).await,
        (stream, _) => in_task(stream, buf, &mut backend, flow, &mut stop, idle_timeout).await,
    };
    drop(stop);
    drop(cancel_key);
    let reusable = answered && backend.transaction_status() == b'I' && matches!(end, End::Client | End::ClientError(_) | End::Released);
    say_end(shared, &mut stream, &route, &key.id, end).await;
    if reusable {
        backend.release().await;
    }
}

/// Welcome an authenticated client: AuthenticationOk, the backend's parameters, our cancel
/// key, ReadyForQuery. `false` if the client is gone.
pub(super) async fn welcome(stream: &mut ClientStream, parameters: &[(String, String)], cancel_key: &CancelKey) -> bool {
    let mut out = BytesMut::new();
    messages::auth_ok(&mut out);
    for (n, v) in parameters {
        messages::parameter_status(&mut out, n, v);
    }
    messages::backend_key_data(&mut out, cancel_key.pid, cancel_key.secret);
    messages::ready_for_query(&mut out, b'I');
    stream.write_all(&out).await.is_ok() && stream.flush().await.is_ok()
}

/// Tell the client why its session ends (nothing for a clean exit), and audit a revocation.
pub(super) async fn say_end(shared: &Shared, stream: &mut ClientStream, route: &Route, key_id: &str, end: End) {
    match end {
        End::Client | End::Released => {}
        End::ClientError(f) => write_fatal(stream, &f).await,
        End::Backend(e) => {
            if !matches!(e, PoolError::Closed) {
                write_fatal(stream, &pool_fatal(&e)).await;
            }
        }
        End::Revoked(reason) => {
            shared.auditor.record(AuditEvent::Ended {
                tenant: route.tenant.to_string(),
                key_id: key_id.to_string(),
                reason: match reason {
                    EndReason::KeyRevoked => "key-revoked",
                    EndReason::Suspended => "suspended",
                    EndReason::Moved => "moved",
                    EndReason::Gone => "gone",
                },
            });
            write_fatal(stream, &Fatal::new("57P01", reason.message())).await;
        }
        End::Shutdown => {
            write_fatal(stream, &Fatal::new("57P01", "terminating connection: tenantgate is shutting down; reconnect shortly")).await;
        }
    }
}

pub(super) fn stopped(s: Result<Stop, tokio::sync::oneshot::error::RecvError>) -> End {
    match s {
        Ok(Stop::Revoked(reason)) => End::Revoked(reason),
        Ok(Stop::Shutdown) | Err(_) => End::Shutdown,
    }
}

pub(super) fn incomplete() -> Fatal {
    Fatal::new("08P01", "incomplete message from client: the connection closed in the middle of it")
}

/// Forward on this task: both directions as futures of one `select!`. For TLS clients, and
/// for all clients when the relay is off. Returns how it ended, the client stream, and
/// whether every sync point sent to the backend was answered.
async fn in_task(
    mut stream: ClientStream,
    mut buf: BytesMut,
    backend: &mut Backend,
    flow: Flow,
    stop: &mut StopWatch,
    idle_timeout: Option<Duration>,
) -> (End, ClientStream, bool) {
    let activity = flow.activity();
    let end = {
        let (mut cr, mut cw) = stream.split();
        match backend.io() {
            Err(e) => End::Backend(e),
            Ok((br, bw)) => tokio::select! {
                biased;
                e = client_to_backend(&flow, &mut cr, &mut buf, bw) => e,
                e = backend_to_client(&flow, br, &mut cw) => e,
                s = &mut stop.rx => stopped(s),
                _ = idle::expired(&activity, idle_timeout) => End::ClientError(idle::fatal(idle_timeout.unwrap_or_default())),
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
    idle_timeout: Option<Duration>,
) -> (End, ClientStream, bool) {
    let activity = flow.activity();
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
            return in_task(stream, client_buf, backend, forwarder, stop, idle_timeout).await;
        }
    };
    // The session ends on the relay, or is stopped from here: a router event, shutdown, or
    // the client idle timeout (`why`).
    let (ended, why) = tokio::select! {
        o = &mut ticket.outcome => (Some(o), None),
        s = &mut stop.rx => (None, Some(stopped(s))),
        _ = idle::expired(&activity, idle_timeout) => (None, Some(End::ClientError(idle::fatal(idle_timeout.unwrap_or_default())))),
    };
    let outcome = match ended {
        Some(o) => o,
        None => {
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
pub(super) enum Stop {
    Revoked(EndReason),
    Shutdown,
}

/// The session's stop signal. A separate task waits on the router's events and the shutdown
/// flag, so the forwarding loop, which wakes for every message, polls one cheap oneshot
/// instead of a broadcast receiver and a watch (each takes a lock when polled).
pub(super) struct StopWatch {
    pub(super) rx: tokio::sync::oneshot::Receiver<Stop>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StopWatch {
    fn drop(&mut self) {
        // Dropping the task drops its router subscription.
        self.task.abort();
    }
}

pub(super) fn watch_for_stop(shared: &Shared, route: &Route, key_id: &str) -> StopWatch {
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
pub(super) async fn client_to_backend(flow: &Flow, cr: &mut ClientReader<'_>, buf: &mut BytesMut, bw: &mut BackendWriter) -> End {
    let mut out = BytesMut::with_capacity(8192);
    loop {
        loop {
            let step = match flow.client_frames(buf, &mut out) {
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
        match cr.read_buf(buf).await {
            Ok(0) if buf.is_empty() => return End::Client,
            Ok(0) => return End::ClientError(incomplete()),
            Ok(_) => {}
            Err(_) => return End::Client,
        }
    }
}

/// Backend → client: forward, through the [`Flow`] (ReadyForQuery counted, marker errors
/// swapped for denials). In transaction mode it ends at the ReadyForQuery after which the
/// backend may go back ([`Flow::releasable`]).
pub(super) async fn backend_to_client<W: AsyncWrite + Unpin>(flow: &Flow, br: &mut BackendReader, cw: &mut W) -> End {
    let mut out = BytesMut::with_capacity(8192);
    loop {
        let forwarded = br
            .recv_with(|m| {
                flow.backend_message(m, &mut out);
                m[0] == b'Z'
            })
            .await;
        let ready = match forwarded {
            Ok(ready) => ready,
            Err(e) => {
                if !out.is_empty() {
                    let _ = cw.write_all(&out).await;
                    let _ = cw.flush().await;
                }
                return End::Backend(e);
            }
        };
        // A result the tenant's quota cut: stop its statement, and read on only once the
        // cancel is delivered, so it cannot reach a later statement on this backend.
        if let Some(t) = flow.take_cancel() {
            if let Err(e) = t.cancel().await {
                tracing::debug!("cancelling a cut statement: {e}");
            }
        }
        if ready && flow.releasable() {
            if cw.write_all(&out).await.is_err() || cw.flush().await.is_err() {
                return End::Client;
            }
            return End::Released;
        }
        if ready {
            // Held back for a restoration that will not come now (the client sent more).
            if let Some(z) = flow.take_deferred_ready() {
                out.extend_from_slice(&z);
            }
        }
        if !br.has_buffered_message() || out.len() >= FLUSH_AT {
            if cw.write_all(&out).await.is_err() || cw.flush().await.is_err() {
                return End::Client;
            }
            out.clear();
        }
    }
}
