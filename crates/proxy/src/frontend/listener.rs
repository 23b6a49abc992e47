//! The accept loop: the first step of a wire connection's path (accept → [`super::session`]:
//! startup, route lookup, SCRAM, pool checkout, then per message gate → backend).
//!
//! Owns the listening socket and the set of running sessions. It never reads a byte from a
//! client itself: each accepted connection becomes a session task at once.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::Shared;

/// Accept clients until `shutdown` resolves; then tell open sessions to end (through
/// `shutdown_tx`, which every session watches) and wait up to five seconds for them.
pub async fn accept(shared: &Arc<Shared>, listener: TcpListener, shutdown_tx: &tokio::sync::watch::Sender<bool>, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    sessions.spawn(super::session::run(shared.clone(), tcp, peer));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    let _ = shutdown_tx.send(true);
    let drain = async { while sessions.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), drain).await;
}
