//! SET / RESET handling: the allow-list, identity changes, and timeouts against the tenant's caps.
//!
//! Classification ([`classify`]) depends only on the statement and the gate's config, so it is
//! cached; the cap check ([`check_cap`]) depends on the tenant's [`Limits`] and runs on every
//! check.
//!
//! Timeout values follow PostgreSQL's rules for integer settings in milliseconds: a plain number
//! is milliseconds, a string may carry a unit (`us`, `ms`, `s`, `min`, `h`, `d`, case-sensitive)
//! and a fraction, and the result is rounded to the nearest millisecond (half to even). `0`
//! disables the timeout. Anything this parser does not understand is refused when a cap
//! applies (PostgreSQL accepts a few spellings, such as hexadecimal, that are not worth the risk).

use pg_query::protobuf::{a_const, VariableSetKind, VariableSetStmt};
use pg_query::NodeEnum;

use crate::{Denial, Limits};

/// A timeout setting that has a per-tenant cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeout {
    Statement,
    Lock,
    IdleInTransaction,
}

impl Timeout {
    fn from_name(name: &str) -> Option<Timeout> {
        match name {
            "statement_timeout" => Some(Timeout::Statement),
            "lock_timeout" => Some(Timeout::Lock),
            "idle_in_transaction_session_timeout" => Some(Timeout::IdleInTransaction),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Timeout::Statement => "statement_timeout",
            Timeout::Lock => "lock_timeout",
            Timeout::IdleInTransaction => "idle_in_transaction_session_timeout",
        }
    }

    /// The tenant's cap for this setting. A lock wait is part of a statement, so `lock_timeout`
    /// shares the statement cap.
    fn cap(self, limits: &Limits) -> Option<u64> {
        match self {
            Timeout::Statement | Timeout::Lock => limits.max_statement_timeout_ms,
            Timeout::IdleInTransaction => limits.max_idle_in_transaction_ms,
        }
    }
}

/// A `SET` of a capped timeout to an explicit value: milliseconds, or `None` if unparsable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeoutSet {
    pub setting: Timeout,
    pub millis: Option<u64>,
}

/// The default SET allow-list (lower case; a trailing `*` matches a prefix).
pub(crate) const DEFAULT_ALLOWED: &[&str] = &[
    "timezone",
    "application_name",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "datestyle",
    "intervalstyle",
    "extra_float_digits",
    "client_encoding",
    "search_path",
    "bytea_output",
    "standard_conforming_strings",
    "client_min_messages",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "default_transaction_deferrable",
    "transaction_isolation",
    "transaction_read_only",
    "transaction_deferrable",
    "row_security",
    "enable_*",
    // Planner switches of the session's own queries (asyncpg turns JIT off around its
    // type introspection).
    "jit",
];

/// Settings that change how PostgreSQL lexes or decodes the text of a statement, with the
/// only value the gate reads SQL with. The gate parses as PostgreSQL does with these values
/// (libpg_query's defaults, UTF-8 text); a session at any other value would read the same
/// bytes differently, so a SET to another value is refused whatever the allow-list says.
/// - `standard_conforming_strings = off`: a backslash escapes a quote in `'…'`;
/// - `backslash_quote`: whether `\'` may stand for a quote;
/// - `client_encoding`: in SJIS, BIG5, GBK, GB18030 and UHC the byte 0x5c (`\`) can be the
///   second byte of a character, so the server converts away a backslash the gate saw, or
///   the other way round.
pub(crate) const PINNED: &[(&str, &str, fn(&str) -> bool)] = &[
    ("standard_conforming_strings", "on", is_true),
    ("backslash_quote", "safe_encoding", |v| v.trim().eq_ignore_ascii_case("safe_encoding")),
    ("client_encoding", "UTF8", is_utf8_name),
];

/// Whether `name` is a spelling PostgreSQL accepts for the UTF8 encoding: it compares
/// encoding names ignoring case and every character that is not a letter or digit
/// (`clean_encoding_name`), so `UTF8`, `utf-8`, `'utf-8'` (asyncpg sends the quotes) and
/// `Unicode` all mean UTF8.
pub fn is_utf8_name(name: &str) -> bool {
    let clean: std::string::String = name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect();
    clean == "utf8" || clean == "unicode"
}

/// Whether `value` is a spelling of boolean true PostgreSQL accepts (`parse_bool`).
fn is_true(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    matches!(v.as_str(), "t" | "tr" | "tru" | "true" | "y" | "ye" | "yes" | "on" | "1")
}

