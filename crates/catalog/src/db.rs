//! Admin connections to PostgreSQL servers, and how their URLs are shown (redacted, or as
//! host and port). SQL text quoting is [`crate::quote`].
//!
//! Owns how the control plane opens connections. It never logs a URL with its
//! password: `redact_url` is applied to everything that names a server.

use std::str::FromStr;

use tokio_postgres::{Client, NoTls};

use crate::error::{Error, Result};

/// Connect with the given URL, but to `database` instead of the URL's own database when set.
pub async fn connect(url: &str, database: Option<&str>, what: &str) -> Result<Client> {
    let mut cfg = tokio_postgres::Config::from_str(url).map_err(|e| Error::InvalidInput {
        what: "connection URL",
        value: redact_url(url),
        reason: format!("{e}; expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"),
    })?;
    if let Some(db) = database {
        cfg.dbname(db);
    }
    cfg.application_name("tenantgate-control");
    cfg.connect_timeout(std::time::Duration::from_secs(10));
    let (client, conn) = cfg.connect(NoTls).await.map_err(|source| Error::Unreachable {
        what: what.to_string(),
        url: redact_url(&with_database(url, database)),
        source,
    })?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("admin connection closed: {e}");
        }
    });
    Ok(client)
}

/// Replace the password in a postgres:// URL with `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else { return url.to_string() };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.rfind('@') else { return url.to_string() };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &rest[at..]),
        None => url.to_string(),
    }
}

/// The URL with its path (database) replaced, for messages.
fn with_database(url: &str, database: Option<&str>) -> String {
    let Some(db) = database else { return url.to_string() };
    let Some(scheme_end) = url.find("://") else { return url.to_string() };
    let after = &url[scheme_end + 3..];
    let (hostpart, query) = match after.find('/') {
        Some(i) => {
            let tail = &after[i..];
            (&after[..i], tail.find('?').map(|q| &tail[q..]).unwrap_or(""))
        }
        None => (after, ""),
    };
    format!("{}{}/{}{}", &url[..scheme_end + 3], hostpart, db, query)
}

/// The URL as a libpq key/value connection string to `database`, for a server that
/// connects to another (a move's subscription). It holds the password: never log it or put
/// it in an error; it goes only into `CREATE SUBSCRIPTION`, whose conninfo only
/// superusers can read.
pub fn conninfo(url: &str, database: &str) -> Result<String> {
    let bad = |reason: &str| Error::InvalidInput { what: "server URL", value: redact_url(url), reason: reason.into() };
    let cfg = tokio_postgres::Config::from_str(url).map_err(|e| bad(&e.to_string()))?;
    let (host, port) = host_port(url).ok_or_else(|| bad("it names no host"))?;
    let q = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut s = format!("host={} port={port} dbname={}", q(&host), q(database));
    if let Some(u) = cfg.get_user() {
        s.push_str(&format!(" user={}", q(u)));
    }
    if let Some(p) = cfg.get_password() {
        s.push_str(&format!(" password={}", q(&String::from_utf8_lossy(p))));
    }
    Ok(s)
}

/// Host and port of a URL, for connection lines printed to users.
pub fn host_port(url: &str) -> Option<(String, u16)> {
    let cfg = tokio_postgres::Config::from_str(url).ok()?;
    let host = match cfg.get_hosts().first()? {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[cfg(unix)]
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password() {
        assert_eq!(redact_url("postgres://u:secret@h:5/db"), "postgres://u:***@h:5/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("garbage"), "garbage");
    }

    #[test]
    fn swaps_database() {
        assert_eq!(with_database("postgres://u:p@h:5/db?x=1", Some("o")), "postgres://u:p@h:5/o?x=1");
        assert_eq!(with_database("postgres://u:p@h:5", Some("o")), "postgres://u:p@h:5/o");
    }
}
