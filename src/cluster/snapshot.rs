//! Cluster snapshots, purge and bootstrap.
//!
//! A cluster snapshot ([`crate::store::Store::cluster_snapshot`]: the directory at revision R,
//! its change log, and the sidecar's cluster state at stream sequence S) is stored in the
//! JetStream object store, bucket `<stream>-snapshots` (file storage, the stream's replicas),
//! as the object `snapshot-<S, 20 digits>`. The same S gives the same bytes on every sidecar,
//! so two sidecars publishing at once only write the same object twice. After a snapshot is
//! stored, the [`KEEP_SNAPSHOTS`] newest are kept (older ones deleted) and the stream is purged
//! below the oldest kept one's S + 1: only entries every kept snapshot covers go, and never
//! an entry the stream stored less than `--cluster-retain` ago (default [`DEFAULT_RETAIN`]),
//! so a sidecar that stood still for less than that (a restart, a consumer recreated after a
//! leader election) tails the log instead of re-bootstrapping.
//!
//! At the start of the apply loop ([`Cluster::prepare_start`]): a store that follows another
//! stream (deleted and recreated under the same name) or that applied past the stream's last
//! entry halts the loop (checks keep serving); an empty store loads the newest snapshot when
//! there is one; a store whose next entry was purged re-bootstraps (its file moved aside, the
//! newest snapshot loaded in its place). At process start, [`check_store`] refuses a
//! non-empty store that never followed a log (`warden cluster init` makes one a stream's first
//! snapshot) or that follows another stream.
//!
//! Must not: take a snapshot of a halted sidecar or of a store that does not follow this
//! stream (it would seed the cluster with another history).

use super::{Cluster, REPLICAS};
use crate::engine::Engine;
use crate::store::{Snapshot, Store, StreamIdentity};
use async_nats::jetstream::{self, object_store, stream};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::AsyncReadExt;
use tokio_stream::StreamExt;

/// Snapshots kept in the bucket. Two: a sidecar reading the older one while a newer one is
/// stored still finds its entries in the stream (they are purged only behind the older).
pub const KEEP_SNAPSHOTS: usize = 2;

/// Default `--cluster-snapshot-every`: a sidecar publishes a snapshot when it applies an
/// entry whose sequence is a multiple of it (skipped when the bucket already has one at least
/// as new). Bounds the stream to about 2 × this many entries and a new sidecar's replay to
/// this many; 0 turns it off.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 10_000;

/// Default `--cluster-retain`: the purge after a snapshot keeps every entry stored less than
/// this long ago, even one a kept snapshot covers. At a sustained 1,000 entries/s and the
/// default snapshot interval, the stream holds ~600k entries instead of ~20k; a sidecar away
/// for less than this (a restart, a rolling upgrade, a stalled consumer) catches up from the
/// log rather than loading a snapshot. The same span as the duplicate window.
pub const DEFAULT_RETAIN: std::time::Duration = super::DUPLICATE_WINDOW;

/// The key-value bucket in which sidecars claim a periodic snapshot: the first to create the
/// key of a position publishes, the others skip it. Without it every sidecar serialised the
/// whole directory at each multiple of `--cluster-snapshot-every` (three times the work, on
/// every sidecar's CPU, for one object). Claims expire after an hour.
pub fn claims_bucket_name(stream: &str) -> String {
    format!("{stream}-snapshot-claims")
}

