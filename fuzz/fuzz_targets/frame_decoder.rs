//! Fuzz target: see `doorstep_fuzz::checks::frame_decoder` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| doorstep_fuzz::checks::frame_decoder(data));
