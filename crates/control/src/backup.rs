//! Physical backups and WAL archiving of the servers, by pgBackRest (DESIGN §6).
//!
//! tenantgate does not back anything up itself: it writes pgBackRest's config file from
//! `[backup]` in tenantgate.toml (`<repo>/pgbackrest.conf`: one repository, one stanza per
//! server), runs `pgbackrest` with `--config` for `backup run` (stanza-create, then a
//! backup), `backup status` (`info --output=json`, plus `pg_stat_archiver` of the live
//! server for the end of the recovery window) and `check` (a WAL switch archived, before a
//! restore), and gives the `archive_command` a server needs. The restore itself is
//! `mobility::restore`.
//!
//! pgBackRest reads the server's data directory and the servers push WAL into the
//! repository as their own OS user; when tenantgate runs as root it runs pgbackrest as the
//! owner of the repository (set to the owner of the first server's data directory), so
//! both write files the other can read. Passwords reach pgbackrest only through the
//! `PGPASSWORD` environment of the child, never its arguments, a file or an error.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;

use serde::Serialize;

use crate::catalog::Catalog;
use crate::config::{BackupConfig, BackupServerConfig, Config};
use crate::error::{Error, Result};

/// The config file tenantgate writes in the repository.
pub const CONFIG_FILE: &str = "pgbackrest.conf";

/// `[backup]` resolved against the config file's directory.
#[derive(Debug, Clone)]
pub struct Backups {
    pub cfg: BackupConfig,
    /// The repository, absolute.
    pub repo: PathBuf,
}

impl Backups {
    /// `[backup]` of `cfg`, or a clear error naming what to add.
    pub fn from_config(cfg: &Config) -> Result<Backups> {
        Self::configured(cfg).ok_or_else(|| {
            Error::Backup(
                "no [backup] in tenantgate.toml: add a [backup] table (repo = \"DIR\") with a [[backup.servers]] entry \
                 (server, pg_path) per server, see docs/data-rights.md"
                    .into(),
            )
        })
    }

    /// `[backup]` of `cfg`, if configured.
    pub fn configured(cfg: &Config) -> Option<Backups> {
        let b = cfg.backup.clone()?;
        let repo = absolute(&cfg.resolve(&b.repo));
        Some(Backups { cfg: b, repo })
    }

    pub fn config_file(&self) -> PathBuf {
        self.repo.join(CONFIG_FILE)
    }

    /// The backup entry of server `name`.
    pub fn server(&self, name: &str) -> Result<&BackupServerConfig> {
        self.cfg.servers.iter().find(|s| s.server == name).ok_or_else(|| {
            Error::Backup(format!(
                "server {name:?} has no [[backup.servers]] entry in tenantgate.toml, so it has no pgBackRest backups; \
                 add one (server = \"{name}\", pg_path = its data directory) and run `tenantgate backup run --server {name}`"
            ))
        })
    }

    pub fn pgbackrest_bin(&self) -> PathBuf {
        self.cfg.pgbackrest.clone().unwrap_or_else(default_bin)
    }

    /// The `archive_command` of a server backed up as `stanza` (the `%p` left for PostgreSQL).
    pub fn archive_command(&self, stanza: &str) -> String {
        archive_command(&self.pgbackrest_bin(), &self.config_file(), stanza)
    }

