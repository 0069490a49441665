//! Cluster mode (`warden serve --cluster URL,…`): N sidecars share one directory through a
//! replicated log, a NATS JetStream stream, and each applies that log in order with the
//! directory's one deterministic apply function.
//!
//! Owns: the NATS connection (URLs, credentials, TLS), creating or verifying the stream
//! (subjects `warden.changes` and `warden.policy`, 3 replicas, file storage, 8 MiB messages,
//! a duplicate window), publishing a write's envelope (`Nats-Msg-Id` = its request id, and the
//! apply version header), the one ordered consumer per sidecar that is the only writer of
//! directory state in cluster mode (from `last_applied_seq + 1`), the wait of a submitter for
//! its own sidecar to apply its entry, policy epochs (publishing the policy files on
//! `warden.policy`, switching the engine's policy when the loop reaches an epoch, drift between
//! a sidecar's files and the log's epoch), the position/lag/reachability status, and (in
//! `snapshot`) snapshots in the JetStream object store, purging the log behind them, bootstrapping
//! an empty or purged-behind store from one and `warden cluster init`; (in `demo`) the
//! `--demo` seed through the log; and (in `telemetry`) usage counts and token last-use shared
//! on a stream of their own, outside the directory log.
//!
//! Must not: decide anything about a change (the store's apply function does, under one
//! pinned compiled policy per entry), read a clock for apply (the apply time comes from the
//! log's timestamps, see `Store::apply_replicated`), or touch the check path: checks read
//! the local index and never wait on the network. Without `--cluster` none of this runs.

pub mod catchup;
pub mod demo;
pub mod telemetry;

use crate::directory::ChangeEnvelope;
use crate::engine::Engine;
use crate::policy::PolicySources;
use crate::store::{ApplyError, Outcome, PolicyEpoch, Replicated, Store, with_policy_context};
use async_nats::jetstream::{self, consumer, stream};
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio_stream::StreamExt;

mod snapshot;
pub use snapshot::{
    DEFAULT_RETAIN, DEFAULT_SNAPSHOT_EVERY, KEEP_SNAPSHOTS, Published, SnapshotError, bucket_name,
    check_store, init, object_name,
};

/// The subject of directory writes.
pub const SUBJECT_CHANGES: &str = "warden.changes";
/// The subject of policy epochs (one total order with the changes).
pub const SUBJECT_POLICY: &str = "warden.policy";
/// The header carrying the apply version an entry needs.
pub const APPLY_VERSION_HEADER: &str = "Warden-Apply-Version";
/// The apply version this build implements. An entry with a newer one halts the apply loop.
/// What this process uses is [`apply_version`].
pub const APPLY_VERSION: u32 = 1;
/// Test hook standing for "a newer build" (there is one build in a test run): in debug builds,
/// this environment variable overrides the apply version the process stamps on the entries it
/// publishes and accepts from the log. Release builds ignore it, with a warning.
pub const DEBUG_APPLY_VERSION_ENV: &str = "WARDEN_DEBUG_APPLY_VERSION";

/// The apply version of this process: [`APPLY_VERSION`], or in a debug build the test hook
/// [`DEBUG_APPLY_VERSION_ENV`] when set to a version ≥ 1 (read once).
pub fn apply_version() -> u32 {
    static VERSION: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *VERSION.get_or_init(|| {
        let Ok(raw) = std::env::var(DEBUG_APPLY_VERSION_ENV) else {
            return APPLY_VERSION;
        };
        if !cfg!(debug_assertions) {
            tracing::warn!(
                "{DEBUG_APPLY_VERSION_ENV} is a test hook of debug builds; this release build ignores it and applies version {APPLY_VERSION}"
            );
            return APPLY_VERSION;
        }
        match raw.trim().parse::<u32>() {
            Ok(v) if v >= 1 => {
                tracing::warn!(
                    version = v,
                    "{DEBUG_APPLY_VERSION_ENV}: this debug build stands for a build of apply version {v} (test hook)"
                );
                v
            }
            _ => {
                tracing::warn!(
                    value = %raw,
                    "{DEBUG_APPLY_VERSION_ENV} is not a version ≥ 1; ignored, applying version {APPLY_VERSION}"
                );
                APPLY_VERSION
            }
        }
    })
}
/// The largest entry (an encoded envelope), the stream's maximum message size. The shipped
/// server configuration's `max_payload` is the same.
pub const MAX_ENTRY_BYTES: usize = 8 * 1024 * 1024;
/// Default stream name.
pub const DEFAULT_STREAM: &str = "warden";
/// Default bound on a write's wait (publish + this sidecar applying it).
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the log remembers message ids to drop a resubmission (retries beyond it are
/// still answered from the outcome table).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Replicas of the stream.
pub const REPLICAS: usize = 3;

/// The longest a pull request of this sidecar's ordered consumers waits on the server. The
/// client sets the idle heartbeat to half of it and recreates the consumer after two missed
/// heartbeats, so a consumer whose server side went away (the stream leader's node killed or
/// cut off) resumes within about 2 × this. async-nats's default for ordered consumers is a 30 s
/// expiry and a 15 s heartbeat: a sidecar stood still for 29 s after a leader kill in
/// `scripts/bench-cluster-writes.sh`, long enough for the log to be purged behind it. An idle
/// sidecar renews its pull every 4 s; that costs nothing measurable.
pub const CONSUMER_MAX_EXPIRES: Duration = Duration::from_secs(4);

/// The apply loop recreates its consumer when the log has entries this sidecar has not
/// applied and the consumer delivered nothing for this long. async-nats's ordered consumer
/// recovers from a lost server side by itself, but not always soon: after the client moved to
/// another server (its node isolated) it asked the old consumer's info five times with a 5 s
/// timeout each and delivered nothing for 45 s (`cluster_faults::an_isolated_nats_node…`).
/// A recreated consumer is placed on the stream's current leader. A healthy consumer is
/// handed a new entry within milliseconds; recreating one that was merely slow costs a
/// consumer creation and loses nothing (it starts at `last_applied_seq + 1`).
pub const CONSUMER_STALL: Duration = Duration::from_secs(2);

/// How long the apply loop waits for the stream's info and a new consumer once the stream is
/// known (the first start waits the write timeout, as creating a stream can take longer).
/// Requests sent while the stream elects a leader are never answered; a short bound retries
/// soon after the election instead of up to a write timeout later.
pub const CONSUMER_SETUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The message a write gets while the log cannot be reached.
pub const UNREACHABLE: &str = "directory log unreachable; checks are unaffected";

/// Resolved `--cluster…` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// NATS server URLs (all of them, so the sidecar keeps writing through a majority).
    pub urls: Vec<String>,
    /// The stream's name.
    pub stream: String,
    /// A NATS credentials file (JWT + nkey seed).
    pub creds: Option<PathBuf>,
    /// A PEM CA bundle: the connection must use TLS, verified against it.
    pub tls_ca: Option<PathBuf>,
    /// Bound on a write's wait.
    pub write_timeout: Duration,
    /// Publish a snapshot at every entry whose sequence is a multiple of this (0: never).
    pub snapshot_every: u64,
    /// The purge after a snapshot keeps every entry stored less than this long ago (0: purge
    /// up to the older kept snapshot).
    pub retain: Duration,
}

