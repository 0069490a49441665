//! Latency of the store's write transactions, by outcome, for `/metrics`
//! (`warden_store_write_duration_seconds`). Relaxed atomics written once per transaction
//! under the write lock and read at scrape time; nothing here is on the check path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bucket bounds in nanoseconds: 100 µs to 10 s. A write is bounded by its durable
/// commit (an fsync), so a millisecond or more is normal and seconds mean a sick disk.
pub const WRITE_BUCKETS_NS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// How a write transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Committed durably.
    Committed,
    /// Aborted by validation, authorization or an invariant (the caller's change, not the disk).
    Refused,
    /// Aborted by a storage failure or a change format this build does not apply.
    Error,
}

impl WriteOutcome {
    pub fn label(self) -> &'static str {
        match self {
            WriteOutcome::Committed => "committed",
            WriteOutcome::Refused => "refused",
            WriteOutcome::Error => "error",
        }
    }
}

#[derive(Debug, Default)]
struct Series {
    /// Non-cumulative; index `WRITE_BUCKETS_NS.len()` is `+Inf`.
    buckets: [AtomicU64; WRITE_BUCKETS_NS.len() + 1],
    sum_ns: AtomicU64,
}

/// The three outcome series.
#[derive(Debug, Default)]
pub struct WriteTimes {
    series: [Series; 3],
}

/// One outcome's series as read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteTimesSnapshot {
    pub outcome: &'static str,
    /// Per-bucket counts over [`WRITE_BUCKETS_NS`], the last one `+Inf`'s.
    pub buckets: Vec<u64>,
    pub sum_ns: u64,
}

const OUTCOMES: [WriteOutcome; 3] = [
    WriteOutcome::Committed,
    WriteOutcome::Refused,
    WriteOutcome::Error,
];

impl WriteTimes {
    pub fn observe(&self, outcome: WriteOutcome, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let s = &self.series[outcome as usize];
        let bucket = WRITE_BUCKETS_NS.partition_point(|&upper| upper < ns);
        s.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        s.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Every outcome, in a fixed order, zero series included (a dashboard's rate of
    /// refusals is then 0, not absent).
    pub fn snapshot(&self) -> Vec<WriteTimesSnapshot> {
        OUTCOMES
            .iter()
            .map(|&o| {
                let s = &self.series[o as usize];
                WriteTimesSnapshot {
                    outcome: o.label(),
                    buckets: s.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect(),
                    sum_ns: s.sum_ns.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_counts_in_its_own_series_and_bucket() {
        let w = WriteTimes::default();
        w.observe(WriteOutcome::Committed, Duration::from_millis(3));
        w.observe(WriteOutcome::Refused, Duration::from_micros(50));
        w.observe(WriteOutcome::Refused, Duration::from_secs(60));
        let s = w.snapshot();
        assert_eq!(s[0].outcome, "committed");
        assert_eq!(s[0].buckets[5], 1, "3 ms is in the 5 ms bucket");
        assert_eq!(s[1].buckets[0], 1);
        assert_eq!(s[1].buckets[WRITE_BUCKETS_NS.len()], 1, "a minute is +Inf");
        assert_eq!(s[2].buckets.iter().sum::<u64>(), 0);
        assert_eq!(s[0].sum_ns, 3_000_000);
    }
}
