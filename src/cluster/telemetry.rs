//! The cluster's telemetry stream: usage counts and token last-use, shared between sidecars
//! outside the directory log.
//!
//! Owns: the stream `<stream>-telemetry` (subject `warden.telemetry`, file storage, the
//! directory stream's replicas, [`MAX_AGE`]), the publisher (each outbox row the usage flusher
//! queued, `Nats-Msg-Id` `<sidecar>-<flush>`, one at a time and in order, the row deleted once
//! acknowledged) and the merger (one ordered consumer per sidecar from the stored telemetry
//! position + 1; runs of messages merged by `Store::merge_telemetry` in one transaction with
//! the position). A sidecar counts its own deltas when it flushes and skips its own id on the
//! stream; a flush number at or below the highest merged from its sidecar is skipped, so a
//! republished or redelivered batch is never added twice.
//!
//! Must not: touch the check path or the directory log's apply loop. Both tasks are separate
//! from the apply loop and only wait on the network themselves: a missing stream, NATS down
//! or garbage on `warden.telemetry` delays telemetry only (garbage is logged, counted in
//! `warden_cluster_telemetry_rejected` and passed over). Local flushes keep going into the
//! store (and the outbox) while NATS is down, and are published when it returns.

use super::{Cluster, DUPLICATE_WINDOW, MAX_ENTRY_BYTES, REPLICAS};
use crate::store::{Store, TelemetryBatch};
use async_nats::jetstream::{self, consumer, stream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio_stream::StreamExt;

/// The subject of telemetry batches (under `warden.>`, which only sidecar users may publish on).
pub const SUBJECT_TELEMETRY: &str = "warden.telemetry";

/// How long the telemetry stream keeps a batch. Usage reports go back at most 366 days, but
/// what the stream is for is bringing a sidecar that was away (down, cut off, or bootstrapped
/// from a snapshot, which carries no telemetry) up to the others' counts: a week covers a
/// sidecar down over a long weekend with margin, at a bounded cost (one message per sidecar
/// per busy 30 s flush, ~20k messages a week per sidecar).
pub const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often the publisher looks at the outbox (a flush happens every 30 s).
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Counts of other sidecars' batches merged at most in one transaction (bounds how long a
/// merge holds the store's write lock while catching up on a week of telemetry).
const MERGE_COUNTS: usize = 20_000;

/// The telemetry stream's name for directory stream `stream`.
pub fn stream_name(stream: &str) -> String {
    format!("{stream}-telemetry")
}

/// The telemetry stream's configuration.
pub fn stream_config(stream: &str) -> stream::Config {
    stream::Config {
        name: stream_name(stream),
        subjects: vec![SUBJECT_TELEMETRY.to_string()],
        storage: stream::StorageType::File,
        num_replicas: REPLICAS,
        max_age: MAX_AGE,
        discard: stream::DiscardPolicy::Old,
        max_message_size: MAX_ENTRY_BYTES as i32,
        duplicate_window: DUPLICATE_WINDOW,
        ..Default::default()
    }
}

/// The telemetry counters of `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    published: AtomicU64,
    merged: AtomicU64,
    rejected: AtomicU64,
}

impl Stats {
    /// (name, help, value) for each counter, and the outbox's length read from `store`.
    pub fn metric_values(&self, store: Option<&Store>) -> [(&'static str, &'static str, u64); 4] {
        [
            (
                "warden_cluster_telemetry_outbox",
                "Usage/last-use batches flushed here and waiting for the telemetry stream.",
                store.and_then(|s| s.telemetry_outbox_len().ok()).unwrap_or(0),
            ),
            (
                "warden_cluster_telemetry_published",
                "Usage/last-use batches this sidecar published on the telemetry stream.",
                self.published.load(Ordering::Relaxed),
            ),
            (
                "warden_cluster_telemetry_merged",
                "Other sidecars' usage/last-use batches merged into this sidecar's store.",
                self.merged.load(Ordering::Relaxed),
            ),
            (
                "warden_cluster_telemetry_rejected",
                "Unreadable messages on the telemetry subject, logged and skipped.",
                self.rejected.load(Ordering::Relaxed),
            ),
        ]
    }
}

