//! PostgreSQL values (text format, by type OID) to JSON, and built-in type names.
//!
//! Integers and OIDs become numbers; floats become numbers, except NaN and ±Infinity, which
//! become strings; booleans become booleans; json/jsonb are parsed; numeric stays a string (no
//! precision is lost); timestamptz becomes RFC 3339, timestamp an ISO 8601 local date-time
//! (it has no offset, so none is invented), date stays `YYYY-MM-DD`; bytea (hex text form)
//! becomes standard base64; everything else is its text form; NULL is null.
//!
//! Pure functions: no I/O, and nothing here may fail a request. A value that does not parse as
//! its type says it should (it cannot happen with PostgreSQL's own output in the session
//! settings `exchange` fixes) is returned as its text, unchanged.

use base64::Engine as _;
use serde_json::Value;

pub const BOOL: u32 = 16;
pub const BYTEA: u32 = 17;
pub const INT8: u32 = 20;
pub const INT2: u32 = 21;
pub const INT4: u32 = 23;
pub const OID: u32 = 26;
pub const JSON: u32 = 114;
pub const FLOAT4: u32 = 700;
pub const FLOAT8: u32 = 701;
pub const DATE: u32 = 1082;
pub const TIMESTAMP: u32 = 1114;
pub const TIMESTAMPTZ: u32 = 1184;
pub const NUMERIC: u32 = 1700;
pub const JSONB: u32 = 3802;

/// The name of a built-in type, or `None` for a type this table does not know (user types).
pub fn builtin_type_name(oid: u32) -> Option<&'static str> {
    Some(match oid {
        16 => "boolean",
        17 => "bytea",
        18 => "\"char\"",
        19 => "name",
        20 => "bigint",
        21 => "smallint",
        23 => "integer",
        25 => "text",
        26 => "oid",
        114 => "json",
        142 => "xml",
        650 => "cidr",
        700 => "real",
        701 => "double precision",
        705 => "unknown",
        790 => "money",
        829 => "macaddr",
        869 => "inet",
        1042 => "character",
        1043 => "character varying",
        1082 => "date",
        1083 => "time without time zone",
        1114 => "timestamp without time zone",
        1184 => "timestamp with time zone",
        1186 => "interval",
        1266 => "time with time zone",
        1560 => "bit",
        1562 => "bit varying",
        1700 => "numeric",
        2249 => "record",
        2278 => "void",
        2950 => "uuid",
        3614 => "tsvector",
        3802 => "jsonb",
        4072 => "jsonpath",
        1000 => "boolean[]",
        1001 => "bytea[]",
        1005 => "smallint[]",
        1007 => "integer[]",
        1009 => "text[]",
        1015 => "character varying[]",
        1016 => "bigint[]",
        1021 => "real[]",
        1022 => "double precision[]",
        1115 => "timestamp without time zone[]",
        1182 => "date[]",
        1185 => "timestamp with time zone[]",
        1231 => "numeric[]",
        199 => "json[]",
        2951 => "uuid[]",
        3807 => "jsonb[]",
        _ => return None,
    })
}

/// Convert one non-NULL value in PostgreSQL's text format.
pub fn to_json(oid: u32, text: &str) -> Value {
    match oid {
        INT2 | INT4 | INT8 | OID => match text.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => match text.parse::<u64>() {
                Ok(n) => Value::from(n),
                Err(_) => Value::from(text),
            },
        },
        FLOAT4 | FLOAT8 => match text.parse::<f64>() {
            Ok(f) if f.is_finite() => serde_json::Number::from_f64(f).map_or_else(|| Value::from(text), Value::Number),
            // NaN, Infinity, -Infinity have no JSON number.
            _ => Value::from(text),
        },
        BOOL => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            other => Value::from(other),
        },
        JSON | JSONB => serde_json::from_str(text).unwrap_or_else(|_| Value::from(text)),
        TIMESTAMPTZ => Value::from(timestamptz_rfc3339(text).unwrap_or_else(|| text.to_string())),
        TIMESTAMP => Value::from(timestamp_iso(text).unwrap_or_else(|| text.to_string())),
        BYTEA => match text.strip_prefix("\\x").and_then(|h| hex::decode(h).ok()) {
            Some(b) => Value::from(base64::engine::general_purpose::STANDARD.encode(b)),
            None => Value::from(text),
        },
        // numeric (precision), date (already RFC 3339 full-date) and everything else: text.
        _ => Value::from(text),
    }
}

