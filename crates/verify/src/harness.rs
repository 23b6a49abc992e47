//! The gateways `verify` attacks when it is not pointed at running ones: two in-process wire
//! gateways on free loopback ports (gate on, gate off) with this config's `[gateway]`
//! settings and short limits, each with an in-process HTTP API on the same data plane, and
//! the tokens to attack the HTTP API with.
//!
//! Owns the attack harness only; it never changes the config file or the catalog's settings,
//! and the ephemeral HS256 secret it may create lives in a private temporary file only until
//! the HTTP server has loaded it.

use std::sync::Arc;

use tg_catalog::config::Config;

use crate::exec::Target;
use crate::http::{Hs256Key, HttpTarget};
use crate::{Error, Result};

/// Running in-process gateways; dropping this stops them.
pub struct Harness {
    pub targets: Vec<Target>,
    _shutdowns: Vec<tokio::sync::oneshot::Sender<()>>,
}

fn setup<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::Setup(format!("{what}: {e}"))
}

/// Start two in-process gateways on free loopback ports with this config's `[gateway]`
/// settings: one with the SQL gate, one without (the database must hold on its own).
pub async fn in_process(cfg: &Config) -> Result<Harness> {
    let mut shutdowns = Vec::new();
    let targets = start_gateways(cfg, &mut shutdowns).await?;
    Ok(Harness { targets, _shutdowns: shutdowns })
}

async fn start_gateways(cfg: &Config, shutdowns: &mut Vec<tokio::sync::oneshot::Sender<()>>) -> Result<Vec<Target>> {
    let base = tg_proxy::GatewayConfig::from_table(&cfg.gateway).map_err(setup("reading [gateway]"))?;
    let catalog = tg_catalog::catalog::Catalog::connect(&cfg.catalog.url).await?;
    let mut targets = Vec::new();
    for gate in [true, false] {
        let master = tg_catalog::credentials::master_key(cfg, &catalog).await?;
        let mut gw_cfg = base.clone();
        gw_cfg.gate = gate;
        // Probes get short limits so the exhaustion scenarios finish in seconds; the
        // mechanism under test (limits set on every backend, capped by the gate) is the same.
        gw_cfg.limits = tg_proxy::config::LimitsConfig { statement_timeout_ms: 2_000, idle_in_transaction_timeout_ms: 2_000, ..Default::default() };
        let gw = tg_proxy::Gateway::new(gw_cfg, &cfg.catalog.url, master, &cfg.base_dir).map_err(setup("starting a verify gateway"))?;
        let listener = gw.bind(Some("127.0.0.1:0")).await.map_err(setup("binding a verify gateway"))?;
        let addr = tg_proxy::Gateway::local_addr(&listener).ok_or_else(|| Error::Setup("the verify gateway has no local address".into()))?;
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
    let mut http = tg_http::HttpConfig::from_table(&cfg.http).map_err(setup("reading [http] for the verify HTTP API"))?;
    if !http.enabled {
        return Ok(None);
    }
    http.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    http.rate_limit.rate_per_second = 0.0;
    let configured = tg_http::jwt::first_hs256_secret(&http.jwt(), &cfg.base_dir).map_err(setup("loading the HS256 key of [http] (verify signs its attack tokens with it)"))?;
    let mut secret_file = None;
    let (key, ephemeral) = match configured {
        Some((kid, secret)) => (Hs256Key::new(kid, secret), false),
        None => {
            use rand::RngCore;
            let mut raw = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut raw);
            let secret = hex::encode(raw);
            let mut f = tempfile::Builder::new().prefix("tenantgate-verify-jwt-").tempfile().map_err(setup("creating a temporary file for the ephemeral HS256 secret; is the temp directory writable?"))?;
            std::io::Write::write_all(&mut f, secret.as_bytes()).map_err(setup("writing the ephemeral HS256 secret"))?;
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
    let data = gw.data_plane();
    let server = tg_http::HttpServer::bind(Arc::new(cfg.clone()), http, data).await.map_err(setup("starting the verify HTTP API"))?;
    // The server has read the secret; the file goes.
    drop(secret_file);
    let addr = server.local_addr().ok_or_else(|| Error::Setup("the verify HTTP API has no local address".into()))?;
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
pub fn external_http(cfg: &Config, url: &str) -> Result<HttpTarget> {
    let base_url = url.trim_end_matches('/').to_string();
    if !base_url.starts_with("http://") {
        return Err(Error::Setup(format!("--target-http {url:?}: expected http://HOST:PORT (verify speaks plain HTTP; run it next to the API, not through TLS)")));
    }
    let http = tg_http::HttpConfig::from_table(&cfg.http).map_err(setup("reading [http] for --target-http"))?;
    let key = tg_http::jwt::first_hs256_secret(&http.jwt(), &cfg.base_dir)
        .map_err(setup("loading the HS256 key of [http] (verify signs its attack tokens with it)"))?
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
