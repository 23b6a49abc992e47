//! Statement shapes: the text of a single DML statement with its literal constants
//! replaced by placeholders, so that `SELECT … WHERE id = 1` and `… WHERE id = 2` share
//! one cached analysis. Drivers and psql that inline values (the simple query protocol)
//! would otherwise send a never-seen text, and pay a full parse, on every statement.
//!
//! Owns the small lexer that finds literals. It must never read the text differently from
//! PostgreSQL's scanner (`scan.l`): a literal it replaces must be exactly one of the
//! scanner's constant tokens, and everything it keeps must be code, comments or whitespace
//! the scanner reads the same way. A shape is offered only for text it can lex with
//! certainty:
//! - no backslash at all, so neither `E''` escapes nor `standard_conforming_strings` can
//!   move where a string ends (the session pins that setting on, see `settings::PINNED`);
//! - no dollar quoting, and `$` only in `$n` parameters not followed by an identifier
//!   character (`$1a` is junk to PostgreSQL 16 and later);
//! - a `--` comment ends at `\n` *or* `\r`, as PostgreSQL's `non_newline` class says;
//! - a number directly followed by an identifier character (`0x1F`, `1_000`, `1e`, `2abc`)
//!   gives no shape: PostgreSQL reads those as hexadecimal, separated or junk literals
//!   depending on its version;
//! - `B''` and `X''` strings give no shape: in them, and in strings that continue them across
//!   a newline, a doubled quote does not escape;
//! - balanced quotes and comments, one statement, starting with a plain DML keyword.
//!
//! Which analyses may be shared by shape (allowed, one statement, no capped setting, no
//! literal-dependent rule) is decided by the cache. The differential test
//! (`tests::differential`) runs this lexer against PostgreSQL's own scanner on generated
//! and mutated statements and fails on any disagreement.

/// Keywords a shareable statement may start with.
const DML: &[&str] = &["select", "insert", "update", "delete", "with", "values", "table"];

/// Bytes the lexer stops at: those that may start a literal, a comment, a parameter or a
/// second statement. Every other byte (letters, spaces, operators) is kept as it is, so the
/// scan jumps from one of these to the next; the key is computed for every statement with
/// inlined values, so this loop is on the hot path.
const STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_digit() || matches!(b, b'\'' | b'"' | b'$' | b';' | b'-' | b'/' | b'.');
        c += 1;
    }
    t
};

