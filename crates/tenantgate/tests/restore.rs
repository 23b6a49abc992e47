//! Point-in-time restore of one tenant (issue #20, item 4) and the erasure certificate's
//! account of backups (item 6), through the real binary, real clusters archiving their WAL
//! with a real pgBackRest, and a real recovery into a scratch cluster.
//!
//! pgBackRest is required: `make test` installs it (scripts/install-deps.sh). Without it
//! the test fails, saying so; it never skips.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Deployment, Tenant};
use tg_local::{Cluster, ClusterOptions};

fn pgbackrest_bin() -> PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("pgbackrest")).find(|p| p.is_file()));
    let ok = found.as_ref().is_some_and(|p| Command::new(p).arg("version").output().is_ok_and(|o| o.status.success()));
    assert!(
        ok,
        "pgbackrest is not installed, so point-in-time restore cannot be tested: run `make deps` \
         (scripts/install-deps.sh installs the Debian package pgbackrest) or `apt-get install pgbackrest`"
    );
    found.unwrap_or_default()
}

/// The two-server deployment of `common`, with us-1 archiving its WAL into a pgBackRest
/// repository in its own directory (readable by the servers' OS user).
fn start_with_backups() -> (Deployment, tempfile::TempDir) {
    let bin = pgbackrest_bin();
    let backups = tempfile::tempdir().expect("tempdir");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(backups.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let repo = backups.path().join("repo");
    let archive = tg_control::backup::archive_command(&bin, &repo.join(tg_control::backup::CONFIG_FILE), "us-1");
    let us = Cluster::start_temp(ClusterOptions {
        name: "us-1".into(),
        extra_conf: vec![("archive_mode".into(), "on".into()), ("archive_command".into(), archive)],
        ..Default::default()
    })
    .expect("start us-1");
    let eu = Cluster::start_temp(ClusterOptions { name: "eu-1".into(), ..Default::default() }).expect("start eu-1");
    let dir = tempfile::tempdir().expect("tempdir");
    let mig = dir.path().join("migrations");
    std::fs::create_dir_all(&mig).expect("mkdir");
    for e in std::fs::read_dir(common::example_migrations()).expect("examples") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, mig.join(p.file_name().expect("name"))).expect("copy");
    }
    let master_key = tg_control::credentials::generate_master_key();
    std::fs::write(dir.path().join("master.key"), &master_key).expect("key");
    let config = dir.path().join("tenantgate.toml");
    let us_server = tg_local::LocalServer { name: "us-1", region: "us-east", cluster: &us };
    let backup = tg_local::backup_toml(&[tg_local::LocalServer { name: "us-1", region: "us-east", cluster: &us }], &repo.display().to_string(), 2);
    let toml = tg_local::deployment_toml(&[us_server, tg_local::LocalServer { name: "eu-1", region: "eu-central", cluster: &eu }], "migrations", &backup);
    std::fs::write(&config, toml).expect("config");
    let d = Deployment { us, eu, dir, config, master_key };
    d.ok(&["init"]);
    (d, backups)
}

fn names(d: &Deployment, t: &Tenant) -> BTreeSet<String> {
    let (ok, out) = d.psql_tenant(t, "SELECT name FROM branches ORDER BY name");
    assert!(ok, "reading {}'s branches: {out}", t.slug);
    out.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}

fn write(d: &Deployment, t: &Tenant, sql: &str) {
    let (ok, out) = d.psql_tenant(t, sql);
    assert!(ok, "writing to {}: {sql}: {out}", t.slug);
}

fn insert(prefix: &str, n: u32) -> String {
    format!("INSERT INTO branches (name, city, country) SELECT '{prefix}-' || lpad(g::text, 3, '0'), 'x', 'XX' FROM generate_series(1, {n}) g;")
}

fn set(prefix: &str, range: std::ops::RangeInclusive<u32>) -> BTreeSet<String> {
    range.map(|i| format!("{prefix}-{i:03}")).collect()
}

