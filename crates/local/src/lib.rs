//! Real local PostgreSQL 15 clusters: the embedded default `tenantgate demo` runs on, and the
//! servers the tests start. Also the one writer of a local multi-server deployment's
//! tenantgate.toml ([`deployment_toml`]), shared by `demo` and the integration tests.
//!
//! This crate owns the life cycle of clusters it creates with `initdb`/`pg_ctl`: throwaway
//! ones in a fresh temp dir ([`Cluster::start_temp`]) and persistent ones in a caller-chosen
//! directory ([`Cluster::open_persistent`]). Several clusters at once stand in for several
//! servers and regions. Nothing here is mocked.
//!
//! It must never:
//! - touch a PostgreSQL server it did not create: every cluster listens on 127.0.0.1 on a
//!   free port, with its unix socket in its own directory (never /var/run/postgresql);
//! - allow password-less access: pg_hba uses scram-sha-256 everywhere, never `trust`;
//! - leave a temp cluster behind on drop, including drop during a panic;
//! - panic in `Drop`, or print passwords (`Debug` redacts them).
//!
//! Layout of a cluster directory: `data/` (PGDATA), `sock/` (unix socket), `server.log`,
//! `admin-password` (mode 0600) and, for persistent clusters, `port`.
//!
//! When the process runs as root (as CI does), `initdb` and `pg_ctl` run as the `postgres`
//! OS user via `runuser` (or `su`), and the cluster directory is chowned to that user.
//!
//! Orphans: if the test process is killed with SIGKILL (or aborts), no destructor runs and
//! its temp clusters keep running, because `pg_ctl` detaches the postmaster and PostgreSQL
//! has no setting to exit with its parent. Clean up by hand with
//! `pg_ctl stop -m immediate -D /tmp/tg-*/data` and removing the `/tmp/tg-*` directories.

mod pg;

/// One server of a local deployment: its name, region and cluster.
pub struct LocalServer<'a> {
    pub name: &'a str,
    pub region: &'a str,
    pub cluster: &'a Cluster,
}

/// The tenantgate.toml of a local deployment: the catalog in the first server's `tenantgate`
/// database, the master key in `master.key` and the app migrations in `migrations_dir`
/// (both relative to the config file), every server with its region, then `extra` (more
/// tables, such as `[reports]`). Holds admin passwords: write it private.
pub fn deployment_toml(servers: &[LocalServer<'_>], migrations_dir: &str, extra: &str) -> String {
    let mut toml = String::new();
    if let Some(first) = servers.first() {
        toml.push_str(&format!("[catalog]\nurl = \"{}\"\n\n", first.cluster.url("tenantgate")));
    }
    toml.push_str("[master_key]\nfile = \"master.key\"\n\n");
    toml.push_str(&format!("[migrations]\ndir = \"{migrations_dir}\"\n\n"));
    toml.push_str(extra);
    for s in servers {
        toml.push_str(&format!("[[servers]]\nname = \"{}\"\nurl = \"{}\"\nregion = \"{}\"\n\n", s.name, s.cluster.url("postgres"), s.region));
    }
    toml
}

/// The `[backup]` table of a local deployment: pgBackRest's repository `repo` (relative to
/// the config file, or absolute), `retention_full` full backups kept, and a stanza named
/// after each server with its data and socket directories. Pass it as `extra` to
/// [`deployment_toml`]; start each cluster with `archive_mode = on` and the
/// `archive_command` tenantgate gives for that stanza (`tg_control::backup::archive_settings`).
pub fn backup_toml(servers: &[LocalServer<'_>], repo: &str, retention_full: u32) -> String {
    let mut toml = format!("[backup]\nrepo = \"{repo}\"\nretention_full = {retention_full}\n\n");
    for s in servers {
        toml.push_str(&format!(
            "[[backup.servers]]\nserver = \"{}\"\npg_path = \"{}\"\npg_socket = \"{}\"\n\n",
            s.name,
            s.cluster.data_dir().display(),
            s.cluster.socket_dir().display()
        ));
    }
    toml
}

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rand::distributions::Alphanumeric;
use rand::Rng;
use tempfile::TempDir;

pub use pg::pg_bin_dir;
use pg::Pg;

const HOST: &str = "127.0.0.1";
const PASSWORD_LEN: usize = 32;
/// Attempts at starting on a fresh port when parallel starts race for the same one.
const PORT_ATTEMPTS: usize = 5;
/// Seconds `pg_ctl -w` waits for start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";
const LOG_TAIL_LINES: usize = 20;
/// Unix socket paths must stay below this many bytes.
const MAX_SOCKET_PATH: usize = 100;
const CONF_FILE: &str = "tenantgate.conf";

/// How to create a cluster. `Default` gives a fast, throwaway-friendly setup.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Label used in directory names and messages, e.g. "us-1".
    pub name: String,
    /// Superuser role created by initdb (letters, digits, `_`). For a persistent cluster it
    /// must match the one it was created with.
    pub superuser: String,
    /// With `false`, temp clusters run with fsync, synchronous_commit and full_page_writes
    /// off: fast, but [`Cluster::kill`] may lose the last fraction of a second of commits
    /// (as a real crash with asynchronous commit would). Persistent clusters are always
    /// crash-safe.
    pub fsync: bool,
    /// `max_connections` of the server.
    pub max_connections: u32,
    /// Extra postgresql.conf settings as (name, raw value); values are quoted here, so pass
    /// `("work_mem", "64MB")`, not `"'64MB'"`. They come last, so they override defaults.
    pub extra_conf: Vec<(String, String)>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            name: "pg".into(),
            superuser: "tg_admin".into(),
            fsync: false,
            max_connections: 200,
            extra_conf: Vec::new(),
        }
    }
}

