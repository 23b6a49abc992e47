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
    // Two gateways on one catalog, one with the gate off (the database alone isolates): the
    // mover writes through both, the neighbour through one.
    let gw = Gateway::start(&d, "moves", "");
    let gw2 = Gateway::start(&d, "moves-2", "gate = false");
    let before_menu = checksum(&d, &neighbour, "menu_items");

    let w = Writer::start(gw.port, "mover", &mover_key, 1);
    let w2 = Writer::start(gw2.port, "mover", &mover_key, 3);
    let nw = Writer::start(gw.port, "neighbour", &neighbour_key, 2);
    let_it_write(&w, 30);
    let_it_write(&w2, 30);

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
        // Both gateways route to the new placement after the flip.
        let_it_write(&w, 30);
        let_it_write(&w2, 30);
    }
    let_it_write(&nw, 10);
    let (acked2, errors2) = w2.finish();
    let (acked, mut errors) = w.finish();
    errors.extend(errors2);
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
    // A write that either gateway let reach the old placement after the fence would be
    // missing here: the source stops replicating at the fence and is dropped afterwards.
    let present2 = writer_rows(&d, &t, 3);
    let missing2: Vec<_> = acked2.iter().filter(|n| present2.binary_search(n).is_err()).collect();
    assert!(missing2.is_empty(), "acknowledged inserts through the second gateway lost: {missing2:?}");
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
    // The same through both gateways, gate on and gate off: the moved tenant reads its own
    // canary in its new placement and never the neighbour's.
    for g in [&gw, &gw2] {
        let (ok, out) = g.psql("mover", &mover_key, "SELECT name FROM branches WHERE name LIKE 'CANARY%';");
        assert!(ok && out.contains(&mover_canary) && !out.contains(&neighbour_canary), "gateway {}: {out}", g.name);
        let (ok, out) = g.psql("neighbour", &neighbour_key, "SELECT name FROM branches WHERE name LIKE 'CANARY%';");
        assert!(ok && out.contains(&neighbour_canary) && !out.contains(&mover_canary), "gateway {}: {out}", g.name);
    }
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

/// How many of the tenant's rows each table holds, read as the tenant itself where the
/// catalog routes it; and a check that its other possible home holds nothing of it.
fn rows_where_routed(d: &Deployment, slug: &str) -> (Tenant, String) {
    let t = d.tenant(slug);
    let (ok, out) = d.psql_tenant(
        &t,
        "SELECT (SELECT count(*) FROM branches) || '/' || (SELECT count(*) FROM menu_items) || '/' || (SELECT count(*) FROM orders)",
    );
    assert!(ok, "tenant {slug} is not reachable where the catalog routes it ({} on {}): {out}", t.placement, t.server);
    (t, out.trim().to_string())
}

/// The same counts read as the server's admin in the location the catalog routes the
/// tenant to (a fenced tenant cannot read its own rows, by design).
fn admin_rows_where_routed(d: &Deployment, slug: &str) -> String {
    let t = d.tenant(slug);
    let q = |table: &str| format!("(SELECT count(*) FROM {}.{table} WHERE tenant_id = '{}')", t.schema, t.key);
    d.admin(&t.server, &t.database, &format!("SELECT {} || '/' || {} || '/' || {}", q("branches"), q("menu_items"), q("orders")))
}

/// Add `n` orders to a pooled tenant on us-1 (as the admin: fast, no gateway).
fn add_orders(d: &Deployment, t: &Tenant, n: u32) {
    d.admin(
        "us-1",
        "tg_pool",
        &format!(
            "INSERT INTO app.orders (tenant_id, branch_id, customer_name) \
             SELECT '{k}', (SELECT branch_id FROM app.branches WHERE tenant_id = '{k}' LIMIT 1), 'guest ' || g FROM generate_series(1, {n}) g",
            k = t.key
        ),
    );
}

fn open_operations(d: &Deployment) -> String {
    d.admin("us-1", "tenantgate", "SELECT count(*) FROM tg.operations WHERE state IN ('running','failed')")
}

fn killed(out: &std::process::Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    out.status.signal() == Some(9)
}

