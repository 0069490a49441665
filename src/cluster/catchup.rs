//! Group commit of the apply loop: how each entry is committed, whether the sidecar keeps up
//! with the directory log or is far behind it, and the progress a catch-up reports.
//!
//! Owns: the choice between a durable and a deferred commit per entry (see
//! [`crate::store::Commit`]), when the deferred ones are due on disk, and the progress
//! reports (entries applied, behind, rate, ETA).
//! Must not: apply anything or batch entries into one transaction: every entry is still its
//! own transaction whose index ops are published before the next entry is authorized (apply
//! reads the in-memory index, issue 13 point 4); only the fsync is batched. Pure bookkeeping
//! (the caller passes the clock), so it is tested without a log.
//!
//! Durability (group commit): an entry is committed deferred (redb `Durability::None`) while
//! fewer than [`DURABLE_EVERY_ENTRIES`] deferred commits and less than [`DURABLE_EVERY`]
//! lie behind the last durable commit; otherwise durably, which puts the deferred ones on
//! disk with it. Deferred commits left when the log goes quiet are due on disk
//! [`DURABLE_EVERY`] after the last durable commit ([`CatchUp::flush_due`]: the loop then
//! makes an empty durable commit). This holds in the steady state as in a catch-up: a sidecar
//! keeping up at a low rate commits every entry durably (each comes more than
//! [`DURABLE_EVERY`] after the previous one), one under load shares one fsync among the
//! entries of up to [`DURABLE_EVERY`]. A local submitter may be answered from a deferred
//! commit: the log (acknowledged by a majority of the stream's replicas) is what made the
//! write durable, and a crash before the next durable commit only rewinds this sidecar's
//! position together with the changes it covers, which it then re-applies from the log to
//! the same outcomes (and a retry with the request id gets that outcome).
//! [`DURABLE_EVERY_ENV`]` = 1` commits every entry durably (no grouping).

use crate::store::Commit;
use std::time::{Duration, Instant};

/// A sidecar this many entries (or more) behind the log is catching up: it reports
/// progress.
pub const CATCHUP_LAG: u64 = 64;
/// At most this many deferred commits between two durable ones.
pub const DURABLE_EVERY_ENTRIES: u64 = 1_000;
/// Environment variable overriding [`DURABLE_EVERY_ENTRIES`] (`1` commits every entry
/// durably, without group commit: the A/B knob of `scripts/bench-cluster-writes.sh`).
pub const DURABLE_EVERY_ENV: &str = "WARDEN_CLUSTER_CATCHUP_BATCH";
/// At most this long between two durable commits while deferring.
pub const DURABLE_EVERY: Duration = Duration::from_millis(250);
/// How often a catch-up reports its progress in the log.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// What the log should say about the catch-up.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// A catch-up began: `behind` entries to apply after `from_seq`.
    Started { from_seq: u64, behind: u64 },
    /// Every [`PROGRESS_EVERY`]: entries applied since it began, still behind, the rate over
    /// the last period (entries/s), and the time left at that rate.
    Progress {
        applied: u64,
        behind: u64,
        rate: f64,
        eta: Duration,
    },
    /// It ended (nothing left behind): entries applied, how long it took, the mean rate.
    Done { applied: u64, took: Duration, rate: f64 },
}

#[derive(Debug)]
struct Running {
    started: Instant,
    applied: u64,
    last_report: Instant,
    applied_at_report: u64,
}

/// The catch-up state of one consumer.
#[derive(Debug)]
pub struct CatchUp {
    durable_every: u64,
    deferred: u64,
    last_durable: Instant,
    running: Option<Running>,
}

