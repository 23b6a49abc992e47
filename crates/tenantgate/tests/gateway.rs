//! The wire-protocol gateway end to end (issue #3): `tenantgate serve` as a child process,
//! real clusters, real clients (psql, pgbench, psycopg 3, Node pg) and a raw wire client for
//! malformed input.
//!
//! One deployment (two servers, two regions) with a tenant per placement, plus a second
//! pooled tenant, is shared by every step to keep the file fast; each step says what it
//! proves. Gateways: `on` (gate on, strict catalog, a 1 s statement timeout for one tenant),
//! `off` (gate off: the database alone isolates), `lax` (gate on, strict catalog off, for
//! psql's `\d`), `tiny` (a budget of one connection per server) and `tls`.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::gateway::{self as gw, Gateway};
use common::{Deployment, Tenant};

struct T {
    t: Tenant,
    canary: String,
    key: String,
}

const TENANTS: [(&str, &str, &str); 5] = [
    ("gw-pool-a", "pooled", "us-1"),
    ("gw-pool-b", "pooled", "us-1"),
    ("gw-schema", "schema", "eu-1"),
    ("gw-db-us", "database", "us-1"),
    ("gw-db-eu", "database", "eu-1"),
];

fn step(name: &str, started: Instant) {
    eprintln!("[gateway test] {name} done at {:.1}s", started.elapsed().as_secs_f64());
}

#[test]
fn serve_refuses_a_bad_worker_thread_count() {
    // Checked before any config is read: one thread per CPU is 0, the cap is 1024.
    for (arg, says) in [("5000", "5000 is not in 0..=1024"), ("many", "invalid digit"), ("1.5", "invalid digit")] {
        let out = Command::new(env!("CARGO_BIN_EXE_tenantgate"))
            .args(["serve", "--worker-threads", arg])
            .env("TENANTGATE_CONFIG", "/nonexistent/tenantgate.toml")
            .output()
            .expect("run tenantgate");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("--worker-threads") && stderr.contains(says), "{arg}: {stderr}");
    }
}

#[test]
fn gateway_end_to_end() {
    let started = Instant::now();
    let d = Deployment::start();
    d.ok(&["migrate"]);
    let tenants: Vec<T> = TENANTS
        .iter()
        .map(|(slug, placement, server)| {
            let t = d.create(slug, placement, server);
            let canary = d.plant_canary(&t);
            let (_, key) = gw::create_key(&d, slug, false);
            T { t, canary, key }
        })
        .collect();
    step("deployment", started);

    let on = Gateway::start(&d, "on", "[gateway.tenant_limits.gw-db-eu]\nstatement_timeout_ms = 1000\n");
    // The gate-off gateway also runs on one thread (tokio's current-thread scheduler) and
    // forwards every session on its own task (`relay = false`), so both runtimes and both
    // forwarding loops `serve` can choose carry the psql, canary and read-only traffic; the
    // gate-on gateway forwards its plain-TCP sessions on the relay threads.
    let off = Gateway::start(&d, "off", "gate = false\nworker_threads = 1\nrelay = false");
    step("gateways", started);

    psql_reads_writes_copies_and_describes(&d, &on, &off, &tenants);
    step("psql", started);
    the_catalog_shows_each_tenant_only_itself(&d, &on, &off, &tenants);
    step("scoped catalog", started);
    canaries_never_cross_over_the_wire(&on, &off, &tenants);
    step("canaries", started);
    read_only_keys_cannot_write(&d, &on, &off, &tenants[2]);
    step("read-only", started);
    limits_cannot_be_lifted(&on, &tenants[4]);
    step("limits", started);
    gate_reads_sql_as_postgres_does(&d, &on, &off, &tenants);
    step("gate soundness", started);
    pgbench_runs_the_example_app(&on, &tenants[0]);
    step("pgbench", started);
    psycopg_prepared_statements_and_cancel(&on, &tenants);
    step("psycopg", started);
    asyncpg_connects_and_pools(&on, &off, &tenants);
    django_sets_its_time_zone_and_queries(&on, &off, &tenants);
    channels_work_with_a_database_of_ones_own(&on, &tenants);
    step("asyncpg", started);
    node_pg_extended_protocol(&on, &tenants);
    step("node", started);
    bad_input_gets_clean_errors(&d, &on, &tenants);
    step("bad input", started);
    revoked_keys_and_suspended_tenants(&d, &on, &tenants[3]);
    step("revocation", started);
    // The remaining steps start their own gateways; the backends of these close with them.
    drop(on);
    drop(off);
    budget_evicts_idle_and_times_out_waiters(&d, &tenants);
    step("budget", started);
    tls_when_configured(&d, &tenants[0]);
    step("tls", started);
    audit_records_connections_and_denials(&d, &tenants);
    step("audit", started);
    wire_events_are_counted_in_metrics(&d, &tenants);
    step("metrics", started);
}

/// psql through the gateway: own rows, writes, a multi-statement simple query, COPY both
/// ways, and `\d` where the catalog mode allows it.
fn psql_reads_writes_copies_and_describes(d: &Deployment, on: &Gateway, off: &Gateway, tenants: &[T]) {
    let lax = Gateway::start(d, "lax", "strict_catalog = false");
    for x in tenants {
        let (ok, out) = on.psql(&x.t.slug, &x.key, "SELECT name FROM branches ORDER BY name;");
        assert!(ok && out.contains(&x.canary), "{}: {out}", x.t.slug);
        let (ok, out) = on.psql(
            &x.t.slug,
            &x.key,
            "INSERT INTO branches (name, city, country) VALUES ('gw-written', 'Oslo', 'NO') RETURNING city;\n\
             SELECT count(*) FROM branches WHERE name = 'gw-written';",
        );
        assert!(ok && out.contains("Oslo") && out.contains('1'), "{}: {out}", x.t.slug);
        // One Query message with three statements: each is checked and runs.
        let (ok, out) = on.psql_c(&x.t.slug, &x.key, "SELECT 'first'; UPDATE branches SET city = 'Bergen' WHERE name = 'gw-written'; SELECT city FROM branches WHERE name = 'gw-written'");
        assert!(ok && out.contains("Bergen"), "{}: {out}", x.t.slug);
        // A multi-statement query with one denied statement runs none of it.
        let (ok, out) = on.psql_c(&x.t.slug, &x.key, "UPDATE branches SET city = 'Nope' WHERE name = 'gw-written'; SET ROLE postgres");
        assert!(!ok && out.contains("rule set-role"), "{out}");
        let (_, out) = on.psql(&x.t.slug, &x.key, "SELECT city FROM branches WHERE name = 'gw-written';");
        assert_eq!(out.trim(), "Bergen", "the denied batch must not have run");
        // COPY out; COPY in reaches PostgreSQL, which refuses it on RLS tables, cleanly.
        let (ok, out) = on.psql(
            &x.t.slug,
            &x.key,
            "\\set ON_ERROR_STOP 0\nCOPY branches (name, city, country) FROM STDIN;\n\
             INSERT INTO branches (name, city, country) VALUES ('gw-copied-2', 'Nice', 'FR');\n\
             COPY (SELECT name, city FROM branches WHERE name LIKE 'gw-copied%' ORDER BY name) TO STDOUT;\n\
             DELETE FROM branches WHERE name LIKE 'gw-%';",
        );
        assert!(ok && out.contains("COPY FROM not supported with row-level security") && out.contains("gw-copied-2\tNice"), "{}: {out}", x.t.slug);
        for other in tenants.iter().filter(|o| o.t.key != x.t.key) {
            assert!(!out.contains(&other.canary));
        }
    }
    let x = &tenants[0];
    // Session pooling: the next client of the same tenant gets the same backend, reset with
    // DISCARD ALL (no settings, prepared statements or open transaction carried over).
    let (ok, first) = on.psql(&x.t.slug, &x.key, "SELECT pg_backend_pid();\nSET TimeZone = 'Asia/Tokyo';\nPREPARE leftover AS SELECT 1;");
    assert!(ok, "{first}");
    let (_, second) = on.psql(
        &x.t.slug,
        &x.key,
        "\\set ON_ERROR_STOP 0\nSELECT pg_backend_pid();\nSHOW TimeZone;\nEXECUTE leftover;\nSELECT count(*) FROM pg_prepared_statements;",
    );
    let pid = first.lines().next().unwrap_or("?").trim();
    assert!(second.starts_with(pid), "the pooled backend is reused: {first} / {second}");
    assert!(!second.contains("Asia/Tokyo") && second.contains("prepared statement \"leftover\" does not exist"), "{second}");
    // A client that leaves in the middle of a transaction: its backend is closed (PostgreSQL
    // rolls back), never handed to the next client.
    let (ok, out) = on.psql_c(&x.t.slug, &x.key, "BEGIN; INSERT INTO branches (name, city, country) VALUES ('gw-abandoned', 'x', 'XX')");
    assert!(ok, "{out}");
    let (_, out) = on.psql(&x.t.slug, &x.key, "SELECT count(*) FROM branches WHERE name = 'gw-abandoned';");
    assert_eq!(out.trim(), "0", "an abandoned transaction must not commit or leak into the next session");
    // \d works in every catalog mode: strict (through the tenant-scoped catalog), lax, and with
    // the gate off. What each shows is checked in `the_catalog_shows_each_tenant_only_itself`.
    for g in [on, &lax, off] {
        let (ok, out) = g.psql(&x.t.slug, &x.key, "\\d branches\n\\dt\n");
        assert!(ok && out.contains("tenant_id") && out.contains("branch_id") && out.contains("menu_items"), "{}: {out}", g.name);
        for other in &tenants[1..] {
            assert!(!out.contains(&other.canary));
        }
    }
}

