//! `warden serve`: the daemon's startup and shutdown sequence, in order.
//!
//! 1. Load the policy. A broken policy is fatal here, before any port opens, so a
//!    bad deploy fails loudly instead of serving denials.
//! 2. Open the directory and load the decision index (store hook below).
//! 3. Watch the policy directory; reload on change and on SIGHUP.
//! 4. Bind every listener (refusing to steal a live daemon's socket) and serve.
//! 5. On SIGTERM/SIGINT: stop accepting, drain in-flight calls, stop the watcher,
//!    remove the socket file.

use crate::api::admin::DirectoryStats;
use crate::api::listener;
use crate::api::policy_state::PolicyState;
use crate::api::reload::{self, PolicyReloader};
use crate::api::server::{self, Services};
use crate::api::shutdown::ShutdownTrigger;
use crate::cli::config::ServeConfig;
use crate::engine::index::DirectoryIndex;
use crate::engine::{CompiledPolicy, Engine};
use crate::policy;
use anyhow::{Context, bail};
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Run the daemon until SIGTERM or SIGINT. Returns an error (and the process exits
/// non-zero) if startup fails or a listener dies.
pub fn serve(config: ServeConfig) -> anyhow::Result<()> {
    tracing::info!(policies = %config.policies.display(), data = %config.data.display(), "starting");
    let policy = policy::load_dir(&config.policies).map_err(|errors| {
        anyhow::anyhow!(
            "policy directory {} is invalid; not starting:\n{errors}",
            config.policies.display()
        )
    })?;
    tracing::info!(hash = %policy.hash, files = policy.files.len(), "policy loaded");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(config, policy))
}

/// What serve gets from the directory store.
struct Directory {
    index: Arc<DirectoryIndex>,
    stats: Option<Arc<dyn DirectoryStats>>,
}

/// Open the directory and fill the decision index.
///
/// STORE HOOK: the `store` module has not landed. When it does, this function opens
/// `<data>/warden.redb` with it, seeds the demo directory into an empty store when
/// `config.demo` is set, calls the store's `load_index` to bring `index` to the
/// committed revision, and returns the store as `stats`. Until then the daemon serves
/// an empty directory at revision 0, which is the truth for a daemon without a store.
fn open_directory(config: &ServeConfig) -> anyhow::Result<Directory> {
    // Owner and group only: the directory database and the socket live here.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&config.data)
        .with_context(|| format!("creating data directory {}", config.data.display()))?;
    if config.demo {
        bail!("--demo needs the directory store, which this build does not include yet");
    }
    Ok(Directory {
        index: Arc::new(DirectoryIndex::new()),
        stats: None,
    })
}

async fn run(config: ServeConfig, policy: CompiledPolicy) -> anyhow::Result<()> {
    // Install handlers before anything binds, so an early SIGTERM still cleans up.
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;

    let directory = open_directory(&config)?;
    let state = Arc::new(PolicyState::new(&config.policies, &policy));
    let engine = Arc::new(Engine::new(Arc::new(policy), directory.index));
    let reloader = Arc::new(PolicyReloader::new(
        config.policies.clone(),
        engine.clone(),
        state,
    ));

    // The watcher (and its SIGHUP handler) starts before the listeners so that no
    // policy change or SIGHUP during startup is lost or kills the process.
    let (trigger, shutdown) = ShutdownTrigger::new();
    let runner = reload::spawn_runner(reloader.clone(), shutdown.clone())
        .with_context(|| format!("watching policy directory {}", config.policies.display()))?;
    let listeners = listener::bind_all(&config.listen).await?;

    let services = Services {
        engine,
        reloader,
        stats: directory.stats,
    };
    let server = server::run(services, listeners, shutdown);
    tokio::pin!(server);
    let result = tokio::select! {
        early = &mut server => early,
        name = first_signal(&mut terminate, &mut interrupt) => {
            tracing::info!(signal = name, "shutdown requested");
            trigger.trigger();
            server.await
        }
    };
    trigger.trigger();
    runner.stop().await;
    result?;
    tracing::info!("stopped");
    Ok(())
}

async fn first_signal(terminate: &mut Signal, interrupt: &mut Signal) -> &'static str {
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    }
}
