//! The `dirnode` fuzz target: arbitrary bytes through `cairn::fuzz::dirnode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn::fuzz::dirnode(data));