/// Run the publisher and the merger until `shutdown` (they hold no state a shutdown must
/// save: the outbox and the position are in the store; the last flush at shutdown waits in
/// the outbox for the next start).
pub(super) fn spawn(cluster: Arc<Cluster>, store: Arc<Store>, shutdown: crate::api::shutdown::Shutdown) {
    store.enable_telemetry_outbox();
    let (c, s, stop) = (cluster.clone(), store.clone(), shutdown.clone());
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.wait() => {}
            _ = publish_loop(c, s) => {}
        }
    });
    tokio::spawn(async move {
        tokio::select! {
            _ = shutdown.wait() => {}
            _ = merge_loop(cluster, store) => {}
        }
    });
}

async fn ensure_stream(c: &Cluster) -> Result<stream::Stream, String> {
    let want = stream_config(&c.config.stream);
    tokio::time::timeout(c.config.write_timeout, c.js.get_or_create_stream(want))
        .await
        .map_err(|_| "the telemetry stream did not answer in time".to_string())?
        .map_err(|e| {
            format!(
                "creating or opening stream `{}`: {e}",
                stream_name(&c.config.stream)
            )
        })
}

/// Log a telemetry failure once per kind of message in a row (NATS down for an hour is one line).
fn warn_once(last: &mut Option<String>, error: String) {
    if last.as_deref() != Some(error.as_str()) {
        tracing::warn!(error = %error, "telemetry stream: usage and token last-use are not shared for now; checks and directory writes are unaffected");
        *last = Some(error);
    }
}

async fn publish_loop(c: Arc<Cluster>, store: Arc<Store>) {
    let mut last_error = None;
    let mut ready = false;
    loop {
        tokio::time::sleep(PUBLISH_EVERY).await;
        if !c.connected() {
            continue;
        }
        if !ready {
            match ensure_stream(&c).await {
                Ok(_) => ready = true,
                Err(e) => {
                    warn_once(&mut last_error, e);
                    continue;
                }
            }
        }
        match publish_pending(&c, &store).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(batches = n, "telemetry published");
                last_error = None;
            }
            Err(e) => {
                warn_once(&mut last_error, e);
                ready = false;
            }
        }
    }
}

/// Publish the outbox in flush order, each row deleted once the stream acknowledged it; the
/// next row waits for that, so each sidecar's flush numbers reach the stream in order.
async fn publish_pending(c: &Cluster, store: &Arc<Store>) -> Result<usize, String> {
    let mut sent = 0;
    loop {
        let s = store.clone();
        let rows = tokio::task::spawn_blocking(move || s.telemetry_outbox(64))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("reading the telemetry outbox: {e}"))?;
        if rows.is_empty() {
            return Ok(sent);
        }
        for (flush, id, payload) in rows {
            if !c.connected() {
                return Err("not connected to NATS".into());
            }
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.into())
                .message_id(&id);
            let acked = tokio::time::timeout(c.config.write_timeout, async {
                c.js.send_publish(SUBJECT_TELEMETRY, publish).await?.await
            })
            .await;
            match acked {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("publishing telemetry batch {id}: {e}")),
                Err(_) => {
                    return Err(format!(
                        "publishing telemetry batch {id}: no acknowledgement in time"
                    ));
                }
            }
            c.telemetry.published.fetch_add(1, Ordering::Relaxed);
            sent += 1;
            let s = store.clone();
            tokio::task::spawn_blocking(move || s.telemetry_published(flush))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("removing published telemetry batch {id}: {e}"))?;
        }
    }
}

