//! `tenantgate top`: wiring for a live view of a running gateway's per-tenant activity. Reads
//! `GET /admin/v1/usage` (crate tg-admin, numbers from tg_dataplane::usage) with the admin
//! token from the config, and prints tenants by time in the database with their quotas: how
//! many statements run against `max_concurrent_statements`, the statement rate (between two
//! samples) against `statements_per_second`, refusals by limit. `--once` prints one sample,
//! `--json` the API's JSON. Never prints the admin token.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use tg_admin::quotas::UsageOut;
use tg_control::config::Config;
use tg_http::HttpConfig;

pub async fn run(cfg: &Config, url: Option<String>, once: bool, json: bool, interval: u64, limit: usize) -> Result<ExitCode> {
    let http = HttpConfig::from_table(&cfg.http)?;
    let token = tg_http::server::admin_token_secret(&http, cfg)?.ok_or_else(|| {
        anyhow!("`top` reads the admin API: set http.admin_token_file or http.admin_token_env in tenantgate.toml (as for the running serve)")
    })?;
    let base = url.unwrap_or_else(|| format!("http://{}", http.listen));
    let endpoint = format!("{}/admin/v1/usage?limit={limit}", base.trim_end_matches('/'));
    let fetch = move || -> Result<(String, UsageOut)> {
        let resp = ureq::get(&endpoint).set("Authorization", &format!("Bearer {token}")).timeout(Duration::from_secs(5)).call();
        let resp = match resp {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                let detail = r.into_string().unwrap_or_default();
                return Err(anyhow!("the admin API answered {code}: {detail}; check the admin token and the --url"));
            }
            Err(e) => return Err(anyhow!("cannot reach the gateway's HTTP API at {endpoint}: {e}; is `tenantgate serve` running? (--url sets the address)")),
        };
        let text = resp.into_string().context("reading the admin API's answer")?;
        let usage: UsageOut = serde_json::from_str(&text).context("the admin API's answer is not the usage JSON this version expects")?;
        Ok((text, usage))
    };
    let fetch = std::sync::Arc::new(fetch);
    let sample = || {
        let f = fetch.clone();
        async move { tokio::task::spawn_blocking(move || f()).await.map_err(|e| anyhow!("the HTTP request did not finish: {e}"))? }
    };
    if json {
        let (text, _) = sample().await?;
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut last: Option<(Instant, HashMap<String, u64>)> = None;
    loop {
        let (_, usage) = sample().await?;
        let now = Instant::now();
        let rates: Option<HashMap<String, f64>> = last.as_ref().map(|(t, prev)| {
            let secs = now.duration_since(*t).as_secs_f64().max(0.001);
            usage
                .tenants
                .iter()
                .map(|u| (u.tenant.clone(), u.statements.saturating_sub(prev.get(&u.tenant).copied().unwrap_or(u.statements)) as f64 / secs))
                .collect()
        });
        let table = render(&usage, rates.as_ref());
        if once {
            print!("{table}");
            return Ok(ExitCode::SUCCESS);
        }
        // Clear the screen and draw from the top left.
        print!("\x1b[2J\x1b[H{table}\n(refreshing every {interval} s; Ctrl-C to quit)\n");
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        last = Some((now, usage.tenants.iter().map(|u| (u.tenant.clone(), u.statements)).collect()));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(interval.max(1))) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

fn of(used: f64, max: u64) -> String {
    if max == 0 {
        return "-".into();
    }
    format!("{:.0}%", 100.0 * used / max as f64)
}

/// The table, busiest first (the API's order).
fn render(usage: &UsageOut, rates: Option<&HashMap<String, f64>>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<24} {:>9} {:>9} {:>6} {:>6} {:>10} {:>10} {:>6} {:>5} {:>5} {:>7} {:>5} {:>12} {:>5} {:>8}",
        "TENANT", "DB_SEC", "STMTS", "ERR", "DENY", "ROWS", "BYTES", "ACTIVE", "MAXC", "CONC%", "STMT/S", "MAXR", "RATE%", "WAIT", "REFUSED"
    );
    for u in &usage.tenants {
        let l = &u.limits;
        let rate = rates.and_then(|r| r.get(&u.tenant)).copied();
        let refused: u64 = u.quota_refusals.values().sum();
        let _ = writeln!(
            s,
            "{:<24} {:>9.2} {:>9} {:>6} {:>6} {:>10} {:>10} {:>6} {:>5} {:>5} {:>7} {:>5} {:>12} {:>5} {:>8}",
            u.tenant,
            u.db_time_seconds,
            u.statements,
            u.errors,
            u.denials,
            u.rows,
            u.bytes,
            u.active,
            if l.max_concurrent_statements == 0 { "-".to_string() } else { l.max_concurrent_statements.to_string() },
            of(u.active as f64, u64::from(l.max_concurrent_statements)),
            rate.map_or_else(|| "-".to_string(), |r| format!("{r:.0}")),
            if l.statements_per_second == 0 { "-".to_string() } else { l.statements_per_second.to_string() },
            rate.map_or_else(|| "-".to_string(), |r| of(r, u64::from(l.statements_per_second))),
            u.waiting,
            refused,
        );
    }
    if usage.tenants.is_empty() {
        s.push_str("(no tenant has run a statement through this gateway yet)\n");
    }
    s
}