    /// Create the repository (owned by the servers' OS user) and write the pgBackRest
    /// config file. Idempotent; `servers` gives each stanza's port and admin user.
    pub fn write_config(&self, servers: &[(String, String)]) -> Result<()> {
        let owner = self.cfg.servers.first().and_then(|s| std::fs::metadata(&s.pg_path).ok()).map(|m| (m.uid(), m.gid()));
        for dir in [self.repo.clone(), self.repo.join("log"), self.repo.join("lock"), self.repo.join("scratch")] {
            std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
            if let (true, Some((uid, gid))) = (is_root(), owner) {
                std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| io(&dir, e))?;
            }
        }
        let mut text = format!(
            "# Written by tenantgate from [backup] in tenantgate.toml; edits are overwritten.\n[global]\n\
             repo1-path={repo}\nrepo1-retention-full={ret}\nlog-path={repo}/log\nlock-path={repo}/lock\n\
             log-level-console=warn\nlog-level-file=info\nstart-fast=y\ncompress-type=lz4\narchive-timeout=60\n\n",
            repo = self.repo.display(),
            ret = self.cfg.retention_full
        );
        for s in &self.cfg.servers {
            text.push_str(&format!("[{}]\npg1-path={}\n", s.stanza(), absolute(&s.pg_path).display()));
            if let Some(sock) = &s.pg_socket {
                text.push_str(&format!("pg1-socket-path={}\n", absolute(sock).display()));
            }
            if let Some((_, url)) = servers.iter().find(|(n, _)| n == &s.server) {
                let c = pg_config(url)?;
                if let Some(port) = c.get_ports().first() {
                    text.push_str(&format!("pg1-port={port}\n"));
                }
                if let Some(user) = c.get_user() {
                    text.push_str(&format!("pg1-user={user}\n"));
                }
            }
            text.push('\n');
        }
        let path = self.config_file();
        std::fs::write(&path, text).map_err(|e| io(&path, e))
    }

    /// Run `pgbackrest --config=… [--stanza=…] ARGS`, as the repository's owner when root,
    /// with `password` (the server's admin password) in its environment only.
    pub async fn pgbackrest(&self, stanza: Option<&str>, args: &[String], password: Option<&str>) -> Result<Output> {
        let mut cmd = Command::new(self.pgbackrest_bin());
        cmd.arg(format!("--config={}", self.config_file().display()));
        if let Some(s) = stanza {
            cmd.arg(format!("--stanza={s}"));
        }
        cmd.args(args).current_dir(&self.repo).env_remove("PGPASSWORD");
        if let Some(p) = password {
            cmd.env("PGPASSWORD", p);
        }
        as_owner_of(&mut cmd, &self.repo);
        let what = format!("pgbackrest {}", args.last().map(String::as_str).unwrap_or(""));
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .map_err(|e| Error::Backup(format!("{what} did not finish: {e}")))?
            .map_err(|e| {
                Error::Backup(format!(
                    "could not run pgbackrest ({e}): install it (Debian/Ubuntu: `apt-get install pgbackrest`, or `make deps`) \
                     or set backup.pgbackrest to its path"
                ))
            })?;
        if !out.status.success() {
            return Err(Error::Backup(format!(
                "`{what}`{} failed ({}): {}",
                stanza.map(|s| format!(" of stanza {s}")).unwrap_or_default(),
                out.status,
                output_text(&out)
            )));
        }
        Ok(out)
    }
}

/// `pgbackrest` on PATH, as an absolute path (a server's `archive_command` may run with
/// another PATH), or the bare name when it is not installed.
pub fn default_bin() -> PathBuf {
    find_in_path("pgbackrest").unwrap_or_else(|| PathBuf::from("pgbackrest"))
}

/// `pgbackrest --config=CONF --stanza=S archive-push %p`, every path quoted for the shell.
pub fn archive_command(bin: &Path, config_file: &Path, stanza: &str) -> String {
    format!("{} --config={} --stanza={stanza} archive-push %p", shell_quote(&bin.display().to_string()), shell_quote(&config_file.display().to_string()))
}

