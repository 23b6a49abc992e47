//! Facts: one read pass over the catalog, the config, the servers, the pgBackRest
//! backups (`backup status`) and the move and restore benchmarks, gathered into a serializable [`Facts`] that every report renders from.
//!
//! Every fact carries its source (`catalog: tg.tenants`, `config: reports.max_pooled_tenants`,
//! `server us-1: ...`, `verify: tg.verify_runs#12`, ...), so each rendered statement can
//! say what it rests on. Everything is sorted, so the same catalog gives the same facts.
//!
//! Owns reading and measuring. It never writes anywhere, never keeps a server URL
//! with its password (only `redacted_url`), and never estimates what it cannot
//! measure: a missing measurement stays `None` with the reason.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tg_control::catalog::{Catalog, Server, Tenant};
use tg_control::config::Config;
use tg_control::db;
use tg_control::model::{Placement, TenantStatus};
use tg_control::placement::{self, ServerAdmin};

use crate::error::{Error, Result};

pub const SRC_TENANTS: &str = "catalog: tg.tenants";
pub const SRC_SERVERS: &str = "catalog: tg.servers";
pub const SRC_VERIFY: &str = "catalog: tg.verify_runs";
pub const SRC_MAX_POOLED: &str = "config: reports.max_pooled_tenants";
pub const SRC_MAX_POOLED_BYTES: &str = "config: reports.max_pooled_tenant_bytes";
pub const SRC_COMPLIANCE: &str = "config: reports.compliance";
pub const SRC_CATALOG_URL: &str = "config: catalog.url";

/// Everything the reports know, from one pass.
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    /// The only time-dependent fact: the day the reports were generated.
    pub date: NaiveDate,
    pub catalog: CatalogLocation,
    /// Sorted by name.
    pub servers: Vec<ServerFact>,
    /// Sorted by slug. Probe tenants (`is_probe`, created by `tenantgate verify`) are excluded.
    pub tenants: Vec<TenantFact>,
    pub probes_excluded: usize,
    pub thresholds: Thresholds,
    pub compliance: Sourced<Vec<String>>,
    pub verify: VerifyFacts,
    pub capabilities: Capabilities,
    pub move_benchmark: MoveBenchmark,
    pub backups: BackupFacts,
    pub restore_benchmark: RestoreBenchmark,
}

/// A value and where it came from.
#[derive(Debug, Clone, Serialize)]
pub struct Sourced<T> {
    pub value: T,
    pub source: String,
}