/// Scratch clusters left in the repository, and postgres processes running on one.
fn scratch_left(repo: &Path) -> Vec<String> {
    let mut left: Vec<String> = std::fs::read_dir(repo.join("scratch"))
        .map(|r| r.flatten().map(|e| e.path().display().to_string()).collect())
        .unwrap_or_default();
    let ps = Command::new("ps").args(["-eo", "args"]).output().expect("ps");
    let scratch = repo.join("scratch").display().to_string();
    left.extend(String::from_utf8_lossy(&ps.stdout).lines().filter(|l| l.contains(&scratch) && !l.contains("ps -eo")).map(String::from));
    left
}

/// What a refused restore must leave as it was: the catalog's tenants and operations, each
/// server's databases and roles, and the pool's rows per tenant.
fn state(d: &Deployment) -> Vec<String> {
    let mut s = vec![
        d.admin("us-1", "tenantgate", "SELECT string_agg(slug || ':' || status, ',' ORDER BY slug) FROM tg.tenants"),
        d.admin("us-1", "tenantgate", "SELECT count(*) || ':' || coalesce(max(id), 0) FROM tg.operations"),
    ];
    for server in ["us-1", "eu-1"] {
        s.push(d.admin(server, "postgres", "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database"));
        s.push(d.admin(server, "postgres", "SELECT string_agg(rolname || ':' || rolcanlogin, ',' ORDER BY rolname) FROM pg_roles"));
    }
    s.push(d.admin("us-1", "tg_pool", "SELECT string_agg(tenant_id || ':' || n, ',' ORDER BY tenant_id) FROM (SELECT tenant_id, count(*) n FROM app.branches GROUP BY 1) x"));
    s
}

