//! The org directory on disk: redb tables, the one write path, the change log, export/import.
//!
//! Every write goes through [`Store::apply`]: one redb write transaction runs the directory's rules
//! against the current state (see `apply.rs`), appends the change to the change log with the next
//! revision, and commits durably, or aborts and leaves nothing behind. The returned
//! [`IndexOp`]s describe the effect on the in-memory [`DirectoryIndex`]; [`Store::apply_and_index`]
//! publishes them before the next write may start. Reads use redb read transactions and never
//! block writes.
//!
//! In cluster mode the only writer is [`Store::apply_replicated`] (`cluster.rs`), called by
//! the apply loop for each entry of the shared log; it commits the log position and the
//! entry's outcome in the same transaction as the change.
//!
//! This module never decides policy: authorization is asked of the caller's authorizer, and
//! roles of the caller's role predicate (both in [`ApplyContext`]).

mod apply;
pub mod audit;
mod cluster;
mod collaborators;
mod db;
pub mod demo;
mod digest;
mod domains;
mod dump;
mod invitations;
mod limits;
mod publishing;
mod read;
mod security;
mod snapshot;
mod sorted;
mod tables;
mod tokens;
mod usage;
mod verify;
mod watch;
mod write_times;

pub use crate::directory::ApplyContext;
pub use cluster::{
    ClusterPosition, ClusterStamp, ClusterState, Commit, Outcome, PolicyEpoch, Replicated, StreamIdentity,
};
pub use digest::{DIGESTED_TABLES, DirectoryDigest, TableDigest};
pub use dump::{DUMP_FORMAT, Dump};
pub use read::{ChangeRecord, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Member, Page, Stats};
pub use snapshot::{SNAPSHOT_FORMAT, Snapshot};
pub use sorted::{ListFilter, ListOrder, SortField};
pub use usage::{Merged, TelemetryBatch};
pub use verify::IndexCheck;
pub use watch::{WatchEntry, WatchPage};
pub use write_times::{WRITE_BUCKETS_NS, WriteOutcome, WriteTimes, WriteTimesSnapshot};

use crate::directory::{ChangeEnvelope, Refusal};
use crate::engine::index::{DirectoryIndex, IndexOp};
use parking_lot::Mutex;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use std::path::{Path, PathBuf};
use tables::{CHANGELOG, META, WriteTables};

/// The schema this build writes. Bump it, with an upgrade step in `open`, whenever a table's
/// key or value layout changes or tables are added.
///
/// - 1: users, orgs, memberships, teams, apps, grants, the change log.
/// - 2: adds the invitation, domain and membership-request tables and `orgs_by_creator` (an
///   upgrade creates them and fills `orgs_by_creator` from `orgs`).
pub const SCHEMA_VERSION: u64 = 2;

/// A storage failure: the file, the disk, or a record this build cannot read. Never a rule.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error(
        "cannot open {} as a Warden store: {source} (is it a redb file written by Warden, and intact? \
         restore it from a backup or an export, or move it aside to start empty)",
        path.display()
    )]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("{} is already open in another process (another `warden serve`?); stop it first", path.display())]
    AlreadyOpen { path: PathBuf },
    #[error(
        "{} has schema version {found}, newer than the {supported} this Warden understands; \
         run a newer Warden or restore an export",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error("{} is a redb file but not a Warden store (it has tables {tables:?}); refusing to use it", path.display())]
    NotWarden { path: PathBuf, tables: Vec<String> },
    #[error("corrupt record in table `{table}` at key `{key}`: {reason}")]
    Corrupt {
        table: String,
        key: String,
        reason: String,
    },
    #[error("cannot encode a record: {0}")]
    Encode(String),
    #[error("storage error: {0}")]
    Redb(#[from] redb::Error),
    #[error(
        "{} was closed after an I/O error and could not be opened again yet; the next write retries",
        path.display()
    )]
    Closed { path: PathBuf },
}

impl StoreError {
    /// An I/O failure of the file or the disk (or redb's refusal after one): the database
    /// must be reopened before it writes again.
    pub fn is_io(&self) -> bool {
        matches!(
            self,
            StoreError::Redb(redb::Error::Io(_) | redb::Error::PreviousIo)
        )
    }
}

