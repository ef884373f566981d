//! libFuzzer entry point for the `line_only` checks in `weft_fuzz`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| weft_fuzz::line_only(data));
