//! CancelRequest routing: the gateway hands each client its own (pid, secret) and maps it to
//! the real backend's cancel key.
//!
//! Owns that map. A cancel is forwarded only when both the pid and the secret match (the
//! secret compared in constant time); anything else is ignored silently, as PostgreSQL does.
//! It never exposes a backend's real cancel key to a client.
//!
//! In session mode a client's key names one backend for the whole session. In transaction
//! mode it names a [`CancelSlot`]: the backend the client holds right now, or none between
//! its transactions (then a cancel does nothing, as it would on an idle session).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::Rng;
use subtle::ConstantTimeEq;

use crate::backend::CancelTarget;

#[derive(Default)]
pub struct CancelRegistry {
    map: Mutex<HashMap<u32, (u32, CancelSlot)>>,
}

/// The backend a client's cancel key reaches now; `None` while it holds none. Cheap to clone.
#[derive(Clone, Default)]
pub struct CancelSlot(Arc<Mutex<Option<CancelTarget>>>);

impl CancelSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<CancelTarget>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on, cancel `target` (or nothing).
    pub fn set(&self, target: Option<CancelTarget>) {
        *self.lock() = target;
    }

    fn get(&self) -> Option<CancelTarget> {
        self.lock().clone()
    }
}

/// A client's cancel key; unregisters on drop.
pub struct CancelKey {
    registry: Arc<CancelRegistry>,
    pub pid: u32,
    pub secret: u32,
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.pid);
    }
}

impl CancelRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, (u32, CancelSlot)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh (pid, secret) for a session whose backend is `target`.
    pub fn register(self: &Arc<Self>, target: CancelTarget) -> CancelKey {
        let slot = CancelSlot::default();
        slot.set(Some(target));
        self.register_slot(slot)
    }

    /// A fresh (pid, secret) that cancels whatever backend `slot` names when the cancel comes.
    pub fn register_slot(self: &Arc<Self>, target: CancelSlot) -> CancelKey {
        let mut rng = rand::rngs::OsRng;
        let mut map = self.lock();
        loop {
            // Positive 31-bit pids: clients store them as signed ints.
            let pid: u32 = rng.gen_range(1..=i32::MAX as u32);
            if map.contains_key(&pid) {
                continue;
            }
            let secret: u32 = rng.gen();
            map.insert(pid, (secret, target));
            return CancelKey { registry: self.clone(), pid, secret };
        }
    }

    /// The backend to cancel for (pid, secret), if both match.
    pub fn lookup(&self, pid: u32, secret: u32) -> Option<CancelTarget> {
        let map = self.lock();
        let (s, target) = map.get(&pid)?;
        if !bool::from(s.to_be_bytes().ct_eq(&secret.to_be_bytes())) {
            return None;
        }
        target.get()
    }

    /// Forward a cancel if (pid, secret) matches a live session; otherwise do nothing.
    pub async fn cancel(&self, pid: u32, secret: u32) -> bool {
        match self.lookup(pid, secret) {
            Some(t) => {
                if let Err(e) = t.cancel().await {
                    tracing::debug!("forwarding a cancel request failed: {e}");
                }
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_key_maps() {
        let r = Arc::new(CancelRegistry::default());
        let t = CancelTarget { host: "h".into(), port: 1, pid: 42, secret: 43 };
        let k = r.register(t.clone());
        assert_eq!(r.lookup(k.pid, k.secret), Some(t.clone()));
        assert_eq!(r.lookup(k.pid, k.secret.wrapping_add(1)), None);
        assert_eq!(r.lookup(k.pid.wrapping_add(1), k.secret), None);
        let (pid, secret) = (k.pid, k.secret);
        drop(k);
        assert_eq!(r.lookup(pid, secret), None);
        // Transaction mode: the key follows the backend the client holds now.
        let slot = CancelSlot::default();
        let k = r.register_slot(slot.clone());
        assert_eq!(r.lookup(k.pid, k.secret), None);
        slot.set(Some(t.clone()));
        assert_eq!(r.lookup(k.pid, k.secret), Some(t));
        slot.set(None);
        assert_eq!(r.lookup(k.pid, k.secret), None);
    }
}