/// What a tenant reads of the catalog: psql's describe commands, the catalogs an ORM or an
/// agent reads, and OID enumeration over every OID the servers have handed out, through every
/// function that names an object by OID. No other tenant's name appears in it.
fn catalog_script(max_oid: i64) -> String {
    // In chunks of 500 OIDs, so each statement stays well under a tenant's 1 s timeout, even
    // on a loaded machine.
    let enumerations: String = (16384..=max_oid)
        .step_by(500)
        .map(|lo| {
            let hi = (lo + 499).min(max_oid);
            format!(
                r#"SELECT 'enumerated', g, g::regclass, g::regnamespace, g::regrole, g::regtype, g::regproc
  FROM generate_series({lo}, {hi}) g
 WHERE coalesce(g::regclass::text, g::regnamespace::text, g::regrole::text, g::regtype::text, g::regproc::text) IS NOT NULL;
SELECT 'printed', g, format_type(g, NULL), pg_get_userbyid(g), obj_description(g, 'pg_class'), pg_get_indexdef(g),
       pg_get_constraintdef(g), pg_get_viewdef(g), pg_get_functiondef(g), col_description(g, 1), pg_relation_size(g)
  FROM generate_series({lo}, {hi}) g
 WHERE coalesce(format_type(g, NULL), pg_get_userbyid(g)::text, obj_description(g, 'pg_class'), pg_get_indexdef(g),
                pg_get_constraintdef(g), pg_get_viewdef(g), pg_get_functiondef(g), col_description(g, 1)) IS NOT NULL;
"#
            )
        })
        .collect();
    format!(
        r#"\set ON_ERROR_STOP 0
\dt
\d branches
\d+ menu_items
\d+ orders
\l+
\du
\dn
\df
\di
\dv
SELECT 'roles', rolname, rolconfig FROM pg_roles;
SELECT 'users', usename FROM pg_catalog.pg_user;
SELECT 'schemas', nspname, nspacl FROM pg_catalog.pg_namespace;
SELECT 'databases', datname, datacl FROM pg_database;
SELECT 'sessions', usename, datname, application_name FROM pg_stat_activity;
SELECT 'members', member::regrole, roleid::regrole FROM pg_auth_members;
SELECT 'tables', schemaname, tablename, tableowner FROM pg_tables;
SELECT 'indexes', schemaname, indexname, indexdef FROM pg_indexes;
SELECT 'policies', schemaname, tablename, policyname, qual FROM pg_policies;
SELECT 'classes', relname, relnamespace::regnamespace, relacl FROM pg_class;
SELECT 'types', typname, typnamespace::regnamespace FROM pg_type WHERE typnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema');
SELECT 'descriptions', description FROM pg_description;
SELECT 'depends', pg_describe_object(classid, objid, objsubid) FROM pg_depend WHERE objid >= 16384;
{enumerations}SELECT 'sizes', pg_database_size(current_database()) > 0, pg_table_size('branches') > 0;
SELECT 'lookups', to_regclass('branches'), to_regnamespace('pg_catalog'), to_regrole(current_user);
"#
    )
}

/// Ways to name objects by OID that bypass a cast (the reg* types' I/O functions, and the
/// types called as functions): each is refused. Without the rule, each lists other tenants'
/// schemas (their keys).
fn enumeration_attacks(max_oid: i64) -> String {
    let mut script = String::from("\\set ON_ERROR_STOP 0\n\\set VERBOSITY verbose\n");
    for f in ["regclassout", "regnamespaceout", "regroleout", "regtypeout", "regprocout", "regclass"] {
        script.push_str(&format!("SELECT string_agg({f}(g::oid)::text, ',') FROM generate_series(16384, {max_oid}) g;\n"));
    }
    script.push_str(&format!("SELECT string_agg(regclassin(g::text::cstring)::oid::text, ',') FROM generate_series(16384, {max_oid}) g;\n"));
    script
}

/// The tenant-scoped catalog (strict mode, the default): every tenant, in every placement,
/// reads its own tables, columns, comments, roles, database and sessions, and no other
/// tenant's key, schema or database. With the gate off, the stock catalog names other
/// tenants (a documented limit) but no other tenant's rows.
fn the_catalog_shows_each_tenant_only_itself(d: &Deployment, on: &Gateway, off: &Gateway, tenants: &[T]) {
    let max_oid = ["us-1", "eu-1"]
        .iter()
        .map(|server| {
            d.admin(server, "postgres", "CHECKPOINT");
            d.admin(server, "postgres", "SELECT next_oid FROM pg_control_checkpoint()").parse::<i64>().expect("next_oid")
        })
        .max()
        .unwrap_or(0)
        + 100;
    // A deployment that predates the scoped catalog (or holds an older version of it):
    // strict-mode catalog reads fail until `tenantgate init` installs it.
    let db = tenants.iter().find(|x| x.t.placement == "database").expect("a database tenant");
    d.admin(&db.t.server, &db.t.database, "DROP SCHEMA tg_catalog CASCADE");
    let (ok, out) = on.psql(&db.t.slug, &db.key, "SELECT count(*) FROM pg_class;");
    assert!(!ok && out.contains("tg_catalog"), "{out}");
    let init = d.ok(&["init"]);
    assert!(init.contains("installed or upgraded in 1 of"), "{init}");
    assert!(!d.ok(&["init"]).contains("installed or upgraded"), "a second init has nothing to do");
    let (ok, out) = on.psql(&db.t.slug, &db.key, "SELECT count(*) > 0 FROM pg_class;");
    assert!(ok && out.trim() == "t", "{out}");
    let script = catalog_script(max_oid);
    for x in tenants {
        let (ok, out) = on.psql(&x.t.slug, &x.key, &script);
        assert!(ok, "{}: {out}", x.t.slug);
        assert!(!out.contains("ERROR"), "{}: every catalog read answers:\n{out}", x.t.slug);
        // Positive controls: its own tables, columns, comments, roles and database.
        for own in ["branches", "menu_items", "tenant_id", x.t.key.as_str(), x.t.database.as_str(), "pg_catalog", "enumerated", "Tip left by the customer"] {
            assert!(out.contains(own), "{}: expected {own:?} in its catalog:\n{out}", x.t.slug);
        }
        // \l+ prints the database's size and tablespace; \d+ the column comments.
        assert!(out.contains(" kB|pg_default|") && out.contains("Tenant key; filled automatically"), "{}: \\l+ and \\d+ print:\n{out}", x.t.slug);
        for o in tenants.iter().filter(|o| o.t.key != x.t.key) {
            let mut secret = vec![o.t.key.as_str(), o.canary.as_str()];
            for name in [&o.t.schema, &o.t.database] {
                if name.contains(&o.t.key) {
                    secret.push(name);
                }
            }
            for s in secret {
                assert!(!out.contains(s), "{} read {}'s {s:?} in the catalog:\n{out}", x.t.slug, o.t.slug);
            }
        }
        // OID enumeration through the reg* types' own I/O functions: refused.
        let (_, out) = on.psql(&x.t.slug, &x.key, &enumeration_attacks(max_oid));
        assert!(out.matches("rule catalog-enumeration").count() >= 7, "{}: the reg* I/O functions are refused:\n{out}", x.t.slug);
        for o in tenants.iter().filter(|o| o.t.key != x.t.key) {
            assert!(!out.contains(&o.t.key), "{} enumerated {}'s key:\n{out}", x.t.slug, o.t.slug);
        }
        // Gate off: the stock catalog; rows stay the database's to protect.
        let (_, out) = off.psql(&x.t.slug, &x.key, &script);
        for o in tenants.iter().filter(|o| o.t.key != x.t.key) {
            assert!(!out.contains(&o.canary), "gate off: {} read {}'s canary:\n{out}", x.t.slug, o.t.slug);
        }
    }
}

