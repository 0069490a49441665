#![no_main]
//! See `warden::fuzzing::matcher`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    warden::fuzzing::matcher(data);
});