/// Why cluster mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("reading --cluster-creds {}: {source}", path.display())]
    Creds { path: PathBuf, source: std::io::Error },
    #[error("connecting to the directory log {urls:?}: {source}")]
    Connect {
        urls: Vec<String>,
        source: async_nats::ConnectError,
    },
}

/// Why a write submitted through the log did not get an outcome.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The encoded entry is over [`MAX_ENTRY_BYTES`].
    #[error("the change is {size} bytes encoded, over the directory log's limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// The log did not take the entry (not connected, no stream leader, timeout).
    #[error("{UNREACHABLE}")]
    Unreachable,
    /// The entry was handed to the log, but no acknowledgement came in time: it may have
    /// been stored (the acknowledgement can be lost after the write), so the caller must not
    /// be told the log was unreachable.
    #[error(
        "the write was sent to the directory log but not acknowledged within {timeout:?}; it \
         may have landed: retry with the same request id (x-warden-request-id `{request_id}`) \
         to get its outcome"
    )]
    Unacknowledged { timeout: Duration, request_id: String },
    /// The log took the entry, but this sidecar did not apply it in time.
    #[error(
        "the write was accepted by the directory log (entry {seq}) but this sidecar has not \
         applied it within {timeout:?}; it may have landed: retry with the same request id \
         (x-warden-request-id `{request_id}`) to get its outcome"
    )]
    NotAppliedYet {
        seq: u64,
        timeout: Duration,
        request_id: String,
    },
    /// This sidecar's apply loop stopped at an entry it cannot apply.
    #[error("this sidecar stopped applying the directory log: {0}")]
    Halted(String),
    /// This sidecar's apply loop cannot write its local store (a full disk); nothing was
    /// sent to the log.
    #[error(
        "this sidecar cannot write its local directory store ({0}); the write was not sent: \
         retry once its disk has room, or through another sidecar (checks keep serving)"
    )]
    Storage(String),
    #[error("the directory store failed: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot encode the change: {0}")]
    Encode(String),
}

/// What `admin status` and the metrics show of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStatus {
    pub stream: String,
    /// The last entry this sidecar applied.
    pub applied_seq: u64,
    /// The log's last entry, as last seen.
    pub log_last_seq: u64,
    /// Whether the log answered lately.
    pub log_reachable: bool,
    /// Why the apply loop stopped, if it did.
    pub halted: Option<String>,
    /// Entries recorded as refused because they did not decode (policy epochs whose files
    /// do not compile included).
    pub refused_entries: u64,
    /// The policy epoch serving (its hash and log position); empty until the log's first
    /// epoch, when each sidecar serves its own files.
    pub epoch_hash: String,
    pub epoch_seq: u64,
    /// Set while this sidecar's own policy files differ from the log's epoch (it serves the
    /// epoch and does not publish its files until they change).
    pub policy_drift: Option<String>,
    /// Set while the apply loop cannot write the local store (a full disk): the entry it
    /// retries and the error. Checks serve the last applied state; writes through this
    /// sidecar are refused; the loop resumes at that entry once the store takes writes.
    pub storage_error: Option<String>,
}

impl ClusterStatus {
    pub fn lag(&self) -> u64 {
        self.log_last_seq.saturating_sub(self.applied_seq)
    }
}

/// A connected cluster member.
pub struct Cluster {
    config: ClusterConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    /// The last applied sequence, for submitters waiting on their entry.
    applied: watch::Sender<u64>,
    log_last_seq: AtomicU64,
    reachable: AtomicBool,
    refused_entries: AtomicU64,
    halted: Mutex<Option<String>>,
    /// The apply loop's storage trouble, while it lasts (see [`ClusterStatus::storage_error`]).
    storage_error: Mutex<Option<String>>,
    /// After a rewind: the index the lost entries are re-applied against (built from the
    /// store), and the entry up to which they were applied before. Checks keep serving the
    /// engine's index meanwhile; it is replaced once the loop is back at that entry.
    reapplying: Mutex<Option<(Arc<crate::engine::index::DirectoryIndex>, u64)>>,
    /// Set once the stream was created or verified (this process).
    stream_ready: AtomicBool,
    /// The policy directory (names files in errors; the epoch's files are compiled as it).
    policy_dir: PathBuf,
    /// The epoch in force: (hash, seq).
    epoch: Mutex<(String, u64)>,
    /// The hash of this sidecar's own policy files, as last loaded.
    local_hash: Mutex<String>,
    /// The store the apply loop writes (set by `spawn`), for snapshots.
    store: std::sync::OnceLock<Arc<Store>>,
    /// The stream the running consumer follows (set once its start was checked).
    following: Mutex<Option<crate::store::StreamIdentity>>,
    /// Told by the log monitor when that stream was deleted or replaced: the consumer
    /// restarts, and its start check halts the loop.
    restart: tokio::sync::Notify,
    /// Counts the NATS connection coming back after a disconnection: the consumers started
    /// before it restart (the apply loop's and telemetry's).
    reconnects: Arc<watch::Sender<u64>>,
    /// Usage/last-use sharing on the telemetry stream (`telemetry.rs`).
    telemetry: telemetry::Stats,
}

/// The payload of a `warden.policy` entry.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochEntry {
    /// The policy hash (also in the message id, `policy-<hash>`).
    pub hash: String,
    /// The four files, inline.
    pub sources: PolicySources,
}

/// Why a policy epoch was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "the policy files are {size} bytes encoded, over the directory log's limit of {limit} bytes (large policies through the object store are not supported)"
    )]
    TooLarge { size: usize, limit: usize },
    #[error(
        "another policy epoch was published since entry {known} (this sidecar's files may be stale); \
         the log's epoch keeps serving"
    )]
    Superseded { known: u64 },
    #[error("publishing the policy epoch: {0}")]
    Log(String),
    #[error("{0}")]
    Submit(#[from] SubmitError),
}

/// The stream's configuration.
pub fn stream_config(name: &str) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects: vec![SUBJECT_CHANGES.to_string(), SUBJECT_POLICY.to_string()],
        storage: stream::StorageType::File,
        num_replicas: REPLICAS,
        max_message_size: MAX_ENTRY_BYTES as i32,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// The user and password of the first of `urls` that carries them.
pub fn url_user(urls: &[String]) -> Option<(String, String)> {
    urls.iter().find_map(|u| {
        let addr: async_nats::ServerAddr = u.parse().ok()?;
        Some((addr.username()?.to_string(), addr.password()?.to_string()))
    })
}

/// A fresh request id (for writes whose caller did not give one).
pub fn new_request_id() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    format!("req-{}", hex::encode(bytes))
}

fn millis(t: &async_nats::jetstream::message::Info<'_>) -> u64 {
    let nanos = t.published.unix_timestamp_nanos();
    u64::try_from(nanos / 1_000_000).unwrap_or(0)
}

