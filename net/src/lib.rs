//! cairn's real runtime: hosts the actors on tokio, the authenticated TCP transport and the
//! on-disk stores.
//!
//! Built so far: the on-disk stores behind the actors' storage traits —
//! [`share_store::DiskShareStore`] (shares as files, in Tahoe's directory layout, committed by
//! an atomic, durable rename) and [`journal::FileJournal`] (an append-only, checksummed,
//! fsynced log that cuts a torn tail). Not yet built: the tokio host and the transport.

pub mod journal;
pub mod share_store;

pub use cairn_actors as actors;
pub use journal::FileJournal;
pub use share_store::DiskShareStore;
