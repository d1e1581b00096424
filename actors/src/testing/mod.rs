//! The actors' test kit, for this crate's tests and (with the `testing` feature) for the
//! crates that implement the store traits or host the actors:
//!
//! - [`stores`]: the store contract as test suites, run against every implementation.
//!
//! Nothing here is built into a node: the feature is a dev-dependency only.

pub mod stores;

pub use stores::{journal_suite, share_store_suite, ShareStoreSuite};
