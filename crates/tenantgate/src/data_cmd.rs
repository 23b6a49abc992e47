//! `tenantgate tenant export | import | clone`: wiring to `tg_control::mobility::{export,
//! import}`, a progress bar on stderr (rows of the whole tenant; hidden with `--json` or
//! when stderr is no terminal), and the printed outcome.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use tg_control::catalog::Catalog;
use tg_control::config::Config;
use tg_control::mobility::export::{self, Progress};
use tg_control::mobility::import::{self, ImportRequest, Imported};
use tg_control::model::Placement;

use crate::output;

/// One bar over the tenant's rows, re-labelled per phase and table.
pub(crate) struct Bar {
    bar: Mutex<Option<ProgressBar>>,
    hidden: bool,
}

impl Bar {
    pub(crate) fn new(json: bool) -> Bar {
        use std::io::IsTerminal;
        Bar { bar: Mutex::new(None), hidden: json || !std::io::stderr().is_terminal() }
    }

    pub(crate) fn show(&self, p: &Progress) {
        if self.hidden {
            return;
        }
        let mut cur = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        let bar = cur.get_or_insert_with(|| {
            let b = ProgressBar::new(p.rows_total);
            b.set_style(
                ProgressStyle::with_template("{spinner} {prefix:>8} {bar:30} {pos}/{len} rows {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        bar.set_length(p.rows_total.max(p.rows_done));
        bar.set_position(p.rows_done);
        bar.set_prefix(p.phase);
        bar.set_message(p.table.clone());
    }

    pub(crate) fn done(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish_and_clear();
        }
    }
}

pub struct ExportArgs {
    pub slug: Option<String>,
    pub out: Option<PathBuf>,
    pub all: bool,
    pub dir: Option<PathBuf>,
    pub keep: usize,
    pub json: bool,
}

pub async fn export(cat: &Catalog, a: ExportArgs) -> Result<ExitCode> {
    let bar = Bar::new(a.json);
    let report = |p: &Progress| bar.show(p);
    if a.all {
        let dir = a.dir.unwrap_or_default();
        let results = export::all_to_dir(cat, &dir, a.keep, &report).await;
        bar.done();
        let results = results?;
        let failed: Vec<&str> = results.iter().filter(|r| r.error.is_some()).map(|r| r.slug.as_str()).collect();
        if a.json {
            output::json(&results)?;
        } else {
            for r in &results {
                match (&r.file, &r.error) {
                    (Some(f), _) => println!("{}: {} rows, {} bytes -> {f}{}", r.slug, r.rows, r.bytes,
                        if r.removed.is_empty() { String::new() } else { format!(" ({} older removed)", r.removed.len()) }),
                    (None, Some(e)) => println!("{}: FAILED: {e}", r.slug),
                    (None, None) => {}
                }
            }
            println!("{} tenants exported, {} failed", results.len() - failed.len(), failed.len());
        }
        if !failed.is_empty() {
            eprintln!("error: the export of {} failed (see above); the other tenants were exported", failed.join(", "));
            return Ok(ExitCode::FAILURE);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(slug), Some(out)) = (a.slug, a.out) else {
        anyhow::bail!("give a tenant and --out FILE, or --all --dir DIR");
    };
    let done = export::to_file(cat, &slug, &out, &report).await;
    bar.done();
    let done = done?;
    if a.json {
        output::json(&done)?;
    } else {
        println!(
            "exported {} ({} rows in {} tables, app schema version {}) to {}: {} bytes in {} ms (checksums {} ms, rows {} ms)",
            done.slug,
            done.rows,
            done.tables.len(),
            done.schema_version,
            done.file,
            done.bytes,
            done.elapsed_ms,
            done.checksum_ms,
            done.copy_ms
        );
        for t in &done.tables {
            println!("  {:<14} {:>9} rows  checksum {}", t.table, t.rows, t.checksum);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn placement(p: Option<String>) -> Result<Option<Placement>> {
    Ok(match p {
        Some(p) => Some(p.parse::<Placement>()?),
        None => None,
    })
}

#[allow(clippy::too_many_arguments)]
pub async fn import(
    cfg: &Config,
    cat: &mut Catalog,
    slug: String,
    from: PathBuf,
    place: Option<String>,
    server: Option<String>,
    replace: bool,
    json: bool,
) -> Result<ExitCode> {
    let req = ImportRequest { slug, placement: placement(place)?, server, replace };
    let bar = Bar::new(json);
    let report = |p: &Progress| bar.show(p);
    let done = import::from_file(cfg, cat, &req, &from, &report).await;
    bar.done();
    print_imported(&done?, json)
}

pub async fn clone(
    cfg: &Config,
    cat: &mut Catalog,
    slug: String,
    new_slug: String,
    place: Option<String>,
    server: Option<String>,
    json: bool,
) -> Result<ExitCode> {
    let req = ImportRequest { slug: new_slug, placement: placement(place)?, server, replace: false };
    let bar = Bar::new(json);
    let report = |p: &Progress| bar.show(p);
    let done = import::clone(cfg, cat, &slug, &req, &report).await;
    bar.done();
    print_imported(&done?, json)
}

fn print_imported(d: &Imported, json: bool) -> Result<ExitCode> {
    if json {
        output::json(d)?;
        return Ok(ExitCode::SUCCESS);
    }
    let p = &d.plan;
    let what = match p.kind.as_str() {
        "restore" => format!("restored tenant {}", p.slug),
        "replace" => format!("replaced the rows of {}", p.slug),
        _ => format!("created tenant {} as a copy of {}", p.slug, p.archive_slug),
    };
    println!(
        "{what} from {} ({} on {} in {}): {} rows, every checksum equal, in {} ms{}",
        p.source,
        p.placement,
        p.server,
        d.region,
        d.rows,
        d.elapsed_ms,
        if d.resumed { " (resumed)" } else { "" }
    );
    if p.archive_version < p.latest_version {
        println!("  migrated forward from app schema version {} to {}", p.archive_version, p.latest_version);
    }
    for c in &p.checks {
        println!("  verified {:<14} {:>9} rows  checksum {}", c.table, c.rows, c.target_checksum);
    }
    if !p.load_phases.is_empty() {
        let parts: Vec<String> = p.load_phases.iter().map(|s| format!("{} {} ms", s.step.replace('_', " "), s.ms)).collect();
        let how = if p.deferred_indexes { "indexes and keys built after the copy" } else { "into the tables as they are, indexes kept" };
        println!("  load ({how}): {}", parts.join(", "));
    }
    if p.kind != "replace" {
        println!("  it has no API keys yet: `tenantgate key create {}`", p.slug);
    }
    Ok(ExitCode::SUCCESS)
}
