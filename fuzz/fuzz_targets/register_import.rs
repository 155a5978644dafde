//! Fuzz target: see `doorstep_fuzz::checks::register_import` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| doorstep_fuzz::checks::register_import(data));
