//! The parts of the `cairn` binary other crates use: its configuration file (for the fuzz
//! targets in the root package, which feed `cairn.toml` parsing arbitrary text). The binary
//! itself is `main.rs`.

pub mod config;