fn attack_script(victim: &T) -> String {
    let v = &victim.t.key;
    format!(
        r#"\set ON_ERROR_STOP 0
\set VERBOSITY verbose
SELECT name FROM branches;
SELECT * FROM branches WHERE tenant_id = '{v}';
SET app.tenant_id = '{v}';
SELECT set_config('app.tenant_id', '{v}', false);
SET ROLE "{v}";
SET SESSION AUTHORIZATION "{v}";
SELECT * FROM "{v}".branches;
SELECT * FROM app.branches;
SELECT * FROM branches WHERE 1 / (CASE WHEN name LIKE 'CANARY%' THEN 0 ELSE 1 END) = 1;
SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'branches';
SELECT datname FROM pg_database;
SELECT rolname FROM pg_roles;
SELECT nspname FROM pg_namespace;
SELECT usename, query FROM pg_stat_activity;
SELECT rolname, rolpassword FROM pg_authid;
COPY (SELECT * FROM menu_items) TO STDOUT;
COPY "{v}".branches TO STDOUT;
UPDATE branches SET name = 'pwned' WHERE tenant_id = '{v}';
INSERT INTO branches (tenant_id, name, city, country) VALUES ('{v}', 'pwned', 'x', 'XX');
TRUNCATE branches;
CREATE TABLE steal AS SELECT * FROM branches;
SELECT pg_read_file('PG_VERSION');
SELECT lo_import('/etc/passwd');
COPY branches FROM PROGRAM 'true';
DO $$ BEGIN PERFORM 1; END $$;
SELECT name FROM branches;
"#
    )
}

/// Every tenant attacks every other one through the gateway, gate on and gate off: no
/// other tenant's canary appears in anything the client reads. With the gate on, refusals
/// are 42501 naming the rule.
fn canaries_never_cross_over_the_wire(on: &Gateway, off: &Gateway, tenants: &[T]) {
    for g in [on, off] {
        for a in tenants {
            for v in tenants.iter().filter(|v| v.t.key != a.t.key) {
                let (_, out) = g.psql(&a.t.slug, &a.key, &attack_script(v));
                assert!(!out.contains(&v.canary), "gateway {}: {} read {}'s canary:\n{out}", g.name, a.t.slug, v.t.slug);
                assert!(out.contains(&a.canary), "positive control ({}): {} must see its own canary:\n{out}", g.name, a.t.slug);
                assert!(!out.contains("pwned"), "{out}");
                if g.name == "on" {
                    for rule in ["set-role", "ddl", "catalog", "copy-program"] {
                        assert!(out.contains("42501") && out.contains(&format!("rule {rule}")), "gate on: expected rule {rule}:\n{out}");
                    }
                } else {
                    assert!(out.contains("permission denied") || out.contains("row-level security"), "{out}");
                }
            }
        }
    }
}

/// A read-only key: refused by the gate (rule read-only), and with the gate off by the
/// database, since it logs in as the tenant's read-only role.
fn read_only_keys_cannot_write(d: &Deployment, on: &Gateway, off: &Gateway, x: &T) {
    let (_, ro) = gw::create_key(d, &x.t.slug, true);
    let (ok, out) = on.psql(&x.t.slug, &ro, "SELECT name FROM branches;");
    assert!(ok && out.contains(&x.canary), "{out}");
    for sql in ["INSERT INTO branches (name, city, country) VALUES ('ro', 'x', 'XX');", "DELETE FROM menu_items;", "UPDATE branches SET city = 'x';"] {
        let (ok, out) = on.psql(&x.t.slug, &ro, &format!("\\set VERBOSITY verbose\n{sql}"));
        assert!(!ok && out.contains("42501") && out.contains("rule read-only"), "{sql}: {out}");
        let (ok, out) = off.psql(&x.t.slug, &ro, sql);
        assert!(!ok && out.contains("permission denied"), "{sql}: {out}");
    }
    let (_, out) = on.psql(&x.t.slug, &x.key, "SELECT count(*) FROM branches WHERE name = 'ro'; SELECT count(*) > 0 FROM menu_items;");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "t"], "{out}");
}

/// The tenant's statement_timeout holds: it is the session default, RESET ALL and DISCARD
/// ALL return to it, and the gate refuses raising it.
fn limits_cannot_be_lifted(on: &Gateway, x: &T) {
    let (ok, out) = on.psql(&x.t.slug, &x.key, "\\set VERBOSITY verbose\nSELECT pg_sleep(3);");
    assert!(!ok && out.contains("57014"), "statement_timeout must cancel: {out}");
    let (ok, out) = on.psql(&x.t.slug, &x.key, "SET statement_timeout = 500; RESET ALL; SHOW statement_timeout; DISCARD ALL; SHOW statement_timeout;");
    assert!(ok && out.lines().filter(|l| l.trim() == "1s").count() == 2, "{out}");
    let (ok, out) = on.psql(&x.t.slug, &x.key, "\\set VERBOSITY verbose\nSET statement_timeout = 0;");
    assert!(!ok && out.contains("42501"), "{out}");
    let (ok, out) = on.psql(&x.t.slug, &x.key, "\\set VERBOSITY verbose\nSET statement_timeout = '1h';");
    assert!(!ok && out.contains("42501"), "{out}");
    // At connect time the same cap holds (issue #17, bug 5): libpq's options=-c and a
    // startup parameter (node-postgres' statement_timeout option) are gated like a SET.
    let conn = on.conninfo(&x.t.slug);
    let (ok, out) = gw::psql_extra(&format!("{conn} options='-c statement_timeout=500'"), &x.key, &["-c", "SHOW statement_timeout"]);
    assert!(ok && out.trim() == "500ms", "{out}");
    for bad in ["0", "5s", "2h"] {
        let (ok, out) = gw::psql_extra(&format!("{conn} options='-c statement_timeout={bad}'"), &x.key, &["-c", "SHOW statement_timeout"]);
        assert!(!ok && out.contains("rule timeout-cap") && out.contains("1000 ms"), "{bad}: {out}");
    }
    match gw::try_raw_login_with(on.port, &[("user", &x.t.slug), ("statement_timeout", "700")], &x.key) {
        Ok((mut s, _, _)) => {
            let text: String = gw::raw_query(&mut s, "SHOW statement_timeout").iter().map(|(_, b)| String::from_utf8_lossy(b).into_owned()).collect();
            assert!(text.contains("700ms"), "{text}");
        }
        Err(e) => panic!("a statement_timeout under the cap at startup must pass: {e:?}"),
    }
    match gw::try_raw_login_with(on.port, &[("user", &x.t.slug), ("statement_timeout", "0")], &x.key) {
        Err((sev, code, msg)) => assert!(sev == "FATAL" && code == "42501" && msg.contains("rule timeout-cap"), "{sev} {code} {msg}"),
        Ok(_) => panic!("statement_timeout = 0 at startup must be refused under a cap"),
    }
}

/// Text of every row and error of a raw session's answer, for canary checks.
fn answer_text(msgs: &[(u8, Vec<u8>)]) -> String {
    msgs.iter().map(|(_, body)| String::from_utf8_lossy(body).into_owned()).collect::<Vec<_>>().join("\n")
}

/// The (code, message) of the first ErrorResponse of an answer, if any.
fn first_error(msgs: &[(u8, Vec<u8>)]) -> Option<(String, String)> {
    msgs.iter().find(|(tag, _)| *tag == b'E').map(|(_, body)| {
        let (_, code, message) = gw::error_fields(body);
        (code, message)
    })
}

