//! The decision log: one JSON line per sampled decision, written by its own thread.
//!
//! The check path only samples (one random draw when the rate is below 1), copies the
//! four fields into a record and `try_send`s it into a bounded channel. When the channel
//! is full the record is dropped and counted (`warden_decision_log_dropped_total`): a
//! slow disk costs log lines, never check latency. The writer thread serializes, writes
//! through [`RotatingFile`] and flushes whenever the channel runs dry.
//!
//! Each line names the policy (its hash) and the directory revision the decision was
//! made at, so an auditor can replay it with `warden policy eval`. Subjects are written as
//! `sha256:<16 hex>` unless the operator asks for plain user ids; even then only a subject
//! that is a member of the decision's org in the directory is written plain (decided on
//! the writer thread), so an API token, or any string a caller made up, is hashed and no
//! secret reaches the file.

use crate::api::logs::rotate::{RotatingFile, Rotation};
use crate::api::metrics::Metrics;
use crate::engine::index::IndexData;
use crate::engine::{CheckInput, Engine};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

/// Records waiting for the writer; past this they are dropped and counted.
pub const CHANNEL_CAPACITY: usize = 8192;

/// How often the idle writer looks at its stop flag.
const IDLE_WAKE: Duration = Duration::from_millis(200);

/// How subjects are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubjectMode {
    /// `sha256:` and the first 16 hex digits of the subject's SHA-256: joinable across
    /// lines, not readable.
    #[default]
    Hash,
    /// Plain user ids of the org's members; any other subject is still hashed.
    Plain,
}

/// Settings of `serve --decision-log`.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionLogConfig {
    pub path: PathBuf,
    /// Fraction of decisions written, 0.0–1.0.
    pub sample: f64,
    pub subjects: SubjectMode,
    pub rotation: Rotation,
}

// `sample` is validated finite (0.0–1.0) when the configuration is resolved, so equality
// is total.
impl Eq for DecisionLogConfig {}

/// Which API decided.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Check,
    BatchCheck,
    ExtAuthz,
}

/// One line of the log.
#[derive(Debug, Serialize)]
struct Record {
    ts_ms: u64,
    source: Source,
    subject: String,
    org: String,
    resource: String,
    action: String,
    allowed: bool,
    revision: u64,
    policy_hash: String,
}

/// The check path's handle: sampling, the channel, the drop counter.
pub struct DecisionLog {
    tx: SyncSender<Record>,
    sample: f64,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
}

/// The writer thread; [`DecisionLogWriter::stop`] drains the channel, flushes and joins.
pub struct DecisionLogWriter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DecisionLog {
    /// Open the file and start the writer thread.
    pub fn start(
        config: &DecisionLogConfig,
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(Arc<Self>, DecisionLogWriter)> {
        let file = RotatingFile::open(&config.path, config.rotation)?;
        let (log, rx) = Self::with_capacity(config, engine.clone(), metrics, CHANNEL_CAPACITY);
        let stop = Arc::new(AtomicBool::new(false));
        let subjects = config.subjects;
        let thread = std::thread::Builder::new().name("decision-log".into()).spawn({
            let stop = stop.clone();
            let engine = engine.clone();
            move || write_loop(rx, file, &stop, &engine, subjects)
        })?;
        Ok((
            log,
            DecisionLogWriter {
                stop,
                thread: Some(thread),
            },
        ))
    }

    fn with_capacity(
        config: &DecisionLogConfig,
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        capacity: usize,
    ) -> (Arc<Self>, Receiver<Record>) {
        let (tx, rx) = sync_channel(capacity);
        let log = Arc::new(Self {
            tx,
            sample: config.sample.clamp(0.0, 1.0),
            engine,
            metrics,
        });
        (log, rx)
    }

    /// Offer one decision to the log. Never blocks.
    pub fn record(&self, source: Source, input: &CheckInput<'_>, allowed: bool, revision: u64) {
        if self.sample < 1.0 && rand::random::<f64>() >= self.sample {
            return;
        }
        let record = Record {
            ts_ms: crate::api::directory::now_ms(),
            source,
            // Made loggable on the writer thread, which may look at the directory.
            subject: input.subject.to_string(),
            org: input.org.to_string(),
            resource: input.resource.to_string(),
            action: input.action.to_string(),
            allowed,
            revision,
            // The snapshot serving now; a reload between the decision and this line is
            // the only way it can differ from the one that decided.
            policy_hash: self.engine.policy().hash.clone(),
        };
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.metrics.count_decision_log_drop();
            }
        }
    }
}

