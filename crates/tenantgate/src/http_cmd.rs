//! `tenantgate token` and the HTTP half of `tenantgate serve`: wiring only (crate tg-http).

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;
use tg_control::catalog::Catalog;
use tg_control::config::Config;
use tg_http::jwt::{parse_ttl, DevSigner};
use tg_http::{HttpConfig, HttpServer};

/// `tenantgate token SLUG [--read-only] [--ttl 1h]`: a development JWT signed with the first
/// configured HS256 key. Prints only the token on stdout.
pub async fn token(cfg: &Config, slug: &str, read_only: bool, ttl: &str) -> Result<ExitCode> {
    let http = HttpConfig::from_table(&cfg.http)?;
    let ttl = parse_ttl(ttl)?;
    let signer = DevSigner::load(&http.jwt(), &cfg.base_dir)?;
    // A token for a tenant that does not exist would only fail later, less clearly.
    Catalog::connect(&cfg.catalog.url).await?.tenant(slug).await?;
    println!("{}", signer.sign(slug, read_only, ttl)?);
    eprintln!(
        "{} token for {slug}, valid for {ttl} s. Use: curl -H \"Authorization: Bearer $TOKEN\" http://{}/v1/schema",
        if read_only { "read" } else { "write" },
        http.listen
    );
    Ok(ExitCode::SUCCESS)
}

/// Start the HTTP API next to the wire gateway, sharing its router, pools and gate. Returns
/// `None` when `[http] enabled = false`. The server stops when `stop` turns true.
pub async fn start(
    cfg: &Config,
    gateway: &tg_proxy::Gateway,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let http = HttpConfig::from_table(&cfg.http)?;
    if !http.enabled {
        println!("HTTP API disabled (http.enabled = false)");
        return Ok(None);
    }
    let data = gateway.data_plane();
    // The data-plane routes (tg-http) and, beside them, the control plane's admin API.
    // The MCP door's streamable HTTP endpoint, with its own authentication (crate tg-mcp).
    let mcp = crate::mcp_cmd::http_mount(cfg, &http, data.clone())?;
    let server = HttpServer::bind(Arc::new(cfg.clone()), http, data).await?.mount(tg_admin::extension()).mount_door(mcp);
    let addr = server.local_addr().map_or_else(|| "?".to_string(), |a| a.to_string());
    println!(
        "tenantgate HTTP API listening on {addr} (JWT keys: {}, admin API: {}, MCP at /mcp)",
        if server.has_jwt_keys() { "configured" } else { "none, API keys only" },
        if server.has_admin() { "on" } else { "off" }
    );
    Ok(Some(tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|v| *v).await;
        };
        if let Err(e) = server.serve(shutdown).await {
            eprintln!("error: {e}");
        }
    })))
}
