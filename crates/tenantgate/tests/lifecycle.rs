//! Tenant lifecycle through the real CLI on two real clusters: servers, create in every
//! placement, bad input that must change nothing, rollback and resume, suspend, erase.

mod common;

use common::{Deployment, Tenant};
use serde_json::Value;

/// Everything observable that a failed command must leave unchanged.
/// What a failed operation must leave unchanged. The shared placement databases
/// (`tg_pool`, `tg_bridge`) are server infrastructure, created once and kept; they
/// hold no tenant's objects after a rollback, which the role count and the
/// per-tenant database names cover.
fn snapshot(d: &Deployment) -> (Value, Value, i64, i64, String, String) {
    let dbs = "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname NOT IN ('tg_pool', 'tg_bridge')";
    (
        d.json(&["tenant", "list", "--json"]),
        d.json(&["server", "list", "--json"]),
        d.tenant_role_count("us-1"),
        d.tenant_role_count("eu-1"),
        d.admin("us-1", "postgres", dbs),
        d.admin("eu-1", "postgres", dbs),
    )
}

#[test]
fn init_is_idempotent_and_servers_are_checked() {
    let d = Deployment::start();
    assert!(d.ok(&["init"]).contains("up to date"));
    let servers = d.json(&["server", "list", "--json"]);
    assert_eq!(servers.as_array().map(Vec::len), Some(2));
    // The admin password never appears in listings.
    let listing = d.ok(&["server", "list"]);
    assert!(!listing.contains(d.us.password()), "password leaked in server list");
    assert!(listing.contains("***"));

    let before = snapshot(&d);
    let err = d.fails(&["server", "add", "us-1", "--url", &d.us.url("postgres"), "--region", "us-east"]);
    assert!(err.contains("already exists"), "{err}");
    let err = d.fails(&["server", "add", "dead-1", "--url", "postgres://tg_admin:pw@127.0.0.1:1/postgres", "--region", "us-east"]);
    assert!(err.contains("cannot reach") && err.contains("***") && !err.contains(":pw@"), "{err}");
    let bad_pw = d.us.url("postgres").replace(d.us.password(), "wrong-password");
    let err = d.fails(&["server", "add", "us-2", "--url", &bad_pw, "--region", "us-east"]);
    assert!(err.contains("cannot reach") && !err.contains("wrong-password"), "{err}");
    let err = d.fails(&["server", "add", "us-2", "--url", &d.us.url("postgres"), "--region", "US East"]);
    assert!(err.contains("invalid region"), "{err}");
    // A role that cannot create roles and databases is refused.
    d.admin("us-1", "postgres", "CREATE ROLE weak LOGIN PASSWORD 'weakpassword'");
    let weak = format!("postgres://weak:weakpassword@127.0.0.1:{}/postgres", d.us.port());
    let err = d.fails(&["server", "add", "us-2", "--url", &weak, "--region", "us-east"]);
    assert!(err.contains("cannot create roles and databases"), "{err}");
    d.admin("us-1", "postgres", "DROP ROLE weak");
    assert_eq!(before, snapshot(&d), "a failed server add changed something");
}

#[test]
fn bad_tenant_input_changes_nothing() {
    let d = Deployment::start();
    d.ok(&["migrate"]);
    d.create("existing", "pooled", "us-1");
    let before = snapshot(&d);

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["tenant", "create", "Bad_Slug", "--placement", "pooled"], "invalid tenant slug"),
        (vec!["tenant", "create", "ab", "--placement", "pooled"], "shorter than 3"),
        (vec!["tenant", "create", "9lives", "--placement", "pooled"], "start with a lowercase letter"),
        (vec!["tenant", "create", "existing", "--placement", "pooled"], "already exists"),
        (vec!["tenant", "create", "newco", "--placement", "schema", "--server", "nowhere-1"], "no server \"nowhere-1\""),
        (vec!["tenant", "create", "newco", "--placement", "database", "--server", "us-1", "--residency", "eu-central"], "residency violation"),
        (vec!["tenant", "create", "newco", "--placement", "database", "--residency", "ap-south"], "no server in region"),
        (vec!["tenant", "create", "newco", "--placement", "sharded"], "invalid value 'sharded'"),
        (vec!["tenant", "show", "ghost"], "no tenant \"ghost\""),
        (vec!["tenant", "erase", "existing"], "--confirm existing"),
        (vec!["tenant", "erase", "existing", "--confirm", "other"], "--confirm existing"),
    ];
    for (args, expect) in cases {
        let err = d.fails(&args);
        assert!(err.contains(expect), "tenantgate {args:?}: expected {expect:?} in:\n{err}");
    }
    assert_eq!(before, snapshot(&d), "bad input changed the catalog or a server");

    // Missing master key: the config's key file is gone.
    let key = d.dir.path().join("master.key");
    std::fs::rename(&key, d.dir.path().join("master.key.bak")).expect("hide key");
    let err = d.fails(&["tenant", "create", "newco", "--placement", "schema", "--server", "us-1"]);
    assert!(err.contains("master key not available") && err.contains("TENANTGATE_MASTER_KEY"), "{err}");
    // A different key is detected by its fingerprint.
    std::fs::write(&key, tg_control::credentials::generate_master_key()).expect("write key");
    let err = d.fails(&["tenant", "create", "newco", "--placement", "schema", "--server", "us-1"]);
    assert!(err.contains("does not match"), "{err}");
    std::fs::rename(d.dir.path().join("master.key.bak"), &key).expect("restore key");
    assert_eq!(before, snapshot(&d), "a key problem changed something");

    // An unreachable server: nothing is recorded.
    d.eu.stop().expect("stop eu-1");
    let err = d.fails(&["tenant", "create", "newco", "--placement", "database", "--server", "eu-1"]);
    assert!(err.contains("cannot reach") && err.contains("eu-1"), "{err}");
    d.eu.start().expect("start eu-1");
    assert_eq!(before, snapshot(&d), "an unreachable server left something behind");
}

