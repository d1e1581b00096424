//! The `share` fuzz target: arbitrary bytes through `cairn::fuzz::share`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn::fuzz::share(data));
