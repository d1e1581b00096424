//! cairn: a decentralized, least-authority storage mesh after the design of Tahoe-LAFS.
//!
//! This root package re-exports the workspace's crates under one name and hosts the
//! cross-crate tests (`tests/`), benchmarks (`benches/`) and the bodies of the fuzz targets
//! ([`fuzz`], run by `fuzz/`). See `README.md` and
//! `../shared/design.md` for the architecture.

pub mod fuzz;

pub use cairn_actors as actors;
pub use cairn_codec as codec;
pub use cairn_net as net;
pub use cairn_research as research;
pub use cairn_sim as sim;
