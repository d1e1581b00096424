//! cairn's research simulator (`cairn sim research`): large meshes for people who study how a storage mesh behaves at
//! scale — how many files survive months of churn at 3-of-10 or 5-of-15, what repair costs in
//! bandwidth, how evenly placement spreads shares.
//!
//! A run ([`run`]) builds a [`cairn_sim::World`] of real storage servers
//! ([`cairn_actors::storage::StorageServer`]) over a size-only share store
//! ([`ledger::SizeStore`]) and one research client ([`client::ResearchClient`]) that speaks
//! the real protocol to them. The client uploads every file (all nodes up), then the churn
//! phase begins: nodes go down and come back ([`churn`]), leave for good and are replaced,
//! zones fail together; meanwhile the client downloads random files at random times and, with
//! repair on, checks every file once per interval and repairs those below the threshold.
//! Every random choice comes from the scenario's seed: the same [`Scenario`] gives the same
//! [`Summary`] (but for the wall time) and the same time series.
//!
//! What is real: the storage server actor, the protocol messages and their request/answer
//! flow with timeouts, the network model's latency, crashes and restarts of nodes as the
//! engine does them, Tahoe's placement rule (permuted ring, one share per server, servers of
//! happiness). What is synthetic: share payloads (sizes, not bytes — nothing is encoded,
//! hashed or decoded), the ring's hash (64-bit, not SHA-256; see [`ring`]), and the
//! introducer (the client knows the members as a perfect introducer would tell it).
//!
//! Outputs ([`output`]): `summary.json`, `timeseries.csv`, and plots as PNG and SVG.

pub mod churn;
pub mod client;
pub mod ledger;
pub mod output;
pub mod plot;
pub mod ring;
mod runner;
pub mod scenario;
pub mod series;
pub mod summary;

pub use runner::{client_addr, run, Outcome, Progress};
pub use scenario::{Churn, Departures, Repair, Scenario, ScenarioError, Zones};
pub use series::Sample;
pub use summary::{binomial_tail, Summary};
