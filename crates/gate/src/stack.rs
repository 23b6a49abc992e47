//! Runs parser work on a stack deep enough for its input, and turns panics into `None`.
//!
//! Parsing recurses once per nesting level of the statement: libpg_query's parser and JSON
//! output in C, then `transcode`, prost's decode, the tree walk and the tree's drop in Rust.
//! Measured in a release build, a left-deep chain such as `a+a+a+…` (one level per two bytes
//! of SQL, the densest nesting found) takes about 2.2 KiB of stack per level, 1.1 KiB per
//! input byte: a 2 KiB statement would already need 2 MiB, and a stack overflow aborts the
//! whole process. Since the nesting depth is bounded by the input length:
//! - short inputs (at most [`INLINE_MAX_LEN`] bytes, under 600 KiB of stack) run inline, on the
//!   caller's stack, which must have that much to spare (a tokio worker's 2 MiB does);
//! - longer ones run on a helper thread whose stack is sized from the input length with a
//!   safety factor of almost 2. The stack is reserved, not committed: only the pages a deeply
//!   nested statement really uses are touched. If even the reservation fails (a statement of
//!   many MiB on a small machine), the caller gets `None` and refuses the statement.
//!
//! The work is also wrapped in `catch_unwind`: pg_query's result helpers cast nodes with
//! `panic!` on a mismatch, and a panic must become a refusal, never a crashed session.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Inputs up to this length run on the caller's stack: at most 256 levels, about 570 KiB in
/// a release build. Debug builds (the test suite) spend about fourteen times more stack per
/// level (measured on pg_query 18's parse of `a+a+…` on threads of decreasing stack size:
/// 15.3 KiB per input byte, nearly all in prost's decode, against 1.1 KiB in a release
/// build), so they parse inline only up to 64 bytes (about 1 MiB).
pub(crate) const INLINE_MAX_LEN: usize = if cfg!(debug_assertions) { 64 } else { 512 };
/// Stack reserved per input byte on the helper thread: about twice what was measured (see
/// above).
const STACK_PER_BYTE: usize = if cfg!(debug_assertions) { 32 << 10 } else { 2 << 10 };
/// Stack reserved on the helper thread on top of the per-byte share.
const STACK_BASE: usize = 1 << 20;

/// Runs `f`, which parses an input of `input_len` bytes, where its recursion cannot overflow.
/// `None` if `f` panicked or the helper thread could not be started.
pub(crate) fn run<T: Send>(input_len: usize, f: impl FnOnce() -> T + Send) -> Option<T> {
    if input_len <= INLINE_MAX_LEN {
        return catch_unwind(AssertUnwindSafe(f)).ok();
    }
    let stack = STACK_BASE.saturating_add(input_len.saturating_mul(STACK_PER_BYTE));
    std::thread::scope(|scope| {
        let helper = std::thread::Builder::new()
            .name("tg-gate-parse".to_owned())
            .stack_size(stack);
        helper.spawn_scoped(scope, f).ok()?.join().ok()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn deep_trees_parse_on_the_helper_thread() {
        // Past the inline length, parsed on the helper thread.
        let sql = format!("SELECT {}", vec!["a"; 2_000].join("+"));
        assert_eq!(super::run(sql.len(), || crate::parse::parse(&sql).is_ok()), Some(true));
        // Deeper than the nesting guard allows, so only the stack sizing protects this parse;
        // libpg_query refuses it cleanly ("stack depth limit exceeded" or "parse tree is nested
        // too deeply to serialize to protobuf", depending on the build).
        let sql = format!("SELECT {}", vec!["a"; 20_000].join("+"));
        let result = super::run(sql.len(), || crate::parse::parse(&sql).map_err(|e| e.to_string()));
        assert!(matches!(&result, Some(Err(m)) if m.contains("stack depth") || m.contains("nested too deeply")), "{result:?}");
    }

    #[test]
    fn panics_become_none() {
        assert_eq!(super::run(1, || panic!("boom")), None::<()>);
        assert_eq!(super::run(100_000, || panic!("boom")), None::<()>);
    }
}
