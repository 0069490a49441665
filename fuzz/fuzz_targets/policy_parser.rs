#![no_main]
//! See `warden::fuzzing::policy_parser`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    warden::fuzzing::policy_parser(data);
});