macro_rules! redb_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Redb(e.into())
            }
        }
        impl From<$t> for ApplyError {
            fn from(e: $t) -> Self {
                ApplyError::Storage(StoreError::Redb(e.into()))
            }
        }
    )*};
}
redb_errors!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError
);

/// Why a write (or a paginated read) did not happen: the directory's rules refused it, or storage
/// failed. Refusals map to gRPC codes; storage errors are `INTERNAL`/`UNAVAILABLE`.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// The envelope's format is newer than this build understands. Not a refusal: a build that
    /// refused (and recorded the refusal of) a change a newer build accepts would diverge from
    /// it. A loop applying a shared log must stop at this entry (report it, keep serving
    /// checks) and resume after an upgrade; it must never skip it or record it as refused.
    #[error(
        "change format {found} is newer than the {supported} this Warden applies; \
         upgrade this Warden before it applies this change"
    )]
    UnsupportedFormat { found: u32, supported: u32 },
}

/// Run `f` with the context that judges one write under `policy`, pinned for the whole write:
/// authorization asks `engine`'s index with that policy (never the engine's current policy,
/// which a reload may swap mid-write), and roles and limits come from the same snapshot.
/// `operator` is the bit apply judges with; the envelope carries the same bit
/// ([`ChangeEnvelope::operator`]) so that a replay of the change log, calling this with each
/// record's bit and the policy it names, reaches the same outcome.
pub fn with_policy_context<R>(
    engine: &crate::engine::Engine,
    policy: &crate::engine::CompiledPolicy,
    operator: bool,
    f: impl FnOnce(&ApplyContext<'_>) -> R,
) -> R {
    let roles = policy.org_roles();
    let authorize = |actor: &str, org: &str, resource: &str, action: &str| {
        engine
            .check_with(
                policy,
                &crate::engine::CheckInput {
                    subject: actor,
                    org,
                    resource,
                    action,
                },
            )
            .map(|d| d.allowed)
            .unwrap_or(false)
    };
    let is_role = |role: &str| roles.contains(role);
    let ctx = ApplyContext::new(&authorize, &is_role)
        .with_limits(&policy.limits)
        .as_operator(operator);
    f(&ctx)
}

/// The outcome of a committed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The change's revision in the change log (gap-free, starting at 1).
    pub revision: u64,
    /// What the index must do to reflect the write.
    pub index_ops: Vec<IndexOp>,
}

/// The directory on disk.
pub struct Store {
    db: db::Db,
    /// Serializes the write path, including index publication in [`Store::apply_and_index`]: redb
    /// already allows one write transaction at a time, but the authorizer of the next write reads
    /// the index, so the index must be updated before that write begins. A `parking_lot` mutex,
    /// not a Tokio one: it is never held across `.await`.
    write_lock: Mutex<()>,
    path: PathBuf,
    /// Latency of each write transaction by outcome, for `/metrics`.
    write_times: WriteTimes,
    /// The last committed revision, sent after every commit that appends to the change log
    /// (writes, imports), and for writes through [`Store::apply_and_index`] only once the
    /// index reflects them. Followers of the log (`WatchChanges`) wait on it instead of polling;
    /// they read what was committed from the change log itself.
    committed: tokio::sync::watch::Sender<u64>,
    /// Cluster mode: usage flushes also queue their deltas for the telemetry stream
    /// (`usage::TelemetryBatch`, set by the cluster before the flusher starts).
    telemetry_outbox: std::sync::atomic::AtomicBool,
}

/// How many index ops `load_index` hands over at a time: bounds memory while loading millions of
/// memberships, and keeps each write-lock hold on the index short.
const LOAD_BATCH: usize = 16 * 1024;

impl Store {
    /// Open the store at `path`, creating the file (and its parent directory) on first start.
    ///
    /// The whole file is checked on open (redb's integrity check), so a damaged or foreign file is
    /// an error, never a silently empty directory. A file written by a newer schema is refused.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let db = db::open_database(&path)?;