#[test]
fn a_move_killed_after_any_step_resumes_or_aborts_to_one_whole_placement() {
    let d = Deployment::start();
    d.ok(&["migrate"]);
    let t = d.create("crashy", "pooled", "us-1");
    let canary = d.plant_canary(&t);
    let neighbour = d.create("bystander", "pooled", "us-1");
    d.plant_canary(&neighbour);
    let (_, expected) = rows_where_routed(&d, "crashy");
    let (_, neighbour_rows) = rows_where_routed(&d, "bystander");
    let steps = ["prepare", "copy", "catch-up", "fence", "final-catch-up", "verify", "flip", "unfence", "clean"];
    // Before the flip each step is killed twice: once recovered with --abort, once with
    // --resume. After the flip only --resume is possible.
    let runs: Vec<(usize, &str, bool)> = steps
        .iter()
        .enumerate()
        .flat_map(|(i, s)| if i < 6 { vec![(i, *s, true), (i, *s, false)] } else { vec![(i, *s, false)] })
        .collect();
    for (n, (i, step, abort)) in runs.into_iter().enumerate() {
        let now = d.tenant("crashy");
        // Same-server moves between pooled and database, and every other time schema.
        let to = match (now.placement.as_str(), n % 2) {
            ("pooled", 0) => "database",
            ("pooled", _) => "schema",
            _ => "pooled",
        };
        let fp = format!("kill:move:{step}");
        let out = d.tg_env(&["tenant", "move", "crashy", "--to", to, "--server", "us-1"], &[("TENANTGATE_FAILPOINT", fp.as_str())]);
        assert!(killed(&out), "the mover was not killed at {step}: {}", String::from_utf8_lossy(&out.stderr));
        // Whatever the step, the catalog routes it to one placement that has all its rows;
        // killed between the fence and the flip, its writes stay fenced.
        assert_eq!(admin_rows_where_routed(&d, "crashy"), expected, "after a kill at {step}");
        let shown = d.json(&["tenant", "show", "crashy", "--json"]);
        assert_eq!(shown["fenced"], (3..=6).contains(&i), "fence flag after a kill at {step}: {shown}");
        if !(3..=6).contains(&i) {
            assert_eq!(rows_where_routed(&d, "crashy").1, expected);
        }
        assert_eq!(shown["open_operation"]["kind"], "move", "{shown}");
        assert!(shown["next_step"].as_str().unwrap_or_default().contains("--resume"), "{shown}");
        let status = d.json(&["tenant", "move", "crashy", "--status", "--json"]);
        assert_eq!(status["state"], "running", "{status}");
        if n == 0 {
            // Nothing that would break an open move runs beside it.
            let err = d.fails(&["migrate"]);
            assert!(err.contains("a move is under way") && err.contains("Nothing was migrated"), "{err}");
            let err = d.fails(&["tenant", "erase", "crashy", "--confirm", "crashy"]);
            assert!(err.contains("a move is under way") && err.contains("Nothing was erased"), "{err}");
            let err = d.fails(&["tenant", "move", "crashy", "--to", "schema"]);
            assert!(err.contains("already under way") && err.contains("--resume"), "{err}");
        }

        let flipped = i >= 6;
        if abort {
            let v = d.json(&["tenant", "move", "crashy", "--abort", "--json"]);
            assert_eq!(v["state"], "rolled_back", "{v}");
            assert_eq!(d.tenant("crashy").placement, now.placement, "abort returns to the source");
        } else {
            if flipped {
                let err = d.fails(&["tenant", "move", "crashy", "--abort"]);
                assert!(err.contains("only goes forward") && err.contains("--resume"), "{err}");
            }
            let v = d.json(&["tenant", "move", "crashy", "--resume", "--json"]);
            assert_eq!(v["state"], "done", "{v}");
            assert_eq!(d.tenant("crashy").placement, to);
        }
        let (t, rows) = rows_where_routed(&d, "crashy");
        assert_eq!(rows, expected, "after recovering from a kill at {step}");
        let (ok, out) = d.psql_tenant(&t, &format!("SELECT count(*) FROM branches WHERE name = '{canary}'"));
        assert!(ok && out.trim() == "1", "{out}");
        assert_eq!(open_operations(&d), "0");
        assert_no_leftovers(&d);
        // Nothing of the tenant outside its one placement.
        let pooled = d.admin("us-1", "tg_pool", &format!("SELECT count(*) FROM app.branches WHERE tenant_id = '{}'", t.key));
        let bridge = d.admin("us-1", "postgres", "SELECT count(*) FROM pg_database WHERE datname = 'tg_bridge'");
        let schema = if bridge == "0" {
            "0".to_string()
        } else {
            d.admin("us-1", "tg_bridge", &format!("SELECT count(*) FROM pg_namespace WHERE nspname IN ('{}', 'app')", t.key))
        };
        let database = d.admin("us-1", "postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = '{}'", t.key));
        let expect = |p: &str| if t.placement == p { "1" } else { "0" };
        assert_eq!(schema, expect("schema"), "after {step}");
        assert_eq!(database, expect("database"), "after {step}");
        assert_eq!(pooled != "0", t.placement == "pooled", "after {step}: {pooled} pooled rows");
        assert_eq!(rows_where_routed(&d, "bystander").1, neighbour_rows, "the neighbour's rows changed at {step}");
    }
}

