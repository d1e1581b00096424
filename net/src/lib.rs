//! cairn's real runtime: hosts the actors on tokio, the authenticated TCP transport and the
//! on-disk stores.
//!
//! - [`host`]: each actor in a tokio task with a bounded mailbox, timers on `tokio::time`,
//!   local requests through [`host::LocalHandle`]s, and messages to other nodes through a
//!   pluggable [`host::Outbound`] (with [`host::LocalNetwork`] joining nodes in one process,
//!   for tests).
//! - [`transport`]: the real [`host::Outbound`]: one mutually authenticated TLS 1.3
//!   connection per pair of nodes, addressed by [`Furl`]s that pin the peer's key and carry
//!   the secret that lets a caller in; length-prefixed postcard frames; reconnection with
//!   backoff; bounded per-peer queues.
//! - The on-disk stores behind the actors' storage traits: [`share_store::DiskShareStore`]
//!   (shares as files, in Tahoe's directory layout, committed by an atomic, durable rename)
//!   and [`journal::FileJournal`] (an append-only, checksummed, fsynced log that cuts a torn
//!   tail).
//!
//! Built with `--cfg madsim`, the same code runs on madsim's simulated TCP and clock (the
//! `tokio` it depends on is `madsim-tokio`, which is plain tokio otherwise): see
//! `tests/madsim_grid.rs`.

mod entropy;
pub mod host;
pub mod journal;
pub mod share_store;
pub mod transport;

pub use cairn_actors as actors;
pub use host::{LocalHandle, LocalNetwork, Node, Outbound};
pub use journal::FileJournal;
pub use share_store::DiskShareStore;
pub use transport::{Furl, PeerState, PeerStatus, Transport, TransportConfig, TransportError};
