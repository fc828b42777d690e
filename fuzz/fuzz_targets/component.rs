//! libFuzzer target: see [`baton_fuzz::component`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::component(data));
