//! cairn's deterministic simulator: virtual time, seeded randomness, and network, disk and
//! process faults, driving the very actors the real runtime hosts.
//!
//! A [`World`] holds nodes, each with a [`SimDisk`] that outlives its crashes and a factory
//! that (re)builds its actors from that disk. It runs one event at a time from a queue
//! ordered by (virtual time, sequence number): a message arriving, a timer firing, a local
//! request, a [`Fault`]. Actors answer with effects, which the world carries out: sends go
//! through the [`network`] model (latency, jitter, bandwidth, loss, duplication, reordering,
//! partitions), replies and plaintext go to the scenario's [`LocalUser`]. Every event is
//! folded into a SHA-256 [`digest`](World::digest): the same seed and scenario give the
//! same digest on any machine.
//!
//! On top of the engine, [`chaos`] is the standard chaos scenario: a grid under every fault,
//! with a checked workload, and [`scenario`] a harness for named fault scenarios. Large
//! meshes under churn, for durability and repair studies, are the `cairn-research` crate's,
//! on this engine.

pub mod byzantine;
pub mod chaos;
mod counters;
pub mod disk;
mod engine;
mod error;
pub mod faults;
pub mod fingerprint;
mod host;
pub mod network;
pub mod queue;
pub mod scenario;
mod trace;
mod user;

pub use cairn_actors as actors;
pub use counters::{Counters, DropReason, Incident, IncidentKind};
pub use disk::{DiskUsage, SimDisk};
pub use engine::{World, WorldConfig};
pub use error::SimError;
pub use faults::{Fault, FaultKind, FaultPlan, FaultRates};
pub use host::{derive_rng, ActorSet, Factory};
pub use network::{LinkParams, NetworkConfig};
pub use user::{LocalUser, NoUser, UserIo};