#[test]
fn create_in_every_placement_then_suspend_resume_erase() {
    let d = Deployment::start();
    d.ok(&["migrate"]);
    let p = d.create("pooled-co", "pooled", "us-1");
    let s = d.create("schema-co", "schema", "us-1");
    let db = d.create("database-co", "database", "eu-1");
    assert_eq!((p.database.as_str(), p.schema.as_str()), ("tg_pool", "app"));
    assert_eq!((s.database.as_str(), s.schema.as_str()), ("tg_bridge", s.key.as_str()));
    assert_eq!((db.database.as_str(), db.schema.as_str()), (db.key.as_str(), "app"));

    // Residency: a tenant pinned to eu-central lands on eu-1 without --server.
    d.ok(&["tenant", "create", "eu-only", "--placement", "database", "--residency", "eu-central"]);
    let eu = d.tenant("eu-only");
    assert_eq!(eu.server, "eu-1");
    let shown = d.json(&["tenant", "show", "eu-only", "--json"]);
    assert_eq!(shown["region"], "eu-central");
    assert_eq!(shown["residency"][0], "eu-central");

    let list = d.json(&["tenant", "list", "--json"]);
    assert_eq!(list.as_array().map(Vec::len), Some(4));
    for t in [&p, &s, &db] {
        let (ok, out) = d.psql_tenant(t, "INSERT INTO branches (name, city, country) VALUES ('Main', 'Springfield', 'US') RETURNING tenant_id");
        assert!(ok && out.contains(&t.key), "{}: {out}", t.slug);
        assert_roles_are_powerless(&d, t);
    }
    // No slug appears in any server-side name (DESIGN I5).
    for server in ["us-1", "eu-1"] {
        let names = d.admin(server, "postgres", "SELECT string_agg(rolname, ',') FROM pg_roles")
            + &d.admin(server, "postgres", "SELECT string_agg(datname, ',') FROM pg_database");
        for slug in ["pooled-co", "schema-co", "database-co", "eu-only"] {
            assert!(!names.contains(slug), "slug {slug} appears on {server}: {names}");
        }
    }

    // Suspend: the database itself refuses the tenant's logins.
    d.ok(&["tenant", "suspend", "schema-co"]);
    let (ok, out) = d.psql_tenant(&s, "SELECT 1");
    assert!(!ok && out.contains("not permitted to log in"), "{out}");
    assert_eq!(d.json(&["tenant", "show", "schema-co", "--json"])["status"], "suspended");
    d.ok(&["tenant", "resume", "schema-co"]);
    let (ok, out) = d.psql_tenant(&s, "SELECT count(*) FROM branches");
    assert!(ok && out.trim() == "1", "{out}");

    // Erase each placement: a certificate with counts before and after, and nothing left.
    for t in [&p, &s, &db] {
        let out = d.ok(&["tenant", "erase", &t.slug, "--confirm", &t.slug]);
        let cert: Value = serde_json::from_str(&out).expect("certificate JSON");
        assert_eq!(cert["tenant_key"], t.key.as_str());
        assert_eq!(cert["rows_before"], 1, "{out}");
        assert_eq!(cert["rows_after"], 0, "{out}");
        assert_eq!(cert["roles_exist_after"], false);
        assert_eq!(cert["container_exists_after"], false);
        let branches = cert["tables"].as_array().expect("tables").iter().find(|x| x["table"] == "branches").cloned();
        assert_eq!(branches.map(|b| b["rows_before"].clone()), Some(Value::from(1)));
        let err = d.fails(&["tenant", "show", &t.slug]);
        assert!(err.contains("no tenant"), "{err}");
        let tomb = d.admin("us-1", "tenantgate", &format!("SELECT certificate->>'tenant_slug' FROM tg.tombstones WHERE tenant_key = '{}'", t.key));
        assert_eq!(tomb, "<erased>", "the tombstone must not keep the slug");
    }
    assert_eq!(d.tenant_role_count("us-1"), 0);
    assert_eq!(d.tenant_role_count("eu-1"), 2, "only eu-only's roles remain");
    let left = d.admin("us-1", "tg_pool", "SELECT count(*) FROM app.branches");
    assert_eq!(left, "0");
    // The slug is free again.
    d.create("pooled-co", "pooled", "us-1");
}

