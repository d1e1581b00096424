//! The `config` fuzz target: arbitrary bytes through `cairn::fuzz::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn::fuzz::config(data));