/// The connection options of `config` (name, timeout, user, credentials, TLS).
pub(crate) async fn connect_options(
    config: &ClusterConfig,
) -> Result<async_nats::ConnectOptions, ClusterError> {
    let mut opts = async_nats::ConnectOptions::new()
        .name("warden-sidecar")
        .connection_timeout(config.write_timeout);
    // async-nats does not send a URL's user and password itself: take them from the
    // first URL that has them (the servers of one cluster share their users).
    if let Some((user, pass)) = url_user(&config.urls) {
        opts = opts.user_and_password(user, pass);
    }
    if let Some(path) = &config.creds {
        opts = opts
            .credentials_file(path)
            .await
            .map_err(|source| ClusterError::Creds {
                path: path.clone(),
                source,
            })?;
    }
    if let Some(ca) = &config.tls_ca {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    Ok(opts)
}

impl Cluster {
    /// Connect (in the background: a log that is down at startup does not stop the sidecar,
    /// whose checks serve from its local state; writes answer UNAVAILABLE until it is up).
    pub async fn connect(
        config: ClusterConfig,
        store: &Store,
        policy_dir: &Path,
    ) -> Result<Arc<Cluster>, ClusterError> {
        // A reconnection (to the same server or another) restarts the apply loop's consumer:
        // async-nats's ordered consumer would first ask its old server side for its info, five
        // times with a timeout each, before it recreates it (`CONSUMER_STALL`).
        let reconnects = Arc::new(watch::channel(0u64).0);
        let on_event = {
            let reconnects = reconnects.clone();
            let was_down = Arc::new(AtomicBool::new(false));
            move |event: async_nats::Event| {
                match &event {
                    async_nats::Event::Disconnected => was_down.store(true, Ordering::Relaxed),
                    async_nats::Event::Connected if was_down.swap(false, Ordering::Relaxed) => {
                        reconnects.send_modify(|n| *n += 1);
                    }
                    _ => {}
                }
                tracing::info!(%event, "directory log connection");
                std::future::ready(())
            }
        };
        let opts = connect_options(&config)
            .await?
            .event_callback(on_event)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| Duration::from_millis((attempts as u64 * 200).min(2_000)));
        let client = opts
            .connect(config.urls.clone())
            .await
            .map_err(|source| ClusterError::Connect {
                urls: config.urls.clone(),
                source,
            })?;
        let js = jetstream::ContextBuilder::new()
            .timeout(config.write_timeout)
            .build(client.clone());
        let position = store.cluster_position().unwrap_or_default();
        let (applied, _) = watch::channel(position.last_applied_seq);
        Ok(Arc::new(Cluster {
            config,
            client,
            js,
            applied,
            log_last_seq: AtomicU64::new(0),
            reachable: AtomicBool::new(false),
            refused_entries: AtomicU64::new(position.refused_entries),
            halted: Mutex::new(None),
            storage_error: Mutex::new(None),
            reapplying: Mutex::new(None),
            stream_ready: AtomicBool::new(false),
            policy_dir: policy_dir.to_path_buf(),
            epoch: Mutex::new((String::new(), 0)),
            local_hash: Mutex::new(String::new()),
            store: std::sync::OnceLock::new(),
            following: Mutex::new(None),
            restart: tokio::sync::Notify::new(),
            reconnects,
            telemetry: telemetry::Stats::default(),
        }))
    }

    /// A receiver told of every reconnection to NATS after this call (a consumer created
    /// before one is recreated: see [`CONSUMER_STALL`]).
    pub(crate) fn reconnections(&self) -> watch::Receiver<u64> {
        self.reconnects.subscribe()
    }

    /// The telemetry stream's counters for `/metrics`.
    pub fn telemetry_metrics(&self) -> [(&'static str, &'static str, u64); 4] {
        self.telemetry.metric_values(self.store.get().map(|s| &**s))
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn status(&self) -> ClusterStatus {
        let applied_seq = *self.applied.borrow();
        // One lock at a time: a guard in the struct literal would live to its end.
        let (epoch_hash, epoch_seq) = self.epoch.lock().clone();
        ClusterStatus {
            stream: self.config.stream.clone(),
            applied_seq,
            log_last_seq: self.log_last_seq.load(Ordering::Relaxed).max(applied_seq),
            log_reachable: self.reachable.load(Ordering::Relaxed) && self.connected(),
            halted: self.halted.lock().clone(),
            refused_entries: self.refused_entries.load(Ordering::Relaxed),
            epoch_hash,
            epoch_seq,
            policy_drift: self.drift(),
            storage_error: self.storage_error.lock().clone(),
        }
    }

    fn drift(&self) -> Option<String> {
        let (epoch, seq) = self.epoch.lock().clone();
        let local = self.local_hash.lock().clone();
        (!epoch.is_empty() && local != epoch).then(|| {
            format!(
                "the policy files in {} (hash {local}) differ from the log's epoch {epoch} (entry {seq}), which is serving",
                self.policy_dir.display()
            )
        })
    }

    /// Note the hash of this sidecar's own policy files (at startup and after each load) and
    /// report drift from the log's epoch when they differ.
    pub fn note_local_policy(&self, hash: &str) {
        *self.local_hash.lock() = hash.to_string();
        self.report_drift();
    }

    fn report_drift(&self) {
        if let Some(drift) = self.drift() {
            tracing::warn!(drift = %drift, "policy drift: this sidecar serves the log's policy epoch, not its own files");
        }
    }

    /// At startup: serve the epoch recorded in the store (the log's epoch as of the last
    /// applied entry), before anything is applied or checked. Without one the engine keeps
    /// the policy loaded from the files.
    pub fn adopt_stored_epoch(&self, store: &Store, engine: &Engine) -> Result<(), String> {
        let Some(epoch) = store.cluster_epoch().map_err(|e| e.to_string())? else {
            return Ok(());
        };
        let policy = crate::policy::compile_sources(&self.policy_dir, &epoch.sources).map_err(|e| {
            format!(
                "the stored policy epoch {} (entry {}) does not compile: {e}",
                epoch.hash, epoch.seq
            )
        })?;
        engine.swap_policy(Arc::new(policy));
        *self.epoch.lock() = (epoch.hash.clone(), epoch.seq);
        tracing::info!(hash = %epoch.hash, seq = epoch.seq, "serving the policy epoch recorded in the store");
        self.report_drift();
        Ok(())
    }

    /// Publish the policy files in `sources` (compiled to `hash`) as a new epoch and wait
    /// until this sidecar applied it. Nothing is published when the log's epoch already has
    /// this hash. The message id `policy-<hash>` makes N sidecars publishing the same files one
    /// entry; the expected last sequence on `warden.policy` (the epoch this sidecar knows)
    /// makes a sidecar with stale files lose a race instead of rolling the cluster back.
    pub async fn publish_epoch(&self, hash: &str, sources: PolicySources) -> Result<u64, PublishError> {
        let (current, known) = self.epoch.lock().clone();
        if current == hash {
            return Ok(known);
        }
        let entry = EpochEntry {
            hash: hash.to_string(),
            sources,
        };
        let payload = serde_json::to_vec(&entry).map_err(|e| PublishError::Log(e.to_string()))?;
        if payload.len() > MAX_ENTRY_BYTES {
            return Err(PublishError::TooLarge {
                size: payload.len(),
                limit: MAX_ENTRY_BYTES,
            });
        }
        if let Some(reason) = self.halted.lock().clone() {
            return Err(SubmitError::Halted(reason).into());
        }
        let deadline = tokio::time::Instant::now() + self.config.write_timeout;
        while !(self.connected() && self.stream_ready.load(Ordering::Relaxed)) {
            if tokio::time::Instant::now() + Duration::from_millis(25) >= deadline {
                return Err(SubmitError::Unreachable.into());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(format!("policy-{hash}"))
            .expected_last_subject_sequence(known)
            .header(APPLY_VERSION_HEADER, apply_version().to_string().as_str());
        let acked = tokio::time::timeout_at(deadline, async {
            let ack = self.js.send_publish(SUBJECT_POLICY, publish).await?;
            ack.await
        })
        .await;
        let seq = match acked {
            Ok(Ok(ack)) => ack.sequence,
            Ok(Err(e)) => {
                // Lost the race to an identical publish: that epoch is ours too.
                let (current, seq) = self.epoch.lock().clone();
                if current == hash {
                    return Ok(seq);
                }
                if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence {
                    return Err(PublishError::Superseded { known });
                }
                return Err(PublishError::Log(e.to_string()));
            }
            Err(_) => return Err(SubmitError::Unreachable.into()),
        };
        self.log_last_seq.fetch_max(seq, Ordering::Relaxed);
        let mut applied = self.applied.subscribe();
        let reached = tokio::time::timeout_at(deadline, applied.wait_for(|s| *s >= seq))
            .await
            .is_ok_and(|r| r.is_ok());
        if !reached {
            return Err(SubmitError::NotAppliedYet {
                seq,
                timeout: self.config.write_timeout,
                request_id: format!("policy-{hash}"),
            }
            .into());
        }
        tracing::info!(hash, seq, "published a policy epoch");
        Ok(seq)
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Publish `env` (which carries its request id) and wait until this sidecar applied it;
    /// its outcome comes back. A request id that already has an outcome gets that one
    /// without publishing again.
    pub async fn submit(&self, env: ChangeEnvelope, store: &Arc<Store>) -> Result<Outcome, SubmitError> {
        let request_id = env.request_id.clone().unwrap_or_else(new_request_id);
        if let Some(outcome) = lookup(store, &request_id).await? {
            return Ok(outcome);
        }
        let payload = serde_json::to_vec(&env).map_err(|e| SubmitError::Encode(e.to_string()))?;
        if payload.len() > MAX_ENTRY_BYTES {
            return Err(SubmitError::TooLarge {
                size: payload.len(),
                limit: MAX_ENTRY_BYTES,
            });
        }
        if let Some(reason) = self.halted.lock().clone() {
            return Err(SubmitError::Halted(reason));
        }
        if let Some(reason) = self.storage_error.lock().clone() {
            // This sidecar could not answer it (it cannot apply it): not sent at all.
            return Err(SubmitError::Storage(reason));
        }
        let timeout = self.config.write_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        // Never hand the client an entry while disconnected (it would queue it, and it could
        // land long after its caller was told the log is unreachable): wait, within the
        // bound, for a connection and a verified stream.
        while !(self.connected() && self.stream_ready.load(Ordering::Relaxed)) {
            if tokio::time::Instant::now() + Duration::from_millis(25) >= deadline {
                return Err(SubmitError::Unreachable);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(&request_id)
            .header(APPLY_VERSION_HEADER, apply_version().to_string().as_str());
        // Until the entry is handed to the connection nothing can have landed; after that,
        // a missing acknowledgement says nothing about whether it was stored.
        let sent = tokio::time::timeout_at(deadline, self.js.send_publish(SUBJECT_CHANGES, publish)).await;
        let pending = match sent {
            Ok(Ok(pending)) => pending,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, request_id, "publishing to the directory log failed");
                return Err(SubmitError::Unreachable);
            }
            Err(_) => {
                tracing::warn!(request_id, "the directory log did not take the entry in time");
                return Err(SubmitError::Unreachable);
            }
        };
        let ack = match tokio::time::timeout_at(deadline, pending).await {
            Ok(Ok(ack)) => ack,
            // The same request id is being stored right now by another publish (a client
            // that retried on another sidecar before its first answer): that entry is this
            // write. Wait for its outcome like any other.
            Ok(Err(e)) if duplicate_in_process(&e) => {
                return self.await_outcome(store, request_id, deadline, timeout).await;
            }
            // No server took it (the stream has no leader, e.g. during an election): it was
            // not stored, so the log is unreachable for this write, not "maybe landed".
            Ok(Err(e)) if e.kind() == jetstream::context::PublishErrorKind::StreamNotFound => {
                tracing::warn!(error = %e, request_id, "no stream leader took the entry");
                return Err(SubmitError::Unreachable);
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, request_id, "the directory log did not acknowledge the entry");
                return Err(SubmitError::Unacknowledged { timeout, request_id });
            }
            Err(_) => {
                tracing::warn!(request_id, "the directory log did not acknowledge in time");
                return Err(SubmitError::Unacknowledged { timeout, request_id });
            }
        };
        self.log_last_seq.fetch_max(ack.sequence, Ordering::Relaxed);
        let mut applied = self.applied.subscribe();
        let reached = tokio::time::timeout_at(deadline, async {
            applied.wait_for(|s| *s >= ack.sequence).await.is_ok()
        })
        .await
        .unwrap_or(false);
        if !reached {
            if let Some(reason) = self.halted.lock().clone() {
                return Err(SubmitError::Halted(reason));
            }
            return Err(SubmitError::NotAppliedYet {
                seq: ack.sequence,
                timeout,
                request_id,
            });
        }
        match lookup(store, &request_id).await? {
            Some(outcome) => Ok(outcome),
            // Applied past it, yet no outcome under its id: the entry at `ack.sequence` was
            // someone else's resubmission with our id dropped as a duplicate.
            None => Err(SubmitError::NotAppliedYet {
                seq: ack.sequence,
                timeout,
                request_id,
            }),
        }
    }

    /// The outcome of `request_id`, whose entry another publish is storing: wait, within the
    /// write's bound, until this sidecar has applied an entry with that id.
    async fn await_outcome(
        &self,
        store: &Arc<Store>,
        request_id: String,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<Outcome, SubmitError> {
        let mut applied = self.applied.subscribe();
        loop {
            if let Some(outcome) = lookup(store, &request_id).await? {
                return Ok(outcome);
            }
            if let Some(reason) = self.halted.lock().clone() {
                return Err(SubmitError::Halted(reason));
            }
            match tokio::time::timeout_at(deadline, applied.changed()).await {
                Ok(Ok(())) => {}
                _ => return Err(SubmitError::Unacknowledged { timeout, request_id }),
            }
        }
    }

    /// Run the apply loop and the log monitor until `shutdown`.
    pub fn spawn(
        self: &Arc<Self>,
        store: Arc<Store>,
        engine: Arc<Engine>,
        shutdown: crate::api::shutdown::Shutdown,
    ) -> tokio::task::JoinHandle<()> {
        let _ = self.store.set(store.clone());
        telemetry::spawn(self.clone(), store.clone(), shutdown.clone());
        let me = self.clone();
        let monitor = self.clone();
        let stop_monitor = shutdown.clone();
        tokio::spawn(async move {
            let stopped = stop_monitor.wait();
            tokio::pin!(stopped);
            loop {
                monitor.poll_log().await;
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        });
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.wait() => {}
                _ = me.apply_loop(store, engine) => {}
            }
        })
    }

    /// Refresh the log's last sequence and reachability; restart the consumer when the stream
    /// it follows was deleted or replaced (an ordered consumer would wait on it forever).
    async fn poll_log(&self) {
        let info = tokio::time::timeout(self.config.write_timeout, async {
            match self.js.get_stream(&self.config.stream).await {
                Ok(mut s) => s
                    .info()
                    .await
                    .ok()
                    .map(|i| Some((i.state.last_sequence, snapshot::identity(i)))),
                Err(e) => match e.kind() {
                    jetstream::context::GetStreamErrorKind::JetStream(j)
                        if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
                    {
                        Some(None)
                    }
                    _ => None,
                },
            }
        })
        .await;
        let following = self.following.lock().clone();
        match info {
            Ok(Some(Some((last, identity)))) => {
                self.log_last_seq.store(last, Ordering::Relaxed);
                self.reachable.store(true, Ordering::Relaxed);
                if following.is_some_and(|f| f != identity) {
                    self.restart.notify_one();
                }
            }
            Ok(Some(None)) => {
                self.reachable.store(false, Ordering::Relaxed);
                if following.is_some() {
                    self.restart.notify_one();
                }
            }
            _ => self.reachable.store(false, Ordering::Relaxed),
        }
    }

    /// Create the stream, or check that the one there has our subjects and limits.
    async fn ensure_stream(&self) -> Result<stream::Stream, String> {
        let want = stream_config(&self.config.stream);
        let mut s = self
            .js
            .get_or_create_stream(want.clone())
            .await
            .map_err(|e| format!("creating or opening stream `{}`: {e}", self.config.stream))?;
        let info = s.info().await.map_err(|e| e.to_string())?;
        let have = &info.config;
        for subject in &want.subjects {
            if !have.subjects.contains(subject) {
                return Err(format!(
                    "stream `{}` exists without subject `{subject}`; it is not a Warden directory log",
                    self.config.stream
                ));
            }
        }
        if have.max_message_size > 0 && (have.max_message_size as usize) < MAX_ENTRY_BYTES {
            tracing::warn!(
                stream = %self.config.stream,
                max_message_size = have.max_message_size,
                "the stream's maximum message size is below {MAX_ENTRY_BYTES} bytes: large changes will fail"
            );
        }
        self.stream_ready.store(true, Ordering::Relaxed);
        Ok(s)
    }

    fn halt(&self, reason: String) {
        tracing::error!(reason = %reason, "cluster apply loop halted; checks keep serving from the last applied state");
        *self.halted.lock() = Some(reason);
    }

    /// The only writer of directory state in cluster mode: one ordered consumer from
    /// `last_applied_seq + 1`, each entry applied in order; a broken connection or consumer
    /// restarts it from the store's position.
    async fn apply_loop(self: Arc<Self>, store: Arc<Store>, engine: Arc<Engine>) {
        let mut backoff = Duration::from_millis(200);
        loop {
            if self.halted.lock().is_some() {
                // Halted: wait for shutdown (an upgraded build resumes from the position).
                std::future::pending::<()>().await;
            }
            match self.consume(&store, &engine).await {
                Ok(()) => backoff = Duration::from_millis(200),
                Err(e) => {
                    tracing::warn!(error = %e, "directory log consumer stopped; restarting it");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    async fn consume(self: &Arc<Self>, store: &Arc<Store>, engine: &Arc<Engine>) -> Result<(), String> {
        let setup = if self.stream_ready.load(Ordering::Relaxed) {
            CONSUMER_SETUP_TIMEOUT
        } else {
            self.config.write_timeout
        };
        let mut s = tokio::time::timeout(setup, self.ensure_stream())
            .await
            .map_err(|_| {
                format!(
                    "the stream `{}` did not answer within {setup:?}",
                    self.config.stream
                )
            })??;
        // The store must follow the stream as it is; an empty or purged-behind one loads the
        // newest snapshot first (see `snapshot.rs`).
        match self.prepare_start(&mut s, store, engine).await {
            Ok(()) => {}
            Err(snapshot::StartError::Halt(reason)) => {
                self.halt(reason);
                return Ok(());
            }
            Err(snapshot::StartError::Retry(e)) => return Err(e),
        }
        let start = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.cluster_position())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?
                .last_applied_seq
        };
        // Reconnections from here on restart this consumer.
        let mut reconnected = self.reconnections();
        let consumer = tokio::time::timeout(
            setup,
            s.create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start + 1,
                },
                filter_subjects: vec![SUBJECT_CHANGES.to_string(), SUBJECT_POLICY.to_string()],
                max_expires: CONSUMER_MAX_EXPIRES,
                ..Default::default()
            }),
        )
        .await
        .map_err(|_| format!("creating the ordered consumer: no answer within {setup:?}"))?
        .map_err(|e| format!("creating the ordered consumer: {e}"))?;
        self.log_last_seq
            .fetch_max(s.cached_info().state.last_sequence, Ordering::Relaxed);
        if start < *self.applied.borrow() {
            // Deferred commits were lost (a reopen after an I/O error): resume from what the
            // store holds; submitters waiting past it wait for the re-application.
            tracing::warn!(
                stored = start,
                applied = *self.applied.borrow(),
                "the store's position is behind the last applied entry; re-applying from the log"
            );
            self.applied.send_replace(start);
        }
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| format!("reading the directory log: {e}"))?;
        let mut catchup = catchup::CatchUp::new(std::time::Instant::now());
        let mut stall_check = tokio::time::interval(CONSUMER_STALL / 4);
        stall_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Since when the log has been ahead of this sidecar with nothing delivered.
        let mut stalled_since: Option<tokio::time::Instant> = None;
        let result = async {
            loop {
                // Group commit: deferred commits left when the log goes quiet are put on disk
                // when due (an empty durable commit), not at the next entry.
                let flush_due = catchup.flush_due().map(tokio::time::Instant::from_std);
                let message = tokio::select! {
                    m = messages.next() => m,
                    _ = tokio::time::sleep_until(flush_due.unwrap_or_else(tokio::time::Instant::now)),
                        if flush_due.is_some() =>
                    {
                        self.flush_deferred(store, &mut catchup).await?;
                        continue;
                    }
                    now = stall_check.tick() => {
                        let behind = self
                            .log_last_seq
                            .load(Ordering::Relaxed)
                            .saturating_sub(*self.applied.borrow());
                        if behind == 0 {
                            stalled_since = None;
                        } else if now.duration_since(*stalled_since.get_or_insert(now)) >= CONSUMER_STALL {
                            return Err(format!(
                                "the directory log consumer delivered nothing for {CONSUMER_STALL:?} while the \
                                 log is {behind} entries ahead; recreating it"
                            ));
                        }
                        continue;
                    }
                    Ok(()) = reconnected.changed() => {
                        return Err("reconnected to the directory log; recreating the consumer".to_string());
                    }
                    _ = self.restart.notified() => {
                        *self.following.lock() = None;
                        return Err(format!(
                            "stream `{}` was deleted or replaced under this sidecar; checking it again",
                            self.config.stream
                        ));
                    }
                };
                let Some(message) = message else { break };
                let message = message.map_err(|e| format!("reading the directory log: {e}"))?;
                stalled_since = None;
                let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                let next = *self.applied.borrow() + 1;
                if seq > next {
                    // Entries were purged under this consumer: start over (re-bootstrap).
                    let first = s.info().await.map(|i| i.state.first_sequence).unwrap_or(0);
                    if first > next {
                        return Err(format!(
                            "entries {next}..{first} were purged from the log before this sidecar applied them; restarting from the newest snapshot"
                        ));
                    }
                }
                if !self.handle(message, store, engine, &mut catchup).await {
                    return Ok(());
                }
                self.maybe_snapshot(seq);
            }
            Err("the directory log's message stream ended".to_string())
        }
        .await;
        if catchup.deferred() > 0 {
            // The consumer stopped with deferred commits: put them on disk now rather
            // than at the next durable commit.
            let store = store.clone();
            match tokio::task::spawn_blocking(move || store.flush_durable()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "making the deferred commits durable failed"),
                Err(e) => tracing::warn!(error = %e, "the flush task failed"),
            }
        }
        result
    }

    /// Put the deferred commits on disk (the log went quiet). When that fails (a full disk),
    /// the store was reopened at its last durable position: the index is rebuilt from it and
    /// the consumer restarts there (`Err`), re-applying the entries the flush lost.
    async fn flush_deferred(&self, store: &Arc<Store>, catchup: &mut catchup::CatchUp) -> Result<(), String> {
        let store2 = store.clone();
        let flushed = tokio::task::spawn_blocking(move || store2.flush_durable())
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        let Err(e) = flushed else {
            catchup.flushed(std::time::Instant::now());
            return Ok(());
        };
        let applied = *self.applied.borrow();
        catchup.rewound(std::time::Instant::now());
        let store2 = store.clone();
        let stored = match tokio::task::spawn_blocking(move || store2.cluster_position()).await {
            Ok(Ok(position)) => position.last_applied_seq.min(applied),
            _ => applied,
        };
        // The entry the loop applies next (again, if the flush lost it).
        self.storage_trouble(stored + 1, &e);
        if stored < applied {
            self.rewind(stored, store).await;
        }
        Err(format!(
            "making the entries up to {applied} durable failed: {e}; resuming from the stored position"
        ))
    }

    /// The apply loop cannot write the store at entry `seq`: say so (status, `/readyz`,
    /// metric, log) until it can again.
    fn storage_trouble(&self, seq: u64, error: &dyn std::fmt::Display) {
        let reason = format!("storage trouble at directory log entry {seq}: {error}");
        let mut current = self.storage_error.lock();
        if current.as_deref() != Some(reason.as_str()) {
            tracing::error!(
                seq,
                error = %error,
                "cannot write the local directory store; retrying entry {seq} (nothing is skipped; \
                 checks serve the last applied state, writes through this sidecar are refused)"
            );
            *current = Some(reason);
        }
    }

    fn storage_recovered(&self, seq: u64) {
        if self.storage_error.lock().take().is_some() {
            tracing::warn!(
                seq,
                "the local directory store takes writes again; applied entry {seq}"
            );
        }
    }

    /// Apply one entry; false when the consumer must stop (halted, or the store's position
    /// rewound and the log must be read again from it).
    async fn handle(
        &self,
        message: jetstream::Message,
        store: &Arc<Store>,
        engine: &Arc<Engine>,
        catchup: &mut catchup::CatchUp,
    ) -> bool {
        let (seq, log_ms, pending) = match message.info() {
            Ok(info) => (info.stream_sequence, millis(&info), info.pending),
            Err(e) => {
                tracing::warn!(error = %e, "a directory log message without JetStream metadata; ignored");
                return true;
            }
        };
        let applied_before = *self.applied.borrow();
        if seq <= applied_before {
            return true;
        }
        // Entries after this one: what the consumer says is pending, or what the log's last
        // sequence says, whichever knows more.
        let behind = pending.max(self.log_last_seq.load(Ordering::Relaxed).saturating_sub(seq));
        self.log_last_seq.fetch_max(seq + pending, Ordering::Relaxed);
        let go_on = self
            .apply_entry(&message, seq, log_ms, applied_before, store, engine, catchup)
            .await;
        if go_on
            && *self.applied.borrow() >= seq
            && let Some(report) = catchup.applied(seq, behind, std::time::Instant::now())
        {
            catchup::log(&report);
        }
        go_on
    }

    /// [`Cluster::handle`] for an entry not applied yet.
    #[allow(clippy::too_many_arguments)]
    async fn apply_entry(
        &self,
        message: &jetstream::Message,
        seq: u64,
        log_ms: u64,
        applied_before: u64,
        store: &Arc<Store>,
        engine: &Arc<Engine>,
        catchup: &mut catchup::CatchUp,
    ) -> bool {
        let headers = message.headers.as_ref();
        let key = headers
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_string());
        if message.subject.as_str() == SUBJECT_POLICY {
            // Epochs commit durably: a deferred batch before it reaches the disk with it.
            let go_on = self.handle_epoch(message, seq, log_ms, key, store, engine).await;
            catchup.flushed(std::time::Instant::now());
            return go_on;
        }
        let entry = match decode(message) {
            Decoded::Entry(env) => Ok(*env),
            Decoded::Rejected(reason) => Err(reason),
            Decoded::Newer(found) => {
                self.halt(format!(
                    "entry {seq} needs apply version {found}; this build applies {}: \
                     upgrade this Warden, it resumes from entry {seq}",
                    apply_version()
                ));
                return false;
            }
        };
        let mut delay = Duration::from_millis(100);
        loop {
            let commit = catchup.commit_for(std::time::Instant::now());
            let (store2, engine2, entry2, key2) = (store.clone(), engine.clone(), entry.clone(), key.clone());
            let index = self.apply_index(engine);
            let result = tokio::task::spawn_blocking(move || {
                // One pinned compiled policy judges the whole entry.
                let policy = engine2.policy();
                let operator = entry2.as_ref().map(|e| e.operator).unwrap_or(false);
                with_policy_context(&engine2, &policy, operator, |ctx| {
                    store2.apply_replicated(
                        seq,
                        log_ms,
                        key2.as_deref(),
                        entry2,
                        ctx,
                        &index,
                        commit,
                        applied_before,
                    )
                })
            })
            .await;
            match result {
                Ok(Ok(Replicated::Rewound { stored })) => {
                    self.rewind(stored, store).await;
                    catchup.rewound(std::time::Instant::now());
                    return false;
                }
                Ok(Ok(done)) => {
                    self.storage_recovered(seq);
                    self.reapplied(seq, store, engine).await;
                    if !matches!(done, Replicated::Skipped) {
                        catchup.committed(commit, std::time::Instant::now());
                    }
                    match &done {
                        Replicated::Done(Outcome::Rejected { reason, .. }) => {
                            self.refused_entries.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(seq, reason = %reason, "directory log entry refused: it is not a change this build can read");
                        }
                        Replicated::Done(Outcome::Refused { refusal, .. }) => {
                            tracing::info!(seq, reason = %refusal, "directory log entry refused by the directory's rules");
                        }
                        Replicated::Done(Outcome::Applied { revision, .. }) => {
                            tracing::debug!(seq, revision, "directory log entry applied");
                        }
                        Replicated::Duplicate(_) | Replicated::Skipped | Replicated::Rewound { .. } => {}
                    }
                    self.applied.send_replace(seq);
                    return true;
                }
                Ok(Err(ApplyError::UnsupportedFormat { found, supported })) => {
                    self.halt(format!(
                        "entry {seq} has change format {found}; this build applies {supported}: \
                         upgrade this Warden, it resumes from entry {seq}"
                    ));
                    return false;
                }
                Ok(Err(e)) => self.storage_trouble(seq, &e),
                Err(e) => {
                    tracing::error!(seq, error = %e, "the apply task failed; retrying the same entry");
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

impl Cluster {
    /// The store's position went back to `stored` (deferred commits lost in a reopen after an
    /// I/O error): re-apply from `stored + 1` against an index built from the store, which
    /// is what it holds now, while checks keep serving the engine's index (the state as of
    /// the entries applied before, which the log still holds) until the loop is back there.
    async fn rewind(&self, stored: u64, store: &Arc<Store>) {
        let applied = *self.applied.borrow();
        tracing::warn!(
            stored,
            applied,
            "deferred commits were lost; re-applying from the log (checks serve the state as of entry {applied} meanwhile)"
        );
        match load_index(store).await {
            Some(fresh) => {
                let mut reapplying = self.reapplying.lock();
                let upto = reapplying
                    .as_ref()
                    .map_or(applied, |(_, upto)| (*upto).max(applied));
                *reapplying = Some((Arc::new(fresh), upto));
            }
            None => tracing::error!(
                "building the index of the rewound store failed; the consumer retries from the stored position"
            ),
        }
        self.applied.send_replace(stored);
    }

    /// The index an entry is authorized against: the re-application index after a rewind,
    /// else the engine's.
    fn apply_index(&self, engine: &Engine) -> Arc<crate::engine::index::DirectoryIndex> {
        match &*self.reapplying.lock() {
            Some((index, _)) => index.clone(),
            None => engine.index().clone(),
        }
    }

    /// Entry `seq` was applied: once a re-application is back where the loop was before
    /// its rewind, the engine serves the re-applied state.
    async fn reapplied(&self, seq: u64, store: &Arc<Store>, engine: &Engine) {
        let done = {
            let mut reapplying = self.reapplying.lock();
            match &*reapplying {
                Some((_, upto)) if seq >= *upto => reapplying.take(),
                _ => None,
            }
        };
        let Some((index, upto)) = done else { return };
        let owned = match Arc::try_unwrap(index) {
            Ok(owned) => Some(owned),
            // Still shared (never, once its apply task ended): the store holds the same.
            Err(_) => load_index(store).await,
        };
        match owned {
            Some(owned) => {
                engine.index().replace_with(owned);
                tracing::warn!(
                    upto,
                    seq,
                    "re-applied the entries lost in the rewind; serving the store's state again"
                );
            }
            None => tracing::error!(
                "building the index after a re-application failed; it is rebuilt at the next restart"
            ),
        }
    }
}

/// A fresh index loaded from `store`.
async fn load_index(store: &Arc<Store>) -> Option<crate::engine::index::DirectoryIndex> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let fresh = crate::engine::index::DirectoryIndex::new();
        store.load_index(&fresh).map(|_| fresh)
    })
    .await
    .ok()?
    .ok()
}

