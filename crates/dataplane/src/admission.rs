//! Admission: from an authenticated tenant's route to a backend connection, across moves.
//!
//! Owns the one rule every door follows when it checks out a backend: a tenant that a move
//! has fenced is held until its route flips ([`Router::hold_while_fenced`]); and a checkout
//! that fails because the route it used is stale (the fence closed the old placement before
//! this gateway heard of it) is retried once on the route as the catalog has it now. So a
//! client that connects during a move sees a pause, not an error.
//!
//! It never routes to a place the catalog does not name, and never retries a checkout
//! whose route did not change (a real outage is reported as it is).

use tg_catalog::keys::KeyScope;

use crate::backend::{Backend, Door, PoolError, Pools};
use crate::router::{Route, RouteError, Router};

/// Hold `route` through a move's fence, then check out a backend for it. Returns the
/// route actually used, which differs from `route` when the tenant moved meanwhile.
pub async fn checkout(router: &Router, pools: &Pools, route: Route, scope: KeyScope) -> Result<(Route, Backend), PoolError> {
    checkout_for(router, pools, route, scope, Door::Wire).await
}

/// As [`checkout`], for `door` (see [`Pools::checkout_for`]).
pub async fn checkout_for(router: &Router, pools: &Pools, route: Route, scope: KeyScope, door: Door) -> Result<(Route, Backend), PoolError> {
    let route = router.hold_while_fenced(route).await.map_err(moving)?;
    match pools.checkout_for(&route, scope, door).await {
        Ok(b) => Ok((route, b)),
        Err(e @ PoolError::Exhausted { .. }) => Err(e),
        Err(e) => {
            let Ok(now) = router.route_fresh(&route.slug).await else { return Err(e) };
            if !now.fenced && now.same_location(&route) {
                return Err(e);
            }
            let now = router.hold_while_fenced(now).await.map_err(moving)?;
            now.check_routable().map_err(|r| PoolError::NotRoutable(r.to_string()))?;
            let b = pools.checkout_for(&now, scope, door).await?;
            Ok((now, b))
        }
    }
}

fn moving(e: RouteError) -> PoolError {
    PoolError::NotRoutable(e.to_string())
}
