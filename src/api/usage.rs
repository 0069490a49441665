//! Usage telemetry: counted in memory, written to the store off the check path.
//!
//! Checks record token last-use in the engine's index (an atomic per token, no lock, no I/O),
//! and the Authz service counts the checks it answers per (org, member) in the same index
//! (an atomic in the member's entry, [`crate::engine::index::IndexData::count_check`]; a
//! BatchCheck's items are counted by `Engine::batch_check` when the service asks it to, with
//! the entries it has already looked up; in-process `Engine::check` never counts).
//! This task collects what changed every [`FLUSH_EVERY`] (and `serve` once more after the last
//! call has drained), and writes it outside the change log, in one store transaction per
//! [`ORGS_PER_WRITE`] orgs. A crash loses at most one interval of counts and last-use times,
//! which are telemetry, not directory state.
//!
//! In cluster mode the same transactions also queue the deltas in the store's telemetry
//! outbox (`Store::queue_telemetry`), which `cluster::telemetry` publishes for the other
//! sidecars; this sidecar's own reports read its flushed counts at once, as on a single node.

use crate::api::shutdown::Shutdown;
use crate::engine::Engine;
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often in-memory usage is written to the store.
pub const FLUSH_EVERY: Duration = Duration::from_secs(30);

/// The UTC day (since the Unix epoch) of a Unix-ms time.
pub fn day_of(ms: u64) -> u64 {
    ms / 86_400_000
}

/// Orgs whose check counts go into one store transaction. A flush after a busy interval can
/// hold a count for most of a million members; written all at once, the counts and redb's
/// dirty pages raised the daemon's peak RSS by ~45 MiB at 1M memberships. In chunks the
/// peak stays near one chunk (about 50k counts at 100 members per org).
const ORGS_PER_WRITE: usize = 500;

/// Write pending usage now (on a blocking thread: it is a redb write).
pub async fn flush(engine: &Arc<Engine>, store: &Arc<Store>) {
    let orgs = engine.index().read().orgs_with_unflushed_checks();
    let day = day_of(crate::api::directory::now_ms());
    for chunk in orgs.chunks(ORGS_PER_WRITE) {
        let counts = engine.index().read().take_checks_of(chunk);
        if counts.is_empty() {
            continue;
        }
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.record_usage(day, &counts)).await {
            Ok(Ok(())) => tracing::debug!(orgs = chunk.len(), "check counts flushed"),
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
pub fn spawn_flusher(engine: Arc<Engine>, store: Arc<Store>, shutdown: Shutdown) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = tick.tick() => flush(&engine, &store).await,
                () = &mut stop => break,
            }
        }
    })
}