        let (found, had_sorted) = {
            let txn = db.begin_read()?;
            let had_sorted = {
                use redb::TableHandle;
                txn.list_tables()?.any(|t| t.name() == "sorted")
            };
            let foreign = tables::foreign_tables(&txn)?;
            if !foreign.is_empty() {
                return Err(StoreError::NotWarden {
                    path,
                    tables: foreign,
                });
            }
            let found = match txn.open_table(META) {
                Ok(meta) => meta.get("schema_version")?.map(|v| v.value()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(e.into()),
            };
            (found, had_sorted)
        };
        let mut backfill = false;
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema {
                    path,
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(v) if v == SCHEMA_VERSION => {
                // Tables added since the file was created (tokens, …) are created empty, so
                // readers never meet a missing one. Same schema: the file stays readable by
                // the build that wrote it.
                let missing = {
                    use redb::TableHandle;
                    let txn = db.begin_read()?;
                    let names: Vec<String> = txn.list_tables()?.map(|t| t.name().to_string()).collect();
                    tables::TABLE_NAMES.iter().any(|n| !names.iter().any(|m| m == n))
                };
                if missing {
                    let txn = db.begin_write()?;
                    tables::create_all(&txn)?;
                    txn.commit()?;
                    backfill = true;
                }
            }
            Some(v) if v >= 1 => {
                // Every step so far only adds tables: opening them in a write transaction
                // creates the missing ones; existing records keep their layout.
                let txn = db.begin_write()?;
                {
                    let mut meta = txn.open_table(META)?;
                    meta.insert("schema_version", SCHEMA_VERSION)?;
                    tables::create_all(&txn)?;
                    let mut t = WriteTables::open(&txn)?;
                    if v < 2 {
                        let mut orgs = Vec::new();
                        for item in t.orgs.iter()? {
                            let (key, value) = item?;
                            orgs.push(tables::decode::<crate::directory::Org>(
                                "orgs",
                                key.value(),
                                value.value(),
                            )?);
                        }
                        for org in &orgs {
                            limits::remember_org(&mut t, org)?;
                        }
                    }
                }
                txn.commit()?;
                tracing::info!(from = v, to = SCHEMA_VERSION, path = %path.display(), "store schema upgraded");
                // Older files predate the audit index too.
                backfill = true;
            }
            Some(v) => {
                return Err(StoreError::Corrupt {
                    table: "meta".into(),
                    key: "schema_version".into(),
                    reason: format!("unknown schema version {v}"),
                });
            }
            None => {
                // First start: create every table so readers never meet a missing one.
                let txn = db.begin_write()?;
                {
                    let mut meta = txn.open_table(META)?;
                    meta.insert("schema_version", SCHEMA_VERSION)?;
                    tables::create_all(&txn)?;
                }
                txn.commit()?;
            }
        }
        let revision = {
            let txn = db.begin_read()?;
            last_revision(&txn.open_table(CHANGELOG)?)?
        };
        let store = Store {
            db: db::Db::new(db, path.clone()),
            write_lock: Mutex::new(()),
            path,
            write_times: WriteTimes::default(),
            committed: tokio::sync::watch::Sender::new(revision),
            telemetry_outbox: std::sync::atomic::AtomicBool::new(false),
        };
        if found.is_some() && !had_sorted {
            // A file from before sorted lists: index what it holds, once.
            store.backfill_sorted()?;
        }
        if backfill {
            store.backfill_audit()?;
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last committed revision, updated after every commit that appends to the change
    /// log; `changed()`/`wait_for` on it wakes a follower of the log.
    pub fn subscribe_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.committed.subscribe()
    }

    /// Pass a write's result through, noting an I/O failure (see `db.rs`).
    fn noting_io<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(e) = &result {
            self.db.note(e);
        }
        result
    }

    /// Apply one change: validate, authorize, check invariants, write, append to the change log,
    /// commit. A refusal or an error leaves the store exactly as it was.
    pub fn apply(&self, env: ChangeEnvelope, ctx: &ApplyContext<'_>) -> Result<Applied, ApplyError> {
        let _serialized = self.write_lock.lock();
        let result = self.apply_locked(&env, ctx);
        if let Ok(applied) = &result {
            self.committed.send_replace(applied.revision);
        }
        result
    }