impl ClusterOptions {
    fn validate(&self) -> Result<(), TestkitError> {
        let invalid = |msg: String| Err(TestkitError::InvalidOptions(msg));
        let is_ident = |s: &str, extra: &[char]| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c))
        };
        if !is_ident(&self.superuser, &[]) || self.superuser.starts_with("pg_") {
            return invalid(format!(
                "superuser {:?} must be letters, digits and '_' and not start with \"pg_\"",
                self.superuser
            ));
        }
        if self.max_connections == 0 {
            return invalid("max_connections must be at least 1".into());
        }
        for (name, value) in &self.extra_conf {
            if !is_ident(name, &['.']) || value.contains(['\n', '\r']) {
                return invalid(format!(
                    "extra_conf entry {name:?} = {value:?} is not a valid setting line"
                ));
            }
        }
        Ok(())
    }

    /// `name` reduced to a short, path-safe label.
    fn dir_label(&self) -> String {
        let label: String = self
            .name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .take(16)
            .collect();
        if label.is_empty() {
            "pg".into()
        } else {
            label
        }
    }
}

/// Everything that can go wrong, each message saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    #[error("initdb not found: install postgresql-15 or set TENANTGATE_PG_BIN to the directory holding initdb and pg_ctl")]
    PgBinNotFound,
    #[error("TENANTGATE_PG_BIN={} has no initdb in it: point it at a PostgreSQL 15 bin directory such as /usr/lib/postgresql/15/bin", .0.display())]
    PgBinInvalid(PathBuf),
    #[error("running as root, but there is no `postgres` OS user to run PostgreSQL as (it refuses root): install postgresql-15, create that user, or run as a non-root user")]
    NoPostgresUser,
    #[error("running as root, but neither runuser nor su is available to switch to the `postgres` user: install util-linux, or run as a non-root user")]
    NoUserSwitch,
    #[error("the postgres OS user cannot write to {}: every parent directory must be traversable by it (chmod o+x), e.g. use a directory under /tmp or /var/lib", .0.display())]
    DirNotAccessible(PathBuf),
    #[error("unix socket path {} would be {len} bytes, the limit is {MAX_SOCKET_PATH}: use a shorter cluster directory", .path.display())]
    SocketPathTooLong { path: PathBuf, len: usize },
    #[error("invalid cluster options: {0}")]
    InvalidOptions(String),
    #[error("cluster directory {} is in an unexpected state: {reason}", .path.display())]
    BadState { path: PathBuf, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}):\n{output}")]
    CommandFailed {
        command: String,
        status: String,
        output: String,
    },
    #[error("PostgreSQL at {} could not listen on 127.0.0.1:{port} because the address is in use: stop whatever uses it, or for a persistent cluster delete its `port` file to get a new port. Last server log lines:\n{log_tail}", .data_dir.display())]
    PortInUse {
        data_dir: PathBuf,
        port: u16,
        log_tail: String,
    },
    #[error("PostgreSQL at {} did not start; last server log lines:\n{log_tail}", .data_dir.display())]
    StartFailed { data_dir: PathBuf, log_tail: String },
}

