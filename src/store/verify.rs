//! Checking the live decision index against the tables it was built from.
//!
//! The index is maintained incrementally after each commit; a bug there (an `IndexOp`
//! missing from a change, or applied wrong) would make decisions disagree with the
//! directory without any error. [`Store::check_index`] rebuilds an index from one read
//! snapshot of the tables and compares every fact of it with the live index at the same
//! revision (see `engine::index::digest` for what a fact is), naming the facts that differ.
//!
//! It never takes the write path: the snapshot is a redb read transaction, and the live
//! index is read under its shared lock only while its facts are copied out (inline ids and
//! symbols, no text). Writes keep committing while the (expensive) rebuild runs.

use super::tables::CHANGELOG;
use super::{Store, StoreError, last_revision};
use crate::engine::index::{DirectoryIndex, digest_of};

/// How many differing facts a check names (the digests and counts cover the rest).
pub const MAX_DIFFERENCES: usize = 20;

/// How many times a check looks for a moment when the snapshot and the live index are at
/// the same revision before it reports them as apart. A write is committed to the file
/// just before the index learns it, so the two differ only for that instant, unless the
/// index really lags.
const ATTEMPTS: usize = 1000;

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
    /// Facts found on one side only (at most [`MAX_DIFFERENCES`]), each as
    /// `only in the live index: <fact>` or `only in the tables: <fact>`.
    pub differences: Vec<String>,
}

impl IndexCheck {
    pub fn consistent(&self) -> bool {
        self.live_digest == self.rebuilt_digest && self.differences.is_empty()
    }
}

impl Store {
    /// Rebuild an index from one read snapshot of the tables and compare it, fact by fact,
    /// with `live` at the same revision. Costs as much as a startup load, but holds nothing
    /// that writes wait for except the live index's shared lock while its facts are listed:
    /// an operator's and a test's tool, not a probe.
    pub fn check_index(&self, live: &DirectoryIndex) -> Result<IndexCheck, StoreError> {
        let started = std::time::Instant::now();
        let mut last_seen = (0, 0);
        for _ in 0..ATTEMPTS {
            let data = live.read();
            let locked = std::time::Instant::now();
            let live_revision = data.revision();
            let txn = self.db.begin_read()?;
            let snapshot_revision = last_revision(&txn.open_table(CHANGELOG)?)?;
            if snapshot_revision != live_revision {
                // A write committed and is being published to the index: let it land.
                last_seen = (live_revision, snapshot_revision);
                drop(data);
                drop(txn);
                std::thread::yield_now();
                continue;
            }
            // Copies only; the lines are written once the lock is released.
            let live = data.snapshot_facts();
            drop(data);
            let locked_ms = locked.elapsed().as_millis() as u64;
            let live_facts = live.lines();
            let rebuilt = DirectoryIndex::new();
            Self::load_index_from(&txn, &rebuilt)?;
            drop(txn);
            let rebuilt_facts = rebuilt.read().facts();
            let (live_digest, live_count) = digest_of(&live_facts);
            let (rebuilt_digest, rebuilt_count) = digest_of(&rebuilt_facts);
            tracing::info!(
                revision = snapshot_revision,
                facts = live_count,
                locked_ms,
                total_ms = started.elapsed().as_millis() as u64,
                "index checked; the live index was read-locked for locked_ms"
            );
            return Ok(IndexCheck {
                revision: snapshot_revision,
                live_digest,
                live_facts: live_count,
                rebuilt_digest,
                rebuilt_facts: rebuilt_count,
                differences: differences(&live_facts, &rebuilt_facts, MAX_DIFFERENCES),
            });
        }
        // The index never caught up with the log: report it as a mismatch, naming both.
        let (live_revision, snapshot_revision) = last_seen;
        Ok(IndexCheck {
            revision: snapshot_revision,
            live_digest: format!("(at revision {live_revision})"),
            live_facts: 0,
            rebuilt_digest: format!("(at revision {snapshot_revision})"),
            rebuilt_facts: 0,
            differences: vec![format!(
                "the live index is at revision {live_revision}, the tables at {snapshot_revision}"
            )],
        })
    }
}

/// Facts on one side only, of two sorted lists, at most `limit` of them.
fn differences(live: &[String], rebuilt: &[String], limit: usize) -> Vec<String> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while out.len() < limit && (i < live.len() || j < rebuilt.len()) {
        match (live.get(i), rebuilt.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                out.push(format!("only in the live index: {a}"));
                i += 1;
            }
            (Some(a), None) => {
                out.push(format!("only in the live index: {a}"));
                i += 1;
            }
            (_, Some(b)) => {
                out.push(format!("only in the tables: {b}"));
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::differences;

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn differences_name_each_side_in_order() {
        let live = v(&[
            "app acme web",
            "collaborator billing frank role:admin",
            "member acme alice role:admin",
        ]);
        let rebuilt = v(&[
            "app acme web",
            "member acme alice role:admin",
            "member acme bob role:org_user",
        ]);
        assert_eq!(
            differences(&live, &rebuilt, 10),
            v(&[
                "only in the live index: collaborator billing frank role:admin",
                "only in the tables: member acme bob role:org_user",
            ])
        );
        assert!(differences(&live, &live, 10).is_empty());
        assert_eq!(differences(&live, &[], 1).len(), 1);
    }
}