impl Cluster {
    /// Apply a `warden.policy` entry: compile its inline files (a broken one is a recorded
    /// refusal and the old epoch stays, on every sidecar alike), record the epoch with the
    /// position, then switch the engine's serving policy, which the next `warden.changes`
    /// entry is judged with. False when the loop must stop (halted, or a storage failure:
    /// the consumer restarts from the stored position).
    async fn handle_epoch(
        &self,
        message: &jetstream::Message,
        seq: u64,
        log_ms: u64,
        key: Option<String>,
        store: &Arc<Store>,
        engine: &Arc<Engine>,
    ) -> bool {
        let compiled = match check_version(message) {
            Err(Decoded::Newer(found)) => {
                self.halt(format!(
                    "policy entry {seq} needs apply version {found}; this build applies {}: \
                     upgrade this Warden, it resumes from entry {seq}",
                    apply_version()
                ));
                return false;
            }
            Err(Decoded::Rejected(reason)) => Err(reason),
            Err(Decoded::Entry(_)) => Err("unreadable policy entry".to_string()),
            Ok(()) => serde_json::from_slice::<EpochEntry>(&message.payload)
                .map_err(|e| format!("not a policy epoch: {e}"))
                .and_then(
                    |entry| match crate::policy::compile_sources(&self.policy_dir, &entry.sources) {
                        Ok(policy) => Ok((entry, policy)),
                        Err(e) => Err(format!(
                            "policy epoch {} does not compile: {}",
                            entry.hash,
                            e.to_string().replace('\n', "; ")
                        )),
                    },
                ),
        };
        let epoch = compiled
            .as_ref()
            .map(|(entry, _)| PolicyEpoch {
                hash: entry.hash.clone(),
                seq,
                sources: entry.sources.clone(),
            })
            .map_err(|e| e.clone());
        let store2 = store.clone();
        let done = tokio::task::spawn_blocking(move || {
            store2.apply_epoch(
                seq,
                log_ms,
                key.as_deref(),
                epoch.as_ref().map_err(String::as_str),
            )
        })
        .await;
        match done {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return true,
            Ok(Err(e)) => {
                self.storage_trouble(seq, &e);
                return false;
            }
            Err(e) => {
                tracing::error!(seq, error = %e, "the policy epoch task failed; retrying from the stored position");
                return false;
            }
        }
        self.storage_recovered(seq);
        self.reapplied(seq, store, engine).await;
        match compiled {
            Ok((entry, policy)) => {
                engine.swap_policy(Arc::new(policy));
                *self.epoch.lock() = (entry.hash.clone(), seq);
                tracing::info!(hash = %entry.hash, seq, "switched to the log's policy epoch");
                self.report_drift();
            }
            Err(reason) => {
                self.refused_entries.fetch_add(1, Ordering::Relaxed);
                tracing::error!(seq, reason = %reason, "policy epoch refused; the previous epoch keeps serving");
            }
        }
        self.applied.send_replace(seq);
        true
    }
}