/// Bytes that continue an identifier or keyword (`$` is handled apart). A digit after one of
/// these belongs to the identifier (`t1`), not to a number.
const IDENT_CONT: [bool; 256] = {
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
#[cfg(test)]
pub(crate) fn key(sql: &str) -> Option<String> {
    let mut out = String::new();
    key_into(sql, &mut out).then_some(out)
}

/// Writes the shape key of `sql` into `out` (cleared first) and says whether there is one;
/// `false` when the text is not a candidate for sharing (see the module docs) or holds no
/// literal to replace, and then `out` holds nothing of use. The caller lends the buffer, so
/// the hot path allocates nothing.
#[cfg(test)]
pub(crate) fn key_into(sql: &str, out: &mut String) -> bool {
    out.clear();
    append_key(sql, out)
}

/// Appends the shape key of `sql` to `out` (which may hold a prefix, such as the tenant's
/// partition) and says whether there is one; on `false`, what was appended is of no use.
pub(crate) fn append_key(sql: &str, out: &mut String) -> bool {
    lex_into(sql, out, &mut |_, _| {}).is_some_and(|first_word| DML.iter().any(|d| d.eq_ignore_ascii_case(first_word)))
}

/// The byte ranges the lexer replaces by placeholders, or `None` when it offers no shape
/// (for any statement, not only DML). For the differential test against PostgreSQL's scanner.
#[cfg(test)]
pub(crate) fn literal_spans(sql: &str) -> Option<Vec<std::ops::Range<usize>>> {
    let mut spans = Vec::new();
    let mut out = String::new();
    lex_into(sql, &mut out, &mut |start, end| spans.push(start..end))?;
    Some(spans)
}

/// The lexer behind [`key_into`], for any statement: appends the shape to `out`, reports
/// each replaced literal's byte range to `span`, and returns the statement's first word, or
/// `None` when there is no shape (uncertain text, more than one statement, no literal, no
/// leading word). `span` is a no-op on the hot path, and monomorphised away.
fn lex_into<'a>(sql: &'a str, out: &mut String, span: &mut impl FnMut(usize, usize)) -> Option<&'a str> {
    let b = sql.as_bytes();
    if b.contains(&b'\\') {
        return None;
    }
    let first = first_word(sql)?;
    // The key is `sql` with each literal swapped for its placeholder: text between literals
    // is copied in one piece, from `copied` up to the literal's start.
    let mut copied = 0;
    let mut replaced = false;
    let mut i = 0;
    while let Some(p) = b[i..].iter().position(|&x| STOP[x as usize]) {
        i += p;
        let after_word = i > 0 && IDENT_CONT[b[i - 1] as usize];
        match b[i] {
            // Comments are kept verbatim; quotes inside them are not literals.
            b'-' if b.get(i + 1) == Some(&b'-') => i = line_comment_end(b, i),
            b'/' if b.get(i + 1) == Some(&b'*') => i = block_comment_end(b, i)?,
            b';' => {
                // One statement only: after `;` only whitespace and comments may follow.
                if !only_trivia(b, i + 1) {
                    return None;
                }
                break;
            }
            b'\'' => {
                // A string constant (`E'…'`, `U&'…'` keep their prefix); '' is an escaped
                // quote. Bit strings (`B'…'`, `X'…'`) give no shape: in them PostgreSQL ends
                // the string at the first quote of a doubled pair, and also in every string
                // that continues one across a newline (`X'1F' -- c⏎ 'a''b'`). No backslashes
                // exist (checked above).
                if bit_string_prefix(b, i) {
                    return None;
                }
                let start = i;
                out.push_str(&sql[copied..i]);
                i = quoted_end(b, i, b'\'')?;
                span(start, i);
                out.push_str("$S");
                copied = i;
                replaced = true;
            }
            // A quoted identifier, kept; "" is an escaped quote.
            b'"' => i = quoted_end(b, i, b'"')?,
            // `$` after a word borders on dollar quoting (`a$b`, `$tag$`): not worth the risk.
            b'$' if after_word => return None,
            b'$' => {
                // Only `$n` parameters; anything else may be dollar quoting.
                i += 1;
                let digits = b[i..].iter().take_while(|x| x.is_ascii_digit()).count();
                if digits == 0 {
                    return None;
                }
                i += digits;
                // `$1a`, `$1$`: junk (PostgreSQL 16+) or dollar quoting; no shape.
                if followed_by_word(b, i) {
                    return None;
                }
            }
            // A digit inside an identifier (`t1`).
            b'0'..=b'9' if after_word => i += 1,
            b'0'..=b'9' => {
                let start = i;
                out.push_str(&sql[copied..i]);
                let float = number_end(b, &mut i);
                if followed_by_word(b, i) {
                    return None;
                }
                span(start, i);
                out.push_str(if float { "$F" } else { "$I" });
                copied = i;
                replaced = true;
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let start = i;
                out.push_str(&sql[copied..i]);
                number_end(b, &mut i);
                if followed_by_word(b, i) {
                    return None;
                }
                span(start, i);
                out.push_str("$F");
                copied = i;
                replaced = true;
            }
            // `..` is one token to PostgreSQL (DOT_DOT), so `1..2` ends in the integer 2,
            // not the number `.2`.
            b'.' if b.get(i + 1) == Some(&b'.') => i += 2,
            _ => i += 1, // a lone `-`, `/` or `.`
        }
    }
    out.push_str(&sql[copied..]);
    replaced.then_some(first)
}

/// The statement's first word, after whitespace, comments and opening parentheses; `None`
/// when it does not start with a word.
fn first_word(sql: &str) -> Option<&str> {
    let b = sql.as_bytes();
    let mut i = 0;
    loop {
        match b.get(i)? {
            c if c.is_ascii_whitespace() || *c == b'(' => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => i = line_comment_end(b, i),
            b'/' if b.get(i + 1) == Some(&b'*') => i = block_comment_end(b, i)?,
            c if c.is_ascii_alphabetic() || *c == b'_' || *c >= 0x80 => {
                let len = b[i..].iter().position(|&x| !IDENT_CONT[x as usize]).unwrap_or(b.len() - i);
                return sql.get(i..i + len);
            }
            _ => return None,
        }
    }
}

