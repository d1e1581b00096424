//! cairn's mesh logic as sans-IO actors, and the protocol messages between them.
//!
//! Each actor ([`actor::Actor`]) is a state machine: the host hands it an input (start, a
//! message, a timer, a local request) with a [`actor::Context`], and the actor answers only
//! by recording effects (send, set a timer, reply, spawn, stop). Nothing here touches
//! sockets, files, clocks or threads, or draws an unseeded random number: the simulator
//! (`sim`) and the real runtime (`net`) host the very same code.
//!
//! The actors: [`introducer`], [`storage`] server, [`vdrive`], and the [`client`], which
//! spawns an [`uploader`] or a [`downloader`] per operation, and a [`checker`] or a
//! [`repairer`] per check or repair of a file's health. Their messages are in
//! [`protocol`]; their durable state goes through the traits in [`store`].
//!
//! Shared by those actors, one of each: the [`requests`] table (ids, deadlines, one sweep
//! timer, answers only from whom was asked), the [`reader`] that proves one share against a
//! cap, and the survey of who holds which shares.

pub mod actor;
pub mod checker;
pub mod client;
pub mod downloader;
pub mod ids;
pub mod introducer;
pub mod local;
pub mod memstore;
pub mod mutants;
pub mod placement;
pub mod protocol;
pub mod reader;
pub mod repairer;
pub mod replies;
pub mod requests;
pub mod storage;
pub mod store;
pub(crate) mod survey;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod uploader;
pub mod vdrive;

pub use actor::{Actor, Addr, Context, Effect, Input, OpId, Service, Time, TimerId};
pub use cairn_codec as codec;
pub use ids::{NodeId, NodeKey, ShareNum, StorageIndex};
pub use protocol::{Message, Request, RequestId, Response};
