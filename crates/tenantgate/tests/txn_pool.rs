//! Transaction pooling (issue #19) end to end: `tenantgate serve` with tenants in
//! `pool_mode = "transaction"` and a pool of two backends per tenant role, real clusters and
//! more clients than backends: psql, pgbench (simple, extended, prepared), psycopg 3 with
//! server-side prepared statements, node-postgres named statements, asyncpg; asyncpg's and
//! psycopg's pools (their resets on release: `RESET ALL`, `DISCARD ALL`) with settings that
//! never reach another client; cancel; the session state transaction mode refuses; and
//! isolation with the gate on and off (no canary crosses, and every backend a client reaches
//! is logged in as its own tenant's role).

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
    driver_pools_reset_on_release(&on, &off, &tenants);
    step("driver pools", started);
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
        "SELECT set_config('application_name', 'x', false);",
        "LISTEN jobs;",
        "BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT 1; COMMIT;",
        "PREPARE p AS SELECT 1;",
        "DEALLOCATE p;",
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
    // Resets pass (asyncpg's pool reset, word for word, among them) and take the client back
    // to its own startup settings (psql's application_name), not the server's defaults.
    let (ok, out) = on.psql(
        &x.t.slug,
        &x.key,
        "RESET timezone;\nSELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;\nSHOW application_name;\n\
         SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;\nSHOW application_name;\nDISCARD ALL;\nSHOW application_name;",
    );
    let apps: Vec<&str> = out.lines().filter(|l| l.starts_with("psql")).collect();
    assert!(ok && apps == ["psql"; 3], "{out}");
    // asyncpg's reset as it sends it: one simple Query of four statements.
    let (ok, out) = on.psql_c(&x.t.slug, &x.key, "SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;");
    assert!(ok, "{out}");
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
    # Plain connections (the pools: driver_pools_reset_on_release).
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
/// connections over two backends.
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

const POOLS_SCRIPT: &str = r#"
import asyncio, json, sys
import asyncpg, psycopg, psycopg_pool
port, user, key = sys.argv[1], sys.argv[2], sys.argv[3]
kw = dict(host="127.0.0.1", port=int(port), user=user, password=key, database="x")
res = {"errors": []}
seen = []  # every application_name any pooled client saw, as a value or a ParameterStatus

async def setter():
    # A client outside the pools sets a session setting: refused with the gate on (0A000);
    # with the gate off it stays on the backend, which no other client may then get as is. It
    # has the asyncpg pool's startup settings, so only that reset stands between them.
    c = await asyncpg.connect(server_settings={"application_name": "pool-app"}, **kw)
    out = {}
    for sql in ["SET application_name = 'leak-app'", "SELECT set_config('application_name', 'leak-app', false)"]:
        try:
            await c.execute(sql)
            out[sql] = "ok"
        except asyncpg.PostgresError as e:
            out[sql] = e.sqlstate
        await c.execute("SELECT 1")
    res["setter"] = out
    # A new client with the same startup settings, welcomed (likely) on the setter's backend:
    # the parameters it is welcomed with are its own.
    c2 = await asyncpg.connect(server_settings={"application_name": "pool-app"}, **kw)
    seen.append(c2.get_settings().application_name)
    seen.append(await c2.fetchval("SHOW application_name"))
    await c2.close()
    return c

async def asyncpg_pool():
    pool = await asyncpg.create_pool(min_size=2, max_size=4, server_settings={"application_name": "pool-app"}, **kw)
    pids = set()
    async def task(i):
        async with pool.acquire() as c:
            pids.add(c.get_server_pid())
            seen.append(c.get_settings().application_name)
            assert await c.fetchval("SELECT $1::int + 1", i) == i + 1
            names = [r["name"] for r in await c.fetch("SELECT name FROM branches ORDER BY name")]
            seen.append(await c.fetchval("SHOW application_name"))
            async with c.transaction():
                await c.execute("SET LOCAL application_name = 'local-%d'" % i)
                inside = await c.fetchval("SHOW application_name")
            seen.append(await c.fetchval("SHOW application_name"))
            if i % 4 == 0:
                # Resets of its own, simple and extended protocol, one in a multi-statement string.
                await c.execute("RESET ALL")
                await c.fetch("RESET application_name")
                await c.execute("SELECT 1; RESET ALL; SELECT 2")
                seen.append(await c.fetchval("SHOW application_name"))
            seen.append(c.get_settings().application_name)
            return names, inside == "local-%d" % i
        # release: asyncpg's reset query (pg_advisory_unlock_all, CLOSE ALL, UNLISTEN *, RESET ALL)
    out = await asyncio.gather(*[task(i) for i in range(24)], return_exceptions=True)
    await pool.close()
    res["asyncpg_errors"] = [repr(o) for o in out if isinstance(o, BaseException)]
    ok = [o for o in out if not isinstance(o, BaseException)]
    res["asyncpg_tasks"] = len(ok)
    res["asyncpg_local_seen"] = all(o[1] for o in ok)
    res["asyncpg_connections"] = len(pids)
    return [n for o in ok for n in o[0]]

