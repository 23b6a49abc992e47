//! No input may panic or crash the gate: random bytes, keyword soup, and deep nesting.

use crate::{Gate, GateConfig, Limits, Scope};

/// A small deterministic PRNG (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const WORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "INSERT",
    "INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE",
    "WITH",
    "AS",
    "RETURNING",
    "MERGE",
    "USING",
    "ON",
    "WHEN",
    "MATCHED",
    "THEN",
    "CREATE",
    "TABLE",
    "DROP",
    "ALTER",
    "GRANT",
    "COPY",
    "TO",
    "STDOUT",
    "STDIN",
    "PROGRAM",
    "EXPLAIN",
    "ANALYZE",
    "PREPARE",
    "EXECUTE",
    "DECLARE",
    "CURSOR",
    "FOR",
    "FETCH",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "ROLE",
    "SESSION",
    "AUTHORIZATION",
    "RESET",
    "ALL",
    "LOCAL",
    "SHOW",
    "DO",
    "CALL",
    "TRUNCATE",
    "LOCK",
    "VACUUM",
    "LISTEN",
    "NOTIFY",
    "UNION",
    "JOIN",
    "LEFT",
    "LATERAL",
    "ROWS",
    "CASE",
    "END",
    "NOT",
    "NULL",
    "AND",
    "OR",
    "IN",
    "EXISTS",
    "ARRAY",
    "ROW",
    "UPDATE",
    "SHARE",
    "set_config",
    "pg_read_file",
    "pg_roles",
    "pg_catalog",
    "dblink",
    "lo_import",
    "nextval",
    "statement_timeout",
    "app.tenant",
    "orders",
    "t",
    "x",
    "$1",
    "$2",
    "1",
    "0",
    "'s'",
    "'5s'",
    "\"Q\"",
    "E'\\x'",
    "$$",
    "$$body$$",
    "(",
    ")",
    "[",
    "]",
    ",",
    ";",
    ".",
    "::",
    "=",
    "+",
    "-",
    "*",
    "/",
    "||",
    "<>",
    "--",
    "/*",
    "*/",
    "\n",
    " ",
];

fn gate() -> Gate {
    Gate::new(GateConfig {
        cache_capacity: 128,
        ..GateConfig::default()
    })
}

fn check_all_scopes(gate: &Gate, sql: &str) {
    let limits = Limits {
        max_statement_timeout_ms: Some(1000),
        max_idle_in_transaction_ms: Some(1000),
        own_database: false,
        transaction_mode: false,
    };
    for scope in [Scope::ReadWrite, Scope::ReadOnly] {
        if let Err(denial) = gate.check("t", sql, scope, &limits) {
            assert!(!denial.rule.is_empty() && denial.message.contains(denial.rule));
            assert!(["42501", "42601", "54001", "XX000"].contains(&denial.sqlstate));
        }
    }
}

#[test]
fn keyword_soup_never_panics() {
    let gate = gate();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..5_000 {
        let len = 1 + rng.below(24);
        let sql: Vec<&str> = (0..len).map(|_| WORDS[rng.below(WORDS.len())]).collect();
        check_all_scopes(&gate, &sql.join(" "));
    }
}

#[test]
fn random_bytes_never_panic() {
    let gate = gate();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..2_000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check_all_scopes(&gate, &String::from_utf8_lossy(&bytes));
        let ascii: String = bytes.iter().map(|b| char::from(b % 96 + 32)).collect();
        check_all_scopes(&gate, &ascii);
    }
}

#[test]
fn deep_nesting_never_crashes() {
    let gate = gate();
    for depth in [50, 700, 5_000, 50_000] {
        for sql in [
            format!("SELECT {}", vec!["a"; depth].join("+")),
            format!("SELECT a{}", "::int".repeat(depth)),
            format!("SELECT {}1{}", "(".repeat(depth), ")".repeat(depth)),
            format!("SELECT {}1{}", "ARRAY[".repeat(depth), "]".repeat(depth)),
            format!("SELECT {}1{}", "(SELECT ".repeat(depth), ")".repeat(depth)),
            format!("SELECT {}1{}", "abs(".repeat(depth), ")".repeat(depth)),
            format!("SELECT {} true", "NOT ".repeat(depth)),
            format!("SELECT {}1", "- ".repeat(depth)),
            format!(
                "SELECT {} 1 {}",
                "CASE WHEN true THEN".repeat(depth),
                " END".repeat(depth)
            ),
            format!("{} SELECT 1", "EXPLAIN ".repeat(depth)),
        ] {
            check_all_scopes(&gate, &sql);
        }
    }
}

#[test]
fn the_largest_inline_input_fits_a_test_threads_stack() {
    // Test threads have 2 MiB of stack, like tokio's workers: the deepest statements that are
    // still parsed inline (see `stack`) must fit, in a debug build too.
    let max = crate::stack::INLINE_MAX_LEN;
    let fill = |unit: &str, fixed: usize| (max - fixed) / unit.len();
    for sql in [
        format!("SELECT {}", vec!["a"; fill("a+", 8)].join("+")),
        format!("SELECT {}1{}", "(SELECT ".repeat(fill("(SELECT )", 8)), ")".repeat(fill("(SELECT )", 8))),
        format!("SELECT {}1{}", "abs(".repeat(fill("abs()", 8)), ")".repeat(fill("abs()", 8))),
        format!("SELECT {}1{}", "ARRAY[".repeat(fill("ARRAY[]", 8)), "]".repeat(fill("ARRAY[]", 8))),
    ] {
        assert!(sql.len() <= max, "{}", sql.len());
        assert!(gate().check("t", &sql, Scope::ReadOnly, &Limits::default()).is_ok(), "{sql}");
    }
}

#[test]
fn long_operator_chains_are_allowed_and_still_checked() {
    // More than prost's default 100-level decode limit would allow.
    let columns: Vec<String> = (0..200).map(|i| format!("c{i}")).collect();
    let sql = format!("SELECT {} FROM orders", columns.join(" || ', ' || "));
    assert!(gate()
        .check("t", &sql, Scope::ReadOnly, &Limits::default())
        .is_ok());

    let hidden = format!(
        "SELECT {} + length(pg_read_file('x'))",
        vec!["a"; 1_500].join("+")
    );
    let denial = gate().check("t", &hidden, Scope::ReadWrite, &Limits::default());
    assert_eq!(denial.map_err(|d| d.rule), Err("dangerous-function"));
}

#[test]
fn pathological_nesting_is_refused_before_parsing() {
    let start = std::time::Instant::now();
    for terms in [5_000, 100_000] {
        let sql = format!("SELECT {}", vec!["a"; terms].join("+"));
        let denial = gate()
            .check("t", &sql, Scope::ReadWrite, &Limits::default())
            .err();
        assert_eq!(
            denial.as_ref().map(|d| (d.rule, d.sqlstate)),
            Some(("too-complex", "54001"))
        );
    }
    // Parsing the 100,000-term chain would take seconds; the lexer pass takes milliseconds.
    assert!(
        start.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn fingerprint_never_crashes() {
    for sql in [
        format!("SELECT {}", vec!["a"; 50_000].join("+")),
        "\0".to_owned(),
        "SELEC".to_owned(),
    ] {
        assert_eq!(crate::fingerprint(&sql).len(), 16);
    }
}
