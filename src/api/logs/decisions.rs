//! The decision log: one JSON line per sampled decision, written by its own thread.
//!
//! The check path only samples (one random draw when the rate is below 1), copies the
//! four fields into a record and `try_send`s it into a bounded channel. When the channel
//! is full the record is dropped and counted (`warden_decision_log_dropped_total`): a
//! slow disk costs log lines, never check latency. The writer thread serializes, writes
//! through [`RotatingFile`] and flushes whenever the channel runs dry.
//!
//! Each line names the policy (its hash), the rule that decided (`file:line`) and the
//! directory revision the decision was made at, so an auditor can replay it with
//! `warden policy eval`. Each decision has an id ([`DecisionId`]) that the caller gets
//! back (`CheckResponse.decision_id`, ext_authz's `x-warden-decision-id` header) and that
//! the line carries, with the peer and, for ext_authz, the HTTP method, path and
//! `x-request-id`, so an application's log line joins the decision that let it through.
//! An id is a per-process random prefix and a counter: one atomic increment per decision,
//! formatted only when it is sent or written. Subjects are written as
//! `sha256:<16 hex>` unless the operator asks for plain user ids; even then only a subject
//! that is a member of the decision's org in the directory is written plain (decided on
//! the writer thread), so an API token, or any string a caller made up, is hashed and no
//! secret reaches the file.

use crate::api::logs::rotate::{RotatingFile, Rotation};
use crate::api::metrics::Metrics;
use crate::engine::index::IndexData;
use crate::engine::{CheckInput, CompiledPolicy, Decision, Engine};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, LazyLock};
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

/// The id of one decision: a random prefix fixed for the process and a counter, so ids
/// are unique across restarts and replicas without coordination. Taking one costs one
/// atomic increment; it is formatted (`3f9a01c2-1a`) only when sent or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionId(u64);

static ID_PREFIX: LazyLock<u32> = LazyLock::new(rand::random);
static ID_NEXT: AtomicU64 = AtomicU64::new(1);

impl DecisionId {
    /// The next id of this process.
    pub fn next() -> Self {
        Self(ID_NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for DecisionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}-{:x}", *ID_PREFIX, self.0)
    }
}

impl Serialize for DecisionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Where a decision came from and what it was about beyond the check itself; built only
/// for decisions the log keeps.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Context {
    /// The caller: `tcp:IP:PORT`, or `unix:uid=U,pid=P` on the Unix socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// ext_authz: the HTTP request's method, path (without the query) and `x-request-id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The rule that decided, as the decision path has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecidingRule {
    /// No rule matched (default effect), or a token was refused before evaluation.
    None,
    /// A row of the policy that decided; resolved to `file:line` on the writer thread.
    Row(u32),
    /// Already resolved (an explained check): `file:line`.
    At(String),
}

impl From<Option<u32>> for DecidingRule {
    fn from(row: Option<u32>) -> Self {
        row.map_or(Self::None, Self::Row)
    }
}

/// One decision waiting for the writer.
#[derive(Debug)]
struct Record {
    ts_ms: u64,
    source: Source,
    id: DecisionId,
    subject: String,
    org: String,
    resource: String,
    action: String,
    allowed: bool,
    revision: u64,
    rule: DecidingRule,
    policy: Arc<CompiledPolicy>,
    context: Context,
}

/// One line of the log.
#[derive(Debug, Serialize)]
struct Line<'a> {
    ts_ms: u64,
    decision_id: DecisionId,
    source: Source,
    subject: String,
    org: &'a str,
    resource: &'a str,
    action: &'a str,
    allowed: bool,
    revision: u64,
    /// `file:line` of the deciding rule; absent when none matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<String>,
    policy_hash: &'a str,
    #[serde(flatten)]
    context: &'a Context,
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

    /// Offer one decision to the log. Never blocks; `context` is called only for a
    /// decision the sample keeps.
    pub fn record(
        &self,
        source: Source,
        id: DecisionId,
        input: &CheckInput<'_>,
        decision: &Decision,
        context: impl FnOnce() -> Context,
    ) {
        self.record_rule(source, id, input, decision, decision.rule.into(), context);
    }

    /// [`DecisionLog::record`] with the deciding rule given separately (explained checks
    /// have it resolved already).
    pub fn record_rule(
        &self,
        source: Source,
        id: DecisionId,
        input: &CheckInput<'_>,
        decision: &Decision,
        rule: DecidingRule,
        context: impl FnOnce() -> Context,
    ) {
        if self.sample < 1.0 && rand::random::<f64>() >= self.sample {
            return;
        }
        let record = Record {
            ts_ms: crate::api::directory::now_ms(),
            source,
            id,
            // Made loggable on the writer thread, which may look at the directory.
            subject: input.subject.to_string(),
            org: input.org.to_string(),
            resource: input.resource.to_string(),
            action: input.action.to_string(),
            allowed: decision.allowed,
            revision: decision.revision,
            rule,
            // The snapshot serving now; a reload between the decision and this line is
            // the only way it can differ from the one that decided.
            policy: self.engine.policy(),
            context: context(),
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
    let write = |file: &mut RotatingFile, r: Record| {
        let subject = {
            let dir = engine.index().read();
            loggable_subject(&r.subject, &r.org, mode, &dir)
        };
        let rule = match r.rule {
            DecidingRule::None => None,
            DecidingRule::At(at) => Some(at),
            DecidingRule::Row(i) => r
                .policy
                .rows
                .get(i as usize)
                .map(|row| format!("{}:{}", row.source.file, row.source.line)),
        };
        let line = Line {
            ts_ms: r.ts_ms,
            decision_id: r.id,
            source: r.source,
            subject,
            org: &r.org,
            resource: &r.resource,
            action: &r.action,
            allowed: r.allowed,
            revision: r.revision,
            rule,
            policy_hash: &r.policy.hash,
            context: &r.context,
        };
        let line = match serde_json::to_vec(&line) {
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

    const DECISION: Decision = Decision {
        allowed: true,
        revision: 1,
        rule: None,
    };

    #[test]
    fn decision_ids_are_unique_and_share_the_process_prefix() {
        let a = DecisionId::next().to_string();
        let b = DecisionId::next().to_string();
        assert_ne!(a, b);
        let (pa, _) = a.split_once('-').unwrap();
        let (pb, _) = b.split_once('-').unwrap();
        assert_eq!((pa, pa.len()), (pb, 8), "{a} {b}");
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
            log.record(
                Source::Check,
                DecisionId::next(),
                &INPUT,
                &DECISION,
                Context::default,
            );
        }
        assert_eq!(metrics.decision_log_dropped(), 3);
        assert_eq!(rx.try_iter().count(), 2);
    }

    #[test]
    fn sampling_at_zero_writes_nothing_and_at_one_everything() {
        let metrics = Metrics::new();
        let (log, rx) = DecisionLog::with_capacity(&config(0.0), engine(), metrics.clone(), 100);
        for _ in 0..50 {
            log.record(
                Source::Check,
                DecisionId::next(),
                &INPUT,
                &DECISION,
                Context::default,
            );
        }
        assert_eq!(rx.try_iter().count(), 0);
        let (log, rx) = DecisionLog::with_capacity(&config(1.0), engine(), metrics, 100);
        for _ in 0..50 {
            log.record(
                Source::Check,
                DecisionId::next(),
                &INPUT,
                &DECISION,
                Context::default,
            );
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