/// Claim the periodic snapshot at `seq` of the stream created at `created` (a recreated
/// stream's positions are new ones). `Ok(false)`: another sidecar has it.
async fn claim(js: &jetstream::Context, stream: &str, created: &str, seq: u64) -> Result<bool, String> {
    use async_nats::jetstream::kv;
    let name = claims_bucket_name(stream);
    let claims = match js.get_key_value(&name).await {
        Ok(claims) => claims,
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: name.clone(),
                description: format!("which sidecar publishes each periodic snapshot of `{stream}`"),
                history: 1,
                max_age: std::time::Duration::from_secs(3600),
                storage: jetstream::stream::StorageType::File,
                num_replicas: REPLICAS,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("creating the bucket `{name}`: {e}"))?,
    };
    let value = format!("process {} on entry {seq}", std::process::id());
    let created: String = created.chars().filter(char::is_ascii_alphanumeric).collect();
    let key = format!("{created}-{seq}");
    // A bucket created a moment ago may not answer every request yet (its replicas elect a
    // leader): try again a few times. A create is conditional, so a retry never claims twice.
    let mut attempt = 0;
    loop {
        match claims.create(&key, value.clone().into()).await {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => return Ok(false),
            Err(e) if attempt < 10 => {
                tracing::debug!(seq, error = %e, "claiming the periodic snapshot; trying again");
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(e) => return Err(format!("claiming the snapshot at {seq} in `{name}`: {e}")),
        }
    }
}

/// The bucket holding `stream`'s snapshots.
pub fn bucket_name(stream: &str) -> String {
    format!("{stream}-snapshots")
}

/// The object name of the snapshot at stream sequence `seq` (sorts by sequence).
pub fn object_name(seq: u64) -> String {
    format!("snapshot-{seq:020}")
}

fn object_seq(name: &str) -> Option<u64> {
    name.strip_prefix("snapshot-")?.parse().ok()
}

/// The identity of a stream from its info (name and creation time).
pub fn identity(info: &stream::Info) -> StreamIdentity {
    StreamIdentity {
        name: info.config.name.clone(),
        created: info.created.unix_timestamp_nanos().to_string(),
    }
}

/// Why a snapshot was not published or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("this sidecar stopped applying the directory log ({0}); not publishing its state")]
    Halted(String),
    #[error("{0}")]
    NotFollowing(String),
    #[error("the directory store failed: {0}")]
    Store(String),
    #[error("the snapshot store: {0}")]
    Log(String),
}

/// Why the apply loop did not start.
#[derive(Debug)]
pub(super) enum StartError {
    /// Stop applying (checks keep serving): the store does not belong to the log as it is.
    Halt(String),
    /// Try again shortly (the log or the store did not answer).
    Retry(String),
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub object: String,
    pub seq: u64,
    pub revision: u64,
    pub bytes: usize,
    /// The sequences of the snapshots kept, oldest first.
    pub kept: Vec<u64>,
    /// The stream's entries below this sequence are purged (0: nothing purged).
    pub purged_below: u64,
}

/// Open the bucket, creating it (file storage, the stream's replicas) when `create`.
pub async fn bucket(
    js: &jetstream::Context,
    stream: &str,
    create: bool,
) -> Result<Option<object_store::ObjectStore>, String> {
    let name = bucket_name(stream);
    match js.get_object_store(&name).await {
        Ok(b) => Ok(Some(b)),
        Err(e) if !create => {
            if e.kind() == jetstream::context::ObjectStoreErrorKind::GetStore {
                Ok(None)
            } else {
                Err(format!("opening bucket `{name}`: {e}"))
            }
        }
        Err(_) => js
            .create_object_store(object_store::Config {
                bucket: name.clone(),
                description: Some(format!("Warden directory snapshots of stream `{stream}`")),
                storage: stream::StorageType::File,
                num_replicas: REPLICAS,
                ..Default::default()
            })
            .await
            .map(Some)
            .map_err(|e| format!("creating bucket `{name}`: {e}")),
    }
}

