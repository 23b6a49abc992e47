//! Prometheus metrics of the HTTP API: per-tenant request counts and latency histograms, gate
//! denials by rule, authentication failures by reason, rate-limit refusals, and the wire
//! gateway's pool sizes when it exposes them. Installs the process-wide recorder, which also
//! carries the wire gateway's own counters (`tg_dataplane::audit`).
//!
//! Owns label cardinality: tenant labels are bounded with thousands of tenants. The busiest
//! `top_tenants` tenants of the last minute get their own label (plus newcomers while there is
//! room); everyone else is counted under `_other` (a slug cannot start with `_`). It must never
//! put a token, a key id, SQL text or a parameter into a label.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const OTHER: &str = "_other";
const WINDOW: Duration = Duration::from_secs(60);
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Install the process-wide Prometheus recorder once. `None` if another recorder was installed
/// first (the endpoint then says so).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!("tenantgate_http_requests_total", "HTTP requests by tenant (top-N, else _other), route and status");
    metrics::describe_histogram!(
        "tenantgate_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by tenant (top-N, else _other) and route"
    );
    metrics::describe_counter!("tenantgate_http_denials_total", "Statements refused by the SQL gate, by rule");
    metrics::describe_counter!("tenantgate_http_auth_failures_total", "Refused credentials, by reason");
    metrics::describe_counter!("tenantgate_http_rate_limited_total", "Requests refused by the per-tenant rate limit");
    metrics::describe_gauge!("tenantgate_pool_connections", "Backend connections held by the gateway's pools, by server and state");
    tg_dataplane::audit::describe_metrics();
    tg_dataplane::router::describe_metrics();
}

struct LabelState {
    counts: HashMap<String, u64>,
    labelled: HashSet<String>,
    since: Instant,
}

/// Chooses the tenant label of a request.
pub struct TenantLabels {
    top: usize,
    state: Mutex<LabelState>,
}

impl TenantLabels {
    pub fn new(top: usize) -> TenantLabels {
        TenantLabels {
            top,
            state: Mutex::new(LabelState { counts: HashMap::new(), labelled: HashSet::new(), since: Instant::now() }),
        }
    }

    /// Count a request of `tenant` and return its label: `tenant` itself or [`OTHER`].
    pub fn label<'t>(&self, tenant: &'t str) -> &'t str {
        self.label_at(tenant, Instant::now())
    }

    fn label_at<'t>(&self, tenant: &'t str, now: Instant) -> &'t str {
        if self.top == 0 {
            return OTHER;
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if now.saturating_duration_since(s.since) >= WINDOW {
            let mut by_count: Vec<(String, u64)> = s.counts.drain().collect();
            by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            s.labelled = by_count.into_iter().take(self.top).map(|(t, _)| t).collect();
            s.since = now;
        }
        match s.counts.get_mut(tenant) {
            Some(n) => *n += 1,
            None => {
                s.counts.insert(tenant.to_string(), 1);
            }
        }
        if s.labelled.contains(tenant) {
            return tenant;
        }
        if s.labelled.len() < self.top {
            s.labelled.insert(tenant.to_string());
            return tenant;
        }
        OTHER
    }
}

impl TenantLabels {
    /// The label `tenant` has now, without counting a request.
    pub fn peek(&self, tenant: &str) -> String {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.labelled.contains(tenant) {
            tenant.to_string()
        } else {
            OTHER.to_string()
        }
    }
}

/// The label of a route template: the server's own routes without an allocation.
pub fn route_label(template: &str) -> Cow<'static, str> {
    const KNOWN: &[&str] = &["/v1/sql", "/v1/schema", "/v1/keys", "/v1/keys/{key_id}", "/healthz", "/metrics", "/openapi.json"];
    match KNOWN.iter().find(|k| **k == template) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(template.to_string()),
    }
}

/// The request counter and latency histogram of one (tenant label, route, status).
#[derive(Clone)]
struct RequestHandles {
    count: Counter,
    latency: Histogram,
}

/// The request metrics' handles, kept: registering a labelled metric formats and hashes its
/// labels, which every request paid. Bounded like the labels themselves (top tenants, `_other`
/// and `-`, times routes and statuses); forgotten when the set of labels has moved on.
#[derive(Default)]
pub struct RequestMetrics {
    by_tenant: Mutex<HashMap<String, RouteHandles>>,
}

