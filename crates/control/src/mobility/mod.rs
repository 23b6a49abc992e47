//! Mobility: operations that take a tenant's data somewhere, each a resumable state
//! machine in `tg.operations`: erasure (`erase`) and online moves (`moves`, over
//! PostgreSQL's logical replication in `replication`). `rows` holds the row-level work
//! they share.

pub mod erase;
pub mod moves;
pub mod replication;
pub mod rows;
