//! A linear-time upper estimate of a statement's nesting depth, checked before parsing.
//!
//! libpg_query hands its parse tree over as protobuf. Up to pg_query 6, protobuf-c packed each
//! nested message by copying everything packed below it, so parsing cost time quadratic in the
//! tree's depth (measured: `SELECT a+a+…` with 9,000 terms took 150 ms, 50,000 terms 2.4 s).
//! The gate now reads libpg_query's JSON output (see `parse`), which is linear; but every level
//! still costs stack in the parser, the JSON writer, the conversion, prost's decode and the walk,
//! and one statement from one tenant must not pin a gateway core or exhaust a stack.
//!
//! So statements longer than [`CHECK_MIN_LEN`] are first run through PostgreSQL's lexer (fast
//! and flat) and refused with rule `too-complex` when the estimate exceeds [`MAX_NESTING`].
//! PostgreSQL itself refuses expressions a few thousand levels deep ("stack depth limit
//! exceeded"), so real SQL is not lost. The estimate, per token:
//! - `(`, `[` and `CASE` open a group that costs [`GROUP_COST`] levels; `)`, `]`, `END` close it;
//! - operators (`+`, `||`, `::`, `NOT`, `IS`, `COLLATE`, …) add one level to the current
//!   segment of the group; `,`, `AND` and `OR` start a new segment (their operands are siblings:
//!   the parser flattens AND/OR chains);
//! - `UNION`, `INTERSECT`, `EXCEPT` and `JOIN` nest left-deep across segments and add one level
//!   to the whole group;
//! - the estimate at any point is the sum over the open groups; `;` starts afresh.
//!
//! Statements up to [`CHECK_MIN_LEN`] bytes nest at most 256 levels deep, which parses in about
//! a millisecond even in the worst case, so they skip the lexer pass.

use pg_query::protobuf::Token;

/// Statements longer than this are checked before they are parsed.
pub(crate) const CHECK_MIN_LEN: usize = 512;
/// The largest nesting estimate allowed: about 20 ms of parsing in the worst case.
pub(crate) const MAX_NESTING: usize = 2_000;
/// Levels a parenthesised or bracketed group or a CASE expression may add by itself.
const GROUP_COST: usize = 4;

#[derive(Clone, Copy)]
struct Group {
    /// Levels of the enclosing groups, this group's own cost included.
    base: usize,
    /// Set operations and joins so far in this group.
    chain: usize,
    /// Operators since the last `,`/`AND`/`OR` in this group.
    segment: usize,
    case: bool,
}

impl Group {
    fn depth(&self) -> usize {
        self.base + self.chain + self.segment
    }

    fn open(&self, case: bool) -> Group {
        Group {
            base: self.depth() + GROUP_COST,
            chain: 0,
            segment: 0,
            case,
        }
    }
}

const TOP: Group = Group {
    base: 0,
    chain: 0,
    segment: 0,
    case: false,
};

