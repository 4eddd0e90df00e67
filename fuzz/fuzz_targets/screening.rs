//! `cargo +nightly fuzz run screening`: see `zentrale::fuzzing::screening`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zentrale::fuzzing::screening::run(data));
