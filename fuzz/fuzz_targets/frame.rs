//! The `frame` fuzz target: arbitrary bytes through `cairn::fuzz::transport_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cairn::fuzz::transport_frame(data));
