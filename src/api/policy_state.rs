//! What the daemon knows about its policy: which one is serving, since when, and how
//! the latest reload went. Read by `AdminService`, written only by the reloader.

use crate::engine::CompiledPolicy;
use crate::policy::PolicyErrors;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// A copy of the policy status at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyStatus {
    pub dir: PathBuf,
    /// Files of the serving policy.
    pub files: Vec<PathBuf>,
    /// Hex SHA-256 of the serving policy's sources.
    pub hash: String,
    pub loaded_at_unix_ms: u64,
    /// Errors of the latest attempt, `file:line: reason` per line; `None` once an
    /// attempt succeeds, so the status shows the daemon's present health.
    pub last_error: Option<String>,
    pub last_error_at_unix_ms: u64,
    /// Reloads after the initial load.
    pub reloads_succeeded: u64,
    pub reloads_failed: u64,
    /// Whether the policy directory is being watched (see `api::reload`).
    pub watcher: WatcherState,
    /// Times the watch was re-established after the directory (or the symlink it is
    /// reached through) was replaced.
    pub watch_restarts: u64,
    /// The serving policy's warnings (`CompiledPolicy::warnings`, which include the
    /// findings of `policy::lint`), `file:line: reason` each.
    pub warnings: Vec<String>,
}

/// The file watcher's state. A watcher that cannot watch is an error in the status, the
/// metrics and `/healthz`, never silence: edits would otherwise stop loading unseen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WatcherState {
    /// No watcher runs (tests of the admin service; the daemon always starts one).
    #[default]
    Off,
    /// Watching this directory (the `--policies` path with symlinks resolved).
    Watching(PathBuf),
    /// The watch is lost or could not be set up; retried on every content check.
    Failed(String),
}

impl WatcherState {
    /// `off`, `watching` or `error`: the `watcher` field of the status.
    pub fn name(&self) -> &'static str {
        match self {
            WatcherState::Off => "off",
            WatcherState::Watching(_) => "watching",
            WatcherState::Failed(_) => "error",
        }
    }
}

/// The shared, mutable policy status.
///
/// A `parking_lot::Mutex` rather than a Tokio one: it is never held across `.await`
/// and each critical section copies or overwrites a few fields.
pub struct PolicyState {
    inner: Mutex<PolicyStatus>,
}

impl PolicyState {
    /// The state right after the startup load of `policy` from `dir`.
    pub fn new(dir: &Path, policy: &CompiledPolicy) -> Self {
        Self {
            inner: Mutex::new(PolicyStatus {
                dir: dir.to_path_buf(),
                files: policy.files.clone(),
                hash: policy.hash.clone(),
                loaded_at_unix_ms: now_unix_ms(),
                warnings: warnings_of(policy),
                ..PolicyStatus::default()
            }),
        }
    }

    pub fn snapshot(&self) -> PolicyStatus {
        self.inner.lock().clone()
    }

    pub(crate) fn record_success(&self, policy: &CompiledPolicy) -> PolicyStatus {
        let mut s = self.inner.lock();
        s.files = policy.files.clone();
        s.hash = policy.hash.clone();
        s.loaded_at_unix_ms = now_unix_ms();
        s.warnings = warnings_of(policy);
        s.last_error = None;
        s.reloads_succeeded += 1;
        s.clone()
    }

    pub(crate) fn record_failure(&self, errors: &PolicyErrors) {
        let mut s = self.inner.lock();
        s.last_error = Some(errors.to_string());
        s.last_error_at_unix_ms = now_unix_ms();
        s.reloads_failed += 1;
    }

    /// Record what the watcher is doing; `restarted` counts a re-established watch.
    pub(crate) fn record_watcher(&self, state: WatcherState, restarted: bool) {
        let mut s = self.inner.lock();
        s.watcher = state;
        if restarted {
            s.watch_restarts += 1;
        }
    }

    /// Problems an operator must see in `/healthz`: a failed latest reload and a watcher
    /// that cannot watch. Empty when all is well.
    pub fn problems(&self) -> Vec<String> {
        let s = self.inner.lock();
        let mut out = Vec::new();
        if let Some(e) = &s.last_error {
            out.push(format!(
                "policy reload failed, the previous policy keeps serving: {}",
                e.replace('\n', "; ")
            ));
        }
        if let WatcherState::Failed(e) = &s.watcher {
            out.push(format!("policy watcher: {e}"));
        }
        out
    }
}

/// The serving policy's warnings as `file:line: reason` lines.
fn warnings_of(policy: &CompiledPolicy) -> Vec<String> {
    policy.warnings.iter().map(ToString::to_string).collect()
}

pub(crate) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