/// The cluster series of `/metrics`.
/// The cluster's gauges for `/metrics`: (name, help, value).
pub fn metric_values(s: &ClusterStatus) -> [(&'static str, &'static str, u64); 9] {
    [
        (
            "warden_cluster_applied_seq",
            "The last directory log entry this sidecar applied.",
            s.applied_seq,
        ),
        (
            "warden_cluster_log_last_seq",
            "The directory log's last entry, as last seen.",
            s.log_last_seq,
        ),
        (
            "warden_cluster_lag_entries",
            "Directory log entries this sidecar has not applied yet.",
            s.lag(),
        ),
        (
            "warden_cluster_log_reachable",
            "1 while the directory log answers; 0 while writes fail (checks keep serving).",
            u64::from(s.log_reachable),
        ),
        (
            "warden_cluster_halted",
            "1 when this sidecar stopped applying the log at an entry it cannot apply (upgrade it).",
            u64::from(s.halted.is_some()),
        ),
        (
            "warden_cluster_storage_trouble",
            "1 while this sidecar cannot write its local store (a full disk): its apply loop retries the same entry.",
            u64::from(s.storage_error.is_some()),
        ),
        (
            "warden_cluster_policy_drift",
            "1 while this sidecar's policy files differ from the log's policy epoch (it serves the epoch).",
            u64::from(s.policy_drift.is_some()),
        ),
        (
            "warden_cluster_policy_epoch_seq",
            "The log position of the policy epoch serving (0: none yet, the local files serve).",
            s.epoch_seq,
        ),
        (
            "warden_cluster_refused_entries",
            "Directory log entries refused as unreadable (the same on every sidecar).",
            s.refused_entries,
        ),
    ]
}

