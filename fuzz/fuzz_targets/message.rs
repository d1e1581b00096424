//! The `message` fuzz target: arbitrary bytes through `cairn::fuzz::message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn::fuzz::message(data));
