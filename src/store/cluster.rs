//! Cluster mode's state in the store: the directory log's position this sidecar has applied
//! (`last_applied_seq`, the apply time of that entry), each entry's outcome keyed by
//! request id, and the policy epoch in force (`cluster_epoch`, with its files), all committed
//! in the same redb transaction as the entry they belong to.
//!
//! [`Store::apply_replicated`] is the only writer of directory state in cluster mode (called
//! by `cluster`'s apply loop, one entry at a time, in log order). It decides nothing about the
//! log itself (headers, versions, connections): it is handed an entry that decoded, or the
//! reason it did not.

use super::tables::{self, CLUSTER_EPOCH, CLUSTER_OUTCOMES, CLUSTER_STATE};
use super::{ApplyContext, ApplyError, Store, StoreError};
use crate::directory::{ChangeEnvelope, Refusal};
use crate::engine::index::DirectoryIndex;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

const LAST_APPLIED_SEQ: &str = "last_applied_seq";
const LAST_APPLY_MS: &str = "last_apply_ms";
const REFUSED_ENTRIES: &str = "refused_entries";
const CURRENT_EPOCH: &str = "current";
/// The key (in `cluster_epoch`) of the stream this store follows.
const STREAM_KEY: &str = "stream";

/// Which directory log a store follows: the stream's name and its creation time, so that a
/// stream deleted and recreated under the same name is told apart from the one the store
/// applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamIdentity {
    pub name: String,
    /// The stream's creation time as JetStream reports it (RFC 3339).
    pub created: String,
}

/// A store's cluster state, carried by a cluster snapshot and restored with it, so a sidecar
/// bootstrapped from it applies the next entries exactly as the others do (the outcomes table
/// answers resubmissions after the log's duplicate window the same way on every sidecar).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The last stream sequence applied (the snapshot's log position).
    pub seq: u64,
    pub last_apply_ms: u64,
    pub refused_entries: u64,
    /// The policy epoch in force at `seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<PolicyEpoch>,
    /// Every recorded outcome, keyed by request id.
    #[serde(default)]
    pub outcomes: Vec<(String, Outcome)>,
    /// The stream the source followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamIdentity>,
}

/// Read the cluster state in `txn`.
pub(super) fn read_state(txn: &redb::ReadTransaction) -> Result<ClusterState, StoreError> {
    let state = txn.open_table(CLUSTER_STATE)?;
    let get = |k: &str| -> Result<u64, StoreError> { Ok(state.get(k)?.map(|v| v.value()).unwrap_or(0)) };
    let epochs = txn.open_table(CLUSTER_EPOCH)?;
    let mut outcomes = Vec::new();
    for item in txn.open_table(CLUSTER_OUTCOMES)?.iter()? {
        let (key, value) = item?;
        outcomes.push((
            key.value().to_string(),
            tables::decode::<Outcome>("cluster_outcomes", key.value(), value.value())?,
        ));
    }
    Ok(ClusterState {
        seq: get(LAST_APPLIED_SEQ)?,
        last_apply_ms: get(LAST_APPLY_MS)?,
        refused_entries: get(REFUSED_ENTRIES)?,
        epoch: tables::get_json(&epochs, "cluster_epoch", CURRENT_EPOCH)?,
        outcomes,
        stream: tables::get_json(&epochs, "cluster_epoch", STREAM_KEY)?,
    })
}

/// Write `state` into `txn` (an import into an empty store).
pub(super) fn write_state(txn: &redb::WriteTransaction, state: &ClusterState) -> Result<(), StoreError> {
    let mut table = txn.open_table(CLUSTER_STATE)?;
    table.insert(LAST_APPLIED_SEQ, state.seq)?;
    table.insert(LAST_APPLY_MS, state.last_apply_ms)?;
    table.insert(REFUSED_ENTRIES, state.refused_entries)?;
    drop(table);
    let mut epochs = txn.open_table(CLUSTER_EPOCH)?;
    if let Some(epoch) = &state.epoch {
        epochs.insert(CURRENT_EPOCH, tables::encode(epoch)?.as_slice())?;
    }
    if let Some(stream) = &state.stream {
        epochs.insert(STREAM_KEY, tables::encode(stream)?.as_slice())?;
    }
    drop(epochs);
    let mut outcomes = txn.open_table(CLUSTER_OUTCOMES)?;
    for (key, outcome) in &state.outcomes {
        outcomes.insert(key.as_str(), tables::encode(outcome)?.as_slice())?;
    }
    Ok(())
}

