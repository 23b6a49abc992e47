//! An open session's watch on its tenant and key: it ends the session when the key is
//! revoked or the tenant suspended, moved or erased.

use tokio::sync::broadcast;

use tg_catalog::model::TenantStatus;

use super::{lock, EndReason, Route, RouteError, RouteEvent, Router};

/// An open session's watch on its tenant and key; see [`Router::subscribe`].
pub struct Subscription {
    pub(super) router: Router,
    pub(super) route: Route,
    pub(super) key_id: String,
    pub(super) rx: broadcast::Receiver<RouteEvent>,
}

impl Subscription {
    /// Resolves when the session must end: its key was revoked, or its tenant was suspended,
    /// erased or moved. Never resolves otherwise (a catalog outage does not end sessions).
    /// Cancel-safe.
    pub async fn ended(&mut self) -> EndReason {
        loop {
            let event = self.rx.recv().await;
            match event {
                Ok(RouteEvent::KeyRevoked(id)) if id == self.key_id => return EndReason::KeyRevoked,
                Ok(RouteEvent::TenantChanged(k)) if k == self.route.tenant.as_str() => {}
                Ok(RouteEvent::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
            }
            if let Some(reason) = self.check().await {
                return reason;
            }
        }
    }

    /// Re-check the session against the catalog now.
    pub async fn check(&self) -> Option<EndReason> {
        match self.router.route(&self.route.slug).await {
            Ok(now) if now.tenant != self.route.tenant => Some(EndReason::Gone),
            Ok(now) if now.status == TenantStatus::Suspended => Some(EndReason::Suspended),
            Ok(now) if now.status != TenantStatus::Active => Some(EndReason::Gone),
            Ok(now) if !now.same_location(&self.route) => Some(EndReason::Moved),
            Ok(now) if now.key(&self.key_id).is_none() => Some(EndReason::KeyRevoked),
            Ok(_) => None,
            Err(RouteError::UnknownTenant(_)) => Some(EndReason::Gone),
            Err(_) => None,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut w = lock(&self.router.inner.watched);
        if let Some(n) = w.get_mut(&self.route.slug) {
            *n -= 1;
            if *n == 0 {
                w.remove(&self.route.slug);
            }
        }
    }
}

