//! Data rights (issue #20): `tenant export`, `tenant import`, `tenant clone` and
//! `tenant export --all`, through the real binary against real clusters. A tenant's
//! content is compared by figures the tests compute themselves (not the tool's own
//! checksums), read as the tenant's own role where the catalog routes it.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use common::gateway::{create_key, Gateway};
use common::{Deployment, Tenant};
use serde_json::Value;

const TABLES: [&str; 4] = ["branches", "menu_items", "orders", "order_items"];

/// A fixed set of queries over the tenant's content (no tenant_id, which a clone or a
/// restore under a new key rewrites): per table a count and an order-independent hash of
/// every row as JSON without tenant_id, and a few app queries.
fn fingerprint(d: &Deployment, t: &Tenant) -> Vec<String> {
    let mut sql = String::new();
    for table in TABLES {
        sql.push_str(&format!(
            "SELECT '{table}', count(*), coalesce(sum(hashtext((to_jsonb(x) - 'tenant_id')::text)::numeric), 0) FROM {table} x;\n"
        ));
    }
    sql.push_str("SELECT name, city, country, opened_on FROM branches ORDER BY name;\n");
    sql.push_str("SELECT b.name, count(o.*), sum(o.total), sum(o.tip) FROM branches b LEFT JOIN orders o USING (tenant_id, branch_id) GROUP BY 1 ORDER BY 1;\n");
    sql.push_str("SELECT category, count(*), sum(price) FROM menu_items GROUP BY 1 ORDER BY 1;\n");
    sql.push_str("SELECT m.name, sum(i.quantity) FROM order_items i JOIN menu_items m USING (tenant_id, item_id) GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5;\n");
    let (ok, out) = d.psql_tenant(t, &sql);
    assert!(ok, "fingerprint of {}: {out}", t.slug);
    let lines: Vec<String> = out.lines().map(str::to_string).collect();
    assert!(lines.len() > 10, "fingerprint of {} is too small to mean anything: {lines:?}", t.slug);
    lines
}

fn export(d: &Deployment, slug: &str, file: &Path) -> Value {
    d.json(&["tenant", "export", slug, "--out", file.to_str().expect("path"), "--json"])
}

fn import(d: &Deployment, slug: &str, file: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["tenant", "import", slug, "--from", file.to_str().expect("path"), "--json"];
    args.extend_from_slice(extra);
    d.json(&args)
}

fn erase(d: &Deployment, slug: &str) {
    let cert = d.json(&["tenant", "erase", slug, "--confirm", slug]);
    // The certificate counts every table before and after.
    let tables = cert["tables"].as_array().expect("tables");
    assert_eq!(tables.len(), TABLES.len(), "{cert}");
    assert!(tables.iter().all(|t| t["rows_after"] == 0) && cert["rows_before"].as_i64().unwrap_or(0) > 0, "{cert}");
    if cert["placement"] == "pooled" {
        assert!(cert["removed"][0].as_str().unwrap_or("").contains("tables vacuumed"), "{cert}");
    }
    let err = d.fails(&["tenant", "show", slug]);
    assert!(err.contains("no tenant"), "{err}");
}