/// The postgresql.conf settings of a server archived by pgBackRest as `stanza`.
pub fn archive_settings(backups: &Backups, stanza: &str) -> Vec<(String, String)> {
    vec![("archive_mode".into(), "on".into()), ("archive_command".into(), backups.archive_command(stanza))]
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One backup of a stanza, as `pgbackrest info` states it.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSet {
    pub label: String,
    /// full, diff or incr.
    pub kind: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The earliest time it can be restored to.
    pub stopped_at: chrono::DateTime<chrono::Utc>,
    pub size_bytes: u64,
    pub repo_bytes: u64,
    pub wal_start: String,
    pub wal_stop: String,
}

/// `backup status` of one server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerBackups {
    pub server: String,
    pub region: String,
    pub stanza: String,
    pub repo: String,
    pub retention_full: u32,
    /// pgBackRest's own verdict (`ok`, `no valid backups`, `missing stanza path`, ...).
    pub status: String,
    pub backups: Vec<BackupSet>,
    /// The archived WAL range (oldest and newest segment).
    pub wal_min: Option<String>,
    pub wal_max: Option<String>,
    /// The recovery window: from the oldest backup's end to the last WAL the server archived.
    pub recoverable_from: Option<chrono::DateTime<chrono::Utc>>,
    pub recoverable_to: Option<chrono::DateTime<chrono::Utc>>,
    /// WAL the server failed to archive since its start, and the last failure (pg_stat_archiver).
    pub archive_failures: i64,
    pub last_failed_wal: Option<String>,
    /// Why the live server's archiver could not be read, if it could not.
    pub note: Option<String>,
}

/// `backup status`: every configured server's backups and recovery window.
pub async fn status(cfg: &Config, catalog: &Catalog) -> Result<Vec<ServerBackups>> {
    let b = Backups::from_config(cfg)?;
    let servers = catalog.servers().await?;
    b.write_config(&servers.iter().map(|s| (s.name.clone(), s.url.clone())).collect::<Vec<_>>())?;
    let mut out = Vec::new();
    for s in &b.cfg.servers {
        let live = servers.iter().find(|x| x.name == s.server);
        let mut sb = info(&b, s).await?;
        sb.region = live.map(|l| l.region.clone()).unwrap_or_default();
        match live {
            None => sb.note = Some(format!("server {} is not registered in the catalog (`tenantgate init`)", s.server)),
            Some(l) => match archiver(&l.name, &l.url).await {
                Ok((last, failed, failed_wal)) => {
                    sb.archive_failures = failed;
                    sb.last_failed_wal = failed_wal;
                    if !sb.backups.is_empty() {
                        sb.recoverable_to = last.or(sb.recoverable_from);
                    }
                }
                Err(e) => sb.note = Some(format!("the live server's archiver could not be read: {e}")),
            },
        }
        out.push(sb);
    }
    Ok(out)
}

/// `pgbackrest info --output=json` of one stanza (no recovery end: see [`status`]).
pub async fn info(b: &Backups, s: &BackupServerConfig) -> Result<ServerBackups> {
    let out = b.pgbackrest(Some(s.stanza()), &["--output=json".into(), "info".into()], None).await?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Backup(format!("`pgbackrest info` gave output tenantgate cannot read ({e}); run it by hand to see why")))?;
    let st = v.as_array().and_then(|a| a.iter().find(|x| x["name"] == s.stanza())).cloned().unwrap_or_default();
    let ts = |x: &serde_json::Value| chrono::DateTime::from_timestamp(x.as_i64().unwrap_or(0), 0).unwrap_or_default();
    let backups: Vec<BackupSet> = st["backup"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["error"].as_bool() != Some(true))
                .map(|x| BackupSet {
                    label: x["label"].as_str().unwrap_or("").into(),
                    kind: x["type"].as_str().unwrap_or("").into(),
                    started_at: ts(&x["timestamp"]["start"]),
                    stopped_at: ts(&x["timestamp"]["stop"]),
                    size_bytes: x["info"]["size"].as_u64().unwrap_or(0),
                    repo_bytes: x["info"]["repository"]["delta"].as_u64().unwrap_or(0),
                    wal_start: x["archive"]["start"].as_str().unwrap_or("").into(),
                    wal_stop: x["archive"]["stop"].as_str().unwrap_or("").into(),
                })
                .collect()
        })
        .unwrap_or_default();
    let archive = st["archive"].as_array().and_then(|a| a.last()).cloned().unwrap_or_default();
    Ok(ServerBackups {
        server: s.server.clone(),
        region: String::new(),
        stanza: s.stanza().into(),
        repo: b.repo.display().to_string(),
        retention_full: b.cfg.retention_full,
        status: st["status"]["message"].as_str().unwrap_or("no stanza yet: run `tenantgate backup run`").into(),
        recoverable_from: backups.iter().map(|x| x.stopped_at).min(),
        recoverable_to: None,
        backups,
        wal_min: archive["min"].as_str().map(String::from),
        wal_max: archive["max"].as_str().map(String::from),
        archive_failures: 0,
        last_failed_wal: None,
        note: None,
    })
}

