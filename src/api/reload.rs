//! Live policy reload: the one place a new policy gets loaded and swapped into the
//! engine after startup.
//!
//! Three triggers feed it: a watcher on the policy directory, SIGHUP, and the
//! `ReloadPolicy` RPC. All go through [`PolicyReloader::reload`], which serializes
//! them, so two reloads never interleave and the status always describes the policy
//! that is serving. A failed load leaves the old policy serving and records every
//! `file:line: reason` in the status and the log.
//!
//! The watcher watches the *directory*, not the files, and not recursively: editors
//! that save by write-then-rename and Kubernetes ConfigMaps that swap the `..data`
//! symlink both replace directory entries, which a file watch would miss.

use crate::api::policy_state::{PolicyState, PolicyStatus};
use crate::api::shutdown::Shutdown;
use crate::engine::{CompiledPolicy, Engine};
use crate::policy::{self, PolicyError, PolicyErrors};
use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// Quiet period after the last file event before a reload starts: long enough to
/// coalesce an editor's or kubelet's burst of events, short enough to feel instant.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// Loads a policy directory. The daemon uses [`policy::load_dir`], or
/// [`policy::suite::load_dir_tested`] with `--require-policy-tests`; tests substitute
/// their own.
pub type LoadFn = dyn Fn(&Path) -> Result<CompiledPolicy, PolicyErrors> + Send + Sync;

/// What asked for a reload; recorded in the reload's span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    FileChange,
    Sighup,
    Rpc,
}

/// Loads the policy directory and swaps the result into the engine, one reload at a
/// time.
pub struct PolicyReloader {
    dir: PathBuf,
    engine: Arc<Engine>,
    state: Arc<PolicyState>,
    load: Arc<LoadFn>,
    /// Held for a whole reload. A Tokio mutex because it is held across the
    /// `.await` on the blocking load; waiting reloads queue in order.
    serial: tokio::sync::Mutex<()>,
}

impl PolicyReloader {
    pub fn new(dir: PathBuf, engine: Arc<Engine>, state: Arc<PolicyState>) -> Self {
        Self {
            dir,
            engine,
            state,
            load: Arc::new(policy::load_dir),
            serial: tokio::sync::Mutex::new(()),
        }
    }

