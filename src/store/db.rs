//! The redb database handle, reopened after an I/O error.
//!
//! After a failed write (a full disk, a failing device) redb refuses every later write
//! ("a previous I/O error occurred") until the database is closed and opened again, and
//! with it every read of a page it has not cached. The store marks such a failure with
//! [`Db::note`], which at once closes and reopens the file (redb repairs it on open if
//! needed; nothing is written beyond the pages the file already has), so reads go on from the
//! last commit on a clean handle. Every later write first checks that the disk takes a small
//! probe file: until it does, writes are refused with the I/O error before redb sees them
//! (so the clean handle stays clean for reads); once it does, they go on.
//!
//! Only the store's write path (under its write lock) reopens; readers wait on the handle's
//! lock for the moment it takes.

use super::StoreError;
use parking_lot::RwLock;
use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// redb's page cache. Decisions never read redb (they read the in-memory index), so the
/// cache only serves writes and listings; redb's default (1 GiB) would keep the pages read
/// by the startup load resident for nothing.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Size of the file written to check that the disk has room again before reopening.
const PROBE_BYTES: usize = 256 * 1024;

/// How long a reopen waits for read transactions still open on the old handle (they keep
/// the file locked) before giving up until the next write.
const REOPEN_WAIT: Duration = Duration::from_secs(2);

/// Open (or create) the redb file at `path` with Warden's settings: the whole file is
/// checked on open, so a damaged or foreign file is an error.
pub(super) fn open_database(path: &Path) -> Result<Database, StoreError> {
    Database::builder()
        .set_check_integrity_on_open(true)
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(|source| match source {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::AlreadyOpen {
                path: path.to_path_buf(),
            },
            source => StoreError::Open {
                path: path.to_path_buf(),
                source,
            },
        })
}

pub(crate) struct Db {
    /// `None` only when a reopen closed the file and could not open it again yet.
    slot: RwLock<Option<Database>>,
    path: PathBuf,
    /// A write failed with an I/O error: reopen before the next one.
    failed_io: AtomicBool,
    /// Successful reopens, so the write path can tell that one happened.
    reopens: AtomicU64,
}

impl Db {
    pub(super) fn new(db: Database, path: PathBuf) -> Self {
        Self {
            slot: RwLock::new(Some(db)),
            path,
            failed_io: AtomicBool::new(false),
            reopens: AtomicU64::new(0),
        }
    }

    pub(crate) fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        match &*self.slot.read() {
            Some(db) => Ok(db.begin_read()?),
            None => Err(self.closed()),
        }
    }

    /// Begin a write transaction. After a write failed with an I/O error, only once the disk
    /// takes a probe file (reopening the database if [`Db::note`] could not). Callers hold
    /// the store's write lock.
    pub(crate) fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        if self.failed_io.load(Ordering::Acquire) {
            probe(&self.path)?;
            if self.slot.read().is_none() {
                self.reopen()?;
            }
            self.failed_io.store(false, Ordering::Release);
        }
        match &*self.slot.read() {
            Some(db) => Ok(db.begin_write()?),
            None => Err(self.closed()),
        }
    }

    /// Look at a write's error: after an I/O failure the handle is replaced by a fresh one
    /// at once (reads keep working from the last commit), and later writes wait for a disk
    /// that takes a probe file. Callers hold the store's write lock.
    pub(crate) fn note(&self, e: &StoreError) {
        if !e.is_io() {
            return;
        }
        if !self.failed_io.swap(true, Ordering::AcqRel) {
            tracing::warn!(error = %e, path = %self.path.display(), "a write failed with an I/O error; writes wait for the disk, reads go on");
        }
        // A failure to reopen is logged by `reopen`; the next write tries again.
        let _ = self.reopen();
    }

    /// How many times the database was reopened.
    pub(crate) fn reopens(&self) -> u64 {
        self.reopens.load(Ordering::Acquire)
    }

    fn closed(&self) -> StoreError {
        StoreError::Closed {
            path: self.path.clone(),
        }
    }

    /// Put the database file `prepared` in place of this one: close the handle, move the
    /// current file to `aside`, move `prepared` to the store's path and open it. Callers hold
    /// the store's write lock. If `prepared` cannot be opened, the old file is put back.
    pub(crate) fn replace_file(&self, prepared: &Path, aside: &Path) -> Result<(), StoreError> {
        let mut slot = self.slot.write();
        drop(slot.take());
        let io = |e: std::io::Error| StoreError::Redb(redb::Error::Io(e));
        let moved = std::fs::rename(&self.path, aside)
            .map_err(io)
            .and_then(|()| std::fs::rename(prepared, &self.path).map_err(io));
        let opened = moved.and_then(|()| open_database(&self.path));
        match opened {
            Ok(db) => {
                *slot = Some(db);
                self.reopens.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => {
                if aside.exists() {
                    let _ = std::fs::rename(aside, &self.path);
                }
                *slot = open_database(&self.path).ok();
                Err(e)
            }
        }
    }

    /// Close and reopen the file.
    fn reopen(&self) -> Result<(), StoreError> {
        let mut slot = self.slot.write();
        // Close the old handle first: redb locks the file while a handle is open.
        drop(slot.take());
        let started = std::time::Instant::now();
        loop {
            match open_database(&self.path) {
                Ok(db) => {
                    *slot = Some(db);
                    self.reopens.fetch_add(1, Ordering::AcqRel);
                    tracing::warn!(path = %self.path.display(), "store reopened after an I/O error");
                    return Ok(());
                }
                // Read transactions begun on the old handle still hold the file.
                Err(StoreError::AlreadyOpen { .. }) if started.elapsed() < REOPEN_WAIT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => {
                    tracing::error!(error = %e, "reopening the store failed; reads and writes are unavailable until a write, once the disk has room, succeeds in reopening it");
                    return Err(e);
                }
            }
        }
    }
}

/// Write, sync and remove a small file beside the store: the disk has room again.
fn probe(path: &Path) -> Result<(), StoreError> {
    use std::io::Write;
    let probe = path.with_extension("space-probe");
    let result = (|| {
        let mut f = std::fs::File::create(&probe)?;
        f.write_all(&vec![0u8; PROBE_BYTES])?;
        f.sync_all()
    })();
    let _ = std::fs::remove_file(&probe);
    result.map_err(|e| StoreError::Redb(redb::Error::Io(e)))
}
