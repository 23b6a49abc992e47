//! Wire-protocol attacks: startup packets, cancel requests and TLS negotiation that a
//! normal driver would never send, spoken byte by byte to the gateway.
//!
//! Owns the wire attacks of the catalogue, driving the project's raw client (`rawclient`)
//! over tokio sockets. It never judges results; `exec::judge` does.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::exec::{ErrInfo, Seen, Session, Target};
use crate::rawclient::{self, LoginStep};
use crate::probes::Probe;
use crate::scenarios::WireAttack;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A raw session after a successful startup.
pub struct Raw {
    stream: TcpStream,
    pub pid: i32,
    pub secret: i32,
}

fn err(code: &str, message: impl Into<String>) -> ErrInfo {
    ErrInfo { code: code.into(), message: message.into(), detail: None, hint: None }
}

fn encode_err(e: std::io::Error) -> ErrInfo {
    err("encode", format!("cannot encode the message: {e}"))
}

fn error_fields(body: &[u8]) -> ErrInfo {
    let e = rawclient::error_fields(body);
    ErrInfo { code: e.code, message: e.message, detail: e.detail, hint: e.hint }
}

async fn read_message(s: &mut TcpStream) -> Result<(u8, Vec<u8>), ErrInfo> {
    let mut head = [0u8; 5];
    tokio::time::timeout(TIMEOUT, s.read_exact(&mut head))
        .await
        .map_err(|_| err("timeout", "no answer from the gateway"))?
        .map_err(|e| err("connection", format!("connection closed: {e}")))?;
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    if !(4..=64 * 1024 * 1024).contains(&len) {
        return Err(err("protocol", format!("bad message length {len}")));
    }
    let mut body = vec![0u8; len as usize - 4];
    tokio::time::timeout(TIMEOUT, s.read_exact(&mut body))
        .await
        .map_err(|_| err("timeout", "truncated answer from the gateway"))?
        .map_err(|e| err("connection", format!("connection closed: {e}")))?;
    Ok((head[0], body))
}

impl Raw {
    /// Start up with arbitrary parameters and authenticate with SCRAM.
    pub async fn connect(target: &Target, params: &[(&str, &str)], password: &str) -> Result<Raw, ErrInfo> {
        let mut stream = tokio::time::timeout(TIMEOUT, TcpStream::connect((target.host.as_str(), target.port)))
            .await
            .map_err(|_| err("timeout", "cannot connect"))?
            .map_err(|e| err("connection", format!("cannot connect: {e}")))?;
        stream.write_all(&rawclient::startup_packet(params).map_err(encode_err)?).await.map_err(|e| err("connection", e.to_string()))?;
        let mut login = rawclient::Login::new(password);
        loop {
            let (tag, body) = read_message(&mut stream).await?;
            match login.on_message(tag, &body).map_err(|e| err("protocol", e))? {
                LoginStep::Send(m) => stream.write_all(&m).await.map_err(|e| err("connection", e.to_string()))?,
                LoginStep::Continue => {}
                LoginStep::Refused(e) => return Err(ErrInfo { code: e.code, message: e.message, detail: e.detail, hint: e.hint }),
                LoginStep::Ready => return Ok(Raw { stream, pid: login.pid, secret: login.secret }),
            }
        }
    }

    /// Run a simple query; rows are returned as `|`-joined text.
    pub async fn query(&mut self, sql: &str) -> Seen {
        let started = std::time::Instant::now();
        let mut seen = Seen::default();
        let q = match rawclient::query(sql) {
            Ok(q) => q,
            Err(e) => {
                seen.error = Some(encode_err(e));
                return seen;
            }
        };
        if let Err(e) = self.stream.write_all(&q).await {
            seen.error = Some(err("connection", e.to_string()));
            return seen;
        }
        loop {
            match read_message(&mut self.stream).await {
                Err(e) => {
                    seen.error = Some(e);
                    break;
                }
                Ok((b'E', body)) => seen.error = Some(error_fields(&body)),
                Ok((b'N', body)) => seen.notices.push(error_fields(&body).message),
                Ok((b'D', body)) => seen.rows.push(String::from_utf8_lossy(&body).into_owned()),
                Ok((b'Z', _)) => break,
                Ok(_) => {}
            }
        }
        seen.elapsed = started.elapsed();
        seen
    }
}

/// Send a CancelRequest for (pid, secret).
pub async fn cancel(target: &Target, pid: i32, secret: i32) {
    if let Ok(mut s) = TcpStream::connect((target.host.as_str(), target.port)).await {
        let _ = s.write_all(&rawclient::cancel_request(pid, secret)).await;
        let mut buf = [0u8; 1];
        let _ = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await;
    }
}