/// Index just past the quoted text (string or identifier, quote `q`) starting at `i`, where
/// a doubled quote stands for one; `None` if it is not closed.
fn quoted_end(b: &[u8], mut i: usize, q: u8) -> Option<usize> {
    i += 1;
    loop {
        i += b[i..].iter().position(|&x| x == q)? + 1;
        if b.get(i) != Some(&q) {
            return Some(i);
        }
        i += 1;
    }
}

/// Whether the string constant whose opening quote is at `quote` is a bit string (`B'…'` or
/// `X'…'`): the letter before the quote starts a token, i.e. does not continue an identifier.
fn bit_string_prefix(b: &[u8], quote: usize) -> bool {
    quote >= 1
        && matches!(b[quote - 1], b'b' | b'B' | b'x' | b'X')
        && (quote < 2 || !(IDENT_CONT[b[quote - 2] as usize] || b[quote - 2] == b'$'))
}

/// Whether a number or `$n` ending at `i` runs straight into an identifier character (`0x1F`,
/// `1_000`, `1e`, `2abc`, `$1a`) or a `$`: PostgreSQL's versions disagree on those, or it is
/// dollar quoting, so they get no shape.
fn followed_by_word(b: &[u8], i: usize) -> bool {
    b.get(i).is_some_and(|&x| IDENT_CONT[x as usize] || x == b'$')
}

/// Index just past the `--` comment starting at `i`: at its newline, or the end. Like
/// PostgreSQL's scanner (`comment ("--"{non_newline}*)`, `non_newline [^\n\r]`), both `\n`
/// and `\r` end it: a lexer that ran on past a `\r` would take the code after it for comment
/// and could open a string where PostgreSQL closes one.
fn line_comment_end(b: &[u8], i: usize) -> usize {
    #[cfg(test)]
    if REVERT_CR_FIX.get() {
        return b[i..].iter().position(|&x| x == b'\n').map_or(b.len(), |p| i + p);
    }
    b[i..].iter().position(|&x| x == b'\n' || x == b'\r').map_or(b.len(), |p| i + p)
}

#[cfg(test)]
thread_local! {
    /// Test builds only: brings back, on this thread, the bug the red team found (`--`
    /// comments ending only at `\n`), so the differential test can show it catches it.
    pub(crate) static REVERT_CR_FIX: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Index just past the (nestable) `/* */` comment starting at `i`; `None` if unterminated.
fn block_comment_end(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    loop {
        if i + 1 >= b.len() {
            return None;
        }
        if b[i] == b'/' && b[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return Some(i);
            }
        } else {
            i += 1;
        }
    }
}

/// Whether `b[i..]` holds only whitespace and complete comments.
fn only_trivia(b: &[u8], mut i: usize) -> bool {
    while i < b.len() {
        match b[i] {
            c if c.is_ascii_whitespace() => i += 1,
            b'-' if b.get(i + 1) == Some(&b'-') => i = line_comment_end(b, i),
            b'/' if b.get(i + 1) == Some(&b'*') => match block_comment_end(b, i) {
                Some(end) => i = end,
                None => return false,
            },
            _ => return false,
        }
    }
    true
}

/// Moves `i` past the numeric constant starting there (digits, or `.` and digits) and says
/// whether it is a float (has a fraction or an exponent).
fn number_end(b: &[u8], i: &mut usize) -> bool {
    let mut float = false;
    while *i < b.len() && b[*i].is_ascii_digit() {
        *i += 1;
    }
    if b.get(*i) == Some(&b'.') && b.get(*i + 1) != Some(&b'.') {
        float = true;
        *i += 1;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
    }
    if matches!(b.get(*i), Some(b'e') | Some(b'E')) {
        let mut j = *i + 1;
        if matches!(b.get(j), Some(b'+') | Some(b'-')) {
            j += 1;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            float = true;
            *i = j;
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
        }
    }
    float
}

#[cfg(test)]
mod tests {
    use super::{key, lex_into};
    use pg_query::protobuf::Token;

