//! Finding the PostgreSQL binaries and running them as an OS user they accept.
//!
//! `initdb`, `pg_ctl` and `postgres` refuse to run as root. When this process is root,
//! every server-side command goes through `runuser -u postgres --` (or `su postgres` when
//! runuser is missing), and the files the server needs are handed to that user with `chown`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::TestkitError;

/// Environment variable naming the directory that holds `initdb`, `pg_ctl` and `postgres`.
const PG_BIN_ENV: &str = "TENANTGATE_PG_BIN";
const PG15_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The OS user that runs PostgreSQL when this process is root.
const PG_OS_USER: &str = "postgres";
/// Places to look for `runuser`/`su`, besides PATH (root's PATH may lack the sbin dirs).
const SYSTEM_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"];

/// Directory holding initdb/pg_ctl/postgres: `$TENANTGATE_PG_BIN`, else `pg_config --bindir`
/// if it has initdb, else /usr/lib/postgresql/15/bin, else the dir of `initdb` on PATH.
pub fn pg_bin_dir() -> Result<PathBuf, TestkitError> {
    if let Some(dir) = std::env::var_os(PG_BIN_ENV) {
        let dir = PathBuf::from(dir);
        return if has_initdb(&dir) {
            Ok(dir)
        } else {
            Err(TestkitError::PgBinInvalid(dir))
        };
    }
    pg_config_bindir()
        .filter(|dir| has_initdb(dir))
        .or_else(|| Some(PathBuf::from(PG15_BIN)).filter(|dir| has_initdb(dir)))
        .or_else(|| find_in_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf)))
        .ok_or(TestkitError::PgBinNotFound)
}