#[test]
fn a_target_server_stopped_during_the_copy_and_a_verify_mismatch_are_recovered() {
    let d = Deployment::start();
    d.ok(&["migrate"]);
    let t = d.create("wanderer", "pooled", "us-1");
    d.plant_canary(&t);

    // Enough rows that the initial copy takes a while.
    add_orders(&d, &t, 300_000);
    let (_, expected) = rows_where_routed(&d, "wanderer");
    // The target goes down while the subscription copies.
    let out = d.tg_env(&["tenant", "move", "wanderer", "--to", "database", "--server", "eu-1"], &[("TENANTGATE_FAILPOINT", "kill:move:prepare")]);
    assert!(killed(&out));
    let copying = d.admin("eu-1", &t.key, "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate NOT IN ('r', 's')");
    d.eu.stop().expect("stop eu-1");
    assert_ne!(copying, "0", "the copy had finished before the target stopped; the test needs more rows");
    let err = d.fails(&["tenant", "move", "wanderer", "--resume"]);
    assert!(err.contains("eu-1") && err.contains("--resume"), "{err}");
    assert!(!err.contains(d.eu.password()), "an error shows a password: {err}");
    assert_eq!(rows_where_routed(&d, "wanderer").1, expected, "the tenant keeps working on its source");
    d.eu.start().expect("start eu-1");
    let v = d.json(&["tenant", "move", "wanderer", "--resume", "--json"]);
    assert_eq!(v["state"], "done", "{v}");
    let (t, rows) = rows_where_routed(&d, "wanderer");
    assert_eq!((t.placement.as_str(), t.server.as_str(), rows.as_str()), ("database", "eu-1", expected.as_str()));
    assert_no_leftovers(&d);

    // A row that only the target has is caught by the checksums: the move rolls back
    // before the flip and names the table.
    let out = d.tg_env(&["tenant", "move", "wanderer", "--to", "schema", "--server", "eu-1"], &[("TENANTGATE_FAILPOINT", "kill:move:final-catch-up")]);
    assert!(killed(&out));
    d.admin("eu-1", "tg_bridge", &format!("INSERT INTO app.branches (tenant_id, name, city, country) VALUES ('{}', 'rogue', 'x', 'US')", t.key));
    let err = d.fails(&["tenant", "move", "wanderer", "--resume"]);
    assert!(err.contains("table branches differs") && err.contains("rolled back"), "{err}");
    let (t, rows) = rows_where_routed(&d, "wanderer");
    assert_eq!((t.placement.as_str(), rows.as_str()), ("database", expected.as_str()));
    assert_eq!(open_operations(&d), "0");
    assert_no_leftovers(&d);
    let staged = d.admin("eu-1", "tg_bridge", "SELECT count(*) FROM pg_namespace WHERE nspname = 'app'");
    assert_eq!(staged, "0", "the rolled-back target was not removed");
}

