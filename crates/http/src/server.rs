//! The HTTP server: shared state, the route table, the metrics/latency middleware, `/healthz`,
//! `/metrics`, and [`serve`].
//!
//! Owns wiring only: every decision lives in the concept modules. It never creates its own
//! router, pools or gate: [`DataPlane`] is handed in by `tenantgate serve`, shared with the wire
//! gateway.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router as AxumRouter;
use tg_catalog::config::Config;

use crate::auth::AdminToken;
use tg_dataplane::principal::{Authenticator, KeyCache, Principal};
use crate::config::HttpConfig;
use crate::error::HttpError;
use crate::limits::{sql_limits, RateLimiter, SqlLimits};
use tg_dataplane::jwt::JwtVerifier;
use crate::metrics::{self as m, RequestMetrics, TenantLabels};
use crate::problem::Problem;
use crate::{openapi, schema, sql, tenant_keys};

pub use tg_dataplane::DataPlane;

/// Everything a request handler may use.
pub struct AppState {
    pub http: HttpConfig,
    pub control: Arc<Config>,
    pub data: DataPlane,
    pub jwt: JwtVerifier,
    pub admin_token: Option<AdminToken>,
    pub keys: Arc<KeyCache>,
    pub limiter: RateLimiter,
    pub labels: TenantLabels,
    pub request_metrics: RequestMetrics,
    pub prometheus: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

pub type Shared = Arc<AppState>;

/// Per-request slot the handlers fill with the tenant, for the metrics middleware.
#[derive(Clone, Default)]
pub struct TenantSlot(Arc<Mutex<Option<String>>>);

impl TenantSlot {
    pub fn set(&self, tenant: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(tenant.to_string());
    }
    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl AppState {
    /// Build the state: load JWT keys and the admin token; install the metrics recorder.
    pub fn new(control: Arc<Config>, http: HttpConfig, data: DataPlane) -> Result<Shared, HttpError> {
        let jwt = JwtVerifier::load(&http.jwt(), &control.base_dir)?;
        let admin_token = load_admin_token(&http, &control)?;
        let keys = KeyCache::new(Duration::from_secs(http.key_cache_seconds));
        keys.follow(&data.router);
        Ok(Arc::new(AppState {
            limiter: RateLimiter::new(&http.rate_limit),
            labels: TenantLabels::new(http.metrics.top_tenants),
            request_metrics: RequestMetrics::default(),
            prometheus: m::install(),
            jwt,
            admin_token,
            keys,
            control,
            data,
            http,
        }))
    }

    /// Authenticate a tenant request, record its tenant for metrics, and apply the rate limit.
    pub async fn tenant(
        &self,
        headers: &axum::http::HeaderMap,
        slot: &TenantSlot,
    ) -> Result<(Principal, tg_dataplane::router::Route), Problem> {
        let auth = Authenticator { jwt: &self.jwt, router: &self.data.router, keys: &self.keys, api_keys: self.http.api_keys };
        let (p, route) = crate::auth::principal(&auth, headers).await?;
        slot.set(&p.tenant);
        if let Err(wait) = self.limiter.check(&p.tenant) {
            m::rate_limited(&self.labels.peek(&p.tenant));
            return Err(Problem::rate_limited(wait));
        }
        Ok((p, route))
    }

    /// The per-call limits of `tenant`.
    pub fn sql_limits(&self, tenant: &str) -> SqlLimits {
        let cap = self.data.gateway.limits_for(tenant).statement_timeout_ms;
        sql_limits(&self.http.limits, Some(cap))
    }

    pub fn admin(&self, headers: &axum::http::HeaderMap) -> Result<(), Problem> {
        match &self.admin_token {
            Some(t) => t.check(headers),
            None => Err(Problem::unauthorized(
                "the admin API is disabled: set http.admin_token_file or http.admin_token_env in tenantgate.toml",
            )),
        }
    }
}

fn load_admin_token(http: &HttpConfig, control: &Config) -> Result<Option<AdminToken>, HttpError> {
    match admin_token_secret(http, control)? {
        None => Ok(None),
        Some(s) => AdminToken::new(&s).map(Some).ok_or_else(|| {
            HttpError::Key(format!(
                "the admin token is too short; use at least {} random characters (e.g. `openssl rand -hex 32`)",
                crate::auth::MIN_ADMIN_TOKEN
            ))
        }),
    }
}

/// The admin token as configured (`http.admin_token_file`, else `http.admin_token_env`), for
/// the server and for clients of the admin API such as `tenantgate top`. Never log it.
pub fn admin_token_secret(http: &HttpConfig, control: &Config) -> Result<Option<String>, HttpError> {
    let secret = if let Some(f) = &http.admin_token_file {
        let p = control.resolve(f);
        Some(
            std::fs::read_to_string(&p)
                .map_err(|e| HttpError::Key(format!("cannot read http.admin_token_file {}: {e}", p.display())))?,
        )
    } else if let Some(var) = &http.admin_token_env {
        Some(std::env::var(var).map_err(|_| {
            HttpError::Key(format!("http.admin_token_env names {var}, which is not set; set it or remove the setting"))
        })?)
    } else {
        None
    };
    Ok(secret.map(|s| s.trim().to_string()))
}

/// Routes another crate mounts on this server (the control plane's admin API, `tg-admin`),
/// with their OpenAPI description, merged into `/openapi.json`. They share the server's
/// state, middleware and body limit.
pub struct Extension {
    pub routes: AxumRouter<Shared>,
    pub openapi: utoipa::openapi::OpenApi,
}

/// A self-contained router another door serves under a path of this server (the MCP door's
/// streamable HTTP endpoint, `tg-mcp`, at `/mcp`). It has its own state and does its own
/// authentication, so this crate never depends on that door; it shares this server's listener,
/// metrics middleware and body limit.
pub struct Mount {
    pub path: &'static str,
    pub router: AxumRouter,
}

/// The route table: the data-plane routes, then each extension's, then each mounted door.
pub fn app(state: Shared, extensions: Vec<Extension>) -> AxumRouter {
    app_with(state, extensions, Vec::new())
}

/// [`app`] with other doors' routers mounted (see [`Mount`]).
pub fn app_with(state: Shared, extensions: Vec<Extension>, mounts: Vec<Mount>) -> AxumRouter {
    let max_body = state.http.max_body_bytes;
    let mut doc = openapi::document();
    let mut routes = AxumRouter::new()
        .route("/v1/sql", post(sql::run_sql))
        .route("/v1/schema", get(schema::get_schema))
        .route("/v1/keys", get(tenant_keys::list_keys))
        .route("/v1/keys/{key_id}", get(tenant_keys::get_key));
    for e in extensions {
        doc.merge(e.openapi);
        routes = routes.merge(e.routes);
    }
    for m in mounts {
        routes = routes.nest_service(m.path, m.router);
    }
    let doc = Arc::new(doc);
    routes
        .route("/openapi.json", get(move || openapi::serve_openapi(doc.clone())))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_endpoint))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn not_found() -> Problem {
    Problem::not_found("no such resource; GET /openapi.json lists the API")
}

/// Count and time every request, label it by tenant (bounded) and route.
async fn observe(State(st): State<Shared>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map_or(std::borrow::Cow::Borrowed("unmatched"), |p| m::route_label(p.as_str()));
    let slot = TenantSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut resp = next.run(req).await;
    let tenant = slot.take();
    let label = match &tenant {
        Some(t) => st.labels.label(t),
        None => "-",
    };
    st.request_metrics.record(label, route, resp.status().as_u16(), start.elapsed());
    // Problem answers set their own content type; give JSON errors from axum's extractors
    // (malformed body, wrong content type) the problem shape too.
    if resp.status().is_client_error()
        && resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/plain"))
    {
        let status = resp.status();
        let body = axum::body::to_bytes(std::mem::take(resp.body_mut()), 64 * 1024).await.unwrap_or_default();
        let detail = String::from_utf8_lossy(&body).into_owned();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "too-large" } else { "bad-request" };
        let title = status.canonical_reason().unwrap_or("Bad Request");
        let mut p = Problem::new(status, code, "Bad Request", detail);
        p.title = title;
        return p.into_response();
    }
    resp
}

