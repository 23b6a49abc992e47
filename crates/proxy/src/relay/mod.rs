//! The relay: forwarding of authenticated plain-TCP sessions on a few dedicated threads, each
//! with its own epoll loop (mio), instead of a tokio task per session.
//!
//! Why: once a session is authenticated and has its backend, its work is small and regular
//! (read, frame, gate, write), and at that size tokio's per-wake bookkeeping (task state,
//! readiness, timer checks on every park) was the largest cost the gateway had over PgBouncer
//! (bench/RESULTS.md, "The relay"). A relay thread does what PgBouncer's event loop does:
//! wait for readiness, read, hand the bytes to the session's [`Forwarder`], write.
//!
//! How a session uses it: the session task takes both sockets out of tokio, submits them
//! with everything already buffered and its [`Forwarder`], and awaits the [`Outcome`]. The
//! relay gives every socket, buffer and byte not yet written back when the session ends for
//! any reason (client Terminate or EOF, a protocol fault, backend EOF or error, or a
//! [`Ticket::stop`] from outside), so the session task finishes the session exactly as it
//! would have: write the last bytes, report a FATAL, reset and pool the backend.
//!
//! Owns the relay threads and the sockets while a session is submitted. It never blocks or
//! waits on a slow peer (it waits for readiness instead), never decides what a message means
//! (the [`Forwarder`] does), never reads more from one side while the other side's output is
//! full, and never drops a socket a session could still use.

mod worker;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;

use crate::backend::{PoolError, ReaderState};

/// A session's message rules, run by the relay on its thread.
pub trait Forwarder: Send + 'static {
    /// Why the forwarder ends a session (reported to the client by the session task).
    type Fault: Send + 'static;

    /// Take whole client messages from `input` and append what goes to the backend to
    /// `to_backend`; leave a partial message in `input`.
    fn on_client(&mut self, input: &mut BytesMut, to_backend: &mut BytesMut) -> FromClient<Self::Fault>;

    /// Handle one whole backend message (tag, length, body): append what goes to the client
    /// to `to_client`.
    fn on_backend(&mut self, msg: &[u8], to_client: &mut BytesMut);
}

/// What [`Forwarder::on_client`] stopped at.
#[derive(Debug)]
pub enum FromClient<F> {
    /// No whole message is left in the input.
    Drained,
    /// The output is large enough to write before reading on.
    Full,
    /// The client sent Terminate; what came before it is in the output.
    Terminate,
    /// End the session with this fault; what came before it is in the output.
    Fault(F),
}

/// Why the relay gave a session back.
#[derive(Debug)]
pub enum Ended<F> {
    /// The client sent Terminate.
    Terminated,
    /// The client closed its connection (or it failed); `partial` if in the middle of a
    /// message.
    ClientClosed { partial: bool },
    /// The forwarder ended the session.
    Fault(F),
    /// The backend closed its connection or failed.
    Backend(PoolError),
    /// [`Ticket::stop`] was called, or the relay is shutting down.
    Stopped,
}

/// A session handed to the relay.
pub struct Job<F> {
    pub client: std::net::TcpStream,
    /// Client bytes already read but not yet handled.
    pub client_buf: BytesMut,
    pub backend: std::net::TcpStream,
    /// The backend reader's buffer and bookkeeping (transaction status, parameters).
    pub backend_state: ReaderState,
    pub forwarder: F,
}

/// A session given back by the relay: the job's parts, and output not yet written.
pub struct Outcome<F: Forwarder> {
    pub ended: Ended<F::Fault>,
    pub client: std::net::TcpStream,
    pub client_buf: BytesMut,
    /// Bytes for the client that were not written yet.
    pub to_client: BytesMut,
    pub backend: std::net::TcpStream,
    pub backend_state: ReaderState,
    /// Bytes for the backend that were not written yet.
    pub to_backend: BytesMut,
    pub forwarder: F,
}

/// Why a job could not be handed over (the relay is gone); the job comes back untouched.
pub struct Refused<F>(pub Box<Job<F>>);

/// A submitted session: await [`Ticket::outcome`], or [`Ticket::stop`] it first.
///
/// Dropping a ticket that is not [`Ticket::settled`] stops the session, so a session task
/// that goes away (runtime shutdown) does not leave its sockets forwarding on the relay.
pub struct Ticket<F: Forwarder> {
    id: usize,
    worker: Arc<worker::Handle<F>>,
    settled: bool,
    pub outcome: tokio::sync::oneshot::Receiver<Outcome<F>>,
}

impl<F: Forwarder> Ticket<F> {
    /// End the session now; its outcome (with [`Ended::Stopped`]) follows on `outcome`.
    pub fn stop(&self) {
        self.worker.send(worker::Command::Stop(self.id));
    }

    /// The outcome has been received (or can never come): dropping the ticket is a no-op.
    pub fn settled(&mut self) {
        self.settled = true;
    }
}

impl<F: Forwarder> Drop for Ticket<F> {
    fn drop(&mut self) {
        if !self.settled {
            self.stop();
        }
    }
}

/// The relay threads.
pub struct Relay<F: Forwarder> {
    workers: Vec<Arc<worker::Handle<F>>>,
    next: AtomicUsize,
}

impl<F: Forwarder> Relay<F> {
    /// Start `threads` relay threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<Relay<F>> {
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            workers.push(Arc::new(worker::Handle::spawn(i)?));
        }
        Ok(Relay { workers, next: AtomicUsize::new(0) })
    }

    /// Hand a session to one of the threads (round robin).
    pub fn submit(&self, job: Job<F>) -> Result<Ticket<F>, Refused<F>> {
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        let worker = Arc::clone(&self.workers[n]);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let id = worker.next_id();
        match worker.start(id, Box::new(job), tx) {
            Ok(()) => Ok(Ticket { id, worker, settled: false, outcome: rx }),
            Err(job) => Err(Refused(job)),
        }
    }
}

impl<F: Forwarder> Drop for Relay<F> {
    fn drop(&mut self) {
        for w in &self.workers {
            w.send(worker::Command::Shutdown);
        }
    }
}

#[cfg(test)]
mod tests;