    /// Replace the loader (tests, and `serve --require-policy-tests`, which also runs
    /// the policy's test suite).
    pub fn with_loader(mut self, load: Arc<LoadFn>) -> Self {
        self.load = load;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn state(&self) -> &Arc<PolicyState> {
        &self.state
    }

    /// Load the directory now. On success the new policy is serving when this returns;
    /// on failure the old one still is, and the errors are in the status.
    pub async fn reload(&self, trigger: Trigger) -> Result<PolicyStatus, PolicyErrors> {
        let span = tracing::info_span!("reload_policy", ?trigger, dir = %self.dir.display());
        async {
            let _serial = self.serial.lock().await;
            let load = self.load.clone();
            let dir = self.dir.clone();
            let loaded = tokio::task::spawn_blocking(move || load(&dir))
                .await
                .unwrap_or_else(|join_err| {
                    Err(PolicyErrors(vec![PolicyError {
                        file: self.dir.display().to_string(),
                        line: 0,
                        reason: format!("policy loader crashed: {join_err}"),
                    }]))
                });
            match loaded {
                Ok(policy) => {
                    let status = self.state.record_success(&policy);
                    self.engine.swap_policy(Arc::new(policy));
                    tracing::info!(hash = %status.hash, files = status.files.len(), "policy reloaded");
                    Ok(status)
                }
                Err(errors) => {
                    self.state.record_failure(&errors);
                    for e in &errors.0 {
                        tracing::error!("{e}");
                    }
                    tracing::error!(
                        errors = errors.0.len(),
                        "policy reload failed; the previous policy keeps serving"
                    );
                    Err(errors)
                }
            }
        }
        .instrument(span)
        .await
    }
}

/// The running watcher and signal handler. Dropping it stops the file watcher; call
/// [`ReloadRunner::stop`] after triggering shutdown to also wait for the task.
pub struct ReloadRunner {
    /// Kept alive for its side effect: dropping the debouncer stops the watch.
    _debouncer: Debouncer<notify_debouncer_full::notify::RecommendedWatcher, RecommendedCache>,
    task: JoinHandle<()>,
}

impl ReloadRunner {
    /// Wait for the runner task to finish (it finishes on shutdown). A reload in
    /// progress completes first.
    pub async fn stop(self) {
        let _ = self.task.await;
    }
}

/// Start watching the reloader's directory and listening for SIGHUP; each trigger
/// reloads until `shutdown` fires.
pub fn spawn_runner(reloader: Arc<PolicyReloader>, shutdown: Shutdown) -> std::io::Result<ReloadRunner> {
    // Capacity 1 coalesces bursts: if a reload is already queued, it will read the
    // directory after the newest change anyway, so extra triggers are dropped.
    let (tx, mut rx) = mpsc::channel::<Trigger>(1);

    let file_tx = tx.clone();
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| match result {
        Ok(events) => {
            if events
                .iter()
                .any(|e| !matches!(e.event.kind, EventKind::Access(_)))
            {
                let _ = file_tx.try_send(Trigger::FileChange);
            }
        }
        Err(errors) => {
            for e in errors {
                tracing::warn!(error = %e, "policy directory watch error");
            }
        }
    })
    .map_err(std::io::Error::other)?;
    debouncer
        .watch(reloader.dir(), RecursiveMode::NonRecursive)
        .map_err(|e| std::io::Error::other(format!("watching {}: {e}", reloader.dir().display())))?;

    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let stop = shutdown.wait();
    let task = tokio::spawn(async move {
        tokio::pin!(stop);
        loop {
            let trigger = tokio::select! {
                _ = &mut stop => break,
                Some(t) = rx.recv() => t,
                Some(()) = hup.recv() => Trigger::Sighup,
            };
            // Failures are recorded and logged inside reload.
            let _ = reloader.reload(trigger).await;
        }
        tracing::debug!("policy reload runner stopped");
    });
    drop(tx);
    Ok(ReloadRunner {
        _debouncer: debouncer,
        task,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::shutdown::ShutdownTrigger;
    use crate::engine::index::DirectoryIndex;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy(hash: &str) -> CompiledPolicy {
        let mut p = crate::policy::load_defaults().expect("default policies");
        p.hash = hash.into();
        p.files = vec![PathBuf::from("policy.csv")];
        p
    }

    /// A loader that fails when the directory holds a file named `broken`, and
    /// otherwise returns a policy whose hash counts the loads.
    fn counting_loader() -> Arc<LoadFn> {
        let n = Arc::new(AtomicU32::new(0));
        Arc::new(move |dir: &Path| {
            if dir.join("broken").exists() {
                return Err(PolicyErrors(vec![PolicyError {
                    file: "policy.csv".into(),
                    line: 3,
                    reason: "bad effect".into(),
                }]));
            }
            Ok(policy(&format!("h{}", n.fetch_add(1, Ordering::SeqCst) + 1)))
        })
    }

    fn reloader(dir: &Path) -> Arc<PolicyReloader> {
        let initial = policy("h0");
        let state = Arc::new(PolicyState::new(dir, &initial));
        let engine = Arc::new(Engine::new(Arc::new(initial), Arc::new(DirectoryIndex::new())));
        Arc::new(PolicyReloader::new(dir.to_path_buf(), engine, state).with_loader(counting_loader()))
    }

    #[tokio::test]
    async fn failed_reload_keeps_old_policy_and_records_errors() {
        let dir = tempfile::tempdir().unwrap();
        let r = reloader(dir.path());
        std::fs::write(dir.path().join("broken"), "").unwrap();
        let errors = r.reload(Trigger::Rpc).await.unwrap_err();
        assert_eq!(errors.to_string(), "policy.csv:3: bad effect");
        assert_eq!(r.engine.policy().hash, "h0");
        let s = r.state().snapshot();
        assert_eq!(s.last_error.as_deref(), Some("policy.csv:3: bad effect"));
        assert_eq!((s.reloads_succeeded, s.reloads_failed), (0, 1));

        std::fs::remove_file(dir.path().join("broken")).unwrap();
        let s = r.reload(Trigger::Rpc).await.unwrap();
        assert_eq!(r.engine.policy().hash, s.hash);
        assert_eq!(s.last_error, None);
    }

    #[tokio::test]
    async fn file_change_in_directory_triggers_reload() {
        let dir = tempfile::tempdir().unwrap();
        let r = reloader(dir.path());
        let (trigger, shutdown) = ShutdownTrigger::new();
        let runner = spawn_runner(r.clone(), shutdown).unwrap();

        // Write-then-rename, as editors save.
        std::fs::write(dir.path().join(".policy.csv.tmp"), "p, admin, org, *").unwrap();
        std::fs::rename(dir.path().join(".policy.csv.tmp"), dir.path().join("policy.csv")).unwrap();

        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while r.state().snapshot().reloads_succeeded == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no reload after a file change"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_ne!(r.engine.policy().hash, "h0");
        trigger.trigger();
        runner.stop().await;
    }
}