/// A policy epoch: the policy that judges the directory log's entries from log position
/// `seq` on (and answers checks) on every sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyEpoch {
    /// The policy hash the entry names.
    pub hash: String,
    /// The stream sequence of its `warden.policy` entry.
    pub seq: u64,
    /// The policy files it carries.
    pub sources: crate::policy::PolicySources,
}

/// Where this sidecar stands in the directory log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterPosition {
    /// The last stream sequence applied (0: none yet).
    pub last_applied_seq: u64,
    /// The apply time of that entry (Unix ms); the next entry's apply time is never earlier.
    pub last_apply_ms: u64,
    /// Entries refused as undecodable (garbage, missing headers), counted the same way on
    /// every sidecar.
    pub refused_entries: u64,
}

/// What one entry of the directory log came to. The same on every sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The change committed at this revision.
    Applied { seq: u64, revision: u64 },
    /// The directory's rules refused the change (the same refusal as on a single node).
    Refused { seq: u64, refusal: Refusal },
    /// The entry was not a change this build could read (not JSON, no apply version, …).
    Rejected { seq: u64, reason: String },
}

impl Outcome {
    pub fn seq(&self) -> u64 {
        match self {
            Outcome::Applied { seq, .. } | Outcome::Refused { seq, .. } | Outcome::Rejected { seq, .. } => {
                *seq
            }
        }
    }
}

/// The log position an entry is applied at.
#[derive(Debug, Clone, Copy)]
pub struct ClusterStamp {
    /// Its stream sequence.
    pub seq: u64,
    /// The time its submitter stamped (kept in the change-log record).
    pub requested_at_ms: u64,
    /// Its apply time (also `at_ms` of the envelope applied).
    pub apply_ms: u64,
    /// Commit with redb's default durability (fsync). False when the apply loop groups commits: the commit is
    /// visible at once but reaches the disk with the next durable one (see
    /// [`Commit::Deferred`]).
    pub durable: bool,
}

/// How [`Store::apply_replicated`] commits an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// Durable when the commit returns (redb `Durability::Immediate`), as every single-node
    /// write.
    Durable,
    /// redb `Durability::None`: visible at once (the index, the position, the outcome), on
    /// disk with the next durable commit. The apply loop groups its commits this way. Safe
    /// because the directory log, not this file, is what makes an entry durable, and the
    /// position is committed in the same transaction as the change: a crash loses a suffix
    /// of entries together with the position that covers them, so the restart resumes at
    /// the last durable `last_applied_seq + 1` and re-applies that suffix from the log, to
    /// the same outcomes (apply is deterministic), applying nothing twice.
    Deferred,
}

/// Set `txn`'s durability for `stamp` (a single-node write has none: durable).
pub(super) fn set_durability(
    txn: &mut redb::WriteTransaction,
    stamp: Option<&ClusterStamp>,
) -> Result<(), StoreError> {
    if stamp.is_some_and(|s| !s.durable) {
        txn.set_durability(redb::Durability::None)
            .map_err(|e| StoreError::Redb(e.into()))?;
    }
    Ok(())
}

/// What [`Store::apply_replicated`] did with an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replicated {
    /// Already applied (its sequence is at or below `last_applied_seq`): nothing written.
    Skipped,
    /// Applied now, or recorded as refused or rejected.
    Done(Outcome),
    /// Its request id already had an outcome (a resubmission after the log's duplicate
    /// window): only the position moved; this is the original outcome.
    Duplicate(Outcome),
    /// Nothing written: the stored position (`stored`) is behind the entry the caller
    /// says it applied last. Deferred commits were lost (the database was reopened after an
    /// I/O error before they reached the disk); applying this entry would leave a gap, so
    /// the caller must resume from `stored + 1` (and rebuild its index from the store).
    Rewound { stored: u64 },
}

