//! SQL text → PostgreSQL's raw parse tree: the gate's one call into libpg_query's parser.
//!
//! `pg_query::parse` has libpg_query parse the SQL and serialize the tree as protobuf (C, upb),
//! decodes that with prost into `pg_query::protobuf::ParseResult`, and then walks the whole tree
//! again in `ParseResult::new` to collect table and function names the gate never uses. This
//! module gets the same tree for about half the cost of a new statement:
//! - it asks libpg_query for JSON (`pg_query_parse`) instead of protobuf: upb's encoder scans
//!   all ~270 fields of every `Node` to find the one that is set, which was 60% of a new
//!   statement's check (see `transcode`);
//! - `transcode` turns the JSON into protobuf bytes, and prost decodes them into the crate's
//!   own types, so everything downstream is unchanged;
//! - it skips `ParseResult::new`.
//!
//! Tests check that the result equals `pg_query::parse`'s tree, and its errors equal
//! `pg_query::parse`'s errors, for every statement of PostgreSQL's own SQL scripts and a list
//! of literal kinds and DML constructs.
//!
//! Owns the FFI boundary and nothing else. It must never keep a pointer into libpg_query's
//! result after freeing it, and must free every result exactly once.

use std::ffi::{c_char, c_int, CStr, CString};

use pg_query::protobuf::ParseResult;
use prost::Message;

/// libpg_query's `PgQueryError` (pg_query.h).
#[repr(C)]
struct PgQueryError {
    message: *mut c_char,
    funcname: *mut c_char,
    filename: *mut c_char,
    lineno: c_int,
    cursorpos: c_int,
    context: *mut c_char,
}

/// libpg_query's `PgQueryParseResult` (pg_query.h): the tree as a NUL-terminated JSON string.
#[repr(C)]
struct PgQueryParseResult {
    parse_tree: *mut c_char,
    stderr_buffer: *mut c_char,
    error: *mut PgQueryError,
}

extern "C" {
    fn pg_query_parse(input: *const c_char) -> PgQueryParseResult;
    fn pg_query_free_parse_result(result: PgQueryParseResult);
}

/// Parses `sql` into the tree `pg_query::parse` would return in its `protobuf` field, with
/// the same errors for SQL PostgreSQL refuses (`pg_query::Error::Parse` with its message,
/// `Conversion` for a NUL byte). `InvalidJson` or `Decode` would mean libpg_query's output did
/// not fit `proto/pg_query.proto`; the gate refuses such a statement.
pub(crate) fn parse(sql: &str) -> Result<ParseResult, pg_query::Error> {
    with_json(sql, |json| match json {
        None => Ok(ParseResult::default()),
        Some(json) => match crate::transcode::json_to_protobuf(json) {
            Ok(bytes) => ParseResult::decode(bytes.as_slice()).map_err(pg_query::Error::Decode),
            Err(err) => Err(pg_query::Error::InvalidJson(err.to_string())),
        },
    })?
}

/// Runs libpg_query's parser on `sql` and hands `read` its JSON (`None` when libpg_query
/// returned no tree). PostgreSQL's refusal becomes `pg_query::Error::Parse`.
fn with_json<T>(sql: &str, read: impl FnOnce(Option<&[u8]>) -> T) -> Result<T, pg_query::Error> {
    let input = CString::new(sql)?;
    // SAFETY: `input` is a valid NUL-terminated string that outlives the call; libpg_query
    // does not keep it. The JSON is only lent to `read`, and the result is freed below, once,
    // after `read` returned (the error message is copied into a String first).
    unsafe {
        let result = pg_query_parse(input.as_ptr());
        let out = if !result.error.is_null() {
            Err(pg_query::Error::Parse(CStr::from_ptr((*result.error).message).to_string_lossy().into_owned()))
        } else if result.parse_tree.is_null() {
            Ok(read(None))
        } else {
            Ok(read(Some(CStr::from_ptr(result.parse_tree).to_bytes())))
        };
        pg_query_free_parse_result(result);
        out
    }
}

