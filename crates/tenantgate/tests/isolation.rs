//! Database-level isolation with no gateway in the path (DESIGN I1–I4).
//!
//! Seven tenants over all three placements and both servers, each with unique canary
//! markers. Connected directly to PostgreSQL as tenant A's own role, every attack on
//! every other tenant B must leave B's canary out of everything A can read (rows,
//! errors, notices) and B's rows unchanged. Positive controls make sure the attacks
//! really ran: A always sees its own canary.

mod common;

use common::{Deployment, Tenant};

const TENANTS: [(&str, &str, &str); 7] = [
    ("pool-a", "pooled", "us-1"),
    ("pool-b", "pooled", "us-1"),
    ("pool-eu", "pooled", "eu-1"),
    ("schema-a", "schema", "us-1"),
    ("schema-eu", "schema", "eu-1"),
    ("db-eu", "database", "eu-1"),
    ("db-us", "database", "us-1"),
];

struct Planted {
    t: Tenant,
    canary: String,
    branch_id: String,
}

fn attack_script(victim: &Planted) -> String {
    let v = &victim.t.key;
    let vb = &victim.branch_id;
    format!(
        r#"
\set ON_ERROR_STOP 0
SELECT * FROM branches;
SELECT * FROM menu_items;
SELECT * FROM branches WHERE tenant_id = '{v}';
SELECT * FROM branches WHERE tenant_id <> tenantgate.current_tenant() OR true;
SET app.tenant_id = '{v}';
SELECT * FROM branches;
SELECT set_config('app.tenant_id', '{v}', false), set_config('app.current_tenant', '{v}', false);
SELECT * FROM menu_items;
SET ROLE "{v}";
SELECT * FROM branches;
RESET ROLE;
SET ROLE tg_pool_rw;
SELECT * FROM branches;
RESET ROLE;
SET SESSION AUTHORIZATION "{v}";
SELECT * FROM branches;
BEGIN; SET LOCAL ROLE "{v}"; SELECT * FROM branches; ROLLBACK;
SELECT * FROM "{v}".branches;
SELECT * FROM "{v}".menu_items;
SELECT * FROM app.branches;
SELECT * FROM app.menu_items;
SELECT * FROM branches WHERE (name::int) > 0;
SELECT * FROM menu_items WHERE 1 / (CASE WHEN name LIKE 'CANARY%' THEN 0 ELSE 1 END) = 1;
SELECT most_common_vals::text, histogram_bounds::text FROM pg_stats WHERE tablename IN ('branches', 'menu_items');
SELECT relname, reltuples FROM pg_class WHERE relname = 'branches';
TRUNCATE branches;
TRUNCATE app.branches;
TRUNCATE "{v}".branches;
COPY branches TO STDOUT;
COPY (SELECT * FROM menu_items) TO STDOUT;
COPY "{v}".branches TO STDOUT;
UPDATE branches SET name = 'pwned' WHERE tenant_id = '{v}';
UPDATE "{v}".branches SET name = 'pwned';
DELETE FROM menu_items WHERE name LIKE 'CANARY%' AND tenant_id = '{v}';
INSERT INTO branches (tenant_id, name, city, country) VALUES ('{v}', 'pwned', 'x', 'XX');
UPDATE branches SET tenant_id = '{v}' WHERE name = 'Nowhere';
INSERT INTO menu_items (branch_id, name, category, price) VALUES ('{vb}', 'pwned', 'mains', 1);
INSERT INTO menu_items (tenant_id, branch_id, name, category, price) VALUES ('{v}', '{vb}', 'pwned', 'mains', 1);
INSERT INTO branches (branch_id, name, city, country) VALUES ('{vb}', 'dup-probe', 'x', 'XX') RETURNING 'unique-probe-inserted';
DELETE FROM branches WHERE name = 'dup-probe';
INSERT INTO branches (name, city, country) VALUES ('conflict', 'x', 'XX') ON CONFLICT DO NOTHING;
SELECT count(*) FROM branches WHERE name = 'conflict';
DELETE FROM branches WHERE name = 'conflict';
CREATE TABLE steal AS SELECT * FROM branches;
CREATE FUNCTION leak() RETURNS int LANGUAGE sql AS 'SELECT 1';
GRANT SELECT ON branches TO PUBLIC;
ALTER TABLE branches DISABLE ROW LEVEL SECURITY;
DROP POLICY tenant_isolation ON branches;
SELECT pg_read_file('PG_VERSION');
SELECT lo_import('/etc/passwd');
COPY branches FROM PROGRAM 'true';
SELECT * FROM branches;
"#
    )
}