/// `pg_stat_archiver` of the live server: last archived time, failures, last failed WAL.
async fn archiver(name: &str, url: &str) -> Result<(Option<chrono::DateTime<chrono::Utc>>, i64, Option<String>)> {
    let c = crate::db::connect(url, None, &format!("server {name:?}")).await?;
    let r = c
        .query_one("SELECT last_archived_time, failed_count, last_failed_wal FROM pg_stat_archiver", &[])
        .await
        .map_err(|e| Error::db("reading pg_stat_archiver", e))?;
    Ok((r.get(0), r.get(1), r.get(2)))
}

/// `backup run`: a backup of each server named (every configured server by default); the
/// stanza is created first if it is new (idempotent).
pub async fn run(cfg: &Config, catalog: &Catalog, server: Option<&str>, kind: &str) -> Result<Vec<ServerBackups>> {
    if !matches!(kind, "full" | "diff" | "incr") {
        return Err(Error::InvalidInput { what: "--type", value: kind.into(), reason: "use full, diff or incr".into() });
    }
    let b = Backups::from_config(cfg)?;
    let servers = catalog.servers().await?;
    b.write_config(&servers.iter().map(|s| (s.name.clone(), s.url.clone())).collect::<Vec<_>>())?;
    let targets: Vec<&BackupServerConfig> = match server {
        Some(name) => vec![b.server(name)?],
        None => b.cfg.servers.iter().collect(),
    };
    let mut out = Vec::new();
    for s in targets {
        let live = servers.iter().find(|x| x.name == s.server).ok_or_else(|| Error::UnknownServer(s.server.clone()))?;
        let password = pg_config(&live.url)?.get_password().map(|p| String::from_utf8_lossy(p).into_owned());
        b.pgbackrest(Some(s.stanza()), &["stanza-create".into()], password.as_deref()).await?;
        b.pgbackrest(Some(s.stanza()), &[format!("--type={kind}"), "backup".into()], password.as_deref()).await?;
        catalog.audit("backup.run", None, serde_json::json!({"server": s.server, "stanza": s.stanza(), "type": kind})).await?;
        let mut sb = info(&b, s).await?;
        sb.region = live.region.clone();
        out.push(sb);
    }
    Ok(out)
}

/// `pgbackrest check` of a server: it switches the WAL and waits until that segment is
/// archived, so everything committed until now can be recovered.
pub async fn check(b: &Backups, s: &BackupServerConfig, url: &str) -> Result<()> {
    let password = pg_config(url)?.get_password().map(|p| String::from_utf8_lossy(p).into_owned());
    b.pgbackrest(Some(s.stanza()), &["check".into()], password.as_deref()).await.map(drop)
}

/// A server URL parsed (never printed: it holds a password).
pub fn pg_config(url: &str) -> Result<tokio_postgres::Config> {
    tokio_postgres::Config::from_str(url).map_err(|e| Error::InvalidInput {
        what: "server URL",
        value: crate::db::redact_url(url),
        reason: format!("{e}; expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"),
    })
}

/// When this process is root, run `cmd` as the owner of `path` (PostgreSQL and pgBackRest
/// refuse root or would leave files the server's user cannot read).
pub fn as_owner_of(cmd: &mut Command, path: &Path) {
    if !is_root() {
        return;
    }
    if let Ok(m) = std::fs::metadata(path) {
        if m.uid() != 0 {
            cmd.uid(m.uid()).gid(m.gid());
        }
    }
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|u| u.split_whitespace().nth(1).map(String::from)))
        .is_some_and(|u| u == "0")
}

/// stderr then stdout of a finished command, trimmed to its last lines.
pub fn output_text(out: &Output) -> String {
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Io { path: path.display().to_string(), source: e }
}
