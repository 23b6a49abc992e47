//! Invalidation of the route cache: LISTEN on the catalog's channels on a dedicated
//! connection that reconnects by itself, and a poll of the tenants with open sessions in case
//! a notification was missed. The listening connection is also the catalog's heartbeat: it
//! runs `SELECT 1` every second within the catalog timeout and reports to [`super::health`],
//! so an outage (or its end) is noticed within about a second even when no one logs in.

use std::time::Duration;

use futures::StreamExt;

use super::{lock, Cached, Inner, Route, RouteError, RouteEvent, KEYS_CHANNEL, ROUTING_CHANNEL};

/// LISTEN on the catalog's channels on a dedicated connection; reconnect on loss.
pub(super) async fn listen_task(inner: std::sync::Weak<Inner>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let Some((url, timeout)) = inner.upgrade().map(|i| (i.catalog_url.clone(), i.catalog_timeout)) else { return };
        match listen_once(&inner, &url, timeout).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => tracing::debug!("catalog listener: {e}; reconnecting"),
        }
        match inner.upgrade() {
            Some(i) => {
                i.invalidate(RouteEvent::Resync);
                i.health.report();
            }
            None => return,
        }
        tokio::time::sleep(backoff).await;
        // Capped low: while the catalog is down, this loop is what notices it is back.
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn listen_once(inner: &std::sync::Weak<Inner>, url: &str, timeout: Duration) -> Result<(), String> {
    use std::str::FromStr;
    let mut cfg = tokio_postgres::Config::from_str(url).map_err(|e| e.to_string())?;
    cfg.application_name("tenantgate-router");
    cfg.connect_timeout(timeout);
    let failed = |e: String| {
        if let Some(i) = inner.upgrade() {
            i.health.failed(&e);
        }
        e
    };
    let (client, mut conn) = match tokio::time::timeout(timeout, cfg.connect(tokio_postgres::NoTls)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err(failed(e.to_string())),
        Err(_) => return Err(failed(format!("no answer within {} ms", timeout.as_millis()))),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if tx.send((n.channel().to_string(), n.payload().to_string())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("catalog listener connection: {e}");
                    return;
                }
            }
        }
    });
    let listen = client.batch_execute(&format!("LISTEN {ROUTING_CHANNEL}; LISTEN {KEYS_CHANNEL}")).await;
    if let Err(e) = listen {
        driver.abort();
        return Err(e.to_string());
    }
    // Anything that changed before LISTEN took effect is picked up by a resync.
    if let Some(i) = inner.upgrade() {
        i.health.ok();
        i.invalidate(RouteEvent::Resync);
    }
    let mut alive = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            n = rx.recv() => match n {
                Some((channel, payload)) => {
                    let Some(i) = inner.upgrade() else { driver.abort(); return Ok(()) };
                    let event = if channel == KEYS_CHANNEL { RouteEvent::KeyRevoked(payload) } else { RouteEvent::TenantChanged(payload) };
                    // Routes of a changed tenant are re-read at once (not only at its next
                    // login), so its quota override applies to its open sessions and shows in
                    // the usage of this gateway.
                    let reread: Vec<String> = match &event {
                        RouteEvent::TenantChanged(k) => lock(&i.cache).iter().filter(|(_, c)| c.route.tenant.as_str() == k).map(|(s, _)| s.clone()).collect(),
                        _ => Vec::new(),
                    };
                    i.invalidate(event);
                    for slug in reread {
                        let i = i.clone();
                        tokio::spawn(async move {
                            if let Err(e) = i.fetch_cached(&slug).await {
                                tracing::debug!("re-reading the route of {slug}: {e}");
                            }
                        });
                    }
                }
                None => { return Err("the listening connection closed".into()) }
            },
            _ = alive.tick() => {
                let Some(i) = inner.upgrade() else { driver.abort(); return Ok(()) };
                match tokio::time::timeout(timeout, client.simple_query("SELECT 1")).await {
                    Ok(Ok(_)) => i.health.ok(),
                    Ok(Err(e)) => { driver.abort(); return Err(e.to_string()) }
                    Err(_) => {
                        driver.abort();
                        return Err(failed(format!("the heartbeat got no answer within {} ms", timeout.as_millis())));
                    }
                }
            }
        }
    }
}

/// Re-read the routes of tenants with open sessions; announce any difference.
pub(super) async fn poll_task(inner: std::sync::Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(i) = inner.upgrade() else { return };
        if i.health.down().is_some() {
            continue;
        }
        let slugs: Vec<String> = lock(&i.watched).keys().cloned().collect();
        for slug in slugs {
            let before = lock(&i.cache).get(&slug).map(|c| c.route.clone());
            let after = i.fetch(&slug).await;
            let changed = match (&before, &after) {
                (_, Err(RouteError::Catalog(_))) => None,
                (Some(b), Ok(a)) => {
                    let keys = |r: &Route| r.keys.iter().map(|k| k.id.clone()).collect::<Vec<_>>();
                    (b.status != a.status || !b.same_location(a) || keys(b) != keys(a)).then(|| b.tenant.to_string())
                }
                (Some(b), Err(_)) => Some(b.tenant.to_string()),
                (None, Ok(a)) => Some(a.tenant.to_string()),
                (None, Err(_)) => Some(String::new()),
            };
            if let Some(key) = changed {
                i.invalidate(if key.is_empty() { RouteEvent::Resync } else { RouteEvent::TenantChanged(key) });
            }
            if let Ok(a) = after {
                lock(&i.cache).insert(slug.clone(), Cached::new(a));
            }
        }
    }
}

