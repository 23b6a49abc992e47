//! Invalidation of the route cache: LISTEN on the catalog's channels on a dedicated
//! connection that reconnects by itself, and a poll of the tenants with open sessions in case
//! a notification was missed.

use std::time::Duration;

use futures::StreamExt;

use super::{lock, Cached, Inner, Route, RouteError, RouteEvent, KEYS_CHANNEL, ROUTING_CHANNEL};

/// LISTEN on the catalog's channels on a dedicated connection; reconnect on loss.
pub(super) async fn listen_task(inner: std::sync::Weak<Inner>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let Some(url) = inner.upgrade().map(|i| i.catalog_url.clone()) else { return };
        match listen_once(&inner, &url).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => tracing::warn!("catalog listener: {e}; reconnecting"),
        }
        match inner.upgrade() {
            Some(i) => i.invalidate(RouteEvent::Resync),
            None => return,
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen_once(inner: &std::sync::Weak<Inner>, url: &str) -> Result<(), String> {
    use std::str::FromStr;
    let mut cfg = tokio_postgres::Config::from_str(url).map_err(|e| e.to_string())?;
    cfg.application_name("tenantgate-router");
    cfg.connect_timeout(Duration::from_secs(10));
    let (client, mut conn) = cfg.connect(tokio_postgres::NoTls).await.map_err(|e| e.to_string())?;
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
        i.invalidate(RouteEvent::Resync);
    }
    let mut alive = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            n = rx.recv() => match n {
                Some((channel, payload)) => {
                    let Some(i) = inner.upgrade() else { driver.abort(); return Ok(()) };
                    let event = if channel == KEYS_CHANNEL { RouteEvent::KeyRevoked(payload) } else { RouteEvent::TenantChanged(payload) };
                    i.invalidate(event);
                }
                None => { return Err("the listening connection closed".into()) }
            },
            _ = alive.tick() => {
                if inner.strong_count() == 0 {
                    driver.abort();
                    return Ok(());
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
                lock(&i.cache).insert(slug.clone(), Cached { route: a });
            }
        }
    }
}

