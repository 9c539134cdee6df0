//! Arbitrary bytes as a model bundle and as a training checkpoint; see `adaftr_fuzz::bundle`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| adaftr_fuzz::bundle(data));