fn io_error(context: impl fmt::Display) -> impl FnOnce(std::io::Error) -> TestkitError {
    let context = context.to_string();
    move |source| TestkitError::Io { context, source }
}

/// Paths inside one cluster directory.
#[derive(Debug)]
struct Layout {
    root: PathBuf,
    data: PathBuf,
    sock: PathBuf,
    log: PathBuf,
    password: PathBuf,
    port: PathBuf,
}

impl Layout {
    fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_path_buf(),
            data: root.join("data"),
            sock: root.join("sock"),
            log: root.join("server.log"),
            password: root.join("admin-password"),
            port: root.join("port"),
        }
    }

    fn is_initialized(&self) -> bool {
        self.data.join("PG_VERSION").is_file()
    }

    fn check_socket_path(&self) -> Result<(), TestkitError> {
        let path = self.sock.join(".s.PGSQL.65535");
        let len = path.as_os_str().len();
        if len < MAX_SOCKET_PATH {
            Ok(())
        } else {
            Err(TestkitError::SocketPathTooLong { path, len })
        }
    }

    fn read_port(&self) -> Result<Option<u16>, TestkitError> {
        if !self.port.exists() {
            return Ok(None);
        }
        let text = fs::read_to_string(&self.port)
            .map_err(io_error(format!("reading {}", self.port.display())))?;
        text.trim()
            .parse()
            .map(Some)
            .map_err(|_| TestkitError::BadState {
                path: self.port.clone(),
                reason: format!(
                    "it should hold a port number, not {:?}; delete it to pick a new port",
                    text.trim()
                ),
            })
    }

    fn write_port(&self, port: u16) -> Result<(), TestkitError> {
        fs::write(&self.port, format!("{port}\n"))
            .map_err(io_error(format!("writing {}", self.port.display())))
    }

    fn read_password(&self) -> Result<String, TestkitError> {
        let text = fs::read_to_string(&self.password)
            .map_err(io_error(format!("reading {}", self.password.display())))?;
        let password = text.trim().to_string();
        if password.is_empty() {
            return Err(TestkitError::BadState {
                path: self.password.clone(),
                reason: "the password file is empty; delete the directory to recreate the cluster"
                    .into(),
            });
        }
        Ok(password)
    }

    /// Write the superuser password (mode 0600); it is also initdb's `--pwfile`.
    fn write_password(&self, password: &str) -> Result<(), TestkitError> {
        let context = format!("writing {}", self.password.display());
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.password)
            .map_err(io_error(&context))?;
        writeln!(file, "{password}").map_err(io_error(&context))
    }

    /// The last lines of the server log written after byte `since`.
    fn log_tail(&self, since: u64) -> String {
        let bytes = fs::read(&self.log).unwrap_or_default();
        let start = usize::try_from(since).unwrap_or(0).min(bytes.len());
        let text = String::from_utf8_lossy(&bytes[start..]);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    fn log_len(&self) -> u64 {
        fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }
}

