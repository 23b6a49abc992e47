//! Transaction pooling (issue #19) end to end: `tenantgate serve` with tenants in
//! `pool_mode = "transaction"` and a pool of two backends per tenant role, real clusters and
//! more clients than backends: psql, pgbench (simple, extended, prepared), psycopg 3 with
//! server-side prepared statements, node-postgres named statements, asyncpg; cancel; the
//! session state transaction mode refuses; and isolation with the gate on and off (no canary
//! crosses, and every backend a client reaches is logged in as its own tenant's role).

mod common;

use std::process::Command;
use std::time::Instant;

use common::gateway::{self as gw, Gateway};
use common::{Deployment, Tenant};

struct T {
    t: Tenant,
    canary: String,
    key: String,
}

/// Both tenants in transaction mode, on one server (their backends share its budget).
const POOL: &str = "pool_mode = \"transaction\"\npool_max_per_tenant = 2\n";

fn step(name: &str, started: Instant) {
    eprintln!("[txn_pool test] {name} done at {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn transaction_pooling_end_to_end() {
    let started = Instant::now();
    let d = Deployment::start();
    d.ok(&["migrate"]);
    let tenants: Vec<T> = [("tx-a", "pooled"), ("tx-b", "pooled"), ("tx-db", "database")]
        .iter()
        .map(|(slug, placement)| {
            let t = d.create(slug, placement, "us-1");
            let canary = d.plant_canary(&t);
            let (_, key) = gw::create_key(&d, slug, false);
            T { t, canary, key }
        })
        .collect();
    // The gate-on gateway sets the mode per tenant (the default stays session), the gate-off
    // one for all.
    let on = Gateway::start(
        &d,
        "txn-on",
        "pool_max_per_tenant = 2\n[gateway.tenant_pool_mode]\ntx-a = \"transaction\"\ntx-b = \"transaction\"\ntx-db = \"transaction\"\n",
    );
    let off = Gateway::start(&d, "txn-off", &format!("gate = false\n{POOL}"));
    step("deployment and gateways", started);

    session_state_is_refused_with_the_way_out(&on, &tenants[0]);
    step("refusals", started);
    clients_only_ever_reach_their_own_role(&d, &on, &off, &tenants);
    step("isolation", started);
    node_pg_named_statements(&on, &off, &tenants);
    step("node", started);
    // From here on the backends counted are the gate-on gateway's only.
    drop(off);
    pgbench_many_clients_over_two_backends(&d, &on, &tenants[0]);
    step("pgbench", started);
    psycopg_prepared_statements_across_transactions(&on, &tenants);
    step("psycopg", started);
    asyncpg_prepared_statements(&on, &tenants[1]);
    step("asyncpg", started);
}

/// Statements whose effect outlives their transaction are refused (0A000, rule
/// transaction-mode) with the way out; their transaction-scoped forms run.
fn session_state_is_refused_with_the_way_out(on: &Gateway, x: &T) {
    for sql in [
        "SET timezone = 'UTC';",
        "RESET timezone;",
        "SELECT set_config('application_name', 'x', false);",
        "LISTEN jobs;",
        "BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT 1; COMMIT;",
        "PREPARE p AS SELECT 1;",
        "DEALLOCATE p;",
        "DISCARD ALL;",
    ] {
        let (ok, out) = on.psql(&x.t.slug, &x.key, &format!("\\set VERBOSITY verbose\n{sql}"));
        assert!(!ok, "{sql} must be refused in transaction mode: {out}");
        assert!(out.contains("0A000") && out.contains("rule transaction-mode") && out.contains("transaction pooling mode"), "{sql}: {out}");
        assert!(out.contains("session mode"), "the error names the way out: {out}");
    }
    let (ok, out) = on.psql(&x.t.slug, &x.key, "SET timezone = 'UTC';");
    assert!(!ok && out.contains("SET LOCAL"), "{out}");
    // Transaction-scoped forms run, and nothing of them is left for the next transaction.
    let (ok, out) = on.psql(
        &x.t.slug,
        &x.key,
        "BEGIN; SET LOCAL timezone = 'Asia/Tokyo'; SHOW timezone; DECLARE c CURSOR FOR SELECT name FROM branches ORDER BY name; FETCH 1 FROM c; COMMIT;\n\
         SHOW timezone;",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert!(ok && lines.first() == Some(&"Asia/Tokyo") && lines.last() != Some(&"Asia/Tokyo"), "{out}");
    // A session-mode tenant on the same gateway keeps session semantics.
}

const SESSION_USER_SCRIPT: &str = "SELECT 'role=' || session_user;\nSELECT name FROM branches ORDER BY name;\n\
     BEGIN; SELECT 'role=' || session_user; SELECT name FROM menu_items ORDER BY name; COMMIT;\nSELECT 'role=' || session_user;\n";

/// Six psql clients per tenant at once, over two backends per role, through both gateways:
/// every `session_user` a client sees is its own tenant's role, its own canary is there and
/// no other tenant's is.
fn clients_only_ever_reach_their_own_role(d: &Deployment, on: &Gateway, off: &Gateway, tenants: &[T]) {
    for (i, g) in [on, off].into_iter().enumerate() {
        std::thread::scope(|s| {
            let mut runs = Vec::new();
            for x in tenants {
                for _ in 0..6 {
                    runs.push((x, s.spawn(move || g.psql(&x.t.slug, &x.key, &SESSION_USER_SCRIPT.repeat(4)))));
                }
            }
            for (x, h) in runs {
                let (ok, out) = h.join().expect("psql thread");
                assert!(ok, "gateway {}: {}: {out}", g.name, x.t.slug);
                let roles: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("role=")).collect();
                assert_eq!(roles.len(), 12, "{out}");
                assert!(roles.iter().all(|r| *r == x.t.key), "gateway {}: {} reached a backend of another role: {roles:?}", g.name, x.t.slug);
                assert!(out.contains(&x.canary), "positive control: {out}");
                for o in tenants.iter().filter(|o| o.t.key != x.t.key) {
                    assert!(!out.contains(&o.canary), "gateway {}: {} read {}'s canary", g.name, x.t.slug, o.t.slug);
                }
            }
        });
        // Two backends per role and gateway (the first gateway's stay pooled), however many
        // clients there were.
        for x in tenants {
            let n: i64 = d
                .admin("us-1", "postgres", &format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{}'", x.t.key))
                .parse()
                .expect("count");
            assert!(n <= 2 * (i as i64 + 1), "gateway {}: {} has {n} backends", g.name, x.t.slug);
        }
    }
}

/// pgbench with eight clients over two backends, in each query mode, its named statements
/// (`-M prepared`) carried from backend to backend. One thread per client: pgbench 15
/// prepares each command on first use with a blocking PQprepare, so with fewer threads a
/// client waiting for a backend would stall the clients that hold both backends in open
/// transactions (the same holds under PgBouncer).
fn pgbench_many_clients_over_two_backends(d: &Deployment, on: &Gateway, x: &T) {
    gw::pgbench_example_app(on, &x.t.slug, &x.key, 9, 8, 8, 40);
    let n: i64 = d
        .admin("us-1", "postgres", &format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{}'", x.t.key))
        .parse()
        .expect("count");
    assert!(n <= 2, "eight pgbench clients must have shared two backends, found {n}");
}

const PSYCOPG_SCRIPT: &str = r#"
import json, sys, threading, time
import psycopg
port, user, key, canary = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
res = {"errors": [], "rows": [], "prepared_seen": 0}
def client(i):
    try:
        conn = psycopg.connect(host="127.0.0.1", port=port, user=user, password=key, dbname="x", autocommit=True, prepare_threshold=0)
        for n in range(10):
            with conn.cursor() as cur:
                # prepare=True: a server-side statement, reused by later transactions.
                cur.execute("SELECT name FROM branches WHERE country = %s ORDER BY name", ("XX",), prepare=True)
                res["rows"].append([r[0] for r in cur.fetchall()])
            with conn.transaction():
                with conn.cursor() as cur:
                    cur.execute("SELECT %s::int * 2", (n,), prepare=True)
                    assert cur.fetchone()[0] == n * 2
                    cur.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'tg_%%'")
                    res["prepared_seen"] = max(res["prepared_seen"], cur.fetchone()[0])
        conn.close()
    except Exception as e:
        res["errors"].append(repr(e))
threads = [threading.Thread(target=client, args=(i,)) for i in range(5)]
[t.start() for t in threads]
[t.join() for t in threads]
# A cancel reaches the backend running this client's query now.
conn = psycopg.connect(host="127.0.0.1", port=port, user=user, password=key, dbname="x", autocommit=True)
def cancel():
    time.sleep(0.7)
    conn.cancel()
threading.Thread(target=cancel).start()
t0 = time.time()
try:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_sleep(30)")
    res["cancelled"] = None
except psycopg.errors.QueryCanceled as e:
    res["cancelled"] = e.sqlstate
res["cancel_seconds"] = time.time() - t0
with conn.cursor() as cur:
    cur.execute("SELECT 42")
    res["after_cancel"] = cur.fetchone()[0]
res["own_canary"] = all(canary in r for r in res["rows"])
res["batches"] = len(res["rows"])
del res["rows"]
print(json.dumps(res))
"#;

/// psycopg 3 with `prepare=True`: five connections over two backends, each statement
/// prepared once per connection and executed in later transactions on whichever backend;
/// a cancel stops the query of the client that sent it.
fn psycopg_prepared_statements_across_transactions(on: &Gateway, tenants: &[T]) {
    let py = common::python_with(&["psycopg"], &["psycopg[binary]"]);
    let x = &tenants[0];
    let out = Command::new(&py).args(["-c", PSYCOPG_SCRIPT, &on.port.to_string(), &x.t.slug, &x.key, &x.canary]).output().expect("python");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "psycopg script failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(v["errors"], serde_json::json!([]), "{v}");
    assert_eq!(v["batches"], 50, "{v}");
    assert_eq!(v["own_canary"], true, "{v}");
    assert!(v["prepared_seen"].as_i64().unwrap_or(0) >= 1, "the statements run server-side prepared: {v}");
    assert_eq!(v["cancelled"], "57014", "{v}");
    assert!(v["cancel_seconds"].as_f64().unwrap_or(99.0) < 10.0, "{v}");
    assert_eq!(v["after_cancel"], 42, "{v}");
}

const NODE_SCRIPT: &str = r#"
const { Client } = require('pg');
(async () => {
  const [port, user, key, canary, others] = process.argv.slice(2);
  const res = { seen: [], sums: [], errors: [] };
  const one = async (i) => {
    const c = new Client({ host: '127.0.0.1', port: Number(port), user, password: key, database: 'x' });
    await c.connect();
    for (let n = 0; n < 5; n++) {
      const r = await c.query({ name: 'by-country', text: 'SELECT name FROM branches WHERE country = $1 ORDER BY name', values: ['XX'] });
      r.rows.forEach(x => res.seen.push(x.name));
      // The same text under another name, and another statement, in one transaction.
      await c.query('BEGIN');
      const s = await c.query({ name: 'add-' + i, text: 'SELECT $1::int + $2::int AS n', values: [n, i] });
      res.sums.push(s.rows[0].n === n + i);
      await c.query({ name: 'by-country-again', text: 'SELECT name FROM branches WHERE country = $1 ORDER BY name', values: ['XX'] });
      await c.query('COMMIT');
    }
    try { await c.query({ name: 'bad', text: 'SELECT * FROM no_such_table WHERE x = $1', values: [1] }); }
    catch (e) { res.errors.push(e.code); }
    const again = await c.query({ name: 'by-country', text: 'SELECT name FROM branches WHERE country = $1 ORDER BY name', values: ['XX'] });
    res.after_error = again.rows.length;
    await c.end();
  };
  await Promise.all([0, 1, 2, 3, 4, 5].map(one));
  res.own_canary = res.seen.includes(canary);
  res.leak = others.split(',').filter(o => res.seen.some(s => s.includes(o)));
  res.all_sums = res.sums.length === 30 && res.sums.every(x => x);
  delete res.seen; delete res.sums;
  console.log(JSON.stringify(res));
})().catch(e => { console.error(e); process.exit(1); });
"#;

/// node-postgres named statements: six clients over two backends, through both gateways.
fn node_pg_named_statements(on: &Gateway, off: &Gateway, tenants: &[T]) {
    let node_dir = common::repo_root().join("crates/tenantgate/tests/node");
    if !node_dir.join("node_modules/pg").exists() {
        let st = Command::new("npm").args(["install", "--no-audit", "--no-fund", "--silent"]).current_dir(&node_dir).status();
        assert!(st.map(|s| s.success()).unwrap_or(false), "npm install in {} failed", node_dir.display());
    }
    let script = node_dir.join("txn_pool_check.js");
    std::fs::write(&script, NODE_SCRIPT).expect("write node script");
    for (g, x) in [(on, &tenants[1]), (off, &tenants[2])] {
        let others: Vec<&str> = tenants.iter().filter(|o| o.t.key != x.t.key).map(|o| o.canary.as_str()).collect();
        let out = Command::new("node")
            .arg(&script)
            .args([&g.port.to_string(), &x.t.slug, &x.key, &x.canary, &others.join(",")])
            .current_dir(&node_dir)
            .output()
            .expect("node");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "node ({}): {text}\n{}", g.name, String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(v["own_canary"], true, "{v}");
        assert_eq!(v["leak"], serde_json::json!([]), "{v}");
        assert_eq!(v["all_sums"], true, "{v}");
        assert_eq!(v["errors"], serde_json::json!(vec!["42P01"; 6]), "{v}");
        assert_eq!(v["after_error"], 1, "a failed Parse leaves the other statements usable: {v}");
    }
    let _ = std::fs::remove_file(&script);
}

const ASYNCPG_SCRIPT: &str = r#"
import asyncio, json, sys
import asyncpg
port, user, key, canary = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
async def main():
    # Connections, not asyncpg's pool: its release runs RESET ALL, which transaction mode
    # refuses.
    async def one(i):
        c = await asyncpg.connect(host="127.0.0.1", port=int(port), user=user, password=key, database="x")
        out = []
        for n in range(5):
            out.append(await c.fetchval("SELECT $1::int + 1", i * 10 + n))
            rows = await c.fetch("SELECT name FROM branches WHERE country = $1", "XX")
            out.append(any(r["name"] == canary for r in rows))
        await c.close()
        return out
    res = await asyncio.gather(*[one(i) for i in range(8)])
    print(json.dumps(res))
asyncio.run(main())
"#;

/// asyncpg, which prepares every statement (named) and caches them per connection: eight
/// connections over two backends. (Its pool's release runs `RESET ALL`, refused in
/// transaction mode; the decision record says so.)
fn asyncpg_prepared_statements(on: &Gateway, x: &T) {
    let py = common::python_with(&["asyncpg"], &["asyncpg"]);
    let out = Command::new(&py).args(["-c", ASYNCPG_SCRIPT, &on.port.to_string(), &x.t.slug, &x.key, &x.canary]).output().expect("python");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "asyncpg: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    for (i, run) in v.as_array().expect("list").iter().enumerate() {
        let want: Vec<serde_json::Value> = (0..5).flat_map(|n| [serde_json::json!(i * 10 + n + 1), serde_json::json!(true)]).collect();
        assert_eq!(run, &serde_json::Value::Array(want), "{v}");
    }
}