fn has_initdb(dir: &Path) -> bool {
    dir.join("initdb").is_file()
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    out.status.success().then(|| PathBuf::from(dir.trim()))
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn find_system_tool(name: &str) -> Option<PathBuf> {
    find_in_path(name).or_else(|| {
        SYSTEM_DIRS
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
    })
}

/// A program plus its arguments, independent of which OS user will run it.
pub(crate) struct Invocation {
    program: PathBuf,
    args: Vec<OsString>,
}

impl Invocation {
    pub(crate) fn new(program: impl Into<PathBuf>) -> Invocation {
        Invocation {
            program: program.into(),
            args: Vec::new(),
        }
    }

    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Invocation {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub(crate) fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(self, args: I) -> Invocation {
        args.into_iter().fold(self, Invocation::arg)
    }

    fn describe(&self) -> String {
        let mut words = vec![self.program.display().to_string()];
        words.extend(self.args.iter().map(|a| a.to_string_lossy().into_owned()));
        words.join(" ")
    }

    /// One line for `sh -c`, every word single-quoted.
    fn shell_line(&self) -> String {
        let quote = |s: &OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
        let mut line = format!("exec {}", quote(self.program.as_os_str()));
        for arg in &self.args {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        line
    }
}

/// How server-side commands are run: directly, or switched to the `postgres` OS user.
#[derive(Debug, Clone)]
pub(crate) enum Runner {
    Direct,
    Runuser(PathBuf),
    Su(PathBuf),
}

impl Runner {
    pub(crate) fn detect() -> Result<Runner, TestkitError> {
        if effective_uid()? != 0 {
            return Ok(Runner::Direct);
        }
        let has_user = Command::new("id")
            .arg("-u")
            .arg(PG_OS_USER)
            .output()
            .map(|o| o.status.success());
        if !has_user.unwrap_or(false) {
            return Err(TestkitError::NoPostgresUser);
        }
        find_system_tool("runuser")
            .map(Runner::Runuser)
            .or_else(|| find_system_tool("su").map(Runner::Su))
            .ok_or(TestkitError::NoUserSwitch)
    }

    fn command(&self, inv: &Invocation) -> Command {
        let mut cmd;
        match self {
            Runner::Direct => {
                cmd = Command::new(&inv.program);
                cmd.args(&inv.args);
            }
            Runner::Runuser(runuser) => {
                cmd = Command::new(runuser);
                cmd.args(["-u", PG_OS_USER, "--"])
                    .arg(&inv.program)
                    .args(&inv.args);
            }
            Runner::Su(su) => {
                cmd = Command::new(su);
                cmd.args([PG_OS_USER, "-s", "/bin/sh", "-c"])
                    .arg(inv.shell_line());
            }
        }
        cmd
    }

    /// Hand `paths` (recursively) to the postgres OS user; nothing to do when not root.
    pub(crate) fn give_to_server(&self, paths: &[&Path]) -> Result<(), TestkitError> {
        if matches!(self, Runner::Direct) {
            return Ok(());
        }
        let owner = format!("{PG_OS_USER}:{PG_OS_USER}");
        let inv = Invocation::new("chown").arg("-R").arg(owner).args(paths);
        run_ok(&mut Runner::Direct.command(&inv), &inv).map(drop)
    }

    /// Fail clearly if the postgres OS user cannot write to `dir` (e.g. a parent is mode 0700).
    pub(crate) fn ensure_server_can_write(&self, dir: &Path) -> Result<(), TestkitError> {
        if matches!(self, Runner::Direct) {
            return Ok(());
        }
        let inv = Invocation::new("test").arg("-w").arg(dir);
        let ok = self
            .command(&inv)
            .current_dir("/")
            .output()
            .map(|o| o.status.success());
        if ok.unwrap_or(false) {
            Ok(())
        } else {
            Err(TestkitError::DirNotAccessible(dir.to_path_buf()))
        }
    }
}

/// The binaries of one PostgreSQL installation and the way to run them.
#[derive(Debug, Clone)]
pub(crate) struct Pg {
    bin: PathBuf,
    runner: Runner,
}

impl Pg {
    pub(crate) fn detect() -> Result<Pg, TestkitError> {
        Ok(Pg {
            bin: pg_bin_dir()?,
            runner: Runner::detect()?,
        })
    }

    pub(crate) fn runner(&self) -> &Runner {
        &self.runner
    }

    pub(crate) fn tool(&self, name: &str) -> Invocation {
        Invocation::new(self.bin.join(name))
    }

    /// Run as the server's OS user from `cwd`; the caller judges the exit status.
    pub(crate) fn run(&self, inv: &Invocation, cwd: &Path) -> Result<Output, TestkitError> {
        self.runner
            .command(inv)
            .current_dir(cwd)
            .output()
            .map_err(|source| TestkitError::Io {
                context: format!("could not run {}", inv.program.display()),
                source,
            })
    }

    /// Like [`Pg::run`], but a non-zero exit is an error carrying the command's output.
    pub(crate) fn run_ok(&self, inv: &Invocation, cwd: &Path) -> Result<Output, TestkitError> {
        run_ok(self.runner.command(inv).current_dir(cwd), inv)
    }
}

fn run_ok(cmd: &mut Command, inv: &Invocation) -> Result<Output, TestkitError> {
    let out = cmd.output().map_err(|source| TestkitError::Io {
        context: format!("could not run {}", inv.program.display()),
        source,
    })?;
    if out.status.success() {
        return Ok(out);
    }
    Err(TestkitError::CommandFailed {
        command: inv.describe(),
        status: out.status.to_string(),
        output: output_text(&out),
    })
}

/// stderr then stdout of a finished command, as text.
pub(crate) fn output_text(out: &Output) -> String {
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    text.trim().to_string()
}

/// Effective uid from /proc/self/status, falling back to `id -u`.
fn effective_uid() -> Result<u32, TestkitError> {
    let from_proc = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uids = status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))?
                .to_string();
            uids.split_whitespace().nth(1)?.parse().ok()
        });
    if let Some(uid) = from_proc {
        return Ok(uid);
    }
    let inv = Invocation::new("id").arg("-u");
    let out = run_ok(&mut Runner::Direct.command(&inv), &inv)?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    text.parse().map_err(|_| TestkitError::CommandFailed {
        command: inv.describe(),
        status: "unparsable output".into(),
        output: text,
    })
}
