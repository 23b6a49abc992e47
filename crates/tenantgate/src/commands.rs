//! One function per subcommand: load what it needs, call the library, print.

use std::process::ExitCode;

use anyhow::{Context, Result};
use tg_control::catalog::Catalog;
use tg_control::config::Config;
use tg_control::migrate::{self, fanout, lint};
use tg_control::mobility::erase;
use tg_control::model::Placement;
use tg_control::{servers, tenants};

use crate::cli::{Cli, Command, KeyCmd, MigrateArgs, MigrateSub, ServerCmd, TenantCmd};
use crate::output;

pub async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Demo(args) => crate::demo::run(args).await,
        Command::Init => init(&Config::load(&cli.config)?).await,
        Command::Rebalance { plan: _, apply, region, json } => {
            let cfg = Config::load(&cli.config)?;
            let mut cat = catalog(&cfg).await?;
            crate::move_cmd::rebalance(&cfg, &mut cat, apply, region.as_deref(), json).await
        }
        Command::Serve { listen, .. } => crate::serve::run(&Config::load(&cli.config)?, listen).await,
        Command::Mcp { token, tenant } => crate::mcp_cmd::stdio(&Config::load(&cli.config)?, token, tenant).await,
        Command::Token { slug, read_only, ttl } => crate::http_cmd::token(&Config::load(&cli.config)?, &slug, read_only, &ttl).await,
        Command::Server(cmd) => server(&Config::load(&cli.config)?, cmd).await,
        Command::Tenant(cmd) => tenant(&Config::load(&cli.config)?, cmd).await,
        Command::Migrate(args) => migrate_cmd(&cli.config, args).await,
        Command::Key(cmd) => key(&Config::load(&cli.config)?, cmd).await,
        Command::Backup(cmd) => crate::backup_cmd::run(&Config::load(&cli.config)?, cmd).await,
        Command::Verify(args) => crate::verify_cmd::run(&Config::load(&cli.config)?, args).await,
        Command::Adr { out } => crate::reports::adr(&Config::load(&cli.config)?, out).await,
        Command::Top { url, once, json, interval, limit } => {
            crate::top_cmd::run(&Config::load(&cli.config)?, url, once || json, json, interval, limit).await
        }
        Command::Triggers { json } => crate::reports::triggers(&Config::load(&cli.config)?, json).await,
        Command::Questionnaire { tenant, json, md: _ } => crate::reports::questionnaire(&Config::load(&cli.config)?, tenant, json).await,
    }
}