/// `2024-03-01 12:34:56.789+01` (DateStyle ISO) → `2024-03-01T12:34:56.789+01:00`.
/// Offsets with seconds (historical local mean time) are converted to UTC. `infinity` and
/// BC dates have no RFC 3339 form and stay as PostgreSQL wrote them.
pub fn timestamptz_rfc3339(text: &str) -> Option<String> {
    if text.ends_with(" BC") {
        return None;
    }
    // The offset starts at the last '+' or '-' after the time part.
    let split = text.rfind(['+', '-']).filter(|&i| i > 10)?;
    let (local, off) = text.split_at(split);
    let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    let sign: i32 = if off.starts_with('-') { -1 } else { 1 };
    let mut parts = off[1..].split(':').map(|p| p.parse::<i32>());
    let h = parts.next()?.ok()?;
    let m = parts.next().transpose().ok()?.unwrap_or(0);
    let s = parts.next().transpose().ok()?.unwrap_or(0);
    let offset = chrono::FixedOffset::east_opt(sign * (h * 3600 + m * 60 + s))?;
    let dt = naive.and_local_timezone(offset).single()?;
    if s != 0 {
        return Some(dt.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
    }
    Some(dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// `2024-03-01 12:34:56.789` → `2024-03-01T12:34:56.789` (no offset: the value has none).
pub fn timestamp_iso(text: &str) -> Option<String> {
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    Some(naive.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_types() {
        assert_eq!(to_json(INT4, "42"), json!(42));
        assert_eq!(to_json(INT8, "-9223372036854775808"), json!(i64::MIN));
        assert_eq!(to_json(OID, "4294967295"), json!(4294967295u64));
        assert_eq!(to_json(FLOAT8, "1.5"), json!(1.5));
        assert_eq!(to_json(FLOAT8, "NaN"), json!("NaN"));
        assert_eq!(to_json(FLOAT4, "-Infinity"), json!("-Infinity"));
        assert_eq!(to_json(BOOL, "t"), json!(true));
        assert_eq!(to_json(JSONB, r#"{"a": [1, null]}"#), json!({"a": [1, null]}));
        assert_eq!(to_json(NUMERIC, "12345678901234567890.12"), json!("12345678901234567890.12"));
        assert_eq!(to_json(BYTEA, "\\x0001ff"), json!("AAH/"));
        assert_eq!(to_json(DATE, "2024-02-29"), json!("2024-02-29"));
        assert_eq!(to_json(2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    }

    #[test]
    fn timestamps() {
        assert_eq!(to_json(TIMESTAMPTZ, "2024-03-01 12:34:56.789+01"), json!("2024-03-01T12:34:56.789+01:00"));
        assert_eq!(to_json(TIMESTAMPTZ, "2024-03-01 12:34:56+00"), json!("2024-03-01T12:34:56Z"));
        assert_eq!(to_json(TIMESTAMPTZ, "2024-03-01 12:34:56-05:30"), json!("2024-03-01T12:34:56-05:30"));
        assert_eq!(to_json(TIMESTAMPTZ, "1850-01-01 00:00:00+00:53:28"), json!("1849-12-31T23:06:32Z"));
        assert_eq!(to_json(TIMESTAMPTZ, "infinity"), json!("infinity"));
        assert_eq!(to_json(TIMESTAMP, "2024-03-01 12:34:56.5"), json!("2024-03-01T12:34:56.500"));
        assert_eq!(to_json(TIMESTAMP, "2024-03-01 12:34:56"), json!("2024-03-01T12:34:56"));
    }
}