/// A running (or stopped, after [`Cluster::stop`]) local PostgreSQL cluster.
///
/// Temp clusters are stopped (immediate) and deleted on drop; persistent ones are left alone.
pub struct Cluster {
    pg: Pg,
    layout: Layout,
    port: u16,
    superuser: String,
    password: String,
    /// `Some` for temp clusters: the directory is deleted when this drops, after `Drop::drop`.
    temp: Option<TempDir>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("data_dir", &self.layout.data)
            .field("port", &self.port)
            .field("superuser", &self.superuser)
            .field("password", &"<redacted>")
            .field("temp", &self.temp.is_some())
            .finish()
    }
}

impl Cluster {
    /// Fresh cluster in a new temp dir, started; stopped (immediate) and deleted on Drop,
    /// including when a test panics.
    pub fn start_temp(opts: ClusterOptions) -> Result<Cluster, TestkitError> {
        opts.validate()?;
        let pg = Pg::detect()?;
        let temp = tempfile::Builder::new()
            .prefix(&format!("tg-{}-", opts.dir_label()))
            .tempdir_in(std::env::temp_dir())
            .map_err(io_error("creating a temp dir for a PostgreSQL cluster"))?;
        let layout = Layout::new(temp.path());
        layout.check_socket_path()?;
        let password = random_password();
        layout.write_password(&password)?;
        // From here on, an early return drops `cluster`, which kills and deletes it.
        let mut cluster = Cluster {
            pg,
            layout,
            port: 0,
            superuser: opts.superuser.clone(),
            password,
            temp: Some(temp),
        };
        cluster.initdb(&opts)?;
        cluster.start_on_free_port(&opts)?;
        Ok(cluster)
    }

    /// Persistent cluster in `dir` (created with initdb if absent, started if not running,
    /// reused if already running). On Drop it is NOT stopped or deleted. Its superuser
    /// password is kept in `dir/admin-password` (mode 0600) and its port in `dir/port`, so
    /// later runs get the same password and port. Options only apply when the server is not
    /// already running.
    pub fn open_persistent(dir: &Path, opts: ClusterOptions) -> Result<Cluster, TestkitError> {
        opts.validate()?;
        let pg = Pg::detect()?;
        fs::create_dir_all(dir).map_err(io_error(format!("creating {}", dir.display())))?;
        let root = dir
            .canonicalize()
            .map_err(io_error(format!("resolving {}", dir.display())))?;
        let layout = Layout::new(&root);
        layout.check_socket_path()?;
        let password = persistent_password(&layout)?;
        let saved_port = layout.read_port()?;
        let mut cluster = Cluster {
            pg,
            layout,
            port: saved_port.unwrap_or(0),
            superuser: opts.superuser.clone(),
            password,
            temp: None,
        };
        if !cluster.layout.is_initialized() {
            cluster.initdb(&opts)?;
        }
        match saved_port {
            Some(_) if cluster.is_running() => Ok(cluster),
            Some(_) => {
                cluster.configure(&opts)?;
                cluster.try_start()?;
                Ok(cluster)
            }
            None if cluster.is_running() => Err(TestkitError::BadState {
                path: root,
                reason: "the server is running but the `port` file is missing; stop it with pg_ctl and retry".into(),
            }),
            None => {
                cluster.start_on_free_port(&opts)?;
                cluster.layout.write_port(cluster.port)?;
                Ok(cluster)
            }
        }
    }

