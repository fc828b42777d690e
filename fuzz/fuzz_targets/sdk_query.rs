//! libFuzzer target: see [`baton_fuzz::sdk_query`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::sdk_query(data));