    /// [`Store::apply`], then publish the effects to `index` before releasing the write path, so
    /// the next write is authorized against an index that includes this one.
    pub fn apply_and_index(
        &self,
        env: ChangeEnvelope,
        ctx: &ApplyContext<'_>,
        index: &DirectoryIndex,
    ) -> Result<Applied, ApplyError> {
        let _serialized = self.write_lock.lock();
        let reopens = self.db.reopens();
        let result = self.apply_locked(&env, ctx);
        if self.db.reopens() != reopens {
            // The database was reopened after an I/O error: a write that reported failure
            // may have reached the file after all, so the index is rebuilt from the tables
            // (which include this write if it committed).
            let fresh = DirectoryIndex::new();
            match self.load_index_locked(&fresh) {
                Ok(revision) => {
                    tracing::warn!(revision, "index rebuilt from the reopened store");
                    index.replace_with(fresh);
                    self.committed.send_replace(revision);
                    return result;
                }
                Err(e) => tracing::error!(error = %e, "rebuilding the index after a reopen failed"),
            }
        }
        let applied = result?;
        index.apply(applied.revision, &applied.index_ops);
        // After the index: a follower woken here that checks permissions sees this write.
        self.committed.send_replace(applied.revision);
        Ok(applied)
    }

    fn apply_locked(&self, env: &ChangeEnvelope, ctx: &ApplyContext<'_>) -> Result<Applied, ApplyError> {
        self.apply_locked_stamped(env, ctx, None, None)
    }

    fn apply_locked_stamped(
        &self,
        env: &ChangeEnvelope,
        ctx: &ApplyContext<'_>,
        stamp: Option<&ClusterStamp>,
        key: Option<&str>,
    ) -> Result<Applied, ApplyError> {
        // One span per write transaction (exported when OTLP is on; the log shows it at debug).
        let span = tracing::debug_span!(
            "store.write",
            change = env.change.kind(),
            actor = %env.actor,
            request_id = env.request_id.as_deref().unwrap_or(""),
            outcome = tracing::field::Empty,
            revision = tracing::field::Empty,
        );
        let _entered = span.enter();
        let started = std::time::Instant::now();
        let result = self.apply_in_txn(env, ctx, stamp, key);
        let outcome = match &result {
            Ok(_) => WriteOutcome::Committed,
            Err(ApplyError::Refused(_)) => WriteOutcome::Refused,
            Err(_) => WriteOutcome::Error,
        };
        self.write_times.observe(outcome, started.elapsed());
        span.record("outcome", outcome.label());
        if let Ok(applied) = &result {
            span.record("revision", applied.revision);
        }
        if let Err(ApplyError::Storage(e)) = &result {
            self.db.note(e);
        }
        result
    }

    /// The write-transaction latencies by outcome, as read now.
    pub fn write_times(&self) -> Vec<WriteTimesSnapshot> {
        self.write_times.snapshot()
    }

    /// One write transaction for `env`. With a `stamp` (cluster mode), the log position and
    /// the outcome are committed in the same transaction as the change.
    fn apply_in_txn(
        &self,
        env: &ChangeEnvelope,
        ctx: &ApplyContext<'_>,
        stamp: Option<&ClusterStamp>,
        key: Option<&str>,
    ) -> Result<Applied, ApplyError> {
        let mut txn = self.db.begin_write()?;
        cluster::set_durability(&mut txn, stamp)?;
        let outcome = (|| {
            let mut t = WriteTables::open(&txn)?;
            // Before apply: a deleted app's or token's org is known only from the old state.
            let org = audit::org_in_txn(&t, &env.change)?;
            let index_ops = apply::apply_change(&mut t, env, ctx)?;
            sorted::touch(&mut t, &env.change, org.as_deref(), env.at_ms)?;
            let revision = next_revision(&t.changelog)?;
            if let Some(org) = &org {
                t.audit_by_org.insert((org.as_str(), revision), ())?;
            }
            let record = ChangeRecord {
                revision,
                format: env.format,
                actor: env.actor.clone(),
                at_ms: env.at_ms,
                change: env.change.clone(),
                // The bit apply judged with, which is the context's (the API sets the
                // envelope's to the same value; trusted tools judge as the operator).
                operator: ctx.operator,
                request_id: env.request_id.clone(),
                policy: env.policy.clone(),
                stream_seq: stamp.map(|s| s.seq),
                requested_at_ms: stamp.map(|s| s.requested_at_ms),
            };
            t.changelog
                .insert(revision, tables::encode(&record)?.as_slice())?;
            if let Some(stamp) = stamp {
                let outcome = Outcome::Applied {
                    seq: stamp.seq,
                    revision,
                };
                cluster::record_in_txn(&txn, stamp, &outcome, key)?;
            }
            Ok::<_, ApplyError>(Applied { revision, index_ops })
        })();
        match outcome {
            Ok(applied) => {
                txn.commit()?;
                tracing::debug!(revision = applied.revision, change = env.change.kind(), actor = %env.actor, "applied");
                Ok(applied)
            }
            Err(err) => {
                txn.abort()?;
                Err(err)
            }
        }
    }

