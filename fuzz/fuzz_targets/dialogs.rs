//! `cargo +nightly fuzz run dialogs`: see `zentrale::fuzzing::dialogs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zentrale::fuzzing::dialogs::run(data));