/// One tenant label's handles, by route and status.
type RouteHandles = HashMap<(Cow<'static, str>, u16), RequestHandles>;

/// Tenant labels kept before the cache starts over (the labelled set changes each minute).
const MAX_CACHED_LABELS: usize = 4096;

impl RequestMetrics {
    /// Count one request of `tenant` (a label from [`TenantLabels`]) on `route`.
    pub fn record(&self, tenant: &str, route: Cow<'static, str>, status: u16, elapsed: Duration) {
        let handles = {
            let mut m = self.by_tenant.lock().unwrap_or_else(|p| p.into_inner());
            let cached = m.get(tenant).and_then(|r| r.get(&(route.clone(), status))).cloned();
            match cached {
                Some(h) => h,
                None => {
                    let h = RequestHandles {
                        count: metrics::counter!("tenantgate_http_requests_total", "tenant" => tenant.to_string(), "route" => route.clone(), "status" => status.to_string()),
                        latency: metrics::histogram!("tenantgate_http_request_duration_seconds", "tenant" => tenant.to_string(), "route" => route.clone()),
                    };
                    if m.len() >= MAX_CACHED_LABELS {
                        m.clear();
                    }
                    m.entry(tenant.to_string()).or_default().insert((route, status), h.clone());
                    h
                }
            }
        };
        handles.count.increment(1);
        handles.latency.record(elapsed.as_secs_f64());
    }
}

pub fn denial(rule: &'static str) {
    metrics::counter!("tenantgate_http_denials_total", "rule" => rule).increment(1);
}

pub fn auth_failure(reason: &'static str) {
    metrics::counter!("tenantgate_http_auth_failures_total", "reason" => reason).increment(1);
}

pub fn rate_limited(tenant: &str) {
    metrics::counter!("tenantgate_http_rate_limited_total", "tenant" => tenant.to_string()).increment(1);
}

pub fn pool_connections(server: &str, state: &'static str, n: usize) {
    metrics::gauge!("tenantgate_pool_connections", "server" => server.to_string(), "state" => state).set(n as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_stay_bounded() {
        let l = TenantLabels::new(2);
        let t0 = Instant::now();
        assert_eq!(l.label_at("a", t0), "a");
        assert_eq!(l.label_at("b", t0), "b");
        for i in 0..1000 {
            assert_eq!(l.label_at(&format!("t{i}"), t0), OTHER);
        }
        // Next window: the busiest two of the last window keep or get labels.
        for _ in 0..5 {
            l.label_at("busy", t0);
        }
        let t1 = t0 + WINDOW;
        assert_eq!(l.label_at("busy", t1), "busy");
        assert_eq!(l.label_at("t5", t1), OTHER, "one request in the last window is not top-2");
    }

    #[test]
    fn request_handles_are_kept_and_bounded() {
        let m = RequestMetrics::default();
        let cached = |m: &RequestMetrics| m.by_tenant.lock().map(|t| (t.len(), t.values().map(HashMap::len).sum::<usize>())).unwrap_or_default();
        for _ in 0..3 {
            m.record("acme", route_label("/v1/sql"), 200, Duration::from_millis(1));
        }
        m.record("acme", route_label("/v1/sql"), 400, Duration::from_millis(1));
        m.record(OTHER, route_label("/admin/v1/tenants"), 200, Duration::from_millis(1));
        assert_eq!(cached(&m), (2, 3), "one handle pair per (label, route, status)");
        for i in 0..MAX_CACHED_LABELS + 10 {
            m.record(&format!("t{i}"), route_label("/v1/sql"), 200, Duration::from_millis(1));
        }
        assert!(cached(&m).0 <= MAX_CACHED_LABELS, "bounded: {:?}", cached(&m));
        assert!(matches!(route_label("/v1/sql"), Cow::Borrowed("/v1/sql")));
        assert_eq!(route_label("/admin/v1/tenants"), "/admin/v1/tenants");
    }

    #[test]
    fn zero_top_labels_nobody() {
        assert_eq!(TenantLabels::new(0).label("a"), OTHER);
    }
}
