//! `tenantgate verify`: certifies a live deployment's isolation adversarially.
//!
//! It creates probe tenants in every placement, plants unique canaries in every table,
//! runs the attack catalogue from every probe against every other through the
//! gateway (once with the SQL gate on, once with it off), audits the servers'
//! configuration, records the outcome in the catalog and erases the probes.
//!
//! Modules: `probes` (probe tenants), `plant` (canaries), `scenarios` (the catalogue,
//! as data), `exec` (sessions and verdicts), `wire_attacks` (raw protocol attacks), `audit`
//! (configuration checks), `http` (HTTP API attacks), `report` (terminal table and JSON).
//!
//! It never touches a tenant that is not a probe, and never weakens anything to test it.

pub mod audit;
pub mod exec;
pub mod harness;
pub mod http;
pub mod plant;
pub mod probes;
pub mod rawclient;
pub mod report;
pub mod scenarios;
pub mod wire_attacks;

use std::time::{Duration, Instant};

use serde::Serialize;

use tg_control::catalog::Catalog;
use tg_control::config::Config;
use tg_control::keys::{self, KeyScope};

use exec::{judge, Seen, Session, Target, Verdict};
use probes::Probe;
use scenarios::{Kind, Scenario};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Control(#[from] tg_control::Error),
    #[error("verify setup failed: {0}")]
    Setup(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Run only this group (see `scenarios::GROUPS`).
    pub only: Option<String>,
    /// Keep the probe tenants afterwards.
    pub keep: bool,
    /// Probes per placement (at least 2).
    pub per_placement: usize,
    /// Bound on another tenant's query latency while an exhaustion attack runs.
    pub latency_bound: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options { only: None, keep: false, per_placement: 2, latency_bound: Duration::from_millis(1000) }
    }
}

/// One run of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: &'static str,
    pub group: &'static str,
    pub description: &'static str,
    pub attacker: String,
    pub victim: Option<String>,
    pub gate: bool,
    #[serde(flatten)]
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    pub passed: bool,
    pub scenarios: usize,
    pub runs: Vec<Run>,
    pub failures: usize,
    pub residual: usize,
    pub audit: Vec<audit::Finding>,
    pub probes: Vec<Probe>,
    pub latency_bound_ms: u128,
    pub max_other_tenant_latency_ms: u128,
    pub kept_probes: bool,
}

/// Run `verify` against `targets` (the gateways: one with the gate, one without).
pub async fn run(cfg: &Config, targets: &[Target], opts: &Options) -> Result<Report> {
    let started_at = chrono::Utc::now();
    let mut catalog = Catalog::connect(&cfg.catalog.url).await?;
    let master = tg_control::tenants::master_key(cfg, &catalog).await?;
    probes::erase_all(&mut catalog).await?;
    let audit_only = opts.only.as_deref() == Some("audit");
    let (probes, result) = if audit_only {
        (Vec::new(), Ok((Vec::new(), Duration::ZERO)))
    } else {
        if targets.is_empty() {
            return Err(Error::Setup("no gateway to attack through; start `tenantgate serve` or pass --target".into()));
        }
        let probes = probes::create(cfg, &mut catalog, &master, opts.per_placement.max(2)).await?;
        analyze(&catalog, &probes).await;
        let result = attack_all(cfg, &catalog, &master, targets, opts, &probes).await;
        (probes, result)
    };
    let audit = audit::run(&catalog).await;
    if !opts.keep {
        probes::erase_all(&mut catalog).await?;
    }
    let (runs, max_latency) = result?;
    let audit = audit?;
    let failures = runs.iter().filter(|r| !r.verdict.passed).count()
        + audit.iter().filter(|f| f.severity == audit::Severity::Fail).count();
    let residual = runs.iter().filter(|r| r.verdict.residual).count();
    let mut ids: Vec<&str> = runs.iter().map(|r| r.id).collect();
    ids.sort();
    ids.dedup();
    let report = Report {
        started_at,
        finished_at: chrono::Utc::now(),
        passed: failures == 0,
        scenarios: ids.len(),
        failures,
        residual,
        runs,
        audit,
        probes,
        latency_bound_ms: opts.latency_bound.as_millis(),
        max_other_tenant_latency_ms: max_latency.as_millis(),
        kept_probes: opts.keep,
    };
    record(&catalog, &report).await?;
    Ok(report)
}