/// The snapshots in `bucket`, by sequence, oldest first.
pub async fn list(bucket: &object_store::ObjectStore) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    let mut objects = bucket
        .list()
        .await
        .map_err(|e| format!("listing snapshots: {e}"))?;
    while let Some(info) = objects.next().await {
        let info = info.map_err(|e| format!("listing snapshots: {e}"))?;
        if !info.deleted
            && let Some(seq) = object_seq(&info.name)
        {
            out.push(seq);
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Store `snapshot` (its bytes `bytes`) as the object of its sequence, unless that object is
/// there with the same digest already.
pub async fn put(
    bucket: &object_store::ObjectStore,
    snapshot: &Snapshot,
    bytes: &[u8],
) -> Result<String, String> {
    let seq = snapshot.log_position.unwrap_or(0);
    let name = object_name(seq);
    if let Ok(info) = bucket.info(&name).await
        && info.metadata.get("digest") == Some(&snapshot.digest)
        && info.size == bytes.len()
    {
        return Ok(name);
    }
    let metadata = HashMap::from([
        ("seq".to_string(), seq.to_string()),
        ("revision".to_string(), snapshot.revision.to_string()),
        ("digest".to_string(), snapshot.digest.clone()),
    ]);
    let meta = object_store::ObjectMetadata {
        name: name.clone(),
        description: Some(format!(
            "directory at revision {} (log entry {seq})",
            snapshot.revision
        )),
        metadata,
        ..Default::default()
    };
    let mut reader = bytes;
    bucket
        .put(meta, &mut reader)
        .await
        .map_err(|e| format!("storing {name}: {e}"))?;
    Ok(name)
}

/// Read the snapshot at `seq`: (parsed, size in bytes).
pub async fn fetch(bucket: &object_store::ObjectStore, seq: u64) -> Result<(Snapshot, usize), String> {
    let name = object_name(seq);
    let mut object = bucket
        .get(&name)
        .await
        .map_err(|e| format!("reading {name}: {e}"))?;
    let mut bytes = Vec::new();
    object
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("reading {name}: {e}"))?;
    let snapshot =
        Snapshot::from_json(&bytes).map_err(|e| format!("{name} is not a readable snapshot: {e}"))?;
    if snapshot.log_position != Some(seq) {
        return Err(format!(
            "{name} holds log position {:?}, not {seq}",
            snapshot.log_position
        ));
    }
    Ok((snapshot, bytes.len()))
}

/// Delete all but the [`KEEP_SNAPSHOTS`] newest snapshots, then purge the stream below the
/// oldest kept one's sequence + 1, or below the first entry stored less than `retain` ago if
/// that is earlier. Returns (kept, purged below; 0 when nothing was purged).
pub async fn prune_and_purge(
    js: &jetstream::Context,
    stream_name: &str,
    bucket: &object_store::ObjectStore,
    retain: std::time::Duration,
) -> Result<(Vec<u64>, u64), String> {
    let all = list(bucket).await?;
    let cut = all.len().saturating_sub(KEEP_SNAPSHOTS);
    for seq in &all[..cut] {
        bucket
            .delete(object_name(*seq))
            .await
            .map_err(|e| format!("deleting {}: {e}", object_name(*seq)))?;
    }
    let kept = all[cut..].to_vec();
    let oldest = kept.first().copied().unwrap_or(0);
    if oldest == 0 {
        return Ok((kept, 0));
    }
    let mut s = js
        .get_stream(stream_name)
        .await
        .map_err(|e| format!("opening stream `{stream_name}`: {e}"))?;
    let state = s
        .info()
        .await
        .map_err(|e| format!("reading stream `{stream_name}`: {e}"))?
        .state
        .clone();
    let mut below = oldest + 1;
    if !retain.is_zero() && state.messages > 0 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let cutoff = now.saturating_sub(retain).as_nanos() as i128;
        let stored_at = |seq: u64| {
            let s = &s;
            async move {
                s.get_raw_message(seq)
                    .await
                    .map(|m| m.time.unix_timestamp_nanos())
                    .map_err(|e| format!("reading entry {seq} of `{stream_name}`: {e}"))
            }
        };
        let hi = below.min(state.last_sequence + 1);
        below = first_stored_since(state.first_sequence, hi, cutoff, stored_at).await?;
    }
    if below <= state.first_sequence {
        return Ok((kept, 0));
    }
    s.purge()
        .sequence(below)
        .await
        .map_err(|e| format!("purging stream `{stream_name}` below entry {below}: {e}"))?;
    Ok((kept, below))
}

