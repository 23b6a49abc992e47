//! Gateway test helpers: `tenantgate serve` as a child process (killed on drop), psql and
//! pgbench through it, and the project's raw wire-protocol client (`tg_verify::rawclient`)
//! over blocking sockets, for malformed input.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;


use super::Deployment;

/// A running `tenantgate serve`.
pub struct Gateway {
    child: Child,
    pub port: u16,
    pub config: PathBuf,
    pub name: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `tenantgate serve --listen 127.0.0.1:0` with `config` and wait (up to 60 s) for the
/// first stdout line containing `wanted`: `Some((child, line))`, or `None` (the child killed)
/// if it never came. The rest of stdout is drained so `serve` never blocks on it.
pub fn spawn_serve(config: &std::path::Path, wanted: &'static str) -> Option<(Child, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenantgate"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("TENANTGATE_CONFIG", config)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn tenantgate serve");
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return None;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent && line.contains(wanted) {
                sent = tx.send(line).is_ok();
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(line) => Some((child, line)),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

impl Gateway {
    /// Start a gateway with `[gateway]` settings `toml` (listen is chosen by the OS).
    pub fn start(d: &Deployment, name: &str, toml: &str) -> Gateway {
        // The HTTP API that `serve` also starts gets a free port too (tests run in parallel).
        Gateway::launch(d, name, toml, "127.0.0.1:0")
    }

    /// Like [`Gateway::start`], with the HTTP API on a port chosen here, returned beside it.
    pub fn start_with_http(d: &Deployment, name: &str, toml: &str) -> (Gateway, u16) {
        let http = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port for the HTTP API");
        (Gateway::launch(d, name, toml, &format!("127.0.0.1:{http}")), http)
    }

    fn launch(d: &Deployment, name: &str, toml: &str, http_listen: &str) -> Gateway {
        let base = std::fs::read_to_string(&d.config).expect("config");
        let config = d.dir.path().join(format!("gateway-{name}.toml"));
        std::fs::write(&config, format!("{base}\n[http]\nlisten = \"{http_listen}\"\n\n[gateway]\n{toml}\n")).expect("write config");
        let (child, line) = spawn_serve(&config, "listening on ").unwrap_or_else(|| panic!("gateway {name} did not start"));
        let port = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("gateway {name} did not start: {line:?}"));
        Gateway { child, port, config, name: name.into() }
    }

    pub fn conninfo(&self, user: &str) -> String {
        format!("host=127.0.0.1 port={} user={user} dbname=anything sslmode=disable", self.port)
    }

    /// psql -f - through the gateway as tenant `slug` with API key `key`.
    pub fn psql(&self, slug: &str, key: &str, sql: &str) -> (bool, String) {
        super::psql(&self.conninfo(slug), key, sql)
    }

    /// psql -c (one simple Query message holding everything).
    pub fn psql_c(&self, slug: &str, key: &str, sql: &str) -> (bool, String) {
        psql_extra(&self.conninfo(slug), key, &["-c", sql])
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// pgbench through gateway `g` as tenant `slug`: the example app's transaction (a read, then
/// an order written and summed in BEGIN … END, tagged with `table_no`) in each query mode
/// (simple, extended, prepared), `clients` clients on `threads` threads, `txns` each. Asserts
/// every run succeeds with no failed transaction, and that every transaction committed once.
pub fn pgbench_example_app(g: &Gateway, slug: &str, key: &str, table_no: u32, clients: u32, threads: u32, txns: u32) {
    let dir = tempfile::tempdir().expect("tmp");
    let script = dir.path().join("restaurant.sql");
    std::fs::write(
        &script,
        format!(
            "\\set price random(1, 20)\n\
             SELECT count(*) FROM menu_items WHERE price > :price;\n\
             BEGIN;\n\
             INSERT INTO orders (branch_id, table_no, total) SELECT branch_id, {table_no}, :price FROM branches ORDER BY name LIMIT 1;\n\
             SELECT sum(total) FROM orders WHERE table_no = {table_no};\n\
             END;\n"
        ),
    )
    .expect("script");
    let count_sql = format!("SELECT count(*) FROM orders WHERE table_no = {table_no};");
    let count = || g.psql(slug, key, &count_sql).1.trim().parse::<i64>().unwrap_or(-1);
    let before = count();
    let per_run = clients * txns;
    for mode in ["simple", "extended", "prepared"] {
        let out = Command::new("pgbench")
            .args(["-n", "-f"])
            .arg(&script)
            .args(["-c", &clients.to_string(), "-j", &threads.to_string(), "-t", &txns.to_string(), "-M", mode])
            .args(["-h", "127.0.0.1", "-p", &g.port.to_string(), "-U", slug, "app"])
            .env("PGPASSWORD", key)
            .output()
            .expect("pgbench");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "pgbench -M {mode}: {text}");
        assert!(text.contains(&format!("number of transactions actually processed: {per_run}/{per_run}")), "pgbench -M {mode}: {text}");
        assert!(!text.contains("number of failed transactions: ") || text.contains("number of failed transactions: 0"), "{text}");
    }
    assert_eq!(count() - before, i64::from(per_run) * 3, "every pgbench transaction committed once");
}

/// psql with extra arguments (no stdin script): the tests' one psql helper, `super::psql_run`.
pub fn psql_extra(conn: &str, password: &str, args: &[&str]) -> (bool, String) {
    super::psql_run(conn, password, args, None)
}

/// Create an API key; returns (id, secret).
pub fn create_key(d: &Deployment, slug: &str, read_only: bool) -> (String, String) {
    let mut args = vec!["key", "create", slug, "--json"];
    if read_only {
        args.push("--read-only");
    }
    let v = d.json(&args);
    (v["id"].as_str().expect("id").to_string(), v["secret"].as_str().expect("secret").to_string())
}

// ------------------------------------------------------------------ raw wire client

pub fn connect_raw(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to gateway");
    s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    s
}

/// Read everything until EOF (or timeout); returns the bytes.
pub fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

/// Read one backend message: (tag, body).
pub fn read_msg(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).ok()?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len.checked_sub(4)?];
    s.read_exact(&mut body).ok()?;
    Some((head[0], body))
}

// The raw client is the project's one (tg_verify::rawclient), driven here over blocking
// sockets.
use tg_verify::rawclient::{self, LoginStep};

/// The (severity, code, message) of ErrorResponses in a byte stream of backend messages.
pub fn errors_in(bytes: &[u8]) -> Vec<(String, String, String)> {
    rawclient::messages(bytes).into_iter().filter(|(tag, _)| *tag == b'E').map(|(_, body)| error_fields(body)).collect()
}

pub fn error_fields(body: &[u8]) -> (String, String, String) {
    let e = rawclient::error_fields(body);
    (e.severity, e.code, e.message)
}

pub fn startup_packet(version: u32, params: &[(&str, &str)]) -> Vec<u8> {
    rawclient::startup_packet_version(version, params)
}

/// Log in over a raw socket with SCRAM; returns the stream after ReadyForQuery and the
/// (pid, secret) the gateway gave.
pub fn raw_login(port: u16, user: &str, key: &str) -> (TcpStream, u32, u32) {
    try_raw_login(port, user, key).unwrap_or_else(|e| panic!("login failed: {e:?}"))
}

/// Like [`raw_login`], but a refused login returns the ErrorResponse's (severity, code, message).
pub fn try_raw_login(port: u16, user: &str, key: &str) -> Result<(TcpStream, u32, u32), (String, String, String)> {
    try_raw_login_with(port, &[("user", user), ("database", "x")], key)
}

/// Like [`try_raw_login`], with these startup parameters (`user` among them).
pub fn try_raw_login_with(port: u16, params: &[(&str, &str)], key: &str) -> Result<(TcpStream, u32, u32), (String, String, String)> {
    let mut s = connect_raw(port);
    s.write_all(&startup_packet(196608, params)).expect("startup");
    let mut login = rawclient::Login::new(key);
    loop {
        let (tag, body) = read_msg(&mut s).expect("message during login");
        match login.on_message(tag, &body) {
            Ok(LoginStep::Send(m)) => s.write_all(&m).expect("write"),
            Ok(LoginStep::Continue) => {}
            Ok(LoginStep::Ready) => return Ok((s, login.pid as u32, login.secret as u32)),
            Ok(LoginStep::Refused(e)) => return Err((e.severity, e.code, e.message)),
            Err(e) => panic!("login protocol error: {e}"),
        }
    }
}

/// Send a simple query on a raw session and collect messages until ReadyForQuery.
pub fn raw_query(s: &mut TcpStream, sql: &str) -> Vec<(u8, Vec<u8>)> {
    s.write_all(&rawclient::query(sql).expect("query")).expect("write");
    let mut msgs = Vec::new();
    while let Some(m) = read_msg(s) {
        let done = m.0 == b'Z';
        msgs.push(m);
        if done {
            break;
        }
    }
    msgs
}

/// Send a CancelRequest for (pid, secret).
pub fn send_cancel(port: u16, pid: u32, secret: u32) {
    let mut s = connect_raw(port);
    s.write_all(&rawclient::cancel_request(pid as i32, secret as i32)).expect("cancel");
    let _ = read_all(&mut s);
}