fn refused_or_not(r: Result<Raw, ErrInfo>) -> Seen {
    match r {
        Ok(_) => Seen::default(),
        Err(e) => Seen { error: Some(e), ..Default::default() },
    }
}

/// Run one wire attack from `a` against `v`. `revoked` is a key of `a` that was revoked.
pub async fn attack(target: &Target, what: WireAttack, a: &Probe, v: &Probe, revoked: &str, read_sql: &str) -> Seen {
    let base = |user: &str| vec![("user", user.to_string()), ("database", "tenantgate".to_string())];
    let conn = |params: Vec<(&'static str, String)>, pw: String| {
        let target = target.clone();
        async move {
            let p: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Raw::connect(&target, &p, &pw).await
        }
    };
    match what {
        WireAttack::OtherDatabaseName => match Session::connect(target, &a.slug, &a.rw_secret, &v.database).await {
            Ok(s) => s.simple(read_sql).await,
            Err(e) => Seen { error: Some(e), ..Default::default() },
        },
        WireAttack::OptionsRole => {
            let mut p = base(&a.slug);
            p.push(("options", format!("-c role={}", v.key)));
            refused_or_not(conn(p, a.rw_secret.clone()).await)
        }
        WireAttack::OptionsSearchPath => {
            let mut p = base(&a.slug);
            p.push(("options", format!("-c search_path={}", v.schema)));
            refused_or_not(conn(p, a.rw_secret.clone()).await)
        }
        WireAttack::Replication => {
            let mut p = base(&a.slug);
            p.push(("replication", "database".into()));
            refused_or_not(conn(p, a.rw_secret.clone()).await)
        }
        WireAttack::RevokedKey => refused_or_not(conn(base(&a.slug), revoked.to_string()).await),
        WireAttack::OtherTenantsKey => refused_or_not(conn(base(&a.slug), v.rw_secret.clone()).await),
        WireAttack::OwnKeyOtherTenant => refused_or_not(conn(base(&v.slug), a.rw_secret.clone()).await),
        WireAttack::CancelOtherSession => {
            // The victim runs a short sleep; the attacker cancels with the victim's pid and
            // wrong secrets. The victim's query must finish normally.
            let mut victim = match conn(base(&v.slug), v.rw_secret.clone()).await {
                Ok(r) => r,
                Err(e) => return Seen { error: Some(err("setup", format!("victim could not connect: {}", e.message))), ..Default::default() },
            };
            let (pid, secret) = (victim.pid, victim.secret);
            let t = target.clone();
            let canceller = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(80)).await;
                for guess in [secret ^ 1, secret.wrapping_add(1), 0, -1] {
                    cancel(&t, pid, guess).await;
                }
            });
            let seen = victim.query("SELECT pg_sleep(0.3)").await;
            let _ = canceller.await;
            seen
        }
        WireAttack::SslPiggyback => {
            let mut s = match TcpStream::connect((target.host.as_str(), target.port)).await {
                Ok(s) => s,
                Err(e) => return Seen { error: Some(err("setup", e.to_string())), ..Default::default() },
            };
            let mut bytes = rawclient::ssl_request();
            match rawclient::startup_packet(&[("user", a.slug.as_str()), ("database", "tenantgate")]) {
                Ok(p) => bytes.extend_from_slice(&p),
                Err(e) => return Seen { error: Some(encode_err(e)), ..Default::default() },
            }
            if s.write_all(&bytes).await.is_err() {
                return Seen { error: Some(err("connection", "closed at once")), ..Default::default() };
            }
            let mut answer = [0u8; 1];
            match tokio::time::timeout(TIMEOUT, s.read(&mut answer)).await {
                Ok(Ok(1)) if answer[0] == b'N' => match read_message(&mut s).await {
                    // Anything but an error/close means the piggy-backed startup was processed.
                    Ok((b'E', body)) => Seen { error: Some(error_fields(&body)), ..Default::default() },
                    Ok((tag, _)) => Seen { rows: vec![format!("the gateway processed the piggy-backed startup (answered '{}')", tag as char)], ..Default::default() },
                    Err(e) => Seen { error: Some(e), ..Default::default() },
                },
                Ok(Ok(1)) if answer[0] == b'E' => Seen { error: Some(err("08P01", "refused")), ..Default::default() },
                Ok(Ok(1)) => Seen { rows: vec![format!("unexpected SSL answer '{}'", answer[0] as char)], ..Default::default() },
                _ => Seen { error: Some(err("connection", "closed")), ..Default::default() },
            }
        }
    }
}