async fn healthz(State(st): State<Shared>) -> Response {
    match st.data.router.catalog().await {
        Ok(_) => (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok"}))).into_response(),
        Err(_) => Problem::unavailable("the catalog is not reachable; the gateway cannot route new requests").into_response(),
    }
}

async fn metrics_endpoint(State(st): State<Shared>) -> Response {
    let Some(h) = &st.prometheus else {
        return Problem::internal("another metrics recorder was installed first; /metrics is not available in this process")
            .into_response();
    };
    if let Ok(cat) = st.data.router.catalog().await {
        if let Ok(servers) = cat.servers().await {
            for s in servers {
                let stats = st.data.pools.stats(&s.name);
                m::pool_connections(&s.name, "open", stats.open);
                m::pool_connections(&s.name, "idle", stats.idle);
            }
        }
    }
    // Per-tenant usage of every door, at most top_tenants + 1 tenant labels (tg_dataplane::usage).
    let mut text = h.render();
    text.push_str(&tg_dataplane::usage::render_prometheus(st.data.quotas.usage(), st.http.metrics.top_tenants));
    let mut resp = text.into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    resp
}

/// A bound HTTP API, ready to serve.
pub struct HttpServer {
    state: Shared,
    listener: tokio::net::TcpListener,
    extensions: Vec<Extension>,
    mounts: Vec<Mount>,
}

impl HttpServer {
    /// Load keys and tokens, and bind `http.listen` (port 0 picks a free port). Fails before
    /// anything is served if key material or the address is unusable.
    pub async fn bind(control: Arc<Config>, http: HttpConfig, data: DataPlane) -> Result<HttpServer, HttpError> {
        let addr = http.listen;
        let state = AppState::new(control, http, data)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| HttpError::Bind { addr: addr.to_string(), source })?;
        Ok(HttpServer { state, listener, extensions: Vec::new(), mounts: Vec::new() })
    }

    /// Mount another crate's routes beside the data-plane routes (see [`Extension`]).
    pub fn mount(mut self, extension: Extension) -> HttpServer {
        self.extensions.push(extension);
        self
    }

    /// Serve another door's router under its path (see [`Mount`]).
    pub fn mount_door(mut self, mount: Mount) -> HttpServer {
        self.mounts.push(mount);
        self
    }

    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Whether tenant JWTs can be verified (some key is configured).
    pub fn has_jwt_keys(&self) -> bool {
        self.state.jwt.has_keys()
    }

    /// Whether the admin API is enabled.
    pub fn has_admin(&self) -> bool {
        self.state.admin_token.is_some()
    }

    /// Serve until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), HttpError> {
        axum::serve(self.listener, app_with(self.state, self.extensions, self.mounts))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| HttpError::Serve(e.to_string()))
    }
}

/// Bind `http.listen` and serve the data-plane routes and `extensions` until `shutdown` resolves.
pub async fn serve(
    control: Arc<Config>,
    http: HttpConfig,
    data: DataPlane,
    extensions: Vec<Extension>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), HttpError> {
    let mut server = HttpServer::bind(control, http, data).await?;
    for e in extensions {
        server = server.mount(e);
    }
    server.serve(shutdown).await
}