/// Issue #14: the three ways the red team got past the gate, over the wire, byte for byte
/// (a raw client: psql would re-lex the text itself). Each denied statement, hidden behind a
/// shape seeded by another tenant and by the same tenant, a string mode or an encoding, gets
/// 42501 naming the rule; no other tenant's canary or key appears. Then the lock-table
/// outage: with the gate on the script is refused and a neighbour connects and queries
/// throughout; with the gate off the same session really takes the locks (so the check can
/// fail). Then every spelling of the pinned settings: allowed only at the pinned value, and
/// the server's own `SHOW` agrees after every allowed one.
fn gate_reads_sql_as_postgres_does(d: &Deployment, on: &Gateway, off: &Gateway, tenants: &[T]) {
    let (a, b) = (&tenants[0], &tenants[1]);
    let others: Vec<&T> = tenants.iter().filter(|t| t.t.key != a.t.key).collect();
    let clean = |msgs: &[(u8, Vec<u8>)], what: &str| {
        let text = answer_text(msgs);
        for o in &others {
            assert!(!text.contains(&o.canary) && !text.contains(&o.t.key), "{what}: {}'s canary or key leaked:\n{text}", o.t.slug);
        }
    };
    let denied = |msgs: &[(u8, Vec<u8>)], rule: &str, what: &str| {
        let (code, message) = first_error(msgs).unwrap_or_else(|| panic!("{what}: expected a denial, got {:?}", answer_text(msgs)));
        assert!(code == "42501" && message.contains(&format!("rule {rule}")), "{what}: {code} {message}");
    };

    // 1. The shape cache: `--` ends at \r for PostgreSQL. Seeded by another tenant, then by
    // the attacker itself.
    // (Each seed is a new text: a text already cached exactly answers from that entry and
    // seeds no shape.)
    let (mut sb, _, _) = gw::raw_login(on.port, &b.t.slug, &b.key);
    assert!(first_error(&gw::raw_query(&mut sb, "SELECT 1, --\r'\n', 2 --'")).is_none(), "the seed is allowed");
    let (mut sa, _, _) = gw::raw_login(on.port, &a.t.slug, &a.key);
    assert!(first_error(&gw::raw_query(&mut sa, "SELECT 1, --\r'\n', 3 --'")).is_none());
    for (attack, rule) in [
        ("SELECT 1, --\r'\n', pg_advisory_lock(2) --'", "advisory-lock"),
        ("SELECT 1, --\r'\n', (SELECT string_agg(rolname, ',') FROM pg_authid) --'", "catalog-enumeration"),
        ("SELECT 1, --\r'\n', set_config('work_mem', '2GB', false) --'", "set-config"),
    ] {
        let msgs = gw::raw_query(&mut sa, attack);
        denied(&msgs, rule, attack);
        clean(&msgs, attack);
    }
    // Hidden catalog reads are seen, and run on the tenant-scoped catalog: they answer, with
    // nothing of another tenant in the answer.
    for attack in [
        "SELECT 1, --\r'\n', (SELECT string_agg(rolname, ',') FROM pg_roles) --'",
        "SELECT 1, --\r'\n', (SELECT string_agg(nspname, ',') FROM pg_namespace) --'",
    ] {
        let msgs = gw::raw_query(&mut sa, attack);
        assert!(first_error(&msgs).is_none(), "{attack}: {}", answer_text(&msgs));
        assert!(answer_text(&msgs).contains("pg_catalog") || answer_text(&msgs).contains(&a.t.key), "{attack}: {}", answer_text(&msgs));
        clean(&msgs, attack);
    }

    // 2. String mode and 3. encoding: refused, so the session keeps reading as the gate does.
    for (set, rule) in [
        ("SET standard_conforming_strings = off", "pinned-setting"),
        ("SET SESSION standard_conforming_strings TO false", "pinned-setting"),
        ("SET backslash_quote = on", "pinned-setting"),
        ("SET client_encoding = 'SJIS'", "pinned-setting"),
        ("SET NAMES 'GBK'", "pinned-setting"),
        ("SELECT set_config('client_encoding', 'SJIS', false)", "pinned-setting"),
        ("SELECT 1, set_config('client_encoding', 'SJIS', false)", "set-config"),
    ] {
        denied(&gw::raw_query(&mut sa, set), rule, set);
    }
    // What SJIS would have hidden: 0x83 0x5c is one character there, a backslash here. The
    // gateway refuses the bytes outright (they are not UTF-8), or the gate parses the text
    // as the UTF-8 session reads it.
    for hidden in ["SELECT 'x\\' , (SELECT string_agg(rolname, ',') FROM pg_roles) , '", "SELECT E'\\'' , (SELECT string_agg(rolname, ',') FROM pg_roles) --'"] {
        let msgs = gw::raw_query(&mut sa, hidden);
        clean(&msgs, hidden);
        if let Some((code, _)) = first_error(&msgs) {
            assert!(["42501", "42601"].contains(&code.as_str()), "{hidden}: {code}");
        }
    }
    let msgs = gw::raw_query(&mut sa, "SHOW standard_conforming_strings");
    assert!(answer_text(&msgs).contains("on"), "{}", answer_text(&msgs));
    let msgs = gw::raw_query(&mut sa, "SHOW client_encoding");
    assert!(answer_text(&msgs).contains("UTF8"), "{}", answer_text(&msgs));
    // At startup too, in every place a client can put it; asyncpg's quoted 'utf-8' is UTF8.
    for params in [
        vec![("client_encoding", "SJIS")],
        vec![("client_encoding", "'sjis'")],
        vec![("standard_conforming_strings", "off")],
        vec![("options", "-c standard_conforming_strings=off")],
        vec![("options", "-c client_encoding=SJIS")],
    ] {
        let mut s = gw::connect_raw(on.port);
        let mut all = vec![("user", a.t.slug.as_str())];
        all.extend(params.iter().copied());
        s.write_all(&gw::startup_packet(196608, &all)).expect("startup");
        let errors = gw::errors_in(&gw::read_all(&mut s));
        assert!(errors.first().is_some_and(|(sev, _, _)| sev == "FATAL"), "{params:?}: {errors:?}");
    }
    let conn = on.conninfo(&a.t.slug);
    let (ok, out) = gw::psql_extra(&format!("{conn} client_encoding='utf-8'"), &a.key, &["-c", "SHOW client_encoding"]);
    assert!(ok && out.contains("UTF8"), "{out}");

    // The lock-table outage: refused with the gate on, whatever the shape; a neighbour on the
    // same server connects and queries meanwhile. With the gate off the locks are really
    // taken (100 of them, not enough to hurt the test cluster).
    let locks = |server: &str, role: &str| -> i64 {
        d.admin(server, "postgres", &format!("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid WHERE l.locktype = 'advisory' AND s.usename = '{role}'"))
            .parse()
            .expect("count")
    };
    let script = "SELECT count(pg_advisory_lock(g)) FROM generate_series(1, 40000) g";
    let hidden = "SELECT 1, --\r'\n', count(pg_advisory_lock(g)) --'\nFROM generate_series(1, 40000) g";
    let seed_hidden = "SELECT 1, --\r'\n', count(abs(g)) --'\nFROM generate_series(1, 40000) g";
    assert!(first_error(&gw::raw_query(&mut sa, seed_hidden)).is_none());
    let neighbour = std::thread::scope(|scope| {
        let n = scope.spawn(|| {
            let mut worst = Duration::ZERO;
            for _ in 0..10 {
                let t = Instant::now();
                let (ok, out) = on.psql(&b.t.slug, &b.key, "SELECT name FROM branches;");
                assert!(ok && out.contains(&b.canary), "the neighbour must connect and query: {out}");
                worst = worst.max(t.elapsed());
            }
            worst
        });
        for _ in 0..20 {
            denied(&gw::raw_query(&mut sa, script), "advisory-lock", script);
            denied(&gw::raw_query(&mut sa, hidden), "advisory-lock", hidden);
        }
        n.join().expect("neighbour thread")
    });
    assert_eq!(locks(&a.t.server, &a.t.key), 0, "no advisory lock held with the gate on");
    eprintln!("[gateway test] neighbour's slowest connect+query during the lock script: {neighbour:?}");
    let (mut so, _, _) = gw::raw_login(off.port, &a.t.slug, &a.key);
    assert!(first_error(&gw::raw_query(&mut so, "SELECT count(pg_advisory_lock(g)) FROM generate_series(1, 100) g")).is_none());
    assert_eq!(locks(&a.t.server, &a.t.key), 100, "control: with the gate off the database takes the locks");
    drop(so);

    // Every spelling of the pinned settings: the gate allows one only at the pinned value,
    // and the server agrees. With the gate off (the control), the same loop sees the server
    // leave the pinned value.
    let mut forms = Vec::new();
    for value in ["on", "off", "true", "false", "1", "0", "'on'", "'off'", "yes", "no", "DEFAULT"] {
        for verb in ["SET", "SET SESSION"] {
            forms.push(format!("{verb} standard_conforming_strings = {value}"));
        }
    }
    for value in ["'UTF8'", "'utf-8'", "'Unicode'", "'SJIS'", "'LATIN1'", "'EUC_JP'", "'BIG5'", "DEFAULT", "'UTF_8'"] {
        forms.push(format!("SET client_encoding TO {value}"));
        forms.push(format!("SET NAMES {value}"));
    }
    for value in ["on", "off", "safe_encoding", "'safe_encoding'", "DEFAULT"] {
        forms.push(format!("SET backslash_quote = {value}"));
    }
    let pinned = |s: &mut std::net::TcpStream| {
        let show = |s: &mut std::net::TcpStream, q: &str| answer_text(&gw::raw_query(s, q));
        show(s, "SHOW standard_conforming_strings").contains("on")
            && show(s, "SHOW client_encoding").contains("UTF8")
            && show(s, "SHOW backslash_quote").contains("safe_encoding")
    };
    let mut left_pinned_with_gate_off = 0;
    for form in &forms {
        for (g, gate_on) in [(on, true), (off, false)] {
            let (mut s, _, _) = gw::raw_login(g.port, &a.t.slug, &a.key);
            let msgs = gw::raw_query(&mut s, form);
            match first_error(&msgs) {
                Some((code, message)) => assert!(
                    (gate_on && code == "42501" && (message.contains("rule pinned-setting") || message.contains("rule setting-not-allowed"))) || !gate_on,
                    "{form}: {code} {message}"
                ),
                None if gate_on => assert!(pinned(&mut s), "gate on allowed {form:?} and the server left the pinned value"),
                None => left_pinned_with_gate_off += usize::from(!pinned(&mut s)),
            }
        }
    }
    assert!(left_pinned_with_gate_off >= 5, "control: with the gate off, {left_pinned_with_gate_off} forms left the pinned value");
}

/// pgbench with a custom script against the example app, in each query mode.
fn pgbench_runs_the_example_app(on: &Gateway, x: &T) {
    gw::pgbench_example_app(on, &x.t.slug, &x.key, 7, 4, 2, 25);
}