/// Whether `value` is the pinned value of `name` (lower case); true for a setting not pinned.
#[cfg(test)]
pub(crate) fn is_pinned_value(name: &str, value: &str) -> bool {
    PINNED.iter().find(|(n, _, _)| *n == name).is_none_or(|(_, _, ok)| ok(value))
}

/// Refuses a SET of a pinned setting (see [`PINNED`]) to anything but its pinned value.
/// `values` are the SET's arguments as text (`None` for one that is not a constant).
pub(crate) fn check_pinned(name: &str, values: &[Option<&str>]) -> Result<(), Denial> {
    let Some((_, pinned, ok)) = PINNED.iter().find(|(n, _, _)| *n == name) else {
        return Ok(());
    };
    match values {
        [Some(v)] if ok(v) => Ok(()),
        _ => Err(Denial::policy(
            "pinned-setting",
            format_args!("SET {name} to anything but {pinned}"),
            "it changes how the server reads the text of a statement, and the gate reads it with this value only",
        )),
    }
}

const WHY_IDENTITY: &str = "a session's identity is fixed by its credentials";

/// Classifies a `SET`/`RESET`/`SET TRANSACTION` statement: `Ok(Some(_))` when it sets a capped
/// timeout (to be checked against the tenant's limits), `Ok(None)` when it is allowed as is.
pub(crate) fn classify(
    stmt: &VariableSetStmt,
    allowed: &[String],
) -> Result<Option<TimeoutSet>, Denial> {
    let kind = VariableSetKind::try_from(stmt.kind).unwrap_or(VariableSetKind::Undefined);
    let name = stmt.name.to_ascii_lowercase();
    let verb = if matches!(
        kind,
        VariableSetKind::VarReset | VariableSetKind::VarResetAll
    ) {
        "RESET"
    } else {
        "SET"
    };
    match kind {
        VariableSetKind::VarResetAll => return Ok(None),
        // SET TRANSACTION … and SET SESSION CHARACTERISTICS AS TRANSACTION … are transaction
        // control; SET TRANSACTION SNAPSHOT imports another session's snapshot.
        VariableSetKind::VarSetMulti => {
            return if name == "transaction" || name == "session characteristics" {
                Ok(None)
            } else {
                Err(not_allowed(verb, &name))
            };
        }
        _ => {}
    }
    match name.as_str() {
        "role" => {
            return Err(Denial::policy(
                "set-role",
                format_args!("{verb} ROLE"),
                WHY_IDENTITY,
            ))
        }
        "session_authorization" => {
            return Err(Denial::policy(
                "session-authorization",
                format_args!("{verb} SESSION AUTHORIZATION"),
                WHY_IDENTITY,
            ))
        }
        _ => {}
    }
    if kind == VariableSetKind::VarSetValue {
        let values: Vec<Option<std::string::String>> = stmt.args.iter().map(constant_text).collect();
        let values: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
        check_pinned(&name, &values)?;
    }
    if !is_allowed(&name, allowed) {
        return Err(not_allowed(verb, &name));
    }
    if kind != VariableSetKind::VarSetValue {
        // RESET, SET … TO DEFAULT and SET … FROM CURRENT never loosen a setting beyond
        // what the operator configured.
        return Ok(None);
    }
    if name == "row_security" && !stmt.args.iter().all(is_on) {
        return Err(Denial::policy(
            "row-security",
            "SET row_security to anything but on",
            "row-level security is how the database separates tenants",
        ));
    }
    Ok(Timeout::from_name(&name).map(|setting| TimeoutSet {
        setting,
        millis: millis(&stmt.args),
    }))
}

