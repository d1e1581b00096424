//! The `furl` fuzz target: arbitrary bytes through `cairn::fuzz::furl`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn::fuzz::furl(data));
