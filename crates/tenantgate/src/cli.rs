//! The command-line surface (DESIGN §8). Only argument definitions live here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "tenantgate", version, about = "Multi-tenant data gateway and control plane for PostgreSQL")]
pub struct Cli {
    /// Path to tenantgate.toml
    #[arg(long, global = true, env = "TENANTGATE_CONFIG", default_value = "tenantgate.toml")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run everything on the embedded default: local clusters under ./.tenantgate, the example app, one tenant per placement
    Demo(DemoArgs),
    /// Create or upgrade the catalog (idempotent) and register the servers listed in the config
    Init,
    /// Even out pooled tenants' bytes across the servers of a region by moving pooled tenants
    Rebalance {
        /// Show the proposed moves (the default)
        #[arg(long, conflicts_with = "apply")]
        plan: bool,
        /// Run the proposed moves, one at a time
        #[arg(long)]
        apply: bool,
        /// Only this region
        #[arg(long)]
        region: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run the wire-protocol gateway until SIGINT/SIGTERM
    Serve {
        /// Listen address (default: gateway.listen from the config, 127.0.0.1:6432); port 0 picks a free port
        #[arg(long)]
        listen: Option<String>,
        /// Runtime threads, 0 to 1024 (default: gateway.worker_threads from the config; 0 = one per CPU)
        #[arg(long, value_parser = clap::value_parser!(u16).range(0..=1024))]
        worker_threads: Option<u16>,
    },
    /// Manage database servers
    #[command(subcommand)]
    Server(ServerCmd),
    /// Manage tenants
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Lint and apply app-schema migrations to every target
    Migrate(MigrateArgs),
    /// Manage tenant API keys (the password a client gives the gateway)
    #[command(subcommand)]
    Key(KeyCmd),
    /// Physical backups and WAL archiving by pgBackRest ([backup] in the config)
    #[command(subcommand)]
    Backup(BackupCmd),
    /// MCP server for LLM agents over stdio, as one tenant (also at /mcp on `serve`)
    Mcp {
        /// A tenant API key (tgk_…) or tenant JWT; better given in the env than on the command line
        #[arg(long, env = "TENANTGATE_MCP_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The tenant slug the credential must belong to (optional cross-check)
        #[arg(long, env = "TENANTGATE_MCP_TENANT")]
        tenant: Option<String>,
    },
    /// Sign a development JWT for a tenant with the configured HS256 key ([[http.jwt_keys]])
    Token {
        slug: String,
        /// Scope `read`: the token maps to the tenant's read-only role
        #[arg(long)]
        read_only: bool,
        /// Lifetime, e.g. 90s, 15m, 1h, 7d
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Certify isolation: probe tenants, the attack catalogue (gate on and off), and a configuration audit
    Verify(VerifyArgs),
    /// Write the multi-tenancy decision record (Markdown) from the live catalog
    Adr {
        /// Write to FILE instead of stdout
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Live per-tenant activity of a running `serve` (its admin API): tenants by time in the database, with their quotas and how close they are
    Top {
        /// The HTTP API of the gateway (default: http://<http.listen> from the config)
        #[arg(long)]
        url: Option<String>,
        /// Print one sample and exit
        #[arg(long)]
        once: bool,
        /// Print JSON (the admin API's /admin/v1/usage), one sample; implies --once
        #[arg(long)]
        json: bool,
        /// Seconds between refreshes
        #[arg(long, default_value_t = 2)]
        interval: u64,
        /// Show at most this many tenants
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Evaluate the re-evaluation triggers; exit 3 when any fired (0 when all are ok or approaching)
    Triggers {
        #[arg(long)]
        json: bool,
    },
    /// Answer the standard security questions from live state, for the deployment or one tenant
    Questionnaire {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, conflicts_with = "md")]
        json: bool,
        /// Markdown (the default)
        #[arg(long)]
        md: bool,
    },
}

#[derive(Args)]
pub struct VerifyArgs {
    #[arg(long)]
    pub json: bool,
    /// Run only one group of scenarios (role, rls, catalog, channels, session, escape, resource, stacking, wire, llm, http)
    #[arg(long)]
    pub only: Option<String>,
    /// Keep the probe tenants afterwards
    #[arg(long)]
    pub keep: bool,
    /// Attack a running gateway with the gate on (HOST:PORT) instead of starting one in-process
    #[arg(long)]
    pub target: Option<String>,
    /// Attack a running gateway with the gate off (HOST:PORT); only with --target
    #[arg(long, requires = "target")]
    pub target_no_gate: Option<String>,
    /// The HTTP API of the --target gateway (http://HOST:PORT), for the `http` group; tokens are
    /// signed with the first HS256 key of [http]
    #[arg(long, requires = "target")]
    pub target_http: Option<String>,
    /// Probe tenants per placement (at least 2)
    #[arg(long, default_value_t = 2)]
    pub probes: usize,
    /// Bound, in ms, on another tenant's query latency while exhaustion attacks run
    #[arg(long, default_value_t = 1000)]
    pub latency_bound_ms: u64,
}

#[derive(Subcommand)]
pub enum KeyCmd {
    /// Issue a key for a tenant; the secret is printed once and never stored
    Create {
        slug: String,
        /// The key maps to the tenant's read-only role
        #[arg(long)]
        read_only: bool,
        /// A label, e.g. text2sql-agent
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's keys (never the secrets)
    List {
        slug: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: new connections fail at once, open sessions end within seconds
    Revoke {
        slug: String,
        key_id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum BackupCmd {
    /// Each server's pgBackRest backups and its recovery window
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Take a backup now (every configured server, or one); creates the stanza on first use
    Run {
        #[arg(long)]
        server: Option<String>,
        /// full, diff or incr
        #[arg(long = "type", default_value = "full", value_parser = ["full", "diff", "incr"])]
        kind: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct DemoArgs {
    /// Stop the demo clusters and delete ./.tenantgate, then start over
    #[arg(long)]
    pub reset: bool,
    /// Stop the demo clusters and exit
    #[arg(long, conflicts_with = "reset")]
    pub stop: bool,
    /// Directory for the demo's clusters and config
    #[arg(long, default_value = ".tenantgate")]
    pub dir: PathBuf,
    /// Set everything up and exit instead of serving the gateway (for scripts)
    #[arg(long)]
    pub no_serve: bool,
}

#[derive(Subcommand)]
pub enum ServerCmd {
    /// Check a server and register it
    Add {
        name: String,
        /// Admin URL, e.g. postgres://admin:PASSWORD@host:5432/postgres
        #[arg(long)]
        url: String,
        #[arg(long)]
        region: String,
        #[arg(long)]
        json: bool,
    },
    /// List registered servers
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum TenantCmd {
    /// Create a tenant (or resume an interrupted creation)
    Create {
        slug: String,
        #[arg(long, value_parser = ["pooled", "schema", "database"])]
        placement: String,
        #[arg(long)]
        server: Option<String>,
        /// Regions the tenant's data may live in, comma-separated
        #[arg(long, value_delimiter = ',')]
        residency: Vec<String>,
        /// Declared requirements, e.g. dedicated-database,region:eu-central
        #[arg(long, value_delimiter = ',')]
        requires: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List tenants
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one tenant, where it lives and any unfinished operation
    Show {
        slug: String,
        #[arg(long)]
        json: bool,
    },
    /// Update a tenant's declared requirements (`--requires ''` clears them)
    Update {
        slug: String,
        /// e.g. dedicated-database,dedicated-schema,region:eu-central
        #[arg(long, value_delimiter = ',', required = true, num_args = 1)]
        requires: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Suspend a tenant: its roles stop logging in and its sessions end
    Suspend { slug: String },
    /// Resume a suspended tenant
    Resume { slug: String },
    /// Move a tenant online to another placement and/or server (within its residency)
    Move {
        slug: String,
        /// Target placement: pooled, schema or database
        #[arg(long, required_unless_present_any = ["resume", "abort", "status"])]
        to: Option<String>,
        /// Target server (default: the tenant's own, or the first in its residency)
        #[arg(long)]
        server: Option<String>,
        /// Continue an interrupted move from its recorded step
        #[arg(long, conflicts_with_all = ["abort", "status", "to"])]
        resume: bool,
        /// Undo a move that has not flipped yet; the tenant stays on its source
        #[arg(long, conflicts_with_all = ["resume", "status", "to"])]
        abort: bool,
        /// Show the last move's step and progress
        #[arg(long, conflicts_with_all = ["resume", "abort", "to"])]
        status: bool,
        #[arg(long)]
        json: bool,
    },
    /// Export a tenant's rows from one consistent snapshot into a portable archive (.tar.zst), online
    Export {
        /// The tenant (not with --all)
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        slug: Option<String>,
        /// The archive to write (written as FILE.partial, renamed when complete)
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        out: Option<PathBuf>,
        /// Every active or suspended tenant into --dir, for cron; exits 1 naming each tenant that failed
        #[arg(long, requires = "dir")]
        all: bool,
        /// With --all: the directory for DIR/SLUG-TIME.tar.zst
        #[arg(long, requires = "all")]
        dir: Option<PathBuf>,
        /// With --all: the newest exports kept per tenant; older ones are removed
        #[arg(long, default_value_t = 7)]
        keep: usize,
        #[arg(long)]
        json: bool,
    },
    /// Import an archive: the archive's own slug restores that tenant, a new slug makes a clone; checks every checksum
    Import {
        slug: String,
        /// The archive (from `tenant export`)
        #[arg(long)]
        from: PathBuf,
        /// Placement of a new tenant (default: the archive's)
        #[arg(long, value_parser = ["pooled", "schema", "database"])]
        placement: Option<String>,
        /// Server of a new tenant (default: the archive's, if its residency allows, else the first allowed)
        #[arg(long)]
        server: Option<String>,
        /// Replace an existing tenant's rows (it is suspended while they are replaced)
        #[arg(long)]
        replace: bool,
        #[arg(long)]
        json: bool,
    },
    /// Copy a tenant into a new one (its own key, roles and rows), streamed with no intermediate file
    Clone {
        slug: String,
        new_slug: String,
        /// Placement of the clone (default: the source's)
        #[arg(long, value_parser = ["pooled", "schema", "database"])]
        placement: Option<String>,
        /// Server of the clone (default: the source's, if its residency allows, else the first allowed)
        #[arg(long)]
        server: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Restore a tenant's rows as they were at a point in time, from the server's pgBackRest backup (via a scratch cluster)
    Restore {
        slug: String,
        /// The time, e.g. 2026-12-06T10:15:00Z or '2026-12-06 10:15:00+00' (UTC when no zone is given)
        #[arg(long)]
        at: String,
        /// Restore into this new tenant (a copy of SLUG as it was then)
        #[arg(long = "as", conflicts_with = "replace")]
        as_slug: Option<String>,
        /// Restore SLUG in place (it is suspended while its rows are replaced)
        #[arg(long)]
        replace: bool,
        #[arg(long)]
        json: bool,
    },
    /// Erase a tenant's data, roles and keys, and print an erasure certificate
    Erase {
        slug: String,
        /// Repeat the slug to confirm
        #[arg(long)]
        confirm: Option<String>,
    },
}

#[derive(Args)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub sub: Option<MigrateSub>,
    /// Directory of NNNN_name.sql files (default: migrations.dir from the config)
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Only lint the files against the table contract; touch no database
    #[arg(long)]
    pub check: bool,
    /// Targets migrated concurrently
    #[arg(long)]
    pub jobs: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum MigrateSub {
    /// Show every target's app-schema version
    Status {
        #[arg(long)]
        json: bool,
    },
}