impl CatchUp {
    pub fn new(now: Instant) -> Self {
        let durable_every = std::env::var(DURABLE_EVERY_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(DURABLE_EVERY_ENTRIES);
        Self::with_batch(durable_every, now)
    }

    /// A catch-up committing at most `durable_every` entries between durable commits (1:
    /// every entry durable).
    pub fn with_batch(durable_every: u64, now: Instant) -> Self {
        Self {
            durable_every: durable_every.max(1),
            deferred: 0,
            last_durable: now,
            running: None,
        }
    }

    /// How to commit the next entry.
    pub fn commit_for(&self, now: Instant) -> Commit {
        if self.durable_every > 1
            && self.deferred < self.durable_every
            && now.duration_since(self.last_durable) < DURABLE_EVERY
        {
            Commit::Deferred
        } else {
            Commit::Durable
        }
    }

    /// When the deferred commits are due on disk if no entry comes first (`None`: nothing
    /// deferred).
    pub fn flush_due(&self) -> Option<Instant> {
        (self.deferred > 0).then(|| self.last_durable + DURABLE_EVERY)
    }

    /// Note an entry committed as `commit`.
    pub fn committed(&mut self, commit: Commit, now: Instant) {
        match commit {
            Commit::Deferred => self.deferred += 1,
            Commit::Durable => self.flushed(now),
        }
    }

    /// Deferred commits not yet on disk.
    pub fn deferred(&self) -> u64 {
        self.deferred
    }

    /// Every deferred commit reached the disk (a durable commit, or [`Store::flush_durable`]).
    ///
    /// [`Store::flush_durable`]: crate::store::Store::flush_durable
    pub fn flushed(&mut self, now: Instant) {
        self.deferred = 0;
        self.last_durable = now;
    }

    /// Deferred commits were lost (the stored position rewound): start over.
    pub fn rewound(&mut self, now: Instant) {
        self.flushed(now);
        self.running = None;
    }

    /// Note that entry `seq` was applied with `behind` entries after it; what to log, if
    /// anything.
    pub fn applied(&mut self, seq: u64, behind: u64, now: Instant) -> Option<Report> {
        let Some(run) = &mut self.running else {
            if behind >= CATCHUP_LAG {
                self.running = Some(Running {
                    started: now,
                    applied: 1,
                    last_report: now,
                    applied_at_report: 1,
                });
                return Some(Report::Started {
                    from_seq: seq.saturating_sub(1),
                    behind: behind + 1,
                });
            }
            return None;
        };
        run.applied += 1;
        if behind == 0 {
            let took = now.duration_since(run.started);
            let report = Report::Done {
                applied: run.applied,
                took,
                rate: rate(run.applied, took),
            };
            self.running = None;
            return Some(report);
        }
        let since = now.duration_since(run.last_report);
        if since < PROGRESS_EVERY {
            return None;
        }
        let r = rate(run.applied - run.applied_at_report, since);
        run.last_report = now;
        run.applied_at_report = run.applied;
        let eta = if r > 0.0 {
            Duration::from_secs_f64((behind as f64 / r).min(1e9))
        } else {
            Duration::MAX
        };
        Some(Report::Progress {
            applied: run.applied,
            behind,
            rate: r,
            eta,
        })
    }

    /// Whether a catch-up is running.
    pub fn running(&self) -> bool {
        self.running.is_some()
    }
}

fn rate(entries: u64, over: Duration) -> f64 {
    let secs = over.as_secs_f64();
    if secs > 0.0 { entries as f64 / secs } else { 0.0 }
}

/// Write `report` to the log.
pub fn log(report: &Report) {
    match report {
        Report::Started { from_seq, behind } => tracing::info!(
            from_seq,
            behind,
            "catching up on the directory log: {behind} entries behind after entry {from_seq}"
        ),
        Report::Progress {
            applied,
            behind,
            rate,
            eta,
        } => tracing::info!(
            applied,
            behind,
            rate = format!("{rate:.0}"),
            eta_s = eta.as_secs(),
            "catching up on the directory log: {applied} applied, {behind} behind, {rate:.0} entries/s, \
             about {}s left",
            eta.as_secs()
        ),
        Report::Done { applied, took, rate } => tracing::info!(
            applied,
            took_ms = took.as_millis() as u64,
            rate = format!("{rate:.0}"),
            "caught up on the directory log: {applied} entries in {:.1}s ({rate:.0} entries/s)",
            took.as_secs_f64()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_are_grouped_every_nth_entry_or_after_t_and_due_when_the_log_goes_quiet() {
        let t0 = Instant::now();
        let mut c = CatchUp::with_batch(DURABLE_EVERY_ENTRIES, t0);
        assert_eq!(c.flush_due(), None, "nothing deferred, nothing due");
        // Under load: deferred, until N deferred commits in a row.
        let mut durable_at = Vec::new();
        for i in 0..(2 * DURABLE_EVERY_ENTRIES + 2) {
            let commit = c.commit_for(t0);
            if commit == Commit::Durable {
                durable_at.push(i);
            }
            c.committed(commit, t0);
        }
        assert_eq!(
            durable_at,
            vec![DURABLE_EVERY_ENTRIES, 2 * DURABLE_EVERY_ENTRIES + 1]
        );
        // ... or until T after the last durable commit.
        assert_eq!(c.commit_for(t0 + DURABLE_EVERY), Commit::Durable);
        // The log went quiet after a deferred commit: it is due T after the last durable one.
        let commit = c.commit_for(t0);
        assert_eq!(commit, Commit::Deferred);
        c.committed(commit, t0);
        assert_eq!(c.deferred(), 1);
        assert_eq!(c.flush_due(), Some(t0 + DURABLE_EVERY));
        c.flushed(t0 + DURABLE_EVERY);
        assert_eq!((c.deferred(), c.flush_due()), (0, None));
        // A sidecar keeping up at a low rate: every entry comes T or more after the last
        // durable commit, so each one is durable, as without grouping.
        let mut t = t0 + DURABLE_EVERY;
        for _ in 0..3 {
            t += DURABLE_EVERY;
            assert_eq!(c.commit_for(t), Commit::Durable);
            c.committed(Commit::Durable, t);
        }
        // A batch of 1: every entry durable (no grouping).
        assert_eq!(CatchUp::with_batch(1, t0).commit_for(t0), Commit::Durable);
    }

    #[test]
    fn progress_reports_start_rate_eta_and_end() {
        let t0 = Instant::now();
        let mut c = CatchUp::with_batch(DURABLE_EVERY_ENTRIES, t0);
        assert_eq!(c.applied(5, 3, t0), None, "a small lag is no catch-up");
        assert_eq!(
            c.applied(6, 999, t0),
            Some(Report::Started {
                from_seq: 5,
                behind: 1_000
            })
        );
        assert!(c.running());
        // 500 more entries over the next period: 100/s, 499 left → about 5 s.
        let mut last = None;
        for i in 0..500u64 {
            let now = t0 + PROGRESS_EVERY * (i as u32 + 1) / 500;
            if let Some(r) = c.applied(7 + i, 998 - i, now) {
                last = Some(r);
            }
        }
        match last {
            Some(Report::Progress {
                applied,
                behind,
                rate,
                eta,
            }) => {
                assert_eq!((applied, behind), (501, 499));
                assert!((rate - 100.0).abs() < 1.0, "{rate}");
                assert_eq!(eta.as_secs(), 4, "499 entries at 100/s");
            }
            other => panic!("no progress report: {other:?}"),
        }
        let end = t0 + PROGRESS_EVERY * 2;
        match c.applied(2_000, 0, end) {
            Some(Report::Done { applied, took, .. }) => {
                assert_eq!(applied, 502);
                assert_eq!(took, PROGRESS_EVERY * 2);
            }
            other => panic!("no end report: {other:?}"),
        }
        assert!(!c.running());
    }
}