async fn key(cfg: &Config, cmd: KeyCmd) -> Result<ExitCode> {
    use tg_control::keys::{self, KeyScope};
    let cat = catalog(cfg).await?;
    let fmt_time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or("-".to_string(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string());
    match cmd {
        KeyCmd::Create { slug, read_only, name, json } => {
            let scope = if read_only { KeyScope::ReadOnly } else { KeyScope::ReadWrite };
            let k = keys::create(&cat, &slug, scope, name.as_deref()).await?;
            if json {
                output::json(&k)?;
            } else {
                println!("created {} key {} for {slug}. Store the secret now; it is not shown again:", scope.as_str(), k.info.id);
                println!("{}", k.secret);
            }
        }
        KeyCmd::List { slug, json } => {
            let list = keys::list(&cat, &slug).await?;
            if json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|k| {
                        vec![
                            k.id.clone(),
                            k.name.clone().unwrap_or_else(|| "-".into()),
                            k.scope.as_str().into(),
                            fmt_time(Some(k.created_at)),
                            fmt_time(k.last_used_at),
                            if k.revoked_at.is_some() { format!("revoked {}", fmt_time(k.revoked_at)) } else { "active".into() },
                        ]
                    })
                    .collect();
                output::table(&["ID", "NAME", "SCOPE", "CREATED", "LAST USED", "STATE"], &rows);
            }
        }
        KeyCmd::Revoke { slug, key_id, json } => {
            let k = keys::revoke(&cat, &slug, &key_id).await?;
            if json {
                output::json(&k)?;
            } else {
                println!("revoked key {} of {slug}", k.id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn catalog(cfg: &Config) -> Result<Catalog> {
    Ok(Catalog::connect(&cfg.catalog.url).await?)
}

async fn init(cfg: &Config) -> Result<ExitCode> {
    let (before, after) = Catalog::init(&cfg.catalog.url).await?;
    let cat = catalog(cfg).await?;
    let added = servers::sync_from_config(&cat, &cfg.servers).await?;
    if before == after {
        println!("catalog is up to date (version {after})");
    } else {
        println!("catalog upgraded from version {before} to {after}");
    }
    for s in added {
        println!("registered server {s} from the config");
    }
    let (checked, changed) = tg_control::placement::ensure_scoped_catalogs(&cat).await?;
    if changed > 0 {
        println!("tenant-scoped catalog (schema tg_catalog) installed or upgraded in {changed} of {checked} tenant database(s)");
    }
    Ok(ExitCode::SUCCESS)
}

async fn server(cfg: &Config, cmd: ServerCmd) -> Result<ExitCode> {
    let cat = catalog(cfg).await?;
    match cmd {
        ServerCmd::Add { name, url, region, json } => {
            let info = servers::add(&cat, &name, &url, &region).await?;
            if json {
                output::json(&serde_json::json!({"name": name, "region": region, "server": info}))?;
            } else {
                println!("added server {name} (region {region}, PostgreSQL {})", info.version);
                for w in &info.warnings {
                    println!("warning: {w}");
                }
            }
        }
        ServerCmd::List { json } => {
            let list = cat.servers().await?;
            if json {
                let v: Vec<_> = list
                    .iter()
                    .map(|s| serde_json::json!({"name": s.name, "region": s.region, "url": s.redacted_url(), "created_at": s.created_at}))
                    .collect();
                output::json(&v)?;
            } else {
                let rows: Vec<Vec<String>> =
                    list.iter().map(|s| vec![s.name.clone(), s.region.clone(), s.redacted_url()]).collect();
                output::table(&["NAME", "REGION", "URL"], &rows);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn tenant(cfg: &Config, cmd: TenantCmd) -> Result<ExitCode> {
    let mut cat = catalog(cfg).await?;
    match cmd {
        TenantCmd::Create { slug, placement, server, residency, requires, json } => {
            let req = tenants::CreateRequest {
                slug,
                placement: placement.parse::<Placement>()?,
                server,
                residency,
                requires: crate::reports::check_requires(&requires)?,
                is_probe: false,
            };
            let created = tenants::create(cfg, &mut cat, &req).await?;
            if json {
                output::json(&created)?;
            } else {
                let t = &created.tenant;
                let verb = if created.resumed { "resumed and finished creating" } else { "created" };
                println!(
                    "{verb} tenant {} ({}) on server {} in {}, app schema version {}, in {} ms",
                    t.slug, t.placement, t.server, t.region, created.migration_version, created.elapsed_ms
                );
            }
        }
        TenantCmd::List { json } => {
            let list = cat.tenants().await?;
            if json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|t| {
                        vec![
                            t.slug.clone(),
                            t.status.to_string(),
                            t.placement.to_string(),
                            t.server.clone(),
                            t.region.clone(),
                            t.key.to_string(),
                        ]
                    })
                    .collect();
                output::table(&["SLUG", "STATUS", "PLACEMENT", "SERVER", "REGION", "KEY"], &rows);
            }
        }
        TenantCmd::Show { slug, json } => {
            let v = match tenants::show(&cat, &slug).await {
                Err(tg_control::Error::UnknownTenant(_)) => return show_tombstone(&cat, &slug, json).await,
                other => other?,
            };
            if json {
                output::json(&v)?;
            } else {
                let t = &v.tenant;
                println!("tenant     {}", t.slug);
                println!("key        {}", t.key);
                println!("status     {}", t.status);
                println!("placement  {} (database {}, schema {})", t.placement, v.database, v.schema);
                println!("server     {} (region {})", t.server, t.region);
                let residency = if t.residency.is_empty() { "any".to_string() } else { t.residency.join(",") };
                println!("residency  {residency}");
                println!("roles      {}", v.roles.join(", "));
                println!("created    {}", t.created_at.to_rfc3339());
                if let Some(op) = &v.open_operation {
                    println!("operation  {} #{}: {} at step {}{}", op.kind, op.id, op.state, op.step,
                        op.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default());
                }
                if let Some(next) = &v.next_step {
                    println!("next       {next}");
                }
            }
        }
        TenantCmd::Update { slug, requires, json } => return crate::reports::tenant_update(&cat, &slug, &requires, json).await,
        TenantCmd::Suspend { slug } => {
            tenants::set_suspended(&cat, &slug, true).await?;
            println!("suspended {slug}: its roles cannot log in and its sessions were ended");
        }
        TenantCmd::Resume { slug } => {
            tenants::set_suspended(&cat, &slug, false).await?;
            println!("resumed {slug}");
        }
        TenantCmd::Move { slug, to, server, resume, abort, status, json } => {
            return crate::move_cmd::run(cfg, &mut cat, crate::move_cmd::Args { slug, to, server, resume, abort, status, json }).await;
        }
        TenantCmd::Export { slug, out, all, dir, keep, json } => {
            return crate::data_cmd::export(&cat, crate::data_cmd::ExportArgs { slug, out, all, dir, keep, json }).await;
        }
        TenantCmd::Import { slug, from, placement, server, replace, json } => {
            return crate::data_cmd::import(cfg, &mut cat, slug, from, placement, server, replace, json).await;
        }
        TenantCmd::Clone { slug, new_slug, placement, server, json } => {
            return crate::data_cmd::clone(cfg, &mut cat, slug, new_slug, placement, server, json).await;
        }
        TenantCmd::Restore { slug, at, as_slug, replace, json } => {
            return crate::backup_cmd::restore(cfg, &mut cat, slug, &at, as_slug, replace, json).await;
        }
        TenantCmd::Erase { slug, confirm } => {
            let backups = tg_control::backup::Backups::configured(cfg);
            let known = backups.as_ref().map_or(erase::BackupsKnown::NoneConfigured, erase::BackupsKnown::Repo);
            let cert = erase::erase_accounting(&mut cat, &slug, confirm.as_deref(), known).await?;
            output::json(&cert)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tenant show` of a slug that is no tenant: an erased tenant shows only its tombstone
/// (key, time, erasure certificate, whose slug is `<erased>`), then fails like any
/// unknown slug, so scripts see no tenant.
async fn show_tombstone(cat: &Catalog, slug: &str, json: bool) -> Result<ExitCode> {
    let stones = cat.tombstones_of_slug(slug).await?;
    let Some(last) = stones.first() else {
        return Err(tg_control::Error::UnknownTenant(slug.to_string()).into());
    };
    if json {
        output::json(&serde_json::json!({"erased": true, "tombstones": stones}))?;
    } else {
        for t in &stones {
            let c = &t.certificate;
            println!("erased     {} (key {})", t.erased_at.to_rfc3339(), t.tenant_key);
            println!("was        {} on {} (region {})", c["placement"].as_str().unwrap_or("?"), c["server"].as_str().unwrap_or("?"), c["region"].as_str().unwrap_or("?"));
            println!("rows       {} before, {} after", c["rows_before"], c["rows_after"]);
            for line in [&c["backups"]["statement"], &c["exports"]["statement"]] {
                if let Some(l) = line.as_str() {
                    println!("remains    {l}");
                }
            }
            for r in c["regions"].as_array().into_iter().flatten() {
                println!("region     {} (server {}): {}", r["region"].as_str().unwrap_or("?"), r["server"].as_str().unwrap_or("?"), r["how"].as_str().unwrap_or(""));
            }
            println!();
        }
    }
    anyhow::bail!("no tenant {slug:?}: it was erased on {} (key {}); only its tombstone, printed above, remains", last.erased_at.to_rfc3339(), last.tenant_key)
}

async fn migrate_cmd(config_path: &std::path::Path, args: MigrateArgs) -> Result<ExitCode> {
    if let Some(MigrateSub::Status { json }) = args.sub {
        let cfg = Config::load(config_path)?;
        return migrate_status(&cfg, json || args.json).await;
    }
    // --check with --dir needs no config and no database.
    let cfg = if args.check && args.dir.is_some() { None } else { Some(Config::load(config_path)?) };
    let dir = match (&args.dir, &cfg) {
        (Some(d), _) => d.clone(),
        (None, Some(c)) => c.migrations_dir(),
        (None, None) => anyhow::bail!("no migrations directory: pass --dir DIR or set migrations.dir in tenantgate.toml"),
    };
    let files = migrate::load_dir(&dir)?;
    if args.check {
        return report_lint(&files, args.json);
    }
    let cfg = cfg.context("a config is needed to apply migrations")?;
    let cat = catalog(&cfg).await?;
    let added = migrate::register(&cat, &files).await?;
    let report = fanout::run(&cat, args.jobs.unwrap_or(cfg.migrations.jobs)).await?;
    if args.json {
        output::json(&serde_json::json!({"registered": added, "report": report}))?;
    } else {
        for v in &added {
            println!("registered migration {v}");
        }
        for o in &report.outcomes {
            match &o.error {
                None => println!("{}: {} -> {}", o.target, o.from, o.to),
                Some(e) => println!("{}: FAILED at {} ({e})", o.target, o.to),
            }
        }
        println!(
            "{} targets at version {}: {} already up to date, {} migrated, {} failed",
            report.targets_total,
            report.latest,
            report.up_to_date,
            report.outcomes.len() - report.failed(),
            report.failed()
        );
        if report.failed() > 0 {
            println!("re-run `tenantgate migrate` to retry the failed targets once their cause is fixed");
        }
    }
    Ok(if report.failed() > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn report_lint(files: &[tg_control::catalog::AppMigration], json: bool) -> Result<ExitCode> {
    let findings = migrate::check(files);
    if json {
        output::json(&findings)?;
    } else {
        for f in &findings {
            println!("{f}");
        }
        let errors = findings.iter().filter(|f| f.severity == lint::Severity::Error).count();
        println!("{} files checked: {errors} errors, {} warnings", files.len(), findings.len() - errors);
    }
    Ok(if lint::has_errors(&findings) { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

async fn migrate_status(cfg: &Config, json: bool) -> Result<ExitCode> {
    let cat = catalog(cfg).await?;
    let latest = cat.app_migrations().await?.last().map_or(0, |m| m.version);
    let targets = cat.targets().await?;
    let slugs: std::collections::HashMap<String, String> =
        cat.tenants().await?.into_iter().map(|t| (t.key.to_string(), t.slug)).collect();
    let slug_of = |t: &tg_control::catalog::MigrationTarget| {
        t.tenant_key.as_ref().and_then(|k| slugs.get(k)).cloned().unwrap_or_else(|| "(pooled tenants)".into())
    };
    if json {
        let v: Vec<_> = targets
            .iter()
            .map(|t| serde_json::json!({"target": t.target, "tenant": slug_of(t), "version": t.version, "latest": latest, "pending": t.version < latest, "last_error": t.last_error}))
            .collect();
        output::json(&serde_json::json!({"latest": latest, "targets": v}))?;
    } else {
        let rows: Vec<Vec<String>> = targets
            .iter()
            .map(|t| {
                let state = match (&t.last_error, t.version < latest) {
                    (Some(_), _) => "failed",
                    (None, true) => "pending",
                    (None, false) => "up to date",
                };
                vec![t.target.clone(), slug_of(t), t.version.to_string(), state.into()]
            })
            .collect();
        output::table(&["TARGET", "TENANT", "VERSION", "STATE"], &rows);
        println!("latest registered version: {latest}");
    }
    Ok(ExitCode::SUCCESS)
}