#[test]
fn no_tenant_reaches_another_tenants_rows() {
    let d = Deployment::start();
    d.ok(&["migrate"]);
    let planted: Vec<Planted> = TENANTS
        .iter()
        .map(|(slug, placement, server)| {
            let t = d.create(slug, placement, server);
            let canary = d.plant_canary(&t);
            let (ok, out) = d.psql_tenant(&t, &format!("SELECT branch_id FROM branches WHERE name = '{canary}'"));
            assert!(ok, "{out}");
            Planted { branch_id: out.trim().to_string(), t, canary }
        })
        .collect();
    // Planner statistics exist, so a pg_stats leak would show.
    d.admin("us-1", "tg_pool", "ANALYZE");
    d.admin("eu-1", "tg_pool", "ANALYZE");

    for a in &planted {
        for v in planted.iter().filter(|v| v.t.key != a.t.key) {
            let (_, out) = d.psql_tenant(&a.t, &attack_script(v));
            assert!(!out.contains(&v.canary), "{} read {}'s canary:\n{out}", a.t.slug, v.t.slug);
            assert!(out.contains(&a.canary), "positive control: {} must see its own canary:\n{out}", a.t.slug);
            assert!(out.contains("unique-probe-inserted"), "a unique key must not reveal another tenant's value:\n{out}");
            assert!(out.contains("new row violates row-level security policy"), "{out}");
            // The victim's role is refused, or does not exist at all when it lives on another server.
            let role_refused = out.contains("permission denied to set role")
                || out.contains("permission denied to set session authorization")
                || (v.t.server != a.t.server && out.contains(&format!("role \"{}\" does not exist", v.t.key)));
            assert!(role_refused, "{out}");
            assert!(out.contains("must be owner of table branches") || out.contains("permission denied"), "{out}");

            // `\c` to the victim's database with A's credentials.
            let (_, out) = d.psql_as(&v.t.server, &a.t.key, &v.t.database, "SELECT * FROM branches; SELECT * FROM menu_items;");
            assert!(!out.contains(&v.canary), "{} reached {}'s database:\n{out}", a.t.slug, v.t.slug);
            if v.t.database != a.t.database || v.t.server != a.t.server {
                assert!(
                    out.contains("permission denied for database") || out.contains("password authentication failed"),
                    "{} could connect to {}'s database:\n{out}",
                    a.t.slug,
                    v.t.slug
                );
            }
        }
    }

    // Every victim's rows are intact, and nothing was written into them.
    for v in &planted {
        let (ok, out) = d.psql_tenant(&v.t, &format!(
            "SELECT count(*) FROM branches WHERE name = '{c}'; SELECT count(*) FROM menu_items WHERE name = '{c}'; \
             SELECT count(*) FROM branches WHERE name = 'pwned'; SELECT count(*) FROM menu_items WHERE name = 'pwned';",
            c = v.canary
        ));
        assert!(ok, "{out}");
        assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["1", "1", "0", "0"], "{} was changed:\n{out}", v.t.slug);
        let rls = d.admin(&v.t.server, &v.t.database, &format!(
            "SELECT bool_and(relrowsecurity AND relforcerowsecurity) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = '{}' AND relkind = 'r'", v.t.schema));
        assert_eq!(rls, "t", "RLS was switched off for {}", v.t.slug);
    }
}

#[test]
fn read_only_role_cannot_write_and_sees_only_its_tenant() {
    let d = Deployment::start();
    d.ok(&["migrate"]);
    let tenants: Vec<(Tenant, String)> = [("ro-pool", "pooled", "us-1"), ("ro-pool-2", "pooled", "us-1"), ("ro-schema", "schema", "us-1"), ("ro-db", "database", "eu-1")]
        .iter()
        .map(|(s, p, srv)| {
            let t = d.create(s, p, srv);
            let c = d.plant_canary(&t);
            (t, c)
        })
        .collect();
    for (t, canary) in &tenants {
        let (ok, out) = d.psql_tenant_ro(t, "SELECT name FROM branches ORDER BY name");
        assert!(ok && out.contains(canary.as_str()), "{}: {out}", t.slug);
        for (other, other_canary) in tenants.iter().filter(|(o, _)| o.key != t.key) {
            assert!(!out.contains(other_canary.as_str()), "{} read-only saw {}", t.slug, other.slug);
        }
        for sql in [
            "INSERT INTO branches (name, city, country) VALUES ('x', 'x', 'XX')",
            "UPDATE branches SET name = 'x'",
            "DELETE FROM order_items",
            "COPY branches FROM STDIN",
            "TRUNCATE orders",
            "SELECT nextval('x')",
        ] {
            let (ok, out) = d.psql_tenant_ro(t, sql);
            assert!(!ok && (out.contains("permission denied") || out.contains("does not exist") || out.contains("must be owner")), "{}: {sql} -> {out}", t.slug);
        }
        let (_, out) = d.psql_tenant(t, "SELECT count(*) FROM branches WHERE name = 'x'");
        assert_eq!(out.trim(), "0");
    }
}

/// DESIGN I3: the policy must not cost the index. A tenant's primary-key lookup uses
/// an index scan whose condition includes tenant_id, in every placement.
#[test]
fn rls_lookup_uses_the_tenant_leading_index() {
    let d = Deployment::start();
    d.ok(&["migrate"]);
    for (slug, placement, server) in [("idx-pool", "pooled", "us-1"), ("idx-pool-2", "pooled", "us-1"), ("idx-schema", "schema", "us-1"), ("idx-db", "database", "eu-1")] {
        let t = d.create(slug, placement, server);
        d.plant_canary(&t);
    }
    for slug in ["idx-pool", "idx-schema", "idx-db"] {
        let t = d.tenant(slug);
        d.admin(&t.server, &t.database, "ANALYZE");
        let (ok, id) = d.psql_tenant(&t, "SELECT order_id FROM orders ORDER BY placed_at LIMIT 1");
        assert!(ok, "{id}");
        let (ok, plan) = d.psql_tenant(&t, &format!("EXPLAIN SELECT * FROM orders WHERE order_id = '{}'", id.trim()));
        assert!(ok, "{plan}");
        assert!(plan.contains("Index Scan using orders_pkey"), "{slug}: expected a primary-key index scan:\n{plan}");
        let cond = plan.lines().find(|l| l.contains("Index Cond")).unwrap_or("");
        assert!(cond.contains("tenant_id"), "{slug}: the tenant_id predicate must be an index condition, not a filter:\n{plan}");
        assert!(!plan.contains("Seq Scan"), "{slug}: {plan}");
    }
}
