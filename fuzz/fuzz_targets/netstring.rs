//! libFuzzer entry point for the `netstring` checks in `weft_fuzz`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| weft_fuzz::netstring(data));