/// Whether `sql` may nest deeper than [`MAX_NESTING`]. SQL the lexer rejects is left to the
/// parser, which fails on it early and cheaply.
pub(crate) fn too_deep(sql: &str) -> bool {
    if sql.len() <= CHECK_MIN_LEN {
        return false;
    }
    let Ok(scanned) = pg_query::scan(sql) else {
        return false;
    };
    let mut groups = vec![TOP];
    for token in &scanned.tokens {
        let token = Token::try_from(token.token).unwrap_or(Token::Nul);
        let nested = groups.len() > 1;
        let Some(top) = groups.last_mut() else {
            return true;
        };
        match token {
            Token::Ascii40 | Token::Ascii91 => {
                let group = top.open(false);
                groups.push(group);
            }
            Token::Case => {
                let group = top.open(true);
                groups.push(group);
            }
            Token::Ascii41 | Token::Ascii93 if nested && !top.case => {
                groups.pop();
            }
            Token::EndP if top.case => {
                groups.pop();
            }
            Token::Ascii59 => groups = vec![TOP],
            Token::Ascii44 | Token::And | Token::Or => top.segment = 0,
            Token::Union | Token::Intersect | Token::Except | Token::Join => top.chain += 1,
            Token::Ascii37
            | Token::Ascii42
            | Token::Ascii43
            | Token::Ascii45
            | Token::Ascii47
            | Token::Ascii58
            | Token::Ascii60
            | Token::Ascii61
            | Token::Ascii62
            | Token::Ascii94
            | Token::Op
            | Token::Typecast
            | Token::LessEquals
            | Token::GreaterEquals
            | Token::NotEquals
            | Token::Not
            | Token::Is
            | Token::Isnull
            | Token::Notnull
            | Token::Like
            | Token::Ilike
            | Token::Similar
            | Token::Between
            | Token::InP
            | Token::Collate
            | Token::At
            | Token::Overlaps
            | Token::Escape
            | Token::Operator => top.segment += 1,
            _ => {}
        }
        if groups.last().is_some_and(|g| g.depth() > MAX_NESTING) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn padded(sql: &str) -> String {
        format!("{sql} /* {} */", "x".repeat(CHECK_MIN_LEN))
    }

    #[test]
    fn short_statements_are_not_scanned() {
        assert!(!too_deep(&format!("SELECT {}", vec!["a"; 200].join("+"))));
    }

    #[test]
    fn deep_chains_and_groups_are_too_deep() {
        assert!(too_deep(&format!(
            "SELECT {}",
            vec!["a"; MAX_NESTING + 2].join("+")
        )));
        assert!(!too_deep(&format!(
            "SELECT {}",
            vec!["a"; MAX_NESTING + 1].join("+")
        )));
        assert!(too_deep(&format!(
            "SELECT a{}",
            "::int".repeat(MAX_NESTING + 1)
        )));
        assert!(too_deep(&format!(
            "SELECT {} true",
            "NOT ".repeat(MAX_NESTING + 1)
        )));
        let depth = MAX_NESTING / GROUP_COST + 1;
        assert!(too_deep(&format!(
            "SELECT {}1{}",
            "abs(".repeat(depth),
            ")".repeat(depth)
        )));
        assert!(too_deep(&format!(
            "SELECT {} 1 {}",
            "CASE WHEN a AND b THEN ".repeat(depth),
            "END ".repeat(depth)
        )));
        assert!(too_deep(
            &vec!["SELECT a, b FROM t"; MAX_NESTING + 2].join(" UNION ALL ")
        ));
        assert!(too_deep(&format!(
            "SELECT * FROM t0 {}",
            "JOIN t ON a AND b ".repeat(MAX_NESTING + 1)
        )));
    }

    #[test]
    fn large_flat_statements_are_fine() {
        let rows: Vec<String> = (0..20_000)
            .map(|i| format!("({i}, -{i}, '{i}'::text || 'x')"))
            .collect();
        assert!(!too_deep(&format!(
            "INSERT INTO t VALUES {}",
            rows.join(", ")
        )));
        let ids: Vec<String> = (0..20_000).map(|i| i.to_string()).collect();
        assert!(!too_deep(&format!(
            "SELECT * FROM t WHERE id IN ({})",
            ids.join(", ")
        )));
        let ors: Vec<String> = (0..20_000).map(|i| format!("id = {i} + 1")).collect();
        assert!(!too_deep(&format!(
            "SELECT * FROM t WHERE {}",
            ors.join(" OR ")
        )));
        let columns: Vec<String> = (0..20_000).map(|i| format!("c{i}::text")).collect();
        assert!(!too_deep(&format!("SELECT {} FROM t", columns.join(", "))));
        let concat: Vec<String> = (0..500).map(|i| format!("c{i}")).collect();
        assert!(!too_deep(&padded(&format!(
            "SELECT {} FROM t",
            concat.join(" || ', ' || ")
        ))));
    }

    #[test]
    fn statements_are_estimated_separately() {
        let one = format!("SELECT {}", vec!["a"; MAX_NESTING / 2].join("+"));
        assert!(!too_deep(&format!("{one}; {one}; {one}")));
    }

    #[test]
    fn unbalanced_closers_do_not_underflow() {
        assert!(!too_deep(&padded("SELECT ))) ]]] END END")));
    }
}
