//! One relay thread: a mio poll loop over the client and backend sockets of the sessions it
//! was given, and the per-session pump that moves bytes between them.
//!
//! Sockets are edge-triggered, so each side remembers whether it may still be readable or
//! writable; a side is only waited on after a read or write came back short or blocked, and
//! a side that reported end of stream stays readable until a read returns it (a short read
//! leaves the end of stream unread, and no further edge announces it). A
//! session that still has work after [`PUMP_ROUNDS`] rounds yields to the others and is
//! pumped again in the next turn of the loop, so one busy session (a long COPY) cannot
//! starve the rest of the thread. Never blocks except in `poll`.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use super::{Ended, Forwarder, FromClient, Job, Outcome};
use crate::backend::{PoolError, ReaderState};
use crate::net::FLUSH_AT;

const WAKER: Token = Token(0);
const CLIENT: usize = 0;
const BACKEND: usize = 1;
/// Bytes read from a socket at a time.
const READ_CHUNK: usize = 32 * 1024;
/// Rounds of a session's pump before it yields to the thread's other sessions.
const PUMP_ROUNDS: usize = 16;

pub(super) enum Command<F: Forwarder> {
    Start(Start<F>),
    Stop(usize),
    Shutdown,
}

pub(super) struct Start<F: Forwarder> {
    id: usize,
    job: Box<Job<F>>,
    done: tokio::sync::oneshot::Sender<Outcome<F>>,
}

/// The way to one relay thread.
pub(super) struct Handle<F: Forwarder> {
    tx: mpsc::Sender<Command<F>>,
    waker: Waker,
    ids: AtomicUsize,
}

impl<F: Forwarder> Handle<F> {
    pub(super) fn spawn(index: usize) -> std::io::Result<Handle<F>> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new().name(format!("tg-relay-{index}")).spawn(move || run(poll, rx))?;
        // Session ids start at 1: token 0 is the waker's.
        Ok(Handle { tx, waker, ids: AtomicUsize::new(1) })
    }

    pub(super) fn next_id(&self) -> usize {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    pub(super) fn send(&self, c: Command<F>) {
        if self.tx.send(c).is_ok() {
            let _ = self.waker.wake();
        }
    }

    /// Hand over a session; the job comes back if the thread is gone.
    pub(super) fn start(
        &self,
        id: usize,
        job: Box<Job<F>>,
        done: tokio::sync::oneshot::Sender<Outcome<F>>,
    ) -> Result<(), Box<Job<F>>> {
        if let Err(mpsc::SendError(Command::Start(s))) = self.tx.send(Command::Start(Start { id, job, done })) {
            return Err(s.job);
        }
        let _ = self.waker.wake();
        Ok(())
    }
}

