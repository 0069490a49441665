//! Usage telemetry in the store: checks answered per member per day, and the active orgs;
//! in cluster mode also the telemetry outbox and the merge of other sidecars' deltas.
//!
//! Counted in memory by the API (never by the engine) and added here in batches by the daemon's
//! flusher, outside the change log: usage is reporting data, not directory state, so it is not
//! in the directory log or audited. Days are UTC days since the Unix epoch.
//!
//! Cluster mode (`cluster::telemetry`): a flush adds its counts (and token last-use times,
//! `tokens.rs`) here as on a single node and, in the same transaction, queues them as
//! [`TelemetryBatch`]es in `telemetry_outbox` under this file's sidecar id and the next flush
//! number (both in `telemetry_state`, so a restart never reuses a number). The publisher sends
//! each row to the telemetry stream and deletes it once acknowledged. [`Store::merge_telemetry`]
//! adds the batches read from the stream: its own sidecar's are skipped (they were counted at
//! flush), a sidecar's flush number at or below the highest one merged from it is skipped, and
//! the stream position is committed with the sums, so a batch is merged exactly once whatever
//! is restarted or redelivered.

use super::tables;
use super::{Store, StoreError};
use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;

/// Counts in one telemetry batch at most: with ids at their longest (128 bytes) a batch stays
/// far below the stream's 8 MiB message limit.
pub const COUNTS_PER_BATCH: usize = 10_000;

/// Outbox rows kept while the telemetry stream cannot be reached. At one flush every 30 s this
/// is about a week of busy flushes; beyond it the oldest rows are dropped (logged): this
/// sidecar keeps its own counts, the others never see those deltas.
pub const OUTBOX_MAX_ROWS: u64 = 20_000;

/// One flush of one sidecar, as queued in the outbox and published on the telemetry stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelemetryBatch {
    /// The publishing sidecar (drawn once per data directory).
    pub sidecar: String,
    /// Its flush number: increasing, never reused.
    pub flush: u64,
    /// The UTC day of `counts`.
    #[serde(default)]
    pub day: u64,
    /// (org, user, checks answered).
    #[serde(default)]
    pub counts: Vec<(String, String, u64)>,
    /// (token id, last use in Unix ms).
    #[serde(default)]
    pub token_uses: Vec<(String, u64)>,
}

impl TelemetryBatch {
    /// The `Nats-Msg-Id` of this batch: `<sidecar>-<flush>`.
    pub fn message_id(&self) -> String {
        format!("{}-{}", self.sidecar, self.flush)
    }

    /// Decode a batch read from the telemetry stream, refusing one whose fields are not what
    /// a sidecar writes (it is skipped, never merged in part).
    pub fn decode(payload: &[u8]) -> Result<TelemetryBatch, String> {
        let batch: TelemetryBatch =
            serde_json::from_slice(payload).map_err(|e| format!("not a telemetry batch: {e}"))?;
        let sidecar_ok = !batch.sidecar.is_empty()
            && batch.sidecar.len() <= 32
            && batch.sidecar.bytes().all(|b| b.is_ascii_hexdigit());
        if !sidecar_ok {
            return Err(format!("sidecar {:?} is not a sidecar id", batch.sidecar));
        }
        if batch.flush == 0 {
            return Err("flush: 0 is not a flush number".into());
        }
        if batch.counts.len() > COUNTS_PER_BATCH || batch.token_uses.len() > COUNTS_PER_BATCH {
            return Err(format!("more than {COUNTS_PER_BATCH} counts or token uses"));
        }
        for (org, user, _) in &batch.counts {
            crate::directory::ids::validate_slug("org", org).map_err(|e| e.to_string())?;
            crate::directory::ids::validate_user_id("user", user).map_err(|e| e.to_string())?;
        }
        for (id, _) in &batch.token_uses {
            crate::directory::tokens::validate_token_id("token", id).map_err(|e| e.to_string())?;
        }
        Ok(batch)
    }
}

