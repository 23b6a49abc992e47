//! SQL text → PostgreSQL's raw parse tree: the gate's one call into libpg_query's parser.
//!
//! `pg_query::parse` does three things: libpg_query parses and serializes the tree as
//! protobuf (C, upb), prost decodes it into `pg_query::protobuf::ParseResult` (Rust), and
//! `pg_query::ParseResult::new` walks the whole tree again to collect tables, functions,
//! aliases, CTE names and filter columns into hash sets of owned strings. The gate never uses
//! the third part (it walks the tree itself, in `walk`), which is about 6% of the instructions
//! of a parse of a ~300-character SELECT (callgrind, `parse::cost`). So this module makes the
//! first two calls itself: the same C entry point the crate calls (`pg_query_parse_protobuf`,
//! linked by the `pg_query` crate), the same prost decode into the crate's own protobuf types.
//!
//! Owns the FFI boundary and nothing else. It must never keep a pointer into libpg_query's
//! result after freeing it, and must free every result exactly once.

use std::ffi::{c_char, c_int, CStr, CString};

use pg_query::protobuf::ParseResult;
use prost::Message;

/// libpg_query's `PgQueryProtobuf` (pg_query.h).
#[repr(C)]
struct PgQueryProtobuf {
    len: usize,
    data: *mut c_char,
}

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

/// libpg_query's `PgQueryProtobufParseResult` (pg_query.h).
#[repr(C)]
struct PgQueryProtobufParseResult {
    parse_tree: PgQueryProtobuf,
    stderr_buffer: *mut c_char,
    error: *mut PgQueryError,
}

extern "C" {
    fn pg_query_parse_protobuf(input: *const c_char) -> PgQueryProtobufParseResult;
    fn pg_query_free_protobuf_parse_result(result: PgQueryProtobufParseResult);
}

/// Parses `sql` into the tree `pg_query::parse` would return in its `protobuf` field, with
/// the same errors (`pg_query::Error::Parse` with PostgreSQL's message, `Conversion` for a
/// NUL byte, `Decode` if the protobuf were malformed).
pub(crate) fn parse(sql: &str) -> Result<ParseResult, pg_query::Error> {
    let input = CString::new(sql)?;
    // SAFETY: `input` is a valid NUL-terminated string that outlives the call; libpg_query
    // does not keep it. The result is freed below, once, after everything read from it was
    // copied (the error message into a String, the protobuf bytes into the decoded tree).
    unsafe {
        let result = pg_query_parse_protobuf(input.as_ptr());
        let parsed = if !result.error.is_null() {
            let message = CStr::from_ptr((*result.error).message).to_string_lossy().into_owned();
            Err(pg_query::Error::Parse(message))
        } else if result.parse_tree.data.is_null() {
            Ok(ParseResult::default())
        } else {
            let data = std::slice::from_raw_parts(result.parse_tree.data as *const u8, result.parse_tree.len);
            ParseResult::decode(data).map_err(pg_query::Error::Decode)
        };
        pg_query_free_protobuf_parse_result(result);
        parsed
    }
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
        ] {
            assert_eq!(parse(sql).ok(), pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).ok().map(|p| p.protobuf), "{sql}");
        }
        for sql in ["SELEC 1", "SELECT 'unterminated", "SELECT (1"] {
            assert_eq!(
                parse(sql).map_err(|e| e.to_string()).err(),
                pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).map_err(|e| e.to_string()).err(),
                "{sql}"
            );
        }
        assert!(matches!(parse("SELECT 1\0"), Err(pg_query::Error::Conversion(_))));
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
