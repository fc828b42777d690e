//! libFuzzer target: see [`baton_fuzz::credentials`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::credentials(data));
