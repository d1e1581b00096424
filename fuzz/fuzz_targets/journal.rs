//! The `journal` fuzz target: arbitrary bytes through `cairn::fuzz::journal`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn::fuzz::journal(data));
