//! The actors' test kit, one of each, for this crate's tests and (with the `testing` feature)
//! for the crates that implement the store traits or host the actors:
//!
//! - [`stores`]: the store contract as test suites, run against every implementation.
//! - [`grid`]: one operation (upload, download, check, repair) against real storage servers
//!   with faults, in virtual time.
//! - [`driven`]: one server actor driven by hand, an input at a time.
//! - [`flaky`]: stores that fail on demand.
//! - [`strategies`]: the protocol's proptest strategies.
//!
//! Nothing here is built into a node: the feature is a dev-dependency only.

pub mod driven;
pub mod flaky;
pub mod grid;
pub mod stores;
pub mod strategies;

pub use driven::Driven;
pub use flaky::{FlakyJournal, FlakyStore, JournalFault};
pub use grid::{Fault, Grid, TestFile};
pub use stores::{journal_suite, share_store_suite, ShareStoreSuite};
