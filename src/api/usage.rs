//! Usage telemetry: counted in memory, written to the store off the check path.
//!
//! Checks record token last-use in the engine's index (an atomic per token, no lock, no I/O),
//! and the Authz service counts the checks it answers per (org, member) in a [`CheckCounter`]
//! (never the engine: in-process `Engine::check` stays untouched).
//! This task collects what changed every [`FLUSH_EVERY`] (and `serve` once more after the last
//! call has drained), and writes
//! it in one store transaction outside the change log. A crash loses at most one interval of
//! last-use times, which is telemetry, not directory state.

use crate::api::shutdown::Shutdown;
use crate::engine::Engine;
use crate::store::Store;
use compact_str::CompactString;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often in-memory usage is written to the store.
pub const FLUSH_EVERY: Duration = Duration::from_secs(30);

/// Most distinct (org, member) pairs held between two flushes; beyond it new pairs are dropped
/// (and counted in `dropped`), so memory stays bounded whatever the traffic.
pub const MAX_PENDING_PAIRS: usize = 1 << 20;

const SHARDS: usize = 16;

/// org → member → checks. Nested so a lookup borrows `&str` keys and allocates nothing.
type Counts = FxHashMap<CompactString, FxHashMap<CompactString, u64>>;

/// Checks answered per (org, member) since the last flush. Sharded so concurrent checks rarely
/// meet on one lock; each critical section is one hash-map update, never held across `.await`.
pub struct CheckCounter {
    shards: [Mutex<Counts>; SHARDS],
    pending: std::sync::atomic::AtomicUsize,
    /// Counts lost to [`MAX_PENDING_PAIRS`].
    pub dropped: std::sync::atomic::AtomicU64,
}

impl Default for CheckCounter {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(Counts::default())),
            pending: Default::default(),
            dropped: Default::default(),
        }
    }
}

impl CheckCounter {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn shard(&self, org: &str, user: &str) -> &Mutex<Counts> {
        use std::hash::BuildHasher;
        let h = rustc_hash::FxBuildHasher.hash_one((org, user));
        &self.shards[(h as usize) % SHARDS]
    }

    /// Count one answered check of `user` in `org`.
    pub fn record(&self, org: &str, user: &str) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut shard = self.shard(org, user).lock();
        if let Some(n) = shard.get_mut(org).and_then(|m| m.get_mut(user)) {
            *n += 1;
        } else if self.pending.load(Relaxed) < MAX_PENDING_PAIRS {
            self.pending.fetch_add(1, Relaxed);
            shard.entry(org.into()).or_default().insert(user.into(), 1);
        } else {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Counts not yet flushed, without taking them (for reports that include today so far).
    pub fn peek(&self, org: &str) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            if let Some(users) = shard.lock().get(org) {
                out.extend(users.iter().map(|(u, n)| (u.to_string(), *n)));
            }
        }
        out
    }

    /// Orgs with unflushed counts.
    pub fn pending_orgs(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .shards
            .iter()
            .flat_map(|s| s.lock().keys().map(|o| o.to_string()).collect::<Vec<_>>())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Take every pending count as (org, user, checks).
    pub fn take(&self) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let taken = std::mem::take(&mut *shard.lock());
            for (o, users) in taken {
                out.extend(users.into_iter().map(|(u, n)| (o.to_string(), u.to_string(), n)));
            }
        }
        self.pending.store(0, std::sync::atomic::Ordering::Relaxed);
        out
    }
}

/// The UTC day (since the Unix epoch) of a Unix-ms time.
pub fn day_of(ms: u64) -> u64 {
    ms / 86_400_000
}

/// Write pending usage now (on a blocking thread: it is a redb write).
pub async fn flush(engine: &Arc<Engine>, store: &Arc<Store>, checks: &Arc<CheckCounter>) {
    let counts = checks.take();
    if !counts.is_empty() {
        let store = store.clone();
        let day = day_of(crate::api::directory::now_ms());
        match tokio::task::spawn_blocking(move || store.record_usage(day, &counts)).await {
            Ok(Ok(())) => tracing::debug!("check counts flushed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "writing check counts failed"),
            Err(e) => tracing::warn!(error = %e, "check count task failed"),
        }
    }
    let uses = engine.index().take_token_uses();
    if uses.is_empty() {
        return;
    }
    let store = store.clone();
    let count = uses.len();
    match tokio::task::spawn_blocking(move || store.record_token_use(&uses)).await {
        Ok(Ok(())) => tracing::debug!(tokens = count, "token last-use flushed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "writing token last-use failed"),
        Err(e) => tracing::warn!(error = %e, "token last-use task failed"),
    }
}

/// Flush every [`FLUSH_EVERY`] until `shutdown`.
pub fn spawn_flusher(
    engine: Arc<Engine>,
    store: Arc<Store>,
    checks: Arc<CheckCounter>,
    shutdown: Shutdown,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => flush(&engine, &store, &checks).await,
                () = &mut stop => break,
            }
        }
    })
}