async fn record(catalog: &Catalog, r: &Report) -> Result<()> {
    let mut by_group = std::collections::BTreeMap::<&str, (usize, usize)>::new();
    for run in &r.runs {
        let e = by_group.entry(run.group).or_default();
        e.0 += 1;
        if !run.verdict.passed {
            e.1 += 1;
        }
    }
    let summary = serde_json::json!({
        "runs": r.runs.len(),
        "residual": r.residual,
        "audit_failures": r.audit.iter().filter(|f| f.severity == audit::Severity::Fail).count(),
        "audit_warnings": r.audit.iter().filter(|f| f.severity == audit::Severity::Warn).count(),
        "groups": by_group.iter().map(|(g, (n, f))| (g.to_string(), serde_json::json!({"runs": n, "failures": f}))).collect::<serde_json::Map<_, _>>(),
        "gate_modes": r.runs.iter().map(|x| x.gate).collect::<std::collections::BTreeSet<_>>(),
    });
    catalog
        .insert_verify_run(r.started_at, r.passed, r.scenarios as i32, r.failures as i32, &summary)
        .await
        .map_err(Error::Control)?;
    Ok(())
}

/// Gather planner statistics on the probes' tables, so a statistics leak would show.
async fn analyze(catalog: &Catalog, probes: &[Probe]) {
    let mut done = std::collections::BTreeSet::new();
    for p in probes {
        if !done.insert((p.server.clone(), p.database.clone())) {
            continue;
        }
        let Ok(server) = catalog.server(&p.server).await else { continue };
        let admin = tg_control::placement::ServerAdmin { name: &server.name, url: &server.url };
        if let Ok(c) = admin.connect(Some(&p.database)).await {
            if let Err(e) = c.batch_execute("ANALYZE").await {
                tracing::warn!("ANALYZE in {} on {}: {e}", p.database, p.server);
            }
        }
    }
}

/// Per-attacker fixtures prepared once.
struct Fixture {
    revoked: String,
    /// The id of the canary branch, when the restaurant schema is present.
    branch: Option<String>,
}