/// The first sequence in `lo..hi` whose entry was stored at or after `cutoff` (Unix time in
/// nanoseconds; `hi` if none), by binary search: entries are stored in time order. An entry
/// that cannot be read (removed meanwhile) is an error, and the caller purges nothing.
async fn first_stored_since<F, Fut>(
    mut lo: u64,
    mut hi: u64,
    cutoff: i128,
    stored_at: F,
) -> Result<u64, String>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<i128, String>>,
{
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if stored_at(mid).await? >= cutoff {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// At process start in cluster mode: refuse a store that holds a directory but never followed
/// a directory log, or that follows another stream. (A stream recreated under the same name
/// is found once the log answers, by [`Cluster::prepare_start`].)
pub fn check_store(store: &Store, stream: &str) -> Result<(), String> {
    let fail = |e: crate::store::StoreError| e.to_string();
    let followed = store.cluster_stream().map_err(fail)?;
    let position = store.cluster_position().map_err(fail)?;
    let revision = store.revision().map_err(fail)?;
    match followed {
        Some(id) if id.name != stream => Err(format!(
            "{} follows directory log stream `{}`, not `{stream}`: start with --cluster-stream {} \
             or with an empty data directory (it bootstraps from the stream's newest snapshot)",
            store.path().display(),
            id.name,
            id.name
        )),
        None if revision > 0 && position.last_applied_seq == 0 => Err(format!(
            "{} holds a directory (revision {revision}) that is not part of a directory log: to make \
             it the first snapshot of a new stream run `warden cluster init --data <dir> --cluster <urls>`, \
             or start this sidecar with an empty data directory to join the stream's directory",
            store.path().display()
        )),
        _ => Ok(()),
    }
}

impl Cluster {
    /// Publish a snapshot of this sidecar's store at its last applied entry, keep the
    /// [`KEEP_SNAPSHOTS`] newest and purge the stream behind the oldest kept.
    pub async fn publish_snapshot(&self) -> Result<Published, SnapshotError> {
        if let Some(reason) = self.halted.lock().clone() {
            return Err(SnapshotError::Halted(reason));
        }
        let store = self
            .store
            .get()
            .cloned()
            .ok_or_else(|| SnapshotError::NotFollowing("the apply loop has not started".into()))?;
        let mut s = self
            .js
            .get_stream(&self.config.stream)
            .await
            .map_err(|e| SnapshotError::Log(format!("opening stream `{}`: {e}", self.config.stream)))?;
        let info = s.info().await.map_err(|e| SnapshotError::Log(e.to_string()))?;
        let current = identity(info);
        let started = Instant::now();
        let snapshot = tokio::task::spawn_blocking(move || store.cluster_snapshot())
            .await
            .map_err(|e| SnapshotError::Store(e.to_string()))?
            .map_err(|e| SnapshotError::Store(e.to_string()))?;
        let followed = snapshot.cluster.as_ref().and_then(|c| c.stream.clone());
        if followed.as_ref() != Some(&current) {
            return Err(SnapshotError::NotFollowing(format!(
                "this sidecar's store does not follow stream `{}` as it is now (yet); not publishing",
                self.config.stream
            )));
        }
        let bytes = snapshot
            .to_json()
            .map_err(|e| SnapshotError::Store(e.to_string()))?;
        let bucket = bucket(&self.js, &self.config.stream, true)
            .await
            .map_err(SnapshotError::Log)?
            .ok_or_else(|| SnapshotError::Log("no bucket".into()))?;
        let object = put(&bucket, &snapshot, &bytes)
            .await
            .map_err(SnapshotError::Log)?;
        let (kept, purged_below) =
            prune_and_purge(&self.js, &self.config.stream, &bucket, self.config.retain)
                .await
                .map_err(SnapshotError::Log)?;
        let seq = snapshot.log_position.unwrap_or(0);
        tracing::info!(
            object,
            seq,
            revision = snapshot.revision,
            bytes = bytes.len(),
            ?kept,
            purged_below,
            took_ms = started.elapsed().as_millis() as u64,
            "published a directory snapshot"
        );
        Ok(Published {
            object,
            seq,
            revision: snapshot.revision,
            bytes: bytes.len(),
            kept,
            purged_below,
        })
    }

    /// Publish a snapshot in the background when `seq` is a multiple of
    /// `--cluster-snapshot-every`, the bucket has none as new and this sidecar is the first to
    /// claim it (see [`claims_bucket_name`]; when claiming fails it publishes all the same).
    pub(super) fn maybe_snapshot(self: &Arc<Self>, seq: u64) {
        let every = self.config.snapshot_every;
        if every == 0 || seq == 0 || !seq.is_multiple_of(every) {
            return;
        }
        let Some(created) = self.following.lock().as_ref().map(|f| f.created.clone()) else {
            return;
        };
        let me = self.clone();
        tokio::spawn(async move {
            if let Ok(Some(b)) = bucket(&me.js, &me.config.stream, false).await
                && list(&b).await.is_ok_and(|l| l.last().is_some_and(|s| *s >= seq))
            {
                return;
            }
            match claim(&me.js, &me.config.stream, &created, seq).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(seq, "another sidecar publishes the periodic snapshot");
                    return;
                }
                Err(e) => {
                    tracing::warn!(seq, error = %e, "could not claim the periodic snapshot; publishing it anyway")
                }
            }
            if let Err(e) = me.publish_snapshot().await {
                tracing::warn!(seq, error = %e, "the periodic directory snapshot failed; the next one retries");
            }
        });
    }

    /// Before the consumer starts: check that this store follows the stream as it is, and
    /// bootstrap it from the newest snapshot when it is empty or its next entry was purged.
    /// `Err` halts the loop with that reason.
    pub(super) async fn prepare_start(
        &self,
        s: &mut stream::Stream,
        store: &Arc<Store>,
        engine: &Arc<Engine>,
    ) -> Result<(), StartError> {
        use StartError::{Halt, Retry};
        let info = s
            .info()
            .await
            .map_err(|e| Retry(format!("reading the stream's state: {e}")))?;
        let current = identity(info);
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        let store2 = store.clone();
        let (followed, position, revision) = tokio::task::spawn_blocking(move || {
            Ok::<_, crate::store::StoreError>((
                store2.cluster_stream()?,
                store2.cluster_position()?,
                store2.revision()?,
            ))
        })
        .await
        .map_err(|e| Retry(e.to_string()))?
        .map_err(|e| Retry(e.to_string()))?;
        let name = &self.config.stream;
        let empty = revision == 0 && position.last_applied_seq == 0;
        // An empty store has nothing to lose: it adopts the stream as it is.
        if !empty
            && let Some(followed) = &followed
            && *followed != current
        {
            return Err(Halt(format!(
                "stream `{name}` is not the one this sidecar's store followed (it was deleted and \
                 recreated; this store applied up to entry {} of the old one): checks keep serving \
                 the old directory; to join the new stream stop this sidecar and start it with an \
                 empty data directory",
                position.last_applied_seq
            )));
        }
        if position.last_applied_seq > last {
            return Err(Halt(format!(
                "this sidecar applied up to entry {} but stream `{name}` ends at entry {last}: the \
                 stream was deleted or recreated; checks keep serving the old directory; to join \
                 the new stream stop this sidecar and start it with an empty data directory",
                position.last_applied_seq
            )));
        }
        let behind = position.last_applied_seq + 1 < first;
        if empty || behind {
            let bucket = bucket(&self.js, name, false).await.map_err(Retry)?;
            let newest = match &bucket {
                Some(b) => list(b).await.map_err(Retry)?.last().copied(),
                None => None,
            };
            match (bucket, newest) {
                (Some(b), Some(seq)) if seq + 1 >= first => {
                    self.bootstrap(&b, seq, &current, empty, store, engine).await?;
                }
                (_, newest) if behind => {
                    return Err(Halt(format!(
                        "stream `{name}` starts at entry {first}, after this sidecar's next entry {}, \
                         and no snapshot covers the gap (newest: {newest:?}): publish one from an \
                         up-to-date sidecar (`warden admin snapshot --publish`) and restart this one",
                        position.last_applied_seq + 1
                    )));
                }
                _ => {}
            }
        }
        // Record the stream followed (a new or empty store, or one from an older build).
        let (store2, current2) = (store.clone(), current.clone());
        tokio::task::spawn_blocking(move || {
            if store2.cluster_stream()?.as_ref() != Some(&current2) {
                store2.set_cluster_stream(&current2)?;
            }
            Ok::<_, crate::store::StoreError>(())
        })
        .await
        .map_err(|e| Retry(e.to_string()))?
        .map_err(|e| Retry(e.to_string()))?;
        *self.following.lock() = Some(current);
        Ok(())
    }

    async fn bootstrap(
        &self,
        bucket: &object_store::ObjectStore,
        seq: u64,
        current: &StreamIdentity,
        empty: bool,
        store: &Arc<Store>,
        engine: &Arc<Engine>,
    ) -> Result<(), StartError> {
        use StartError::{Halt, Retry};
        let started = Instant::now();
        let object = object_name(seq);
        tracing::info!(object, seq, "bootstrapping from the newest directory snapshot");
        let (mut snapshot, bytes) = fetch(bucket, seq).await.map_err(Retry)?;
        let fetched_ms = started.elapsed().as_millis() as u64;
        let cluster = snapshot
            .cluster
            .get_or_insert_with(|| crate::store::ClusterState {
                seq,
                last_apply_ms: snapshot.taken_at_ms,
                refused_entries: 0,
                epoch: None,
                outcomes: Vec::new(),
                stream: None,
            });
        match &cluster.stream {
            Some(s) if s != current => {
                return Err(Halt(format!(
                    "snapshot {object} was taken from an earlier stream `{}` (the stream was \
                     recreated, its snapshot bucket `{}` was not): delete the bucket or publish a \
                     snapshot of this stream",
                    s.name,
                    bucket_name(&s.name)
                )));
            }
            _ => cluster.stream = Some(current.clone()),
        }
        let revision = snapshot.revision;
        let (store2, index) = (store.clone(), engine.index().clone());
        let aside = tokio::task::spawn_blocking(move || {
            if empty {
                store2.import_snapshot(&snapshot)?;
                let fresh = crate::engine::index::DirectoryIndex::new();
                store2.load_index(&fresh)?;
                index.replace_with(fresh);
                Ok::<_, crate::store::ApplyError>(None)
            } else {
                store2.replace_from_snapshot(&snapshot, &index).map(Some)
            }
        })
        .await
        .map_err(|e| Retry(e.to_string()))?
        .map_err(|e| Retry(format!("loading snapshot {object}: {e}")))?;
        self.adopt_stored_epoch(store, engine).map_err(Halt)?;
        self.applied.send_replace(seq);
        let took_ms = started.elapsed().as_millis() as u64;
        if let Some(path) = &aside {
            tracing::warn!(
                seq,
                moved_aside = %path.display(),
                "re-bootstrapped from a directory snapshot: this sidecar's next entry was purged from the log; its old store was moved aside"
            );
        }
        tracing::info!(
            object,
            bytes,
            revision,
            seq,
            fetched_ms,
            took_ms,
            "bootstrapped from a directory snapshot; tailing the log from the next entry"
        );
        Ok(())
    }
}