const ASYNCPG_SCRIPT: &str = r#"
import asyncio, json, sys
import asyncpg
port, user, key, canary, others = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5].split(",")
async def main():
    res = {}
    # asyncpg sends client_encoding='utf-8' (with the quotes) at startup.
    conn = await asyncpg.connect(host="127.0.0.1", port=int(port), user=user, password=key, database="whatever")
    rows = await conn.fetch("SELECT name FROM branches WHERE country = $1 ORDER BY name", "XX")
    seen = [r["name"] for r in rows]
    res["own_canary"] = canary in seen
    res["leak"] = [o for o in others if any(o in s for s in seen)]
    res["encoding"] = await conn.fetchval("SHOW client_encoding")
    await conn.close()
    # A pool resets each connection on release: pg_advisory_unlock_all(), CLOSE ALL,
    # UNLISTEN *, RESET ALL. Each release must succeed.
    pool = await asyncpg.create_pool(host="127.0.0.1", port=int(port), user=user, password=key, database="whatever", min_size=2, max_size=4)
    async def one(i):
        async with pool.acquire() as c:
            return await c.fetchval("SELECT $1::int + 1", i)
    res["pooled"] = sorted(await asyncio.gather(*[one(i) for i in range(20)]))
    await pool.close()
    print(json.dumps(res))
asyncio.run(main())
"#;

/// asyncpg (issue #17, bugs 1 and 3): it connects, although it spells the encoding
/// `'utf-8'` with quotes, and its pool releases connections, although its reset runs
/// `pg_advisory_unlock_all()` and `UNLISTEN *`. Only the tenant's own rows come back, with
/// the gate on and off.
fn asyncpg_connects_and_pools(on: &Gateway, off: &Gateway, tenants: &[T]) {
    let py = common::python_with(&["asyncpg"], &["asyncpg"]);
    // One tenant per placement (pooled, schema, database), through both gateways.
    for (g, x) in [on, off].into_iter().flat_map(|g| [&tenants[0], &tenants[2], &tenants[3]].map(|x| (g, x))) {
        let others: Vec<&str> = tenants.iter().filter(|o| o.t.key != x.t.key).map(|o| o.canary.as_str()).collect();
        let out = Command::new(&py)
            .args(["-c", ASYNCPG_SCRIPT, &g.port.to_string(), &x.t.slug, &x.key, &x.canary, &others.join(",")])
            .output()
            .expect("python");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "asyncpg for {} (gateway {}): {}{}", x.t.slug, g.name, stdout, String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("the script prints JSON");
        assert_eq!(v["own_canary"], true, "{v}");
        assert_eq!(v["leak"], serde_json::json!([]), "{v}");
        assert_eq!(v["encoding"], "UTF8", "{v}");
        assert_eq!(v["pooled"], serde_json::json!((1..=20).collect::<Vec<i32>>()), "{v}");
    }
}

const DJANGO_SCRIPT: &str = r#"
import json, sys
import django
from django.conf import settings
port, user, key, canary, others = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5].split(",")
# USE_TZ with a connection time zone: Django's first statement on every new connection is
# SELECT set_config('TimeZone', %s, false), with the zone as a bound parameter.
settings.configure(
    USE_TZ=True, TIME_ZONE="UTC", INSTALLED_APPS=[],
    DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "HOST": "127.0.0.1", "PORT": port,
                           "NAME": "whatever", "USER": user, "PASSWORD": key, "TIME_ZONE": "Europe/Paris"}},
)
django.setup()
from django.db import connection, models
class Branch(models.Model):
    branch_id = models.UUIDField(primary_key=True)
    name = models.TextField()
    country = models.TextField()
    opened_on = models.DateField()
    class Meta:
        app_label = "tenantgate_test"
        db_table = "branches"
        managed = False
res = {}
seen = list(Branch.objects.filter(country="XX").order_by("name").values_list("name", flat=True))
res["own_canary"] = canary in seen
res["leak"] = [o for o in others if any(o in s for s in seen)]
with connection.cursor() as cur:
    cur.execute("SHOW TimeZone")
    res["timezone"] = cur.fetchone()[0]
    cur.execute("SELECT now()")
    res["aware"] = cur.fetchone()[0].tzinfo is not None
res["count"] = Branch.objects.count()
connection.close()
# A new connection sets the zone again.
res["count_again"] = Branch.objects.filter(country="XX").count()
print(json.dumps(res))
"#;

/// Django's ORM with `USE_TZ` through the gateway (drop-in bug 4): its
/// `SELECT set_config('TimeZone', %s, false)` passes like the SET it is.
fn django_sets_its_time_zone_and_queries(on: &Gateway, off: &Gateway, tenants: &[T]) {
    let py = common::python_with(&["psycopg", "django"], &["psycopg[binary]", "django"]);
    for (g, x) in [on, off].into_iter().flat_map(|g| [&tenants[0], &tenants[2], &tenants[3]].map(|x| (g, x))) {
        let others: Vec<&str> = tenants.iter().filter(|o| o.t.key != x.t.key).map(|o| o.canary.as_str()).collect();
        let out = Command::new(&py)
            .args(["-c", DJANGO_SCRIPT, &g.port.to_string(), &x.t.slug, &x.key, &x.canary, &others.join(",")])
            .output()
            .expect("python");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "Django for {} (gateway {}): {}{}", x.t.slug, g.name, stdout, String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("the script prints JSON");
        assert_eq!(v["own_canary"], true, "{v}");
        assert_eq!(v["leak"], serde_json::json!([]), "{v}");
        assert_eq!(v["timezone"], "Europe/Paris", "{v}");
        assert_eq!(v["aware"], true, "{v}");
        assert!(v["count"].as_i64().unwrap_or(0) >= 1, "{v}");
        assert_eq!(v["count_again"], 1, "{v}");
    }
}

/// LISTEN/NOTIFY through the gate: a tenant with a database of its own gets its own
/// notifications (psql prints them); in the shared placements LISTEN is refused with the way
/// out named, so no tenant can receive another's payload.
fn channels_work_with_a_database_of_ones_own(on: &Gateway, tenants: &[T]) {
    let db = tenants.iter().find(|x| x.t.placement == "database").expect("a database tenant");
    let (ok, out) = on.psql(&db.t.slug, &db.key, "LISTEN jobs;\nNOTIFY jobs, 'job-42';\nSELECT 1;\n");
    assert!(ok && out.contains("Asynchronous notification \"jobs\" with payload \"job-42\""), "{out}");
    for x in tenants.iter().filter(|x| x.t.placement != "database") {
        let (ok, out) = on.psql(&x.t.slug, &x.key, "LISTEN jobs;\n");
        assert!(!ok && out.contains("listen-notify") && out.contains("database placement"), "{}: {out}", x.t.slug);
        let (ok, out) = on.psql(&x.t.slug, &x.key, &format!("SELECT pg_notify('jobs', '{}');\n", x.canary));
        assert!(!ok && out.contains("listen-notify"), "{}: {out}", x.t.slug);
    }
}

const PSYCOPG_SCRIPT: &str = r#"
import json, socket, struct, sys, threading, time
import psycopg
port, user, key, canary, others = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5].split(",")
res = {}
conn = psycopg.connect(host="127.0.0.1", port=port, user=user, password=key, dbname="whatever", autocommit=True)
seen = []
for i in range(3):
    with conn.cursor() as cur:
        cur.execute("SELECT name FROM branches WHERE country = %s ORDER BY name", ("XX",), prepare=True)
        seen += [r[0] for r in cur.fetchall()]
with conn.cursor() as cur:
    cur.execute("INSERT INTO menu_items (branch_id, name, category, price) SELECT branch_id, %s, 'drinks', %s FROM branches WHERE name = %s RETURNING name", ("py-spritz", 5.5, canary), prepare=True)
    res["inserted"] = cur.fetchone()[0]
    cur.execute("SELECT count(*) FROM menu_items WHERE name = %s", ("py-spritz",), prepare=True)
    res["count"] = cur.fetchone()[0]
    cur.execute("SELECT name FROM pg_prepared_statements WHERE from_sql = false")
    res["server_prepared"] = len(cur.fetchall())
    try:
        cur.execute("SET ROLE postgres", prepare=True)
        res["denied"] = None
    except psycopg.Error as e:
        res["denied"] = [e.sqlstate, str(e)]
    cur.execute("SELECT 1", prepare=True)
    res["after_denial"] = cur.fetchone()[0]
res["own_canary"] = canary in seen
res["leak"] = [o for o in others if any(o in s for s in seen)]

# A cancel with the right pid but a wrong secret does nothing.
pid = conn.info.backend_pid
def bogus_cancel():
    time.sleep(0.5)
    s = socket.create_connection(("127.0.0.1", int(port)))
    s.sendall(struct.pack("!iiii", 16, 80877102, pid, 12345))
    s.recv(16)
    s.close()
threading.Thread(target=bogus_cancel).start()
t0 = time.time()
with conn.cursor() as cur:
    cur.execute("SELECT pg_sleep(1.5)")
res["bogus_cancel_ignored"] = time.time() - t0 >= 1.4

# A real cancel (libpq's CancelRequest with the gateway's key) stops pg_sleep(30).
def cancel():
    time.sleep(0.5)
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
print(json.dumps(res))
"#;

