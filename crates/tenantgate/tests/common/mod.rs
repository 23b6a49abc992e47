//! Test harness: a real two-server deployment (two PostgreSQL 15 clusters in two
//! regions), driven through the real `tenantgate` binary and real `psql`, as users run them.
#![allow(dead_code)]

pub mod gateway;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tg_control::credentials::MasterKey;
use tg_local::{Cluster, ClusterOptions};

pub struct Deployment {
    pub us: Cluster,
    pub eu: Cluster,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub master_key: String,
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repo root")
}

pub fn example_migrations() -> PathBuf {
    repo_root().join("examples/restaurant/migrations")
}

pub fn seed_sql() -> String {
    std::fs::read_to_string(repo_root().join("examples/restaurant/seed.sql")).expect("seed.sql")
}

impl Deployment {
    /// Two clusters (us-1 in us-east, eu-1 in eu-central), a config, and an initialised
    /// catalog with both servers registered. Migrations dir: a private copy of the example's.
    pub fn start() -> Deployment {
        let us = Cluster::start_temp(ClusterOptions { name: "us-1".into(), ..Default::default() }).expect("start us-1");
        let eu = Cluster::start_temp(ClusterOptions { name: "eu-1".into(), ..Default::default() }).expect("start eu-1");
        let dir = tempfile::tempdir().expect("tempdir");
        let mig = dir.path().join("migrations");
        std::fs::create_dir_all(&mig).expect("mkdir");
        for e in std::fs::read_dir(example_migrations()).expect("examples") {
            let p = e.expect("entry").path();
            std::fs::copy(&p, mig.join(p.file_name().expect("name"))).expect("copy");
        }
        let master_key = tg_control::credentials::generate_master_key();
        std::fs::write(dir.path().join("master.key"), &master_key).expect("key");
        let config = dir.path().join("tenantgate.toml");
        // The same deployment config `demo` writes (tg_local::deployment_toml).
        let toml = tg_local::deployment_toml(
            &[
                tg_local::LocalServer { name: "us-1", region: "us-east", cluster: &us },
                tg_local::LocalServer { name: "eu-1", region: "eu-central", cluster: &eu },
            ],
            "migrations",
            "",
        );
        std::fs::write(&config, toml).expect("config");
        let d = Deployment { us, eu, dir, config, master_key };
        d.ok(&["init"]);
        d
    }

    pub fn migrations_dir(&self) -> PathBuf {
        self.dir.path().join("migrations")
    }

    pub fn cluster(&self, server: &str) -> &Cluster {
        match server {
            "us-1" => &self.us,
            "eu-1" => &self.eu,
            other => panic!("no cluster {other}"),
        }
    }

    /// Run `tenantgate ARGS` with this deployment's config.
    pub fn tg(&self, args: &[&str]) -> Output {
        self.tg_env(args, &[])
    }

