//! `tenantgate demo`: the embedded default. Two local clusters under `./.tenantgate`
//! (regions us-east and eu-central), the catalog, the example restaurant app, one
//! tenant per placement with seed data, and a summary with connection lines.
//!
//! A second run reuses everything that exists; `--reset` starts over. It drives the
//! same library calls as the individual commands; it has no shortcuts of its own.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use tg_control::catalog::Catalog;
use tg_control::config::Config;
use tg_control::migrate::{self, fanout};
use tg_control::model::{Placement, TenantStatus};
use tg_control::placement;
use tg_control::{credentials, servers, tenants};
use tg_local::{Cluster, ClusterOptions};

use crate::cli::DemoArgs;

const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init.sql", include_str!("../../../examples/restaurant/migrations/0001_init.sql")),
    ("0002_tips.sql", include_str!("../../../examples/restaurant/migrations/0002_tips.sql")),
];
const SEED: &str = include_str!("../../../examples/restaurant/seed.sql");
/// The measured move benchmark (bench/move.sh), which the demo's questionnaire cites.
const MOVE_BENCHMARK: &str = include_str!("../../../bench/results/move-benchmark.json");
/// The measured restore benchmark (bench/restore.sh), which the demo's questionnaire cites.
const RESTORE_BENCHMARK: &str = include_str!("../../../bench/results/restore-benchmark.json");

struct DemoServer {
    name: &'static str,
    region: &'static str,
}
const SERVERS: [DemoServer; 2] =
    [DemoServer { name: "us-1", region: "us-east" }, DemoServer { name: "eu-1", region: "eu-central" }];

/// The demo's pgBackRest repository, under the demo directory.
const BACKUP_REPO: &str = "backups";

/// A first full backup of each demo server, so `tenant restore --at` works at once. A
/// failure is a warning: the demo runs without point-in-time restore.
async fn ensure_backups(cfg: &Config, cat: &Catalog) {
    let have = match tg_control::backup::status(cfg, cat).await {
        Ok(list) => list.iter().all(|s| !s.backups.is_empty()),
        Err(_) => false,
    };
    if have {
        return;
    }
    println!("taking a first pgBackRest backup of each server ...");
    if let Err(e) = tg_control::backup::run(cfg, cat, None, "full").await {
        println!(
            "warning: no backup was taken ({e}); `tenant restore --at` needs one. Install pgbackrest (`make deps`), \
             restart the clusters (`tenantgate demo --stop`, then `tenantgate demo`) and run `tenantgate backup run`"
        );
    }
}

struct DemoTenant {
    slug: &'static str,
    placement: Placement,
    server: &'static str,
    residency: &'static [&'static str],
}
const TENANTS: [DemoTenant; 3] = [
    DemoTenant { slug: "pasta-palace", placement: Placement::Pooled, server: "us-1", residency: &[] },
    DemoTenant { slug: "burger-barn", placement: Placement::Schema, server: "us-1", residency: &[] },
    DemoTenant { slug: "brasserie-berlin", placement: Placement::Database, server: "eu-1", residency: &["eu-central"] },
];

pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    let dir = absolute(&args.dir)?;
    if args.stop || args.reset {
        for s in &SERVERS {
            tg_local::stop_persistent(&dir.join(s.name))?;
        }
        if args.stop {
            println!("demo clusters stopped; `tenantgate demo` starts them again");
            return Ok(ExitCode::SUCCESS);
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        println!("reset: removed {}", dir.display());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;

    println!("starting local PostgreSQL clusters under {} ...", dir.display());
    let mut clusters = Vec::new();
    for s in &SERVERS {
        // WAL archived by pgBackRest into the demo's repository (`tenant restore --at`).
        let archive = tg_control::backup::archive_command(&tg_control::backup::default_bin(), &dir.join(BACKUP_REPO).join(tg_control::backup::CONFIG_FILE), s.name);
        let extra_conf = vec![("archive_mode".into(), "on".into()), ("archive_command".into(), archive)];
        let opts = ClusterOptions { name: s.name.to_string(), fsync: true, extra_conf, ..ClusterOptions::default() };
        let c = Cluster::open_persistent(&dir.join(s.name), opts)
            .with_context(|| format!("starting demo cluster {}", s.name))?;
        clusters.push(c);
    }

    let config_path = write_config(&dir, &clusters)?;
    let cfg = Config::load(&config_path)?;
    Catalog::init(&cfg.catalog.url).await?;
    let mut cat = Catalog::connect(&cfg.catalog.url).await?;
    servers::sync_from_config(&cat, &cfg.servers).await?;

    let files = migrate::load_dir(&cfg.migrations_dir())?;
    migrate::register(&cat, &files).await?;
    let report = fanout::run(&cat, cfg.migrations.jobs).await?;
    if report.failed() > 0 {
        bail!("migrations failed on {} target(s); `tenantgate migrate status` shows which", report.failed());
    }

    ensure_backups(&cfg, &cat).await;
    for t in &TENANTS {
        ensure_tenant(&cfg, &mut cat, t).await?;
    }
    let master = tenants::master_key(&cfg, &cat).await?;
    for t in &TENANTS {
        seed(&cat, &master, t.slug).await?;
    }
    print_summary(&cat, &master, &config_path).await?;
    if args.no_serve {
        return Ok(ExitCode::SUCCESS);
    }
    print_gateway_lines(&cat, &cfg).await?;
    crate::serve::run(&cfg, None).await
}

/// Issue a fresh `demo` key per tenant (revoking the previous run's) and print how to
/// connect through the gateway with it.
async fn print_gateway_lines(cat: &Catalog, cfg: &Config) -> Result<()> {
    use tg_control::keys::{self, KeyScope};
    let gw = tg_proxy::GatewayConfig::from_table(&cfg.gateway)?;
    let (host, port) = gw.listen.rsplit_once(':').unwrap_or(("127.0.0.1", "6432"));
    let http = tg_http::config::HttpConfig::from_table(&cfg.http)?;
    let signer = tg_http::jwt::DevSigner::load(&http.jwt(), &cfg.base_dir).ok();
    println!("Through the gateway (user = tenant slug, password = a fresh API key):");
    println!();
    for t in &TENANTS {
        for k in keys::list(cat, t.slug).await? {
            if k.name.as_deref() == Some("demo") && k.revoked_at.is_none() {
                keys::revoke(cat, t.slug, &k.id).await?;
            }
        }
        let k = keys::create(cat, t.slug, KeyScope::ReadWrite, Some("demo")).await?;
        println!("  {}:", t.slug);
        println!("    PGPASSWORD={} psql \"host={host} port={port} user={} dbname=app\" -c 'select count(*) from orders'", k.secret, t.slug);
        println!(
            "    curl -s -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' http://127.0.0.1:8080/v1/sql -d '{{\"sql\": \"select count(*) from orders\"}}'",
            k.secret
        );
        if let Some(signer) = &signer {
            let jwt = signer.sign(t.slug, false, 3600)?;
            println!(
                "    curl -s -H 'Authorization: Bearer {jwt}' -H 'Content-Type: application/json' http://127.0.0.1:8080/v1/sql -d '{{\"sql\": \"select count(*) from orders\"}}'   # JWT, 1 h (`tenantgate token {}` makes more)",
                t.slug
            );
        }
        println!();
    }
    print_mcp_lines(cat, cfg, &http).await?;
    println!("Serving until Ctrl-C (the clusters keep running; `tenantgate demo --stop` stops them).");
    Ok(())
}

/// A fresh read-only `mcp` key for the first tenant, and the MCP client config (Claude
/// Desktop's `mcpServers` shape) for both transports. The key goes to this terminal only,
/// like the keys above; never into a log.
async fn print_mcp_lines(cat: &Catalog, cfg: &Config, http: &tg_http::HttpConfig) -> Result<()> {
    use tg_control::keys::{self, KeyScope};
    let Some(t) = TENANTS.first() else { return Ok(()) };
    for k in keys::list(cat, t.slug).await? {
        if k.name.as_deref() == Some("mcp") && k.revoked_at.is_none() {
            keys::revoke(cat, t.slug, &k.id).await?;
        }
    }
    let k = keys::create(cat, t.slug, KeyScope::ReadOnly, Some("mcp")).await?;
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "tenantgate".into());
    let config = cfg.base_dir.join("tenantgate.toml");
    let stdio = serde_json::json!({"mcpServers": {"tenantgate": {
        "command": exe,
        "args": ["mcp"],
        "env": {"TENANTGATE_CONFIG": config.display().to_string(), "TENANTGATE_MCP_TOKEN": k.secret, "TENANTGATE_MCP_TENANT": t.slug},
    }}});
    let remote = serde_json::json!({"mcpServers": {"tenantgate": {
        "type": "http",
        "url": format!("http://{}/mcp", http.listen),
        "headers": {"Authorization": format!("Bearer {}", k.secret)},
    }}});
    println!("MCP (LLM agents, Text2SQL) as {}, read-only. Claude Desktop / any MCP client, stdio:", t.slug);
    println!("{}", serde_json::to_string_pretty(&stdio)?);
    println!("or streamable HTTP while this demo serves:");
    println!("{}", serde_json::to_string_pretty(&remote)?);
    println!();
    Ok(())
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    Ok(std::env::current_dir().context("reading the current directory")?.join(p))
}

