//! Every input kept under `fuzz/corpus/<target>/` (the seeds, and any input that ever
//! crashed a target, added once fixed) replayed through the same entry points the
//! cargo-fuzz targets call, so CI re-checks them without libFuzzer. A panic fails the test.

use std::path::Path;

/// Replays `target`'s corpus; every whole seed file must reach a decision (a seed that
/// stops at the parser fuzzes nothing past it), prefixes only must not panic.
fn replay(target: &str, run: fn(&[u8]) -> bool) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        assert!(
            run(&data),
            "{}: the seed does not reach a decision",
            path.display()
        );
        // Every prefix too: truncated files are what the loader meets mid-save.
        for cut in (0..data.len()).step_by((data.len() / 64).max(1)) {
            let _ = run(&data[..cut]);
        }
        n += 1;
    }
    assert!(n >= 3, "{target}: only {n} corpus inputs in {}", dir.display());
    eprintln!("{target}: {n} corpus inputs replayed");
}

#[test]
fn policy_parser_corpus() {
    replay("policy_parser", warden::fuzzing::policy_parser);
}

#[test]
fn matcher_corpus() {
    replay("matcher", warden::fuzzing::matcher);
}

#[test]
fn request_corpus() {
    replay("request", warden::fuzzing::request);
}
