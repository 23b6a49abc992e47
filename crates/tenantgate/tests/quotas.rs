//! Per-tenant quotas and metrics end to end (issue #19): `tenantgate serve` as a child process
//! on real clusters, tenants over each limit through the wire door (psql, a raw client) and the
//! HTTP door, each beside a tenant without limits that must not notice; the admin API's
//! quota override, kept in the catalog: enforced by a second gateway on the same catalog and
//! by the first one after a restart, and cleared on both; `tenantgate top --once --json` and
//! `/metrics` with the heavy tenant first and a bounded number of tenant labels; a result cut
//! by `max_rows` cancels its statement on the server (session mode on a relay thread,
//! transaction mode on the session's task).
//!
//! One deployment, every step in one test to keep the wall time short.

mod common;

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use common::gateway::{create_key, psql_extra, raw_login, raw_query};
use common::Deployment;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "test-only-admin-token-quotas-0123456789";
/// Tenant labels /metrics may show besides `_other`.
const TOP: usize = 2;

struct Serve {
    child: Child,
    wire: u16,
    http: String,
    config: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(d: &Deployment, gateway: &str) -> Serve {
    start_as(d, "quotas", gateway)
}

/// A gateway with its own config file `<name>.toml` (same catalog, same `[gateway]`).
fn start_as(d: &Deployment, name: &str, gateway: &str) -> Serve {
    std::fs::write(d.dir.path().join("admin.token"), ADMIN_TOKEN).expect("admin token");
    let http_port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
    let base = std::fs::read_to_string(&d.config).expect("config");
    let config = d.dir.path().join(format!("{name}.toml"));
    let toml = format!(
        "{base}\n[http]\nlisten = \"127.0.0.1:{http_port}\"\nadmin_token_file = \"admin.token\"\n\n[http.metrics]\ntop_tenants = {TOP}\n\n[gateway]\n{gateway}\n"
    );
    std::fs::write(&config, toml).expect("write config");
    let (child, line) = common::gateway::spawn_serve(&config, "listening on ").expect("serve did not start");
    let wire = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("wire port");
    let http = format!("http://127.0.0.1:{http_port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ureq::get(&format!("{http}/healthz")).call().is_err() {
        assert!(Instant::now() < deadline, "the HTTP API did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    Serve { child, wire, http, config }
}

struct Resp {
    status: u16,
    body: Value,
}

fn call(method: &str, url: &str, bearer: &str, body: Option<&Value>) -> Resp {
    let req = ureq::request(method, url).set("Authorization", &format!("Bearer {bearer}")).timeout(Duration::from_secs(60));
    let res = match body {
        Some(b) => req.set("Content-Type", "application/json").send_string(&b.to_string()),
        None => req.call(),
    };
    let r = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = r.status();
    let text = r.into_string().unwrap_or_default();
    Resp { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
}

fn sql(s: &Serve, key: &str, q: &str) -> Resp {
    call("POST", &format!("{}/v1/sql", s.http), key, Some(&json!({"sql": q})))
}

/// psql -c with verbose errors (the SQLSTATE is printed).
fn psql(s: &Serve, slug: &str, key: &str, q: &str) -> (bool, String) {
    let conn = format!("host=127.0.0.1 port={} user={slug} dbname=app sslmode=disable", s.wire);
    psql_extra(&conn, key, &["-v", "VERBOSITY=verbose", "-c", q])
}

/// Whether `cond` holds within `within` (checked every 100 ms).
fn within(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a raw session's answer to `q` is refused by the quota naming `limit`.
fn refused_by(c: &mut std::net::TcpStream, q: &str, limit: &str) -> bool {
    raw_errors(&raw_query(c, q)).iter().any(|(code, msg)| code == "54000" && msg.contains(limit))
}

/// (code, message) of every ErrorResponse in a raw answer.
fn raw_errors(msgs: &[(u8, Vec<u8>)]) -> Vec<(String, String)> {
    msgs.iter().filter(|(t, _)| *t == b'E').map(|(_, b)| common::gateway::error_fields(b)).map(|(_, c, m)| (c, m)).collect()
}

#[test]
fn quotas_metrics_and_top() {
    let t0 = Instant::now();
    let d = Deployment::start();
    let slugs = ["heavy", "chatty", "bulky", "bulkytx", "slowpoke", "light", "idle1", "idle2"];
    let mut keys = std::collections::HashMap::new();
    for slug in slugs {
        d.create(slug, "pooled", "us-1");
        keys.insert(slug, create_key(&d, slug, false).1);
    }
    let key = |s: &str| keys[s].clone();
    let gateway = "quota_wait_ms = 300\n\
         [gateway.tenant_limits.heavy]\nmax_concurrent_statements = 2\n\
         [gateway.tenant_limits.chatty]\nstatements_per_second = 3\n\
         [gateway.tenant_limits.bulky]\nmax_rows = 5\n\
         [gateway.tenant_limits.bulkytx]\nmax_rows = 5\n\
         [gateway.tenant_limits.slowpoke]\nstatement_timeout_ms = 500\nwork_mem_kb = 1024\n\
         [gateway.tenant_pool_mode]\nbulkytx = \"transaction\"\n";
    let s = start(&d, gateway);
    // A second gateway on the same catalog, with the same config.
    let s2 = start_as(&d, "quotas2", gateway);

    // --- max_concurrent_statements: two long statements of `heavy` hold both places.
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let (wire, k) = (s.wire, key("heavy"));
            std::thread::spawn(move || {
                let conn = format!("host=127.0.0.1 port={wire} user=heavy dbname=app sslmode=disable");
                psql_extra(&conn, &k, &["-c", "SELECT pg_sleep(3)"])
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1200));
    let (ok, out) = psql(&s, "heavy", &key("heavy"), "SELECT 1");
    assert!(!ok, "a third statement of heavy must be refused: {out}");
    assert!(out.contains("53400") && out.contains("max_concurrent_statements = 2"), "the error names the limit: {out}");
    // The HTTP door shares the same places: it waits quota_wait_ms, then 429 + 53400.
    let r = sql(&s, &key("heavy"), "SELECT 1");
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.body["sqlstate"], "53400", "{}", r.body);
    assert_eq!(r.body["type"], "urn:tenantgate:problem:quota-max-concurrent-statements", "{}", r.body);
    // Another tenant is not affected, on either door.
    let (ok, out) = psql(&s, "light", &key("light"), "SELECT 41 + 1");
    assert!(ok && out.contains("42"), "{out}");
    assert_eq!(sql(&s, &key("light"), "SELECT 1 AS one").status, 200);
    for h in sleepers {
        let (ok, out) = h.join().expect("sleeper");
        assert!(ok, "the two statements within the quota ran: {out}");
    }
    // The places are free again.
    let (ok, out) = psql(&s, "heavy", &key("heavy"), "SELECT 1");
    assert!(ok, "{out}");

    // --- statements_per_second: 10 statements at once on one raw session, 3 per second allowed.
    let (mut c, _, _) = raw_login(s.wire, "chatty", &key("chatty"));
    let mut refused = 0;
    for _ in 0..10 {
        let errs = raw_errors(&raw_query(&mut c, "SELECT 1"));
        if let Some((code, msg)) = errs.first() {
            assert_eq!(code, "53400", "{msg}");
            assert!(msg.contains("statements_per_second = 3"), "{msg}");
            refused += 1;
        }
    }
    assert!((5..=7).contains(&refused), "3 of 10 fit in the burst (give or take the refill): {refused} refused");
    let light_errs = raw_errors(&raw_query(&mut raw_login(s.wire, "light", &key("light")).0, "SELECT 1"));
    assert!(light_errs.is_empty(), "{light_errs:?}");
    std::thread::sleep(Duration::from_millis(1100));
    assert!(raw_errors(&raw_query(&mut c, "SELECT 1")).is_empty(), "a token is back after a second");

    // --- max_rows: the wire door sends 54000 in place of the completion; the session goes on.
    let (mut b, _, _) = raw_login(s.wire, "bulky", &key("bulky"));
    let msgs = raw_query(&mut b, "SELECT generate_series(1, 10)");
    let errs = raw_errors(&msgs);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "54000");
    assert!(errs[0].1.contains("max_rows = 5"), "{}", errs[0].1);
    assert_eq!(msgs.iter().filter(|(t, _)| *t == b'D').count(), 5, "no row past the limit is sent");
    assert!(!msgs.iter().any(|(t, _)| *t == b'C'), "no completion for a cut result");
    let msgs = raw_query(&mut b, "SELECT generate_series(1, 5)");
    assert!(raw_errors(&msgs).is_empty());
    assert_eq!(msgs.iter().filter(|(t, _)| *t == b'D').count(), 5);
    // The cut statement is cancelled, not left running on the server.
    a_cut_cancels_its_statement(&d, &s, "bulky", &key("bulky"));
    a_cut_cancels_its_statement(&d, &s, "bulkytx", &key("bulkytx"));
    // HTTP cuts the result to the quota instead.
    let r = sql(&s, &key("bulky"), "SELECT generate_series(1, 10) AS n");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["truncated"], true);
    assert_eq!(r.body["rows"].as_array().map(Vec::len), Some(5));
    // Another tenant gets all its rows.
    let r = sql(&s, &key("light"), "SELECT generate_series(1, 10) AS n");
    assert_eq!((r.body["truncated"].clone(), r.body["rows"].as_array().map(Vec::len)), (json!(false), Some(10)));

    // --- the admin API: max_bytes for bulky, at once, on both doors, of this gateway and of
    // the second one (the override is in the catalog); cleared after the restart below.
    let admin = |m: &str, path: &str, body: Option<&Value>| call(m, &format!("{}/admin/v1/{path}", s.http), ADMIN_TOKEN, body);
    let admin2 = |m: &str, path: &str, body: Option<&Value>| call(m, &format!("{}/admin/v1/{path}", s2.http), ADMIN_TOKEN, body);
    // A session open on the second gateway before the change.
    let (mut b2, _, _) = raw_login(s2.wire, "bulky", &key("bulky"));
    assert!(refused_by(&mut b2, "SELECT generate_series(1, 10)", "max_rows = 5"), "the second gateway has the config's max_rows");
    let r = admin("PUT", "tenants/bulky/quotas", Some(&json!({"max_bytes": 100, "max_rows": 0})));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["source"], "override");
    assert_eq!(r.body["limits"]["max_bytes"], 100);
    let errs = raw_errors(&raw_query(&mut b, "SELECT repeat('x', 500)"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "54000");
    assert!(errs[0].1.contains("max_bytes = 100"), "{}", errs[0].1);
    assert!(raw_errors(&raw_query(&mut b, "SELECT generate_series(1, 6)")).is_empty(), "max_rows 0 = no limit now (6 rows, under 100 bytes)");
    // The second gateway: its open session (told by NOTIFY), a new session, and its admin API.
    assert!(
        within(Duration::from_secs(5), || refused_by(&mut b2, "SELECT repeat('x', 500)", "max_bytes = 100")),
        "the override set through the first gateway is enforced on a session of the second"
    );
    assert!(raw_errors(&raw_query(&mut b2, "SELECT generate_series(1, 6)")).is_empty(), "max_rows 0 on the second gateway too");
    let (mut n2, _, _) = raw_login(s2.wire, "bulky", &key("bulky"));
    assert!(refused_by(&mut n2, "SELECT repeat('x', 500)", "max_bytes = 100"), "a new session of the second gateway");
    let r = admin2("GET", "tenants/bulky/quotas", None);
    assert_eq!((r.body["source"].clone(), r.body["limits"]["max_bytes"].clone()), (json!("override"), json!(100)), "{}", r.body);
    let r = admin("PUT", "tenants/bulky/quotas", Some(&json!({"work_mem_kb": 1})));
    assert_eq!(r.status, 400, "work_mem below PostgreSQL's minimum is refused: {}", r.body);
    assert_eq!(admin("PUT", "tenants/nobody/quotas", Some(&json!({"max_rows": 1}))).status, 404);
    assert_eq!(call("GET", &format!("{}/admin/v1/usage", s.http), &key("bulky"), None).status, 401, "a tenant key is not an admin token");

    // --- statement_timeout and the work_mem ceiling (backend session settings).
    let (ok, out) = psql(&s, "slowpoke", &key("slowpoke"), "SELECT pg_sleep(2)");
    assert!(!ok && out.contains("57014"), "{out}");
    let (ok, out) = psql(&s, "slowpoke", &key("slowpoke"), "SHOW work_mem");
    assert!(ok && out.contains("1MB"), "{out}");
    let (ok, out) = psql(&s, "slowpoke", &key("slowpoke"), "SET work_mem = '1GB'");
    assert!(!ok && out.contains("42501"), "a tenant cannot raise its work_mem: {out}");
    let r = sql(&s, &key("slowpoke"), "SELECT pg_sleep(2)");
    assert_eq!(r.body["sqlstate"], "57014", "{}", r.body);
    let (ok, out) = psql(&s, "light", &key("light"), "SELECT pg_sleep(1)");
    assert!(ok, "another tenant keeps the default timeout: {out}");

    // A few more tenants run statements, so more tenants are active than /metrics has labels for.
    for slug in ["idle1", "idle2"] {
        assert_eq!(sql(&s, &key(slug), "SELECT 1").status, 200);
    }

    // --- top --once --json: the heavy tenant (6 s in the database) first, with its quota.
    let cfg = s.config.to_string_lossy().into_owned();
    let v: Value = {
        let out = d.ok(&["--config", &cfg, "top", "--once", "--json", "--url", &s.http]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("top --json ({e}): {out}"))
    };
    let tenants = v["tenants"].as_array().expect("tenants");
    assert_eq!(tenants[0]["tenant"], "heavy", "{v}");
    assert_eq!(tenants[0]["limits"]["max_concurrent_statements"], 2);
    assert!(tenants[0]["quota_refusals"]["max_concurrent_statements"].as_u64() >= Some(2), "{v}");
    assert!(tenants.len() >= slugs.len(), "every active tenant is listed: {v}");
    let chatty = tenants.iter().find(|t| t["tenant"] == "chatty").expect("chatty");
    assert_eq!(chatty["quota_refusals"]["statements_per_second"].as_u64(), Some(refused));
    let text = d.ok(&["--config", &cfg, "top", "--once", "--url", &s.http]);
    let first = text.lines().nth(1).unwrap_or("");
    assert!(first.starts_with("heavy "), "top's first row is the heavy tenant:\n{text}");

    // --- /metrics: heavy first, at most TOP tenant labels plus _other.
    let metrics = ureq::get(&format!("{}/metrics", s.http)).call().expect("metrics").into_string().expect("text");
    let db: Vec<&str> = metrics.lines().filter(|l| l.starts_with("tenantgate_tenant_db_seconds_total{")).collect();
    assert!(db.first().is_some_and(|l| l.contains("tenant=\"heavy\"")), "{db:?}");
    let labels: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("tenantgate_tenant_"))
        .filter_map(|l| l.split("tenant=\"").nth(1))
        .filter_map(|r| r.split('"').next())
        .collect();
    assert!(labels.len() <= TOP + 1, "bounded: {labels:?}");
    assert!(labels.contains("_other"), "the rest share _other: {labels:?}");

    http_backends_keep_their_settings(&d, &s, &key("idle1"));

    // --- restart the first gateway: the override is still enforced (it is in the catalog).
    drop(s);
    let s = start(&d, gateway);
    let admin = |m: &str, path: &str, body: Option<&Value>| call(m, &format!("{}/admin/v1/{path}", s.http), ADMIN_TOKEN, body);
    let (mut b, _, _) = raw_login(s.wire, "bulky", &key("bulky"));
    assert!(refused_by(&mut b, "SELECT repeat('x', 500)", "max_bytes = 100"), "the override survives a restart");
    let r = admin("GET", "tenants/bulky/quotas", None);
    assert_eq!(r.body["source"], "override", "{}", r.body);
    let usage = admin("GET", "usage", None);
    let bulky = usage.body["tenants"].as_array().and_then(|t| t.iter().find(|t| t["tenant"] == "bulky").cloned());
    assert_eq!(bulky.map(|t| t["limits"]["max_bytes"].clone()), Some(json!(100)), "usage shows the effective quota: {}", usage.body);
    // DELETE through it: back to the config's limits on both gateways.
    let r = admin("DELETE", "tenants/bulky/quotas", None);
    assert_eq!((r.body["source"].clone(), r.body["limits"]["max_rows"].clone()), (json!("config"), json!(5)), "{}", r.body);
    assert!(refused_by(&mut b, "SELECT generate_series(1, 10)", "max_rows = 5"), "the config's max_rows again");
    assert!(
        within(Duration::from_secs(5), || refused_by(&mut b2, "SELECT generate_series(1, 10)", "max_rows = 5")),
        "the override cleared through the first gateway is gone on the second"
    );
    assert!(raw_errors(&raw_query(&mut b2, "SELECT repeat('x', 500)")).is_empty(), "no max_bytes on the second gateway");
    assert_eq!(admin2("GET", "tenants/bulky/quotas", None).body["source"], "config");
    eprintln!("quotas test: {:.1} s", t0.elapsed().as_secs_f64());
}

/// The HTTP door's backends (issue #19): its session settings are applied once per backend and
/// there is no `DISCARD ALL` between its statements of one tenant role; the next wire client of
/// that role gets the same backend reset, and a tenant's own session setting made over HTTP
/// reaches neither door. `idle1` holds one backend (one HTTP statement so far).
fn http_backends_keep_their_settings(d: &Deployment, s: &Serve, k: &str) {
    let t = d.tenant("idle1");
    let one = |q: &str| {
        let r = sql(s, k, q);
        assert_eq!(r.status, 200, "{q}: {}", r.body);
        r.body["rows"][0].clone()
    };
    let wire = |q: &str| {
        let (ok, out) = psql(s, "idle1", k, q);
        assert!(ok, "{q}: {out}");
        out.trim().to_string()
    };
    let row = one("SELECT pg_backend_pid() AS pid, current_setting('extra_float_digits') AS efd");
    let pid = row[0].as_i64().unwrap_or_else(|| panic!("a pid: {row}"));
    assert_eq!(row[1], "3", "the HTTP door's settings are on the session: {row}");
    for _ in 0..3 {
        assert_eq!(one("SELECT pg_backend_pid() AS again")[0], pid, "one tenant role's statements in turn reuse its backend");
    }
    // What the backend ran last is the statement itself: no COMMIT and no DISCARD ALL after it.
    let last = d.admin(&t.server, &t.database, &format!("SELECT query FROM pg_stat_activity WHERE pid = {pid}"));
    assert!(last.contains("AS again") && !last.contains("DISCARD"), "the backend's last statement: {last:?}");
    // The next wire client of the role gets that backend, reset: none of the HTTP door's settings.
    let seen = wire("SELECT pg_backend_pid(), current_setting('extra_float_digits')");
    assert_eq!(seen, format!("{pid}|1"), "the wire client gets the same backend, reset");
    // A tenant's own session setting over HTTP is reset after its statement.
    let r = sql(s, k, "SELECT set_config('application_name', 'http-leak', false) AS a");
    assert_eq!(r.status, 200, "{}", r.body);
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(one("SELECT current_setting('application_name') AS a")[0], "http-leak", "the next HTTP statement");
    assert!(!wire("SELECT current_setting('application_name')").contains("http-leak"), "the next wire client");
}

/// A result cut by `max_rows` (5) cancels its statement: a `generate_series` that would stream
/// for about a minute is answered with 54000 naming the limit at the cut, is gone from the
/// server's `pg_stat_activity` (read as the superuser) within a second of that answer, and the
/// same session goes on: its next statement runs, and so does one after a cut inside a
/// transaction block (aborted by the error, as by any other).
fn a_cut_cancels_its_statement(d: &Deployment, s: &Serve, slug: &str, key: &str) {
    let t = d.tenant(slug);
    let running = || {
        d.admin(
            &t.server,
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%cut_me%' AND pid <> pg_backend_pid()",
        )
    };
    let (mut c, _, _) = raw_login(s.wire, slug, key);
    let q = "SELECT generate_series(1, 400000000) AS cut_me";
    let sent = Instant::now();
    let msgs = raw_query(&mut c, q);
    let answered = sent.elapsed();
    let errs = raw_errors(&msgs);
    assert_eq!(errs.len(), 1, "{slug}: {errs:?}");
    assert_eq!(errs[0].0, "54000", "{slug}: {errs:?}");
    assert!(errs[0].1.contains("max_rows = 5") && errs[0].1.contains("cancelled"), "{slug}: {}", errs[0].1);
    assert_eq!(msgs.iter().filter(|(t, _)| *t == b'D').count(), 5, "{slug}");
    let gone = Instant::now();
    assert!(within(Duration::from_secs(1), || running() == "0"), "{slug}: the cut statement still runs on the server");
    eprintln!(
        "quotas test: {slug}: cut answered {:.0} ms after the query, statement gone from pg_stat_activity {:.0} ms after that",
        answered.as_secs_f64() * 1e3,
        gone.elapsed().as_secs_f64() * 1e3
    );
    assert!(answered < Duration::from_secs(3), "{slug}: answered at the cut, not at the end of the series: {answered:?}");
    let msgs = raw_query(&mut c, "SELECT 41 + 1");
    assert!(raw_errors(&msgs).is_empty(), "{slug}: {:?}", raw_errors(&msgs));
    assert_eq!(msgs.iter().filter(|(t, _)| *t == b'D').count(), 1, "{slug}");
    // Inside a transaction block: the cut aborts it, ROLLBACK ends it, the session goes on.
    assert!(raw_errors(&raw_query(&mut c, "BEGIN")).is_empty());
    let msgs = raw_query(&mut c, q);
    assert_eq!(raw_errors(&msgs).first().map(|e| e.0.as_str()), Some("54000"), "{slug}");
    assert_eq!(msgs.last().map(|(_, b)| b.as_slice()), Some(&b"E"[..]), "{slug}: ReadyForQuery in a failed transaction");
    assert!(raw_errors(&raw_query(&mut c, "ROLLBACK")).is_empty(), "{slug}");
    assert!(within(Duration::from_secs(1), || running() == "0"), "{slug}: the second cut statement still runs");
    let msgs = raw_query(&mut c, "SELECT 41 + 1");
    assert!(raw_errors(&msgs).is_empty() && msgs.iter().any(|(t, _)| *t == b'D'), "{slug}: {msgs:?}");
}
