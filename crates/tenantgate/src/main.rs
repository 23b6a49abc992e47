//! The `tenantgate` binary: CLI wiring only. Every decision lives in the library crates;
//! this file parses arguments, calls them, and reports errors with a non-zero exit.

mod cli;
mod commands;
mod backup_cmd;
mod data_cmd;
mod demo;
mod http_cmd;
mod mcp_cmd;
mod move_cmd;
mod output;
mod serve;
mod top_cmd;
mod verify_cmd;
mod reports;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than glibc's malloc: the gate's parse of a new statement allocates a node
/// per tree node, and the proxy a few buffers per message; with mimalloc a new 300-character
/// statement checks about 5% faster (bench/RESULTS.md, "JSON route"). libpg_query's C code
/// keeps using malloc for its own memory contexts.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TENANTGATE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = cli::Cli::parse();
    // One thread: the lighter current-thread scheduler (no work-stealing queues), as
    // PgBouncer runs on one thread. More: the multi-thread scheduler.
    let mut builder = match serve::worker_threads(&cli) {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
