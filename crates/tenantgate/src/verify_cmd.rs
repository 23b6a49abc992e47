//! `tenantgate verify`: start (or point at) the gateways to attack, run the suite, print.

use std::process::ExitCode;

use anyhow::{Context, Result};
use tg_control::config::Config;
use tg_verify::exec::Target;

use crate::cli::VerifyArgs;

fn parse_target(s: &str, gate: bool) -> Result<Target> {
    let (host, port) = s.rsplit_once(':').with_context(|| format!("--target {s:?}: expected HOST:PORT, e.g. 127.0.0.1:6432"))?;
    let port = port.parse().with_context(|| format!("--target {s:?}: {port:?} is not a port number"))?;
    Ok(Target { host: host.to_string(), port, gate })
}

pub async fn run(cfg: &Config, args: VerifyArgs) -> Result<ExitCode> {
    let mut targets = Vec::new();
    // Dropping these stops the in-process gateways.
    let mut shutdowns: Vec<tokio::sync::oneshot::Sender<()>> = Vec::new();
    if args.only.as_deref() == Some("audit") {
        // The audit reads the servers only; no gateway needed.
    } else if let Some(t) = &args.target {
        targets.push(parse_target(t, true)?);
        if let Some(t) = &args.target_no_gate {
            targets.push(parse_target(t, false)?);
        }
    } else {
        targets = start_gateways(cfg, &mut shutdowns).await?;
    }
    let opts = tg_verify::Options { only: args.only.clone(), keep: args.keep, per_placement: args.probes.max(2), ..Default::default() };
    if !args.json {
        eprintln!(
            "verify: {} probe tenants per placement, attacking through {}",
            opts.per_placement,
            if targets.is_empty() { "nothing (audit only)".to_string() } else { targets.iter().map(|t| format!("{}:{} (gate {})", t.host, t.port, if t.gate { "on" } else { "off" })).collect::<Vec<_>>().join(" and ") }
        );
    }
    let report = tg_verify::run(cfg, &targets, &opts).await?;
    drop(shutdowns);
    if args.json {
        crate::output::json(&report)?;
    } else {
        print!("{}", tg_verify::report::text(&report));
    }
    Ok(if report.passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Start two in-process gateways on free loopback ports with this config's `[gateway]`
/// settings: one with the SQL gate, one without (the database must hold on its own).
async fn start_gateways(cfg: &Config, shutdowns: &mut Vec<tokio::sync::oneshot::Sender<()>>) -> Result<Vec<Target>> {
    let base = tg_proxy::GatewayConfig::from_table(&cfg.gateway)?;
    let catalog = tg_control::catalog::Catalog::connect(&cfg.catalog.url).await?;
    let mut targets = Vec::new();
    for gate in [true, false] {
        let master = tg_control::tenants::master_key(cfg, &catalog).await?;
        let mut gw_cfg = base.clone();
        gw_cfg.gate = gate;
        // Probes get short limits so the exhaustion scenarios finish in seconds; the
        // mechanism under test (limits set on every backend, capped by the gate) is the same.
        gw_cfg.limits = tg_proxy::config::LimitsConfig { statement_timeout_ms: 2_000, idle_in_transaction_timeout_ms: 2_000 };
        let gw = tg_proxy::Gateway::new(gw_cfg, &cfg.catalog.url, master, &cfg.base_dir)?;
        let listener = gw.bind(Some("127.0.0.1:0")).await?;
        let addr = tg_proxy::Gateway::local_addr(&listener).context("the verify gateway has no local address")?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            gw.serve(listener, async move {
                let _ = rx.await;
            })
            .await;
        });
        shutdowns.push(tx);
        targets.push(Target { host: addr.ip().to_string(), port: addr.port(), gate });
    }
    Ok(targets)
}