/// A statement that is exactly `SELECT set_config(name, value, is_local)` (drivers and ORMs
/// send this: Django sets `TimeZone` so), possibly beside reads of `current_setting(name)`
/// (asyncpg: `SELECT current_setting('jit') AS cur, set_config('jit', 'off', false) AS new`),
/// as the SET it amounts to, or `None` for any other statement. The name must be a string
/// constant and `is_local` a boolean constant; the value a constant or a parameter (`$1`,
/// whose value the gate does not know). Anywhere else `set_config` stays refused.
pub(crate) fn sole_set_config(s: &pg_query::protobuf::SelectStmt) -> Option<VariableSetStmt> {
    let plain = s.from_clause.is_empty()
        && s.where_clause.is_none()
        && s.group_clause.is_empty()
        && s.having_clause.is_none()
        && s.with_clause.is_none()
        && s.values_lists.is_empty()
        && s.sort_clause.is_empty()
        && s.limit_count.is_none()
        && s.limit_offset.is_none()
        && s.locking_clause.is_empty()
        && s.window_clause.is_empty()
        && s.distinct_clause.is_empty()
        && s.larg.is_none()
        && s.rarg.is_none()
        && s.into_clause.is_none();
    if !plain {
        return None;
    }
    let mut set = None;
    for target in &s.target_list {
        let Some(NodeEnum::ResTarget(rt)) = target.node.as_ref() else { return None };
        let Some(NodeEnum::FuncCall(call)) = rt.val.as_ref().and_then(|v| v.node.as_ref()) else { return None };
        let names: Vec<&str> = call
            .funcname
            .iter()
            .filter_map(|n| match n.node.as_ref() {
                Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                _ => None,
            })
            .collect();
        let plain_call = !(call.agg_star || call.agg_distinct || call.func_variadic || call.over.is_some() || call.agg_filter.is_some() || !call.agg_order.is_empty());
        if !plain_call || names.len() != call.funcname.len() {
            return None;
        }
        match names.as_slice() {
            ["set_config"] | ["pg_catalog", "set_config"] if set.is_none() => set = Some(set_config_call(&call.args)?),
            // Reading a setting beside it changes nothing.
            ["current_setting"] | ["pg_catalog", "current_setting"] if call.args.iter().all(|a| constant(uncast(a)).is_some()) => {}
            _ => return None,
        }
    }
    set
}

/// The SET that `set_config(name, value, is_local)` amounts to, if its arguments have the
/// forms [`sole_set_config`] accepts.
fn set_config_call(args: &[pg_query::protobuf::Node]) -> Option<VariableSetStmt> {
    let [name, value, local] = args else { return None };
    let name = match constant(uncast(name))? {
        a_const::Val::Sval(s) => s.sval.to_ascii_lowercase(),
        _ => return None,
    };
    let is_local = match constant(uncast(local))? {
        a_const::Val::Boolval(b) => b.boolval,
        a_const::Val::Sval(s) => is_true(&s.sval),
        _ => return None,
    };
    let value = uncast(value);
    let value = match value.node.as_ref() {
        Some(NodeEnum::AConst(_)) | Some(NodeEnum::ParamRef(_)) => value.clone(),
        _ => return None,
    };
    Some(VariableSetStmt {
        kind: VariableSetKind::VarSetValue as i32,
        name,
        args: vec![value],
        is_local,
        ..Default::default()
    })
}

/// The argument of a cast to text (`'UTC'::text`), or the node itself.
fn uncast(node: &pg_query::protobuf::Node) -> &pg_query::protobuf::Node {
    match node.node.as_ref() {
        Some(NodeEnum::TypeCast(tc)) => {
            let text = tc.type_name.as_ref().is_some_and(|t| {
                t.array_bounds.is_empty()
                    && t.names.last().and_then(|n| n.node.as_ref()).is_some_and(|n| matches!(n, NodeEnum::String(s) if s.sval == "text"))
            });
            match (text, tc.arg.as_deref()) {
                (true, Some(arg)) => arg,
                _ => node,
            }
        }
        _ => node,
    }
}

/// Checks a timeout SET against the tenant's cap.
pub(crate) fn check_cap(set: &TimeoutSet, limits: &Limits) -> Result<(), Denial> {
    let Some(cap) = set.setting.cap(limits) else {
        return Ok(());
    };
    let name = set.setting.name();
    let why = format!("this tenant's cap is {cap} ms");
    match set.millis {
        Some(0) => Err(Denial::policy(
            "timeout-cap",
            format_args!("disabling {name} (0)"),
            &why,
        )),
        Some(ms) if ms > cap => Err(Denial::policy(
            "timeout-cap",
            format_args!("{name} above the cap"),
            &why,
        )),
        Some(_) => Ok(()),
        None => Err(Denial::policy(
            "timeout-cap",
            format_args!("a {name} value the gate cannot read"),
            &format!("{why}; give a number of milliseconds or a value like '30s'"),
        )),
    }
}

fn not_allowed(verb: &str, name: &str) -> Denial {
    Denial::policy(
        "setting-not-allowed",
        format_args!("{verb} {name}"),
        "only allow-listed settings may be changed by a tenant",
    )
}

fn is_allowed(name: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|entry| match entry.strip_suffix('*') {
        Some(prefix) => {
            name.len() >= prefix.len() && name[..prefix.len()].eq_ignore_ascii_case(prefix)
        }
        None => entry.eq_ignore_ascii_case(name),
    })
}

fn constant(node: &pg_query::protobuf::Node) -> Option<&a_const::Val> {
    match node.node.as_ref() {
        Some(NodeEnum::AConst(c)) => c.val.as_ref(),
        _ => None,
    }
}