/// The thread's loop.
fn run<F: Forwarder>(mut poll: Poll, rx: mpsc::Receiver<Command<F>>) {
    let mut events = Events::with_capacity(1024);
    let mut sessions: HashMap<usize, Session<F>> = HashMap::new();
    let mut scratch = vec![0u8; READ_CHUNK];
    let mut dirty: Vec<usize> = Vec::new();
    let mut again: Vec<usize> = Vec::new();
    loop {
        let timeout = if again.is_empty() { None } else { Some(Duration::ZERO) };
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            tracing::error!("relay thread stops: waiting for socket readiness failed: {e}; its sessions end");
            break;
        }
        dirty.append(&mut again);
        for ev in events.iter() {
            let t = ev.token().0;
            if ev.token() == WAKER {
                continue;
            }
            let (id, side) = (t >> 1, t & 1);
            if let Some(s) = sessions.get_mut(&id) {
                if ev.is_read_closed() || ev.is_error() {
                    // Sticky: a short read does not consume an end of stream, and no new
                    // edge follows it.
                    s.closed[side] = true;
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    s.readable[side] = true;
                }
                if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
                    s.writable[side] = true;
                }
                dirty.push(id);
            }
        }
        loop {
            match rx.try_recv() {
                Ok(Command::Start(st)) => {
                    if let Some((id, s)) = Session::register(poll.registry(), st) {
                        sessions.insert(id, s);
                        dirty.push(id);
                    }
                }
                Ok(Command::Stop(id)) => {
                    if let Some(s) = sessions.remove(&id) {
                        s.finish(poll.registry(), Ended::Stopped);
                    }
                }
                Ok(Command::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => {
                    for (_, s) in sessions.drain() {
                        s.finish(poll.registry(), Ended::Stopped);
                    }
                    return;
                }
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        dirty.sort_unstable();
        dirty.dedup();
        for id in dirty.drain(..) {
            let Some(s) = sessions.get_mut(&id) else { continue };
            let ended = match catch_unwind(AssertUnwindSafe(|| s.pump(&mut scratch))) {
                Ok(Pump::Idle) => continue,
                Ok(Pump::More) => {
                    again.push(id);
                    continue;
                }
                Ok(Pump::Ended(e)) => e,
                Err(_) => {
                    tracing::error!("relay: a session's forwarding panicked; that session ends");
                    Ended::Backend(PoolError::Protocol("internal error in the gateway's relay".into()))
                }
            };
            if let Some(s) = sessions.remove(&id) {
                s.finish(poll.registry(), ended);
            }
        }
    }
    for (_, s) in sessions.drain() {
        s.finish(poll.registry(), Ended::Stopped);
    }
}

/// What a pump left behind.
enum Pump<F> {
    /// Nothing more to do until a socket is ready again.
    Idle,
    /// Work is left; pump again after the thread's other sessions.
    More,
    Ended(Ended<F>),
}

/// One session on the thread.
struct Session<F: Forwarder> {
    client: TcpStream,
    backend: TcpStream,
    client_buf: BytesMut,
    state: ReaderState,
    to_client: BytesMut,
    to_backend: BytesMut,
    forwarder: F,
    /// May the side (CLIENT, BACKEND) have bytes to read / room to write?
    readable: [bool; 2],
    writable: [bool; 2],
    /// Has the side reported end of stream or an error? Then it stays readable until a read
    /// returns it.
    closed: [bool; 2],
    done: tokio::sync::oneshot::Sender<Outcome<F>>,
}

impl<F: Forwarder> Session<F> {
    /// Register the job's sockets; on failure the session is given straight back, ended.
    fn register(registry: &Registry, st: Start<F>) -> Option<(usize, Session<F>)> {
        let Start { id, job, done } = st;
        let Job { client, client_buf, backend, backend_state, forwarder } = *job;
        // mio needs non-blocking sockets (tokio's are already).
        let nonblocking = client.set_nonblocking(true).and_then(|_| backend.set_nonblocking(true));
        let mut s = Session {
            client: TcpStream::from_std(client),
            backend: TcpStream::from_std(backend),
            client_buf,
            state: backend_state,
            to_client: BytesMut::with_capacity(8192),
            to_backend: BytesMut::with_capacity(8192),
            forwarder,
            // Bytes may have arrived before registration: try both sides once.
            readable: [true, true],
            writable: [true, true],
            closed: [false, false],
            done,
        };
        let both = Interest::READABLE | Interest::WRITABLE;
        let r = nonblocking
            .and_then(|_| registry.register(&mut s.client, Token(id << 1 | CLIENT), both))
            .and_then(|_| registry.register(&mut s.backend, Token(id << 1 | BACKEND), both));
        match r {
            Ok(()) => Some((id, s)),
            Err(e) => {
                s.finish(registry, Ended::Backend(PoolError::Protocol(format!("the gateway's relay could not watch the session's sockets: {e}"))));
                None
            }
        }
    }

    /// Move bytes both ways until nothing moves, the round budget is spent, or the session
    /// ends.
    fn pump(&mut self, scratch: &mut [u8]) -> Pump<F::Fault> {
        for _ in 0..PUMP_ROUNDS {
            let mut moved = false;

            // Backend → client: frame what is buffered, write, then read more if there is room.
            while self.to_client.len() < FLUSH_AT {
                match self.state.next_message() {
                    Ok(Some(len)) => {
                        self.forwarder.on_backend(self.state.message(len), &mut self.to_client);
                        self.state.consume(len);
                        moved = true;
                    }
                    Ok(None) => break,
                    Err(e) => return Pump::Ended(Ended::Backend(e)),
                }
            }
            if !self.to_client.is_empty() && self.writable[CLIENT] {
                match write_out(&mut self.client, &mut self.to_client) {
                    Ok(w) => {
                        moved |= w.wrote;
                        self.writable[CLIENT] = !w.blocked;
                    }
                    Err(_) => return Pump::Ended(Ended::ClientClosed { partial: false }),
                }
            }
            if self.to_client.len() < FLUSH_AT && self.readable[BACKEND] && !self.state.has_buffered_message() {
                match read_in(&mut self.backend, scratch, self.state.buf_mut()) {
                    Ok(Got::Bytes { short }) => {
                        moved = true;
                        self.readable[BACKEND] = !short || self.closed[BACKEND];
                    }
                    Ok(Got::Eof) => return Pump::Ended(Ended::Backend(PoolError::Closed)),
                    Ok(Got::Blocked) => self.readable[BACKEND] = false,
                    Err(e) => return Pump::Ended(Ended::Backend(PoolError::io(e))),
                }
            }

            // Client → backend: write what is pending, frame what is buffered, read more.
            if !self.to_backend.is_empty() && self.writable[BACKEND] {
                match write_out(&mut self.backend, &mut self.to_backend) {
                    Ok(w) => {
                        moved |= w.wrote;
                        self.writable[BACKEND] = !w.blocked;
                    }
                    Err(e) => return Pump::Ended(Ended::Backend(PoolError::io(e))),
                }
            }
            let mut drained = true;
            if self.to_backend.len() < FLUSH_AT && !self.client_buf.is_empty() {
                let before = self.client_buf.len();
                match self.forwarder.on_client(&mut self.client_buf, &mut self.to_backend) {
                    FromClient::Drained => {}
                    FromClient::Full => drained = false,
                    FromClient::Terminate => return Pump::Ended(Ended::Terminated),
                    FromClient::Fault(f) => return Pump::Ended(Ended::Fault(f)),
                }
                moved |= self.client_buf.len() != before;
            }
            if drained && self.to_backend.len() < FLUSH_AT && self.readable[CLIENT] {
                match read_in(&mut self.client, scratch, &mut self.client_buf) {
                    Ok(Got::Bytes { short }) => {
                        moved = true;
                        self.readable[CLIENT] = !short || self.closed[CLIENT];
                    }
                    Ok(Got::Eof) | Err(_) => {
                        return Pump::Ended(Ended::ClientClosed { partial: !self.client_buf.is_empty() })
                    }
                    Ok(Got::Blocked) => self.readable[CLIENT] = false,
                }
            }

            if !moved {
                return Pump::Idle;
            }
        }
        Pump::More
    }

    /// Stop watching the sockets and give everything back.
    fn finish(self, registry: &Registry, ended: Ended<F::Fault>) {
        let Session { mut client, mut backend, client_buf, state, to_client, to_backend, forwarder, done, .. } = self;
        let _ = registry.deregister(&mut client);
        let _ = registry.deregister(&mut backend);
        let outcome = Outcome {
            ended,
            client: client.into(),
            client_buf,
            to_client,
            backend: backend.into(),
            backend_state: state,
            to_backend,
            forwarder,
        };
        // If the session task is gone, the sockets close here.
        let _ = done.send(outcome);
    }
}

struct Wrote {
    wrote: bool,
    /// The socket took less than everything: wait until it is writable.
    blocked: bool,
}

/// Write as much of `out` as the socket takes.
fn write_out(s: &mut TcpStream, out: &mut BytesMut) -> std::io::Result<Wrote> {
    let mut wrote = false;
    while !out.is_empty() {
        match s.write(out) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => {
                out.advance(n);
                wrote = true;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Wrote { wrote, blocked: true }),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    out.clear();
    Ok(Wrote { wrote, blocked: false })
}

enum Got {
    /// `short`: fewer bytes than asked for, so the socket is drained until its next edge.
    Bytes { short: bool },
    Eof,
    Blocked,
}

/// Read once from the socket and append to `buf`.
fn read_in(s: &mut TcpStream, scratch: &mut [u8], buf: &mut BytesMut) -> std::io::Result<Got> {
    loop {
        match s.read(scratch) {
            Ok(0) => return Ok(Got::Eof),
            Ok(n) => {
                buf.extend_from_slice(&scratch[..n]);
                return Ok(Got::Bytes { short: n < scratch.len() });
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(Got::Blocked),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
