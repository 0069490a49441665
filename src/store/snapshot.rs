//! Online snapshots: the directory at revision R *and its history*, from one read transaction
//! of a running daemon, and their import into an empty store.
//!
//! A [`Snapshot`] is the export at R (the [`Dump`] format) plus the change log up to R, the
//! audit index (which org each change concerns, as decided when it was written: a change that
//! names only an app or a token cannot be attributed from the final state), the hash of the
//! policy serving when it was taken, the apply version ([`CHANGE_FORMAT`]) of the build that
//! took it, and a log position (the stream sequence R corresponds to; empty in single-node).
//! Telemetry is left out: usage counts and tokens' last use.
//!
//! Importing one restores the tables, the change log and the audit index verbatim, so the
//! next write gets R+1 and the audit log and `WatchChanges` answer for 1..R as on the source.
//! Unlike a dump import, no `Import` record is added: the log is the source's.
//!
//! A *cluster* snapshot ([`Store::cluster_snapshot`]) also carries the sidecar's cluster state
//! (position, last apply time, the policy epoch in force, the outcomes by request id, the
//! stream followed) and is deterministic for one log position: its time is the apply time of
//! that entry and its policy the epoch's hash, so two sidecars snapshotting at the same
//! position write the same bytes. [`Store::replace_from_snapshot`] swaps a running store's
//! file for one loaded from a snapshot (re-bootstrap), the old file moved aside.

use super::cluster::{ClusterState, read_state, write_state};
use super::dump::{DUMP_FORMAT, write_dump};
use super::read::ChangeRecord;
use super::tables::{self, WriteTables, decode, encode};
use super::{ApplyError, Dump, Store, StoreError, is_empty};
use crate::directory::{CHANGE_FORMAT, Refusal};
use crate::engine::index::DirectoryIndex;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The snapshot format this build writes and reads.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// The directory at `revision` with its change log. See the module documentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SNAPSHOT_FORMAT`]; its presence tells a snapshot from a plain dump.
    pub snapshot_format: u32,
    /// The last committed revision the snapshot holds.
    pub revision: u64,
    /// The change format ([`CHANGE_FORMAT`]) of the build that took it: a build older than
    /// this refuses to import it rather than hold a log it cannot replay.
    pub apply_version: u32,
    /// Hash of the policy serving when the snapshot was taken, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The replicated log's position (stream sequence) `revision` corresponds to; absent in
    /// single-node mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_position: Option<u64>,
    /// When it was taken (Unix ms).
    pub taken_at_ms: u64,
    /// The directory digest (`AdminService.DirectoryDigest`) at `revision`, from the same
    /// read transaction: a store the snapshot was imported into reports the same.
    pub digest: String,
    /// The directory's state at `revision`, tokens without their last use.
    pub directory: Dump,
    /// Every change-log record, oldest first, ending at `revision`. It starts later than 1
    /// when the source's own history did (a store imported from a plain dump).
    pub changelog: Vec<ChangeRecord>,
    /// `(org, revision)`: which changes concern which org (the audit index).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_by_org: Vec<(String, u64)>,
    /// A cluster snapshot's cluster state (its `seq` is `log_position`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterState>,
}

