//! Live policy reload: the one place a new policy gets loaded and swapped into the
//! engine after startup.
//!
//! Three triggers feed it: a watcher on the policy directory, SIGHUP, and the
//! `ReloadPolicy` RPC. All go through [`PolicyReloader::reload`], which serializes
//! them, so two reloads never interleave and the status always describes the policy
//! that is serving. A failed load leaves the old policy serving and records every
//! `file:line: reason` in the status and the log.
//!
//! In cluster mode a load that succeeds does not swap the engine's policy: the reloader
//! publishes the files as a policy epoch on the directory log (see `cluster`), and every
//! sidecar's apply loop switches when it reaches that entry. A local file change alone never
//! switches what a sidecar serves.
//!
//! The watcher watches the *directory*, not the files, and not recursively: editors
//! that save by write-then-rename and Kubernetes ConfigMaps that swap the `..data`
//! symlink both replace directory entries, which a file watch would miss.

use crate::api::policy_state::{PolicyState, PolicyStatus, WatcherState};
use crate::api::shutdown::Shutdown;
use crate::engine::{CompiledPolicy, Engine};
use crate::policy::{self, PolicyError, PolicyErrors, snapshot};
use notify_debouncer_full::notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// The directory was replaced (or the symlink to it swapped) and is watched anew.
    DirReplaced,
    /// The periodic content check found a change no watch event reported.
    ContentCheck,
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
    /// [`snapshot::fingerprint`] of the directory taken before the latest load, for the
    /// runner's periodic content check.
    loaded_fingerprint: parking_lot::Mutex<Option<[u8; 32]>>,
    /// Cluster mode: accepted versions are published as policy epochs, not swapped in.
    cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl PolicyReloader {
    pub fn new(dir: PathBuf, engine: Arc<Engine>, state: Arc<PolicyState>) -> Self {
        let dir_for_fingerprint = dir.clone();
        Self {
            dir,
            engine,
            state,
            load: Arc::new(policy::load_dir),
            serial: tokio::sync::Mutex::new(()),
            loaded_fingerprint: parking_lot::Mutex::new(Some(snapshot::fingerprint(&dir_for_fingerprint))),
            cluster: None,
        }
    }

    /// Cluster mode: publish accepted versions on the directory log instead of swapping them
    /// into the engine.
    pub fn with_cluster(mut self, cluster: Option<Arc<crate::cluster::Cluster>>) -> Self {
        self.cluster = cluster;
        self
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

    /// Whether the directory's content differs from what the latest load read.
    pub async fn content_changed(&self) -> bool {
        let dir = self.dir.clone();
        let now = tokio::task::spawn_blocking(move || snapshot::fingerprint(&dir))
            .await
            .ok();
        now.is_none() || now != *self.loaded_fingerprint.lock()
    }

    /// Load the directory now. On success the new policy is serving when this returns;
    /// on failure the old one still is, and the errors are in the status.
    pub async fn reload(&self, trigger: Trigger) -> Result<PolicyStatus, PolicyErrors> {
        let span = tracing::info_span!("reload_policy", ?trigger, dir = %self.dir.display());
        async {
            let _serial = self.serial.lock().await;
            let load = self.load.clone();
            let dir = self.dir.clone();
            let loaded = tokio::task::spawn_blocking(move || (snapshot::fingerprint(&dir), load(&dir)))
                .await
                .map(|(fingerprint, loaded)| {
                    *self.loaded_fingerprint.lock() = Some(fingerprint);
                    loaded
                })
                .unwrap_or_else(|join_err| {
                    *self.loaded_fingerprint.lock() = None;
                    Err(PolicyErrors(vec![PolicyError {
                        file: self.dir.display().to_string(),
                        line: 0,
                        reason: format!("policy loader crashed: {join_err}"),
                    }]))
                });
            // A file the serving policy came from that has gone is a failed reload, like a
            // deleted `policy.csv`: the optional files (`engine.toml`, `limits.toml`) would
            // otherwise fall back to built-in defaults that feed no directory roles and
            // quietly deny every member.
            let loaded = loaded.and_then(|policy| {
                let serving = self.state.snapshot().files;
                let gone: Vec<PolicyError> = serving
                    .iter()
                    .filter(|f| !policy.files.contains(f))
                    .map(|f| PolicyError {
                        file: f.display().to_string(),
                        line: 0,
                        reason: "cannot read: No such file or directory; the serving policy was \
                                 loaded from it (restore it; a restart serves without it)"
                            .into(),
                    })
                    .collect();
                if gone.is_empty() {
                    Ok(policy)
                } else {
                    Err(PolicyErrors(gone))
                }
            });
            match loaded {
                Ok(policy) => {
                    let status = self.state.record_success(&policy);
                    let Some(cluster) = &self.cluster else {
                        self.engine.swap_policy(Arc::new(policy));
                        tracing::info!(hash = %status.hash, files = status.files.len(), "policy reloaded");
                        return Ok(status);
                    };
                    cluster.note_local_policy(&status.hash);
                    self.publish(cluster, &status.hash).await.map(|_| status)
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

impl PolicyReloader {
    /// Cluster mode: publish the directory's files (read again, and compiled to check they
    /// are the version just loaded) as a policy epoch; it serves once the log delivers it.
    async fn publish(&self, cluster: &crate::cluster::Cluster, hash: &str) -> Result<u64, PolicyErrors> {
        let dir = self.dir.clone();
        let read = tokio::task::spawn_blocking(move || {
            let sources = policy::read_sources(&dir)?;
            let compiled = policy::compile_sources(&dir, &sources)?;
            Ok::<_, PolicyErrors>((sources, compiled.hash))
        })
        .await;
        let failed = |reason: String| {
            tracing::error!(reason = %reason, "policy epoch not published; the log's policy keeps serving");
            PolicyErrors(vec![PolicyError {
                file: self.dir.display().to_string(),
                line: 0,
                reason,
            }])
        };
        let (sources, read_hash) = match read {
            Ok(Ok(r)) => r,
            Ok(Err(errors)) => return Err(errors),
            Err(e) => return Err(failed(format!("policy loader crashed: {e}"))),
        };
        if read_hash != hash {
            // The files changed again since the load: the next event publishes them.
            return Err(failed(
                "the policy files changed while being published; retry".into(),
            ));
        }
        cluster
            .publish_epoch(hash, sources)
            .await
            .map_err(|e| failed(e.to_string()))
    }
}

/// How often the runner compares the directory's content with what it last loaded
/// (and checks that the watch still points at the directory the path leads to): the
/// safety net for changes the watcher missed. Four small files are read and hashed.
pub const CONTENT_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// What the file-watch callback tells the runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WatchEvent {
    /// A file inside the directory changed, or the directory entry itself did (see
    /// [`Watch::replaced`]).
    Changed,
    /// The watcher reported an error.
    Error,
}

/// The running watcher and signal handler. Call [`ReloadRunner::stop`] after
/// triggering shutdown to wait for the task (which owns and then drops the watch).
pub struct ReloadRunner {
    task: JoinHandle<()>,
}

impl ReloadRunner {
    /// Wait for the runner task to finish (it finishes on shutdown). A reload in
    /// progress completes first.
    pub async fn stop(self) {
        let _ = self.task.await;
    }
}

type FileDebouncer = Debouncer<notify_debouncer_full::notify::RecommendedWatcher, RecommendedCache>;

/// The watch on the policy directory and on its parent.
///
/// The directory watch reports edits inside it. It is tied to the directory's inode, so
/// `rm -rf policies && cp -r new policies`, or swapping a `policies` symlink to another
/// directory, leaves it watching a directory nobody uses any more. The parent watch sees
/// those replacements (they change the parent's entry), and the periodic check compares
/// the inode the path leads to with the watched one; either re-establishes the watch.
struct Watch {
    debouncer: FileDebouncer,
    /// `--policies` made absolute (symlinks kept), as event paths are reported.
    dir: PathBuf,
    /// The directory the watch is on: (device, inode) and resolved path; `None` while
    /// the watch is lost.
    watched: Option<((u64, u64), PathBuf)>,
    state: Arc<PolicyState>,
    /// Set by the watch callback when the directory entry itself changed: removed,
    /// re-created, renamed over, or a symlink swapped. The watch must then be set up
    /// again on whatever the path leads to now.
    replaced: Arc<AtomicBool>,
}

impl Watch {
    fn start(dir: &Path, state: Arc<PolicyState>, events: mpsc::Sender<WatchEvent>) -> std::io::Result<Self> {
        let dir = std::path::absolute(dir)?;
        let callback_dir = dir.clone();
        let replaced = Arc::new(AtomicBool::new(false));
        let flag = replaced.clone();
        let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| match result {
            Ok(batch) => {
                let mut replaced = false;
                let mut changed = false;
                for e in batch
                    .iter()
                    .filter(|e| !matches!(e.event.kind, EventKind::Access(_)))
                {
                    for p in &e.event.paths {
                        if p == &callback_dir {
                            replaced = true;
                        } else if p.starts_with(&callback_dir) {
                            changed = true;
                        }
                    }
                }
                // Capacity-1 channel: a pending event already causes the reload that
                // reads the newest state. A replacement is also noted in a flag the
                // runner reads with any event, so a full channel cannot lose it (and the
                // callback never blocks the watcher's thread).
                if replaced {
                    flag.store(true, Ordering::SeqCst);
                }
                if replaced || changed {
                    let _ = events.try_send(WatchEvent::Changed);
                }
            }
            Err(errors) => {
                for e in errors {
                    tracing::warn!(error = %e, "policy directory watch error");
                }
                let _ = events.try_send(WatchEvent::Error);
            }
        })
        .map_err(std::io::Error::other)?;
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("/"),
        };
        // Without the parent watch a replaced directory is still found by the periodic
        // check, a few seconds later: worth a warning, not a refusal to start.
        if let Err(e) = debouncer.watch(&parent, RecursiveMode::NonRecursive) {
            tracing::warn!(
                dir = %parent.display(),
                error = %e,
                "cannot watch the policy directory's parent; a replaced policy directory is noticed by the periodic check"
            );
        }
        let mut watch = Self {
            debouncer,
            dir,
            watched: None,
            state,
            replaced,
        };
        // The startup watch must work: a daemon that cannot see edits should not start
        // as if it could.
        watch.rewatch(false).map_err(std::io::Error::other)?;
        Ok(watch)
    }

    /// Watch whatever the path leads to now, replacing the old watch. Records the
    /// outcome in the status; `restarted` counts it as a re-established watch.
    fn rewatch(&mut self, restarted: bool) -> Result<(), String> {
        if self.watched.take().is_some() {
            // The old directory may be gone with its watch; nothing to undo then.
            let _ = self.debouncer.unwatch(&self.dir);
        }
        let result = (|| -> Result<((u64, u64), PathBuf), String> {
            let meta = std::fs::metadata(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
            let real =
                std::fs::canonicalize(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
            self.debouncer
                .watch(&self.dir, RecursiveMode::NonRecursive)
                .map_err(|e| format!("watching {}: {e}", self.dir.display()))?;
            Ok(((meta.dev(), meta.ino()), real))
        })();
        match result {
            Ok((id, real)) => {
                if restarted {
                    tracing::info!(dir = %self.dir.display(), target = %real.display(), "policy directory replaced; watching the new one");
                }
                self.state
                    .record_watcher(WatcherState::Watching(real.clone()), restarted);
                self.watched = Some((id, real));
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot watch the policy directory; retrying on the next content check");
                self.state.record_watcher(WatcherState::Failed(e.clone()), false);
                Err(e)
            }
        }
    }

    /// Whether the path still leads to the watched directory.
    fn still_current(&self) -> bool {
        let Some((id, real)) = &self.watched else {
            return false;
        };
        std::fs::metadata(&self.dir).is_ok_and(|m| (m.dev(), m.ino()) == *id)
            && std::fs::canonicalize(&self.dir).is_ok_and(|r| r == *real)
    }
}

/// Start watching the reloader's directory and listening for SIGHUP; each trigger
/// reloads until `shutdown` fires. Every [`CONTENT_CHECK_INTERVAL`] the runner also
/// re-establishes a lost or stale watch and reloads if the content differs from what
/// the latest load read.
pub fn spawn_runner(reloader: Arc<PolicyReloader>, shutdown: Shutdown) -> std::io::Result<ReloadRunner> {
    spawn_runner_every(reloader, shutdown, CONTENT_CHECK_INTERVAL)
}

/// [`spawn_runner`] with another content-check interval (tests).
pub fn spawn_runner_every(
    reloader: Arc<PolicyReloader>,
    shutdown: Shutdown,
    check_every: Duration,
) -> std::io::Result<ReloadRunner> {
    let (tx, mut rx) = mpsc::channel::<WatchEvent>(1);
    let mut watch = Watch::start(reloader.dir(), reloader.state().clone(), tx)?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let stop = shutdown.wait();
    let task = tokio::spawn(async move {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(check_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.reset();
        loop {
            let trigger = tokio::select! {
                _ = &mut stop => break,
                Some(event) = rx.recv() => {
                    let suspect = watch.replaced.swap(false, Ordering::SeqCst) || event == WatchEvent::Error;
                    if suspect && !watch.still_current() {
                        let _ = watch.rewatch(true);
                        Trigger::DirReplaced
                    } else {
                        Trigger::FileChange
                    }
                }
                Some(()) = hup.recv() => Trigger::Sighup,
                _ = tick.tick() => {
                    if !watch.still_current() {
                        let _ = watch.rewatch(true);
                        Trigger::DirReplaced
                    } else if reloader.content_changed().await {
                        tracing::warn!("the policy files changed without a watch event; reloading");
                        Trigger::ContentCheck
                    } else {
                        continue;
                    }
                }
            };
            // Failures are recorded and logged inside reload.
            let _ = reloader.reload(trigger).await;
        }
        drop(watch);
        tracing::debug!("policy reload runner stopped");
    });
    Ok(ReloadRunner { task })
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
