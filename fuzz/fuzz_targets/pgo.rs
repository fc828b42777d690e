//! libFuzzer target: see [`baton_fuzz::pgo`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::pgo(data));
