//! `tenantgate serve`: run the wire-protocol gateway until SIGINT or SIGTERM.

use std::process::ExitCode;

use anyhow::Result;
use tg_control::config::Config;

use crate::cli::{Cli, Command};

/// How many runtime threads `serve` asks for: `--worker-threads`, else `gateway.worker_threads`
/// from the config; `None` (also for 0, and for other commands) means one per CPU. A config
/// that cannot be read is left for `run` to report.
pub fn worker_threads(cli: &Cli) -> Option<usize> {
    let Command::Serve { worker_threads, .. } = &cli.command else {
        return None;
    };
    let n = worker_threads.map(usize::from).or_else(|| {
        let cfg = Config::load(&cli.config).ok()?;
        tg_proxy::config::GatewayConfig::from_table(&cfg.gateway).ok().map(|g| g.worker_threads)
    })?;
    (n > 0).then_some(n)
}

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
