//! The scratch cluster of a point-in-time restore: a server's pgBackRest backup recovered
//! to a timestamp into a directory of its own under `<repo>/scratch/`, started with the
//! machine's `pg_ctl` on a free port of 127.0.0.1, read, then stopped and removed.
//!
//! It never touches the live server: the restore is given its own `--pg1-path`, the
//! scratch server runs with `archive_mode=off` (it pushes nothing into the repository),
//! no logical replication workers (a subscription recovered from the backup must not
//! consume a live publication), its own port and socket directory. Dropping a
//! [`Scratch`] stops it (immediate) and removes its directory, whatever happened; a
//! scratch cluster left by a killed tenantgate is removed by the next restore (its
//! `owner.pid` names a process that is gone).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::backup::{as_owner_of, is_root, output_text, pg_config, Backups};
use crate::config::BackupServerConfig;
use crate::error::{Error, Result};

/// Seconds `pg_ctl -w` waits for the recovery to end and the server to accept connections.
const START_TIMEOUT_SECS: &str = "300";
/// Seconds to wait, after that, for the recovery to reach its target and promote.
const RECOVERY_TIMEOUT_SECS: u64 = 600;

/// A recovered copy of a server, running until dropped.
pub struct Scratch {
    dir: PathBuf,
    pg_ctl: Option<PathBuf>,
    port: u16,
    url: String,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch").field("dir", &self.dir).field("port", &self.port).finish()
    }
}

