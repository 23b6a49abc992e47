//! Startup parameters a client may send, and what becomes of them.
//!
//! Owns the allow-list: `user` (the tenant slug), `database` (ignored), `application_name`,
//! `client_encoding` (UTF8 only), `DateStyle`, `TimeZone`, `extra_float_digits`,
//! `IntervalStyle`, and `options` only when empty. Everything else, notably `replication`,
//! `search_path` and `options=-c role=…`, is refused with a clear FATAL. Protocol options
//! (`_pq_.*`) are reported back as unrecognised. It never forwards a client's raw startup
//! packet to a backend: allowed settings are re-applied as quoted `SET`s.

/// Settings a client may pass at startup, with their canonical names.
const ALLOWED_SETTINGS: &[&str] = &["application_name", "DateStyle", "TimeZone", "extra_float_digits", "IntervalStyle"];

/// A FATAL refusal of the startup packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

/// What the client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupRequest {
    pub user: String,
    /// Allowed settings to apply on the backend (canonical name, value).
    pub settings: Vec<(String, String)>,
    /// `_pq_.*` options, which are not supported.
    pub protocol_options: Vec<String>,
}

fn refuse(code: &'static str, message: String) -> Refusal {
    Refusal { code, message }
}

pub fn check(params: &[(String, String)]) -> Result<StartupRequest, Refusal> {
    let mut user = None;
    let mut settings = Vec::new();
    let mut protocol_options = Vec::new();
    for (name, value) in params {
        let lower = name.to_ascii_lowercase();
        if let Some(canon) = ALLOWED_SETTINGS.iter().find(|s| s.eq_ignore_ascii_case(name)) {
            if value.len() > 256 {
                return Err(refuse("22023", format!("startup parameter {canon:?} is too long (at most 256 bytes)")));
            }
            settings.push(((*canon).to_string(), value.clone()));
            continue;
        }
        match lower.as_str() {
            "user" => user = Some(value.clone()),
            "database" => {}
            "client_encoding" => {
                // Every spelling PostgreSQL accepts for UTF8 (asyncpg sends 'utf-8' with the
                // quotes), and nothing else: the gate reads SQL as UTF-8 (tg_gate's pinned
                // settings).
                if !tg_gate::is_utf8_name(value) {
                    return Err(refuse(
                        "22023",
                        format!("client_encoding {value:?} is not supported: tenantgate speaks UTF8 only; set PGCLIENTENCODING=UTF8"),
                    ));
                }
            }
            "options" if value.trim().is_empty() => {}
            "options" => {
                return Err(refuse(
                    "28000",
                    "startup parameter \"options\" is not allowed through tenantgate (it could change the session's role or search_path); \
                     set allowed settings with SET after connecting"
                        .into(),
                ))
            }
            "replication" => {
                return Err(refuse("28000", "replication connections are not allowed through tenantgate; connect without replication=…".into()))
            }
            _ if lower.starts_with("_pq_.") => protocol_options.push(name.clone()),
            _ => {
                return Err(refuse(
                    "28000",
                    format!(
                        "startup parameter {name:?} is not allowed through tenantgate; allowed are user, database, application_name, \
                         client_encoding (UTF8), DateStyle, TimeZone, extra_float_digits and IntervalStyle"
                    ),
                ))
            }
        }
    }
    let user = user.filter(|u| !u.is_empty()).ok_or_else(|| {
        refuse("28000", "no user name given: connect with user = your tenant's slug and password = an API key".into())
    })?;
    Ok(StartupRequest { user, settings, protocol_options })
}

/// The `SET` statements that apply `settings` on a backend.
pub fn set_statements(settings: &[(String, String)]) -> String {
    settings
        .iter()
        .map(|(n, v)| format!("SET \"{n}\" = '{}';", v.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn allows_the_usual_driver_parameters() {
        let r = check(&p(&[
            ("user", "acme"),
            ("database", "whatever"),
            ("application_name", "psql"),
            ("client_encoding", "UTF8"),
            ("DateStyle", "ISO, MDY"),
            ("extra_float_digits", "2"),
            ("TimeZone", "UTC"),
            ("options", ""),
        ]))
        .unwrap();
        assert_eq!(r.user, "acme");
        assert_eq!(r.settings.len(), 4);
        assert_eq!(
            set_statements(&p(&[("application_name", "it's")])),
            "SET \"application_name\" = 'it''s';"
        );
    }

    #[test]
    fn refuses_dangerous_parameters() {
        for bad in [
            ("options", "-c role=postgres"),
            ("options", "-c search_path=other"),
            ("replication", "database"),
            ("search_path", "x"),
            ("role", "x"),
            ("session_authorization", "x"),
            ("client_encoding", "LATIN1"),
            ("client_encoding", "SJIS"),
            ("client_encoding", "'sjis'"),
            ("standard_conforming_strings", "off"),
            ("backslash_quote", "on"),
            ("options", "-c standard_conforming_strings=off"),
            ("options", "-c client_encoding=SJIS"),
        ] {
            let r = check(&p(&[("user", "acme"), bad]));
            assert!(r.is_err(), "{bad:?}");
        }
        assert!(check(&p(&[("database", "x")])).is_err());
    }

    #[test]
    fn accepts_every_utf8_spelling() {
        for ok in ["UTF8", "utf-8", "'utf-8'", "unicode", "UTF_8"] {
            assert!(check(&p(&[("user", "acme"), ("client_encoding", ok)])).is_ok(), "{ok}");
        }
    }
}
