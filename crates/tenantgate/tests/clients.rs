//! Drop-in clients (issue #17): what real apps and tools do first, through `tenantgate serve`,
//! for one tenant per placement, with the gate on (strict catalog mode, the default) and off.
//!
//! - Python (`tests/clients/python_clients.py`): asyncpg (typed parameters with arrays and
//!   uuids, a pool, cancel), SQLAlchemy 2 on psycopg and on asyncpg (ORM, `inspect()`
//!   reflection of tables, columns, keys and indexes), Django (`inspectdb`, introspection);
//! - pgjdbc (`tests/clients/JdbcClient.java`): prepared statements, a batch, and
//!   `DatabaseMetaData` (tables, columns, primary and imported keys, indexes).
//!
//! Each client must see its tenant's own tables, columns and comments and its own canary, and
//! nothing it prints may hold another tenant's key (its roles, schema and database are named
//! from it) or canary. With the gate off the database alone isolates rows; the catalog is
//! then the stock one, so only rows (canaries) are checked there.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::gateway::{self as gw, Gateway};
use common::{Deployment, Tenant};

struct T {
    t: Tenant,
    canary: String,
    key: String,
}

const TENANTS: [(&str, &str, &str); 4] = [
    ("cl-pool", "pooled", "us-1"),
    ("cl-pool-other", "pooled", "us-1"),
    ("cl-schema", "schema", "us-1"),
    ("cl-db", "database", "eu-1"),
];

/// The tables of the example app, as every client must list them.
const APP_TABLES: [&str; 4] = ["branches", "menu_items", "order_items", "orders"];

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// pgjdbc: Debian's package (scripts/install-deps.sh installs it).
fn pgjdbc_jar() -> PathBuf {
    let jar = PathBuf::from("/usr/share/java/postgresql.jar");
    assert!(jar.exists(), "pgjdbc is missing: install Debian's libpostgresql-jdbc-java (scripts/install-deps.sh does)");
    jar
}

/// What must never appear in anything `x` reads: every other tenant's key and canary.
fn secrets_of_others<'a>(x: &T, tenants: &'a [T]) -> Vec<&'a str> {
    tenants.iter().filter(|o| o.t.key != x.t.key).flat_map(|o| [o.t.key.as_str(), o.canary.as_str()]).collect()
}

#[test]
fn real_clients_work_unchanged_and_see_only_their_tenant() {
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
    let on = Gateway::start(&d, "on", "");
    let off = Gateway::start(&d, "off", "gate = false");
    let py = common::python_with(&["asyncpg", "sqlalchemy", "greenlet", "django", "psycopg"], &["asyncpg", "sqlalchemy[asyncio]>=2", "django", "psycopg[binary]"]);
    let jar = pgjdbc_jar();

    for x in tenants.iter().filter(|x| x.t.slug != "cl-pool-other") {
        for g in [&on, &off] {
            python_clients(&py, g, x, &tenants);
            jdbc_client(&jar, g, x, &tenants);
        }
    }
}