/// Commit `stamp`'s position and `outcome` (keyed by `key`, when there is one, and not
/// overwriting an earlier outcome) in `txn`.
fn record(
    txn: &redb::WriteTransaction,
    stamp: &ClusterStamp,
    key: Option<&str>,
    outcome: Option<&Outcome>,
    refused: bool,
) -> Result<(), StoreError> {
    let mut state = txn.open_table(CLUSTER_STATE)?;
    state.insert(LAST_APPLIED_SEQ, stamp.seq)?;
    state.insert(LAST_APPLY_MS, stamp.apply_ms)?;
    if refused {
        let n = state.get(REFUSED_ENTRIES)?.map(|v| v.value()).unwrap_or(0);
        state.insert(REFUSED_ENTRIES, n.saturating_add(1))?;
    }
    drop(state);
    if let (Some(key), Some(outcome)) = (key, outcome) {
        let mut outcomes = txn.open_table(CLUSTER_OUTCOMES)?;
        if outcomes.get(key)?.is_none() {
            outcomes.insert(key, tables::encode(outcome)?.as_slice())?;
        }
    }
    Ok(())
}

/// Called from the apply transaction of an accepted change.
pub(super) fn record_in_txn(
    txn: &redb::WriteTransaction,
    stamp: &ClusterStamp,
    outcome: &Outcome,
    key: Option<&str>,
) -> Result<(), StoreError> {
    record(txn, stamp, key, Some(outcome), false)
}

impl Store {
    /// This sidecar's position in the directory log (all zero on a single node).
    pub fn cluster_position(&self) -> Result<ClusterPosition, StoreError> {
        let txn = self.db.begin_read()?;
        let state = txn.open_table(CLUSTER_STATE)?;
        let get = |k: &str| -> Result<u64, StoreError> { Ok(state.get(k)?.map(|v| v.value()).unwrap_or(0)) };
        Ok(ClusterPosition {
            last_applied_seq: get(LAST_APPLIED_SEQ)?,
            last_apply_ms: get(LAST_APPLY_MS)?,
            refused_entries: get(REFUSED_ENTRIES)?,
        })
    }

    /// The outcome recorded for `request_id`, if an entry with it was applied.
    pub fn cluster_outcome(&self, request_id: &str) -> Result<Option<Outcome>, StoreError> {
        let txn = self.db.begin_read()?;
        let outcomes = txn.open_table(CLUSTER_OUTCOMES)?;
        tables::get_json(&outcomes, "cluster_outcomes", request_id)
    }

