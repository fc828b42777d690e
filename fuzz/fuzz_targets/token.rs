//! libFuzzer target: see [`baton_fuzz::token`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::token(data));
