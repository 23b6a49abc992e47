//! Scale and faults (issue #18), end to end with `tenantgate serve` child processes and real
//! clusters: a catalog outage (serve known tenants within the grace period, refuse the
//! unknown, fail-closed mode, recovery, revocations and suspensions reaching two gateways),
//! audit off the login path (a locked audit table, overflow counted, retention), a gateway
//! killed mid-statement (`client_connection_check_interval`), and the half-open caps.
//!
//! The catalog lives on server us-1 (`tg_local::deployment_toml`), so tenants that must keep
//! working while the catalog is stopped live on eu-1.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::gateway::{self as gw, Gateway};
use common::Deployment;

/// The value of metric `name` (summed over its label sets) from `/metrics` on `http`.
fn metric(http: u16, name: &str) -> f64 {
    let body = ureq::get(&format!("http://127.0.0.1:{http}/metrics"))
        .timeout(Duration::from_secs(10))
        .call()
        .ok()
        .and_then(|r| r.into_string().ok())
        .unwrap_or_default();
    body.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// `POST /v1/sql` on the HTTP door with a bearer key; the status.
fn http_sql(http: u16, key: &str) -> u16 {
    let r = ureq::post(&format!("http://127.0.0.1:{http}/v1/sql"))
        .timeout(Duration::from_secs(10))
        .set("Authorization", &format!("Bearer {key}"))
        .send_json(serde_json::json!({"sql": "SELECT 1 AS one", "params": []}));
    match r {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(code, _)) => code,
        Err(e) => panic!("HTTP door: {e}"),
    }
}