#[test]
fn a_move_outside_the_residency_is_refused_before_anything_is_created() {
    let d = Deployment::start();
    d.ok(&["migrate"]);
    d.ok(&["tenant", "create", "berlin", "--placement", "pooled", "--server", "eu-1", "--residency", "eu-central"]);
    let roles_before = d.tenant_role_count("us-1");
    let err = d.fails(&["tenant", "move", "berlin", "--to", "database", "--server", "us-1"]);
    assert!(err.contains("residency") && err.contains("eu-central") && err.contains("us-1") && err.contains("Nothing was created"), "{err}");
    assert_eq!(d.tenant_role_count("us-1"), roles_before);
    assert_eq!(d.admin("us-1", "tenantgate", "SELECT count(*) FROM tg.operations WHERE kind = 'move'"), "0");
    assert_no_leftovers(&d);
    let t = d.tenant("berlin");
    assert_eq!((t.placement.as_str(), t.server.as_str()), ("pooled", "eu-1"));
    // Other refusals say what to do, and also leave nothing.
    let err = d.fails(&["tenant", "move", "berlin", "--to", "pooled", "--server", "eu-1"]);
    assert!(err.contains("already there"), "{err}");
    let err = d.fails(&["tenant", "move", "berlin", "--to", "nowhere"]);
    assert!(err.contains("pooled, schema, database"), "{err}");
    let err = d.fails(&["tenant", "move", "berlin", "--resume"]);
    assert!(err.contains("no unfinished move"), "{err}");
    let err = d.fails(&["tenant", "move", "berlin", "--status"]);
    assert!(err.contains("never been moved"), "{err}");
    assert_no_leftovers(&d);
    // verify's configuration audit finds a move's slot that outlived its move.
    let v = d.json(&["verify", "--only", "audit", "--json"]);
    assert!(!v["audit"].as_array().expect("audit").iter().any(|f| f["check"] == "audit.orphan-replication"), "{v}");
    d.admin("us-1", "postgres", "SELECT pg_create_logical_replication_slot('tg_move_4242', 'pgoutput')");
    let out = d.tg(&["verify", "--only", "audit", "--json"]);
    assert!(!out.status.success(), "verify passed with an orphan slot");
    let v: Value = serde_json::from_slice(&out.stdout).expect("verify JSON");
    let found = v["audit"].as_array().expect("audit").iter().any(|f| {
        f["check"] == "audit.orphan-replication" && f["server"] == "us-1" && f["message"].as_str().unwrap_or_default().contains("tg_move_4242")
    });
    assert!(found, "{v}");
    d.admin("us-1", "postgres", "SELECT pg_drop_replication_slot('tg_move_4242')");
    // Within the residency it moves (eu-1 to a database on eu-1).
    let v = d.json(&["tenant", "move", "berlin", "--to", "database", "--json"]);
    assert_eq!(v["state"], "done", "{v}");
    assert_eq!(d.tenant("berlin").server, "eu-1");

    // The admin API: the same refusals, and a move that runs in the background with a
    // pollable status.
    let token = "move-admin-token-0123456789abcdef";
    std::fs::write(d.dir.path().join("admin.token"), token).expect("token");
    let base = std::fs::read_to_string(&d.config).expect("config");
    let config = d.dir.path().join("admin-moves.toml");
    std::fs::write(&config, format!("{base}\n[http]\nlisten = \"127.0.0.1:0\"\nadmin_token_file = \"admin.token\"\n")).expect("config");
    let (mut child, line) = common::gateway::spawn_serve(&config, "HTTP API listening on").expect("serve");
    let addr = line.split("listening on ").nth(1).and_then(|r| r.split_whitespace().next()).expect("address").to_string();
    let url = format!("http://{addr}/admin/v1/tenants/berlin/move");
    let post = |body: Value| match ureq::post(&url).set("Authorization", &format!("Bearer {token}")).send_json(body) {
        Ok(r) => (r.status(), r.into_json::<Value>().expect("json")),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json::<Value>().expect("problem json")),
        Err(e) => panic!("{e}"),
    };
    let (code, v) = post(serde_json::json!({"to": "schema", "server": "us-1"}));
    assert_eq!(code, 422, "{v}");
    assert!(v["detail"].as_str().unwrap_or_default().contains("residency"), "{v}");
    // Bad input: a clear 400 or 422, and no move is recorded.
    for (body, want) in [
        (serde_json::json!({"action": "bogus"}), 400),
        (serde_json::json!({}), 400),
        (serde_json::json!({"to": "nowhere"}), 400),
        (serde_json::json!({"to": "schema", "surprise": 1}), 400),
    ] {
        let (code, v) = post(body.clone());
        assert!(code == want || (want == 400 && code == 422), "{body}: {code} {v}");
        assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}: {v}");
    }
    assert_eq!(d.admin("us-1", "tenantgate", "SELECT count(*) FROM tg.operations WHERE kind = 'move' AND state = 'running'"), "0");
    let (code, v) = post(serde_json::json!({"to": "schema"}));
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["plan"]["to"]["placement"], "schema", "{v}");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        let r = ureq::get(&url).set("Authorization", &format!("Bearer {token}")).call().expect("status");
        let v: Value = r.into_json().expect("json");
        if v["state"] != "running" || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(d.tenant("berlin").placement, "schema");
    let (code, v) = post(serde_json::json!({"action": "abort"}));
    assert_eq!(code, 409, "{v}");
    let _ = child.kill();
    let _ = child.wait();
    assert_no_leftovers(&d);
}

