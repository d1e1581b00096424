//! The `cap` fuzz target: arbitrary bytes through `cairn::fuzz::cap`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn::fuzz::cap(data));