    /// Feed the whole directory to a fresh `index` (startup): every membership, team membership,
    /// grant and org-owned app, then the last committed revision. Streams the tables in batches,
    /// from one read snapshot, so the index matches exactly one revision.
    pub fn load_index(&self, index: &DirectoryIndex) -> Result<u64, StoreError> {
        // Hold the write path so no write commits between the snapshot and publication.
        let _serialized = self.write_lock.lock();
        self.load_index_locked(index)
    }

    /// [`Store::load_index`] for a caller that already holds the write path.
    fn load_index_locked(&self, index: &DirectoryIndex) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        Self::load_index_from(&txn, index)
    }

    /// Feed `index` from one read snapshot; the snapshot's revision comes back. Needs no
    /// lock: a read transaction sees one committed revision however long it runs.
    fn load_index_from(txn: &redb::ReadTransaction, index: &DirectoryIndex) -> Result<u64, StoreError> {
        let mut batch = Vec::with_capacity(LOAD_BATCH);
        let flush = |batch: &mut Vec<IndexOp>, force: bool| {
            if force || batch.len() >= LOAD_BATCH {
                index.apply(0, batch);
                batch.clear();
            }
        };

        for item in txn.open_table(tables::MEMBERSHIPS)?.iter()? {
            let (key, value) = item?;
            let (org, user) = key.value();
            let m: crate::directory::Membership =
                tables::decode("memberships", &format!("{org}/{user}"), value.value())?;
            batch.push(IndexOp::SetMember {
                org: m.org,
                user: m.user,
                role: m.role,
            });
            flush(&mut batch, false);
        }
        for item in txn.open_table(tables::TEAM_MEMBERS)?.iter()? {
            let (key, _) = item?;
            let (org, team, user) = key.value();
            batch.push(IndexOp::AddTeamMember {
                org: org.into(),
                team: team.into(),
                user: user.into(),
            });
            flush(&mut batch, false);
        }
        let apps = txn.open_table(tables::APPS)?;
        for item in txn.open_table(tables::APPS_BY_OWNER)?.range(("org", "", "")..)? {
            let (key, _) = item?;
            let (kind, org, app) = key.value();
            if kind != "org" {
                break;
            }
            // Labels live on the app record (policies can scope rules by them).
            let labels = tables::get_json::<crate::directory::App>(&apps, "apps", app)?
                .map(|record| record.labels)
                .unwrap_or_default();
            batch.push(IndexOp::AddApp {
                org: org.into(),
                app: app.into(),
                labels,
            });
            flush(&mut batch, false);
        }
        for item in txn.open_table(tables::TEAM_GRANTS)?.iter()? {
            let (key, _) = item?;
            let (org, team, app) = key.value();
            batch.push(IndexOp::GrantApp {
                org: org.into(),
                team: team.into(),
                app: app.into(),
            });
            flush(&mut batch, false);
        }
        batch.extend(Self::token_index_ops(txn)?);
        batch.extend(Self::collaborator_index_ops(txn)?);
        flush(&mut batch, true);
        let revision = last_revision(&txn.open_table(CHANGELOG)?)?;
        index.apply(revision, &[]);
        Ok(revision)
    }

    /// The last committed revision (0 for a new store).
    pub fn revision(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        last_revision(&txn.open_table(CHANGELOG)?)
    }
}

fn last_revision(changelog: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64, StoreError> {
    Ok(changelog.last()?.map(|(k, _)| k.value()).unwrap_or(0))
}

fn next_revision(changelog: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64, StoreError> {
    let last = last_revision(changelog)?;
    last.checked_add(1).ok_or_else(|| StoreError::Corrupt {
        table: "changelog".into(),
        key: last.to_string(),
        reason: "revision counter exhausted".into(),
    })
}

/// Whether the directory holds anything at all (imports need an empty store).
fn is_empty(t: &WriteTables<'_>) -> Result<bool, StoreError> {
    Ok(t.users.is_empty()?
        && t.orgs.is_empty()?
        && t.apps.is_empty()?
        && t.memberships.is_empty()?
        && t.changelog.is_empty()?)
}