#[test]
fn point_in_time_restore_of_one_pooled_tenant() {
    let started = std::time::Instant::now();
    let (d, backups) = start_with_backups();
    let repo = backups.path().join("repo");
    d.ok(&["migrate"]);
    let acme = d.create("acme", "pooled", "us-1");
    let other = d.create("other", "pooled", "us-1");
    write(&d, &other, &insert("O", 5));

    // Before any backup: a restore is refused, saying what to do, and leaves nothing.
    let now = d.admin("us-1", "postgres", "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    let err = d.fails(&["tenant", "restore", "acme", "--at", &now, "--as", "acme-then"]);
    assert!(err.contains("no pgBackRest backup yet") && err.contains("backup run"), "{err}");

    let run = d.json(&["backup", "run", "--server", "us-1", "--json"]);
    let label = run[0]["backups"][0]["label"].as_str().expect("a backup label").to_string();
    assert_eq!(run[0]["backups"][0]["kind"], "full", "{run}");

    // Rows A, then the time T, then rows B and some of A deleted; the neighbour writes too.
    write(&d, &acme, &insert("A", 20));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t = d.admin("us-1", "postgres", "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    std::thread::sleep(std::time::Duration::from_millis(300));
    write(&d, &acme, &format!("{} DELETE FROM branches WHERE name <= 'A-005';", insert("B", 10)));
    write(&d, &other, &insert("P", 7));
    d.admin("us-1", "postgres", "SELECT pg_switch_wal()");
    let rows_a = set("A", 1..=20);
    let acme_now: BTreeSet<String> = set("A", 6..=20).union(&set("B", 1..=10)).cloned().collect();
    assert_eq!(names(&d, &acme), acme_now);
    let other_now = names(&d, &other);
    assert_eq!(other_now, set("O", 1..=5).union(&set("P", 1..=7)).cloned().collect());

    // A time outside the recovery window is refused clearly and changes nothing: not the
    // catalog, not the servers, and no scratch cluster is left. Before the tenant existed;
    // after it was created but before the oldest backup ended (`now`, taken before the
    // backup); in the future (past the last WAL there can be), as a clone or in place.
    let before = state(&d);
    let err = d.fails(&["tenant", "restore", "acme", "--at", "2020-01-01T00:00:00Z", "--as", "acme-then"]);
    assert!(err.contains("created at") && err.contains("Nothing was restored"), "{err}");
    let err = d.fails(&["tenant", "restore", "acme", "--at", &now, "--as", "acme-then"]);
    assert!(err.contains("before the recovery window") && err.contains("oldest backup"), "{err}");
    assert!(err.contains("nothing was restored") && err.contains("backup status"), "{err}");
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    for how in [["--as", "acme-then"], ["--replace", "--json"]] {
        let err = d.fails(&["tenant", "restore", "acme", "--at", &future, how[0], how[1]]);
        assert!(err.contains("in the future") && err.contains("Nothing was restored"), "{err}");
    }
    assert_eq!(state(&d), before, "a refused restore changed the catalog or a server");
    assert!(scratch_left(&repo).is_empty(), "scratch cluster left behind: {:?}", scratch_left(&repo));
    let err = d.fails(&["tenant", "restore", "acme", "--at", &t]);
    assert!(err.contains("--replace") && err.contains("--as"), "{err}");

    // --as NEW: exactly rows A, in a new tenant; the original and the neighbour unchanged.
    let t0 = std::time::Instant::now();
    let v = d.json(&["tenant", "restore", "acme", "--at", &t, "--as", "acme-then", "--json"]);
    let as_ms = t0.elapsed().as_millis();
    assert_eq!(v["backup"], label.as_str(), "{v}");
    assert_eq!(v["imported"]["plan"]["kind"], "clone", "{v}");
    let then = d.tenant("acme-then");
    assert_ne!(then.key, acme.key);
    assert_eq!(names(&d, &then), rows_a, "the restore as a new tenant holds exactly rows A");
    assert_eq!(names(&d, &acme), acme_now, "the original is untouched by a restore --as");
    assert_eq!(names(&d, &other), other_now, "the pool neighbour, written to after T, is unaffected");
    assert!(scratch_left(&repo).is_empty(), "scratch cluster left behind: {:?}", scratch_left(&repo));

    // --replace: the original, in place, back to rows A; still active, same key.
    let v = d.json(&["tenant", "restore", "acme", "--at", &t, "--replace", "--json"]);
    assert_eq!(v["imported"]["plan"]["kind"], "replace", "{v}");
    let acme_after = d.tenant("acme");
    assert_eq!(acme_after.key, acme.key);
    assert_eq!(d.json(&["tenant", "show", "acme", "--json"])["status"], "active");
    assert_eq!(names(&d, &acme), rows_a, "restore --replace gives the tenant exactly rows A again");
    assert_eq!(names(&d, &other), other_now, "the pool neighbour is unaffected by --replace");
    assert_eq!(names(&d, &then), rows_a);
    assert!(scratch_left(&repo).is_empty(), "scratch cluster left behind: {:?}", scratch_left(&repo));

    // backup status: the backup and a recovery window that covers T.
    let st = d.json(&["backup", "status", "--json"]);
    let us = &st[0];
    assert_eq!(us["server"], "us-1", "{st}");
    assert!(us["backups"].as_array().expect("backups").iter().any(|b| b["label"] == label.as_str()), "{st}");
    let from = us["recoverable_from"].as_str().expect("window start");
    let to = us["recoverable_to"].as_str().expect("window end");
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).expect("time");
    assert!(at(from) <= at(&t) && at(&t) <= at(to), "T {t} outside the window {from}..{to}");
    let text = d.ok(&["backup", "status"]);
    assert!(text.contains("recovery window") && text.contains(&label), "{text}");

    // Erasure: the certificate names the backup that still holds the tenant, and when it expires.
    let cert = d.json(&["tenant", "erase", "acme", "--confirm", "acme"]);
    let b = &cert["backups"];
    assert_eq!(b["checked"], true, "{cert}");
    let held = b["held_by"].as_array().expect("held_by");
    assert!(held.iter().any(|h| h["label"] == label.as_str() && h["expires_after_full_backups"] == 2), "{cert}");
    assert!(b["statement"].as_str().unwrap_or("").contains(&label) || b["statement"].as_str().unwrap_or("").contains("backup(s)"), "{cert}");
    assert!(b["wal_from"].is_string() && b["wal_to"].is_string(), "{cert}");
    // Nothing secret in what the commands print.
    assert!(!cert.to_string().contains(d.us.password()) && !st.to_string().contains(d.us.password()));
    eprintln!("restore test: restore --as {as_ms} ms, whole test {} ms", started.elapsed().as_millis());
}
