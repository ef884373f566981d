//! libFuzzer entry point for the `int_prefixed` checks in `weft_fuzz`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| weft_fuzz::int_prefixed(data));
