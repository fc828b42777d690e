//! libFuzzer target: see [`baton_fuzz::orchestrator`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| baton_fuzz::orchestrator(data));
