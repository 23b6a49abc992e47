//! `tenantgate serve`: run the wire-protocol gateway until SIGINT or SIGTERM.

use std::process::ExitCode;

use anyhow::Result;
use tg_control::config::Config;

pub async fn run(cfg: &Config, listen: Option<String>) -> Result<ExitCode> {
    let gateway = tg_proxy::Gateway::from_config(cfg).await?;
    let listener = gateway.bind(listen.as_deref()).await?;
    let addr = listener.local_addr()?;
    let gate = if gateway.config().gate { "on" } else { "OFF (tests only)" };
    let tls = if gateway.config().tls_cert.is_some() { "TLS available" } else { "no TLS" };
    println!("tenantgate gateway listening on {addr} (gate {gate}, {tls})");
    println!("connect: psql \"host={} port={} user=<tenant slug> dbname=app\" with PGPASSWORD=<API key>", addr.ip(), addr.port());
    use std::io::Write as _;
    // The HTTP API shares this gateway's router, pools and gate (see crate tg-http).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let http = crate::http_cmd::start(cfg, &gateway, stop_rx).await?;
    let _ = std::io::stdout().flush();
    gateway.serve(listener, shutdown_signal()).await;
    let _ = stop_tx.send(true);
    if let Some(h) = http {
        let _ = h.await;
    }
    println!("tenantgate gateway stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let ctrl_c = tokio::signal::ctrl_c();
    match term {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = ctrl_c => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