/// psycopg 3 with server-side prepared statements; cancel with the right and a wrong key.
fn psycopg_prepared_statements_and_cancel(on: &Gateway, tenants: &[T]) {
    let py = common::python_with(&["psycopg"], &["psycopg[binary]"]);
    let x = &tenants[1];
    let others: Vec<&str> = tenants.iter().filter(|o| o.t.key != x.t.key).map(|o| o.canary.as_str()).collect();
    let out = Command::new(&py)
        .args(["-c", PSYCOPG_SCRIPT, &on.port.to_string(), &x.t.slug, &x.key, &x.canary, &others.join(",")])
        .output()
        .expect("python");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "psycopg script failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(v["own_canary"], true, "{v}");
    assert_eq!(v["leak"], serde_json::json!([]), "{v}");
    assert_eq!(v["inserted"], "py-spritz", "{v}");
    assert_eq!(v["count"], 1, "{v}");
    assert!(v["server_prepared"].as_i64().unwrap_or(0) >= 2, "psycopg must have prepared statements on the server: {v}");
    assert_eq!(v["denied"][0], "42501", "{v}");
    assert!(v["denied"][1].as_str().unwrap_or("").contains("rule set-role"), "{v}");
    assert_eq!(v["after_denial"], 1, "{v}");
    assert_eq!(v["bogus_cancel_ignored"], true, "a cancel with a wrong secret must do nothing: {v}");
    assert_eq!(v["cancelled"], "57014", "{v}");
    assert!(v["cancel_seconds"].as_f64().unwrap_or(99.0) < 10.0, "{v}");
    assert_eq!(v["after_cancel"], 42, "{v}");
}

const NODE_SCRIPT: &str = r#"
const { Client } = require('pg');
(async () => {
  const [port, user, key, canary, others] = process.argv.slice(2);
  const c = new Client({ host: '127.0.0.1', port: Number(port), user, password: key, database: 'whatever' });
  await c.connect();
  const res = {};
  const seen = [];
  for (let i = 0; i < 3; i++) {
    const r = await c.query({ name: 'by-country', text: 'SELECT name FROM branches WHERE country = $1 ORDER BY name', values: ['XX'] });
    r.rows.forEach(x => seen.push(x.name));
  }
  const ins = await c.query('INSERT INTO branches (name, city, country) VALUES ($1, $2, $3) RETURNING city', ['node-branch', 'Turin', 'IT']);
  res.inserted = ins.rows[0].city;
  const cnt = await c.query('SELECT count(*)::int AS n FROM branches WHERE name = $1', ['node-branch']);
  res.count = cnt.rows[0].n;
  // A catalog read in a named statement runs on the tenant-scoped catalog (Parse rewritten).
  for (let i = 0; i < 2; i++) {
    const r = await c.query({ name: 'own-role', text: 'SELECT rolname FROM pg_roles WHERE rolname = current_user AND $1::int = 1', values: [1] });
    res.own_role_rows = r.rows.length;
  }
  try { await c.query('SELECT * FROM pg_authid WHERE rolname = $1', ['x']); res.denied = null; }
  catch (e) { res.denied = [e.code, e.message]; }
  const after = await c.query('SELECT $1::int + 1 AS n', [41]);
  res.after_denial = after.rows[0].n;
  await c.query('BEGIN');
  try { await c.query('TRUNCATE branches'); } catch (e) { res.in_txn_denied = e.code; }
  try { await c.query('SELECT 1'); res.txn_aborted = false; } catch (e) { res.txn_aborted = e.code; }
  await c.query('ROLLBACK');
  res.own_canary = seen.includes(canary);
  res.leak = others.split(',').filter(o => seen.some(s => s.includes(o)));
  await c.end();
  // node-postgres' statement_timeout option (a startup parameter), under the tenant's cap.
  const t = new Client({ host: '127.0.0.1', port: Number(port), user, password: key, database: 'whatever', statement_timeout: 1500 });
  await t.connect();
  res.timeout_shown = (await t.query('SHOW statement_timeout')).rows[0].statement_timeout;
  try { await t.query('SELECT pg_sleep(3)'); res.timed_out = null; } catch (e) { res.timed_out = e.code; }
  await t.end();
  console.log(JSON.stringify(res));
})().catch(e => { console.error(e); process.exit(1); });
"#;

/// Node `pg`: named prepared statements and parameters over the extended protocol; a
/// denial inside a transaction aborts it, as PostgreSQL's own errors do.
fn node_pg_extended_protocol(on: &Gateway, tenants: &[T]) {
    let node_dir = common::repo_root().join("crates/tenantgate/tests/node");
    if !node_dir.join("node_modules/pg").exists() {
        let st = Command::new("npm").args(["install", "--no-audit", "--no-fund", "--silent"]).current_dir(&node_dir).status();
        assert!(st.map(|s| s.success()).unwrap_or(false), "npm install in {} failed", node_dir.display());
    }
    let x = &tenants[2];
    let others: Vec<&str> = tenants.iter().filter(|o| o.t.key != x.t.key).map(|o| o.canary.as_str()).collect();
    let script = node_dir.join("gateway_check.js");
    std::fs::write(&script, NODE_SCRIPT).expect("write node script");
    let out = Command::new("node")
        .arg(&script)
        .args([&on.port.to_string(), &x.t.slug, &x.key, &x.canary, &others.join(",")])
        .current_dir(&node_dir)
        .output()
        .expect("node");
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "node script failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(v["own_canary"], true, "{v}");
    assert_eq!(v["leak"], serde_json::json!([]), "{v}");
    assert_eq!(v["inserted"], "Turin", "{v}");
    assert_eq!(v["count"], 1, "{v}");
    assert_eq!(v["denied"][0], "42501", "{v}");
    assert!(v["denied"][1].as_str().unwrap_or("").contains("rule catalog"), "{v}");
    assert_eq!(v["own_role_rows"], 1, "{v}");
    assert_eq!(v["after_denial"], 42, "{v}");
    assert_eq!(v["in_txn_denied"], "42501", "{v}");
    assert_eq!(v["txn_aborted"], "25P02", "a denial aborts the transaction like any error: {v}");
    assert_eq!(v["timeout_shown"], "1500ms", "node-pg's statement_timeout option: {v}");
    assert_eq!(v["timed_out"], "57014", "the timeout set at connect time applies: {v}");
}

