//! `tenantgate adr | triggers | questionnaire` and `tenant update --requires`: CLI
//! wiring for the `tg-report` crate. Loads the config, gathers the facts once,
//! renders, prints.
//!
//! Exit codes: 0 success; 1 any error (config, catalog, unreachable server);
//! `triggers` exits 3 (`tg_report::triggers::EXIT_FIRED`) when a trigger fired.
//! Decides nothing itself, and never prints a server URL unredacted.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;
use tg_control::catalog::Catalog;
use tg_control::config::Config;
use tg_report::facts::{self, Capabilities, Facts};
use tg_report::{adr, questionnaire, requirements, triggers};

use crate::output;

/// What this binary can do, read from its own command tree, so reports never claim a
/// command that is not built in (and start citing one as soon as it is).
fn capabilities() -> Capabilities {
    let cli = crate::cli::Cli::command();
    let tenant = cli.find_subcommand("tenant");
    let sub = |name: &str| tenant.and_then(|t| t.find_subcommand(name));
    let move_flag = sub("move").map(|m| {
        let has = |id: &str| m.get_arguments().any(|a| a.get_id() == id);
        if has("to") { "--to" } else if has("placement") { "--placement" } else { "--to" }.to_string()
    });
    let version = env!("CARGO_PKG_VERSION");
    Capabilities {
        version: version.into(),
        move_placement_flag: move_flag,
        export: sub("export").is_some(),
        import: sub("import").is_some(),
        verify: cli.find_subcommand("verify").is_some(),
        restore: sub("restore").is_some(),
        source: format!("binary: tenantgate {version} command tree"),
    }
}

async fn gather(cfg: &Config) -> Result<Facts> {
    let cat = Catalog::connect(&cfg.catalog.url).await?;
    let today = chrono::Utc::now().date_naive();
    Ok(facts::gather(cfg, &cat, capabilities(), today).await?)
}

pub async fn adr(cfg: &Config, out: Option<PathBuf>) -> Result<ExitCode> {
    let f = gather(cfg).await?;
    let md = adr::render(&f, &triggers::evaluate(&f));
    match out {
        Some(path) => {
            std::fs::write(&path, &md)
                .map_err(|source| tg_report::Error::Write { path: path.display().to_string(), source })?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{md}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn triggers(cfg: &Config, json: bool) -> Result<ExitCode> {
    let f = gather(cfg).await?;
    let e = triggers::evaluate(&f);
    if json {
        output::json(&e)?;
    } else {
        print!("{}", triggers::to_text(&e));
    }
    Ok(ExitCode::from(e.exit_code))
}

pub async fn questionnaire(cfg: &Config, tenant: Option<String>, json: bool) -> Result<ExitCode> {
    let f = gather(cfg).await?;
    let q = questionnaire::build(&f, tenant.as_deref())?;
    if json {
        output::json(&q)?;
    } else {
        print!("{}", questionnaire::to_markdown(&q));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn tenant_update(cat: &Catalog, slug: &str, requires: &[String], json: bool) -> Result<ExitCode> {
    let t = requirements::update(cat, slug, requires).await?;
    if json {
        output::json(&t)?;
    } else {
        let list = if t.requires.is_empty() { "none".to_string() } else { t.requires.join(",") };
        println!("updated {}: requires {list}", t.slug);
    }
    Ok(ExitCode::SUCCESS)
}

/// Validate `tenant create --requires` before anything is created.
pub fn check_requires(requires: &[String]) -> Result<Vec<String>> {
    Ok(requirements::normalize(requires)?)
}