fn python_clients(py: &str, g: &Gateway, x: &T, tenants: &[T]) {
    let script = clients_dir().join("python_clients.py");
    let out = Command::new(py)
        .arg(&script)
        .args([&g.port.to_string(), &x.t.slug, &x.key, &x.canary])
        .output()
        .expect("python");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let who = format!("{} through gateway {}", x.t.slug, g.name);
    assert!(out.status.success(), "{who}: the Python clients script failed:\n{all}");
    for s in secrets_of_others(x, tenants) {
        if g.name == "on" || s.starts_with("CANARY") {
            assert!(!all.contains(s), "{who}: another tenant's {s:?} appears in what the clients read:\n{all}");
        }
    }
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{who}: not JSON ({e}):\n{all}"));
    for section in ["asyncpg", "sqlalchemy_psycopg", "sqlalchemy_asyncpg", "django"] {
        assert!(v[section].get("error").is_none(), "{who}: {section} failed:\n{}", v[section]["trace"].as_str().unwrap_or(""));
    }

    let a = &v["asyncpg"];
    assert_eq!(a["int_array"], serde_json::json!([1, 2]), "{who}: {a}");
    assert_eq!(a["own_canary"], true, "{who}: {a}");
    assert_eq!(a["uuid_param"], true, "{who}: {a}");
    assert_eq!(a["numeric"], "9.99", "{who}: {a}");
    assert_eq!(a["cancelled"], true, "{who}: {a}");
    assert_eq!(a["after_cancel"], 1, "{who}: {a}");
    assert_eq!(a["pool"], serde_json::json!((0..20).collect::<Vec<i32>>()), "{who}: {a}");

    for section in ["sqlalchemy_psycopg", "sqlalchemy_asyncpg"] {
        let s = &v[section];
        assert_eq!(s["own_canary"], true, "{who} {section}: {s}");
        let r = &s["reflect"];
        // The stock catalog (gate off) shows the same for this tenant's own schema.
        assert_eq!(r["tables"], serde_json::json!(APP_TABLES), "{who} {section}: {r}");
        let cols: Vec<&str> = r["orders_columns"].as_array().map(|a| a.iter().filter_map(|c| c.as_str()).collect()).unwrap_or_default();
        for c in ["tenant_id", "order_id", "branch_id", "placed_at", "total", "tip"] {
            assert!(cols.contains(&c), "{who} {section}: column {c} missing: {r}");
        }
        assert!(r["orders_comments"]["tip"].as_str().is_some_and(|c| c.starts_with("Tip left by the customer")), "{who} {section}: {r}");
        assert_eq!(r["orders_pk"], serde_json::json!(["tenant_id", "order_id"]), "{who} {section}: {r}");
        assert_eq!(
            r["menu_items_fks"],
            serde_json::json!([["branches", ["tenant_id", "branch_id"], ["tenant_id", "branch_id"]]]),
            "{who} {section}: {r}"
        );
        assert_eq!(r["orders_indexes"], serde_json::json!(["orders_by_branch_time", "orders_by_time"]), "{who} {section}: {r}");
        assert!(r["orders_table_comment"].as_str().is_some_and(|c| c.starts_with("Customer orders")), "{who} {section}: {r}");
    }

    let dj = &v["django"];
    assert_eq!(dj["tables"], serde_json::json!(APP_TABLES), "{who}: {dj}");
    assert_eq!(dj["orders_pk"], serde_json::json!(["tenant_id", "order_id"]), "{who}: {dj}");
    assert!(dj["orders_relations"].as_array().is_some_and(|r| !r.is_empty()), "{who}: {dj}");
    let inspectdb = dj["inspectdb"].as_str().unwrap_or("");
    for model in ["class Branches(models.Model)", "class MenuItems(models.Model)", "class Orders(models.Model)", "db_table = 'orders'"] {
        assert!(inspectdb.contains(model), "{who}: inspectdb lacks {model:?}:\n{inspectdb}");
    }
}

fn jdbc_client(jar: &std::path::Path, g: &Gateway, x: &T, tenants: &[T]) {
    let out = Command::new("java")
        .arg("-cp")
        .arg(jar)
        .arg(clients_dir().join("JdbcClient.java"))
        .args([&g.port.to_string(), &x.t.slug, &x.key, &x.canary])
        .output()
        .expect("java (a JDK 11 or later runs single-file programs)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let who = format!("{} through gateway {} (pgjdbc)", x.t.slug, g.name);
    assert!(out.status.success(), "{who}: failed:\n{all}");
    for s in secrets_of_others(x, tenants) {
        if g.name == "on" || s.starts_with("CANARY") {
            assert!(!all.contains(s), "{who}: another tenant's {s:?} appears in what JDBC read:\n{all}");
        }
    }
    let fact = |name: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}|")).map(str::to_owned))
            .unwrap_or_else(|| panic!("{who}: no {name} in:\n{all}"))
    };
    for i in 0..3 {
        assert_eq!(fact(&format!("own_canary_{i}")), "true", "{who}");
    }
    assert_eq!(fact("batch_inserted"), "5", "{who}");
    assert_eq!(fact("batch_visible_in_tx"), "5", "{who}");
    assert_eq!(fact("batch_after_rollback"), "0", "{who}");
    for t in APP_TABLES {
        assert!(fact("tables").contains(t), "{who}: getTables lacks {t}:\n{all}");
    }
    assert!(fact("orders_columns").contains("tip") && fact("orders_columns").contains("placed_at"), "{who}:\n{all}");
    assert!(stdout.contains("column|tip numeric Tip left by the customer"), "{who}: getColumns carries the comments:\n{all}");
    assert_eq!(fact("orders_pk"), "[tenant_id, order_id]", "{who}");
    assert_eq!(fact("menu_items_fks"), "[branches.branch_id<-branch_id, branches.tenant_id<-tenant_id]", "{who}");
    assert!(fact("orders_indexes").contains("orders_by_time") && fact("orders_indexes").contains("orders_pkey"), "{who}:\n{all}");
}
