//! Fuzz target: see `doorstep_fuzz::checks::server_messages` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| doorstep_fuzz::checks::server_messages(data));