impl DecisionLogWriter {
    /// Write what is queued, flush, and end the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DecisionLogWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn write_loop(
    rx: Receiver<Record>,
    mut file: RotatingFile,
    stop: &AtomicBool,
    engine: &Engine,
    mode: SubjectMode,
) {
    let write = |file: &mut RotatingFile, mut r: Record| {
        r.subject = {
            let dir = engine.index().read();
            loggable_subject(&r.subject, &r.org, mode, &dir)
        };
        let line = match serde_json::to_vec(&r) {
            Ok(line) => line,
            Err(e) => return tracing::warn!(error = %e, "decision log: cannot serialize a record"),
        };
        if let Err(e) = file.write_line(&line) {
            tracing::warn!(file = %file.path().display(), error = %e, "decision log: write failed");
        }
    };
    loop {
        match rx.recv_timeout(IDLE_WAKE) {
            Ok(r) => {
                write(&mut file, r);
                while let Ok(r) = rx.try_recv() {
                    write(&mut file, r);
                }
                flush(&mut file);
            }
            Err(RecvTimeoutError::Timeout) => {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if stop.load(Ordering::Relaxed) {
            while let Ok(r) = rx.try_recv() {
                write(&mut file, r);
            }
            break;
        }
    }
    flush(&mut file);
}

fn flush(file: &mut RotatingFile) {
    if let Err(e) = file.flush() {
        tracing::warn!(file = %file.path().display(), error = %e, "log flush failed");
    }
}

/// The subject as it may appear in a log file: plain only in `Plain` mode and only for a
/// member of `org`, hashed otherwise.
pub fn loggable_subject(subject: &str, org: &str, mode: SubjectMode, dir: &IndexData) -> String {
    if mode == SubjectMode::Plain && dir.role_of(org, subject).is_some() {
        return subject.to_string();
    }
    let digest = Sha256::digest(subject.as_bytes());
    format!("sha256:{}", hex::encode(&digest[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::index::DirectoryIndex;

    fn engine() -> Arc<Engine> {
        let policy = crate::policy::load_defaults().expect("embedded defaults");
        Arc::new(Engine::new(Arc::new(policy), Arc::new(DirectoryIndex::new())))
    }

    fn config(sample: f64) -> DecisionLogConfig {
        DecisionLogConfig {
            path: PathBuf::from("unused"),
            sample,
            subjects: SubjectMode::Hash,
            rotation: Rotation::default(),
        }
    }

    const INPUT: CheckInput<'static> = CheckInput {
        subject: "alice",
        org: "acme",
        resource: "apps/web",
        action: "app:read",
    };

    #[test]
    fn a_full_channel_drops_and_counts_instead_of_blocking() {
        let metrics = Metrics::new();
        let (log, rx) = DecisionLog::with_capacity(&config(1.0), engine(), metrics.clone(), 2);
        for _ in 0..5 {
            log.record(Source::Check, &INPUT, true, 1);
        }
        assert_eq!(metrics.decision_log_dropped(), 3);
        assert_eq!(rx.try_iter().count(), 2);
    }

    #[test]
    fn sampling_at_zero_writes_nothing_and_at_one_everything() {
        let metrics = Metrics::new();
        let (log, rx) = DecisionLog::with_capacity(&config(0.0), engine(), metrics.clone(), 100);
        for _ in 0..50 {
            log.record(Source::Check, &INPUT, true, 1);
        }
        assert_eq!(rx.try_iter().count(), 0);
        let (log, rx) = DecisionLog::with_capacity(&config(1.0), engine(), metrics, 100);
        for _ in 0..50 {
            log.record(Source::Check, &INPUT, true, 1);
        }
        assert_eq!(rx.try_iter().count(), 50);
    }

    #[test]
    fn subjects_are_hashed_unless_plain_and_org_members() {
        let store = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(store.path().join("w.redb")).unwrap();
        let index = DirectoryIndex::new();
        let ctx = crate::store::ApplyContext::trusted();
        for env in crate::store::demo::demo_changes(1) {
            store.apply_and_index(env, &ctx, &index).unwrap();
        }
        let dir = index.read();
        let hashed = loggable_subject("alice", "acme", SubjectMode::Hash, &dir);
        assert!(
            hashed.starts_with("sha256:") && hashed.len() == 7 + 16,
            "{hashed}"
        );
        assert_eq!(
            hashed,
            loggable_subject("alice", "acme", SubjectMode::Hash, &dir),
            "stable, so joinable"
        );
        assert_eq!(
            loggable_subject("alice", "acme", SubjectMode::Plain, &dir),
            "alice"
        );
        // Not a member of that org, a token-shaped string, a role name: hashed anyway.
        for (s, org) in [
            ("alice", "globex"),
            ("wdn_pat_0123456789abcdef", "acme"),
            ("role:admin", "acme"),
        ] {
            assert!(
                loggable_subject(s, org, SubjectMode::Plain, &dir).starts_with("sha256:"),
                "{s}"
            );
        }
    }
}
