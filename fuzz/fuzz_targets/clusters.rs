//! libFuzzer target: see [`baton_fuzz::clusters`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::clusters(data));