    pub fn tg_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenantgate"));
        cmd.args(args).env("TENANTGATE_CONFIG", &self.config).env_remove("TENANTGATE_FAILPOINT");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run tenantgate")
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.tg(args);
        assert!(
            out.status.success(),
            "tenantgate {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run and require failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        fails_output(self.tg(args), args)
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("tenantgate {args:?}: bad JSON ({e}):\n{out}"))
    }

    pub fn create(&self, slug: &str, placement: &str, server: &str) -> Tenant {
        self.ok(&["tenant", "create", slug, "--placement", placement, "--server", server]);
        self.tenant(slug)
    }

    pub fn tenant(&self, slug: &str) -> Tenant {
        let v = self.json(&["tenant", "show", slug, "--json"]);
        Tenant {
            slug: slug.into(),
            key: v["key"].as_str().expect("key").into(),
            placement: v["placement"].as_str().expect("placement").into(),
            server: v["server"].as_str().expect("server").into(),
            database: v["database"].as_str().expect("database").into(),
            schema: v["schema"].as_str().expect("schema").into(),
        }
    }

    pub fn role_password(&self, role: &str) -> String {
        MasterKey::from_bytes(self.master_key.as_bytes()).expect("key").role_password(role)
    }

    /// Run SQL through `psql` as `role` against `database` on `server`. Returns
    /// (success, stdout + stderr): everything a client could read, notices included.
    pub fn psql_as(&self, server: &str, role: &str, database: &str, sql: &str) -> (bool, String) {
        let c = self.cluster(server);
        let conn = format!("host={} port={} user={} dbname={}", c.host(), c.port(), role, database);
        psql(&conn, &self.role_password(role), sql)
    }

    pub fn psql_tenant(&self, t: &Tenant, sql: &str) -> (bool, String) {
        self.psql_as(&t.server, &t.key, &t.database, sql)
    }

    pub fn psql_tenant_ro(&self, t: &Tenant, sql: &str) -> (bool, String) {
        self.psql_as(&t.server, &format!("{}_ro", t.key), &t.database, sql)
    }

    /// Run SQL as the cluster's superuser; panics on error; returns trimmed stdout.
    pub fn admin(&self, server: &str, database: &str, sql: &str) -> String {
        let c = self.cluster(server);
        let conn = format!("host={} port={} user={} dbname={}", c.host(), c.port(), c.superuser(), database);
        let (ok, out) = psql(&conn, c.password(), sql);
        assert!(ok, "admin SQL failed on {server}/{database}: {sql}\n{out}");
        out.trim().to_string()
    }

    /// Seed a tenant with the example data and one canary branch; returns the canary.
    pub fn plant_canary(&self, t: &Tenant) -> String {
        let canary = format!("CANARY-{}-{}", t.slug, &tg_control::credentials::generate_master_key()[..12]);
        let (ok, out) = self.psql_tenant(t, &seed_sql());
        assert!(ok, "seeding {}: {out}", t.slug);
        let sql = format!(
            "INSERT INTO branches (name, city, country) VALUES ('{canary}', '{canary}', 'XX');\n\
             INSERT INTO menu_items (branch_id, name, category, price) SELECT branch_id, '{canary}', 'mains', 9.99 FROM branches WHERE name = '{canary}';"
        );
        let (ok, out) = self.psql_tenant(t, &sql);
        assert!(ok, "planting canary for {}: {out}", t.slug);
        canary
    }

    /// Count tenant-looking roles on a server (t + 12 hex digits, optional _ro).
    pub fn tenant_role_count(&self, server: &str) -> i64 {
        self.admin(server, "postgres", "SELECT count(*) FROM pg_roles WHERE rolname ~ '^t[0-9a-f]{12}(_ro)?$'")
            .parse()
            .expect("count")
    }
}

pub fn fails_output(out: Output, args: &[&str]) -> String {
    assert!(
        !out.status.success(),
        "tenantgate {args:?} unexpectedly succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// psql running the script `sql` from stdin.
pub fn psql(conn: &str, password: &str, sql: &str) -> (bool, String) {
    psql_run(conn, password, &["-f", "-"], Some(sql))
}

/// The tests' one way to run psql: unaligned, tuples only, stop on the first error, the
/// password from the environment, `args` after the connection string, `stdin` as its input.
/// Returns whether it succeeded and what it printed (stdout, then stderr).
pub fn psql_run(conn: &str, password: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("psql")
        .arg(conn)
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-q", "-A", "-t"])
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    if let (Some(sql), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(sql.as_bytes()).expect("write sql");
    }
    let out = child.wait_with_output().expect("psql output");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub slug: String,
    pub key: String,
    pub placement: String,
    pub server: String,
    pub database: String,
    pub schema: String,
}

/// A Python that imports every module in `modules`, installing `packages` with pip when one
/// is missing. Panics, saying what to install, when that fails: a client the tests name is
/// never skipped.
pub fn python_with(modules: &[&str], packages: &[&str]) -> String {
    let import = format!("import {}", modules.join(", "));
    let has = |py: &str| Command::new(py).args(["-c", &import]).status().map(|s| s.success()).unwrap_or(false);
    for py in ["python3", "python"] {
        if has(py) {
            return py.to_string();
        }
    }
    for py in ["python3", "python"] {
        let _ = Command::new(py).args(["-m", "pip", "install", "-q"]).args(packages).status();
        if has(py) {
            return py.to_string();
        }
    }
    panic!("Python with {modules:?} is not available and pip could not install it; run `python3 -m pip install {}`", packages.join(" "));
}