async def psycopg_pool_run():
    async def reset(conn):
        # A common reset: DISCARD ALL (psycopg forgets its prepared statements on seeing it).
        await conn.set_autocommit(True)
        await conn.execute("DISCARD ALL")
        await conn.set_autocommit(False)
    conninfo = f"host=127.0.0.1 port={port} user={user} password={key} dbname=x application_name=pg-pool"
    pool = psycopg_pool.AsyncConnectionPool(conninfo, min_size=2, max_size=4, open=False, reset=reset, kwargs={"prepare_threshold": 0})
    await pool.open(wait=True)
    async def task(i):
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT name FROM branches ORDER BY name", prepare=True)
            names = [r[0] for r in await cur.fetchall()]
            cur = await conn.execute("SELECT %s::int * 2", (i,), prepare=True)
            assert (await cur.fetchone())[0] == i * 2
            cur = await conn.execute("SHOW application_name")
            seen.append((await cur.fetchone())[0])
            ps = conn.info.parameter_status("application_name")
            seen.append(ps.decode() if isinstance(ps, bytes) else ps)
            return names
    out = await asyncio.gather(*[task(i) for i in range(20)], return_exceptions=True)
    await pool.close()
    res["psycopg_errors"] = [repr(o) for o in out if isinstance(o, BaseException)]
    ok = [o for o in out if not isinstance(o, BaseException)]
    res["psycopg_tasks"] = len(ok)
    return [n for o in ok for n in o]

async def main():
    c = await setter()
    # One pool after the other: the psycopg pool's other startup settings would reset the
    # setter's backend on their own.
    a = await asyncpg_pool()
    p = await psycopg_pool_run()
    await c.close()
    res["names"] = sorted(set(a + p))
    res["seen"] = sorted(set(seen))
    print(json.dumps(res))
asyncio.run(main())
"#;

/// asyncpg's pool (min 2, max 4; 24 tasks) and psycopg's (20 tasks, `DISCARD ALL` as its
/// reset, statements prepared server-side) at once through both gateways, two backends per
/// role: every release's reset runs, each pool's clients see their own startup
/// `application_name` after every reset and never another client's (a `SET LOCAL` of a
/// task's transaction, or a session `SET` of a client outside the pools, which the gate
/// refuses and which, with the gate off, the next client's `DISCARD ALL` clears); canaries.
fn driver_pools_reset_on_release(on: &Gateway, off: &Gateway, tenants: &[T]) {
    let py = common::python_with(&["asyncpg", "psycopg", "psycopg_pool"], &["asyncpg", "psycopg[binary]", "psycopg-pool"]);
    for (g, x, gate) in [(on, &tenants[0], true), (off, &tenants[1], false)] {
        let t0 = Instant::now();
        let out = Command::new(&py).args(["-c", POOLS_SCRIPT, &g.port.to_string(), &x.t.slug, &x.key]).output().expect("python");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "pools ({}): {text}\n{}", g.name, String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
        eprintln!("[txn_pool test] driver pools through {}: {:.1}s, {v}", g.name, t0.elapsed().as_secs_f64());
        assert_eq!(v["asyncpg_errors"], serde_json::json!([]), "{}: {v}", g.name);
        assert_eq!(v["psycopg_errors"], serde_json::json!([]), "{}: {v}", g.name);
        assert_eq!((v["asyncpg_tasks"].as_i64(), v["psycopg_tasks"].as_i64()), (Some(24), Some(20)), "{v}");
        assert_eq!(v["asyncpg_local_seen"], true, "SET LOCAL holds inside its transaction: {v}");
        let conns = v["asyncpg_connections"].as_i64().unwrap_or(0);
        assert!((1..=4).contains(&conns), "the pool kept its connections through every reset: {v}");
        // Each pool saw its own startup application_name, and nothing else, after resets too.
        assert_eq!(v["seen"], serde_json::json!(["pg-pool", "pool-app"]), "{}: a setting crossed clients: {v}", g.name);
        let setter = &v["setter"];
        let want = if gate { "0A000" } else { "ok" };
        assert!(setter.as_object().is_some_and(|o| o.values().all(|s| s == want)), "{}: {setter}", g.name);
        let names = v["names"].to_string();
        assert!(names.contains(&x.canary), "positive control: {v}");
        for o in tenants.iter().filter(|o| o.t.key != x.t.key) {
            assert!(!text.contains(&o.canary), "{}: {} read {}'s canary", g.name, x.t.slug, o.t.slug);
        }
    }
}
