//! Mobility: operations that take a tenant's data somewhere, each a resumable state
//! machine in `tg.operations`: erasure (`erase`), online moves (`moves`, over
//! PostgreSQL's logical replication in `replication`), and `rebalance`, which plans moves
//! that even out pooled bytes across a region's servers; export, import and clone of a
//! tenant's rows through a portable archive (`archive`: the file format; `export`: one
//! consistent snapshot; `import`: restore, clone or replace), and point-in-time restore of one
//! tenant from pgBackRest (`restore`, in a `scratch` cluster). `rows` holds the row-level
//! work they share.

pub mod archive;
pub mod erase;
pub mod export;
pub mod import;
pub mod moves;
pub mod rebalance;
pub mod replication;
pub mod restore;
pub mod rows;
pub mod scratch;
