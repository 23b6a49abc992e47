//! `tenantgate tenant move` (start, resume, abort or show an online move, with a progress
//! bar per step: rows copied, replication lag; or `--json` for scripts) and
//! `tenantgate rebalance` (plan and apply moves that even out a region's pooled servers).

use std::process::ExitCode;
use std::sync::Mutex;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use tg_control::catalog::Catalog;
use tg_control::config::Config;
use tg_control::mobility::moves::{self, MoveRequest, MoveStatus, Progress};
use tg_control::mobility::rebalance;
use tg_control::model::Placement;

use crate::output;

pub struct Args {
    pub slug: String,
    pub to: Option<String>,
    pub server: Option<String>,
    pub resume: bool,
    pub abort: bool,
    pub status: bool,
    pub json: bool,
}

/// One bar per step, drawn on stderr; hidden with `--json` or when stderr is no terminal.
struct Bars {
    current: Mutex<Option<(&'static str, ProgressBar)>>,
    hidden: bool,
}

impl Bars {
    fn show(&self, p: &Progress) {
        if self.hidden {
            return;
        }
        let mut cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().map(|(s, _)| *s) != Some(p.step) {
            if let Some((_, bar)) = cur.take() {
                bar.finish();
            }
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{spinner} {prefix:>15} {elapsed:>4} {msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
            bar.set_prefix(p.step);
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            *cur = Some((p.step, bar));
        }
        if let Some((_, bar)) = cur.as_ref() {
            let mut msg = Vec::new();
            if let Some((done, total)) = p.tables {
                msg.push(format!("tables {done}/{total}"));
            }
            if let Some(rows) = p.rows {
                msg.push(format!("{rows} rows copying"));
            }
            if let Some(lag) = p.lag_bytes {
                msg.push(format!("lag {} kB", lag / 1024));
            }
            if p.done {
                msg.push("done".into());
                bar.set_message(msg.join(", "));
                bar.finish();
                *cur = None;
            } else {
                bar.set_message(msg.join(", "));
            }
        }
    }
}

pub async fn run(cfg: &Config, cat: &mut Catalog, a: Args) -> Result<ExitCode> {
    use std::io::IsTerminal;
    let bars = Bars { current: Mutex::new(None), hidden: a.json || !std::io::stderr().is_terminal() };
    let report = |p: &Progress| bars.show(p);
    let status = if a.status {
        moves::status(cat, &a.slug).await?
    } else if a.abort {
        moves::abort(cat, &a.slug).await?
    } else if a.resume {
        moves::resume(cfg, cat, &a.slug, &report).await?
    } else {
        let to = a.to.as_deref().unwrap_or_default().parse::<Placement>()?;
        moves::start(cfg, cat, &MoveRequest { slug: a.slug.clone(), to, server: a.server.clone() }, &report).await?
    };
    if a.json {
        output::json(&status)?;
    } else {
        print_status(&status);
    }
    Ok(ExitCode::SUCCESS)
}

/// `tenantgate rebalance`: print the plan, or apply it move by move.
pub async fn rebalance(cfg: &Config, cat: &mut Catalog, apply: bool, region: Option<&str>, json: bool) -> Result<ExitCode> {
    let plan = rebalance::plan(cat, region).await?;
    if !apply {
        if json {
            output::json(&plan)?;
        } else {
            print_plan(&plan);
        }
        return Ok(ExitCode::SUCCESS);
    }
    use std::io::IsTerminal;
    let bars = Bars { current: Mutex::new(None), hidden: json || !std::io::stderr().is_terminal() };
    let report = |p: &Progress| bars.show(p);
    let done = rebalance::apply(cfg, cat, &plan, &report).await?;
    if json {
        output::json(&serde_json::json!({"plan": plan, "moves": done}))?;
    } else {
        print_plan(&plan);
        for s in &done {
            print_status(s);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_plan(plan: &rebalance::Plan) {
    if plan.moves.is_empty() {
        println!("balanced: no move would even out the pooled bytes further");
    }
    for m in &plan.moves {
        println!("move {} ({} bytes): pooled on {} -> pooled on {}", m.slug, m.bytes, m.from_server, m.to_server);
    }
    let rows: Vec<Vec<String>> = plan
        .servers
        .iter()
        .map(|s| {
            vec![
                s.region.clone(),
                s.server.clone(),
                format!("{} / {}", s.tenants_before, s.bytes_before),
                format!("{} / {}", s.tenants_after, s.bytes_after),
            ]
        })
        .collect();
    output::table(&["REGION", "SERVER", "POOLED TENANTS / BYTES NOW", "AFTER THE PLAN"], &rows);
    println!("({})", plan.method);
}

fn print_status(s: &MoveStatus) {
    let p = &s.plan;
    println!(
        "move #{} of {}: {} on {} -> {} on {}: {} (step {})",
        s.operation_id, p.slug, p.from.placement, p.from.server, p.to.placement, p.to.server, s.state, s.step
    );
    for st in &p.steps {
        println!("  {:<15} {:>7} ms", st.step, st.ms);
    }
    if let Some(f) = p.fence_ms {
        println!("  writes fenced for {f} ms");
    }
    for c in &p.checks {
        println!("  verified {:<12} {:>9} rows, checksums equal", c.table, c.rows);
    }
    if let Some(lag) = s.lag_bytes {
        println!("  replication lag {lag} bytes");
    }
    if let Some(e) = &s.error {
        println!("  error: {e}");
    }
}