/// libpg_query's JSON for `sql` (tests of `transcode`); `None` if it does not parse.
#[cfg(test)]
pub(crate) fn json(sql: &str) -> Option<Vec<u8>> {
    with_json(sql, |json| json.map(<[u8]>::to_vec)).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn same_tree_and_errors_as_pg_query() {
        for sql in [
            "SELECT o.id, c.name FROM orders o JOIN customers c USING (tenant_id) WHERE o.id = $1",
            "INSERT INTO t (a) VALUES ('x''y', 1.5e3) RETURNING *; SET statement_timeout = 0",
            "WITH x AS (SELECT 1) SELECT * FROM x, LATERAL (SELECT pg_read_file('a')) y",
            "",
            "-- only a comment",
            // Strings that JSON must escape, and every kind of literal.
            r#"SELECT E'q"b\\s/<>\n\t\r\b\f\x01', $x${"a": "\\"}$x$, U&'\0041\00e9', 'é😀', "a""b", -1, -2147483648, 9223372036854775807, 1e400, B'101', X'1F', TRUE, NULL"#,
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.x > 0 THEN UPDATE SET x = s.x WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.x) RETURNING merge_action(), t.*",
            "SELECT a, sum(b) OVER (PARTITION BY c ORDER BY d ROWS BETWEEN 1 PRECEDING AND CURRENT ROW EXCLUDE TIES) FROM t GROUP BY GROUPING SETS ((a), ROLLUP (b, c), CUBE (d)) HAVING count(*) FILTER (WHERE e) > 1 ORDER BY 1 DESC NULLS LAST FETCH FIRST 5 ROWS WITH TIES",
            "SELECT * FROM JSON_TABLE(jsonb '[1]', '$[*]' COLUMNS (id FOR ORDINALITY, v int PATH '$' DEFAULT 0 ON EMPTY)) jt, XMLTABLE('/r' PASSING xml '<r/>' COLUMNS a text PATH 'a') xt",
            "SELECT JSON_OBJECT('a': 1 RETURNING jsonb), JSON_ARRAYAGG(x ORDER BY x), x IS JSON OBJECT, JSON_VALUE(j, '$.a' RETURNING int ERROR ON ERROR) FROM t",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SEARCH DEPTH FIRST BY n SET o CYCLE n SET c USING p SELECT * FROM r TABLESAMPLE BERNOULLI (10) REPEATABLE (1)",
            "INSERT INTO t AS x (a, b) OVERRIDING SYSTEM VALUE SELECT 1, 2 ON CONFLICT (a) WHERE b > 0 DO UPDATE SET b = excluded.b WHERE x.b IS DISTINCT FROM excluded.b RETURNING *",
            "SELECT (a).b[1:2], ARRAY(SELECT 1), ROW(1, 2) < ROW(3, 4), a COLLATE \"C\", now() AT TIME ZONE 'UTC', x BETWEEN SYMMETRIC 1 AND 2, CASE WHEN a THEN 1 ELSE 2 END FROM t FOR UPDATE OF t SKIP LOCKED",
            "COPY (SELECT 1) TO STDOUT WITH (FORMAT csv, HEADER); DO $$BEGIN RAISE NOTICE '%', 1; END$$; CALL p(1, b => 2); PREPARE q(int) AS SELECT $1; EXECUTE q(1); DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT 1; SET LOCAL statement_timeout = '5s'; RESET ALL; SHOW search_path; LISTEN x; NOTIFY x, 'y'; BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY",
        ] {
            let theirs = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).map(|p| p.protobuf);
            assert_eq!(parse(sql).map_err(|e| e.to_string()), theirs.map_err(|e| e.to_string()), "{sql}");
            assert!(parse(sql).is_ok(), "{sql}");
        }
        for sql in ["SELEC 1", "SELECT 'unterminated", "SELECT (1"] {
            assert_eq!(
                parse(sql).map_err(|e| e.to_string()).err(),
                pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).map_err(|e| e.to_string()).err(),
                "{sql}"
            );
        }
        assert!(matches!(parse("SELECT 1\0"), Err(pg_query::Error::Conversion(_))));
        // Bytes that are not UTF-8 (here from an escape in a string literal) are refused either
        // way: prost checks every string it decodes.
        assert!(parse(r"SELECT E'\xff'").is_err());
        assert!(pg_query::parse(r"SELECT E'\xff'", pg_query::ParserOptions::DEFAULT).is_err());
    }

    /// Every statement PostgreSQL ships in its own SQL scripts (system views, information_schema,
    /// the contrib extensions: some 3,800 statements, DDL and DML, using most node types) gives
    /// the same tree, or the same error, as `pg_query::parse`.
    #[test]
    fn same_tree_and_errors_as_pg_query_on_postgresql_own_sql() {
        let (mut trees, mut errors) = (0, 0);
        for (file, sql) in crate::tests::corpus::postgres_scripts() {
            let ours = parse(&sql).map_err(|e| e.to_string());
            let theirs = pg_query::parse(&sql, pg_query::ParserOptions::DEFAULT).map(|p| p.protobuf).map_err(|e| e.to_string());
            assert_eq!(ours, theirs, "{}: {sql}", file.display());
            if ours.is_ok() {
                trees += 1;
            } else {
                errors += 1;
            }
        }
        assert!(trees > 3_000, "only {trees} statements parsed ({errors} errors)");
    }
}

#[cfg(test)]
mod cost {
    /// For instruction counts: `valgrind --tool=callgrind` on this test (see bench/RESULTS.md).
    #[test]
    #[ignore]
    fn parse_cost_profile() {
        const SQL: &str = "SELECT o.id, o.created_at, o.total, c.name AS customer, p.title, li.quantity \
FROM orders o JOIN customers c ON c.tenant_id = o.tenant_id AND c.id = o.customer_id \
JOIN line_items li ON li.order_id = o.id JOIN products p ON p.id = li.product_id \
WHERE o.created_at >= $1 AND o.status = ANY($2) ORDER BY o.created_at DESC LIMIT 50";
        for _ in 0..100 {
            assert!(super::parse(SQL).is_ok());
            assert!(pg_query::parse(SQL, pg_query::ParserOptions::DEFAULT).is_ok());
            assert!(crate::fingerprint(SQL).len() == 16);
        }
    }
}
