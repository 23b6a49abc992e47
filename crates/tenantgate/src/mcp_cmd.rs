//! `tenantgate mcp` (stdio) and the `/mcp` mount of `serve`: wiring only (crate tg-mcp). The
//! MCP door takes the HTTP door's credentials and call limits from `[http]`.

use std::process::ExitCode;

use anyhow::Result;
use tg_control::config::Config;
use tg_http::HttpConfig;
use tg_mcp::identity::Identity;
use tg_mcp::McpSettings;

fn settings(cfg: &Config, http: &HttpConfig) -> McpSettings {
    McpSettings {
        jwt: http.jwt(),
        base_dir: cfg.base_dir.clone(),
        api_keys: http.api_keys,
        key_cache_seconds: http.key_cache_seconds,
        max_rows: http.limits.max_rows,
        max_bytes: http.limits.max_bytes,
        statement_timeout_ms: http.limits.statement_timeout_ms,
    }
}

/// `tenantgate mcp`: serve one MCP session over stdin/stdout. Nothing but JSON-RPC goes to
/// stdout; a refused credential ends the process with the reason on stderr.
pub async fn stdio(cfg: &Config, token: Option<String>, tenant: Option<String>) -> Result<ExitCode> {
    let http = HttpConfig::from_table(&cfg.http)?;
    // The same data plane `serve` builds (router, pools, gate), without listening anywhere.
    let gateway = tg_proxy::Gateway::from_config(cfg).await?;
    let identity = Identity::new(gateway.data_plane(), settings(cfg, &http))?;
    match tg_mcp::stdio::serve(identity, token, tenant).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(tg_mcp::McpError::Credential(m)) => {
            eprintln!("error: {m}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

/// The MCP door's router for `/mcp` on the HTTP server, on the same data plane.
pub fn http_mount(cfg: &Config, http: &HttpConfig, data: tg_http::DataPlane) -> Result<tg_http::Mount> {
    let identity = Identity::new(data, settings(cfg, http))?;
    Ok(tg_http::Mount { path: "/mcp", router: tg_mcp::http::router(identity) })
}