/// Malformed and hostile input: each gets a clean FATAL or ERROR and the gateway keeps
/// serving (a follow-up query works every time).
fn bad_input_gets_clean_errors(d: &Deployment, on: &Gateway, tenants: &[T]) {
    let x = &tenants[0];
    let still_serving = |what: &str| {
        let (ok, out) = on.psql(&x.t.slug, &x.key, "SELECT 'alive';");
        assert!(ok && out.contains("alive"), "after {what}: {out}");
    };
    let conn = on.conninfo(&x.t.slug);

    // Wrong key, unknown tenant: the same message, which reveals nothing.
    // The key with its last hex digit changed (to a digit it is not: a fixed "0" made this
    // test pass the right key one run in sixteen).
    let last = if x.key.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &x.key[..x.key.len() - 1]);
    let (ok, out_wrong) = gw::psql_extra(&conn, &wrong, &["-c", "SELECT 1"]);
    assert!(!ok && out_wrong.contains(&format!("password authentication failed for user \"{}\"", x.t.slug)), "{out_wrong}");
    let (ok, out_unknown) = gw::psql_extra(&on.conninfo("no-such-tenant"), &x.key, &["-c", "SELECT 1"]);
    assert!(!ok && out_unknown.contains("password authentication failed for user \"no-such-tenant\""), "{out_unknown}");
    assert_eq!(out_wrong.replace(&x.t.slug, "U"), out_unknown.replace("no-such-tenant", "U"), "unknown tenant must look like a wrong key");
    still_serving("wrong key");

    // Refused startup parameters.
    for (extra, expect) in [
        ("options='-c role=postgres'", "startup option -c role is not allowed"),
        ("options='-c search_path=public'", "startup option -c search_path is not allowed"),
        ("options='-X'", "may hold only `-c name=value` settings"),
        ("replication=database", "replication connections are not allowed"),
    ] {
        let (ok, out) = gw::psql_extra(&format!("{conn} {extra}"), &x.key, &["-c", "SELECT 1"]);
        assert!(!ok && out.contains(expect), "{extra}: {out}");
    }
    still_serving("refused parameters");

    let fatal = |bytes: &[u8], code: &str, what: &str| {
        let errors = gw::errors_in(bytes);
        assert!(
            errors.iter().any(|(sev, c, _)| sev == "FATAL" && c == code),
            "{what}: expected FATAL {code}, got {errors:?} ({} bytes)",
            bytes.len()
        );
    };
    // Malformed startup packet: a parameter without its terminator.
    let mut s = gw::connect_raw(on.port);
    s.write_all(&[0, 0, 0, 14, 0, 3, 0, 0, b'u', b's', b'e', b'r', 0, b'x']).expect("write");
    fatal(&gw::read_all(&mut s), "08P01", "malformed startup packet");
    // A startup packet longer than PostgreSQL allows.
    let mut s = gw::connect_raw(on.port);
    s.write_all(&[0, 1, 0, 0, 0, 3, 0, 0]).expect("write");
    fatal(&gw::read_all(&mut s), "08P01", "oversized startup packet");
    // Truncated startup packet.
    let mut s = gw::connect_raw(on.port);
    s.write_all(&[0, 0, 0, 40, 0, 3, 0, 0, b'u']).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    fatal(&gw::read_all(&mut s), "08P01", "truncated startup packet");
    // Unsupported protocol versions.
    for version in [0x0002_0000u32, 0x0004_0000] {
        let mut s = gw::connect_raw(on.port);
        s.write_all(&gw::startup_packet(version, &[("user", &x.t.slug)])).expect("write");
        fatal(&gw::read_all(&mut s), "0A000", "unsupported protocol");
    }
    // Garbage right after SSLRequest, before our answer was read (CVE-2021-23214).
    let mut s = gw::connect_raw(on.port);
    let mut pkt = vec![0, 0, 0, 8, 4, 210, 22, 47];
    pkt.extend_from_slice(b"Q\0\0\0\x0dSELECT 1\0");
    s.write_all(&pkt).expect("write");
    let bytes = gw::read_all(&mut s);
    assert!(!bytes.starts_with(b"S"), "must not start TLS");
    fatal(&bytes[usize::from(bytes.first() == Some(&b'N'))..], "08P01", "garbage after SSLRequest");
    // A plain SSLRequest gets 'N' (no TLS configured) and the session continues.
    let mut s = gw::connect_raw(on.port);
    s.write_all(&[0, 0, 0, 8, 4, 210, 22, 47]).expect("write");
    let mut one = [0u8; 1];
    std::io::Read::read_exact(&mut s, &mut one).expect("answer");
    assert_eq!(&one, b"N");
    still_serving("bad startup packets");

    // After login: an unknown message type, a truncated message, an oversized message.
    let (mut s, _, _) = gw::raw_login(on.port, &x.t.slug, &x.key);
    let msgs = gw::raw_query(&mut s, "SELECT 1");
    assert!(msgs.iter().any(|m| m.0 == b'D'), "raw session works");
    s.write_all(b"\x01\0\0\0\x04").expect("write");
    fatal(&gw::read_all(&mut s), "08P01", "unknown message type");
    let (mut s, _, _) = gw::raw_login(on.port, &x.t.slug, &x.key);
    s.write_all(b"Q\0\0\0\x64SELECT").expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    fatal(&gw::read_all(&mut s), "08P01", "truncated message");
    let (mut s, _, _) = gw::raw_login(on.port, &x.t.slug, &x.key);
    s.write_all(b"Q\x10\0\0\0SELECT").expect("write"); // 256 MiB claimed
    let bytes = gw::read_all(&mut s);
    fatal(&bytes, "08P01", "oversized message");
    assert!(gw::errors_in(&bytes).iter().any(|e| e.2.contains("limit")), "{:?}", gw::errors_in(&bytes));
    // Garbage instead of a SCRAM exchange.
    let mut s = gw::connect_raw(on.port);
    s.write_all(&gw::startup_packet(196608, &[("user", &x.t.slug)])).expect("write");
    let _ = gw::read_msg(&mut s);
    s.write_all(b"p\0\0\0\x10SCRAM-SHA-256\0\0\0").expect("write");
    let bytes = gw::read_all(&mut s);
    assert!(gw::errors_in(&bytes).iter().any(|e| e.0 == "FATAL"), "bad SASL message");
    // Channel binding is refused cleanly.
    let mut s = gw::connect_raw(on.port);
    s.write_all(&gw::startup_packet(196608, &[("user", &x.t.slug)])).expect("write");
    let _ = gw::read_msg(&mut s);
    let cf = b"p=tls-server-end-point,,n=,r=abcdef";
    let mut m = b"p".to_vec();
    let body_len = 4 + 14 + 4 + cf.len();
    m.extend_from_slice(&(body_len as u32).to_be_bytes());
    m.extend_from_slice(b"SCRAM-SHA-256\0");
    m.extend_from_slice(&(cf.len() as u32).to_be_bytes());
    m.extend_from_slice(cf);
    s.write_all(&m).expect("write");
    let bytes = gw::read_all(&mut s);
    assert!(gw::errors_in(&bytes).iter().any(|e| e.2.contains("channel binding")), "{:?}", gw::errors_in(&bytes));
    still_serving("bad messages");

    // A pipeline with a denied Parse in the middle: the statements before it run, the denial
    // comes back in order as 42501, the rest up to Sync is skipped, and the next Sync works.
    let (mut s, _, _) = gw::raw_login(on.port, &x.t.slug, &x.key);
    let mut out = bytes::BytesMut::new();
    use postgres_protocol::message::frontend as fe;
    let no_params: [u32; 0] = [];
    let bind = |out: &mut bytes::BytesMut| {
        fe::bind("", "", Vec::<i16>::new(), Vec::<i32>::new(), |_: i32, _: &mut bytes::BytesMut| -> Result<postgres_protocol::IsNull, Box<dyn std::error::Error + Sync + Send>> { Ok(postgres_protocol::IsNull::No) }, Some(1), out)
            .map_err(|_| ())
            .expect("bind");
    };
    fe::parse("", "SELECT 'before'", no_params, &mut out).expect("parse");
    bind(&mut out);
    fe::execute("", 0, &mut out).expect("execute");
    fe::parse("", "SELECT * FROM pg_authid", no_params, &mut out).expect("parse");
    bind(&mut out);
    fe::execute("", 0, &mut out).expect("execute");
    fe::sync(&mut out);
    fe::parse("", "SELECT 'after'", no_params, &mut out).expect("parse");
    bind(&mut out);
    fe::execute("", 0, &mut out).expect("execute");
    fe::sync(&mut out);
    s.write_all(&out).expect("write pipeline");
    let mut tags = String::new();
    let mut texts = Vec::new();
    let mut ready = 0;
    while ready < 2 {
        let (tag, body) = gw::read_msg(&mut s).expect("pipeline response");
        tags.push(tag as char);
        match tag {
            b'Z' => ready += 1,
            b'E' => texts.push(gw::error_fields(&body)),
            b'D' => texts.push((String::new(), String::new(), String::from_utf8_lossy(&body).into_owned())),
            _ => {}
        }
    }
    assert_eq!(tags, "12DCEZ12DCZ", "{texts:?}");
    assert!(texts[0].2.contains("before") && texts[2].2.contains("after"), "{texts:?}");
    assert_eq!((texts[1].0.as_str(), texts[1].1.as_str()), ("ERROR", "42501"), "{texts:?}");
    assert!(texts[1].2.contains("rule catalog-enumeration"), "{texts:?}");
    // A cancel for a key nobody holds does nothing; a cancel for another session's pid with a
    // wrong secret does nothing either (psycopg step checks a session's own query survives).
    gw::send_cancel(on.port, 12345, 678);
    let (mut s, pid, secret) = gw::raw_login(on.port, &x.t.slug, &x.key);
    gw::send_cancel(on.port, pid, secret ^ 1);
    let msgs = gw::raw_query(&mut s, "SELECT 'still here'");
    assert!(!msgs.iter().any(|m| m.0 == b'E'), "{msgs:?}");
    let _ = d;
    still_serving("cancels");
}