impl Scratch {
    /// Recover `server`'s backup (`stanza`) to `at` into a new scratch directory and start
    /// it; `live_url` gives the admin user and password (the same roles are in the backup).
    /// `set` is the backup to start from (the newest that ended before `at`).
    pub async fn recover(
        b: &Backups,
        s: &BackupServerConfig,
        live_url: &str,
        at: chrono::DateTime<chrono::Utc>,
        set: &str,
        label: &str,
    ) -> Result<Scratch> {
        remove_orphans(b)?;
        let root = b.repo.join("scratch");
        let dir = root.join(format!("{label}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%3f")));
        let data = dir.join("data");
        let io = |p: &Path, e: std::io::Error| Error::Io { path: p.display().to_string(), source: e };
        std::fs::create_dir_all(&data).map_err(|e| io(&data, e))?;
        std::fs::create_dir_all(dir.join("sock")).map_err(|e| io(&dir, e))?;
        std::fs::write(dir.join("owner.pid"), std::process::id().to_string()).map_err(|e| io(&dir, e))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).map_err(|e| io(&data, e))?;
        }
        give_to_repo_owner(b, &dir)?;
        // From here on a failure drops `scratch`, which removes the directory.
        let mut scratch = Scratch { dir: dir.clone(), pg_ctl: None, port: 0, url: String::new() };
        let target = at.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
        b.pgbackrest(
            Some(s.stanza()),
            &[
                format!("--pg1-path={}", data.display()),
                format!("--set={set}"),
                "--type=time".into(),
                format!("--target={target}"),
                "--target-action=promote".into(),
                "--archive-mode=off".into(),
                "--log-level-console=warn".into(),
                "restore".into(),
            ],
            None,
        )
        .await
        .map_err(|e| Error::Backup(format!("recovering server {}'s backup to {target} failed: {e}", s.server)))?;

        // Safety: the WAL the recovery fetches must land in the scratch directory, never in
        // the live server's (pgBackRest resolves archive-get's relative path by pg1-path).
        let auto = std::fs::read_to_string(data.join("postgresql.auto.conf")).unwrap_or_default();
        let restore_command = auto.lines().rev().find(|l| l.trim_start().starts_with("restore_command")).unwrap_or("");
        if !restore_command.contains(&format!("--pg1-path={}", data.display())) {
            return Err(Error::Backup(format!(
                "the recovered copy's restore_command does not name its own data directory ({restore_command:?}); \
                 refusing to start it so the live server's directory is never written. Nothing was restored"
            )));
        }
        let pg_ctl = pg_ctl_for(b, &data)?;
        scratch.pg_ctl = Some(pg_ctl.clone());
        scratch.port = free_port()?;
        let opts = format!(
            "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}' -c archive_mode=off \
             -c max_logical_replication_workers=0 -c hot_standby=off -c max_connections=20",
            scratch.port,
            dir.join("sock").display()
        );
        let mut cmd = Command::new(&pg_ctl);
        cmd.arg("start").arg("-D").arg(&data).arg("-l").arg(dir.join("server.log")).args(["-w", "-t", START_TIMEOUT_SECS, "-o"]).arg(opts);
        cmd.current_dir(&dir);
        as_owner_of(&mut cmd, &b.repo);
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .map_err(|e| Error::Backup(format!("pg_ctl did not finish: {e}")))?
            .map_err(|e| Error::Backup(format!("could not run {} ({e}); set backup.pg_bin to the PostgreSQL bin directory", pg_ctl.display())))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().collect();
            let tail = tail[tail.len().saturating_sub(12)..].join("\n");
            let hint = if log.contains("recovery ended before configured recovery target was reached") {
                format!("the archived WAL ends before {target}: the server has not archived WAL up to then (see `tenantgate backup status`)")
            } else {
                "see the server log below".into()
            };
            return Err(Error::Backup(format!(
                "the recovered copy of server {} did not start ({hint}). Nothing was restored; the live server was not touched. {}\n{tail}",
                s.server,
                output_text(&out)
            )));
        }
        let live = pg_config(live_url)?;
        let user = live.get_user().unwrap_or("postgres");
        let password = live.get_password().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default();
        scratch.url = format!("postgres://{}:{}@127.0.0.1:{}/postgres", encode(user), encode(&password), scratch.port);
        // hot_standby=off: it accepts connections only once recovered and promoted.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(RECOVERY_TIMEOUT_SECS);
        loop {
            let last = match crate::db::connect(&scratch.url, None, "the recovered copy").await {
                Ok(c) => match c.query_one("SELECT pg_is_in_recovery()", &[]).await {
                    Ok(r) if !r.get::<_, bool>(0) => return Ok(scratch),
                    Ok(_) => "it is still in recovery".to_string(),
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            let stopped = !data.join("postmaster.pid").exists();
            if stopped || std::time::Instant::now() > deadline {
                let tail: Vec<&str> = log.lines().collect();
                let hint = if log.contains("recovery ended before configured recovery target was reached") {
                    format!("the archived WAL ends before {target}: the server had not archived WAL up to then")
                } else if stopped {
                    "it stopped during recovery".to_string()
                } else {
                    format!("it did not finish recovering within {RECOVERY_TIMEOUT_SECS} s ({last})")
                };
                return Err(Error::Backup(format!(
                    "the recovered copy of server {} is not usable: {hint}. Nothing was restored; the live server was not touched. Server log:\n{}",
                    s.server,
                    tail[tail.len().saturating_sub(12)..].join("\n")
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// An admin URL of the scratch server (holds the password: never print it).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stop and remove it now (also done on drop).
    pub async fn remove(mut self) -> Result<()> {
        let dir = self.dir.clone();
        let pg_ctl = self.pg_ctl.take();
        self.dir = PathBuf::new();
        tokio::task::spawn_blocking(move || destroy(&dir, pg_ctl.as_deref()))
            .await
            .map_err(|e| Error::Backup(format!("removing the scratch cluster did not finish: {e}")))?
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            let _ = destroy(&self.dir, self.pg_ctl.as_deref());
        }
    }
}

/// Stop (immediate) the scratch server in `dir` if it runs, then remove `dir`.
fn destroy(dir: &Path, pg_ctl: Option<&Path>) -> Result<()> {
    let data = dir.join("data");
    if data.join("postmaster.pid").exists() {
        let pg_ctl = match pg_ctl {
            Some(p) => p.to_path_buf(),
            None => default_pg_ctl(&data),
        };
        let mut cmd = Command::new(pg_ctl);
        cmd.arg("stop").arg("-D").arg(&data).args(["-m", "immediate", "-w", "-t", "60"]).current_dir(dir);
        as_owner_of(&mut cmd, dir);
        let _ = cmd.output();
    }
    if data.join("postmaster.pid").exists() {
        return Err(Error::Backup(format!(
            "the scratch cluster in {} could not be stopped; stop it with `pg_ctl stop -m immediate -D {}` and remove the directory",
            dir.display(),
            data.display()
        )));
    }
    std::fs::remove_dir_all(dir).map_err(|e| Error::Io { path: dir.display().to_string(), source: e })
}

/// Remove scratch clusters whose tenantgate process is gone (killed mid-restore).
fn remove_orphans(b: &Backups) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(b.repo.join("scratch")) else { return Ok(()) };
    for e in entries.flatten() {
        let dir = e.path();
        let owner = std::fs::read_to_string(dir.join("owner.pid")).ok().and_then(|p| p.trim().parse::<u32>().ok());
        let alive = owner.is_some_and(|pid| pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists());
        if dir.is_dir() && !alive {
            destroy(&dir, None)?;
        }
    }
    Ok(())
}

fn give_to_repo_owner(b: &Backups, dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !is_root() {
        return Ok(());
    }
    let m = std::fs::metadata(&b.repo).map_err(|e| Error::Io { path: b.repo.display().to_string(), source: e })?;
    for p in [dir.to_path_buf(), dir.join("data"), dir.join("sock"), dir.join("owner.pid")] {
        std::os::unix::fs::chown(&p, Some(m.uid()), Some(m.gid())).map_err(|e| Error::Io { path: p.display().to_string(), source: e })?;
    }
    Ok(())
}

/// pg_ctl of the recovered data's major version: backup.pg_bin, else
/// /usr/lib/postgresql/<version>/bin, else `pg_config --bindir`.
fn pg_ctl_for(b: &Backups, data: &Path) -> Result<PathBuf> {
    if let Some(bin) = &b.cfg.pg_bin {
        return Ok(bin.join("pg_ctl"));
    }
    let p = default_pg_ctl(data);
    if p.is_file() {
        return Ok(p);
    }
    Err(Error::Backup(format!(
        "no pg_ctl found for the backup's PostgreSQL version ({}); install that PostgreSQL version or set backup.pg_bin",
        std::fs::read_to_string(data.join("PG_VERSION")).unwrap_or_default().trim()
    )))
}

fn default_pg_ctl(data: &Path) -> PathBuf {
    let version = std::fs::read_to_string(data.join("PG_VERSION")).unwrap_or_default();
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{}/bin/pg_ctl", version.trim()));
    if debian.is_file() {
        return debian;
    }
    Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("pg_ctl"))
        .unwrap_or_else(|| PathBuf::from("pg_ctl"))
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| Error::Io { path: "127.0.0.1:0".into(), source: e })?;
    l.local_addr().map(|a| a.port()).map_err(|e| Error::Io { path: "127.0.0.1:0".into(), source: e })
}

/// Percent-encoding of a URL's user or password.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}
