//! `tenantgate.toml`: where the catalog lives, the master key source, the servers,
//! the app-schema migrations directory and report thresholds.
//!
//! Owns parsing and path resolution only. It never connects anywhere and never
//! reads the master key itself (see `credentials`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub catalog: CatalogConfig,
    #[serde(default)]
    pub master_key: MasterKeyConfig,
    #[serde(default)]
    pub servers: Vec<ServerConfig>,
    #[serde(default)]
    pub migrations: MigrationsConfig,
    #[serde(default)]
    pub reports: ReportsConfig,
    /// `[gateway]`: the wire-protocol gateway, its gate, limits and pools. Parsed
    /// (strictly) by the data-plane crate that owns it, not here.
    #[serde(default)]
    pub gateway: toml::Table,
    /// `[http]`: the HTTP API and its JWT keys. Parsed by the HTTP crate.
    #[serde(default)]
    pub http: toml::Table,
    /// `[backup]`: physical backups and WAL archiving by pgBackRest (point-in-time restore).
    #[serde(default)]
    pub backup: Option<BackupConfig>,
    /// Directory the config file was loaded from; relative paths resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// Admin URL of the catalog database, e.g. postgres://admin:pw@host:5432/tenantgate
    pub url: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MasterKeyConfig {
    /// A file holding the key. Takes precedence over `env` when set.
    pub file: Option<PathBuf>,
    /// Environment variable holding the key.
    #[serde(default = "default_master_key_env")]
    pub env: String,
}

impl Default for MasterKeyConfig {
    fn default() -> Self {
        MasterKeyConfig { file: None, env: default_master_key_env() }
    }
}

fn default_master_key_env() -> String {
    "TENANTGATE_MASTER_KEY".into()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub name: String,
    pub url: String,
    pub region: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationsConfig {
    #[serde(default = "default_migrations_dir")]
    pub dir: PathBuf,
    /// Targets migrated concurrently by `tenantgate migrate` unless --jobs says otherwise.
    #[serde(default = "default_jobs")]
    pub jobs: usize,
}

impl Default for MigrationsConfig {
    fn default() -> Self {
        MigrationsConfig { dir: default_migrations_dir(), jobs: default_jobs() }
    }
}

fn default_migrations_dir() -> PathBuf {
    PathBuf::from("migrations")
}
fn default_jobs() -> usize {
    4
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsConfig {
    #[serde(default = "default_max_pooled")]
    pub max_pooled_tenants: u64,
    #[serde(default = "default_max_pooled_bytes")]
    pub max_pooled_tenant_bytes: u64,
    #[serde(default)]
    pub compliance: Vec<String>,
    /// A machine-readable `tenant move` benchmark (format: docs/reports.md), cited by
    /// `tenantgate questionnaire`. Relative to the config file. Unset: no measurement.
    #[serde(default)]
    pub move_benchmark: Option<PathBuf>,
    /// A machine-readable restore benchmark (`bench/restore.sh`, format: docs/reports.md),
    /// cited by `tenantgate questionnaire`. Relative to the config file. Unset: no measurement.
    #[serde(default)]
    pub restore_benchmark: Option<PathBuf>,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            max_pooled_tenants: default_max_pooled(),
            max_pooled_tenant_bytes: default_max_pooled_bytes(),
            compliance: Vec::new(),
            move_benchmark: None,
            restore_benchmark: None,
        }
    }
}

fn default_max_pooled() -> u64 {
    500
}
fn default_max_pooled_bytes() -> u64 {
    100 * 1_000_000_000
}

/// `[backup]`: one pgBackRest repository for the deployment and a stanza per server.
/// tenantgate writes the pgBackRest config file (`<repo>/pgbackrest.conf`) from it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// The repository (`repo1-path`), relative to the config file. It must be on the
    /// machine that runs tenantgate and writable by the servers' OS user.
    pub repo: PathBuf,
    /// Full backups kept (`repo1-retention-full`); older ones and their WAL are expired.
    #[serde(default = "default_retention_full")]
    pub retention_full: u32,
    /// How often a full backup is taken (by cron), in hours: only used to estimate when a
    /// backup expires in an erasure certificate. Unset: no date is estimated.
    #[serde(default)]
    pub full_every_hours: Option<u64>,
    /// The pgbackrest binary (default: `pgbackrest` on PATH).
    #[serde(default)]
    pub pgbackrest: Option<PathBuf>,
    /// The PostgreSQL bin directory holding pg_ctl, for the scratch cluster of a restore
    /// (default: /usr/lib/postgresql/<the backup's major version>/bin, else `pg_config --bindir`).
    #[serde(default)]
    pub pg_bin: Option<PathBuf>,
    /// One entry per backed-up server.
    #[serde(default)]
    pub servers: Vec<BackupServerConfig>,
}

/// `[[backup.servers]]`: how pgBackRest reaches one server.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackupServerConfig {
    /// The server's name in `[[servers]]`.
    pub server: String,
    /// The pgBackRest stanza (default: the server's name).
    #[serde(default)]
    pub stanza: Option<String>,
    /// The server's data directory (`pg1-path`), local to this machine.
    pub pg_path: PathBuf,
    /// The directory of its unix socket (`pg1-socket-path`); default: libpq's.
    #[serde(default)]
    pub pg_socket: Option<PathBuf>,
}

impl BackupServerConfig {
    pub fn stanza(&self) -> &str {
        self.stanza.as_deref().unwrap_or(&self.server)
    }
}

fn default_retention_full() -> u32 {
    2
}

impl Config {
    /// Load from an explicit path.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "cannot read {}: {e}. Pass --config FILE or set TENANTGATE_CONFIG (run `tenantgate demo` for a ready-made one)",
                path.display()
            ))
        })?;
        let mut cfg: Config = toml::from_str(&text)
            .map_err(|e| Error::Config(format!("{} is not valid: {e}", path.display())))?;
        cfg.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for s in &self.servers {
            if !seen.insert(&s.name) {
                return Err(Error::Config(format!("server {:?} is listed twice in [[servers]]", s.name)));
            }
        }
        if let Some(b) = &self.backup {
            let mut stanzas = std::collections::HashSet::new();
            for s in &b.servers {
                let stanza = s.stanza();
                if stanza.is_empty() || !stanza.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                    return Err(Error::Config(format!("backup stanza {stanza:?} must be letters, digits, '-' and '_'")));
                }
                if !stanzas.insert(stanza.to_string()) {
                    return Err(Error::Config(format!("backup stanza {stanza:?} is used by two [[backup.servers]] entries; give each server its own")));
                }
            }
            if b.retention_full == 0 {
                return Err(Error::Config("backup.retention_full must be at least 1".into()));
            }
        }
        if self.migrations.jobs == 0 {
            return Err(Error::Config("migrations.jobs must be at least 1".into()));
        }
        Ok(())
    }

    /// Resolve a path from the config relative to the config file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub fn migrations_dir(&self) -> PathBuf {
        self.resolve(&self.migrations.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minimal_and_defaults() {
        let cfg: Config = toml::from_str("[catalog]\nurl = \"postgres://a@b/c\"\n").unwrap();
        assert_eq!(cfg.master_key.env, "TENANTGATE_MASTER_KEY");
        assert_eq!(cfg.reports.max_pooled_tenants, 500);
        assert_eq!(cfg.migrations.jobs, 4);
    }

    #[test]
    fn rejects_unknown_keys() {
        let r: std::result::Result<Config, _> = toml::from_str("[catalog]\nurl = \"x\"\nbogus = 1\n");
        assert!(r.is_err());
    }
}