/// I1: tenant roles hold no dangerous attribute and own nothing.
fn assert_roles_are_powerless(d: &Deployment, t: &Tenant) {
    let sql = format!(
        "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin \
         FROM pg_roles WHERE rolname IN ('{0}', '{0}_ro') ORDER BY 1",
        t.key
    );
    let out = d.admin(&t.server, "postgres", &sql);
    assert_eq!(out, format!("{0}|f|f|f|f|f|t\n{0}_ro|f|f|f|f|f|t", t.key));
    let owned = d.admin(
        &t.server,
        &t.database,
        &format!("SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname IN ('{0}', '{0}_ro')", t.key),
    );
    assert_eq!(owned, "0");
}

#[test]
fn failed_creation_rolls_back_and_a_crash_resumes() {
    let d = Deployment::start();
    d.ok(&["migrate"]);
    let before = snapshot(&d);

    // A failure after the container exists: rolled back, nothing left.
    for (placement, server) in [("schema", "us-1"), ("database", "eu-1"), ("pooled", "us-1")] {
        let args = ["tenant", "create", "flaky", "--placement", placement, "--server", server];
        let out = d.tg_env(&args, &[("TENANTGATE_FAILPOINT", "create:container")]);
        let err = common::fails_output(out, &args);
        assert!(err.contains("rolled back"), "{err}");
        assert_eq!(before, snapshot(&d), "rollback of a {placement} tenant left something behind");
        let ops = d.admin("us-1", "tenantgate", "SELECT state FROM tg.operations WHERE kind = 'create' ORDER BY id DESC LIMIT 1");
        assert_eq!(ops, "rolled_back");
    }

    // A crash (the process dies) after the roles exist: `show` says how to go on,
    // and running create again resumes.
    for (placement, server, step) in [("database", "eu-1", "roles"), ("schema", "us-1", "migrations")] {
        let slug = format!("crashy-{placement}");
        let args = ["tenant", "create", slug.as_str(), "--placement", placement, "--server", server];
        let out = d.tg_env(&args, &[("TENANTGATE_FAILPOINT", &format!("crash:create:{step}"))]);
        common::fails_output(out, &args);
        let shown = d.json(&["tenant", "show", &slug, "--json"]);
        assert_eq!(shown["status"], "provisioning");
        assert_eq!(shown["open_operation"]["step"], step);
        assert!(shown["next_step"].as_str().unwrap_or("").contains("to resume"), "{shown}");
        let text = d.ok(&["tenant", "show", &slug]);
        assert!(text.contains("interrupted"), "{text}");
        // A different placement is refused while it is half-made.
        let err = d.fails(&["tenant", "create", &slug, "--placement", "pooled", "--server", server]);
        assert!(err.contains("half-made"), "{err}");
        let out = d.ok(&args);
        assert!(out.contains("resumed"), "{out}");
        let t = d.tenant(&slug);
        let (ok, out) = d.psql_tenant(&t, "SELECT count(*) FROM orders");
        assert!(ok && out.trim() == "0", "{out}");
    }

    // An interrupted creation can also be erased instead.
    let args = ["tenant", "create", "abandoned", "--placement", "schema", "--server", "us-1"];
    common::fails_output(d.tg_env(&args, &[("TENANTGATE_FAILPOINT", "crash:create:container")]), &args);
    d.ok(&["tenant", "erase", "abandoned", "--confirm", "abandoned"]);
    d.fails(&["tenant", "show", "abandoned"]);
}

#[test]
fn concurrent_creates_all_succeed() {
    // Creates running at once rewrite the same database ACLs (tg_pool's CONNECT grants);
    // PostgreSQL reports the loser of such a race as XX000 "tuple concurrently updated".
    let d = Deployment::start();
    std::thread::scope(|s| {
        for i in 0..12 {
            let d = &d;
            let placement = ["pooled", "pooled", "schema"][i % 3];
            s.spawn(move || d.create(&format!("burst-{i:02}"), placement, "us-1"));
        }
    });
    let list = d.ok(&["tenant", "list"]);
    for i in 0..12 {
        assert!(list.contains(&format!("burst-{i:02}")), "burst-{i:02} in:\n{list}");
    }
}
