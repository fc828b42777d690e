//! libFuzzer target: see [`baton_fuzz::provisioning`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::provisioning(data));