/// Wait up to `within` for `cond`; returns whether it held.
fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + within;
    while Instant::now() < until {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

/// Log in over the raw client and run `SELECT 1`; `Err((code, message))` if refused.
fn login(g: &Gateway, slug: &str, key: &str) -> Result<(), (String, String)> {
    let (mut s, _, _) = gw::try_raw_login(g.port, slug, key).map_err(|(_, code, msg)| (code, msg))?;
    let msgs = gw::raw_query(&mut s, "SELECT 1");
    match msgs.iter().find(|(t, _)| *t == b'E') {
        Some((_, body)) => {
            let (_, code, msg) = gw::error_fields(body);
            Err((code, msg))
        }
        None => Ok(()),
    }
}

fn refused_with(r: Result<(), (String, String)>, code: &str, what: &str) -> String {
    match r {
        Err((c, m)) if c == code => m,
        other => panic!("{what}: expected {code}, got {other:?}"),
    }
}

#[test]
fn catalog_outage_serves_known_tenants_within_grace_and_recovers() {
    let started = Instant::now();
    let d = Deployment::start();
    let a = d.create("known-a", "pooled", "eu-1");
    let b = d.create("known-b", "schema", "eu-1");
    d.create("unseen-c", "pooled", "eu-1");
    let (ka_id, ka) = gw::create_key(&d, &a.slug, false);
    let (_, kb) = gw::create_key(&d, &b.slug, true);
    let (_, kc) = gw::create_key(&d, "unseen-c", false);
    let settings = "catalog_grace_ms = 8000\ncatalog_timeout_ms = 1000\npoll_interval_ms = 500\n";
    let (known, known_http) = Gateway::start_with_http(&d, "serve-known", settings);
    let (closed, closed_http) = Gateway::start_with_http(&d, "fail-closed", &format!("{settings}catalog_outage = \"fail-closed\"\n"));
    for g in [&known, &closed] {
        login(g, &a.slug, &ka).expect("a before the outage");
        login(g, &b.slug, &kb).expect("b before the outage");
    }
    assert_eq!(http_sql(known_http, &kb), 200, "the HTTP door before the outage");
    assert!(wait_for(Duration::from_secs(5), || metric(known_http, "tenantgate_catalog_up") == 1.0), "catalog up before the outage");
    // A session opened before the outage keeps working through it.
    let (mut open, _, _) = gw::raw_login(known.port, &a.slug, &ka);

    // ------------------------------------------------------------ the catalog stops
    d.us.stop().expect("stop the catalog's server");
    let stopped = Instant::now();
    assert!(
        wait_for(Duration::from_secs(5), || metric(known_http, "tenantgate_catalog_up") == 0.0),
        "the outage shows in tenantgate_catalog_up"
    );
    eprintln!("outage noticed after {:?}", stopped.elapsed());
    for _ in 0..3 {
        let t = Instant::now();
        login(&known, &a.slug, &ka).expect("a known tenant logs in during the outage");
        assert!(t.elapsed() < Duration::from_secs(1), "a login during the outage took {:?}", t.elapsed());
    }
    login(&known, &b.slug, &kb).expect("a known read-only key logs in during the outage");
    assert_eq!(http_sql(known_http, &kb), 200, "the HTTP door serves a known key during the outage");
    assert_eq!(http_sql(known_http, &kc), 503, "the HTTP door refuses a key it never saw during the outage");
    let msgs = gw::raw_query(&mut open, "SELECT 42");
    assert!(msgs.iter().all(|(t, _)| *t != b'E'), "an open session keeps working");
    // Unknown tenants, unseen tenants and wrong keys all get the same 08006.
    let m = refused_with(login(&known, "unseen-c", &kc), "08006", "a tenant this gateway never saw");
    assert!(m.contains("catalog"), "{m}");
    let m2 = refused_with(login(&known, &a.slug, "tgk_00000000_wrongwrongwrongwrongwrongwrongwr"), "08006", "a wrong key");
    let m3 = refused_with(login(&known, "no-such-tenant", &ka), "08006", "a tenant that does not exist");
    assert_eq!((m2.is_empty(), m3.is_empty()), (false, false));
    // Fail-closed refuses even the tenants it knows.
    assert!(wait_for(Duration::from_secs(5), || metric(closed_http, "tenantgate_catalog_up") == 0.0));
    refused_with(login(&closed, &a.slug, &ka), "08006", "fail-closed during the outage");
    assert!(metric(known_http, "tenantgate_catalog_last_seen_routes_total") >= 4.0, "served from last-seen routes, counted");
    assert!(metric(known_http, "tenantgate_catalog_refused_lookups_total") >= 1.0, "refused lookups counted");

    // Past the grace period (8 s after the catalog last answered) known tenants are refused too.
    let past = Duration::from_millis(8500).saturating_sub(stopped.elapsed());
    std::thread::sleep(past);
    refused_with(login(&known, &a.slug, &ka), "08006", "a known tenant after the grace period");

    // ------------------------------------------------------------ the catalog returns
    d.us.start().expect("restart the catalog's server");
    for (g, http) in [(&known, known_http), (&closed, closed_http)] {
        assert!(wait_for(Duration::from_secs(10), || metric(http, "tenantgate_catalog_up") == 1.0), "{}: recovery noticed", g.name);
        login(g, &a.slug, &ka).expect("a after recovery");
        login(g, "unseen-c", &kc).expect("a tenant first seen after recovery");
    }
    let m = refused_with(login(&known, &a.slug, "tgk_00000000_wrongwrongwrongwrongwrongwrongwr"), "28P01", "a wrong key after recovery");
    assert!(m.contains("password authentication failed"), "{m}");
    // Audit events of the outage were kept and written after it.
    let refusals = || -> i64 {
        d.admin("us-1", "tenantgate", "SELECT count(*) FROM tg.audit_events WHERE action = 'gateway.connect' AND detail->>'outcome' = 'catalog-unreachable'")
            .parse()
            .unwrap_or(0)
    };
    assert!(wait_for(Duration::from_secs(10), || refusals() >= 3), "refusals during the outage reach the audit log afterwards ({})", refusals());

    // ------------------------------------------------------------ two gateways, one catalog
    let (mut on_known, _, _) = gw::raw_login(known.port, &a.slug, &ka);
    let (mut on_closed, _, _) = gw::raw_login(closed.port, &a.slug, &ka);
    d.ok(&["key", "revoke", &a.slug, &ka_id]);
    for (g, s) in [(&known, &mut on_known), (&closed, &mut on_closed)] {
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let rest = gw::read_all(s);
        let errs = gw::errors_in(&rest);
        assert!(errs.iter().any(|(_, code, m)| code == "57P01" && m.contains("revoked")), "{}: open session ended: {errs:?}", g.name);
        refused_with(login(g, &a.slug, &ka), "28P01", "a revoked key");
    }
    d.ok(&["tenant", "suspend", &b.slug]);
    for g in [&known, &closed] {
        assert!(login(g, &b.slug, &kb).is_err(), "{}: a suspended tenant is refused", g.name);
    }
    eprintln!("catalog outage test: {:?}", started.elapsed());
}

#[test]
fn audit_stays_off_the_login_path_and_retention_prunes() {
    let d = Deployment::start();
    let a = d.create("audited", "pooled", "eu-1");
    let (_, ka) = gw::create_key(&d, &a.slug, false);
    d.admin(
        "us-1",
        "tenantgate",
        "INSERT INTO tg.audit_events (at, actor, action, detail) VALUES \
         (now() - interval '100 days', 'gateway', 'gateway.connect', '{\"mark\":\"old-gateway\"}'), \
         (now() - interval '100 days', 'alice', 'tenant.create', '{\"mark\":\"old-operator\"}'), \
         (now() - interval '10 days', 'gateway', 'gateway.connect', '{\"mark\":\"recent-gateway\"}')",
    );
    let marks = || d.admin("us-1", "tenantgate", "SELECT string_agg(detail->>'mark', ',' ORDER BY detail->>'mark') FROM tg.audit_events WHERE detail ? 'mark'");
    // Every login re-reads its route (route_ttl_ms = 1), so a route lookup stuck behind an
    // audit write would show in every login.
    let (g, http) = Gateway::start_with_http(
        &d,
        "audit",
        "audit_retention_days = 90\naudit_buffer = 20\ncatalog_timeout_ms = 1000\nroute_ttl_ms = 1\n",
    );
    assert!(wait_for(Duration::from_secs(30), || marks() == "old-operator,recent-gateway"), "retention pruned: {}", marks());
    assert!(metric(http, "tenantgate_audit_pruned_total") >= 1.0);
    login(&g, &a.slug, &ka).expect("login");
    let connects = || -> i64 {
        d.admin("us-1", "tenantgate", "SELECT count(*) FROM tg.audit_events WHERE action = 'gateway.connect' AND tenant_key IS NOT NULL").parse().unwrap_or(0)
    };
    assert!(wait_for(Duration::from_secs(5), || connects() >= 1), "the login is audited");
    let before = connects();

    // Lock the audit table (a slow catalog, as far as audit goes) and log in many times.
    let c = d.cluster("us-1");
    let mut locker = std::process::Command::new("psql")
        .arg(format!("host={} port={} user={} dbname=tenantgate application_name=locker", c.host(), c.port(), c.superuser()))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", "BEGIN", "-c", "LOCK TABLE tg.audit_events IN ACCESS EXCLUSIVE MODE", "-c", "SELECT pg_sleep(60)"])
        .env("PGPASSWORD", c.password())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("psql locker");
    assert!(
        wait_for(Duration::from_secs(10), || d.admin("us-1", "postgres", "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'locker' AND l.mode = 'AccessExclusiveLock'") != "0"),
        "the audit table is locked"
    );
    let mut slowest = Duration::ZERO;
    for _ in 0..40 {
        let t = Instant::now();
        login(&g, &a.slug, &ka).expect("login while the audit table is locked");
        slowest = slowest.max(t.elapsed());
    }
    eprintln!("slowest of 40 logins with the audit table locked: {slowest:?}");
    assert!(slowest < Duration::from_millis(800), "a locked audit table slowed a login to {slowest:?}");
    assert!(metric(http, "tenantgate_audit_dropped_total") >= 1.0, "overflow is counted");
    d.admin("us-1", "postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'locker'");
    let _ = locker.wait();
    // What fitted in the buffer is written once the lock is gone.
    assert!(
        wait_for(Duration::from_secs(15), || {
            connects() >= before + 10
        }),
        "buffered audit events written after the lock (had {before})"
    );
}

#[test]
fn a_killed_gateway_leaves_no_orphaned_statement() {
    let d = Deployment::start();
    let a = d.create("orphan", "pooled", "eu-1");
    let (_, ka) = gw::create_key(&d, &a.slug, false);
    let running = |d: &Deployment| -> i64 {
        d.admin("eu-1", "postgres", &format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{}' AND state = 'active' AND query LIKE '%pg_sleep(60)%'", a.key))
            .parse()
            .expect("count")
    };
    let start_sleep = |g: &Gateway| {
        let (mut s, _, _) = gw::raw_login(g.port, &a.slug, &ka);
        s.write_all(&tg_verify::rawclient::query("BEGIN; SELECT pg_sleep(60)").expect("query")).expect("send");
        s
    };
    for (check_ms, cancelled) in [(1000u64, true), (0, false)] {
        let g = Gateway::start(&d, &format!("check-{check_ms}"), &format!("backend_check_interval_ms = {check_ms}\n"));
        let _client = start_sleep(&g);
        assert!(wait_for(Duration::from_secs(10), || running(&d) == 1), "the statement runs");
        let killed = Instant::now();
        // kill -9 (std's Child::kill is SIGKILL), by dropping the gateway.
        drop(g);
        let gone = wait_for(Duration::from_secs(4), || running(&d) == 0);
        eprintln!("check interval {check_ms} ms: statement gone = {gone} after {:?}", killed.elapsed());
        assert_eq!(gone, cancelled, "check interval {check_ms} ms: orphaned statement cancelled?");
        if !cancelled {
            d.admin("eu-1", "postgres", &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{}'", a.key));
        }
    }
}

#[test]
fn half_open_connections_are_capped_per_address_and_overall() {
    let d = Deployment::start();
    let a = d.create("halfopen", "pooled", "eu-1");
    let (_, ka) = gw::create_key(&d, &a.slug, false);
    for (name, settings, says) in [
        ("per-address", "max_startups = 100\nmax_startups_per_address = 3\n", "from this address"),
        ("global", "max_startups = 3\nmax_startups_per_address = 100\n", "still starting up"),
    ] {
        let (g, http) = Gateway::start_with_http(&d, name, settings);
        // Three silent connections (no startup packet) take every place.
        let silent: Vec<std::net::TcpStream> = (0..3).map(|_| gw::connect_raw(g.port)).collect();
        std::thread::sleep(Duration::from_millis(300));
        let mut fourth = gw::connect_raw(g.port);
        fourth.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let t = Instant::now();
        let mut bytes = Vec::new();
        let _ = fourth.read_to_end(&mut bytes);
        let errs = gw::errors_in(&bytes);
        assert!(
            errs.iter().any(|(_, code, m)| code == "53300" && m.contains(says)),
            "{name}: the fourth half-open connection is refused at once: {errs:?} after {:?}",
            t.elapsed()
        );
        assert!(t.elapsed() < Duration::from_secs(2), "{name}: refused at once");
        assert!(metric(http, "tenantgate_wire_startups_refused_total") >= 1.0, "{name}: counted");
        drop(silent);
        assert!(wait_for(Duration::from_secs(5), || login(&g, &a.slug, &ka).is_ok()), "{name}: places are given back");
        assert_eq!(metric(http, "tenantgate_wire_startups"), 0.0, "{name}: none left in startup");
    }
}

#[test]
fn fair_shares_cap_a_tenant_over_its_roles_and_keep_a_reserve_for_newcomers() {
    let d = Deployment::start();
    for slug in ["hog-1", "hog-2", "newcomer"] {
        d.create(slug, "pooled", "eu-1");
    }
    let (_, h1) = gw::create_key(&d, "hog-1", false);
    let (_, h1_ro) = gw::create_key(&d, "hog-1", true);
    let (_, h2) = gw::create_key(&d, "hog-2", false);
    let (_, n) = gw::create_key(&d, "newcomer", false);
    // 8 places; a tenant may hold 6 over both roles; the last 2 go to tenants holding none.
    let g = Gateway::start(&d, "fair", "server_budget = 8\npool_max_per_tenant = 6\nserver_reserve = 2\ncheckout_timeout_ms = 1500\n");
    let mut held: Vec<std::net::TcpStream> = (0..6).map(|_| gw::raw_login(g.port, "hog-1", &h1).0).collect();
    let m = refused_with(login(&g, "hog-1", &h1_ro), "53300", "hog-1's read-only role beyond the tenant's cap");
    assert!(m.contains("gateway.pool_max_per_tenant"), "{m}");
    // hog-2 holds nothing yet: it gets a place from the reserve, but no second one.
    held.push(gw::raw_login(g.port, "hog-2", &h2).0);
    let m = refused_with(login(&g, "hog-2", &h2), "53300", "hog-2's second connection from the reserve");
    assert!(m.contains("gateway.server_reserve"), "{m}");
    // A newcomer still connects at once.
    let t = Instant::now();
    let newcomer = gw::raw_login(g.port, "newcomer", &n);
    assert!(t.elapsed() < Duration::from_millis(500), "the newcomer waited {:?}", t.elapsed());
    drop(newcomer);
    drop(held);
}

#[test]
fn waiting_tenants_take_turns_fewest_connections_first() {
    let d = Deployment::start();
    for slug in ["busy-1", "busy-2", "late"] {
        d.create(slug, "pooled", "eu-1");
    }
    let (_, b1) = gw::create_key(&d, "busy-1", false);
    let (_, b2) = gw::create_key(&d, "busy-2", false);
    let (_, l) = gw::create_key(&d, "late", false);
    // 8 places, no reserve: only the order in which waiters are served decides who gets one.
    let g = Gateway::start(&d, "turns", "server_budget = 8\npool_max_per_tenant = 8\nserver_reserve = 0\ncheckout_timeout_ms = 20000\n");
    let mut busy1: Vec<std::net::TcpStream> = (0..5).map(|_| gw::raw_login(g.port, "busy-1", &b1).0).collect();
    let busy2: Vec<std::net::TcpStream> = (0..3).map(|_| gw::raw_login(g.port, "busy-2", &b2).0).collect();
    // The budget is full. Three clients queue, in this order: busy-1 (holds 5), busy-2
    // (holds 3), late (holds none). First come, first served would serve them in that order.
    let (tx, rx) = std::sync::mpsc::channel::<&'static str>();
    let port = g.port;
    let mut waiters = Vec::new();
    for (slug, key) in [("busy-1", b1.clone()), ("busy-2", b2.clone()), ("late", l.clone())] {
        let tx = tx.clone();
        waiters.push(std::thread::spawn(move || {
            let s = gw::raw_login(port, slug, &key).0;
            tx.send(slug).expect("send");
            s
        }));
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err(), "nobody is served while the budget is full");
    // busy-1 gives back one connection at a time; each place goes to the waiting tenant with
    // the fewest connections: late (0), then busy-2 (3), then busy-1 (its own idle backend).
    let mut order = Vec::new();
    for _ in 0..3 {
        drop(busy1.pop());
        order.push(rx.recv_timeout(Duration::from_secs(10)).expect("a waiter is served after a place frees"));
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "one place serves one waiter");
    }
    assert_eq!(order, ["late", "busy-2", "busy-1"], "waiters are served fewest connections first, not first come");
    let served: Vec<std::net::TcpStream> = waiters.into_iter().map(|w| w.join().expect("waiter")).collect();
    drop((served, busy1, busy2));
}

#[test]
fn idle_clients_are_ended_by_their_tenants_client_idle_timeout() {
    let d = Deployment::start();
    for slug in ["sleepy", "sleepy-txn", "awake"] {
        d.create(slug, "pooled", "eu-1");
    }
    let (_, s) = gw::create_key(&d, "sleepy", false);
    let (_, st) = gw::create_key(&d, "sleepy-txn", false);
    let (_, a) = gw::create_key(&d, "awake", false);
    let g = Gateway::start(
        &d,
        "idle",
        "[gateway.tenant_pool_mode]\nsleepy-txn = \"transaction\"\n\
         [gateway.tenant_limits.sleepy]\nclient_idle_timeout_ms = 1000\n\
         [gateway.tenant_limits.sleepy-txn]\nclient_idle_timeout_ms = 1000\n",
    );
    let ok = |s: &mut std::net::TcpStream, what: &str| {
        let m = gw::raw_query(s, "SELECT 1");
        assert!(m.last().is_some_and(|(t, _)| *t == b'Z') && !m.iter().any(|(t, _)| *t == b'E'), "{what}: {m:?}");
    };
    let mut idle_session = gw::raw_login(g.port, "sleepy", &s).0;
    ok(&mut idle_session, "sleepy");
    let mut idle_txn_mode = gw::raw_login(g.port, "sleepy-txn", &st).0;
    ok(&mut idle_txn_mode, "sleepy-txn");
    // Idle *in* a transaction is not the client idle timeout's business.
    let mut in_transaction = gw::raw_login(g.port, "sleepy", &s).0;
    assert!(!gw::raw_query(&mut in_transaction, "BEGIN").iter().any(|(t, _)| *t == b'E'));
    // A client that keeps talking is never idle.
    let mut chatty = gw::raw_login(g.port, "sleepy", &s).0;
    let mut other_tenant = gw::raw_login(g.port, "awake", &a).0;
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        ok(&mut chatty, "a client that keeps talking");
        std::thread::sleep(Duration::from_millis(300));
    }
    for (name, mut sock) in [("session mode", idle_session), ("transaction mode", idle_txn_mode)] {
        let (tag, body) = gw::read_msg(&mut sock).unwrap_or_else(|| panic!("{name}: the idle client got no message"));
        assert_eq!(tag, b'E', "{name}");
        let (sev, code, msg) = gw::error_fields(&body);
        assert_eq!((sev.as_str(), code.as_str()), ("FATAL", "57P05"), "{name}: {msg}");
        assert!(msg.contains("client_idle_timeout_ms"), "{name}: the message names the setting: {msg}");
        assert!(gw::read_msg(&mut sock).is_none(), "{name}: the connection is closed");
    }
    ok(&mut in_transaction, "idle in a transaction");
    assert!(!gw::raw_query(&mut in_transaction, "COMMIT").iter().any(|(t, _)| *t == b'E'));
    ok(&mut other_tenant, "a tenant without the timeout");
    // The tenant logs in again at once (its backend went back to the pool).
    let mut again = gw::raw_login(g.port, "sleepy", &s).0;
    ok(&mut again, "sleepy again");
}

#[test]
fn a_busy_tenant_cannot_take_a_light_tenants_last_backend() {
    let d = Deployment::start();
    for slug in ["heavy", "light", "second"] {
        d.create(slug, "pooled", "eu-1");
    }
    let (_, h) = gw::create_key(&d, "heavy", false);
    let (_, l) = gw::create_key(&d, "light", false);
    let (_, s) = gw::create_key(&d, "second", false);
    let g = Gateway::start(&d, "last", "server_budget = 8\npool_max_per_tenant = 8\nserver_reserve = 2\ncheckout_timeout_ms = 1500\n");
    // heavy takes every place but the reserve; light and second take one reserve place each.
    let mut held: Vec<std::net::TcpStream> = (0..6).map(|_| gw::raw_login(g.port, "heavy", &h).0).collect();
    let light = gw::raw_login(g.port, "light", &l).0;
    drop(light); // light's backend goes back to the pool, idle
    held.push(gw::raw_login(g.port, "second", &s).0);
    // The budget is full (7 in use + light's idle one). heavy may not close light's only
    // backend to grow: it waits and is refused.
    let m = refused_with(login(&g, "heavy", &h), "53300", "heavy beyond the budget");
    assert!(m.contains("gateway.server_budget"), "{m}");
    // light connects at once on its own idle backend, even while second (holding as many as
    // light, one) waits in the queue for a place it cannot have.
    let port = g.port;
    let queued = std::thread::spawn(move || gw::try_raw_login(port, "second", &s).map(|_| ()).map_err(|(_, code, _)| code));
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    assert!(login(&g, "light", &l).is_ok(), "light keeps its place");
    assert!(t.elapsed() < Duration::from_millis(500), "light waited {:?}", t.elapsed());
    assert_eq!(queued.join().expect("second's waiter"), Err("53300".to_string()), "second cannot take light's last backend either");
    drop(held);
}
