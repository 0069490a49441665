//! Checking the live decision index against the tables it was built from.
//!
//! The index is maintained incrementally after each commit; a bug there (an `IndexOp`
//! missing from a change, or applied wrong) would make decisions disagree with the
//! directory without any error. [`Store::check_index`] rebuilds an index from the tables
//! and compares digests, with the write path held so that both describe one revision.

use super::{Store, StoreError};
use crate::engine::index::DirectoryIndex;

/// The outcome of [`Store::check_index`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexCheck {
    /// The revision both sides describe.
    pub revision: u64,
    /// Digest and fact count of the live index.
    pub live_digest: String,
    pub live_facts: u64,
    /// Digest and fact count of an index rebuilt from the tables.
    pub rebuilt_digest: String,
    pub rebuilt_facts: u64,
}

impl IndexCheck {
    pub fn consistent(&self) -> bool {
        self.live_digest == self.rebuilt_digest
    }
}

impl Store {
    /// Rebuild an index from the tables and compare it with `live`. Holds the write path
    /// for the duration (writes wait; checks do not), so it costs as much as a startup
    /// load: an operator's and a test's tool, not a probe.
    pub fn check_index(&self, live: &DirectoryIndex) -> Result<IndexCheck, StoreError> {
        let _serialized = self.write_lock.lock();
        let rebuilt = DirectoryIndex::new();
        let revision = self.load_index_locked(&rebuilt)?;
        let (live_digest, live_facts, live_revision) = {
            let data = live.read();
            let (d, n) = data.digest();
            (d, n, data.revision())
        };
        let (rebuilt_digest, rebuilt_facts) = rebuilt.read().digest();
        if live_revision != revision {
            // The index lags or leads the log: report it as a mismatch, naming both.
            return Ok(IndexCheck {
                revision,
                live_digest: format!("{live_digest} (at revision {live_revision})"),
                live_facts,
                rebuilt_digest,
                rebuilt_facts,
            });
        }
        Ok(IndexCheck {
            revision,
            live_digest,
            live_facts,
            rebuilt_digest,
            rebuilt_facts,
        })
    }
}