impl<T> Sourced<T> {
    fn new(value: T, source: impl Into<String>) -> Self {
        Sourced { value, source: source.into() }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CatalogLocation {
    pub redacted_url: String,
    /// The registered server whose host and port the catalog URL names, if any.
    pub server: Option<String>,
    pub region: Option<String>,
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerFact {
    pub name: String,
    pub region: String,
    pub redacted_url: String,
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TenantFact {
    pub slug: String,
    pub key: String,
    pub status: TenantStatus,
    pub placement: Placement,
    pub server: String,
    pub region: String,
    /// Sorted. Empty: any region.
    pub residency: Vec<String>,
    /// Sorted, as stored (may hold values this build does not understand).
    pub requires: Vec<String>,
    /// The database and schema holding the tenant's tables on its server.
    pub database: String,
    pub schema: String,
    pub size: Size,
    pub source: String,
}

/// A measured size, or why there is none.
#[derive(Debug, Clone, Serialize)]
pub struct Size {
    pub bytes: Option<u64>,
    /// How it was measured (or why it was not).
    pub method: String,
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Thresholds {
    pub max_pooled_tenants: Sourced<u64>,
    pub max_pooled_tenant_bytes: Sourced<u64>,
}

pub use tg_control::catalog::VerifyRun;

#[derive(Debug, Clone, Serialize)]
pub struct VerifyFacts {
    pub runs: i64,
    pub last: Option<VerifyRun>,
    pub last_passed: Option<VerifyRun>,
    pub source: String,
}

/// What this build of the binary can do, as its own command tree says.
#[derive(Debug, Clone, Serialize)]
pub struct Capabilities {
    pub version: String,
    /// The flag `tenant move` takes for the target placement (`--to`), or `None` when
    /// this build has no `tenant move`.
    pub move_placement_flag: Option<String>,
    pub export: bool,
    pub import: bool,
    pub verify: bool,
    /// `tenant restore --at` (point-in-time restore of one tenant).
    pub restore: bool,
    pub source: String,
}

impl Capabilities {
    /// A build with none of the optional commands (for tests and library users).
    pub fn none(version: &str) -> Capabilities {
        Capabilities {
            version: version.into(),
            move_placement_flag: None,
            export: false,
            import: false,
            verify: false,
            restore: false,
            source: format!("binary: tenantgate {version} command tree"),
        }
    }
}

/// The machine-readable move benchmark (`reports.move_benchmark`), format
/// `tenantgate-move-bench/1` (docs/reports.md).
#[derive(Debug, Clone, Serialize)]
pub struct MoveBenchmark {
    /// The file as configured, when one is configured.
    pub path: Option<String>,
    /// Why there are no runs, when there are none.
    pub missing: Option<String>,
    pub measured_on: Option<String>,
    pub environment: Option<String>,
    pub runs: Vec<MoveRun>,
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRun {
    pub from: Placement,
    pub to: Placement,
    pub tenant_bytes: u64,
    pub duration_ms: u64,
    #[serde(default)]
    pub fence_ms: Option<u64>,
    #[serde(default)]
    pub rows: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBenchFile {
    format: String,
    #[serde(default)]
    measured_on: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    runs: Vec<MoveRun>,
}

pub const MOVE_BENCH_FORMAT: &str = "tenantgate-move-bench/1";

impl MoveBenchmark {
    /// The measured run that covers a tenant of `bytes` moving `from` → `to`: the
    /// smallest measured tenant at least this large. `None` when no run covers it
    /// (never extrapolated).
    pub fn covering(&self, from: Placement, to: Placement, bytes: u64) -> Option<&MoveRun> {
        self.runs
            .iter()
            .filter(|r| r.from == from && r.to == to && r.tenant_bytes >= bytes)
            .min_by_key(|r| (r.tenant_bytes, r.duration_ms))
    }

    /// The largest measured run for `from` → `to`, to cite when none covers a tenant.
    pub fn largest(&self, from: Placement, to: Placement) -> Option<&MoveRun> {
        self.runs.iter().filter(|r| r.from == from && r.to == to).max_by_key(|r| (r.tenant_bytes, r.duration_ms))
    }
}

pub const SRC_BACKUP: &str = "config: backup";
pub const SRC_BACKUP_STATUS: &str = "backup status (pgbackrest info, pg_stat_archiver)";

/// Where the pgBackRest backups live and what they can restore (`[backup]`, `backup status`).
#[derive(Debug, Clone, Serialize)]
pub struct BackupFacts {
    /// `[backup]` is in tenantgate.toml.
    pub configured: bool,
    /// The repository as configured (`backup.repo`, relative to tenantgate.toml). tenantgate
    /// configures it as a local path (`repo1-path`): it is on the machine that runs tenantgate.
    pub repo: Option<String>,
    pub retention_full: Option<u32>,
    /// Servers with a `[[backup.servers]]` entry, sorted by name.
    pub servers: Vec<ServerBackupFact>,
    /// Registered servers without one (their tenants have no physical backup), sorted.
    pub not_backed_up: Vec<String>,
    /// Why `backup status` could not be read, when it could not (the window is then unknown).
    pub unavailable: Option<String>,
    pub source: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerBackupFact {
    pub server: String,
    /// The server's region: the region of the data the backups hold.
    pub region: String,
    pub stanza: String,
    pub backups: usize,
    /// pgBackRest's verdict.
    pub status: String,
    pub recoverable_from: Option<chrono::DateTime<chrono::Utc>>,
    pub recoverable_to: Option<chrono::DateTime<chrono::Utc>>,
}

impl BackupFacts {
    pub fn server(&self, name: &str) -> Option<&ServerBackupFact> {
        self.servers.iter().find(|s| s.server == name)
    }

    /// Regions whose data the repository holds, sorted.
    pub fn regions(&self) -> Vec<String> {
        let mut r: Vec<String> = self.servers.iter().map(|s| s.region.clone()).filter(|r| !r.is_empty()).collect();
        r.sort();
        r.dedup();
        r
    }
}

impl ServerBackupFact {
    /// The recovery window in words, e.g. `from 2026-12-06 10:00:00 UTC to 2026-12-06 11:00:00 UTC`.
    pub fn window(&self) -> Option<String> {
        let f = |t: &chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
        match (&self.recoverable_from, &self.recoverable_to) {
            (Some(a), Some(b)) => Some(format!("from {} to {}", f(a), f(b))),
            (Some(a), None) => Some(format!("from {} (the end of the archived WAL is unknown)", f(a))),
            _ => None,
        }
    }
}

/// The machine-readable restore benchmark (`reports.restore_benchmark`), format
/// `tenantgate-restore-bench/1` (docs/reports.md), written by `bench/restore.sh`.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreBenchmark {
    pub path: Option<String>,
    /// Why there is no measurement, when there is none.
    pub missing: Option<String>,
    pub measured_on: Option<String>,
    pub environment: Option<String>,
    pub export_import: Option<ExportImportRun>,
    pub point_in_time: Option<PointInTimeRun>,
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportImportRun {
    pub rows: u64,
    pub export_ms: Vec<u64>,
    pub import_ms: Vec<u64>,
    pub baseline_ms: Vec<u64>,
    /// (export + import) / (pg_dump | pg_restore): geometric mean of the rounds.
    pub ratio: f64,
    #[serde(default)]
    pub ratio_interval: Option<[f64; 2]>,
}

impl ExportImportRun {
    /// The median of export + import over the rounds, in ms.
    pub fn median_total_ms(&self) -> u64 {
        let mut t: Vec<u64> = self.export_ms.iter().zip(&self.import_ms).map(|(e, i)| e + i).collect();
        t.sort_unstable();
        t.get(t.len() / 2).copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointInTimeRun {
    pub placement: Placement,
    pub tenant_rows: u64,
    pub pool_rows: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Deserialize)]
struct RestoreBenchFile {
    format: String,
    #[serde(default)]
    measured_on: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    export_import: Option<ExportImportRun>,
    #[serde(default)]
    point_in_time: Option<PointInTimeRun>,
}

pub const RESTORE_BENCH_FORMAT: &str = "tenantgate-restore-bench/1";

impl Facts {
    pub fn tenant(&self, slug: &str) -> Option<&TenantFact> {
        self.tenants.iter().find(|t| t.slug == slug)
    }

    pub fn placements_in_use(&self) -> Vec<Placement> {
        Placement::ALL.into_iter().filter(|p| self.tenants.iter().any(|t| t.placement == *p)).collect()
    }

    pub fn count(&self, placement: Placement) -> usize {
        self.tenants.iter().filter(|t| t.placement == placement).count()
    }

    pub fn server(&self, name: &str) -> Option<&ServerFact> {
        self.servers.iter().find(|s| s.name == name)
    }

    /// Regions with their servers (both sorted).
    pub fn regions(&self) -> BTreeMap<String, Vec<&ServerFact>> {
        let mut m: BTreeMap<String, Vec<&ServerFact>> = BTreeMap::new();
        for s in &self.servers {
            m.entry(s.region.clone()).or_default().push(s);
        }
        m
    }

    /// The largest pooled tenant by measured size (ties: slug order).
    pub fn largest_pooled(&self) -> Option<&TenantFact> {
        self.tenants
            .iter()
            .filter(|t| t.placement == Placement::Pooled)
            .filter_map(|t| t.size.bytes.map(|b| (b, t)))
            .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.slug.cmp(&a.1.slug)))
            .map(|(_, t)| t)
    }

    /// The exact `tenant move` command for moving `slug` to a dedicated database on `server`.
    pub fn move_command(&self, slug: &str, server: &str) -> String {
        let flag = self.capabilities.move_placement_flag.as_deref().unwrap_or("--to");
        format!("tenantgate tenant move {slug} {flag} database --server {server}")
    }
}

/// Read everything, once. `date` is the only input that changes from day to day.
pub async fn gather(cfg: &Config, catalog: &Catalog, capabilities: Capabilities, date: NaiveDate) -> Result<Facts> {
    let r = &cfg.reports;
    if r.max_pooled_tenants == 0 {
        return Err(Error::Config("reports.max_pooled_tenants must be at least 1 (default 500)".into()));
    }
    if r.max_pooled_tenant_bytes == 0 {
        return Err(Error::Config("reports.max_pooled_tenant_bytes must be at least 1 (default 100000000000, i.e. 100 GB)".into()));
    }
    let servers = catalog.servers().await?;
    let all = catalog.tenants().await?;
    let probes_excluded = all.iter().filter(|t| t.is_probe).count();
    let tenants: Vec<Tenant> = all.into_iter().filter(|t| !t.is_probe).collect();
    let sizes = measure_sizes(&servers, &tenants).await?;

    let mut tenant_facts: Vec<TenantFact> = tenants
        .iter()
        .map(|t| {
            let loc = placement::location(t.placement, &t.key);
            let mut residency = t.residency.clone();
            residency.sort();
            let mut requires = t.requires.clone();
            requires.sort();
            let size = sizes.get(t.key.as_str()).cloned().unwrap_or_else(|| Size {
                bytes: None,
                method: format!("not measured: the tenant's status is {}", t.status),
                source: SRC_TENANTS.into(),
            });
            TenantFact {
                slug: t.slug.clone(),
                key: t.key.to_string(),
                status: t.status,
                placement: t.placement,
                server: t.server.clone(),
                region: t.region.clone(),
                residency,
                requires,
                database: loc.database,
                schema: loc.schema,
                size,
                source: SRC_TENANTS.into(),
            }
        })
        .collect();
    tenant_facts.sort_by(|a, b| a.slug.cmp(&b.slug));

    let mut server_facts: Vec<ServerFact> = servers
        .iter()
        .map(|s| ServerFact {
            name: s.name.clone(),
            region: s.region.clone(),
            redacted_url: s.redacted_url(),
            source: SRC_SERVERS.into(),
        })
        .collect();
    server_facts.sort_by(|a, b| a.name.cmp(&b.name));

    let catalog_at = db::host_port(&cfg.catalog.url);
    let catalog_server = servers.iter().find(|s| catalog_at.is_some() && db::host_port(&s.url) == catalog_at);
    let catalog_loc = CatalogLocation {
        redacted_url: db::redact_url(&cfg.catalog.url),
        server: catalog_server.map(|s| s.name.clone()),
        region: catalog_server.map(|s| s.region.clone()),
        source: format!("{SRC_CATALOG_URL}, {SRC_SERVERS}"),
    };

    let mut compliance = r.compliance.clone();
    compliance.sort();
    compliance.dedup();

    Ok(Facts {
        date,
        catalog: catalog_loc,
        servers: server_facts,
        tenants: tenant_facts,
        probes_excluded,
        thresholds: Thresholds {
            max_pooled_tenants: Sourced::new(r.max_pooled_tenants, SRC_MAX_POOLED),
            max_pooled_tenant_bytes: Sourced::new(r.max_pooled_tenant_bytes, SRC_MAX_POOLED_BYTES),
        },
        compliance: Sourced::new(compliance, SRC_COMPLIANCE),
        verify: verify_facts(catalog).await?,
        capabilities,
        move_benchmark: move_benchmark(cfg)?,
        backups: backup_facts(cfg, catalog, &servers).await,
        restore_benchmark: restore_benchmark(cfg)?,
    })
}

/// `[backup]` and `backup status`. Never fails the reports: what could not be read is said.
/// Nothing is created: when the repository has no pgBackRest config yet (no `backup run`
/// so far), `backup status` is not called.
async fn backup_facts(cfg: &Config, catalog: &Catalog, servers: &[Server]) -> BackupFacts {
    let mut f = BackupFacts {
        configured: false,
        repo: None,
        retention_full: None,
        servers: Vec::new(),
        not_backed_up: Vec::new(),
        unavailable: None,
        source: SRC_BACKUP.into(),
    };
    let Some(b) = tg_control::backup::Backups::configured(cfg) else {
        f.not_backed_up = servers.iter().map(|s| s.name.clone()).collect();
        f.not_backed_up.sort();
        return f;
    };
    f.configured = true;
    f.repo = Some(b.cfg.repo.display().to_string());
    f.retention_full = Some(b.cfg.retention_full);
    f.source = format!("{SRC_BACKUP}, {SRC_BACKUP_STATUS}");
    let region = |name: &str| servers.iter().find(|s| s.name == name).map(|s| s.region.clone()).unwrap_or_default();
    f.servers = b
        .cfg
        .servers
        .iter()
        .map(|s| ServerBackupFact {
            server: s.server.clone(),
            region: region(&s.server),
            stanza: s.stanza().to_string(),
            backups: 0,
            status: "not read".into(),
            recoverable_from: None,
            recoverable_to: None,
        })
        .collect();
    f.servers.sort_by(|a, b| a.server.cmp(&b.server));
    f.not_backed_up = servers.iter().filter(|s| b.server(&s.name).is_err()).map(|s| s.name.clone()).collect();
    f.not_backed_up.sort();
    if !b.config_file().exists() {
        f.unavailable = Some("no backup has been taken yet (run `tenantgate backup run`)".into());
        return f;
    }
    match tg_control::backup::status(cfg, catalog).await {
        Ok(list) => {
            for sb in list {
                if let Some(s) = f.servers.iter_mut().find(|s| s.server == sb.server) {
                    s.backups = sb.backups.len();
                    s.status = sb.status.clone();
                    s.recoverable_from = sb.recoverable_from;
                    s.recoverable_to = sb.recoverable_to;
                }
            }
        }
        Err(e) => f.unavailable = Some(format!("`tenantgate backup status` failed: {e}")),
    }
    f
}

fn restore_benchmark(cfg: &Config) -> Result<RestoreBenchmark> {
    let source = "config: reports.restore_benchmark".to_string();
    let none = |path: Option<String>, missing: String, source: String| RestoreBenchmark {
        path,
        missing: Some(missing),
        measured_on: None,
        environment: None,
        export_import: None,
        point_in_time: None,
        source,
    };
    let Some(configured) = &cfg.reports.restore_benchmark else {
        return Ok(none(None, "no restore benchmark is configured (reports.restore_benchmark is unset)".into(), source));
    };
    let shown = configured.display().to_string();
    let path = cfg.resolve(configured);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(none(
                Some(shown.clone()),
                format!("reports.restore_benchmark names {shown}, which does not exist: no restore has been measured"),
                format!("{source} ({shown})"),
            ))
        }
        Err(e) => return Err(Error::Benchmark { path: path.display().to_string(), reason: e.to_string() }),
    };
    parse_restore_benchmark(&text, &path, &shown, source)
}

fn parse_restore_benchmark(text: &str, path: &Path, shown: &str, source: String) -> Result<RestoreBenchmark> {
    let bad = |reason: String| Error::Benchmark { path: path.display().to_string(), reason };
    let file: RestoreBenchFile = serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON of the expected shape: {e}")))?;
    if file.format != RESTORE_BENCH_FORMAT {
        return Err(bad(format!("format is {:?}; this build reads {RESTORE_BENCH_FORMAT:?}", file.format)));
    }
    if let Some(e) = &file.export_import {
        if e.export_ms.is_empty() || e.export_ms.len() != e.import_ms.len() {
            return Err(bad("export_import needs as many export_ms as import_ms figures, at least one".into()));
        }
    }
    let missing = (file.export_import.is_none() && file.point_in_time.is_none()).then(|| format!("{shown} holds no runs: no restore has been measured"));
    Ok(RestoreBenchmark {
        path: Some(shown.to_string()),
        missing,
        measured_on: file.measured_on,
        environment: file.environment,
        export_import: file.export_import,
        point_in_time: file.point_in_time,
        source: format!("{source} ({shown})"),
    })
}

async fn verify_facts(catalog: &Catalog) -> Result<VerifyFacts> {
    let v = catalog.verify_runs().await?;
    Ok(VerifyFacts { runs: v.count, last: v.last, last_passed: v.last_passed, source: SRC_VERIFY.into() })
}

fn move_benchmark(cfg: &Config) -> Result<MoveBenchmark> {
    let source = "config: reports.move_benchmark".to_string();
    let Some(configured) = &cfg.reports.move_benchmark else {
        return Ok(MoveBenchmark {
            path: None,
            missing: Some("no move benchmark is configured (reports.move_benchmark is unset)".into()),
            measured_on: None,
            environment: None,
            runs: Vec::new(),
            source,
        });
    };
    let shown = configured.display().to_string();
    let path = cfg.resolve(configured);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(MoveBenchmark {
                path: Some(shown.clone()),
                missing: Some(format!("reports.move_benchmark names {shown}, which does not exist: no move has been measured")),
                measured_on: None,
                environment: None,
                runs: Vec::new(),
                source: format!("{source} ({shown})"),
            })
        }
        Err(e) => return Err(Error::Benchmark { path: path.display().to_string(), reason: e.to_string() }),
    };
    parse_move_benchmark(&text, &path, &shown, source)
}

fn parse_move_benchmark(text: &str, path: &Path, shown: &str, source: String) -> Result<MoveBenchmark> {
    let bad = |reason: String| Error::Benchmark { path: path.display().to_string(), reason };
    let file: MoveBenchFile = serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON of the expected shape: {e}")))?;
    if file.format != MOVE_BENCH_FORMAT {
        return Err(bad(format!("format is {:?}; this build reads {MOVE_BENCH_FORMAT:?}", file.format)));
    }
    let mut runs = file.runs;
    runs.sort_by_key(|r| (r.from.as_str(), r.to.as_str(), r.tenant_bytes, r.duration_ms));
    let missing = runs.is_empty().then(|| format!("{shown} holds no runs: no move has been measured"));
    Ok(MoveBenchmark {
        path: Some(shown.to_string()),
        missing,
        measured_on: file.measured_on,
        environment: file.environment,
        runs,
        source: format!("{source} ({shown})"),
    })
}

/// Measure every active or suspended tenant's size on its server:
/// - `schema` and `database`: `pg_total_relation_size` (heap, TOAST and indexes) summed
///   over the tables in the tenant's own schema;
/// - `pooled`: an estimate, `sum(pg_column_size(row))` over the tenant's rows in every
///   shared table with a `tenant_id` column (row data only: no indexes, no per-page or
///   dead-row overhead), one `GROUP BY tenant_id` scan per table.
async fn measure_sizes(servers: &[Server], tenants: &[Tenant]) -> Result<HashMap<String, Size>> {
    let mut out = HashMap::new();
    for server in servers {
        let on: Vec<&Tenant> = tenants
            .iter()
            .filter(|t| t.server == server.name && matches!(t.status, TenantStatus::Active | TenantStatus::Suspended))
            .collect();
        if on.is_empty() {
            continue;
        }
        let admin = ServerAdmin { name: &server.name, url: &server.url };
        let name = server.name.as_str();
        let pooled: Vec<&Tenant> = on.iter().copied().filter(|t| t.placement == Placement::Pooled).collect();
        if !pooled.is_empty() {
            let sizes = pooled_sizes(&admin).await?;
            for t in pooled {
                out.insert(
                    t.key.to_string(),
                    Size {
                        bytes: Some(sizes.get(t.key.as_str()).copied().unwrap_or(0)),
                        method: "estimate: sum(pg_column_size(row)) over the tenant's rows in the shared tables (row data only, no indexes)".into(),
                        source: format!("server {name}: {}.{}", placement::POOL_DB, placement::APP_SCHEMA),
                    },
                );
            }
        }
        let schema: Vec<&Tenant> = on.iter().copied().filter(|t| t.placement == Placement::Schema).collect();
        if !schema.is_empty() {
            let client = admin.connect(Some(placement::BRIDGE_DB)).await.map_err(|e| Error::measure(name, placement::BRIDGE_DB, e))?;
            let keys: Vec<String> = schema.iter().map(|t| t.key.to_string()).collect();
            let rows = client
                .query(
                    "SELECT n.nspname::text, coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint \
                     FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'm') \
                     WHERE n.nspname = ANY($1) GROUP BY 1",
                    &[&keys],
                )
                .await
                .map_err(|e| Error::measure_db(name, placement::BRIDGE_DB, e))?;
            let found: HashMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            for t in schema {
                out.insert(t.key.to_string(), relation_size(name, placement::BRIDGE_DB, t.key.as_str(), found.get(t.key.as_str())));
            }
        }
        for t in on.iter().copied().filter(|t| t.placement == Placement::Database) {
            let db_name = t.key.as_str();
            let client = admin.connect(Some(db_name)).await.map_err(|e| Error::measure(name, db_name, e))?;
            let row = client
                .query_opt(
                    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint \
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')",
                    &[&placement::APP_SCHEMA],
                )
                .await
                .map_err(|e| Error::measure_db(name, db_name, e))?;
            let bytes: Option<i64> = row.map(|r| r.get(0));
            out.insert(t.key.to_string(), relation_size(name, db_name, placement::APP_SCHEMA, bytes.as_ref()));
        }
    }
    Ok(out)
}

fn relation_size(server: &str, database: &str, schema: &str, bytes: Option<&i64>) -> Size {
    Size {
        bytes: Some(bytes.copied().unwrap_or(0).max(0) as u64),
        method: "pg_total_relation_size (tables, TOAST and indexes) summed over the tenant's schema".into(),
        source: format!("server {server}: {database}.{schema}"),
    }
}

/// Estimated bytes per tenant key in the pool database's shared tables.
async fn pooled_sizes(admin: &ServerAdmin<'_>) -> Result<HashMap<String, u64>> {
    let server = admin.name;
    let client = admin.connect(Some(placement::POOL_DB)).await.map_err(|e| Error::measure(server, placement::POOL_DB, e))?;
    tg_control::mobility::rows::pooled_bytes(&client).await.map_err(|e| Error::measure(server, placement::POOL_DB, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benchmark_file_and_covering_run() {
        let text = r#"{"format":"tenantgate-move-bench/1","measured_on":"2025-01-02","runs":[
            {"from":"pooled","to":"database","tenant_bytes":1000000,"duration_ms":900},
            {"from":"pooled","to":"database","tenant_bytes":100000000,"duration_ms":4000,"fence_ms":300},
            {"from":"schema","to":"database","tenant_bytes":5000,"duration_ms":100}]}"#;
        let b = parse_move_benchmark(text, Path::new("m.json"), "m.json", "config".into()).unwrap();
        assert_eq!(b.runs.len(), 3);
        assert_eq!(b.covering(Placement::Pooled, Placement::Database, 5).map(|r| r.duration_ms), Some(900));
        assert_eq!(b.covering(Placement::Pooled, Placement::Database, 2_000_000).map(|r| r.duration_ms), Some(4000));
        // Larger than anything measured: no covering run, never an extrapolation.
        assert!(b.covering(Placement::Pooled, Placement::Database, 200_000_000).is_none());
        assert_eq!(b.largest(Placement::Pooled, Placement::Database).map(|r| r.tenant_bytes), Some(100_000_000));
        assert!(b.covering(Placement::Schema, Placement::Pooled, 1).is_none());

        let e = parse_move_benchmark(r#"{"format":"x","runs":[]}"#, Path::new("m.json"), "m.json", "c".into()).unwrap_err();
        assert!(e.to_string().contains("tenantgate-move-bench/1"), "{e}");
        assert!(parse_move_benchmark("{", Path::new("m.json"), "m.json", "c".into()).is_err());
    }

    #[test]
    fn restore_benchmark_file() {
        let text = r#"{"format":"tenantgate-restore-bench/1","measured_on":"2026-12-06",
            "export_import":{"rows":100,"export_ms":[30,10,20],"import_ms":[300,100,200],"baseline_ms":[100,100,100],"ratio":2.2,"ratio_interval":[1.0,4.0]},
            "point_in_time":{"placement":"pooled","tenant_rows":10,"pool_rows":1000,"duration_ms":4321,"backup_ms":9}}"#;
        let b = parse_restore_benchmark(text, Path::new("r.json"), "r.json", "config".into()).unwrap();
        assert!(b.missing.is_none());
        assert_eq!(b.export_import.as_ref().map(ExportImportRun::median_total_ms), Some(220));
        assert_eq!(b.point_in_time.as_ref().map(|p| p.duration_ms), Some(4321));
        let e = parse_restore_benchmark(r#"{"format":"tenantgate-move-bench/1"}"#, Path::new("r.json"), "r.json", "c".into()).unwrap_err();
        assert!(e.to_string().contains("tenantgate-restore-bench/1"), "{e}");
        let empty = parse_restore_benchmark(r#"{"format":"tenantgate-restore-bench/1"}"#, Path::new("r.json"), "r.json", "c".into()).unwrap();
        assert!(empty.missing.is_some());
    }
}
