//! Mobility: operations that take a tenant's data somewhere, each a resumable state
//! machine in `tg.operations`: erasure (`erase`) and online moves (`moves`, over
//! PostgreSQL's logical replication in `replication`), and `rebalance`, which plans moves
//! that even out pooled bytes across a region's servers. `rows` holds the row-level work
//! they share.

pub mod erase;
pub mod moves;
pub mod rebalance;
pub mod replication;
pub mod rows;
