//! Transaction mode's session loop: a backend for each transaction, borrowed from the
//! tenant role's lane ([`super::lending`]) when the client sends work and given back at the
//! ReadyForQuery that leaves it idle with nothing outstanding.
//!
//! Between transactions the session holds no backend and waits for its client; its cancel
//! key reaches nothing then ([`super::cancel::CancelSlot`]). The forwarding rules are the
//! [`Flow`]'s in transaction mode: the gate (with session state refused, rule
//! `transaction-mode`) and the client's named statements carried across backends
//! ([`super::statements`]). It runs on the session's task (never on the relay threads), with
//! the same two forwarding futures as session mode.
//!
//! A client's `RESET`/`DISCARD ALL` (seen by the flow in the completion tags) is followed,
//! before the backend goes back, by its settings applied again
//! ([`super::lending::Lending::restore`]) and the ParameterStatus messages of that sent to the
//! client, ahead of the ReadyForQuery the flow held back for it; with the gate off, the backend
//! goes back marked with this client ([`Lent::left_by`]).
//!
//! It must never: hold a backend of one role for a client of another (the lane is the
//! session's own role's), give back a backend in a transaction or with an answer still owed,
//! give back one whose settings are not what its lane records, or forward a message the gate
//! refused.

use std::sync::Arc;

use bytes::BytesMut;
use tg_catalog::keys::ActiveKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cancel::CancelSlot;
use super::flow::Flow;
use super::idle;
use super::forward::{backend_to_client, client_to_backend, incomplete, say_end, stopped, watch_for_stop, welcome, End, StopWatch};
use super::lending::{LaneKey, Lent};
use super::session::pool_fatal;
use super::stream::ClientStream;
use super::Shared;
use crate::router::Route;

/// What a transaction-mode session starts with: the backend borrowed for its welcome.
pub(super) struct Start {
    pub(super) lent: Lent,
    pub(super) lane: LaneKey,
    /// The client's startup settings as `SET` statements, applied on every backend it borrows.
    pub(super) settings: String,
}

/// Serve an authenticated transaction-mode session to its end.
pub(super) async fn serve(shared: &Arc<Shared>, mut stream: ClientStream, mut buf: BytesMut, route: Route, key: ActiveKey, start: Start) {
    let Start { lent, lane, settings } = start;
    let me = shared.lending.client_id();
    let slot = CancelSlot::default();
    let cancel_key = shared.cancels.register_slot(slot.clone());
    let mut stop = watch_for_stop(shared, &route, &key.id);
    if !welcome(&mut stream, lent.backend.parameters(), &cancel_key).await {
        shared.lending.give_back(lent);
        return;
    }
    shared.lending.give_back(lent);

    let scope = super::session::gate_scope(key.scope);
    let mut limits = shared.cfg.limits_for(&route.slug).gate_limits();
    limits.own_database = route.placement == tg_catalog::model::Placement::Database;
    limits.transaction_mode = true;
    let flow = Flow::new(Arc::clone(shared), route.tenant.to_string(), key.id.clone(), scope, limits, &route.slug).transaction_mode();
    let mut held = None;
    let end = transactions(shared, &mut stream, &mut buf, &route, &key, (&lane, me), &settings, &flow, &slot, &mut stop, &mut held).await;
    drop(stop);
    drop(cancel_key);
    slot.set(None);
    say_end(shared, &mut stream, &route, &key.id, end).await;
    if let Some(mut lent) = held {
        // The client left between messages with everything answered: the backend is as good
        // as given back at a ReadyForQuery.
        take_back(shared, &flow, &mut lent, me);
        if flow.answered() && flow.releasable() {
            shared.lending.give_back(lent);
        }
    }
}

/// Run the session's transactions until it ends; `held` is the backend held at the end.
#[allow(clippy::too_many_arguments)]
async fn transactions(
    shared: &Shared,
    stream: &mut ClientStream,
    buf: &mut BytesMut,
    route: &Route,
    key: &ActiveKey,
    (lane, me): (&LaneKey, u64),
    settings: &str,
    flow: &Flow,
    slot: &CancelSlot,
    stop: &mut StopWatch,
    held: &mut Option<Lent>,
) -> End {
    let max = shared.cfg.max_message_bytes;
    let idle_timeout = idle::timeout(shared.cfg.limits_for(&route.slug).client_idle_timeout_ms);
    loop {
        // Between transactions: wait for a whole message from the client, for at most the
        // tenant's client idle timeout since it last sent something.
        let mut quiet_since = tokio::time::Instant::now();
        while !whole_message(buf, max) {
            tokio::select! {
                biased;
                s = &mut stop.rx => return stopped(s),
                r = stream.read_buf(buf) => match r {
                    Ok(0) if buf.is_empty() => return End::Client,
                    Ok(0) => return End::ClientError(incomplete()),
                    Ok(_) => quiet_since = tokio::time::Instant::now(),
                    Err(_) => return End::Client,
                },
                _ = idle::after(quiet_since, idle_timeout) => return End::ClientError(idle::fatal(idle_timeout.unwrap_or_default())),
            }
        }
        if buf[0] == b'X' {
            return End::Client;
        }
        let mut lent = tokio::select! {
            biased;
            s = &mut stop.rx => return stopped(s),
            r = shared.lending.borrow_as(&shared.router, route, key.scope, lane, settings, Some(me)) => match r {
                Ok(l) => l,
                Err(e) => return End::ClientError(pool_fatal(&e)),
            },
        };
        slot.set(lent.cancel_target());
        flow.lend(std::mem::take(&mut lent.prepared), lent.cancel_target());
        let end = {
            let (mut cr, mut cw) = stream.split();
            match lent.backend.io() {
                Err(e) => End::Backend(e),
                Ok((br, bw)) => tokio::select! {
                    biased;
                    e = client_to_backend(flow, &mut cr, buf, bw) => e,
                    e = backend_to_client(flow, br, &mut cw) => e,
                    s = &mut stop.rx => stopped(s),
                },
            }
        };
        slot.set(None);
        if let End::Released = end {
            take_back(shared, flow, &mut lent, me);
            // After the client's RESET or DISCARD ALL: its settings again, and its view of them,
            // then the ReadyForQuery held back for it.
            let mut statuses = BytesMut::new();
            let restored = shared.lending.restore(&mut lent, settings, Some(&mut statuses)).await;
            if let Some(z) = flow.take_deferred_ready() {
                statuses.extend_from_slice(&z);
            }
            let told = statuses.is_empty() || (stream.write_all(&statuses).await.is_ok() && stream.flush().await.is_ok());
            match restored {
                Ok(()) => shared.lending.give_back(lent),
                // Dropped: closed, its place freed. The client's next transaction gets another
                // backend, its settings applied there.
                Err(e) => tracing::debug!("restoring a client's settings after its reset: {e}"),
            }
            if !told {
                return End::Client;
            }
            continue;
        }
        *held = Some(lent);
        return end;
    }
}

/// What the flow learnt about the backend while it was lent, onto it before it goes back:
/// its server-side statements, a reset of the client's settings, and, with the gate off, that
/// this client may have left session state on it.
fn take_back(shared: &Shared, flow: &Flow, lent: &mut Lent, me: u64) {
    lent.prepared = flow.give_back();
    if flow.take_reset() {
        lent.settings_reset();
    }
    if !shared.gate.config().enabled {
        lent.left_by(me);
    }
}

/// Is a whole message (or one too large to wait for: the flow refuses it) at the front?
fn whole_message(buf: &[u8], max: usize) -> bool {
    if buf.len() < 5 {
        return false;
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    len < 4 || len > max || buf.len() > len
}
