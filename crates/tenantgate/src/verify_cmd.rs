//! `tenantgate verify`: point at the gateways to attack (or start them: `tg_verify::harness`),
//! run the suite, print. Wiring only.

use std::process::ExitCode;

use anyhow::{Context, Result};
use tg_control::config::Config;
use tg_verify::exec::Target;

use crate::cli::VerifyArgs;

fn parse_target(s: &str, gate: bool) -> Result<Target> {
    let (host, port) = s.rsplit_once(':').with_context(|| format!("--target {s:?}: expected HOST:PORT, e.g. 127.0.0.1:6432"))?;
    let port = port.parse().with_context(|| format!("--target {s:?}: {port:?} is not a port number"))?;
    Ok(Target { host: host.to_string(), port, gate, http: None })
}

pub async fn run(cfg: &Config, args: VerifyArgs) -> Result<ExitCode> {
    let mut targets = Vec::new();
    // Dropping this stops the in-process gateways.
    let mut harness = None;
    if args.only.as_deref() == Some("audit") {
        // The audit reads the servers only; no gateway needed.
    } else if let Some(t) = &args.target {
        let mut t = parse_target(t, true)?;
        if let Some(url) = &args.target_http {
            t.http = Some(tg_verify::harness::external_http(cfg, url)?);
        }
        targets.push(t);
        if let Some(t) = &args.target_no_gate {
            targets.push(parse_target(t, false)?);
        }
    } else {
        let h = tg_verify::harness::in_process(cfg).await?;
        targets = h.targets.clone();
        harness = Some(h);
    }
    let opts = tg_verify::Options { only: args.only.clone(), keep: args.keep, per_placement: args.probes.max(2), latency_bound: std::time::Duration::from_millis(args.latency_bound_ms) };
    if !args.json {
        eprintln!(
            "verify: {} probe tenants per placement, attacking through {}",
            opts.per_placement,
            if targets.is_empty() { "nothing (audit only)".to_string() } else { targets
                .iter()
                .map(|t| {
                    let http = t.http.as_ref().map(|h| format!(" + HTTP {}{}", h.base_url, if h.ephemeral_key { " (ephemeral HS256 key)" } else { "" })).unwrap_or_default();
                    format!("{}:{}{http} (gate {})", t.host, t.port, if t.gate { "on" } else { "off" })
                })
                .collect::<Vec<_>>()
                .join(" and ") }
        );
    }
    let report = tg_verify::run(cfg, &targets, &opts).await?;
    drop(harness);
    if args.json {
        crate::output::json(&report)?;
    } else {
        print!("{}", tg_verify::report::text(&report));
    }
    Ok(if report.passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

