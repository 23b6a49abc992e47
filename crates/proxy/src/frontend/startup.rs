//! Startup parameters a client may send, and what becomes of them.
//!
//! Owns the allow-list: `user` (the tenant slug), `database` (ignored), `application_name`,
//! `client_encoding` (UTF8 only), `DateStyle`, `TimeZone`, `extra_float_digits`,
//! `IntervalStyle`, the timeouts `statement_timeout`, `lock_timeout` and
//! `idle_in_transaction_session_timeout` (the session then holds them to the tenant's caps
//! through the gate, like a SET), and `options` holding only `-c name=value` (or
//! `--name=value`) of those. Everything else, notably `replication`, `search_path` and
//! `options=-c role=…`, is refused with a clear FATAL. Protocol options
//! (`_pq_.*`) are reported back as unrecognised. It never forwards a client's raw startup
//! packet to a backend: allowed settings are re-applied as quoted `SET`s.

/// Settings a client may pass at startup, with their canonical names.
const ALLOWED_SETTINGS: &[&str] = &[
    "application_name",
    "DateStyle",
    "TimeZone",
    "extra_float_digits",
    "IntervalStyle",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
];

/// The `name=value` pairs of an `options` startup parameter, as PostgreSQL splits it:
/// whitespace separates arguments, a backslash escapes the next character; each argument is
/// `-c name=value`, `-cname=value` or `--name=value`. `None` for anything else (other
/// switches, a `-c` without a value).
fn option_pairs(options: &str) -> Option<Vec<(String, String)>> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut chars = options.chars();
    let mut in_arg = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(chars.next()?);
                in_arg = true;
            }
            c if c.is_ascii_whitespace() => {
                if in_arg {
                    args.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            c => {
                cur.push(c);
                in_arg = true;
            }
        }
    }
    if in_arg {
        args.push(cur);
    }
    let mut pairs = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let setting = if a == "-c" {
            it.next()?
        } else if let Some(rest) = a.strip_prefix("-c") {
            rest.to_string()
        } else if let Some(rest) = a.strip_prefix("--") {
            rest.to_string()
        } else {
            return None;
        };
        let (name, value) = setting.split_once('=')?;
        pairs.push((name.replace('-', "_"), value.to_string()));
    }
    Some(pairs)
}

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
    // `options=-c name=value …` contributes its pairs, checked like top-level parameters.
    let mut all: Vec<(String, String)> = Vec::new();
    for (name, value) in params {
        if name.eq_ignore_ascii_case("options") && !value.trim().is_empty() {
            let Some(pairs) = option_pairs(value) else {
                return Err(refuse(
                    "28000",
                    "startup parameter \"options\" may hold only `-c name=value` settings of the allow-list through tenantgate \
                     (application_name, DateStyle, TimeZone, extra_float_digits, IntervalStyle, client_encoding, and the timeouts); \
                     set other allowed settings with SET after connecting"
                        .into(),
                ));
            };
            for (n, v) in pairs {
                if n.eq_ignore_ascii_case("options") || n.eq_ignore_ascii_case("user") || n.eq_ignore_ascii_case("database") {
                    return Err(refuse("28000", format!("startup option -c {n} is not allowed through tenantgate")));
                }
                if !ALLOWED_SETTINGS.iter().any(|s| s.eq_ignore_ascii_case(&n)) && !n.eq_ignore_ascii_case("client_encoding") {
                    return Err(refuse(
                        "28000",
                        format!(
                            "startup option -c {n} is not allowed through tenantgate (it could change the session's role, search_path \
                             or how text is read); allowed are application_name, DateStyle, TimeZone, extra_float_digits, IntervalStyle, \
                             client_encoding (UTF8) and the timeouts"
                        ),
                    ));
                }
                all.push((n, v));
            }
        } else {
            all.push((name.clone(), value.clone()));
        }
    }
    for (name, value) in &all {
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
            "options" => {}
            "replication" => {
                return Err(refuse("28000", "replication connections are not allowed through tenantgate; connect without replication=…".into()))
            }
            _ if lower.starts_with("_pq_.") => protocol_options.push(name.clone()),
            _ => {
                return Err(refuse(
                    "28000",
                    format!(
                        "startup parameter {name:?} is not allowed through tenantgate; allowed are user, database, application_name, \
                         client_encoding (UTF8), DateStyle, TimeZone, extra_float_digits, IntervalStyle, statement_timeout, \
                         lock_timeout, idle_in_transaction_session_timeout and options holding -c settings of these"
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
    fn options_carry_only_allowed_settings() {
        let r = check(&p(&[("user", "acme"), ("options", "-c statement_timeout=5000 --lock-timeout=1s -capplication_name=my\\ app")])).unwrap();
        assert_eq!(
            r.settings,
            p(&[("statement_timeout", "5000"), ("lock_timeout", "1s"), ("application_name", "my app")])
        );
        let r = check(&p(&[("user", "acme"), ("statement_timeout", "30s")])).unwrap();
        assert_eq!(r.settings, p(&[("statement_timeout", "30s")]));
        for bad in ["-c role=postgres", "-c search_path=x", "-c statement_timeout", "-X", "-c session_authorization=x", "-c options=x", "-c user=other"] {
            assert!(check(&p(&[("user", "acme"), ("options", bad)])).is_err(), "{bad}");
        }
    }

    #[test]
    fn accepts_every_utf8_spelling() {
        for ok in ["UTF8", "utf-8", "'utf-8'", "unicode", "UTF_8"] {
            assert!(check(&p(&[("user", "acme"), ("client_encoding", ok)])).is_ok(), "{ok}");
        }
    }
}
