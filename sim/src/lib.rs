//! cairn's deterministic simulator: virtual time, seeded randomness, network, disk and process
//! faults, workloads and invariant checks, driving the same actors the real runtime hosts.
//!
//! Not yet built: this crate is laid out so the workspace has its final shape.

pub use cairn_actors as actors;
