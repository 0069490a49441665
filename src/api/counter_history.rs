//! The last minutes of the decision counters, for the console's activity charts
//! (`AdminService.GetDecisionCounters`' `history`).
//!
//! A page that opens should draw what happened before it opened, not only from then on. The
//! daemon therefore keeps a small ring of samples of its own cumulative counters
//! ([`Metrics::decision_totals`]): one every [`INTERVAL`], the last [`KEEP`] of them (five
//! minutes, a few kilobytes, never more). A background task takes the samples; the check path
//! is untouched (it only adds to the atomics it always added to). Rates and mean latency are
//! differences between two samples, computed by the reader.

use crate::api::metrics::Metrics;
use crate::api::shutdown::Shutdown;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the counters are sampled.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// How many samples are kept: five minutes at [`INTERVAL`].
pub const KEEP: usize = 300;

/// One reading of the cumulative decision counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub at_unix_ms: u64,
    pub decisions: u64,
    pub timed: u64,
    pub engine_time_ns_sum: u64,
}

/// The ring of samples, oldest first.
///
/// A `std::sync::Mutex`: held only to push one sample or copy at most [`KEEP`] out, never
/// across an `.await`.
#[derive(Debug, Default)]
pub struct CounterHistory {
    samples: Mutex<VecDeque<Sample>>,
}

impl CounterHistory {
    /// Add a sample, dropping the oldest beyond [`KEEP`].
    pub fn push(&self, sample: Sample) {
        let mut samples = self
            .samples
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if samples.len() == KEEP {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The samples taken after `after_unix_ms` (0: all kept), oldest first.
    pub fn since(&self, after_unix_ms: u64) -> Vec<Sample> {
        let samples = self
            .samples
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        samples
            .iter()
            .filter(|s| s.at_unix_ms > after_unix_ms)
            .copied()
            .collect()
    }

    /// A history fed from `metrics` every [`INTERVAL`] until `shutdown`.
    pub fn spawn(metrics: Arc<Metrics>, shutdown: Shutdown) -> Arc<Self> {
        let history = Arc::new(Self::default());
        let feed = history.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let stop = shutdown.wait();
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tick.tick() => feed.push(read(&metrics)),
                }
            }
        });
        history
    }
}

/// The counters now, stamped with the wall clock.
pub fn read(metrics: &Metrics) -> Sample {
    let (decisions, timed, engine_time_ns_sum) = metrics.decision_totals();
    Sample {
        at_unix_ms: now_unix_ms(),
        decisions,
        timed,
        engine_time_ns_sum,
    }
}

fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Sample {
        Sample {
            at_unix_ms: ms,
            decisions: ms,
            timed: 0,
            engine_time_ns_sum: 0,
        }
    }

    #[test]
    fn keeps_the_last_samples_only_and_answers_after_a_time() {
        let h = CounterHistory::default();
        for ms in 1..=(KEEP as u64 + 50) {
            h.push(at(ms));
        }
        let all = h.since(0);
        assert_eq!(all.len(), KEEP);
        assert_eq!(all.first().map(|s| s.at_unix_ms), Some(51));
        assert_eq!(all.last().map(|s| s.at_unix_ms), Some(KEEP as u64 + 50));
        let tail = h.since(KEEP as u64 + 47);
        assert_eq!(
            tail.iter().map(|s| s.at_unix_ms).collect::<Vec<_>>(),
            [348, 349, 350]
        );
    }
}