#[test]
fn rebalance_evens_out_a_regions_pooled_servers_within_residency() {
    let d = Deployment::start();
    let us2 = tg_local::Cluster::start_temp(tg_local::ClusterOptions { name: "us-2".into(), ..Default::default() }).expect("start us-2");
    d.ok(&["server", "add", "us-2", "--url", &us2.url("postgres"), "--region", "us-east"]);
    d.ok(&["migrate"]);
    // Three pooled tenants on us-1 of different sizes, one pooled tenant in eu-central.
    let mut keys = Vec::new();
    for (slug, orders) in [("big", 3000), ("mid", 1500), ("small", 300)] {
        let t = d.create(slug, "pooled", "us-1");
        d.plant_canary(&t);
        add_orders(&d, &t, orders);
        keys.push(t);
    }
    d.ok(&["tenant", "create", "eu-pooled", "--placement", "pooled", "--server", "eu-1", "--residency", "eu-central"]);

    let plan = d.json(&["rebalance", "--plan", "--json"]);
    let moves = plan["moves"].as_array().expect("moves").clone();
    assert!(!moves.is_empty(), "{plan}");
    for m in &moves {
        assert_eq!((m["from_server"].as_str(), m["to_server"].as_str()), (Some("us-1"), Some("us-2")), "{plan}");
    }
    assert_eq!(moves[0]["slug"], "big", "the largest tenant that narrows the gap goes first: {plan}");
    let after: Vec<u64> = plan["servers"].as_array().expect("servers").iter().filter(|s| s["region"] == "us-east").map(|s| s["bytes_after"].as_u64().unwrap_or(0)).collect();
    let before: Vec<u64> = plan["servers"].as_array().expect("servers").iter().filter(|s| s["region"] == "us-east").map(|s| s["bytes_before"].as_u64().unwrap_or(0)).collect();
    let spread = |v: &[u64]| v.iter().max().unwrap_or(&0) - v.iter().min().unwrap_or(&0);
    assert!(spread(&after) < spread(&before), "{plan}");
    // Only this region when asked.
    let eu = d.json(&["rebalance", "--plan", "--region", "eu-central", "--json"]);
    assert_eq!(eu["moves"].as_array().map(Vec::len), Some(0), "{eu}");

    let applied = d.json(&["rebalance", "--apply", "--region", "us-east", "--json"]);
    assert_eq!(applied["moves"].as_array().map(Vec::len), Some(moves.len()), "{applied}");
    for m in &moves {
        let slug = m["slug"].as_str().expect("slug");
        let t = d.tenant(slug);
        assert_eq!((t.placement.as_str(), t.server.as_str()), ("pooled", "us-2"));
        let orig = keys.iter().find(|k| k.slug == slug).expect("tenant");
        let count = d.admin("us-1", "tg_pool", &format!("SELECT count(*) FROM app.orders WHERE tenant_id = '{}'", orig.key));
        assert_eq!(count, "0", "{slug}'s rows stayed on us-1");
    }
    assert_eq!(d.tenant("eu-pooled").server, "eu-1");
    // Balanced now: a second plan proposes nothing more.
    let again = d.json(&["rebalance", "--plan", "--region", "us-east", "--json"]);
    assert_eq!(again["moves"].as_array().map(Vec::len), Some(0), "{again}");
    drop(us2);
}
