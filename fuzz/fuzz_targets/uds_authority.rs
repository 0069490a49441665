//! The Unix socket's `:authority` rewriter (`warden::api::uds_authority`) on any bytes,
//! cut into any pieces: never a panic, the same output however the bytes arrive, the
//! bytes unchanged when nothing was patched, and a patched stream needs no second patch.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use warden::api::uds_authority::Rewriter;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn run(wire: &[u8], cuts: &[usize]) -> (Vec<u8>, Rewriter) {
    let mut r = Rewriter::new();
    let (mut raw, mut out) = (BytesMut::new(), BytesMut::new());
    let mut at = 0;
    for &c in cuts.iter().chain([&wire.len()]) {
        let c = c.clamp(at, wire.len());
        raw.extend_from_slice(&wire[at..c]);
        at = c;
        r.feed(&mut raw, &mut out);
    }
    r.finish(&mut raw, &mut out);
    (out.to_vec(), r)
}

fuzz_target!(|data: &[u8]| {
    // First octet: how to cut; the rest follows the preface (most inputs are frames).
    let Some((&seed, rest)) = data.split_first() else { return };
    let mut wire = PREFACE.to_vec();
    wire.extend_from_slice(rest);
    let mut cuts: Vec<usize> = (1..=usize::from(seed % 8)).map(|i| i * wire.len() / 8 + usize::from(seed)).collect();
    cuts.sort_unstable();
    let (whole, r) = run(&wire, &[]);
    let (pieces, _) = run(&wire, &cuts);
    assert_eq!(whole, pieces, "output depends on how the bytes arrive");
    if r.patched_blocks() == 0 {
        assert_eq!(whole, wire, "bytes changed with nothing patched");
    } else if !r.passing_through() {
        let (again, r2) = run(&whole, &[]);
        assert_eq!(r2.patched_blocks(), 0, "a patched stream was patched again");
        assert_eq!(again, whole);
    }
});