/// The tool's own per-table check: equal checksums on both sides, the expected tables.
fn assert_checks(v: &Value) {
    let checks = v["plan"]["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), TABLES.len(), "{v}");
    for c in checks {
        assert_eq!(c["archive_checksum"], c["target_checksum"], "{c}");
    }
}

/// Everything a failed import could have left behind, on both servers and in the catalog:
/// tenants, operations, migration targets, roles, tenant databases, tenant schemas and
/// pooled rows. (The shared `tg_pool` and `tg_bridge` databases a server gets on first use
/// are server infrastructure, as after a rolled-back `tenant create`; what is in them counts.)
fn footprint(d: &Deployment) -> Vec<String> {
    let mut f = vec![
        d.admin("us-1", "tenantgate", "SELECT string_agg(slug || ':' || status || ':' || key, ',' ORDER BY slug) FROM tg.tenants"),
        d.admin("us-1", "tenantgate", "SELECT count(*) FROM tg.operations WHERE state IN ('running','failed')"),
        d.admin("us-1", "tenantgate", "SELECT count(*) FROM tg.migration_targets"),
    ];
    for server in ["us-1", "eu-1"] {
        f.push(format!("{server} roles {}", d.tenant_role_count(server)));
        f.push(d.admin(server, "postgres", "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname NOT IN ('tg_pool', 'tg_bridge')"));
        for db in ["tg_pool", "tg_bridge"] {
            if d.admin(server, "postgres", &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'")) == "1" {
                f.push(d.admin(
                    server,
                    db,
                    "SELECT coalesce(string_agg(nspname, ',' ORDER BY nspname), '-') FROM pg_namespace WHERE nspname ~ '^t[0-9a-f]{12}$' OR nspname = 'app'",
                ));
            } else {
                f.push("-".into());
            }
        }
        if d.admin(server, "postgres", "SELECT count(*) FROM pg_database WHERE datname = 'tg_pool'") == "1" {
            for table in TABLES {
                f.push(d.admin(server, "tg_pool", &format!("SELECT '{server} {table} ' || count(*) FROM app.{table}")));
            }
        }
    }
    f
}

#[test]
fn export_erase_import_restores_each_placement_exactly_and_into_another() {
    let d = Deployment::start();
    d.ok(&["migrate"]);
    let dir = d.dir.path().to_path_buf();
    let neighbour = d.create("neighbour", "pooled", "us-1");
    d.plant_canary(&neighbour);
    let neighbour_before = fingerprint(&d, &neighbour);

    // (slug, placement, server) and a different placement to restore it into afterwards.
    let cases = [
        ("acme", "pooled", "us-1", "database", "eu-1"),
        ("bistro", "schema", "us-1", "pooled", "us-1"),
        ("cafe", "database", "eu-1", "schema", "us-1"),
    ];
    for (slug, placement, server, other_placement, other_server) in cases {
        let t = d.create(slug, placement, server);
        let canary = d.plant_canary(&t);
        let before = fingerprint(&d, &t);
        let file = dir.join(format!("{slug}.tar.zst"));
        let e = export(&d, slug, &file);
        assert_eq!(e["tables"].as_array().map(Vec::len), Some(TABLES.len()), "{e}");
        assert!(e["rows"].as_i64().unwrap_or(0) > 1000, "{e}");
        assert!(file.is_file() && !dir.join(format!("{slug}.tar.zst.partial")).exists());

        // Lost: erased. The archive's own slug restores it, in its placement by default.
        erase(&d, slug);
        let v = import(&d, slug, &file, &[]);
        assert_eq!(v["plan"]["kind"], "restore", "{v}");
        assert_checks(&v);
        let r = d.tenant(slug);
        assert_eq!((r.placement.as_str(), r.server.as_str()), (placement, server));
        assert_eq!(fingerprint(&d, &r), before, "{slug} restored in {placement} differs");
        let (ok, out) = d.psql_tenant(&r, &format!("SELECT count(*) FROM branches WHERE name = '{canary}'"));
        assert!(ok && out.trim() == "1", "{out}");
        // A restored tenant works: it can write.
        let (ok, out) = d.psql_tenant(&r, "INSERT INTO branches (name, city, country) VALUES ('after restore', 'X', 'XX')");
        assert!(ok, "{out}");

        // Lost again, and restored into another placement (and server) than it came from.
        erase(&d, slug);
        let v = import(&d, slug, &file, &["--placement", other_placement, "--server", other_server]);
        assert_checks(&v);
        let r = d.tenant(slug);
        assert_eq!((r.placement.as_str(), r.server.as_str()), (other_placement, other_server));
        assert_eq!(fingerprint(&d, &r), before, "{slug} restored from {placement} into {other_placement} differs");
    }
    // The pooled neighbour never noticed.
    assert_eq!(fingerprint(&d, &neighbour), neighbour_before);
    let open = d.admin("us-1", "tenantgate", "SELECT count(*) FROM tg.operations WHERE state IN ('running','failed')");
    assert_eq!(open, "0");

    // Scheduled exports: a retention count, and a failure named with a non-zero exit.
    let sched = dir.join("scheduled");
    std::fs::create_dir_all(&sched).expect("mkdir");
    let s = sched.to_str().expect("path");
    for _ in 0..3 {
        d.ok(&["tenant", "export", "--all", "--dir", s, "--keep", "2"]);
    }
    let files = |slug: &str| -> usize {
        std::fs::read_dir(&sched)
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{slug}-2")))
            .count()
    };
    for slug in ["acme", "bistro", "cafe", "neighbour"] {
        assert_eq!(files(slug), 2, "{slug} keeps 2 exports");
    }
    // acme lives on eu-1 now: with eu-1 down its export fails, the others are still written.
    d.eu.stop().expect("stop eu-1");
    let out = d.tg(&["tenant", "export", "--all", "--dir", s, "--keep", "2"]);
    d.eu.start().expect("start eu-1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an export failed but the exit was 0: {stderr}");
    assert!(stderr.contains("acme") && !stderr.contains("neighbour"), "{stderr}");
    assert_eq!(files("acme"), 2, "a failed export keeps the older ones");
    assert!(std::fs::read_dir(&sched).expect("dir").all(|e| !e.expect("entry").file_name().to_string_lossy().ends_with(".partial")));

    // The erasure certificate accounts for every copy: the scheduled exports still on disk
    // (and the pruned one, recorded but gone), and every region, including the one the
    // tenant left by a move. `tenant show` then shows only the tombstone.
    let v = d.json(&["tenant", "move", "neighbour", "--to", "database", "--server", "eu-1", "--json"]);
    assert_eq!(v["state"], "done", "{v}");
    let key = d.tenant("neighbour").key;
    let cert = d.json(&["tenant", "erase", "neighbour", "--confirm", "neighbour"]);
    let files = cert["exports"]["files"].as_array().expect("exports.files");
    let present: Vec<&Value> = files.iter().filter(|f| f["present"] == true).collect();
    assert_eq!((files.len(), present.len()), (4, 2), "four scheduled exports recorded, the newest two kept: {cert}");
    assert!(present.iter().all(|f| f["scheduled"] == true && f["file"].as_str().is_some_and(|p| p.starts_with(s))), "{cert}");
    let statement = cert["exports"]["statement"].as_str().unwrap_or("");
    assert!(statement.contains("2 export archive(s) still hold") && statement.contains("the operator's to delete"), "{statement}");
    let regions: Vec<(String, String)> = cert["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .map(|r| (r["region"].as_str().unwrap_or("").to_string(), r["how"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(regions.len(), 2, "{cert}");
    assert!(regions[0].0 == "eu-central" && regions[0].1.starts_with("current placement"), "{regions:?}");
    assert!(regions[1].0 == "us-east" && regions[1].1.starts_with("left by move #"), "{regions:?}");
    assert_eq!(cert["backups_elsewhere"].as_array().map(Vec::len), Some(1), "us-1's backups are accounted for too: {cert}");
    let out = d.tg(&["tenant", "show", "neighbour"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && stderr.contains("no tenant") && stderr.contains("erased"), "{stderr}");
    assert!(stdout.contains(&format!("(key {key})")) && stdout.contains("left by move") && !stdout.contains("neighbour"), "{stdout}");
    let out = d.tg(&["tenant", "show", "neighbour", "--json"]);
    let shown: Value = serde_json::from_slice(&out.stdout).expect("tombstone json");
    assert_eq!(shown["erased"], true);
    assert_eq!(shown["tombstones"][0]["tenant_key"], key.as_str());
    assert_eq!(shown["tombstones"][0]["certificate"]["tenant_slug"], "<erased>");
}

#[test]
fn a_clone_is_independent_of_its_original_through_the_gateway_gate_on_and_off() {
    let d = Deployment::start();
    d.ok(&["migrate"]);
    let orig = d.create("orig", "pooled", "us-1");
    let shared_canary = d.plant_canary(&orig);
    let before = fingerprint(&d, &orig);
    // One clone beside the original in the same pool (the hardest case: only tenant_id
    // separates them), one in a database of its own on the other server.
    let v = d.json(&["tenant", "clone", "orig", "sandbox", "--json"]);
    assert_eq!(v["plan"]["kind"], "clone", "{v}");
    assert_checks(&v);
    let v = d.json(&["tenant", "clone", "orig", "sandbox-db", "--placement", "database", "--server", "eu-1", "--json"]);
    assert_checks(&v);
    let sandbox = d.tenant("sandbox");
    let sandbox_db = d.tenant("sandbox-db");
    assert_eq!(sandbox.placement, "pooled");
    assert_ne!(sandbox.key, orig.key);
    for c in [&sandbox, &sandbox_db] {
        assert_eq!(fingerprint(&d, c), before, "clone {} differs from the original", c.slug);
    }
    // The clone's rows carry its own key: the pool holds the original's rows once for each.
    let n = |key: &str| d.admin("us-1", "tg_pool", &format!("SELECT count(*) FROM app.orders WHERE tenant_id = '{key}'"));
    assert_eq!(n(&orig.key), n(&sandbox.key));

    let (_, orig_key) = create_key(&d, "orig", false);
    let (_, sandbox_key) = create_key(&d, "sandbox", false);
    let (_, sandbox_db_key) = create_key(&d, "sandbox-db", false);
    let gw = Gateway::start(&d, "clones", "");
    let gw_off = Gateway::start(&d, "clones-off", "gate = false");
    // Writes to one never appear in the other: a new canary each, and a deletion in the clone.
    let mark = |slug: &str| format!("CANARY-new-{slug}-{}", &tg_control::credentials::generate_master_key()[..10]);
    let (orig_new, sandbox_new, db_new) = (mark("orig"), mark("sandbox"), mark("sandbox-db"));
    for (slug, key, canary) in [("orig", &orig_key, &orig_new), ("sandbox", &sandbox_key, &sandbox_new), ("sandbox-db", &sandbox_db_key, &db_new)] {
        let (ok, out) = gw.psql(slug, key, &format!("INSERT INTO branches (name, city, country) VALUES ('{canary}', 'X', 'XX');"));
        assert!(ok, "{slug}: {out}");
    }
    let (ok, out) = gw_off.psql("sandbox", &sandbox_key, "DELETE FROM order_items; DELETE FROM orders;");
    assert!(ok, "{out}");

    let all = [(&orig_new, "orig", &orig_key), (&sandbox_new, "sandbox", &sandbox_key), (&db_new, "sandbox-db", &sandbox_db_key)];
    for g in [&gw, &gw_off] {
        for (own, slug, key) in all {
            let (ok, out) = g.psql(slug, key, "SELECT name FROM branches WHERE name LIKE 'CANARY%' ORDER BY 1;");
            assert!(ok, "gateway {}, {slug}: {out}", g.name);
            assert!(out.contains(own.as_str()), "gateway {}: {slug} cannot read its own new row: {out}", g.name);
            assert!(out.contains(&shared_canary), "gateway {}: {slug} lost the copied rows: {out}", g.name);
            for (other, other_slug, _) in all {
                if other_slug != slug {
                    assert!(!out.contains(other.as_str()), "gateway {}: {slug} sees {other_slug}'s row: {out}", g.name);
                }
            }
            let (ok, out) = g.psql(slug, key, "SELECT count(*) FROM orders;");
            assert!(ok, "{out}");
            let orders: i64 = out.trim().parse().expect("count");
            if slug == "sandbox" {
                assert_eq!(orders, 0, "gateway {}: the clone's deletion did not hold", g.name);
            } else {
                assert!(orders > 100, "gateway {}: {slug} lost its orders to the clone's deletion: {orders}", g.name);
            }
        }
    }
    // As the database sees it: the original's rows are exactly as before plus its one new branch.
    let (ok, out) = d.psql_tenant(&orig, "SELECT count(*) FROM orders");
    assert!(ok && out.trim().parse::<i64>().unwrap_or(0) > 100, "{out}");
    // A clone of a slug that exists is refused, and so is cloning onto itself.
    let err = d.fails(&["tenant", "clone", "orig", "sandbox"]);
    assert!(err.contains("already exists"), "{err}");
    let err = d.fails(&["tenant", "clone", "orig", "orig"]);
    assert!(err.contains("new slug"), "{err}");
}

/// The entries of an archive: (name, bytes).
fn unpack(file: &Path) -> Vec<(String, Vec<u8>)> {
    let dec = zstd::Decoder::new(std::fs::File::open(file).expect("open")).expect("zstd");
    let mut ar = tar::Archive::new(dec);
    let mut out = Vec::new();
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = e.path().expect("path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("read");
        out.push((name, data));
    }
    out
}

fn pack(entries: &[(String, Vec<u8>)], file: &Path) {
    let enc = zstd::Encoder::new(std::fs::File::create(file).expect("create"), 3).expect("zstd");
    let mut b = tar::Builder::new(enc);
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data.as_slice()).expect("append");
    }
    b.into_inner().expect("tar").finish().expect("finish");
}

/// A copy of `file` whose manifest was changed by `edit`.
fn with_manifest(file: &Path, out: PathBuf, edit: impl Fn(&mut Value)) -> PathBuf {
    let mut entries = unpack(file);
    assert_eq!(entries[0].0, "manifest.json");
    let mut m: Value = serde_json::from_slice(&entries[0].1).expect("manifest");
    edit(&mut m);
    entries[0].1 = serde_json::to_vec(&m).expect("json");
    pack(&entries, &out);
    out
}

/// An archive, whole and with true checksums, whose order references a branch it does not
/// hold: made at a pooled source with the foreign-key triggers off, then the source erased.
fn dangling_archive(d: &Deployment, dir: &Path) -> PathBuf {
    let file = dir.join("dangling.tar.zst");
    let t = d.create("dangling-src", "pooled", "us-1");
    d.admin(
        "us-1",
        "tg_pool",
        &format!(
            "SET session_replication_role = replica; \
             INSERT INTO app.orders (tenant_id, branch_id, customer_name) VALUES ('{}', gen_random_uuid(), 'nobody')",
            t.key
        ),
    );
    export(d, "dangling-src", &file);
    erase(d, "dangling-src");
    file
}

/// Each `(slug, archive, options, expected error)` import fails with that error, says what
/// it kept, and leaves the deployment's footprint as it was.
fn refused_leaving_nothing(d: &Deployment, cases: &[(&str, &PathBuf, Vec<&str>, &str)], footprint_before: &[String]) {
    for (slug, file, extra, expect) in cases {
        let mut args = vec!["tenant", "import", slug, "--from", file.to_str().expect("path")];
        args.extend_from_slice(extra);
        let err = d.fails(&args);
        eprintln!("{slug}: {}", err.trim());
        assert!(err.contains(expect), "{slug}: expected {expect:?} in: {err}");
        assert!(err.contains("Nothing was") || err.contains("nothing was left behind"), "{slug}: the error does not say what was kept: {err}");
        assert_eq!(footprint(d), footprint_before, "{slug}: a refused import left something behind");
    }
}

#[test]
fn damaged_archives_a_checksum_mismatch_a_newer_schema_and_residency_are_refused_leaving_nothing() {
    let d = Deployment::start();
    d.ok(&["migrate"]);
    let src = d.create("src", "pooled", "us-1");
    d.plant_canary(&src);
    // Enough orders for several megabytes of COPY text: more than one data chunk, and a
    // corruption in the middle of the file lands well after the manifest.
    d.admin(
        "us-1",
        "tg_pool",
        &format!(
            "INSERT INTO app.orders (tenant_id, branch_id, customer_name, table_no) \
             SELECT '{k}', (SELECT branch_id FROM app.branches WHERE tenant_id = '{k}' LIMIT 1), 'guest ' || g, 1 + g % 40 \
             FROM generate_series(1, 40000) g",
            k = src.key
        ),
    );
    let before = fingerprint(&d, &src);
    let eu = d.tg(&["tenant", "create", "eu-only", "--placement", "schema", "--server", "eu-1", "--residency", "eu-central"]);
    assert!(eu.status.success());
    let dir = d.dir.path().to_path_buf();
    let good = dir.join("src.tar.zst");
    let manifest = export(&d, "src", &good);
    assert!(manifest["rows"].as_i64().unwrap_or(0) > 1000);
    let eu_file = dir.join("eu.tar.zst");
    export(&d, "eu-only", &eu_file);

    let bytes = std::fs::read(&good).expect("read");
    let truncated = dir.join("truncated.tar.zst");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let corrupt = dir.join("corrupt.tar.zst");
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    for b in &mut flipped[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&corrupt, &flipped).expect("write");
    let mismatch = with_manifest(&good, dir.join("mismatch.tar.zst"), |m| {
        m["tables"][2]["checksum"] = Value::String("123456789".into());
    });
    let undercount = with_manifest(&good, dir.join("undercount.tar.zst"), |m| {
        let n = m["tables"][0]["rows"].as_i64().expect("rows");
        m["tables"][0]["rows"] = Value::from(n - 1);
    });
    let newer = with_manifest(&good, dir.join("newer.tar.zst"), |m| m["schema_version"] = Value::from(99));
    // A data chunk whose last row carries another tenant's key (and a trailer to match is
    // impossible to forge without the data: here it does not even get that far).
    let foreign = dir.join("foreign.tar.zst");
    {
        let mut entries = unpack(&good);
        let (_, data) = entries.iter_mut().find(|(n, _)| n.starts_with("data/orders/")).expect("orders chunk");
        let text = String::from_utf8(data.clone()).expect("utf8").replacen(&src.key, "t0000000000aa", 1);
        *data = text.into_bytes();
        pack(&entries, &foreign);
    }
    // An archive, whole and with true checksums, whose order references a branch it does
    // not hold (made at the source with the foreign-key triggers off): the load, which runs
    // without those triggers, still refuses it.
    let dangling = dangling_archive(&d, &dir);

    let footprint_before = footprint(&d);
    let cases: Vec<(&str, &PathBuf, Vec<&str>, &str)> = vec![
        ("dangling", &dangling, vec![], "reference no row of the tenant's own"),
        ("truncated", &truncated, vec!["--placement", "database"], "truncated"),
        ("corrupt", &corrupt, vec!["--placement", "schema"], "corrupt"),
        ("mismatch-pooled", &mismatch, vec![], "does not match its manifest"),
        ("mismatch-db", &mismatch, vec!["--placement", "database", "--server", "eu-1"], "does not match its manifest"),
        ("undercount", &undercount, vec!["--placement", "schema"], "does not match its manifest"),
        ("newer", &newer, vec![], "newer than this deployment"),
        ("foreign", &foreign, vec![], "another tenant_id"),
        ("eu-copy", &eu_file, vec!["--server", "us-1"], "residency violation"),
    ];
    refused_leaving_nothing(&d, &cases, &footprint_before);
    // Refused as a restore of the same slug too, and `--replace` with a damaged archive
    // leaves the tenant's rows as they were, and the tenant active.
    let err = d.fails(&["tenant", "import", "src", "--from", good.to_str().expect("path")]);
    assert!(err.contains("--replace"), "{err}");
    for bad in [&mismatch, &truncated, &foreign] {
        let err = d.fails(&["tenant", "import", "src", "--from", bad.to_str().expect("path"), "--replace"]);
        assert!(err.contains("rolled back"), "{err}");
        assert_eq!(fingerprint(&d, &src), before);
        assert_eq!(d.tenant("src").key, src.key);
        let v = d.json(&["tenant", "show", "src", "--json"]);
        assert_eq!(v["status"], "active", "{v}");
    }
    assert_eq!(footprint(&d), footprint_before);

    // A good archive replaces the rows of a tenant that changed since (suspended meanwhile).
    let (ok, out) = d.psql_tenant(&src, "DELETE FROM order_items; DELETE FROM orders; UPDATE branches SET city = 'changed';");
    assert!(ok, "{out}");
    assert_ne!(fingerprint(&d, &src), before);
    let v = import(&d, "src", &good, &["--replace"]);
    assert_eq!(v["plan"]["kind"], "replace", "{v}");
    assert_checks(&v);
    assert_eq!(fingerprint(&d, &src), before);
    assert_eq!(d.json(&["tenant", "show", "src", "--json"])["status"], "active");

    // An import that dies after loading resumes from its recorded step when run again.
    let file = good.to_str().expect("path");
    let out = d.tg_env(&["tenant", "import", "resumed", "--from", file, "--placement", "schema"], &[("TENANTGATE_FAILPOINT", "crash:import:load")]);
    assert!(!out.status.success());
    let v = d.json(&["tenant", "show", "resumed", "--json"]);
    assert_eq!(v["status"], "provisioning", "{v}");
    assert!(v["next_step"].as_str().unwrap_or("").contains("tenant import resumed"), "{v}");
    let v = import(&d, "resumed", &good, &["--placement", "schema"]);
    assert_eq!(v["resumed"], true, "{v}");
    assert_eq!(fingerprint(&d, &d.tenant("resumed")), before);

    // An archive older than the registered migrations: migrated forward in a placement of
    // its own, refused for the shared pool (already at the newer version).
    std::fs::write(d.migrations_dir().join("0003_branch_notes.sql"), "ALTER TABLE branches ADD COLUMN note text;\n").expect("write");
    d.ok(&["migrate"]);
    let footprint_before = footprint(&d);
    let err = d.fails(&["tenant", "import", "old-pooled", "--from", file]);
    assert!(err.contains("older than the registered version"), "{err}");
    assert_eq!(footprint(&d), footprint_before);
    let v = import(&d, "old-schema", &good, &["--placement", "schema"]);
    assert_eq!((v["plan"]["archive_version"].as_i64(), v["plan"]["latest_version"].as_i64()), (Some(2), Some(3)), "{v}");
    assert_checks(&v);
    let old = d.tenant("old-schema");
    let (ok, out) = d.psql_tenant(&old, "SELECT count(*) FILTER (WHERE note IS NULL) || '/' || count(*) FROM branches");
    assert!(ok && out.trim() == "4/4", "{out}");
    let status = d.json(&["migrate", "status", "--json"]);
    let target = status["targets"].as_array().expect("targets").iter().find(|t| t["tenant"] == "old-schema").cloned().expect("target");
    assert_eq!(target["version"], 3, "{target}");
}

/// Every index and constraint of a tenant's tables as the database defines them: index
/// definitions and flags, constraint definitions (validated, deferrable) and each table's
/// replica identity, with the tenant's schema name replaced so that two tenants compare.
fn definitions(d: &Deployment, t: &Tenant) -> Vec<String> {
    let s = &t.schema;
    let sql = format!(
        "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ( \
           SELECT 'index ' || tablename || ': ' || indexdef FROM pg_indexes WHERE schemaname = '{s}' \
           UNION ALL \
           SELECT 'index flags ' || x.relname || ': unique=' || i.indisunique || ' primary=' || i.indisprimary || ' valid=' || i.indisvalid \
                  || ' ready=' || i.indisready || ' live=' || i.indislive || ' replident=' || i.indisreplident || ' clustered=' || i.indisclustered \
           FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid WHERE x.relnamespace = '{s}'::regnamespace \
           UNION ALL \
           SELECT 'constraint ' || c.relname || ' ' || k.conname || ' ' || k.contype::text || ': ' || pg_get_constraintdef(k.oid) \
                  || ' validated=' || k.convalidated || ' deferrable=' || k.condeferrable || ' deferred=' || k.condeferred \
                  || ' index=' || coalesce(k.conindid::regclass::text, '-') \
           FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE k.connamespace = '{s}'::regnamespace \
           UNION ALL \
           SELECT 'table ' || relname || ': replica identity ' || relreplident::text || ' kind ' || relkind::text \
           FROM pg_class WHERE relnamespace = '{s}'::regnamespace AND relkind IN ('r', 'p') \
         ) defs(x)"
    );
    let out = d.admin(&t.server, &t.database, &sql);
    let lines: Vec<String> = out.replace(s.as_str(), "<schema>").lines().map(str::to_string).collect();
    assert!(lines.iter().filter(|l| l.starts_with("index ")).count() >= 8, "too few indexes to mean anything: {lines:?}");
    lines
}

#[test]
fn a_deferred_index_load_recreates_every_key_exactly_and_refuses_duplicate_keys_leaving_nothing() {
    let d = Deployment::start();
    d.ok(&["migrate"]);
    let dir = d.dir.path().to_path_buf();
    let src = d.create("src", "pooled", "us-1");
    d.plant_canary(&src);
    let before = fingerprint(&d, &src);
    let good = dir.join("src.tar.zst");
    export(&d, "src", &good);

    // Into a tenant's own schema and own database, the indexes and keys are built after the
    // copy; they come back exactly as the migrations made them for a tenant created fresh.
    for (placement, server) in [("schema", "us-1"), ("database", "eu-1")] {
        let fresh = d.create(&format!("fresh-{placement}"), placement, server);
        let want = definitions(&d, &fresh);
        let slug = format!("copy-{placement}");
        let v = import(&d, &slug, &good, &["--placement", placement, "--server", server]);
        assert_eq!(v["plan"]["deferred_indexes"], true, "{v}");
        let parts: Vec<&str> = v["plan"]["load_phases"].as_array().expect("load_phases").iter().filter_map(|p| p["step"].as_str()).collect();
        assert!(parts.contains(&"indexes") && parts.contains(&"foreign_keys"), "{v}");
        assert_checks(&v);
        let t = d.tenant(&slug);
        assert_eq!(definitions(&d, &t), want, "{slug}: indexes or constraints differ from a fresh {placement} tenant's");
        assert_eq!(fingerprint(&d, &t), before, "{slug} differs from its source");
        // The keys hold: a duplicate primary key and a dangling reference are refused.
        let (ok, out) = d.psql_tenant(&t, "INSERT INTO branches SELECT * FROM branches LIMIT 1");
        assert!(!ok && out.contains("duplicate key"), "{out}");
        let (ok, out) = d.psql_tenant(&t, "INSERT INTO orders (branch_id) VALUES (gen_random_uuid())");
        assert!(!ok && out.contains("foreign key"), "{out}");
        // --replace into it (its objects emptied and rebuilt in the same way) keeps them too.
        let (ok, out) = d.psql_tenant(&t, "DELETE FROM order_items; UPDATE branches SET city = 'changed';");
        assert!(ok, "{out}");
        let v = import(&d, &slug, &good, &["--replace"]);
        assert_eq!((v["plan"]["kind"].as_str(), v["plan"]["deferred_indexes"].as_bool()), (Some("replace"), Some(true)), "{v}");
        assert_eq!(definitions(&d, &t), want, "{slug}: indexes or constraints differ after --replace");
        assert_eq!(fingerprint(&d, &t), before, "{slug} after --replace");
    }
    // Into the pool, whose indexes every pooled tenant shares, the load keeps them.
    let v = import(&d, "copy-pooled", &good, &["--placement", "pooled", "--server", "us-1"]);
    assert_eq!(v["plan"]["deferred_indexes"], false, "{v}");

    // An archive, whole and with true checksums, whose orders hold one primary key twice
    // (made at a source whose primary key was dropped), and one whose order references a
    // branch it does not hold (made with the foreign-key triggers off).
    let duplicate = dir.join("duplicate.tar.zst");
    {
        let t = d.create("dup-src", "database", "eu-1");
        d.plant_canary(&t);
        d.admin(
            "eu-1",
            &t.database,
            "ALTER TABLE app.orders DROP CONSTRAINT orders_pkey CASCADE; INSERT INTO app.orders SELECT * FROM app.orders LIMIT 1",
        );
        export(&d, "dup-src", &duplicate);
        erase(&d, "dup-src");
    }
    let dangling = dangling_archive(&d, &dir);
    let footprint_before = footprint(&d);
    let cases: Vec<(&str, &PathBuf, Vec<&str>, &str)> = vec![
        ("dup-db", &duplicate, vec!["--placement", "database", "--server", "eu-1"], "holds two rows with the same key of orders_pkey"),
        ("dup-schema", &duplicate, vec!["--placement", "schema", "--server", "us-1"], "holds two rows with the same key of orders_pkey"),
        ("dup-pooled", &duplicate, vec!["--placement", "pooled", "--server", "us-1"], "duplicate key"),
        ("dangling-db", &dangling, vec!["--placement", "database", "--server", "eu-1"], "reference no row of the tenant's own"),
        ("dangling-schema", &dangling, vec!["--placement", "schema", "--server", "us-1"], "reference no row of the tenant's own"),
    ];
    refused_leaving_nothing(&d, &cases, &footprint_before);
    // A replace with the duplicate archive leaves the tenant's rows, indexes and keys as they were.
    let t = d.tenant("copy-database");
    let want = definitions(&d, &t);
    let err = d.fails(&["tenant", "import", "copy-database", "--from", duplicate.to_str().expect("path"), "--replace"]);
    assert!(err.contains("rolled back") && err.contains("same key"), "{err}");
    assert_eq!(definitions(&d, &t), want);
    assert_eq!(fingerprint(&d, &t), before);
    assert_eq!(d.json(&["tenant", "show", "copy-database", "--json"])["status"], "active");
}
