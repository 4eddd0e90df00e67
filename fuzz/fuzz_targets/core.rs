//! `cargo +nightly fuzz run core`: see `zentrale::fuzzing::core`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zentrale::fuzzing::core::run(data));