async fn attack_all(
    _cfg: &Config,
    catalog: &Catalog,
    master: &tg_control::credentials::MasterKey,
    targets: &[Target],
    opts: &Options,
    probes: &[Probe],
) -> Result<(Vec<Run>, Duration)> {
    let catalogue: Vec<Scenario> = scenarios::catalogue()
        .into_iter()
        .filter(|s| opts.only.as_deref().is_none_or(|g| s.group == g))
        .filter(|s| s.needs.iter().all(|t| probes.iter().all(|p| p.planted.tables.contains_key(*t))))
        .collect();
    if opts.only.as_deref() == Some("http") && targets.iter().all(|t| t.http.is_none()) {
        return Err(Error::Setup("--only http: no HTTP API to attack; run without --target (verify starts its own), or enable [http] in the config".into()));
    }
    if catalogue.is_empty() {
        return Err(Error::Setup(format!(
            "no scenario to run{}. Groups: {}",
            opts.only.as_deref().map(|g| format!(" in group {g:?}")).unwrap_or_default(),
            scenarios::GROUPS.join(", ")
        )));
    }
    let mut fixtures = Vec::new();
    for p in probes {
        let k = keys::create(catalog, &p.slug, KeyScope::ReadWrite, Some("verify-revoked")).await?;
        keys::revoke(catalog, &p.slug, &k.info.id).await?;
        fixtures.push(Fixture { revoked: k.secret, branch: canary_branch(p, master).await });
    }
    let mut runs = Vec::new();
    let mut max_latency = Duration::ZERO;
    for target in targets {
        for (ai, a) in probes.iter().enumerate() {
            let mut session = connect(target, a).await?;
            let (stmt_ms, idle_ms) = limits(&session).await;
            let bound = Duration::from_millis(stmt_ms.unwrap_or(30_000) + 3_000);
            let markers_all: Vec<&str> = probes.iter().filter(|p| p.key != a.key).map(|p| p.canary.as_str()).collect();
            // Exhaustion attacks are slow by nature: one attacker per placement runs them.
            let first_of_placement = probes.iter().position(|p| p.placement == a.placement) == Some(ai);
            for sc in &catalogue {
                if sc.group == "resource" && !first_of_placement {
                    continue;
                }
                if let Kind::Http(h) = sc.kind {
                    // HTTP scenarios need an HTTP API next to this gateway, configured so they mean something.
                    if !target.http.as_ref().is_some_and(|t| http::applies(t, h)) {
                        continue;
                    }
                }
                let victims: Vec<(usize, &Probe)> = if exec::is_pairwise(&sc.kind) {
                    probes.iter().enumerate().filter(|(_, v)| v.key != a.key).collect()
                } else {
                    vec![]
                };
                let pairs: Vec<Option<(usize, &Probe)>> = if victims.is_empty() { vec![None] } else { victims.into_iter().map(Some).collect() };
                for pair in pairs {
                    let v = pair.map(|(_, v)| v);
                    let vbranch = pair.and_then(|(vi, _)| fixtures[vi].branch.as_deref());
                    let mut markers = markers_all.clone();
                    if sc.key_is_secret || (sc.expect == scenarios::Expect::ScopedCatalog && target.gate) {
                        if let Some(v) = v {
                            markers.push(v.key.as_str());
                        } else {
                            markers.extend(probes.iter().filter(|p| p.key != a.key).map(|p| p.key.as_str()));
                        }
                    }
                    let (seen, latency) = run_one(target, &session, sc, a, v, vbranch, &fixtures[ai], probes, idle_ms).await;
                    max_latency = max_latency.max(latency);
                    let mut verdict = judge(sc, &seen, target.gate, &markers, &a.canary, bound);
                    if sc.group == "resource" && latency > opts.latency_bound {
                        verdict.passed = false;
                        verdict.evidence = format!("another tenant waited {} ms (bound {} ms); {}", latency.as_millis(), opts.latency_bound.as_millis(), verdict.evidence);
                    }
                    runs.push(Run {
                        id: sc.id,
                        group: sc.group,
                        description: sc.description,
                        attacker: a.placement.as_str().into(),
                        victim: v.map(|v| v.placement.as_str().to_string()),
                        gate: target.gate,
                        verdict,
                    });
                    // Leave no transaction open, and reconnect if the session was ended.
                    if session.is_closed() {
                        session = connect(target, a).await?;
                    } else {
                        // Undo what the scenario changed (a lifted timeout must not reach the next one).
                        let _ = session.simple("ROLLBACK").await;
                        let _ = session.simple("RESET ALL").await;
                    }
                }
            }
        }
    }
    // Integrity: every probe's canaries survived every attack.
    for p in probes {
        let intact = canaries_intact(p, master).await;
        runs.push(Run {
            id: "integrity.canaries-intact",
            group: "integrity",
            description: "every probe's canary rows are unchanged after all attacks",
            attacker: p.placement.as_str().into(),
            victim: None,
            gate: false,
            verdict: Verdict {
                passed: intact.is_ok(),
                outcome: if intact.is_ok() { "all canary rows present".into() } else { "canary rows were changed".into() },
                evidence: intact.err().unwrap_or_default(),
                residual: false,
            },
        });
    }
    Ok((runs, max_latency))
}

async fn connect(target: &Target, a: &Probe) -> Result<Session> {
    Session::connect(target, &a.slug, &a.rw_secret, "tenantgate").await.map_err(|e| {
        Error::Setup(format!(
            "probe {} cannot connect through the gateway at {}:{} (gate {}): {} {}. Is `tenantgate serve` running with this config?",
            a.slug,
            target.host,
            target.port,
            if target.gate { "on" } else { "off" },
            e.code,
            e.message
        ))
    })
}

