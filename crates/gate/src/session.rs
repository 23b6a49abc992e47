//! Session state: which statements leave state on the backend session after their
//! transaction ends, for tenants in transaction pooling mode.
//!
//! In transaction mode a backend serves one client for one transaction and then another
//! client of the same tenant role, so a statement whose effect outlives its transaction would
//! be carried to whichever client runs next (or lost, if the client's next transaction lands
//! on another backend). [`state_of`] names such a statement; [`crate::Gate::check`] refuses it
//! when [`crate::Limits::transaction_mode`] is set, with SQLSTATE 0A000 and the way out
//! (session mode). Resets (`RESET`, `RESET ALL`, `DISCARD …`) are classified too, and marked
//! [`SessionState::reset`]: they only take a session back towards its defaults, which the wire
//! door re-establishes for the client after them (`tg_proxy` `frontend::statements`), so
//! transaction mode lets them through (asyncpg's pool runs `RESET ALL` on every release). A door
//! that keeps a backend's session between statements still sees them as session state.
//!
//! It owns only the classification. It never decides on its own (the caller's limits do),
//! and never looks at literal values.

use pg_query::protobuf::{VariableSetKind, VariableSetStmt};
use pg_query::NodeEnum;

use crate::Denial;

/// SQLSTATE `feature_not_supported`: the statement is fine, the pooling mode cannot carry it.
const SQLSTATE: &str = "0A000";

/// PostgreSQL's `CURSOR_OPT_HOLD` (parsenodes.h).
const CURSOR_OPT_HOLD: i32 = 0x0020;

/// What a statement leaves behind on the session, and how to do without it, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionState {
    pub what: &'static str,
    pub instead: &'static str,
    /// Only resets the session towards its defaults (`RESET`, `DISCARD`): allowed in
    /// transaction mode, where the wire door restores the client's own settings after it.
    pub reset: bool,
}

const SET: SessionState = SessionState {
    what: "SET (a session-level setting)",
    instead: "use SET LOCAL inside a transaction block, or set it at connect time as a startup parameter",
    reset: false,
};

const RESET: SessionState = SessionState {
    what: "RESET",
    instead: "",
    reset: true,
};

/// The session state a top-level statement leaves, if any.
pub(crate) fn state_of(node: &NodeEnum) -> Option<SessionState> {
    match node {
        NodeEnum::VariableSetStmt(s) => set_state(s),
        NodeEnum::ListenStmt(_) => Some(SessionState {
            what: "LISTEN",
            instead: "notifications reach a session, not a transaction; listen from a session-mode connection",
            reset: false,
        }),
        NodeEnum::DeclareCursorStmt(d) if d.options & CURSOR_OPT_HOLD != 0 => Some(SessionState {
            what: "DECLARE … WITH HOLD",
            instead: "declare the cursor WITHOUT HOLD and fetch from it inside one transaction",
            reset: false,
        }),
        NodeEnum::PrepareStmt(_) => Some(SessionState {
            what: "PREPARE",
            instead: "use your driver's prepared statements (the extended protocol's named statements), which work in transaction mode",
            reset: false,
        }),
        NodeEnum::DeallocateStmt(_) => Some(SessionState {
            what: "DEALLOCATE",
            instead: "close prepared statements through your driver (the extended protocol's Close), which works in transaction mode",
            reset: false,
        }),
        // DISCARD ALL also drops the client's named statements; the wire door forgets them too.
        NodeEnum::DiscardStmt(_) => Some(SessionState { what: "DISCARD", ..RESET }),
        _ => None,
    }
}

/// A SET or RESET outlives its transaction unless it is `SET LOCAL` or `SET TRANSACTION …`;
/// a RESET is marked as a reset.
/// `set_config(name, value, is_local)` arrives here as the SET it amounts to.
pub(crate) fn set_state(s: &VariableSetStmt) -> Option<SessionState> {
    if s.is_local {
        return None;
    }
    let kind = VariableSetKind::try_from(s.kind).unwrap_or(VariableSetKind::Undefined);
    if matches!(kind, VariableSetKind::VarReset | VariableSetKind::VarResetAll) {
        return Some(RESET);
    }
    if kind == VariableSetKind::VarSetMulti && s.name.to_ascii_lowercase().starts_with("transaction") {
        return None;
    }
    Some(SET)
}

/// The denial for `state` in transaction mode.
pub(crate) fn denial(state: SessionState) -> Denial {
    Denial {
        rule: "transaction-mode",
        sqlstate: SQLSTATE,
        message: format!(
            "tenantgate: {} is not allowed in transaction pooling mode (rule transaction-mode): its effect would outlive \
             the transaction, and the next transaction may run on another backend; {}. For session state, use a tenant \
             in session mode (gateway.pool_mode = \"session\")",
            state.what, state.instead
        ),
    }
}