    /// Always "127.0.0.1".
    pub fn host(&self) -> &str {
        HOST
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn superuser(&self) -> &str {
        &self.superuser
    }

    /// Superuser password: random, 32 alphanumeric characters (URL-safe).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// `postgres://USER:PASS@127.0.0.1:PORT/DATABASE` (`database` is used verbatim).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{}:{}@{HOST}:{}/{database}",
            self.superuser, self.password, self.port
        )
    }

    /// PGDATA of this cluster.
    pub fn data_dir(&self) -> &Path {
        &self.layout.data
    }

    /// The directory of its unix socket.
    pub fn socket_dir(&self) -> &Path {
        &self.layout.sock
    }

    /// Whether the server is running, per `pg_ctl status`.
    pub fn is_running(&self) -> bool {
        is_running(&self.pg, &self.layout)
    }

    /// `pg_ctl stop -m fast`, waiting until it is down. Ok if already stopped.
    pub fn stop(&self) -> Result<(), TestkitError> {
        pg_ctl_stop(&self.pg, &self.layout, "fast")
    }

    /// `pg_ctl stop -m immediate`: simulates a crash. Ok if already stopped. On a temp
    /// cluster with `fsync: false`, commits not yet flushed by the WAL writer are lost.
    pub fn kill(&self) -> Result<(), TestkitError> {
        pg_ctl_stop(&self.pg, &self.layout, "immediate")
    }

    /// Start again on the same port, waiting until it accepts connections. Ok if running.
    pub fn start(&self) -> Result<(), TestkitError> {
        if self.is_running() {
            Ok(())
        } else {
            self.try_start()
        }
    }

    /// initdb with the password file, then the pg_hba and config include.
    fn initdb(&self, opts: &ClusterOptions) -> Result<(), TestkitError> {
        let layout = &self.layout;
        fs::create_dir_all(&layout.sock)
            .map_err(io_error(format!("creating {}", layout.sock.display())))?;
        self.pg.runner().give_to_server(&[&layout.root])?;
        self.pg.runner().ensure_server_can_write(&layout.root)?;
        let mut pwfile = std::ffi::OsString::from("--pwfile=");
        pwfile.push(&layout.password);
        let initdb = self
            .pg
            .tool("initdb")
            .arg("-D")
            .arg(&layout.data)
            .args([
                "-U",
                &opts.superuser,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ])
            .arg(pwfile)
            .args(self.fast(opts).then_some("--no-sync"));
        self.pg.run_ok(&initdb, &layout.root)?;
        write_data_file(
            layout,
            "pg_hba.conf",
            "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n",
        )?;
        append_include(layout)
    }

    /// Write this cluster's settings (including the port) to `data/tenantgate.conf`.
    fn configure(&self, opts: &ClusterOptions) -> Result<(), TestkitError> {
        let conf: String = self
            .settings(opts)
            .iter()
            .map(|(name, value)| format!("{name} = '{}'\n", value.replace('\'', "''")))
            .collect();
        write_data_file(&self.layout, CONF_FILE, &conf)?;
        self.pg
            .runner()
            .give_to_server(&[&self.layout.data.join(CONF_FILE)])
    }

    fn settings(&self, opts: &ClusterOptions) -> Vec<(String, String)> {
        let mut settings: Vec<(String, String)> = [
            ("listen_addresses", HOST.to_string()),
            ("port", self.port.to_string()),
            (
                "unix_socket_directories",
                self.layout.sock.display().to_string(),
            ),
            ("wal_level", "logical".into()),
            ("password_encryption", "scram-sha-256".into()),
            ("max_connections", opts.max_connections.to_string()),
            ("max_wal_senders", "10".into()),
            ("max_replication_slots", "10".into()),
            ("log_min_messages", "warning".into()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
        if self.fast(opts) {
            let off = ["fsync", "synchronous_commit", "full_page_writes"];
            settings.extend(off.map(|name| (name.to_string(), "off".to_string())));
        }
        settings.extend(opts.extra_conf.iter().cloned());
        settings
    }

    /// Trade crash safety for speed: only for temp clusters that did not ask for fsync.
    fn fast(&self, opts: &ClusterOptions) -> bool {
        self.temp.is_some() && !opts.fsync
    }

    /// Start on a fresh free port, retrying when a parallel start grabbed the same one.
    fn start_on_free_port(&mut self, opts: &ClusterOptions) -> Result<(), TestkitError> {
        let mut attempt = 1;
        loop {
            self.port = free_port()?;
            self.configure(opts)?;
            match self.try_start() {
                Err(TestkitError::PortInUse { .. }) if attempt < PORT_ATTEMPTS => attempt += 1,
                result => return result,
            }
        }
    }

    /// `pg_ctl start -w`; the error carries the tail of the server log.
    fn try_start(&self) -> Result<(), TestkitError> {
        let layout = &self.layout;
        let log_start = layout.log_len();
        let start = self
            .pg
            .tool("pg_ctl")
            .arg("start")
            .arg("-D")
            .arg(&layout.data)
            .arg("-l")
            .arg(&layout.log)
            .args(["-w", "-t", PG_CTL_TIMEOUT_SECS]);
        let out = self.pg.run(&start, &layout.root)?;
        if out.status.success() {
            return Ok(());
        }
        let log_tail = layout.log_tail(log_start);
        let data_dir = layout.data.clone();
        if log_tail.contains("Address already in use") {
            return Err(TestkitError::PortInUse {
                data_dir,
                port: self.port,
                log_tail,
            });
        }
        let log_tail = if log_tail.trim().is_empty() {
            pg::output_text(&out)
        } else {
            log_tail
        };
        Err(TestkitError::StartFailed { data_dir, log_tail })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.temp.is_some() {
            // Best effort: the directory is removed right after, when `temp` drops.
            let _ = self.kill();
        }
    }
}

/// Stop a persistent cluster at `dir` if running (for `demo --reset`/`demo --stop`).
/// Ok if it is not running or does not exist.
pub fn stop_persistent(dir: &Path) -> Result<(), TestkitError> {
    if !Layout::new(dir).is_initialized() {
        return Ok(());
    }
    let root = dir
        .canonicalize()
        .map_err(io_error(format!("resolving {}", dir.display())))?;
    pg_ctl_stop(&Pg::detect()?, &Layout::new(&root), "fast")
}

fn is_running(pg: &Pg, layout: &Layout) -> bool {
    let status = pg.tool("pg_ctl").arg("status").arg("-D").arg(&layout.data);
    pg.run(&status, &layout.root)
        .map(|out| out.status.success())
        .unwrap_or(false)
}

/// `pg_ctl stop -m <mode> -w`; a server that is already down counts as stopped.
fn pg_ctl_stop(pg: &Pg, layout: &Layout, mode: &str) -> Result<(), TestkitError> {
    let stop = pg
        .tool("pg_ctl")
        .arg("stop")
        .arg("-D")
        .arg(&layout.data)
        .args(["-m", mode, "-w", "-t", PG_CTL_TIMEOUT_SECS]);
    match pg.run_ok(&stop, &layout.root) {
        Err(_) if !is_running(pg, layout) => Ok(()),
        result => result.map(drop),
    }
}

/// The saved password of a persistent cluster, or a new one for a fresh directory.
fn persistent_password(layout: &Layout) -> Result<String, TestkitError> {
    if layout.password.exists() {
        return layout.read_password();
    }
    if layout.is_initialized() {
        return Err(TestkitError::BadState {
            path: layout.root.clone(),
            reason: "the cluster exists but `admin-password` is missing, so its superuser password is unknown; \
                     stop the server and delete the directory to recreate it"
                .into(),
        });
    }
    let password = random_password();
    layout.write_password(&password)?;
    Ok(password)
}

fn write_data_file(layout: &Layout, name: &str, contents: &str) -> Result<(), TestkitError> {
    let path = layout.data.join(name);
    fs::write(&path, contents).map_err(io_error(format!("writing {}", path.display())))
}

/// Make postgresql.conf include our settings file (done once, right after initdb).
fn append_include(layout: &Layout) -> Result<(), TestkitError> {
    let path = layout.data.join("postgresql.conf");
    let context = format!("appending to {}", path.display());
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(io_error(&context))?;
    writeln!(
        file,
        "\n# Settings managed by tg-local\ninclude '{CONF_FILE}'"
    )
    .map_err(io_error(&context))
}

fn random_password() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(PASSWORD_LEN)
        .map(char::from)
        .collect()
}

/// A port that was free a moment ago; starting may still race, see `start_on_free_port`.
fn free_port() -> Result<u16, TestkitError> {
    let listener =
        TcpListener::bind((HOST, 0)).map_err(io_error("finding a free TCP port on 127.0.0.1"))?;
    let addr = listener
        .local_addr()
        .map_err(io_error("finding a free TCP port on 127.0.0.1"))?;
    Ok(addr.port())
}
