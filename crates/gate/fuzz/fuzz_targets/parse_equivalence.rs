//! The gate's parse (libpg_query's JSON, converted to protobuf by `transcode`) must give the
//! same tree, or the same error, as `pg_query::parse` (libpg_query's own protobuf) for any
//! UTF-8 input of moderate size (deep nesting is the gate's `nesting` guard's job).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else { return };
    if sql.len() > 400 {
        return;
    }
    assert!(tg_gate::fuzzing::same_tree_as_pg_query(sql), "{sql:?}");
});
