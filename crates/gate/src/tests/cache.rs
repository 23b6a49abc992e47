//! The analysis cache: repeatable, bounded, scope-independent.

use std::sync::Arc;

use crate::{Gate, GateConfig, Limits, Scope};

fn gate_with_capacity(cache_capacity: usize) -> Gate {
    Gate::new(GateConfig {
        cache_capacity,
        ..GateConfig::default()
    })
}

#[test]
fn same_text_gives_the_same_result_from_one_entry() {
    let gate = gate_with_capacity(100);
    for sql in [
        "SELECT * FROM orders WHERE id = $1",
        "SET ROLE x",
        "SELEC 1",
    ] {
        let first = gate.check("t", sql, Scope::ReadWrite, &Limits::default());
        let second = gate.check("t", sql, Scope::ReadWrite, &Limits::default());
        assert_eq!(first, second, "{sql}");
    }
    assert_eq!(
        gate.cache.len(),
        3,
        "allowed, denied and unparsable statements are all cached"
    );
}

#[test]
fn one_entry_serves_every_scope() {
    let gate = gate_with_capacity(100);
    let sql = "DELETE FROM orders WHERE id = $1";
    assert!(gate
        .check("t", sql, Scope::ReadWrite, &Limits::default())
        .is_ok());
    assert_eq!(
        gate.check("t", sql, Scope::ReadOnly, &Limits::default())
            .map_err(|d| d.rule),
        Err("read-only")
    );
    assert_eq!(gate.cache.len(), 1);
}

#[test]
fn the_cache_does_not_grow_past_capacity() {
    let gate = gate_with_capacity(64);
    for i in 0..2_000 {
        let sql = format!("SELECT * FROM orders WHERE id = {i}");
        assert!(gate
            .check("t", &sql, Scope::ReadWrite, &Limits::default())
            .is_ok());
        assert!(
            gate.cache.len() <= 64,
            "{} entries after {i} statements",
            gate.cache.len()
        );
    }
    assert!(gate.cache.len() > 0);
}

#[test]
fn long_statements_weigh_more() {
    let gate = gate_with_capacity(64);
    for i in 0..20 {
        let sql = format!("SELECT {i} /* {} */", "x".repeat(40 * 1024));
        assert!(gate
            .check("t", &sql, Scope::ReadWrite, &Limits::default())
            .is_ok());
    }
    assert!(
        gate.cache.len() <= 1,
        "a 40 KiB statement weighs 41 of the 64 units"
    );
}

#[test]
fn hot_statements_survive_a_stream_of_one_off_statements() {
    let gate = gate_with_capacity(256);
    let hot = "SELECT * FROM orders WHERE id = $1";
    for i in 0..5_000 {
        if i % 10 == 0 {
            assert!(gate.check("t", hot, Scope::ReadOnly, &Limits::default()).is_ok());
        }
        let one_off = format!("SELECT * FROM orders WHERE note = 'literal {i}'");
        assert!(gate
            .check("t", &one_off, Scope::ReadOnly, &Limits::default())
            .is_ok());
    }
    assert!(gate.cache.contains(hot));
}

#[test]
fn capacity_zero_disables_caching() {
    let gate = gate_with_capacity(0);
    assert!(gate
        .check("t", "SELECT 1", Scope::ReadWrite, &Limits::default())
        .is_ok());
    assert_eq!(
        gate.check("t", "SET ROLE x", Scope::ReadWrite, &Limits::default())
            .map_err(|d| d.rule),
        Err("set-role")
    );
    assert_eq!(gate.cache.len(), 0);
}

#[test]
fn the_gate_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Gate>();

    let gate = Arc::new(gate_with_capacity(1_000));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let gate = Arc::clone(&gate);
            std::thread::spawn(move || {
                for i in 0..300 {
                    let shared = gate.check("t", "SELECT * FROM orders WHERE id = $1",
                        Scope::ReadOnly,
                        &Limits::default(),
                    );
                    assert!(shared.is_ok());
                    let own = format!("SELECT {worker}, {i}; SET ROLE x");
                    let denial = gate.check("t", &own, Scope::ReadWrite, &Limits::default());
                    assert_eq!(denial.map_err(|d| d.rule), Err("set-role"));
                }
            })
        })
        .collect();
    for worker in workers {
        assert!(worker.join().is_ok());
    }
}

