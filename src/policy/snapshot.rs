//! Reading the policy files as one consistent version while they may be changing.
//!
//! Operators replace policy files by in-place writes, by write-then-rename, and (in
//! Kubernetes) by swapping the `..data` symlink that every file leads through. A loader
//! that reads `model.conf` and then `policy.csv` can straddle such a change and compile
//! one version's model with another version's rules: a policy nobody wrote, which would
//! then serve decisions. [`read_consistent`] refuses such a read and tries again.
//!
//! A read is accepted when, for every file, the inode it read from is still the one its
//! path leads to after *all* files were read, its size and modification time did not
//! move while it was read, and the bytes read match its size. An atomic swap between
//! two reads therefore always shows (whichever version the directory ends on, one of
//! the files was read from the other), and so does a write landing during a read.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

/// Attempts before giving up on a directory that keeps changing under the reader.
const ATTEMPTS: u32 = 20;
/// Pause between attempts: short, a swap or a write is over in microseconds.
const RETRY_PAUSE: Duration = Duration::from_millis(5);

/// What identifies the content a path led to when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    fn of(m: &std::fs::Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// One file's outcome: its text, absent (not found), or an I/O error message.
pub type FileRead = Result<Option<String>, String>;

/// Read every path in `paths` (following symlinks) as one consistent version; see the
/// module doc. A missing file reads as `Ok(None)` and must still be missing after the
/// others were read. Returns `Err` with a reason if the files kept changing for every
/// attempt.
pub fn read_consistent<const N: usize>(paths: [&Path; N]) -> Result<[FileRead; N], String> {
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(RETRY_PAUSE);
        }
        let reads: [(FileRead, Option<Identity>); N] = paths.map(read_one);
        let stable = reads
            .iter()
            .zip(paths)
            .all(|((read, id), path)| match (read, id) {
                // Unstable during its own read.
                (Err(e), _) if e == UNSTABLE => false,
                (Ok(Some(_)), Some(id)) => std::fs::metadata(path).is_ok_and(|m| Identity::of(&m) == *id),
                (Ok(None), _) => {
                    matches!(std::fs::metadata(path), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
                }
                // An unreadable file is reported as such; it does not mix versions.
                (Err(_), _) => true,
                (Ok(Some(_)), None) => false,
            });
        if stable {
            return Ok(reads.map(|(r, _)| r));
        }
    }
    Err(format!(
        "the policy files kept changing while being read ({ATTEMPTS} attempts); the next change will load them"
    ))
}

const UNSTABLE: &str = "changed while being read";

fn read_one(path: &Path) -> (FileRead, Option<Identity>) {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (Ok(None), None),
        Err(e) => return (Err(format!("cannot read: {e}")), None),
    };
    let before = match file.metadata() {
        Ok(m) => Identity::of(&m),
        Err(e) => return (Err(format!("cannot read: {e}")), None),
    };
    let mut bytes = Vec::with_capacity(before.size as usize);
    if let Err(e) = file.read_to_end(&mut bytes) {
        return (Err(format!("cannot read: {e}")), None);
    }
    let after = match file.metadata() {
        Ok(m) => Identity::of(&m),
        Err(e) => return (Err(format!("cannot read: {e}")), None),
    };
    if before != after || bytes.len() as u64 != after.size {
        return (Err(UNSTABLE.into()), None);
    }
    match String::from_utf8(bytes) {
        Ok(text) => (Ok(Some(text)), Some(after)),
        Err(_) => (
            Err("cannot read: stream did not contain valid UTF-8".into()),
            Some(after),
        ),
    }
}

/// A SHA-256 over what `dir` holds now: each policy file's bytes (following symlinks, a
/// missing or unreadable file marked as such) and the directory the path resolves to.
/// The reload runner compares it periodically with the one taken before the latest
/// load, a safety net for changes the file watcher did not report.
pub fn fingerprint(dir: &Path) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    match std::fs::canonicalize(dir) {
        Ok(real) => h.update(real.as_os_str().as_encoded_bytes()),
        Err(_) => h.update(b"\0unresolvable"),
    }
    for file in crate::policy::dir_files(dir) {
        h.update(file.as_os_str().as_encoded_bytes());
        match std::fs::read(&file) {
            Ok(bytes) => {
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            Err(e) => {
                h.update(b"\0error");
                h.update(e.kind().to_string().as_bytes());
            }
        }
    }
    h.finalize().into()
}