/// `warden cluster init`: make `store` (a single-node directory, offline) the first snapshot
/// (log position 0) of the stream `config.stream`, creating it. Refused when the store already
/// follows a stream, or when the stream has entries or the bucket snapshots. The store then
/// records that it follows the stream, so it can serve as one of its sidecars.
pub async fn init(config: &super::ClusterConfig, store: &Store) -> Result<Published, String> {
    if let Some(id) = store.cluster_stream().map_err(|e| e.to_string())? {
        return Err(format!(
            "{} already follows directory log stream `{}`; it is not a single-node directory",
            store.path().display(),
            id.name
        ));
    }
    let position = store.cluster_position().map_err(|e| e.to_string())?;
    if position.last_applied_seq > 0 {
        return Err(format!(
            "{} applied a directory log up to entry {}; it is not a single-node directory",
            store.path().display(),
            position.last_applied_seq
        ));
    }
    let client = super::connect_options(config)
        .await
        .map_err(|e| e.to_string())?
        .connect(config.urls.clone())
        .await
        .map_err(|e| format!("connecting to the directory log {:?}: {e}", config.urls))?;
    let js = jetstream::ContextBuilder::new()
        .timeout(config.write_timeout)
        .build(client.clone());
    let name = &config.stream;
    let mut s = js
        .get_or_create_stream(super::stream_config(name))
        .await
        .map_err(|e| format!("creating or opening stream `{name}`: {e}"))?;
    let info = s.info().await.map_err(|e| e.to_string())?;
    if info.state.last_sequence > 0 {
        return Err(format!(
            "stream `{name}` already has entries (up to {}): `cluster init` only starts a new \
             stream; to join it start a sidecar with an empty data directory",
            info.state.last_sequence
        ));
    }
    let current = identity(info);
    let bucket = bucket(&js, name, true)
        .await?
        .ok_or_else(|| format!("no bucket {}", bucket_name(name)))?;
    let existing = list(&bucket).await?;
    if !existing.is_empty() {
        return Err(format!(
            "bucket `{}` already holds snapshots {existing:?}: `cluster init` only starts a new stream",
            bucket_name(name)
        ));
    }
    // Its time stays the store's last apply time (0), as a sidecar's snapshot at position 0
    // would have: the same bytes for the same position.
    let mut snapshot = store.cluster_snapshot().map_err(|e| e.to_string())?;
    if let Some(c) = &mut snapshot.cluster {
        c.stream = Some(current.clone());
    }
    let bytes = snapshot.to_json().map_err(|e| e.to_string())?;
    let object = put(&bucket, &snapshot, &bytes).await?;
    store.set_cluster_stream(&current).map_err(|e| e.to_string())?;
    client.flush().await.map_err(|e| e.to_string())?;
    Ok(Published {
        object,
        seq: 0,
        revision: snapshot.revision,
        bytes: bytes.len(),
        kept: vec![0],
        purged_below: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::first_stored_since;
    use std::cell::Cell;

    /// The search over a stream 10..20 whose entries were stored at 100 × seq, with every
    /// cut-off in and around that span: the first entry at or after the cut-off, the end when
    /// none is, and never more reads than a binary search needs.
    #[tokio::test(flavor = "current_thread")]
    async fn the_retain_floor_is_the_first_entry_stored_since_the_cutoff() {
        let reads = Cell::new(0u32);
        let stored_at = |seq: u64| {
            reads.set(reads.get() + 1);
            assert!((10..20).contains(&seq), "read {seq}, outside the stream");
            async move { Ok(i128::from(seq) * 100) }
        };
        for cutoff in [0, 999, 1000, 1001, 1450, 1500, 1900, 1901, 5000] {
            reads.set(0);
            let want = (10..20u64).find(|s| i128::from(*s) * 100 >= cutoff).unwrap_or(20);
            assert_eq!(
                first_stored_since(10, 20, cutoff, stored_at).await,
                Ok(want),
                "cutoff {cutoff}"
            );
            assert!(reads.get() <= 4, "{} reads for 10 entries", reads.get());
        }
        assert_eq!(
            first_stored_since(7, 7, 0, stored_at).await,
            Ok(7),
            "an empty range"
        );
        let failing = |seq: u64| async move { Err::<i128, _>(format!("entry {seq} is gone")) };
        assert!(first_stored_since(10, 20, 0, failing).await.is_err());
    }
}