/// What [`Store::merge_telemetry`] did with a run of stream messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Merged {
    /// Batches of other sidecars added.
    pub merged: u64,
    /// This sidecar's own batches (counted at flush).
    pub own: u64,
    /// Batches already merged (a republished flush, or a position before the last one).
    pub duplicates: u64,
    /// Unreadable messages passed over.
    pub rejected: u64,
    /// The stream position now committed.
    pub position: u64,
}

const STATE_SIDECAR: &str = "sidecar";
const STATE_NEXT_FLUSH: &str = "next_flush";
const STATE_POSITION: &str = "position";

fn sidecar_name(id: u64) -> String {
    format!("{id:016x}")
}

/// This file's sidecar id, drawn on first use.
fn sidecar_id(state: &mut redb::Table<'_, &str, u64>) -> Result<u64, StoreError> {
    if let Some(id) = state.get(STATE_SIDECAR)?.map(|v| v.value()) {
        return Ok(id);
    }
    let id = rand::random::<u64>().max(1);
    state.insert(STATE_SIDECAR, id)?;
    Ok(id)
}

impl Store {
    /// Add check counts for `day` (one transaction).
    pub fn record_usage(&self, day: u64, counts: &[(String, String, u64)]) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let _serialized = self.write_lock.lock();
        self.noting_io((|| {
            let txn = self.db.begin_write()?;
            {
                let mut usage = txn.open_table(tables::USAGE)?;
                for (org, user, n) in counts {
                    let key = (org.as_str(), day, user.as_str());
                    let old = usage.get(key)?.map(|v| v.value()).unwrap_or(0);
                    usage.insert(key, old.saturating_add(*n))?;
                }
            }
            self.queue_telemetry(&txn, day, counts, &[])?;
            txn.commit()?;
            Ok(())
        })())
    }

    /// Every (day, user, checks) of `org` with `from_day <= day <= to_day`.
    pub fn org_usage(
        &self,
        org: &str,
        from_day: u64,
        to_day: u64,
    ) -> Result<Vec<(u64, String, u64)>, StoreError> {
        let txn = self.db.begin_read()?;
        let usage = txn.open_table(tables::USAGE)?;
        let mut out = Vec::new();
        for item in usage.range((org, from_day, "")..)? {
            let (key, value) = item?;
            let (o, day, user) = key.value();
            if o != org || day > to_day {
                break;
            }
            out.push((day, user.to_string(), value.value()));
        }
        Ok(out)
    }

    /// How many orgs answered at least one check of a member between the two days (inclusive).
    pub fn active_orgs(&self, from_day: u64, to_day: u64) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let orgs = txn.open_table(tables::ORGS)?;
        let usage = txn.open_table(tables::USAGE)?;
        let mut active = 0;
        for item in orgs.iter()? {
            let (key, _) = item?;
            let org = key.value();
            if let Some(hit) = usage.range((org, from_day, "")..)?.next() {
                let (k, _) = hit?;
                let (o, day, _) = k.value();
                if o == org && day <= to_day {
                    active += 1;
                }
            }
        }
        Ok(active)
    }

    /// Cluster mode: have every flush also queue its deltas for the telemetry stream.
    pub fn enable_telemetry_outbox(&self) {
        self.telemetry_outbox.store(true, Ordering::Relaxed);
    }

    /// In a flush's transaction (cluster mode only): queue its deltas as outbox rows, at most
    /// [`COUNTS_PER_BATCH`] counts each, under the next flush numbers.
    pub(crate) fn queue_telemetry(
        &self,
        txn: &redb::WriteTransaction,
        day: u64,
        counts: &[(String, String, u64)],
        token_uses: &[(String, u64)],
    ) -> Result<(), StoreError> {
        if !self.telemetry_outbox.load(Ordering::Relaxed) || (counts.is_empty() && token_uses.is_empty()) {
            return Ok(());
        }
        let mut state = txn.open_table(tables::TELEMETRY_STATE)?;
        let sidecar = sidecar_name(sidecar_id(&mut state)?);
        let mut next = state.get(STATE_NEXT_FLUSH)?.map(|v| v.value()).unwrap_or(1);
        let mut outbox = txn.open_table(tables::TELEMETRY_OUTBOX)?;
        let mut batches: Vec<TelemetryBatch> = counts
            .chunks(COUNTS_PER_BATCH)
            .map(|chunk| TelemetryBatch {
                day,
                counts: chunk.to_vec(),
                ..TelemetryBatch::default()
            })
            .collect();
        for chunk in token_uses.chunks(COUNTS_PER_BATCH) {
            batches.push(TelemetryBatch {
                token_uses: chunk.to_vec(),
                ..TelemetryBatch::default()
            });
        }
        for mut batch in batches {
            batch.sidecar.clone_from(&sidecar);
            batch.flush = next;
            outbox.insert(next, tables::encode(&batch)?.as_slice())?;
            next += 1;
        }
        state.insert(STATE_NEXT_FLUSH, next)?;
        let over = outbox.len()?.saturating_sub(OUTBOX_MAX_ROWS);
        if over > 0 {
            let mut dropped = 0u64;
            while dropped < over {
                if outbox.pop_first()?.is_none() {
                    break;
                }
                dropped += 1;
            }
            tracing::warn!(
                dropped,
                kept = OUTBOX_MAX_ROWS,
                "the telemetry outbox is full (the telemetry stream has been unreachable for long): \
                 the oldest flushes are dropped; this sidecar keeps its own counts, the others miss them"
            );
        }
        Ok(())
    }

    /// The oldest outbox rows (at most `limit`): (flush number, message id, payload).
    pub fn telemetry_outbox(&self, limit: usize) -> Result<Vec<(u64, String, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let outbox = txn.open_table(tables::TELEMETRY_OUTBOX)?;
        let mut out = Vec::new();
        for item in outbox.iter()?.take(limit) {
            let (key, value) = item?;
            let batch: TelemetryBatch =
                tables::decode("telemetry_outbox", &key.value().to_string(), value.value())?;
            out.push((key.value(), batch.message_id(), value.value().to_vec()));
        }
        Ok(out)
    }

    /// Outbox rows waiting for the telemetry stream.
    pub fn telemetry_outbox_len(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(tables::TELEMETRY_OUTBOX)?.len()?)
    }

    /// The telemetry stream acknowledged flush `flush`: drop it (and any before it) from the outbox.
    pub fn telemetry_published(&self, flush: u64) -> Result<(), StoreError> {
        let _serialized = self.write_lock.lock();
        self.noting_io((|| {
            let txn = self.db.begin_write()?;
            {
                let mut outbox = txn.open_table(tables::TELEMETRY_OUTBOX)?;
                loop {
                    let first = outbox.first()?.map(|(k, _)| k.value());
                    match first {
                        Some(first) if first <= flush => {
                            outbox.remove(first)?;
                        }
                        _ => break,
                    }
                }
            }
            txn.commit()?;
            Ok(())
        })())
    }

    /// The last telemetry stream sequence merged here (0: none).
    pub fn telemetry_position(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let state = txn.open_table(tables::TELEMETRY_STATE)?;
        Ok(state.get(STATE_POSITION)?.map(|v| v.value()).unwrap_or(0))
    }

    /// This file's sidecar id, if a flush drew one.
    pub fn telemetry_sidecar(&self) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read()?;
        let state = txn.open_table(tables::TELEMETRY_STATE)?;
        Ok(state.get(STATE_SIDECAR)?.map(|v| sidecar_name(v.value())))
    }

    /// The telemetry stream was recreated (its last sequence is below our position): read it
    /// from its start. The per-sidecar flush numbers keep what was merged from being added again.
    pub fn reset_telemetry_position(&self) -> Result<(), StoreError> {
        let _serialized = self.write_lock.lock();
        self.noting_io((|| {
            let txn = self.db.begin_write()?;
            txn.open_table(tables::TELEMETRY_STATE)?
                .insert(STATE_POSITION, 0)?;
            txn.commit()?;
            Ok(())
        })())
    }

    /// Merge messages read from the telemetry stream, in stream order: (sequence, the decoded
    /// batch or why it was unreadable), read by a consumer that started after position `from`
    /// and has merged up to it. One transaction: sums for usage, max for token last use, each
    /// sidecar's highest merged flush number and the stream position commit together.
    ///
    /// `None`, writing nothing, when the stored position is no longer `from`: the store was
    /// replaced under the consumer (a re-bootstrap starts a new file at position 0), which
    /// must then read the stream again from the stored position.
    pub fn merge_telemetry(
        &self,
        from: u64,
        items: &[(u64, Result<TelemetryBatch, String>)],
    ) -> Result<Option<Merged>, StoreError> {
        let _serialized = self.write_lock.lock();
        self.noting_io((|| {
            let txn = self.db.begin_write()?;
            let mut merged = Merged::default();
            {
                let mut state = txn.open_table(tables::TELEMETRY_STATE)?;
                let own = state.get(STATE_SIDECAR)?.map(|v| sidecar_name(v.value()));
                let mut position = state.get(STATE_POSITION)?.map(|v| v.value()).unwrap_or(0);
                if position != from {
                    return Ok(None);
                }
                let mut seen = txn.open_table(tables::TELEMETRY_SEEN)?;
                let mut usage = txn.open_table(tables::USAGE)?;
                let mut used = txn.open_table(tables::TOKEN_LAST_USED)?;
                for (seq, batch) in items {
                    if *seq <= position {
                        merged.duplicates += 1;
                        continue;
                    }
                    position = *seq;
                    let batch = match batch {
                        Ok(b) => b,
                        Err(_) => {
                            merged.rejected += 1;
                            continue;
                        }
                    };
                    if own.as_deref() == Some(batch.sidecar.as_str()) {
                        merged.own += 1;
                        continue;
                    }
                    let last = seen.get(batch.sidecar.as_str())?.map(|v| v.value()).unwrap_or(0);
                    if batch.flush <= last {
                        merged.duplicates += 1;
                        continue;
                    }
                    seen.insert(batch.sidecar.as_str(), batch.flush)?;
                    for (org, user, n) in &batch.counts {
                        let key = (org.as_str(), batch.day, user.as_str());
                        let old = usage.get(key)?.map(|v| v.value()).unwrap_or(0);
                        usage.insert(key, old.saturating_add(*n))?;
                    }
                    // Kept for ids this sidecar has not applied yet too (its log may lag):
                    // reads only look a token's last use up once the token exists.
                    for (id, at) in &batch.token_uses {
                        let old = used.get(id.as_str())?.map(|v| v.value()).unwrap_or(0);
                        if *at > old {
                            used.insert(id.as_str(), *at)?;
                        }
                    }
                    merged.merged += 1;
                }
                state.insert(STATE_POSITION, position)?;
                merged.position = position;
            }
            txn.commit()?;
            Ok(Some(merged))
        })())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(n: u64) -> Vec<(String, String, u64)> {
        vec![("acme".into(), "bob".into(), n)]
    }

    fn remote(sidecar: &str, flush: u64, n: u64) -> TelemetryBatch {
        TelemetryBatch {
            sidecar: sidecar.into(),
            flush,
            day: 7,
            counts: counts(n),
            token_uses: vec![("tok_abc".into(), 1_000 * flush)],
        }
    }

    fn bob_on_day_7(store: &Store) -> u64 {
        store
            .org_usage("acme", 7, 7)
            .unwrap()
            .iter()
            .map(|(_, _, n)| n)
            .sum()
    }

    #[test]
    fn a_flush_queues_its_deltas_only_in_cluster_mode_and_never_reuses_a_flush_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.redb");
        let (sidecar, first) = {
            let store = Store::open(&path).unwrap();
            store.record_usage(7, &counts(1)).unwrap();
            assert!(
                store.telemetry_outbox(10).unwrap().is_empty(),
                "single node: no outbox"
            );
            store.enable_telemetry_outbox();
            store.record_usage(7, &counts(2)).unwrap();
            let rows = store.telemetry_outbox(10).unwrap();
            assert_eq!(rows.len(), 1);
            let batch = TelemetryBatch::decode(&rows[0].2).unwrap();
            assert_eq!((batch.flush, batch.counts.clone()), (1, counts(2)));
            assert_eq!(rows[0].1, format!("{}-1", batch.sidecar));
            store.telemetry_published(1).unwrap();
            assert!(store.telemetry_outbox(10).unwrap().is_empty());
            assert_eq!(bob_on_day_7(&store), 3, "counted locally at flush");
            (batch.sidecar, rows[0].0)
        };
        // Reopened (a restart): same sidecar id, the next flush number.
        let store = Store::open(&path).unwrap();
        store.enable_telemetry_outbox();
        store.record_usage(7, &counts(4)).unwrap();
        let rows = store.telemetry_outbox(10).unwrap();
        let batch = TelemetryBatch::decode(&rows[0].2).unwrap();
        assert_eq!(batch.sidecar, sidecar);
        assert_eq!(batch.flush, first + 1);
        assert_eq!(store.telemetry_sidecar().unwrap(), Some(sidecar));
    }

    #[test]
    fn merging_adds_each_batch_once_and_skips_own_duplicates_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("w.redb")).unwrap();
        store.enable_telemetry_outbox();
        store.record_usage(7, &counts(1)).unwrap();
        let own = store.telemetry_sidecar().unwrap().unwrap();
        let items = vec![
            (1, Ok(remote("aa", 1, 10))),
            (2, Ok(remote(&own, 1, 100))),
            (3, Err("garbage".to_string())),
            // The same flush republished (after the duplicate window), and an older one.
            (4, Ok(remote("aa", 1, 10))),
            (5, Ok(remote("bb", 3, 20))),
            (6, Ok(remote("bb", 2, 20))),
        ];
        let merged = store.merge_telemetry(0, &items).unwrap().unwrap();
        assert_eq!(
            merged,
            Merged {
                merged: 2,
                own: 1,
                duplicates: 2,
                rejected: 1,
                position: 6,
            }
        );
        assert_eq!(bob_on_day_7(&store), 1 + 10 + 20);
        assert_eq!(store.telemetry_position().unwrap(), 6);
        // Redelivered (an ordered consumer recreated before its first message starts over):
        // nothing moves.
        let again = store.merge_telemetry(6, &items).unwrap().unwrap();
        assert_eq!((again.merged, again.duplicates, again.position), (0, 6, 6));
        assert_eq!(bob_on_day_7(&store), 31);
        // A consumer that read from another position than the store's (the file was
        // replaced under it) merges nothing and must start over.
        assert_eq!(
            store.merge_telemetry(2, &[(7, Ok(remote("cc", 1, 1)))]).unwrap(),
            None
        );
        assert_eq!(bob_on_day_7(&store), 31);
        // Last use is the max; after a recreated stream, the flush numbers still guard.
        store.reset_telemetry_position().unwrap();
        let merged = store
            .merge_telemetry(0, &[(1, Ok(remote("bb", 3, 20))), (2, Ok(remote("aa", 2, 5)))])
            .unwrap()
            .unwrap();
        assert_eq!((merged.merged, merged.duplicates), (1, 1));
        assert_eq!(bob_on_day_7(&store), 36);
        let txn = store.db.begin_read().unwrap();
        let used = txn.open_table(tables::TOKEN_LAST_USED).unwrap();
        assert_eq!(used.get("tok_abc").unwrap().map(|v| v.value()), Some(3_000));
    }

    #[test]
    fn a_message_that_is_not_a_sidecars_batch_is_refused_whole() {
        assert!(TelemetryBatch::decode(b"not json").is_err());
        assert!(TelemetryBatch::decode(br#"{"sidecar":"zz!","flush":1}"#).is_err());
        assert!(TelemetryBatch::decode(br#"{"sidecar":"ab","flush":0}"#).is_err());
        assert!(
            TelemetryBatch::decode(br#"{"sidecar":"ab","flush":1,"counts":[["Not A Slug","bob",1]]}"#)
                .is_err()
        );
        assert!(TelemetryBatch::decode(br#"{"sidecar":"ab","flush":1,"token_uses":[["nope",1]]}"#).is_err());
        let ok = TelemetryBatch::decode(br#"{"sidecar":"ab","flush":2,"day":3,"counts":[["acme","bob",4]]}"#)
            .unwrap();
        assert_eq!(ok.message_id(), "ab-2");
    }
}