    /// Apply the directory log's entry `seq` (cluster mode), published at `log_ms`.
    ///
    /// `entry` is the decoded envelope, or why it did not decode (then the entry is recorded
    /// as rejected, keyed by `key`, the entry's message id). The apply time is the later of
    /// the previous entry's apply time and `log_ms`, the same on every sidecar; the
    /// submitter's time is kept as the record's requested time. A refusal commits the
    /// position and the refusal (nothing else); an accepted change commits the position and
    /// its revision with the change, then publishes its index ops before returning (the
    /// next entry is authorized against them). A storage error leaves the position where it
    /// was: the caller retries the same entry. A format newer than this build is
    /// [`ApplyError::UnsupportedFormat`] and writes nothing.
    ///
    /// `commit` says how it is committed; `applied` is the last entry the caller applied (0:
    /// no expectation). When the stored position is behind `applied` (deferred commits lost
    /// in a reopen), nothing is written: [`Replicated::Rewound`].
    #[allow(clippy::too_many_arguments)]
    pub fn apply_replicated(
        &self,
        seq: u64,
        log_ms: u64,
        key: Option<&str>,
        entry: Result<ChangeEnvelope, String>,
        ctx: &ApplyContext<'_>,
        index: &DirectoryIndex,
        commit: Commit,
        applied: u64,
    ) -> Result<Replicated, ApplyError> {
        let _serialized = self.write_lock.lock();
        let position = self.noting_io(self.cluster_position())?;
        if position.last_applied_seq < applied {
            return Ok(Replicated::Rewound {
                stored: position.last_applied_seq,
            });
        }
        if seq <= position.last_applied_seq {
            return Ok(Replicated::Skipped);
        }
        let durable = commit == Commit::Durable;
        let apply_ms = position.last_apply_ms.max(log_ms);
        let mut env = match entry {
            Ok(env) => env,
            Err(reason) => {
                let stamp = ClusterStamp {
                    seq,
                    requested_at_ms: 0,
                    apply_ms,
                    durable,
                };
                let outcome = Outcome::Rejected { seq, reason };
                self.noting_io(self.commit_record(&stamp, key, Some(&outcome), true))?;
                return Ok(Replicated::Done(outcome));
            }
        };
        let key = env.request_id.clone().or(key.map(str::to_string));
        if let Some(id) = &key
            && let Some(original) = self.noting_io(self.cluster_outcome(id))?
        {
            let stamp = ClusterStamp {
                seq,
                requested_at_ms: env.at_ms,
                apply_ms,
                durable,
            };
            self.noting_io(self.commit_record(&stamp, None, None, false))?;
            return Ok(Replicated::Duplicate(original));
        }
        let stamp = ClusterStamp {
            seq,
            requested_at_ms: env.at_ms,
            apply_ms,
            durable,
        };
        env.at_ms = apply_ms;
        let reopens = self.db.reopens();
        let result = self.apply_locked_stamped(&env, ctx, Some(&stamp), key.as_deref());
        if self.db.reopens() != reopens {
            // A failed write reopened the store, which may have lost deferred commits: the
            // index is left as it is (checks keep serving the last applied state) and the
            // caller retries, learning of a lost position through `Replicated::Rewound`.
            if result.is_err() {
                return result.map(|_| Replicated::Skipped);
            }
            // As in `apply_and_index`: after a reopen the index is rebuilt from the tables.
            let fresh = DirectoryIndex::new();
            if let Ok(revision) = self.load_index_locked(&fresh) {
                tracing::warn!(revision, "index rebuilt from the reopened store");
                index.replace_with(fresh);
            }
            return match result {
                Ok(applied) => {
                    self.committed.send_replace(applied.revision);
                    Ok(Replicated::Done(Outcome::Applied {
                        seq,
                        revision: applied.revision,
                    }))
                }
                Err(e) => Err(e),
            };
        }
        match result {
            Ok(applied) => {
                index.apply(applied.revision, &applied.index_ops);
                // After the index, as in `apply_and_index`: WatchChanges streams follow.
                self.committed.send_replace(applied.revision);
                Ok(Replicated::Done(Outcome::Applied {
                    seq,
                    revision: applied.revision,
                }))
            }
            Err(ApplyError::Refused(refusal)) => {
                let outcome = Outcome::Refused { seq, refusal };
                self.noting_io(self.commit_record(&stamp, key.as_deref(), Some(&outcome), false))?;
                Ok(Replicated::Done(outcome))
            }
            Err(e) => Err(e),
        }
    }

    /// Move the position past entry `seq` without applying anything (an entry of another
    /// subject, such as a policy epoch, that this build does not apply).
    pub fn skip_replicated(&self, seq: u64, log_ms: u64) -> Result<(), StoreError> {
        let _serialized = self.write_lock.lock();
        let position = self.noting_io(self.cluster_position())?;
        if seq <= position.last_applied_seq {
            return Ok(());
        }
        let stamp = ClusterStamp {
            seq,
            requested_at_ms: 0,
            apply_ms: position.last_apply_ms.max(log_ms),
            durable: true,
        };
        self.noting_io(self.commit_record(&stamp, None, None, false))
    }

    /// The stream this store follows (`None` until it first followed one).
    pub fn cluster_stream(&self) -> Result<Option<StreamIdentity>, StoreError> {
        let txn = self.db.begin_read()?;
        let epochs = txn.open_table(CLUSTER_EPOCH)?;
        tables::get_json(&epochs, "cluster_epoch", STREAM_KEY)
    }

