//! Gate::check on the hot path: a cached statement (a hash lookup) and new statements (parse,
//! walk, classify, insert). Goals: cached ≤ 2 µs, new ≤ 50 µs for a typical ~300-char SELECT.

use std::hint::black_box;

/// As in the tenantgate binary, which is where the gate runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion};
use tg_gate::{fingerprint, Gate, GateConfig, Limits, Scope};

/// The tenant the statements are checked for (shapes are kept per tenant).
const TENANT: &str = "trattoria-roma";

/// A typical application query: ~300 characters, three joins, parameters.
const SELECT_300: &str =
    "SELECT o.id, o.created_at, o.total, c.name AS customer, p.title, li.quantity \
FROM orders o JOIN customers c ON c.tenant_id = o.tenant_id AND c.id = o.customer_id \
JOIN line_items li ON li.order_id = o.id JOIN products p ON p.id = li.product_id \
WHERE o.created_at >= $1 AND o.status = ANY($2) ORDER BY o.created_at DESC LIMIT 50";

fn bench(c: &mut Criterion) {
    assert!(
        (280..=340).contains(&SELECT_300.len()),
        "{}",
        SELECT_300.len()
    );
    let gate = Gate::new(GateConfig::default());
    let limits = Limits {
        max_statement_timeout_ms: Some(30_000),
        max_idle_in_transaction_ms: Some(60_000),
    };
    assert!(gate.check(TENANT, SELECT_300, Scope::ReadOnly, &limits).is_ok());

    c.bench_function("check/cached_select_300", |b| {
        b.iter(|| gate.check(TENANT, black_box(SELECT_300), Scope::ReadOnly, &limits))
    });

    // Each of these checks a text the gate has not seen: `text(n)` for a fresh n every time.
    let mut n = 0u64;
    let mut check_new = |name: &str, text: &dyn Fn(u64) -> String| {
        c.bench_function(name, |b| {
            b.iter_batched(
                || {
                    n += 1;
                    text(n)
                },
                |sql| gate.check(TENANT, &sql, Scope::ReadOnly, &limits),
                criterion::BatchSize::SmallInput,
            )
        });
    };

    check_new("check/new_select_300", &|n| format!("{SELECT_300} /* {n} */"));
    // The example app's own point read (bench/pgbench/select_only.sql), ~150 characters.
    check_new("check/new_select_app_150", &|n| format!("SELECT order_id, status, table_no, total, placed_at FROM orders WHERE order_id = ('00000000-0000-4000-9000-' || lpad($1::text, 12, '0'))::uuid /* {n} */"));
    check_new("check/new_select_short", &|n| format!("SELECT * FROM orders WHERE id = $1 /* {n} */"));

    // New text, known shape: inlined values (simple query protocol) hit the shape cache.
    let shaped = |n: u64| format!("SELECT o.order_id, o.total FROM orders o JOIN branches b USING (tenant_id, branch_id) WHERE o.table_no = {n} AND b.country = 'IT' AND o.status = 'open{n}' ORDER BY o.placed_at DESC LIMIT 20");
    assert!(gate.check(TENANT, &shaped(0), Scope::ReadOnly, &limits).is_ok());
    check_new("check/new_values_known_shape", &shaped);
    // Longer than 512 bytes: lexer pass for the nesting guard, parse on a helper thread.
    let select_2k = [SELECT_300; 6].join(" UNION ALL ");
    check_new("check/new_select_2k", &|n| format!("{select_2k} /* {n} */"));

    // The same across 1,000 tenants, each with the shape seeded: the per-tenant key costs a
    // prefix in the key buffer and 1,000 entries in the map instead of one.
    let tenants: Vec<String> = (0..1000).map(|i| format!("tenant-{i:04}")).collect();
    for t in &tenants {
        assert!(gate.check(t, &shaped(0), Scope::ReadOnly, &limits).is_ok());
    }
    let mut k = 0usize;
    c.bench_function("check/new_values_known_shape_1000_tenants", |b| {
        b.iter_batched(
            || {
                k += 1;
                (k % tenants.len(), shaped(k as u64 + 1))
            },
            |(t, sql)| gate.check(&tenants[t], &sql, Scope::ReadOnly, &limits),
            criterion::BatchSize::SmallInput,
        )
    });


    // The library call alone, for comparison: the gate's own work is the difference.
    let mut m = 0u64;
    c.bench_function("pg_query_parse/select_300", |b| {
        b.iter_batched(
            || {
                m += 1;
                format!("{SELECT_300} /* {m} */")
            },
            |sql| pg_query::parse(&sql, pg_query::ParserOptions::DEFAULT).is_ok(),
            criterion::BatchSize::SmallInput,
        )
    });

    c.bench_function("fingerprint/select_300", |b| {
        b.iter(|| fingerprint(black_box(SELECT_300)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