/// A SET argument as PostgreSQL would see its text: a string, a number or a boolean.
fn constant_text(node: &pg_query::protobuf::Node) -> Option<std::string::String> {
    Some(match constant(node)? {
        a_const::Val::Sval(s) => s.sval.clone(),
        a_const::Val::Ival(i) => i.ival.to_string(),
        a_const::Val::Fval(f) => f.fval.clone(),
        a_const::Val::Boolval(b) => (if b.boolval { "on" } else { "off" }).to_owned(),
        a_const::Val::Bsval(_) => return None,
    })
}

/// Whether a `row_security` value means on (PostgreSQL's boolean spellings, see [`is_true`]).
fn is_on(node: &pg_query::protobuf::Node) -> bool {
    constant_text(node).is_some_and(|v| is_true(&v))
}

/// The milliseconds a timeout SET asks for, if the value is a single readable constant.
fn millis(args: &[pg_query::protobuf::Node]) -> Option<u64> {
    let [arg] = args else { return None };
    match constant(arg)? {
        a_const::Val::Ival(i) => u64::try_from(i.ival).ok(),
        a_const::Val::Fval(f) => parse_millis(&f.fval),
        a_const::Val::Sval(s) => parse_millis(&s.sval),
        _ => None,
    }
}

/// Parses a time value in PostgreSQL's syntax into milliseconds (see the module doc).
pub(crate) fn parse_millis(value: &str) -> Option<u64> {
    const UNITS: &[(&str, f64)] = &[
        ("us", 0.001),
        ("ms", 1.0),
        ("min", 60_000.0),
        ("s", 1_000.0),
        ("h", 3_600_000.0),
        ("d", 86_400_000.0),
    ];
    let value = value.trim();
    let (number, factor) = UNITS
        .iter()
        .find_map(|(unit, factor)| value.strip_suffix(unit).map(|n| (n.trim_end(), *factor)))
        .unwrap_or((value, 1.0));
    if number.is_empty()
        || !number
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return None;
    }
    let ms = (number.parse::<f64>().ok()? * factor).round_ties_even();
    // `as` saturates: anything past u64::MAX is over every cap anyway.
    (ms.is_finite() && ms >= 0.0).then_some(ms as u64)
}

#[cfg(test)]
mod tests {
    use super::{is_pinned_value, is_utf8_name, parse_millis};

    #[test]
    fn utf8_has_every_spelling_postgres_accepts_and_nothing_else() {
        for ok in ["UTF8", "utf8", "UTF-8", "utf-8", "'utf-8'", "Unicode", "UTF_8", "\"utf8\""] {
            assert!(is_utf8_name(ok), "{ok}");
        }
        for bad in ["SJIS", "LATIN1", "SQL_ASCII", "utf16", "", "utf", "GB18030", "BIG5"] {
            assert!(!is_utf8_name(bad), "{bad}");
        }
    }

    #[test]
    fn pinned_values() {
        for ok in ["on", "ON", "true", "t", "yes", "1"] {
            assert!(is_pinned_value("standard_conforming_strings", ok), "{ok}");
        }
        for bad in ["off", "false", "0", "no", "o", ""] {
            assert!(!is_pinned_value("standard_conforming_strings", bad), "{bad}");
        }
        assert!(is_pinned_value("backslash_quote", "safe_encoding"));
        assert!(!is_pinned_value("backslash_quote", "on"));
    }

    #[test]
    fn parses_postgres_time_units() {
        assert_eq!(parse_millis("5s"), Some(5_000));
        assert_eq!(parse_millis("500ms"), Some(500));
        assert_eq!(parse_millis("1min"), Some(60_000));
        assert_eq!(parse_millis("2h"), Some(7_200_000));
        assert_eq!(parse_millis("1d"), Some(86_400_000));
        assert_eq!(parse_millis(" 250 "), Some(250));
        assert_eq!(parse_millis("1.5s"), Some(1_500));
        assert_eq!(parse_millis("1 s"), Some(1_000));
        assert_eq!(parse_millis("1e3"), Some(1_000));
        assert_eq!(parse_millis("400us"), Some(0), "rounds to 0 = unlimited");
        assert_eq!(parse_millis("0"), Some(0));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            "",
            "s",
            "-5s",
            "5S",
            "0x10",
            "inf",
            "nan",
            "5 seconds",
            "1h30min",
            "abc",
        ] {
            assert_eq!(parse_millis(bad), None, "{bad:?}");
        }
    }
}
