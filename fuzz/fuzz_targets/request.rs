#![no_main]
//! See `warden::fuzzing::request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    warden::fuzzing::request(data);
});
