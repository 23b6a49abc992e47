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
        let first = gate.check(sql, Scope::ReadWrite, &Limits::default());
        let second = gate.check(sql, Scope::ReadWrite, &Limits::default());
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
        .check(sql, Scope::ReadWrite, &Limits::default())
        .is_ok());
    assert_eq!(
        gate.check(sql, Scope::ReadOnly, &Limits::default())
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
            .check(&sql, Scope::ReadWrite, &Limits::default())
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
            .check(&sql, Scope::ReadWrite, &Limits::default())
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
            assert!(gate.check(hot, Scope::ReadOnly, &Limits::default()).is_ok());
        }
        let one_off = format!("SELECT * FROM orders WHERE note = 'literal {i}'");
        assert!(gate
            .check(&one_off, Scope::ReadOnly, &Limits::default())
            .is_ok());
    }
    assert!(gate.cache.contains(hot));
}

#[test]
fn capacity_zero_disables_caching() {
    let gate = gate_with_capacity(0);
    assert!(gate
        .check("SELECT 1", Scope::ReadWrite, &Limits::default())
        .is_ok());
    assert_eq!(
        gate.check("SET ROLE x", Scope::ReadWrite, &Limits::default())
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
                    let shared = gate.check(
                        "SELECT * FROM orders WHERE id = $1",
                        Scope::ReadOnly,
                        &Limits::default(),
                    );
                    assert!(shared.is_ok());
                    let own = format!("SELECT {worker}, {i}; SET ROLE x");
                    let denial = gate.check(&own, Scope::ReadWrite, &Limits::default());
                    assert_eq!(denial.map_err(|d| d.rule), Err("set-role"));
                }
            })
        })
        .collect();
    for worker in workers {
        assert!(worker.join().is_ok());
    }
}