async fn merge_loop(c: Arc<Cluster>, store: Arc<Store>) {
    let mut last_error = None;
    let mut backoff = Duration::from_millis(500);
    loop {
        if c.connected() {
            if let Err(e) = merge(&c, &store).await {
                warn_once(&mut last_error, e);
            } else {
                backoff = Duration::from_millis(500);
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One ordered consumer from the stored position + 1, merging runs of messages until it fails.
async fn merge(c: &Cluster, store: &Arc<Store>) -> Result<(), String> {
    let s = ensure_stream(c).await?;
    let last = s.cached_info().state.last_sequence;
    let mut position = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.telemetry_position())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
    };
    if position > last {
        tracing::warn!(
            position,
            last,
            "the telemetry stream is behind this sidecar's position (recreated?): reading it from its start"
        );
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.reset_telemetry_position())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        position = 0;
    }
    let deliver_policy = match position {
        0 => consumer::DeliverPolicy::All,
        p => consumer::DeliverPolicy::ByStartSequence {
            start_sequence: p + 1,
        },
    };
    // A reconnection restarts this consumer (async-nats's own recovery can take 45 s when
    // the consumer's server side is on a node the client left).
    let mut reconnected = c.reconnections();
    let consumer = s
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy,
            filter_subjects: vec![SUBJECT_TELEMETRY.to_string()],
            max_expires: super::CONSUMER_MAX_EXPIRES,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("creating the telemetry consumer: {e}"))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| format!("reading the telemetry stream: {e}"))?;
    loop {
        let next = tokio::select! {
            m = messages.next() => m,
            Ok(()) = reconnected.changed() => {
                return Err("reconnected to NATS; recreating the telemetry consumer".into());
            }
        };
        let Some(first) = next else {
            return Err("the telemetry stream's messages ended".into());
        };
        let first = first.map_err(|e| format!("reading the telemetry stream: {e}"))?;
        let mut items = Vec::new();
        let mut counts = push(&mut items, &first, c);
        // Whatever else is already there joins the same transaction.
        while counts < MERGE_COUNTS && items.len() < 1024 {
            match tokio::time::timeout(Duration::from_millis(20), messages.next()).await {
                Ok(Some(Ok(m))) => counts += push(&mut items, &m, c),
                Ok(Some(Err(e))) => return Err(format!("reading the telemetry stream: {e}")),
                Ok(None) | Err(_) => break,
            }
        }
        let s = store.clone();
        let merged = tokio::task::spawn_blocking(move || s.merge_telemetry(position, &items))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("merging telemetry: {e}"))?;
        let Some(merged) = merged else {
            tracing::info!(
                "the store was replaced under the telemetry consumer; reading the stream from its position"
            );
            return Ok(());
        };
        position = merged.position;
        c.telemetry.merged.fetch_add(merged.merged, Ordering::Relaxed);
        if merged.merged > 0 {
            tracing::debug!(
                merged = merged.merged,
                own = merged.own,
                duplicates = merged.duplicates,
                "telemetry merged"
            );
        }
    }
}

/// Decode `m` into `items`; its counts (for the transaction's bound).
fn push(
    items: &mut Vec<(u64, Result<TelemetryBatch, String>)>,
    m: &jetstream::Message,
    c: &Cluster,
) -> usize {
    let Ok(info) = m.info() else {
        c.telemetry.rejected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("a telemetry message without JetStream metadata; skipped");
        return 0;
    };
    let seq = info.stream_sequence;
    let batch = TelemetryBatch::decode(&m.payload);
    let counts = match &batch {
        Ok(b) => b.counts.len() + b.token_uses.len(),
        Err(reason) => {
            c.telemetry.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(seq, reason = %reason, "unreadable telemetry message skipped");
            0
        }
    };
    items.push((seq, batch));
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_telemetry_stream_is_its_own_bounded_file_stream() {
        let c = stream_config("warden");
        assert_eq!(c.name, "warden-telemetry");
        assert_eq!(c.subjects, vec![SUBJECT_TELEMETRY]);
        assert!(
            !super::super::stream_config("warden")
                .subjects
                .contains(&SUBJECT_TELEMETRY.to_string()),
            "telemetry stays out of the directory log"
        );
        assert_eq!(c.num_replicas, REPLICAS);
        assert_eq!(c.storage, stream::StorageType::File);
        assert_eq!(c.max_age, Duration::from_secs(7 * 24 * 3600));
    }
}