/// What `/readyz` names when the cluster side is degraded (checks keep serving).
pub fn problems(s: &ClusterStatus) -> Vec<String> {
    let mut out = Vec::new();
    if !s.log_reachable {
        out.push(format!(
            "cluster: {UNREACHABLE} (stream `{}`, applied entry {})",
            s.stream, s.applied_seq
        ));
    }
    if let Some(reason) = &s.halted {
        out.push(format!("cluster: halted: {reason}"));
    }
    if let Some(reason) = &s.storage_error {
        out.push(format!("cluster: {reason} (checks serve the last applied state)"));
    }
    out
}

async fn lookup(store: &Arc<Store>, request_id: &str) -> Result<Option<Outcome>, SubmitError> {
    let store = store.clone();
    let id = request_id.to_string();
    tokio::task::spawn_blocking(move || store.cluster_outcome(&id))
        .await
        .map_err(|e| SubmitError::Encode(e.to_string()))?
        .map_err(SubmitError::Store)
}

enum Decoded {
    Entry(Box<ChangeEnvelope>),
    Rejected(String),
    Newer(u64),
}

/// Read an entry: its apply version header, then its envelope. Deterministic: every sidecar
/// of one build reaches the same result for the same bytes.
fn decode(message: &jetstream::Message) -> Decoded {
    if let Err(d) = check_version(message) {
        return d;
    }
    match serde_json::from_slice::<ChangeEnvelope>(&message.payload) {
        Ok(env) => Decoded::Entry(Box::new(env)),
        Err(e) => Decoded::Rejected(format!("not a change envelope: {e}")),
    }
}

