//! Statement shapes: the text of a single DML statement with its literal constants
//! replaced by placeholders, so that `SELECT … WHERE id = 1` and `… WHERE id = 2` share
//! one cached analysis. Drivers and psql that inline values (the simple query protocol)
//! would otherwise send a never-seen text, and pay a full parse, on every statement.
//!
//! Owns the small lexer that finds literals. It must never hide code inside what it takes
//! for a literal: a shape is offered only for text it can lex with certainty, i.e. with no
//! backslash at all (so `standard_conforming_strings` and `E''` escapes cannot change where
//! a string ends), no dollar quoting or `$` outside `$n` parameters, balanced quotes and
//! comments, one statement, starting with a plain DML keyword. Which analyses may be
//! shared by shape (allowed, one statement, no capped setting) is decided by the cache.

/// Keywords a shareable statement may start with.
const DML: &[&str] = &["select", "insert", "update", "delete", "with", "values", "table"];

/// Bytes that continue an identifier or keyword (`$` is handled apart), as a table: the key
/// is computed for every statement with inlined values, so this loop is on the hot path.
const IDENT: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80;
        c += 1;
    }
    t
};

/// The shape key of `sql`, or `None` when the text is not a candidate for sharing (see the
/// module docs) or holds no literal to replace.
pub(crate) fn key(sql: &str) -> Option<String> {
    let b = sql.as_bytes();
    if b.contains(&b'\\') {
        return None;
    }
    // The key is `sql` with each literal swapped for its placeholder: text between literals
    // is copied in one piece, from `copied` up to the literal's start.
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    let mut replaced = false;
    let mut first_word: Option<&str> = None;
    let mut ended = false; // a `;` was seen: only whitespace and comments may follow
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        // Comments are copied verbatim; quotes inside them are not literals.
        if c == b'-' && b.get(i + 1) == Some(&b'-') {
            i = b[i..].iter().position(|&x| x == b'\n').map_or(b.len(), |p| i + p);
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0usize;
            loop {
                if i + 1 >= b.len() {
                    return None; // unterminated comment
                }
                if b[i] == b'/' && b[i + 1] == b'*' {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b[i + 1] == b'/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if ended {
            return None; // a second statement
        }
        match c {
            b';' => {
                ended = true;
                i += 1;
            }
            b'\'' => {
                // A string constant; '' is an escaped quote. No backslashes exist (checked above).
                out.push_str(&sql[copied..i]);
                i += 1;
                loop {
                    match b.get(i) {
                        None => return None,
                        Some(b'\'') if b.get(i + 1) == Some(&b'\'') => i += 2,
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                out.push_str("$S");
                copied = i;
                replaced = true;
            }
            b'"' => {
                // A quoted identifier, kept; "" is an escaped quote.
                i += 1;
                loop {
                    match b.get(i) {
                        None => return None,
                        Some(b'"') if b.get(i + 1) == Some(&b'"') => i += 2,
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                first_word.get_or_insert("");
            }
            b'$' => {
                // Only `$n` parameters; anything else may be dollar quoting.
                i += 1;
                let digits = b[i..].iter().take_while(|x| x.is_ascii_digit()).count();
                if digits == 0 {
                    return None;
                }
                i += digits;
            }
            _ if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let start = i;
                i += b[i..].iter().position(|&x| !IDENT[x as usize]).unwrap_or(b.len() - i);
                if b.get(i) == Some(&b'$') {
                    return None; // identifiers with `$` border on dollar quoting: not worth the risk
                }
                first_word.get_or_insert(&sql[start..i]);
            }
            _ if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) => {
                out.push_str(&sql[copied..i]);
                let mut float = false;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                if b.get(i) == Some(&b'.') && b.get(i + 1) != Some(&b'.') {
                    float = true;
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if matches!(b.get(i), Some(b'e') | Some(b'E')) {
                    let mut j = i + 1;
                    if matches!(b.get(j), Some(b'+') | Some(b'-')) {
                        j += 1;
                    }
                    if b.get(j).is_some_and(u8::is_ascii_digit) {
                        float = true;
                        i = j;
                        while i < b.len() && b[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                out.push_str(if float { "$F" } else { "$I" });
                copied = i;
                replaced = true;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    let dml = first_word.is_some_and(|w| DML.iter().any(|d| d.eq_ignore_ascii_case(w)));
    (dml && replaced).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::key;

    #[test]
    fn literals_are_replaced_and_code_is_kept() {
        assert_eq!(key("SELECT * FROM t WHERE id = 42").as_deref(), Some("SELECT * FROM t WHERE id = $I"));
        assert_eq!(key("select * from t where a = 'x''y' and b = 1.5e3;").as_deref(), Some("select * from t where a = $S and b = $F;"));
        assert_eq!(key("INSERT INTO t1 (a) VALUES ('it''s', 7, .5)").as_deref(), Some("INSERT INTO t1 (a) VALUES ($S, $I, $F)"));
        assert_eq!(key("SELECT 1 -- it's a comment\n").as_deref(), Some("SELECT $I -- it's a comment\n"));
        assert_eq!(key("SELECT /* a /* nested ' */ quote */ 1").as_deref(), Some("SELECT /* a /* nested ' */ quote */ $I"));
        assert_eq!(key("SELECT \"col'1\" FROM t WHERE x = $1 AND y = 2").as_deref(), Some("SELECT \"col'1\" FROM t WHERE x = $1 AND y = $I"));
        // Different code, different keys.
        assert_ne!(key("SELECT 'a' || pg_read_file('x')"), key("SELECT 'a' || 'x'"));
    }

    #[test]
    fn uncertain_text_gets_no_shape() {
        for sql in [
            "SELECT E'\\'', pg_read_file('x') -- '", // backslashes: E-strings, standard_conforming_strings
            "SELECT 'a\\' || pg_read_file('x') || '",
            "SELECT $$ ' $$, pg_read_file('x')", // dollar quoting
            "SELECT $a$ x $a$",
            "SELECT a$b FROM t WHERE x = 1",
            "SELECT 'unterminated",
            "SELECT /* unterminated 1",
            "SELECT 1; SET ROLE x", // two statements
            "SET statement_timeout = 0", // not DML
            "EXPLAIN (ANALYZE 0) SELECT 1",
            "COPY t TO PROGRAM 'id'",
            "SELECT * FROM t", // nothing to replace
        ] {
            assert_eq!(key(sql), None, "{sql}");
        }
    }
}
