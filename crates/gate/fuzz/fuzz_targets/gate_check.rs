//! Gate::check (both scopes, with caps) and fingerprint on arbitrary UTF-8: must never panic,
//! crash or hang, and every denial must name its rule.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tg_gate::{fingerprint, Gate, GateConfig, Limits, Scope};

static GATE: OnceLock<Gate> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else { return };
    let gate = GATE.get_or_init(|| Gate::new(GateConfig { cache_capacity: 256, ..GateConfig::default() }));
    let limits = Limits { max_statement_timeout_ms: Some(30_000), max_idle_in_transaction_ms: Some(60_000) };
    for scope in [Scope::ReadWrite, Scope::ReadOnly] {
        if let Err(denial) = gate.check("t", sql, scope, &limits) {
            assert!(denial.message.contains(&format!("(rule {})", denial.rule)), "{denial:?}");
        }
    }
    assert_eq!(fingerprint(sql).len(), 16);
});
