//! `tenantgate verify`: start (or point at) the gateways to attack, run the suite, print.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use tg_control::config::Config;
use tg_verify::exec::Target;
use tg_verify::http::{Hs256Key, HttpTarget};

use crate::cli::VerifyArgs;

fn parse_target(s: &str, gate: bool) -> Result<Target> {
    let (host, port) = s.rsplit_once(':').with_context(|| format!("--target {s:?}: expected HOST:PORT, e.g. 127.0.0.1:6432"))?;
    let port = port.parse().with_context(|| format!("--target {s:?}: {port:?} is not a port number"))?;
    Ok(Target { host: host.to_string(), port, gate, http: None })
}

pub async fn run(cfg: &Config, args: VerifyArgs) -> Result<ExitCode> {
    let mut targets = Vec::new();
    // Dropping these stops the in-process gateways.
    let mut shutdowns: Vec<tokio::sync::oneshot::Sender<()>> = Vec::new();
    if args.only.as_deref() == Some("audit") {
        // The audit reads the servers only; no gateway needed.
    } else if let Some(t) = &args.target {
        let mut t = parse_target(t, true)?;
        if let Some(url) = &args.target_http {
            t.http = Some(external_http(cfg, url)?);
        }
        targets.push(t);
        if let Some(t) = &args.target_no_gate {
            targets.push(parse_target(t, false)?);
        }
    } else {
        targets = start_gateways(cfg, &mut shutdowns).await?;
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
        let http = start_http(cfg, &gw, shutdowns).await?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            gw.serve(listener, async move {
                let _ = rx.await;
            })
            .await;
        });
        shutdowns.push(tx);
        targets.push(Target { host: addr.ip().to_string(), port: addr.port(), gate, http });
    }
    Ok(targets)
}

/// The name `verify` gives the issuer, audience and key id it configures on its own HTTP API
/// when the config has no HS256 key.
const EPHEMERAL: &str = "tenantgate-verify";

/// Start an in-process HTTP API on a free loopback port sharing `gw`'s router, pools and gate,
/// with this config's `[http]` settings. `None` when `[http] enabled = false`.
///
/// Differences from `tenantgate serve`, all confined to this instance: no per-tenant rate limit
/// (the suite sends hundreds of requests per probe; the limiter has its own tests), and, when no
/// HS256 key is configured, an ephemeral 32-byte HS256 secret (with issuer and audience
/// `tenantgate-verify` unless configured) so that JWT verification itself is attacked. The
/// secret lives in a private temporary file only until the server has loaded it.
async fn start_http(cfg: &Config, gw: &tg_proxy::Gateway, shutdowns: &mut Vec<tokio::sync::oneshot::Sender<()>>) -> Result<Option<HttpTarget>> {
    let mut http = tg_http::HttpConfig::from_table(&cfg.http).context("reading [http] for the verify HTTP API")?;
    if !http.enabled {
        return Ok(None);
    }
    http.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    http.rate_limit.rate_per_second = 0.0;
    let configured = tg_http::jwt::first_hs256_secret(&http, &cfg.base_dir).context("loading the HS256 key of [http] (verify signs its attack tokens with it)")?;
    let mut secret_file = None;
    let (key, ephemeral) = match configured {
        Some((kid, secret)) => (Hs256Key::new(kid, secret), false),
        None => {
            use rand::RngCore;
            let mut raw = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            let secret = hex::encode(raw);
            let mut f = tempfile::Builder::new().prefix("tenantgate-verify-jwt-").tempfile().context("creating a temporary file for the ephemeral HS256 secret; is the temp directory writable?")?;
            std::io::Write::write_all(&mut f, secret.as_bytes()).context("writing the ephemeral HS256 secret")?;
            http.jwt_keys.push(tg_http::config::JwtKeyConfig {
                kid: Some(EPHEMERAL.into()),
                alg: tg_http::config::Alg::HS256,
                secret_file: Some(f.path().to_path_buf()),
                secret_env: None,
                jwks_file: None,
            });
            if http.issuer.is_none() {
                http.issuer = Some(EPHEMERAL.into());
            }
            if http.audience.is_empty() {
                http.audience = vec![EPHEMERAL.into()];
            }
            secret_file = Some(f);
            (Hs256Key::new(Some(EPHEMERAL.into()), secret.into_bytes()), true)
        }
    };
    let target_template = HttpTarget {
        base_url: String::new(),
        key: Some(key),
        issuer: http.issuer.clone(),
        audience: http.audience.first().cloned(),
        tenant_claim: http.tenant_claim.clone(),
        scope_claim: http.scope_claim.clone(),
        ephemeral_key: ephemeral,
    };
    let data = tg_http::DataPlane {
        router: gw.router().clone(),
        pools: gw.pools().clone(),
        gate: gw.gate().clone(),
        gateway: Arc::new(gw.config().clone()),
    };
    let server = tg_http::HttpServer::bind(Arc::new(cfg.clone()), http, data).await.context("starting the verify HTTP API")?;
    // The server has read the secret; the file goes.
    drop(secret_file);
    let addr = server.local_addr().context("the verify HTTP API has no local address")?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        if let Err(e) = server
            .serve(async move {
                let _ = rx.await;
            })
            .await
        {
            eprintln!("verify HTTP API: {e}");
        }
    });
    shutdowns.push(tx);
    Ok(Some(HttpTarget { base_url: format!("http://{addr}"), ..target_template }))
}

/// `--target-http URL`: a running HTTP API, attacked with tokens signed by the configured HS256 key.
fn external_http(cfg: &Config, url: &str) -> Result<HttpTarget> {
    let base_url = url.trim_end_matches('/').to_string();
    if !base_url.starts_with("http://") {
        anyhow::bail!("--target-http {url:?}: expected http://HOST:PORT (verify speaks plain HTTP; run it next to the API, not through TLS)");
    }
    let http = tg_http::HttpConfig::from_table(&cfg.http).context("reading [http] for --target-http")?;
    let key = tg_http::jwt::first_hs256_secret(&http, &cfg.base_dir)
        .context("loading the HS256 key of [http] (verify signs its attack tokens with it)")?
        .map(|(kid, secret)| Hs256Key::new(kid, secret));
    if key.is_none() {
        eprintln!("verify: [http] has no HS256 key, so only the API-key and unsigned-token scenarios of the http group run against {base_url}");
    }
    Ok(HttpTarget {
        base_url,
        key,
        issuer: http.issuer.clone(),
        audience: http.audience.first().cloned(),
        tenant_claim: http.tenant_claim.clone(),
        scope_claim: http.scope_claim.clone(),
        ephemeral_key: false,
    })
}