/// Write the demo's config and migrations (and a master key, once).
fn write_config(dir: &Path, clusters: &[Cluster]) -> Result<PathBuf> {
    let key_path = dir.join("master.key");
    if !key_path.exists() {
        write_private(&key_path, &credentials::generate_master_key())?;
    }
    let mig_dir = dir.join("restaurant").join("migrations");
    std::fs::create_dir_all(&mig_dir).with_context(|| format!("creating {}", mig_dir.display()))?;
    for (name, sql) in MIGRATIONS {
        let path = mig_dir.join(name);
        if !path.exists() {
            std::fs::write(&path, sql).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let mut toml = String::from("# Written by `tenantgate demo`. Holds admin passwords: keep it private.\n\n");
    let servers: Vec<tg_local::LocalServer> =
        SERVERS.iter().zip(clusters).map(|(s, c)| tg_local::LocalServer { name: s.name, region: s.region, cluster: c }).collect();
    // A development HS256 key, so `tenantgate token SLUG` and the JWT lines below work at
    // once. Kept across runs; never use it outside the demo.
    let jwt_secret = dir.join("jwt-dev.secret");
    if !jwt_secret.exists() {
        use rand::RngCore;
        let mut b = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut b);
        write_private(&jwt_secret, &hex::encode(b))?;
    }
    let bench = dir.join("move-benchmark.json");
    std::fs::write(&bench, MOVE_BENCHMARK).with_context(|| format!("writing {}", bench.display()))?;
    let bench = dir.join("restore-benchmark.json");
    std::fs::write(&bench, RESTORE_BENCHMARK).with_context(|| format!("writing {}", bench.display()))?;
    let backup = tg_local::backup_toml(&servers, BACKUP_REPO, 2);
    toml.push_str(&tg_local::deployment_toml(
        &servers,
        "restaurant/migrations",
        &(backup + "[reports]\ncompliance = [\"SOC 2 Type II\", \"GDPR\"]\nmove_benchmark = \"move-benchmark.json\"   # bench/move.sh, measured on the machine it names\nrestore_benchmark = \"restore-benchmark.json\"   # bench/restore.sh, likewise\n\n\
         # Development JWT key (demo only): `tenantgate token SLUG` signs with it.\n\
         [[http.jwt_keys]]\nkid = \"demo-dev\"\nalg = \"HS256\"\nsecret_file = \"jwt-dev.secret\"\n\n"),
    ));
    let path = dir.join("tenantgate.toml");
    write_private(&path, &toml)?;
    Ok(path)
}

fn write_private(path: &Path, content: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(content.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

async fn ensure_tenant(cfg: &Config, cat: &mut Catalog, t: &DemoTenant) -> Result<()> {
    if let Ok(existing) = cat.tenant(t.slug).await {
        if existing.status == TenantStatus::Active {
            return Ok(());
        }
    }
    let req = tenants::CreateRequest {
        slug: t.slug.into(),
        placement: t.placement,
        server: Some(t.server.into()),
        residency: t.residency.iter().map(|s| s.to_string()).collect(),
        requires: Vec::new(),
        is_probe: false,
    };
    let created = tenants::create(cfg, cat, &req).await?;
    println!("created tenant {} ({}) in {} ms", t.slug, t.placement, created.elapsed_ms);
    Ok(())
}

/// Run the example seed script as the tenant's own read-write role: tenant_id comes
/// from the column default, never from the script.
async fn seed(cat: &Catalog, master: &credentials::MasterKey, slug: &str) -> Result<()> {
    let client = tenants::connect_as_tenant(cat, master, slug).await?;
    client.batch_execute(SEED).await.with_context(|| format!("seeding {slug}"))?;
    Ok(())
}

async fn print_summary(cat: &Catalog, master: &credentials::MasterKey, config_path: &Path) -> Result<()> {
    println!();
    println!("tenantgate demo is ready.");
    println!();
    for t in cat.tenants().await? {
        let server = cat.server(&t.server).await?;
        let loc = placement::location(t.placement, &t.key);
        let (host, port) = tg_control::db::host_port(&server.url).context("reading the server URL")?;
        let role = t.key.rw_role();
        println!("  {} — {} placement on {} ({})", t.slug, t.placement, t.server, t.region);
        println!("    direct, as its own read-write role:");
        println!(
            "    PGPASSWORD={} psql \"host={host} port={port} user={role} dbname={}\" -c 'select count(*) from orders'",
            master.role_password(&role),
            loc.database
        );
        println!();
    }
    println!("Manage it with:");
    println!("  export TENANTGATE_CONFIG={}", config_path.display());
    println!("  tenantgate tenant list");
    println!("Stop the clusters with `tenantgate demo --stop`; start over with `tenantgate demo --reset`.");
    Ok(())
}