impl Snapshot {
    pub fn to_json(&self) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(self).map_err(|e| StoreError::Encode(e.to_string()))
    }

    /// Parse a snapshot; a malformed one is refused naming `snapshot` and the parser's position.
    pub fn from_json(bytes: &[u8]) -> Result<Snapshot, Refusal> {
        serde_json::from_slice(bytes).map_err(|e| Refusal::invalid("snapshot", e.to_string()))
    }

    /// Whether `bytes` look like a snapshot (a JSON object with `snapshot_format`) rather than a
    /// plain dump. Only a hint for choosing the parser; parsing decides.
    pub fn sniff(bytes: &[u8]) -> bool {
        #[derive(Deserialize)]
        struct Probe {
            snapshot_format: Option<u32>,
        }
        serde_json::from_slice::<Probe>(bytes)
            .map(|p| p.snapshot_format.is_some())
            .unwrap_or(false)
    }

    /// The checks an import makes before writing anything.
    fn validate(&self) -> Result<(), Refusal> {
        let invalid = |field: &str, reason: String| Err(Refusal::invalid(field, reason));
        if self.snapshot_format != SNAPSHOT_FORMAT {
            return invalid(
                "snapshot_format",
                format!(
                    "snapshot format {} is not supported (this build reads format {SNAPSHOT_FORMAT})",
                    self.snapshot_format
                ),
            );
        }
        if self.directory.format != DUMP_FORMAT {
            return invalid(
                "directory.format",
                format!(
                    "dump format {} is not supported (this build reads format {DUMP_FORMAT})",
                    self.directory.format
                ),
            );
        }
        if self.directory.revision != self.revision {
            return invalid(
                "directory.revision",
                format!(
                    "{} differs from the snapshot's revision {}",
                    self.directory.revision, self.revision
                ),
            );
        }
        let first = self.changelog.first().map_or(0, |r| r.revision);
        for (i, r) in self.changelog.iter().enumerate() {
            if r.revision != first + i as u64 || r.revision == 0 {
                return invalid(
                    &format!("changelog[{i}].revision"),
                    format!("{} breaks the log's gap-free order", r.revision),
                );
            }
        }
        let last = self.changelog.last().map_or(0, |r| r.revision);
        if last != self.revision {
            return invalid(
                "changelog",
                format!(
                    "the log ends at revision {last}, not at the snapshot's revision {}",
                    self.revision
                ),
            );
        }
        for (i, (org, rev)) in self.audit_by_org.iter().enumerate() {
            crate::directory::ids::validate_slug(&format!("audit_by_org[{i}].org"), org)?;
            if *rev < first || *rev > last {
                return invalid(
                    &format!("audit_by_org[{i}].revision"),
                    format!("{rev} is not in the snapshot's log ({first}..={last})"),
                );
            }
        }
        if let Some(c) = &self.cluster
            && Some(c.seq) != self.log_position
        {
            return invalid(
                "cluster.seq",
                format!("{} differs from the log position {:?}", c.seq, self.log_position),
            );
        }
        Ok(())
    }
}

impl Store {
    /// A cluster snapshot: the directory, its history and the cluster state at the last
    /// applied entry, from one read transaction. Deterministic for one position (see the
    /// module documentation).
    pub fn cluster_snapshot(&self) -> Result<Snapshot, StoreError> {
        let txn = self.db.begin_read()?;
        let state = read_state(&txn)?;
        let policy = state.epoch.as_ref().map(|e| e.hash.clone());
        let mut snapshot = Self::snapshot_in(&txn, policy, Some(state.seq), state.last_apply_ms)?;
        snapshot.cluster = Some(state);
        Ok(snapshot)
    }