/// Revoking a key refuses new connections at once and cuts open sessions within seconds;
/// a suspended tenant is refused with a clear message.
fn revoked_keys_and_suspended_tenants(d: &Deployment, on: &Gateway, x: &T) {
    let (id, key) = gw::create_key(d, &x.t.slug, false);
    // A brand-new key works at once (the router re-reads keys it has not seen).
    let (ok, out) = on.psql(&x.t.slug, &key, "SELECT 'new key works';");
    assert!(ok && out.contains("new key works"), "{out}");
    let child = Command::new("psql")
        .arg(on.conninfo(&x.t.slug))
        .args(["-X", "-q", "-A", "-t", "-c", "SELECT pg_sleep(30)"])
        .env("PGPASSWORD", &key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    std::thread::sleep(Duration::from_millis(800));
    let t0 = Instant::now();
    d.ok(&["key", "revoke", &x.t.slug, &id]);
    let out = child.wait_with_output().expect("psql");
    let elapsed = t0.elapsed();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && text.contains("API key revoked"), "{text}");
    assert!(elapsed < Duration::from_secs(8), "open session cut after {elapsed:?}");
    let (ok, out) = on.psql(&x.t.slug, &key, "SELECT 1;");
    assert!(!ok && out.contains("password authentication failed"), "{out}");
    let (ok, _) = on.psql(&x.t.slug, &x.key, "SELECT 1;");
    assert!(ok, "the tenant's other key still works");

    d.ok(&["tenant", "suspend", &x.t.slug]);
    let (ok, out) = on.psql(&x.t.slug, &x.key, "SELECT 1;");
    assert!(!ok && out.contains("suspended"), "{out}");
    d.ok(&["tenant", "resume", &x.t.slug]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, out) = on.psql(&x.t.slug, &x.key, "SELECT 'resumed';");
        if ok && out.contains("resumed") {
            break;
        }
        assert!(Instant::now() < deadline, "resumed tenant still refused: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A psql of tenant `x` holding one backend of `g` for `seconds`; returns once it holds it.
fn hold_a_backend(g: &Gateway, x: &T, seconds: u32) -> std::process::Child {
    let child = Command::new("psql")
        .arg(g.conninfo(&x.t.slug))
        .args(["-X", "-q", "-c", &format!("SELECT pg_sleep({seconds})")])
        .env("PGPASSWORD", &x.key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("psql");
    std::thread::sleep(Duration::from_millis(700));
    child
}

/// A budget of one connection per server: a second tenant gets in by evicting the first
/// tenant's idle connection; while a session holds the only connection, a waiter times out
/// with 53300 and a clear message.
fn budget_evicts_idle_and_times_out_waiters(d: &Deployment, tenants: &[T]) {
    let tiny = Gateway::start(d, "tiny", "server_budget = 1\ncheckout_timeout_ms = 1500\npool_idle_timeout_ms = 1000\n");
    let (a, b) = (&tenants[0], &tenants[1]);
    let (ok, out) = tiny.psql(&a.t.slug, &a.key, "SELECT 'a';");
    assert!(ok, "{out}");
    let (ok, out) = tiny.psql(&b.t.slug, &b.key, "SELECT 'b after eviction';");
    assert!(ok && out.contains("b after eviction"), "{out}");
    let holder = hold_a_backend(&tiny, b, 6);
    let t0 = Instant::now();
    let (ok, out) = gw::psql_extra(&tiny.conninfo(&a.t.slug), &a.key, &["-c", "SELECT 1"]);
    assert!(!ok && out.contains("too many connections for server us-1") && out.contains("Try again"), "{out}");
    assert!(out.contains("raise gateway.server_budget") && !out.contains("pool_max_per_tenant"), "the message names the limit that was hit: {out}");
    assert!(t0.elapsed() >= Duration::from_millis(1400), "the waiter must queue first");
    match gw::try_raw_login(tiny.port, &a.t.slug, &a.key) {
        Err((sev, code, _)) => assert_eq!((sev.as_str(), code.as_str()), ("FATAL", "53300")),
        Ok(_) => panic!("a waiter must not get a connection while the budget is held"),
    }
    // Other servers have their own budget.
    let (ok, out) = tiny.psql(&tenants[2].t.slug, &tenants[2].key, "SELECT 'eu has room';");
    assert!(ok && out.contains("eu has room"), "{out}");
    let _ = holder.wait_with_output();
    let (ok, out) = tiny.psql(&a.t.slug, &a.key, "SELECT 'a again';");
    assert!(ok && out.contains("a again"), "{out}");
    // Idle pools shrink to zero after gateway.pool_idle_timeout_ms.
    let backends = |t: &T| d.admin(&t.t.server, "postgres", &format!("SELECT count(*) FROM pg_stat_activity WHERE usename = '{}' AND application_name = 'tenantgate'", t.t.key));
    let deadline = Instant::now() + Duration::from_secs(10);
    while backends(a) != "0" {
        assert!(Instant::now() < deadline, "idle backends of {} were not closed", a.t.slug);
        std::thread::sleep(Duration::from_millis(300));
    }
    // The per-tenant cap: the message names gateway.pool_max_per_tenant, not the budget
    // (issue #17, bug 6).
    let capped = Gateway::start(d, "capped", "pool_max_per_tenant = 1\ncheckout_timeout_ms = 1000\n");
    let holder = hold_a_backend(&capped, b, 4);
    let (ok, out) = gw::psql_extra(&capped.conninfo(&b.t.slug), &b.key, &["-c", "SELECT 1"]);
    assert!(!ok && out.contains("too many connections for server us-1"), "{out}");
    assert!(out.contains("raise gateway.pool_max_per_tenant") && !out.contains("server_budget"), "the message names the limit that was hit: {out}");
    let _ = holder.wait_with_output();
    drop(capped);
    // SIGTERM stops the gateway cleanly.
    let mut tiny = tiny;
    let st = Command::new("kill").args(["-TERM", &tiny.pid().to_string()]).status().expect("kill");
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while tiny.is_running() {
        assert!(Instant::now() < deadline, "gateway did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// With a certificate configured, SSLRequest is answered 'S' and psql connects over TLS.
fn tls_when_configured(d: &Deployment, x: &T) {
    let cert = d.dir.path().join("gw-cert.pem");
    let key = d.dir.path().join("gw-key.pem");
    let st = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !st.map(|s| s.success()).unwrap_or(false) {
        eprintln!("\n!!!!! SKIPPING the TLS step: openssl could not make a test certificate !!!!!\n");
        return;
    }
    let tls = Gateway::start(d, "tls", &format!("tls_cert = {:?}\ntls_key = {:?}\n", cert, key));
    let conn = format!("host=127.0.0.1 port={} user={} dbname=x sslmode=require", tls.port, x.t.slug);
    let (ok, out) = gw::psql_extra(&conn, &x.key, &["-c", "SELECT name FROM branches ORDER BY name", "-c", "\\conninfo"]);
    assert!(ok && out.contains(&x.canary) && out.contains("SSL connection"), "{out}");
    // Plaintext still works when the client does not ask for TLS.
    let (ok, out) = tls.psql(&x.t.slug, &x.key, "SELECT 'plain';");
    assert!(ok && out.contains("plain"), "{out}");
}

/// Connections and denials are audited in the catalog, without secrets or SQL text.
fn audit_records_connections_and_denials(d: &Deployment, tenants: &[T]) {
    // The writer is asynchronous; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    let rows = d.admin("us-1", "tenantgate", "SELECT action, coalesce(tenant_key, '-'), detail::text FROM tg.audit_events WHERE actor = 'gateway'");
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for line in rows.lines() {
        *counts.entry(line.split('|').next().unwrap_or("")).or_default() += 1;
    }
    assert!(counts.get("gateway.connect").copied().unwrap_or(0) > 50, "{counts:?}");
    assert!(counts.get("gateway.deny").copied().unwrap_or(0) > 20, "{counts:?}");
    assert!(counts.get("gateway.terminate").copied().unwrap_or(0) >= 1, "{counts:?}");
    assert!(rows.contains("\"outcome\": \"auth-failed\""), "failed logins are audited");
    assert!(rows.contains("\"rule\": \"set-role\"") && rows.contains("\"fingerprint\": \""), "denials carry rule and fingerprint");
    for x in tenants {
        assert!(!rows.contains(&x.key), "an API key secret reached the audit log");
        assert!(!rows.contains(&x.canary), "statement text reached the audit log");
    }
    assert!(!rows.contains("SET ROLE") && !rows.contains("pg_sleep"), "statement text reached the audit log");
    let used = d.admin("us-1", "tenantgate", "SELECT count(*) FROM tg.api_keys WHERE last_used_at IS NOT NULL");
    assert!(used.parse::<i64>().unwrap_or(0) >= tenants.len() as i64, "last_used_at is recorded: {used}");
}

/// The wire gateway's connection outcomes and denials reach `/metrics` of the same `serve`,
/// labelled by outcome and rule only: no tenant, key or statement.
fn wire_events_are_counted_in_metrics(d: &Deployment, tenants: &[T]) {
    let (gw, http) = Gateway::start_with_http(d, "metrics", "");
    let x = &tenants[0];
    let (ok, out) = gw.psql(&x.t.slug, &x.key, "SELECT 1;");
    assert!(ok, "{out}");
    let (ok, out) = gw.psql_c(&x.t.slug, &x.key, "SET ROLE postgres");
    assert!(!ok && out.contains("rule set-role"), "{out}");
    let (ok, _) = gw.psql(&x.t.slug, "tgk_00000000_not-a-key", "SELECT 1;");
    assert!(!ok, "a wrong key must not log in");

    let body = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build()
        .get(&format!("http://127.0.0.1:{http}/metrics"))
        .call()
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"))
        .into_string()
        .expect("the /metrics body is text");
    let value = |series: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{series} missing from /metrics:\n{body}"))
    };
    assert!(value("tenantgate_wire_connections_total{outcome=\"ok\"}") >= 2.0, "two logins succeeded");
    assert!(value("tenantgate_wire_connections_total{outcome=\"auth-failed\"}") >= 1.0);
    assert!(value("tenantgate_wire_denials_total{rule=\"set-role\"}") >= 1.0);
    assert!(body.contains("# HELP tenantgate_wire_denials_total"), "described");
    for line in body.lines().filter(|l| l.starts_with("tenantgate_wire_")) {
        for t in tenants {
            assert!(!line.contains(&t.t.slug) && !line.contains(&t.t.key), "a tenant in a wire metric label: {line}");
        }
    }
    for t in tenants {
        assert!(!body.contains(&t.key) && !body.contains(&t.canary), "a key or canary reached /metrics");
    }
}
