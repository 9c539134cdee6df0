//! Arbitrary bytes as a CSV file and as rows under a known header; see `adaftr_fuzz::csv`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| adaftr_fuzz::csv(data));