    /// Record the stream this store follows.
    pub fn set_cluster_stream(&self, stream: &StreamIdentity) -> Result<(), StoreError> {
        let _serialized = self.write_lock.lock();
        self.noting_io((|| {
            let txn = self.db.begin_write()?;
            {
                let mut epochs = txn.open_table(CLUSTER_EPOCH)?;
                epochs.insert(STREAM_KEY, tables::encode(stream)?.as_slice())?;
            }
            txn.commit()?;
            Ok(())
        })())
    }

    /// The policy epoch in force (`None` on a single node and until the log's first epoch).
    pub fn cluster_epoch(&self) -> Result<Option<PolicyEpoch>, StoreError> {
        let txn = self.db.begin_read()?;
        let epochs = txn.open_table(CLUSTER_EPOCH)?;
        tables::get_json(&epochs, "cluster_epoch", CURRENT_EPOCH)
    }

    /// Apply the directory log's `warden.policy` entry `seq`: record `epoch` as the one in
    /// force, or, when its files did not compile (`Err`, the same on every sidecar), record the
    /// refusal keyed by `key` and keep the old epoch. Either way in the same transaction as the
    /// position. The directory revision does not move. Returns false when `seq` was already
    /// applied (nothing written).
    pub fn apply_epoch(
        &self,
        seq: u64,
        log_ms: u64,
        key: Option<&str>,
        epoch: Result<&PolicyEpoch, &str>,
    ) -> Result<bool, StoreError> {
        let _serialized = self.write_lock.lock();
        let position = self.noting_io(self.cluster_position())?;
        if seq <= position.last_applied_seq {
            return Ok(false);
        }
        let stamp = ClusterStamp {
            seq,
            requested_at_ms: 0,
            apply_ms: position.last_apply_ms.max(log_ms),
            durable: true,
        };
        self.noting_io((|| {
            let txn = self.db.begin_write()?;
            match &epoch {
                Ok(epoch) => {
                    record(&txn, &stamp, None, None, false)?;
                    let mut epochs = txn.open_table(CLUSTER_EPOCH)?;
                    epochs.insert(CURRENT_EPOCH, tables::encode(epoch)?.as_slice())?;
                }
                Err(reason) => {
                    let outcome = Outcome::Rejected {
                        seq,
                        reason: reason.to_string(),
                    };
                    record(&txn, &stamp, key, Some(&outcome), true)?;
                }
            }
            txn.commit()?;
            Ok(())
        })())?;
        Ok(true)
    }

    /// Make every deferred commit durable (an empty durable commit writes them out). The
    /// apply loop calls it when deferred commits are due and when it stops.
    pub fn flush_durable(&self) -> Result<(), StoreError> {
        let _serialized = self.write_lock.lock();
        self.noting_io((|| {
            let txn = self.db.begin_write()?;
            txn.commit()?;
            Ok(())
        })())
    }

    fn commit_record(
        &self,
        stamp: &ClusterStamp,
        key: Option<&str>,
        outcome: Option<&Outcome>,
        refused: bool,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write()?;
        set_durability(&mut txn, Some(stamp))?;
        record(&txn, stamp, key, outcome, refused)?;
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::{Change, ChangeEnvelope};

    fn upsert(id: &str, at_ms: u64, request_id: &str) -> ChangeEnvelope {
        let mut env = ChangeEnvelope::new(
            "op",
            at_ms,
            Change::UpsertUser {
                id: id.into(),
                email: format!("{id}@example.com"),
                username: None,
                email_verified: None,
            },
        );
        env.request_id = Some(request_id.into());
        env
    }

    #[test]
    fn entries_apply_once_in_log_order_with_log_time_and_recorded_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("w.redb")).unwrap();
        let index = DirectoryIndex::new();
        let ctx = ApplyContext::trusted();
        let apply = |seq, log_ms, key: Option<&str>, entry| {
            store
                .apply_replicated(seq, log_ms, key, entry, &ctx, &index, Commit::Durable, 0)
                .unwrap()
        };

