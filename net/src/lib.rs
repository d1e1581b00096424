//! cairn's real runtime: hosts the actors on tokio, the authenticated TCP transport and the
//! on-disk stores.
//!
//! Built so far: the on-disk stores behind the actors' storage traits —
//! [`share_store::DiskShareStore`] (shares as files, in Tahoe's directory layout, committed by
//! an atomic, durable rename) and [`journal::FileJournal`] (an append-only, checksummed,
//! fsynced log that cuts a torn tail) — and the actor [`host`]: each actor in a tokio task
//! with a bounded mailbox, timers on `tokio::time`, local requests through
//! [`host::LocalHandle`]s, and messages to other nodes through a pluggable
//! [`host::Outbound`] (with [`host::LocalNetwork`] joining nodes in one process, for tests).
//! Not yet built: the authenticated TCP transport.

pub mod host;
pub mod journal;
pub mod share_store;

pub use cairn_actors as actors;
pub use host::{LocalHandle, LocalNetwork, Node, Outbound};
pub use journal::FileJournal;
pub use share_store::DiskShareStore;
