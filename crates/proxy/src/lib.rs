//! placeholder so the workspace builds while the proxy crate is written