        // The apply time is the log's, never earlier than the previous entry's; the
        // submitter's time is kept as the requested time.
        let first = apply(1, 1_000, Some("r1"), Ok(upsert("alice", 5_000, "r1")));
        assert_eq!(first, Replicated::Done(Outcome::Applied { seq: 1, revision: 1 }));
        apply(2, 500, Some("r2"), Ok(upsert("bob", 400, "r2")));
        let log = store.changes_since(0, 0).unwrap();
        assert_eq!(
            (log[0].at_ms, log[0].requested_at_ms, log[0].stream_seq),
            (1_000, Some(5_000), Some(1))
        );
        assert_eq!((log[1].at_ms, log[1].requested_at_ms), (1_000, Some(400)));

        // Redelivery of an applied entry writes nothing.
        assert_eq!(
            apply(2, 2_000, Some("r2"), Ok(upsert("bob", 400, "r2"))),
            Replicated::Skipped
        );
        // A resubmission of request r1 after the duplicate window: the original outcome,
        // nothing applied again.
        assert_eq!(
            apply(3, 2_000, Some("r1"), Ok(upsert("alice", 6_000, "r1"))),
            Replicated::Duplicate(Outcome::Applied { seq: 1, revision: 1 })
        );
        // Garbage: recorded as rejected under its message id, the position moves.
        let rejected = apply(4, 2_000, Some("junk"), Err("not json".into()));
        assert!(matches!(
            rejected,
            Replicated::Done(Outcome::Rejected { seq: 4, .. })
        ));
        // A refusal is recorded with the position; the revision does not move.
        let mut add = ChangeEnvelope::new(
            "op",
            1,
            Change::AddMember {
                org: "nope".into(),
                user: "alice".into(),
                role: "admin".into(),
                terms_version: None,
            },
        );
        add.request_id = Some("r5".into());
        let refused = apply(5, 2_000, None, Ok(add));
        assert!(
            matches!(refused, Replicated::Done(Outcome::Refused { seq: 5, .. })),
            "{refused:?}"
        );

        assert_eq!(store.revision().unwrap(), 2);
        assert_eq!(index.revision(), 2);
        assert_eq!(
            store.cluster_position().unwrap(),
            ClusterPosition {
                last_applied_seq: 5,
                last_apply_ms: 2_000,
                refused_entries: 1,
            }
        );
        assert!(matches!(
            store.cluster_outcome("r5").unwrap(),
            Some(Outcome::Refused { .. })
        ));
        assert!(matches!(
            store.cluster_outcome("junk").unwrap(),
            Some(Outcome::Rejected { .. })
        ));
        assert_eq!(
            store.cluster_outcome("r1").unwrap(),
            Some(Outcome::Applied { seq: 1, revision: 1 })
        );

