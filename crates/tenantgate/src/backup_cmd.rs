//! `tenantgate backup status | run` and `tenantgate tenant restore`: wiring to
//! `tg_control::backup` and `tg_control::mobility::restore`, and the printed outcome.

use std::process::ExitCode;

use anyhow::Result;
use tg_control::backup::{self, ServerBackups};
use tg_control::catalog::Catalog;
use tg_control::config::Config;
use tg_control::mobility::export::Progress;
use tg_control::mobility::restore::{self, RestoreRequest};

use crate::cli::BackupCmd;
use crate::data_cmd::Bar;
use crate::output;

pub async fn run(cfg: &Config, cmd: BackupCmd) -> Result<ExitCode> {
    let cat = Catalog::connect(&cfg.catalog.url).await?;
    match cmd {
        BackupCmd::Status { json } => {
            let list = backup::status(cfg, &cat).await?;
            print(&list, json)?;
        }
        BackupCmd::Run { server, kind, json } => {
            let list = backup::run(cfg, &cat, server.as_deref(), &kind).await?;
            if !json {
                for s in &list {
                    if let Some(b) = s.backups.last() {
                        println!("backed up server {} (stanza {}): {} backup {}", s.server, s.stanza, b.kind, b.label);
                    }
                }
            }
            print(&list, json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print(list: &[ServerBackups], json: bool) -> Result<()> {
    if json {
        return output::json(&list);
    }
    let t = |d: Option<chrono::DateTime<chrono::Utc>>| d.map_or("-".to_string(), |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string());
    for s in list {
        println!(
            "server {} ({}) stanza {}: {}; repository {}, {} full backups kept",
            s.server, s.region, s.stanza, s.status, s.repo, s.retention_full
        );
        println!(
            "  recovery window: {} to {} (the last WAL archived; `tenant restore` archives the current WAL first)",
            t(s.recoverable_from),
            t(s.recoverable_to)
        );
        if s.archive_failures > 0 {
            println!("  WARNING: {} WAL segment(s) failed to archive (last {})", s.archive_failures, s.last_failed_wal.as_deref().unwrap_or("-"));
        }
        if let Some(n) = &s.note {
            println!("  note: {n}");
        }
        let rows: Vec<Vec<String>> = s
            .backups
            .iter()
            .map(|b| vec![b.label.clone(), b.kind.clone(), t(Some(b.started_at)), t(Some(b.stopped_at)), b.size_bytes.to_string(), format!("{}..{}", b.wal_start, b.wal_stop)])
            .collect();
        if !rows.is_empty() {
            output::table(&["LABEL", "TYPE", "STARTED", "ENDED", "BYTES", "WAL"], &rows);
        }
    }
    Ok(())
}

pub async fn restore(cfg: &Config, cat: &mut Catalog, slug: String, at: &str, as_slug: Option<String>, replace: bool, json: bool) -> Result<ExitCode> {
    let req = RestoreRequest { at: restore::parse_time(at)?, slug, as_slug, replace };
    let bar = Bar::new(json);
    let report = |p: &Progress| bar.show(p);
    let done = restore::restore(cfg, cat, &req, &report).await;
    bar.done();
    let d = done?;
    if json {
        output::json(&d)?;
        return Ok(ExitCode::SUCCESS);
    }
    let what = if d.imported.plan.kind == "replace" { format!("restored {} in place", d.slug) } else { format!("restored {} as new tenant {}", req.slug, d.slug) };
    println!(
        "{what} as it was at {} (server {}, backup {}): {} rows, every checksum equal, in {} ms \
         (WAL archived {} ms, recovered copy {} ms, extract and load {} ms, copy removed {} ms)",
        d.at.to_rfc3339(),
        d.server,
        d.backup,
        d.imported.rows,
        d.elapsed_ms,
        d.check_ms,
        d.recover_ms,
        d.import_ms,
        d.cleanup_ms
    );
    for c in &d.imported.plan.checks {
        println!("  verified {:<14} {:>9} rows  checksum {}", c.table, c.rows, c.target_checksum);
    }
    if d.imported.plan.kind != "replace" {
        println!("  it has no API keys yet: `tenantgate key create {}`", d.slug);
    }
    Ok(ExitCode::SUCCESS)
}