/// An entry's apply version header: `Ok` when this build applies it.
fn check_version(message: &jetstream::Message) -> Result<(), Decoded> {
    let version = message
        .headers
        .as_ref()
        .and_then(|h| h.get(APPLY_VERSION_HEADER))
        .map(|v| v.as_str().to_string());
    let Some(version) = version else {
        return Err(Decoded::Rejected(format!("no {APPLY_VERSION_HEADER} header")));
    };
    let version: u64 = match version.trim().parse() {
        Ok(v) => v,
        Err(_) => {
            return Err(Decoded::Rejected(format!(
                "{APPLY_VERSION_HEADER} `{version}` is not a number"
            )));
        }
    };
    if version > u64::from(apply_version()) {
        return Err(Decoded::Newer(version));
    }
    if version == 0 {
        return Err(Decoded::Rejected(format!(
            "{APPLY_VERSION_HEADER} 0 is not a version"
        )));
    }
    Ok(())
}

/// The log's answer to a publish whose message id another publish is storing at that moment
/// ("duplicate message id is in process", a replicated stream's in-flight dedup).
pub(crate) fn duplicate_in_process(e: &jetstream::context::PublishError) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<jetstream::Error>())
        .is_some_and(|j| j.error_code() == jetstream::ErrorCode::STREAM_DUPLICATE_MESSAGE_CONFLICT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_lag_and_what_readyz_names() {
        let s = ClusterStatus {
            stream: "warden".into(),
            applied_seq: 7,
            log_last_seq: 10,
            log_reachable: false,
            halted: Some("entry 11 needs apply version 2".into()),
            refused_entries: 1,
            epoch_hash: "abc".into(),
            epoch_seq: 4,
            policy_drift: Some("files differ".into()),
            storage_error: Some("storage trouble at directory log entry 8: No space left on device".into()),
        };
        assert_eq!(s.lag(), 3);
        let values = metric_values(&s);
        for (name, want) in [
            ("warden_cluster_applied_seq", 7),
            ("warden_cluster_lag_entries", 3),
            ("warden_cluster_log_reachable", 0),
            ("warden_cluster_halted", 1),
            ("warden_cluster_storage_trouble", 1),
            ("warden_cluster_refused_entries", 1),
            ("warden_cluster_policy_drift", 1),
            ("warden_cluster_policy_epoch_seq", 4),
        ] {
            assert!(
                values.iter().any(|(n, _, v)| *n == name && *v == want),
                "{name} {want} missing: {values:?}"
            );
        }
        let problems = problems(&s);
        assert!(problems.iter().any(|p| p.contains(UNREACHABLE)), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("halted")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("entry 8")), "{problems:?}");
        let fine = ClusterStatus {
            log_reachable: true,
            halted: None,
            policy_drift: None,
            storage_error: None,
            ..s
        };
        assert!(super::problems(&fine).is_empty());
    }

    #[test]
    fn the_stream_has_both_subjects_three_replicas_and_8_mib_messages() {
        let c = stream_config("warden");
        assert_eq!(c.subjects, vec![SUBJECT_CHANGES, SUBJECT_POLICY]);
        assert_eq!(c.num_replicas, 3);
        assert_eq!(c.max_message_size, 8 * 1024 * 1024);
        assert!(!c.duplicate_window.is_zero());
        assert_eq!(
            url_user(&[
                "nats://127.0.0.1:1".into(),
                "nats://sidecar:pw@127.0.0.1:2".into()
            ]),
            Some(("sidecar".into(), "pw".into()))
        );
    }
}
