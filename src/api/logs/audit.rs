//! The audit log: one JSON line per committed directory change — who, what, when, at
//! which revision — followed from the store's change log by its own thread.
//!
//! Following the change log rather than hooking the write path means a mutation never
//! waits for the audit file, and the file can never disagree with what was committed:
//! every line is a change-log entry, in revision order, none skipped. After a restart the
//! follower resumes after the last revision already in the file, so changes committed
//! while it was down (or queued at a crash) are still written; a new file starts at the
//! revision the directory had when the daemon opened it (so a fresh `--demo` store's
//! seed is in it from revision 1) rather than replaying a long history.
//!
//! Each file starts with a header line (no `revision`) saying what it holds: every change
//! committed to this daemon's directory, and in cluster mode that is every change applied
//! from the shared log, other sidecars' writes included (one sidecar's file is the whole
//! cluster's audit trail).
//!
//! Secrets never reach the file: any field whose name says it holds one (`secret`,
//! `token`, `password`, `hash`, `code`, `credential`, `key`, or private metadata) is
//! written as `"[redacted]"`.

use crate::api::logs::rotate::{self, RotatingFile, Rotation};
use crate::engine::Engine;
use crate::store::{ChangeRecord, Store};
use serde_json::{Value, json};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the follower looks for new revisions.
const POLL: Duration = Duration::from_millis(100);
/// Changes read from the store per read transaction.
const BATCH: u32 = 1000;
/// Field-name fragments whose values are never written.
const SECRET_FIELDS: &[&str] = &[
    "secret",
    "token",
    "password",
    "passwd",
    "hash",
    "code",
    "credential",
    "key",
    "private",
];
pub const REDACTED: &str = "[redacted]";

/// The follower thread; [`AuditLog::stop`] writes what is committed, flushes and joins.
pub struct AuditLog {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AuditLog {
    /// Open `path` and follow the change log from where the file stops, or, for a new
    /// file, after revision `new_file_after` (the store's revision when the daemon opened
    /// it, before any demo seed).
    pub fn start(
        path: &Path,
        rotation: Rotation,
        new_file_after: u64,
        store: Arc<Store>,
        engine: Arc<Engine>,
        cluster: bool,
    ) -> std::io::Result<Self> {
        let resume = last_revision(path).or_else(|| last_revision(&rotate::numbered(path, 1)));
        let from = resume.unwrap_or(new_file_after);
        let header = serde_json::to_vec(&header(cluster)).map_err(std::io::Error::other)?;
        let file = RotatingFile::open(path, rotation)?.with_header(header)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new().name("audit-log".into()).spawn({
            let stop = stop.clone();
            move || follow(&store, &engine, file, from, &stop)
        })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }
}

fn follow(store: &Store, engine: &Engine, mut file: RotatingFile, mut last: u64, stop: &AtomicBool) {
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if engine.index().revision() > last {
            catch_up(store, &mut file, &mut last);
        }
        if stopping {
            break;
        }
        std::thread::park_timeout(POLL);
    }
}

fn catch_up(store: &Store, file: &mut RotatingFile, last: &mut u64) {
    loop {
        let batch = match store.changes_since(*last, BATCH) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, after = *last, "audit log: reading the change log failed; retrying");
                break;
            }
        };
        if batch.is_empty() {
            break;
        }
        for rec in batch {
            let line = match serde_json::to_vec(&audit_line(&rec)) {
                Ok(line) => line,
                Err(e) => {
                    tracing::warn!(revision = rec.revision, error = %e, "audit log: cannot serialize");
                    continue;
                }
            };
            if let Err(e) = file.write_line(&line) {
                tracing::warn!(file = %file.path().display(), error = %e, "audit log: write failed");
            }
            *last = rec.revision;
        }
    }
    if let Err(e) = file.flush() {
        tracing::warn!(file = %file.path().display(), error = %e, "audit log: flush failed");
    }
}

/// The first line of every audit file: what it holds.
pub fn header(cluster: bool) -> Value {
    let (mode, writes) = if cluster {
        (
            "cluster",
            "every change applied from the directory log, other sidecars' writes included",
        )
    } else {
        (
            "single_node",
            "every change committed to this daemon's directory (all made through this daemon)",
        )
    };
    json!({ "warden_audit_log": 1, "mode": mode, "writes": writes })
}

/// One audit line for a committed change, secrets redacted.
pub fn audit_line(rec: &ChangeRecord) -> Value {
    let change = redacted_change(&rec.change);
    json!({
        "ts_ms": rec.at_ms,
        "revision": rec.revision,
        "actor": rec.actor,
        "kind": rec.change.kind(),
        "change": change,
    })
}

/// A change as JSON with its secrets redacted, exactly as an audit line writes it (also what
/// `WatchChanges` sends).
pub fn redacted_change(change: &crate::directory::Change) -> Value {
    let mut v = serde_json::to_value(change).unwrap_or(Value::Null);
    redact(&mut v);
    v
}

fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                let lower = k.to_ascii_lowercase();
                if SECRET_FIELDS.iter().any(|s| lower.contains(s)) {
                    *val = Value::String(REDACTED.into());
                } else {
                    redact(val);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The revision of the last complete line of an audit file, if any.
fn last_revision(path: &Path) -> Option<u64> {
    const TAIL: u64 = 1 << 20;
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    tail.split(|b| *b == b'\n')
        .rev()
        .filter(|l| !l.is_empty())
        .find_map(|l| serde_json::from_slice::<Value>(l).ok()?.get("revision")?.as_u64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Change;

    #[test]
    fn secret_fields_are_redacted_at_any_depth() {
        let mut v = json!({
            "id": "acme",
            "invite_code": "c0de",
            "token_hash": "abcd",
            "private_metadata": {"x": 1},
            "settings": {"sso": {"client_secret": "s3cr3t", "issuer": "https://idp"}},
            "list": [{"api_key": "k"}],
        });
        redact(&mut v);
        let text = v.to_string();
        for secret in ["c0de", "abcd", "s3cr3t", "\"k\"", "\"x\""] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(v["id"], "acme");
        assert_eq!(v["settings"]["sso"]["issuer"], "https://idp");
    }

    #[test]
    fn a_line_names_actor_kind_and_revision() {
        let rec = ChangeRecord {
            revision: 7,
            format: 1,
            actor: "alice".into(),
            at_ms: 1_700_000_000_000,
            change: Change::DeleteOrg { id: "acme".into() },
            operator: false,
            request_id: None,
            policy: None,
            stream_seq: None,
            requested_at_ms: None,
        };
        let line = audit_line(&rec);
        assert_eq!(line["revision"], 7);
        assert_eq!(line["actor"], "alice");
        assert_eq!(line["kind"], rec.change.kind());
        assert_eq!(line["change"]["id"], "acme");
    }

    #[test]
    fn resume_point_is_the_last_complete_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.jsonl");
        assert_eq!(last_revision(&p), None);
        std::fs::write(&p, "{\"revision\":3}\n{\"revision\":4}\n{\"revisi").unwrap();
        assert_eq!(last_revision(&p), Some(4));
    }
}
