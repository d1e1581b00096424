//! The `ueb` fuzz target: arbitrary bytes through `cairn::fuzz::ueb`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn::fuzz::ueb(data));
