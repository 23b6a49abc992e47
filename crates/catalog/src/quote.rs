//! Quoting of SQL text the control plane builds (DDL cannot take parameters): identifiers and
//! string literals. Owns nothing else; every value that can be a parameter is one.

/// Quote an SQL identifier.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quote an SQL string literal (standard_conforming_strings is on in PostgreSQL ≥ 9.1, and the
/// gateway pins it on).
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