        // A newer change format stops the loop: nothing is written, the position stays.
        let mut newer = upsert("carol", 1, "r6");
        newer.format = crate::directory::CHANGE_FORMAT + 1;
        let err = store
            .apply_replicated(6, 3_000, None, Ok(newer), &ctx, &index, Commit::Durable, 0)
            .unwrap_err();
        assert!(matches!(err, ApplyError::UnsupportedFormat { .. }), "{err}");
        assert_eq!(store.cluster_position().unwrap().last_applied_seq, 5);
    }

    /// A kill -9 leaves the file as the process wrote it: a copy taken while the store is
    /// open is that image. Deferred commits are not in it, nor the position that covers
    /// them; re-applying from the position gives the same directory, nothing twice.
    #[test]
    fn deferred_commits_lost_in_a_crash_are_re_applied_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.redb");
        let store = Store::open(&path).unwrap();
        let index = DirectoryIndex::new();
        let ctx = ApplyContext::trusted();
        let entry = |seq: u64| upsert(&format!("u{seq}"), seq, &format!("r{seq}"));
        let apply = |store: &Store, index: &DirectoryIndex, seq: u64, commit: Commit, applied: u64| {
            store
                .apply_replicated(
                    seq,
                    1_000 + seq,
                    None,
                    Ok(entry(seq)),
                    &ctx,
                    index,
                    commit,
                    applied,
                )
                .unwrap()
        };
        for seq in 1..=3 {
            apply(&store, &index, seq, Commit::Durable, seq - 1);
        }
        for seq in 4..=6 {
            assert!(matches!(
                apply(&store, &index, seq, Commit::Deferred, seq - 1),
                Replicated::Done(Outcome::Applied { .. })
            ));
        }
        // Visible at once in this process (position, revision, index, outcomes).
        assert_eq!(store.cluster_position().unwrap().last_applied_seq, 6);
        assert_eq!((store.revision().unwrap(), index.revision()), (6, 6));
        assert!(store.cluster_outcome("r6").unwrap().is_some());

        let crashed = dir.path().join("crashed.redb");
        std::fs::copy(&path, &crashed).unwrap();
        store.flush_durable().unwrap();
        let flushed = dir.path().join("flushed.redb");
        std::fs::copy(&path, &flushed).unwrap();
        let digest = |s: &Store| {
            let d = s.digest().unwrap();
            (d.revision, d.sha256)
        };
        let want = digest(&store);
        drop(store);

        // After the crash: the last durable position, its revision; a caller that believes
        // it applied 6 is told the position rewound, and nothing is written.
        let store = Store::open(&crashed).unwrap();
        let index = DirectoryIndex::new();
        store.load_index(&index).unwrap();
        assert_eq!(store.cluster_position().unwrap().last_applied_seq, 3);
        assert_eq!(store.revision().unwrap(), 3);
        assert_eq!(store.cluster_outcome("r4").unwrap(), None);
        assert_eq!(
            apply(&store, &index, 7, Commit::Durable, 6),
            Replicated::Rewound { stored: 3 }
        );
        // Resuming at 3 + 1 (redelivered entries at or below the position are skipped).
        assert_eq!(apply(&store, &index, 3, Commit::Durable, 3), Replicated::Skipped);
        for seq in 4..=6 {
            apply(&store, &index, seq, Commit::Deferred, seq - 1);
        }
        assert_eq!(store.revision().unwrap(), 6, "each entry applied once");
        assert_eq!(digest(&store), want);

        // A flush put the deferred commits on disk.
        let store = Store::open(&flushed).unwrap();
        assert_eq!(store.cluster_position().unwrap().last_applied_seq, 6);
        assert_eq!(digest(&store), want);
    }

    #[test]
    fn policy_epochs_are_recorded_with_the_position_and_refusals_keep_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.redb");
        let store = Store::open(&path).unwrap();
        let index = DirectoryIndex::new();
        let ctx = ApplyContext::trusted();
        store
            .apply_replicated(
                1,
                1_000,
                Some("r1"),
                Ok(upsert("alice", 1, "r1")),
                &ctx,
                &index,
                Commit::Durable,
                0,
            )
            .unwrap();
        assert_eq!(store.cluster_epoch().unwrap(), None);
        let epoch = PolicyEpoch {
            hash: "h1".into(),
            seq: 2,
            sources: crate::policy::PolicySources {
                model: crate::policy::DEFAULT_MODEL.into(),
                policy: crate::policy::DEFAULT_POLICY.into(),
                engine: None,
                limits: None,
            },
        };
        assert!(
            store
                .apply_epoch(2, 2_000, Some("policy-h1"), Ok(&epoch))
                .unwrap()
        );
        // Redelivered: nothing written.
        assert!(
            !store
                .apply_epoch(2, 2_000, Some("policy-h1"), Ok(&epoch))
                .unwrap()
        );
        // A broken epoch: recorded as refused under its message id, the old epoch stays.
        assert!(
            store
                .apply_epoch(3, 3_000, Some("policy-h2"), Err("does not compile"))
                .unwrap()
        );
        assert!(matches!(
            store.cluster_outcome("policy-h2").unwrap(),
            Some(Outcome::Rejected { seq: 3, .. })
        ));
        let position = store.cluster_position().unwrap();
        assert_eq!((position.last_applied_seq, position.refused_entries), (3, 1));
        // Epochs do not move the directory revision.
        assert_eq!(store.revision().unwrap(), 1);
        drop(store);
        // A restart reads the epoch in force from the store.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.cluster_epoch().unwrap(), Some(epoch));
    }
}