#[test]
fn inlined_values_share_one_analysis_by_shape() {
    let gate = gate_with_capacity(100);
    let ok = |sql: &str| gate.check("t", sql, Scope::ReadWrite, &Limits::default());
    assert!(ok("SELECT * FROM orders WHERE id = 1 AND note = 'a'").is_ok());
    assert!(gate.cache.has_shape_of("t", "SELECT * FROM orders WHERE id = 2 AND note = 'b'"));
    for n in 2..50 {
        assert!(ok(&format!("SELECT * FROM orders WHERE id = {n} AND note = 'v{n}'")).is_ok());
    }
    // Shape hits are not stored by text: the text map holds only the first.
    assert_eq!(gate.cache.len(), 1);
}

#[test]
fn a_shape_never_carries_a_verdict_across_different_code() {
    let gate = gate_with_capacity(100);
    let rw = |sql: &str| gate.check("t", sql, Scope::ReadWrite, &Limits::default());
    // Allowed shapes do not let different code through.
    assert!(rw("SELECT 'a', 1").is_ok());
    assert_eq!(rw("SELECT pg_read_file('a'), 1").map_err(|d| d.rule), Err("dangerous-function"));
    // Hiding code in what looks like a literal needs a backslash or dollar quote: no shape.
    assert!(rw("SELECT E'x', 'y' -- z").is_ok());
    let hidden = "SELECT E'\\'', pg_read_file('y') -- '";
    assert!(rw(hidden).is_err(), "the parser sees pg_read_file, and no shape short-cuts it");
    assert!(rw("SELECT $$ x $$, 1").is_ok());
    assert!(rw("SELECT $$ ' $$, pg_read_file('x')").is_err());
    // Denials are not shared by shape: each text is analyzed (and refused) on its own.
    assert!(rw("SELECT * FROM pg_authid WHERE rolname = 'a'").is_err());
    assert!(!gate.cache.has_shape_of("t", "SELECT * FROM pg_authid WHERE rolname = 'b'"));
    assert!(rw("SELECT * FROM pg_authid WHERE rolname = 'b'").is_err());
    // Rewritten texts are not shared by shape either: the rewrite is spliced at byte offsets,
    // which a literal of another length moves.
    let first = rw("SELECT 'a', relname FROM pg_class").map(|v| v.rewritten);
    assert_eq!(first.ok().flatten().as_deref(), Some("SELECT 'a', relname FROM tg_catalog.pg_class"));
    assert!(!gate.cache.has_shape_of("t", "SELECT 'bbbbbb', relname FROM pg_class"));
    let second = rw("SELECT 'bbbbbb', relname FROM pg_class").map(|v| v.rewritten);
    assert_eq!(second.ok().flatten().as_deref(), Some("SELECT 'bbbbbb', relname FROM tg_catalog.pg_class"));
    // Capped settings are never shared: the value is checked against the tenant's limits.
    let limits = Limits { max_statement_timeout_ms: Some(5_000), ..Limits::default() };
    assert!(gate.check("t", "SET statement_timeout = 1000", Scope::ReadWrite, &limits).is_ok());
    assert!(gate.check("t", "SET statement_timeout = 0", Scope::ReadWrite, &limits).is_err());
}

#[test]
fn a_write_shape_is_still_refused_to_a_read_only_principal() {
    let gate = gate_with_capacity(100);
    assert!(gate.check("t", "INSERT INTO orders (id) VALUES (1)", Scope::ReadWrite, &Limits::default()).is_ok());
    assert!(gate.cache.has_shape_of("t", "INSERT INTO orders (id) VALUES (2)"));
    let d = gate.check("t", "INSERT INTO orders (id) VALUES (2)", Scope::ReadOnly, &Limits::default());
    assert_eq!(d.map_err(|d| d.rule), Err("read-only"));
}

/// Defence in depth: a shape one tenant seeded never decides another tenant's statement.
#[test]
fn shapes_are_kept_apart_per_tenant() {
    let gate = gate_with_capacity(100);
    assert!(gate.check("acme", "SELECT * FROM orders WHERE id = 1", Scope::ReadWrite, &Limits::default()).is_ok());
    assert!(gate.cache.has_shape_of("acme", "SELECT * FROM orders WHERE id = 2"));
    assert!(!gate.cache.has_shape_of("globex", "SELECT * FROM orders WHERE id = 2"));
    // A tenant whose slug is a prefix of another's shares nothing with it either.
    assert!(!gate.cache.has_shape_of("acm", "SELECT * FROM orders WHERE id = 2"));
    assert!(gate.check("globex", "SELECT * FROM orders WHERE id = 2", Scope::ReadWrite, &Limits::default()).is_ok());
    assert!(gate.cache.has_shape_of("globex", "SELECT * FROM orders WHERE id = 3"));
}