    /// DML with inlined values of every kind, beside what PostgreSQL's scripts hold.
    const DML_WITH_VALUES: &[&str] = &[
        "SELECT order_id, status, table_no, total, placed_at FROM orders WHERE order_id = ('00000000-0000-4000-9000-' || lpad(1234::text, 12, '0'))::uuid;",
        "INSERT INTO order_items (order_id, line_no, item_id, quantity, unit_price) SELECT md5(17::text || '-' || 99::text)::uuid, l.line_no, m.item_id, l.qty, m.price FROM (VALUES (1, 5::int, 2::int), (2, 7::int, 1)) l(line_no, k, qty) JOIN menu_items m ON m.item_id = ('00000000-0000-4000-8000-' || lpad(l.k::text, 12, '0'))::uuid",
        "select a from t1 where b = 1.5e3 and c = .5 and d = 1. and e = 1e-7 and f = 99999999999 and g = -3",
        "SELECT E'x', U&'d', B'101', X'1F', N'n', 'it''s', 'a'\n'b' FROM t",
        "SELECT 1 -- it's a comment\n, 2 /* a /* nested ' */ quote */ FROM \"t'1\" WHERE x = $1 AND y = 'z';  -- done",
        "UPDATE t SET a = 'x' WHERE id = 3 RETURNING *",
        "DELETE FROM t WHERE created < now() - interval '3 days'",
        "WITH x AS (SELECT 1 AS n) SELECT n + 2.25 FROM x",
        "VALUES (1, 'a'), (2, 'b')",
        "TABLE t",
        "SELECT a$b FROM t WHERE c = 1",
        "SELECT 1;;",
    ];

    /// Constants as PostgreSQL's scanner names them, by the kind of placeholder they get.
    fn constant_class(token: i32) -> Option<char> {
        match Token::try_from(token).ok()? {
            Token::Sconst | Token::Usconst | Token::Bconst | Token::Xconst => Some('S'),
            Token::Iconst | Token::Fconst => Some('N'),
            _ => None,
        }
    }

    /// One token as the test compares it: constant class, else token kind and text.
    type Compared = (Option<char>, i32, Option<String>);

    /// PostgreSQL's own tokens for `sql`: kind, and the text unless it is a constant.
    fn tokens(sql: &str) -> Option<Vec<Compared>> {
        let tokens = pg_query::scan_tokens(sql).ok()?;
        Some(
            tokens
                .iter()
                .map(|t| {
                    let class = constant_class(t.token);
                    let text = class.is_none().then(|| sql.get(t.start as usize..t.end as usize).unwrap_or("").to_owned());
                    (class, if class.is_some() { 0 } else { t.token }, text)
                })
                .collect(),
        )
    }

    /// The lexer never takes code for a literal. For every statement of PostgreSQL's own
    /// scripts (the lexer without its DML-only rule) and the DML above that gets a shape,
    /// filling the placeholders with other literals of the same kind gives PostgreSQL's
    /// scanner the same tokens, apart from the constants' values, and the same shape.
    #[test]
    fn placeholders_stand_only_for_literals() {
        let mut statements: Vec<String> = crate::tests::corpus::postgres_scripts().into_iter().map(|(_, sql)| sql).collect();
        statements.extend(DML_WITH_VALUES.iter().map(|s| s.to_string()));
        let (mut shaped, mut again) = (0, String::new());
        let mut shape = String::new();
        for sql in &statements {
            shape.clear();
            if ["$S", "$I", "$F"].iter().any(|p| sql.contains(p)) || lex_into(sql, &mut shape, &mut |_, _| {}).is_none() {
                continue;
            }
            let Some(theirs) = tokens(sql) else { continue };
            let other = shape.replace("$S", "'zz'").replace("$I", "7").replace("$F", "1.5");
            assert_eq!(tokens(&other).as_ref(), Some(&theirs), "{sql}\nshape: {shape}");
            again.clear();
            assert!(lex_into(&other, &mut again, &mut |_, _| {}).is_some() && again == shape, "{sql}");
            shaped += 1;
        }
        assert!(shaped > 500, "only {shaped} statements had a shape");
        // The DML list all gets shapes, except the three made to have none and the one with
        // bit strings (no shape: see the module docs).
        let dml = DML_WITH_VALUES.iter().filter(|sql| key(sql).is_some()).count();
        assert_eq!(dml, DML_WITH_VALUES.len() - 4);
    }

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
