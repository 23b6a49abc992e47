//! Mobility: operations that take a tenant's data somewhere: erasure now; move,
//! export and import build on the same resumable-operation pattern.

pub mod erase;
