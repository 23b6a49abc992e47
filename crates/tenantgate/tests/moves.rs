//! Online moves (`tenant move`), tested as operators and apps meet them: real clusters,
//! the real binary, writers through a real gateway while the tenant moves.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::gateway::{create_key, Gateway};
use common::{Deployment, Tenant};
use serde_json::Value;

/// A client writing one row per ~10 ms through the gateway, as an app would: on an error
/// it reconnects and retries the same row; a retry that finds its row already there
/// (23505) counts as acknowledged. Each row's key is derived from its marker, so a row is
/// either present once or missing.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u64>>>,
    errors: Arc<Mutex<Vec<(Instant, String)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn marker_uuid(prefix: u8, n: u64) -> String {
    format!("00000000-0000-4000-80{prefix:02x}-{n:012x}")
}

impl Writer {
    fn start(port: u16, slug: &str, key: &str, prefix: u8) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (s, a, e) = (stop.clone(), acked.clone(), errors.clone());
        let conninfo = format!("host=127.0.0.1 port={port} user={slug} password={key} dbname=app connect_timeout=30");
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            rt.block_on(async move {
                let mut client: Option<tokio_postgres::Client> = None;
                let mut n = 0u64;
                while !s.load(Ordering::Relaxed) {
                    if client.as_ref().map_or(true, |c| c.is_closed()) {
                        match tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await {
                            Ok((c, conn)) => {
                                tokio::spawn(conn);
                                client = Some(c);
                            }
                            Err(err) => {
                                let code = err.code().map(|c| c.code().to_string()).unwrap_or_else(|| format!("connect: {err}"));
                                e.lock().unwrap().push((Instant::now(), code));
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                        }
                    }
                    let c = client.as_ref().expect("client");
                    let sql = format!(
                        "INSERT INTO branches (branch_id, name, city, country) VALUES ('{}', 'w{prefix}-{n}', 'Writer', 'US')",
                        marker_uuid(prefix, n)
                    );
                    match c.batch_execute(&sql).await {
                        Ok(()) => {
                            a.lock().unwrap().push(n);
                            n += 1;
                        }
                        Err(err) if err.code().map(|c| c.code()) == Some("23505") => {
                            a.lock().unwrap().push(n);
                            n += 1;
                        }
                        Err(err) => {
                            let code = err.code().map(|c| c.code().to_string()).unwrap_or_else(|| format!("closed: {err}"));
                            e.lock().unwrap().push((Instant::now(), code));
                            client = None;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        });
        Writer { stop, acked, errors, thread: Some(thread) }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn finish(mut self) -> (Vec<u64>, Vec<(Instant, String)>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("writer thread");
        }
        let acked = self.acked.lock().unwrap().clone();
        let errors = self.errors.lock().unwrap().clone();
        (acked, errors)
    }
}

/// Wait until the writer has acknowledged `more` further rows (so it runs before and after).
fn let_it_write(w: &Writer, more: usize) {
    let until = w.acked() + more;
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.acked() < until {
        if Instant::now() > deadline {
            let errors = w.errors.lock().unwrap();
            let last: Vec<_> = errors.iter().rev().take(5).map(|(_, c)| c.clone()).collect();
            panic!("the writer stopped making progress; its last errors: {last:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run `tenant move` and return its JSON status, with the instants it ran between.
fn run_move(d: &Deployment, slug: &str, to: &str, server: &str) -> (Value, Instant, Instant) {
    let t0 = Instant::now();
    let v = d.json(&["tenant", "move", slug, "--to", to, "--server", server, "--json"]);
    (v, t0, Instant::now())
}

/// The writer's rows as they are now in the tenant's placement, read as the tenant's own role.
fn writer_rows(d: &Deployment, t: &Tenant, prefix: u8) -> Vec<u64> {
    let (ok, out) = d.psql_tenant(t, &format!("SELECT name FROM branches WHERE name LIKE 'w{prefix}-%' ORDER BY 1"));
    assert!(ok, "{out}");
    let mut v: Vec<u64> = out.lines().filter_map(|l| l.trim().strip_prefix(&format!("w{prefix}-")).and_then(|n| n.parse().ok())).collect();
    v.sort();
    v
}

fn checksum(d: &Deployment, t: &Tenant, table: &str) -> String {
    let (ok, out) = d.psql_tenant(t, &format!("SELECT count(*) || ':' || coalesce(sum(hashtext(x::text)), 0) FROM {table} x"));
    assert!(ok, "{out}");
    out.trim().to_string()
}

/// Every source object of a move is gone from both servers, and no move left a slot,
/// publication or subscription behind.
fn assert_no_leftovers(d: &Deployment) {
    for server in ["us-1", "eu-1"] {
        let slots = d.admin(server, "postgres", "SELECT count(*) FROM pg_replication_slots");
        let subs = d.admin(server, "postgres", "SELECT count(*) FROM pg_subscription");
        assert_eq!((slots.as_str(), subs.as_str()), ("0", "0"), "replication objects left on {server}");
        for db in ["tg_pool", "tg_bridge"] {
            let exists = d.admin(server, "postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"));
            if exists == "1" {
                let pubs = d.admin(server, db, "SELECT count(*) FROM pg_publication");
                assert_eq!(pubs, "0", "publication left in {server}/{db}");
            }
        }
    }
}

#[test]
fn a_tenant_moves_online_through_every_placement_while_it_and_a_neighbour_write() {
    let d = Deployment::start();
    d.ok(&["migrate"]);
    let mover = d.create("mover", "pooled", "us-1");
    let neighbour = d.create("neighbour", "pooled", "us-1");
    let mover_canary = d.plant_canary(&mover);
    let neighbour_canary = d.plant_canary(&neighbour);
    let (_, mover_key) = create_key(&d, "mover", false);
    let (_, neighbour_key) = create_key(&d, "neighbour", false);
    let gw = Gateway::start(&d, "moves", "");
    let before_menu = checksum(&d, &neighbour, "menu_items");

    let w = Writer::start(gw.port, "mover", &mover_key, 1);
    let nw = Writer::start(gw.port, "neighbour", &neighbour_key, 2);
    let_it_write(&w, 30);

    let mut windows = Vec::new();
    let mut fences = Vec::new();
    for (to, server) in [("database", "eu-1"), ("schema", "eu-1"), ("pooled", "us-1")] {
        let (v, t0, t1) = run_move(&d, "mover", to, server);
        assert_eq!(v["state"], "done", "{v}");
        let fence_ms = v["plan"]["fence_ms"].as_u64().expect("fence_ms");
        fences.push(fence_ms);
        // The fence lies within the command's run; allow a second either side for the
        // writer's own retry delays.
        windows.push((t0, t1 + Duration::from_secs(1)));
        let t = d.tenant("mover");
        eprintln!("moved to {to} on {server}: {}", v["plan"]["steps"]);
        assert_eq!((t.placement.as_str(), t.server.as_str()), (to, server), "{v}");
        for c in v["plan"]["checks"].as_array().expect("checks") {
            assert_eq!(c["source_checksum"], c["target_checksum"], "{c}");
        }
        let_it_write(&w, 30);
    }
    let_it_write(&nw, 10);
    let (acked, errors) = w.finish();
    let (n_acked, n_errors) = nw.finish();

    // Every acknowledged insert is present exactly once in the final placement.
    let t = d.tenant("mover");
    let present = writer_rows(&d, &t, 1);
    let mut dedup = present.clone();
    dedup.dedup();
    assert_eq!(present, dedup, "duplicate rows after the moves");
    let missing: Vec<_> = acked.iter().filter(|n| present.binary_search(n).is_err()).collect();
    assert!(missing.is_empty(), "acknowledged inserts lost: {missing:?}");
    assert!(present.len() >= acked.len());
    // Its seeded data and canary came along.
    let (ok, out) = d.psql_tenant(&t, &format!("SELECT count(*) FROM branches WHERE name = '{mover_canary}'"));
    assert!(ok && out.trim() == "1", "{out}");

    // The writer saw only the documented retryable errors, and only while a move ran.
    for (at, code) in &errors {
        assert!(
            ["57P01", "57P03"].contains(&code.as_str()) || code.starts_with("closed") || code.starts_with("connect"),
            "unexpected error during the move: {code}"
        );
        assert!(windows.iter().any(|(a, b)| at >= a && at <= b), "error {code} outside any move");
    }
    // The neighbour in the same pool never saw an error and lost nothing.
    assert!(n_errors.is_empty(), "the neighbour saw errors: {n_errors:?}");
    assert_eq!(writer_rows(&d, &neighbour, 2), n_acked);
    assert_eq!(checksum(&d, &neighbour, "menu_items"), before_menu);
    // Neither tenant can read the other's canary, and the old pool holds none of the
    // mover's rows but its new ones (it ended in the same pool).
    let (ok, out) = d.psql_tenant(&neighbour, &format!("SELECT count(*) FROM branches WHERE name = '{mover_canary}'"));
    assert!(ok && out.trim() == "0", "{out}");
    let (ok, out) = d.psql_tenant(&t, &format!("SELECT count(*) FROM branches WHERE name = '{neighbour_canary}'"));
    assert!(ok && out.trim() == "0", "{out}");
    // The eu server holds nothing of the tenant any more: no database, no schema, no roles.
    assert_eq!(d.tenant_role_count("eu-1"), 0);
    let dbs = d.admin("eu-1", "postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = '{}'", t.key));
    assert_eq!(dbs, "0");
    let schemas = d.admin("eu-1", "tg_bridge", &format!("SELECT count(*) FROM pg_namespace WHERE nspname IN ('{}', 'app')", t.key));
    assert_eq!(schemas, "0");
    assert_no_leftovers(&d);
    // The fence stays short (the goal is about a second; generous here for a loaded CI).
    for f in &fences {
        assert!(*f < 5_000, "fence of {f} ms");
    }
    eprintln!("fences (ms): {fences:?}; writer: {} rows, {} retryable errors", acked.len(), errors.len());
    // The audit log records each move with its steps.
    let audited = d.admin("us-1", "tenantgate", &format!("SELECT count(*) FROM tg.audit_events WHERE action = 'tenant.move' AND tenant_key = '{}'", t.key));
    assert_eq!(audited, "3");
}