    /// Re-bootstrap: load `snapshot` into a new file beside this store's, then, under the write
    /// path, move the current file aside and put the new one in its place, and rebuild `index`
    /// from it. Returns the path the old file was moved to. Nothing changes when the snapshot
    /// does not load.
    pub fn replace_from_snapshot(
        &self,
        snapshot: &Snapshot,
        index: &DirectoryIndex,
    ) -> Result<PathBuf, ApplyError> {
        let prepared = self.path.with_extension("bootstrap");
        let _ = std::fs::remove_file(&prepared);
        {
            let fresh = Store::open(&prepared)?;
            if let Err(e) = fresh.import_snapshot(snapshot) {
                drop(fresh);
                let _ = std::fs::remove_file(&prepared);
                return Err(e);
            }
        }
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "warden.redb".into());
        let aside = self.path.with_file_name(format!(
            "{name}.before-bootstrap-{}",
            crate::api::directory::now_ms()
        ));
        let _serialized = self.write_lock.lock();
        self.db.replace_file(&prepared, &aside)?;
        let fresh = DirectoryIndex::new();
        let revision = self.load_index_locked(&fresh)?;
        index.replace_with(fresh);
        self.committed.send_replace(revision);
        Ok(aside)
    }
    /// Take a snapshot from one read transaction: writes keep committing while it is read.
    pub fn snapshot(
        &self,
        policy: Option<String>,
        log_position: Option<u64>,
        taken_at_ms: u64,
    ) -> Result<Snapshot, StoreError> {
        let txn = self.db.begin_read()?;
        Self::snapshot_in(&txn, policy, log_position, taken_at_ms)
    }

    fn snapshot_in(
        txn: &redb::ReadTransaction,
        policy: Option<String>,
        log_position: Option<u64>,
        taken_at_ms: u64,
    ) -> Result<Snapshot, StoreError> {
        let digest = Store::digest_in(txn)?.sha256;
        let mut directory = Store::export_in(txn)?;
        for token in &mut directory.tokens {
            token.last_used_ms = None;
        }
        let mut changelog = Vec::new();
        for item in txn.open_table(tables::CHANGELOG)?.iter()? {
            let (key, value) = item?;
            changelog.push(decode::<ChangeRecord>(
                "changelog",
                &key.value().to_string(),
                value.value(),
            )?);
        }
        let mut audit_by_org = Vec::new();
        for item in txn.open_table(tables::AUDIT_BY_ORG)?.iter()? {
            let (key, _) = item?;
            let (org, rev) = key.value();
            audit_by_org.push((org.to_string(), rev));
        }
        Ok(Snapshot {
            snapshot_format: SNAPSHOT_FORMAT,
            revision: directory.revision,
            apply_version: CHANGE_FORMAT,
            policy,
            log_position,
            taken_at_ms,
            digest,
            directory,
            changelog,
            audit_by_org,
            cluster: None,
        })
    }

    /// Load `snapshot` into this store, which must be empty, in one transaction: the tables (with
    /// the same invariant checks as a dump import), the change log and the audit index, verbatim.
    /// Returns the snapshot's revision; call [`Store::load_index`] afterwards.
    pub fn import_snapshot(&self, snapshot: &Snapshot) -> Result<u64, ApplyError> {
        if snapshot.apply_version > CHANGE_FORMAT {
            return Err(ApplyError::UnsupportedFormat {
                found: snapshot.apply_version,
                supported: CHANGE_FORMAT,
            });
        }
        if let Some(r) = snapshot.changelog.iter().find(|r| r.format > CHANGE_FORMAT) {
            return Err(ApplyError::UnsupportedFormat {
                found: r.format,
                supported: CHANGE_FORMAT,
            });
        }
        snapshot.validate()?;
        let _serialized = self.write_lock.lock();
        let txn = self.db.begin_write()?;
        let outcome = (|| {
            let mut t = WriteTables::open(&txn)?;
            if !is_empty(&t)? {
                return Err(Refusal::precondition(
                    "the store is not empty; import only into a new store (move the data file aside first)",
                )
                .into());
            }
            write_dump(&mut t, &snapshot.directory)?;
            for record in &snapshot.changelog {
                t.changelog.insert(record.revision, encode(record)?.as_slice())?;
            }
            for (org, rev) in &snapshot.audit_by_org {
                t.audit_by_org.insert((org.as_str(), *rev), ())?;
            }
            drop(t);
            if let Some(state) = &snapshot.cluster {
                write_state(&txn, state)?;
            }
            Ok::<_, ApplyError>(snapshot.revision)
        })();
        match outcome {
            Ok(revision) => {
                txn.commit()?;
                self.committed.send_replace(revision);
                Ok(revision)
            }
            Err(err) => {
                txn.abort()?;
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::ApplyContext;

    fn demo_store(dir: &std::path::Path, name: &str) -> Store {
        let store = Store::open(dir.join(name)).unwrap();
        for env in crate::store::demo::demo_changes(1_000) {
            store.apply(env, &ApplyContext::trusted()).unwrap();
        }
        store
    }

    #[test]
    fn a_snapshot_round_trips_with_its_log_and_the_next_write_follows_it() {
        let dir = tempfile::tempdir().unwrap();
        let source = demo_store(dir.path(), "a.redb");
        let snap = source.snapshot(Some("p".into()), None, 7).unwrap();
        let bytes = snap.to_json().unwrap();
        assert!(Snapshot::sniff(&bytes));
        assert!(!Snapshot::sniff(
            source.export().unwrap().to_json().unwrap().as_bytes()
        ));
        let back = Snapshot::from_json(&bytes).unwrap();
        assert_eq!(back, snap);

        let copy = Store::open(dir.path().join("b.redb")).unwrap();
        let mut commits = copy.subscribe_commits();
        assert_eq!(copy.import_snapshot(&back).unwrap(), snap.revision);
        assert_eq!(*commits.borrow_and_update(), snap.revision);
        assert_eq!(copy.digest().unwrap(), source.digest().unwrap());
        assert_eq!(copy.digest().unwrap().sha256, snap.digest);
        assert_eq!(
            copy.changes_since(0, 0).unwrap(),
            source.changes_since(0, 0).unwrap()
        );
        assert_eq!(
            copy.watch_page(0, "acme", 1000).unwrap(),
            source.watch_page(0, "acme", 1000).unwrap()
        );
        // Not twice.
        assert!(matches!(
            copy.import_snapshot(&back),
            Err(ApplyError::Refused(Refusal::FailedPrecondition { .. }))
        ));
    }

    #[test]
    fn a_broken_snapshot_is_refused_naming_the_field_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let snap = demo_store(dir.path(), "a.redb").snapshot(None, None, 7).unwrap();
        let target = Store::open(dir.path().join("b.redb")).unwrap();
        let refused_field = |s: &Snapshot| match target.import_snapshot(s) {
            Err(ApplyError::Refused(Refusal::InvalidArgument { field, .. })) => field,
            other => panic!("{other:?}"),
        };
        let mut gap = snap.clone();
        gap.changelog.remove(3);
        assert_eq!(refused_field(&gap), "changelog[3].revision");
        let mut short = snap.clone();
        short.changelog.pop();
        assert_eq!(refused_field(&short), "changelog");
        let mut moved = snap.clone();
        moved.revision += 1;
        assert_eq!(refused_field(&moved), "directory.revision");
        let mut stray = snap.clone();
        stray.audit_by_org.push(("acme".into(), snap.revision + 5));
        let at = stray.audit_by_org.len() - 1;
        assert_eq!(refused_field(&stray), format!("audit_by_org[{at}].revision"));
        let mut newer = snap.clone();
        newer.apply_version = CHANGE_FORMAT + 1;
        assert!(matches!(
            target.import_snapshot(&newer),
            Err(ApplyError::UnsupportedFormat { .. })
        ));
        assert_eq!(target.revision().unwrap(), 0);
        assert_eq!(target.import_snapshot(&snap).unwrap(), snap.revision);
    }

    #[test]
    fn a_cluster_snapshot_carries_the_position_and_replaces_a_running_store_file() {
        use crate::store::{Outcome, StreamIdentity};
        let dir = tempfile::tempdir().unwrap();
        // A sidecar's store: the demo directory as if applied from log entries 1..=N.
        let source = Store::open(dir.path().join("a.redb")).unwrap();
        let index = DirectoryIndex::new();
        let ctx = ApplyContext::trusted();
        let mut seq = 0;
        for mut env in crate::store::demo::demo_changes(1_000) {
            seq += 1;
            env.request_id = Some(format!("r{seq}"));
            source
                .apply_replicated(
                    seq,
                    5_000 + seq,
                    None,
                    Ok(env),
                    &ctx,
                    &index,
                    crate::store::Commit::Durable,
                    0,
                )
                .unwrap();
        }
        let stream = StreamIdentity {
            name: "warden".into(),
            created: "1".into(),
        };
        source.set_cluster_stream(&stream).unwrap();
        let snap = source.cluster_snapshot().unwrap();
        assert_eq!(snap.log_position, Some(seq));
        // Deterministic for one position: the apply time, not the clock.
        assert_eq!(snap.taken_at_ms, 5_000 + seq);
        assert_eq!(snap, source.cluster_snapshot().unwrap());
        let state = snap.cluster.clone().unwrap();
        assert_eq!((state.seq, state.stream.clone()), (seq, Some(stream.clone())));
        assert_eq!(state.outcomes.len() as u64, seq);
        let back = Snapshot::from_json(&snap.to_json().unwrap()).unwrap();

        // A running store with a stale directory of its own: its file is moved aside.
        let path = dir.path().join("b.redb");
        let stale = Store::open(&path).unwrap();
        let stale_index = DirectoryIndex::new();
        stale
            .apply_replicated(
                1,
                1,
                None,
                Ok(crate::store::demo::demo_changes(1)[0].clone()),
                &ctx,
                &stale_index,
                crate::store::Commit::Durable,
                0,
            )
            .unwrap();
        let aside = stale.replace_from_snapshot(&back, &stale_index).unwrap();
        assert!(aside.exists(), "{}", aside.display());
        assert!(!path.with_extension("bootstrap").exists());
        assert_eq!(stale.digest().unwrap(), source.digest().unwrap());
        assert_eq!(stale_index.revision(), snap.revision);
        assert_eq!(stale.cluster_position().unwrap().last_applied_seq, seq);
        assert_eq!(stale.cluster_stream().unwrap(), Some(stream));
        assert_eq!(
            stale.cluster_outcome("r1").unwrap(),
            source.cluster_outcome("r1").unwrap()
        );
        assert!(matches!(
            stale.cluster_outcome("r1").unwrap(),
            Some(Outcome::Applied { .. })
        ));
        // The next entry applies on top, as on the source.
        let next = crate::directory::ChangeEnvelope::new(
            "op",
            9,
            crate::directory::Change::UpsertUser {
                id: "zed".into(),
                email: "zed@example.com".into(),
                username: None,
                email_verified: None,
            },
        );
        for store in [&source, &stale] {
            store
                .apply_replicated(
                    seq + 1,
                    1,
                    None,
                    Ok(next.clone()),
                    &ctx,
                    &stale_index,
                    crate::store::Commit::Durable,
                    0,
                )
                .unwrap();
        }
        assert_eq!(stale.digest().unwrap(), source.digest().unwrap());
        assert_eq!(
            stale.changes_since(0, 0).unwrap(),
            source.changes_since(0, 0).unwrap()
        );
        // A reopen reads the new file.
        drop(stale);
        let reopened = Store::open(&path).unwrap();
        assert_eq!(reopened.digest().unwrap(), source.digest().unwrap());
    }
}