/// The tenant's statement and idle-in-transaction timeouts, as the backend reports them.
async fn limits(s: &Session) -> (Option<u64>, Option<u64>) {
    let parse = |seen: Seen| -> Option<u64> {
        let v = seen.rows.first()?.trim().to_string();
        let (num, unit): (String, String) = v.chars().partition(|c| c.is_ascii_digit());
        let n: u64 = num.parse().ok()?;
        let ms = match unit.trim() {
            "ms" | "" => n,
            "s" => n * 1000,
            "min" => n * 60_000,
            "h" => n * 3_600_000,
            _ => return None,
        };
        (ms > 0).then_some(ms)
    };
    (parse(s.simple("SHOW statement_timeout").await), parse(s.simple("SHOW idle_in_transaction_session_timeout").await))
}

#[allow(clippy::too_many_arguments)]
async fn run_one(
    target: &Target,
    session: &Session,
    sc: &Scenario,
    a: &Probe,
    v: Option<&Probe>,
    vbranch: Option<&str>,
    fx: &Fixture,
    probes: &[Probe],
    idle_ms: Option<u64>,
) -> (Seen, Duration) {
    let read_sql = exec::fill("SELECT {c}::text FROM {t}", a, None, None);
    match sc.kind {
        Kind::Pair(t) | Kind::Solo(t) => {
            let sql = exec::fill(t, a, v, vbranch);
            if sc.group == "resource" {
                // A fresh session: the attack runs under the tenant's limits as they start.
                return match Session::connect(target, &a.slug, &a.rw_secret, "tenantgate").await {
                    Ok(fresh) => with_bystander(target, a, probes, fresh.simple(&sql)).await,
                    Err(e) => (Seen { error: Some(e), ..Default::default() }, Duration::ZERO),
                };
            }
            (session.simple(&sql).await, Duration::ZERO)
        }
        Kind::Smuggle { setup, attack } => {
            let nonce = rand::random::<u32>() % 1_000_000_000 + 10;
            let first = session.simple(&setup.replace("{nonce}", &nonce.to_string())).await;
            if first.error.as_ref().is_some_and(|e| e.gate_rule().is_some()) {
                return (first, Duration::ZERO);
            }
            let seen = session.simple(attack).await;
            // The probe's session serves the next scenarios: whatever the setup changed
            // (with the gate off) goes back to the session's defaults.
            let _ = session.simple("RESET ALL").await;
            (seen, Duration::ZERO)
        }
        Kind::CopyOut(t) => (session.copy_out(&exec::fill(t, a, v, vbranch)).await, Duration::ZERO),
        Kind::CopyIn(t, data) => (session.copy_in(&exec::fill(t, a, v, vbranch), &exec::fill(data, a, v, vbranch)).await, Duration::ZERO),
        Kind::Session { setup, check, carried } => {
            let mut seen = Seen::default();
            if let Ok(first) = Session::connect(target, &a.slug, &a.rw_secret, "tenantgate").await {
                let _ = first.simple(setup).await;
                drop(first);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            match Session::connect(target, &a.slug, &a.rw_secret, "tenantgate").await {
                Ok(next) => {
                    seen = next.simple(check).await;
                    if seen.error.is_none() && seen.rows.iter().any(|r| r.trim() == carried) {
                        seen.violation = Some(format!("session state carried over to the tenant's next client: {carried}"));
                    }
                }
                Err(e) => seen.error = Some(e),
            }
            (seen, Duration::ZERO)
        }
        Kind::IdleTransaction => {
            let Some(idle) = idle_ms.filter(|ms| *ms <= 30_000) else {
                let mut seen = Seen::default();
                seen.rows.push(format!("no idle-in-transaction limit of 30 s or less is set (found {idle_ms:?} ms)"));
                return (seen, Duration::ZERO);
            };
            let seen = match Session::connect(target, &a.slug, &a.rw_secret, "tenantgate").await {
                Ok(s) => {
                    let _ = s.simple("BEGIN; SELECT 1").await;
                    tokio::time::sleep(Duration::from_millis(idle + 1_000)).await;
                    let mut seen = s.simple("SELECT 1").await;
                    seen.elapsed = Duration::from_millis(idle);
                    seen
                }
                Err(e) => Seen { error: Some(e), ..Default::default() },
            };
            (seen, Duration::ZERO)
        }
        Kind::ListenNotify => {
            let Some(v) = v else { return (Seen::default(), Duration::ZERO) };
            let mut seen = session.simple("LISTEN tg_shared_channel").await;
            if seen.error.is_none() {
                if let Ok(vs) = Session::connect(target, &v.slug, &v.rw_secret, "tenantgate").await {
                    let _ = vs.simple(&format!("NOTIFY tg_shared_channel, '{}'", v.canary)).await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                let after = session.simple("SELECT 1").await;
                seen.notices.extend(after.notices);
                let _ = session.simple("UNLISTEN *").await;
            }
            (seen, Duration::ZERO)
        }
        Kind::Http(h) => match &target.http {
            Some(t) => (http::attack(t, h, a, v, &fx.revoked).await, Duration::ZERO),
            None => (Seen::default(), Duration::ZERO),
        },
        Kind::Wire(w) => {
            let Some(v) = v else { return (Seen::default(), Duration::ZERO) };
            (wire_attacks::attack(target, w, a, v, &fx.revoked, &read_sql).await, Duration::ZERO)
        }
    }
}

/// Run `attack` while another probe issues small queries; returns the attack's result and
/// the bystander's worst latency.
async fn with_bystander(target: &Target, a: &Probe, probes: &[Probe], attack: impl std::future::Future<Output = Seen>) -> (Seen, Duration) {
    let Some(b) = probes.iter().find(|p| p.key != a.key) else { return (attack.await, Duration::ZERO) };
    let Ok(bs) = Session::connect(target, &b.slug, &b.rw_secret, "tenantgate").await else { return (attack.await, Duration::ZERO) };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let bystander = tokio::spawn(async move {
        let mut worst = Duration::ZERO;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            let _ = bs.simple("SELECT 1").await;
            worst = worst.max(t.elapsed());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        worst
    });
    let seen = attack.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let worst = bystander.await.unwrap_or_default();
    (seen, worst)
}

/// Connect directly (not through the gateway) as the probe's own role.
async fn direct(p: &Probe, master: &tg_control::credentials::MasterKey) -> Option<tokio_postgres::Client> {
    let (role, pw) = p.role_password(master, false);
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&p.host).port(p.port).user(&role).password(pw).dbname(&p.database);
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await.ok()?;
    tokio::spawn(conn);
    Some(client)
}

async fn canary_branch(p: &Probe, master: &tg_control::credentials::MasterKey) -> Option<String> {
    let col = p.planted.tables.get("branches")?;
    let c = direct(p, master).await?;
    let sql = format!("SELECT branch_id::text FROM branches WHERE {} = $1", tg_control::quote::ident(col));
    c.query_opt(&sql, &[&p.canary]).await.ok().flatten().map(|r| r.get(0))
}

async fn canaries_intact(p: &Probe, master: &tg_control::credentials::MasterKey) -> std::result::Result<(), String> {
    let c = direct(p, master).await.ok_or_else(|| format!("cannot connect as {}", p.slug))?;
    for (table, col) in &p.planted.tables {
        let sql = format!("SELECT count(*) FROM {}.{} WHERE {}::text = $1", tg_control::quote::ident(&p.schema), tg_control::quote::ident(table), tg_control::quote::ident(col));
        let n: i64 = c.query_one(&sql, &[&p.canary]).await.map_err(|e| format!("{table}: {e}"))?.get(0);
        if n < 1 {
            return Err(format!("{}'s canary row in {table} is gone", p.slug));
        }
    }
    Ok(())
}
