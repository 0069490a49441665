//! `warden serve`: the daemon's startup and shutdown sequence, in order.
//!
//! 1. Load the policy. A broken policy is fatal here, before any port opens, so a
//!    bad deploy fails loudly instead of serving denials. With
//!    `--require-policy-tests`, a policy whose tests fail counts as broken, here and
//!    on every reload.
//! 2. Open the directory store (seeding the demo into an empty one on `--demo`) and
//!    load the decision index from it. A store that cannot be opened is fatal here.
//!    With `--cluster`, connect to the directory log (in the background: a log that is
//!    down does not stop startup) and start the apply loop, the only writer of directory
//!    state from then on.
//! 3. Watch the policy directory; reload on change and on SIGHUP.
//! 4. Bind every listener (refusing to steal a live daemon's socket) and the metrics
//!    listener if asked for, and serve.
//! 5. On SIGTERM/SIGINT: stop accepting, drain in-flight calls, stop the watcher,
//!    remove the socket file.

use crate::api::admin::DirectoryStats;
use crate::api::directory::now_ms;
use crate::api::listener;
use crate::api::logs::audit::AuditLog;
use crate::api::logs::decisions::DecisionLog;
use crate::api::metrics::{self, Metrics, Scrape};
use crate::api::policy_state::PolicyState;
use crate::api::reload::{self, PolicyReloader};
use crate::api::server::{self, Services};
use crate::api::shutdown::ShutdownTrigger;
use crate::api::usage;
use crate::cli::config::ServeConfig;
use crate::engine::index::DirectoryIndex;
use crate::engine::{CompiledPolicy, Engine};
use crate::policy;
use crate::store::{ApplyContext, Store, demo};
use anyhow::Context;
use std::os::unix::fs::DirBuilderExt;
use std::sync::Arc;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Run the daemon until SIGTERM or SIGINT. Returns an error (and the process exits
/// non-zero) if startup fails or a listener dies.
pub fn serve(config: ServeConfig) -> anyhow::Result<()> {
    tracing::info!(policies = %config.policies.display(), data = %config.data.display(), "starting");
    // A fresh machine has no policy directory: write the embedded defaults there, so the
    // operator has files to edit and the daemon has rules to serve. An existing directory
    // is never touched.
    if policy::write_defaults_if_missing(&config.policies)
        .with_context(|| format!("writing the default policies to {}", config.policies.display()))?
    {
        tracing::info!(policies = %config.policies.display(), "wrote the embedded default policies");
    }
    let policy = load_fn(&config)(&config.policies).map_err(|errors| {
        anyhow::anyhow!(
            "policy directory {} is invalid{}; not starting:\n{errors}",
            config.policies.display(),
            if config.require_policy_tests {
                " or fails its tests"
            } else {
                ""
            }
        )
    })?;
    tracing::info!(hash = %policy.hash, files = policy.files.len(), "policy loaded");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(config, policy))
}

/// How this daemon loads its policy directory, at startup and on every reload.
///
/// `--require-policy-tests` swaps in a loader that also runs `<policies>/tests`: failing
/// cases come back as `file:line: reason` errors, so the reloader refuses the policy
/// like a broken file (the old one keeps serving, the status lists the cases) and
/// startup exits before any port opens. Nothing else in the reload path changes.
fn load_fn(config: &ServeConfig) -> fn(&std::path::Path) -> Result<CompiledPolicy, policy::PolicyErrors> {
    if config.require_policy_tests {
        policy::suite::load_dir_tested
    } else {
        policy::load_dir
    }
}

/// What serve gets from the directory store.
struct Directory {
    store: Arc<Store>,
    index: Arc<DirectoryIndex>,
    /// The store's revision when it was opened, before a `--demo` seed: where a new audit
    /// log starts, so a fresh demo's seed is in it from revision 1.
    opened_at: u64,
}

/// The directory database's file name inside the data directory.
pub const STORE_FILE: &str = "warden.redb";

/// Open `<data>/warden.redb`, seed the demo directory into an empty store when
/// `config.demo` is set, and bring a fresh decision index to the committed revision.
///
/// Runs before any listener binds: a store that cannot be opened (newer schema,
/// corrupt file, unwritable directory, another daemon holding it) stops startup here.
fn open_directory(config: &ServeConfig) -> anyhow::Result<Directory> {
    // Owner and group only: the directory database and the socket live here.
    let existed = config.data.exists();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&config.data)
        .with_context(|| format!("creating data directory {}", config.data.display()))?;
    listener::require_private_dir(&config.data, !existed, "data directory").context("not starting")?;
    let path = config.data.join(STORE_FILE);
    let store = Store::open(&path).context("opening the directory store; not starting")?;
    // The database holds the directory (emails, metadata): owner and group only, whatever
    // the umask or however the data directory was made.
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)
            .with_context(|| format!("reading the mode of {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o007 != 0 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o770))
                .with_context(|| format!("restricting {} to owner and group", path.display()))?;
        }
    }
    let opened_at = store
        .revision()
        .with_context(|| format!("reading the revision of {}", path.display()))?;
    // In cluster mode the demo goes through the log (see `run`), never into the local store.
    if config.demo && config.cluster.is_none() {
        seed_demo(&store)?;
    }
    let index = Arc::new(DirectoryIndex::new());
    let revision = store
        .load_index(&index)
        .with_context(|| format!("loading the directory index from {}", path.display()))?;
    tracing::info!(store = %path.display(), revision, "directory loaded");
    Ok(Directory {
        store: Arc::new(store),
        index,
        opened_at,
    })
}

/// Seed the demo directory through the ordinary write path, but only into an empty
/// store: a restart with `--demo` keeps whatever the demo has become since.
fn seed_demo(store: &Store) -> anyhow::Result<()> {
    let revision = store.revision().context("reading the directory revision")?;
    if revision > 0 {
        tracing::info!(
            revision,
            "--demo: the directory is not empty; not seeding it again"
        );
        return Ok(());
    }
    // The index is discarded: `load_index` rebuilds the real one from the store.
    let scratch = DirectoryIndex::new();
    let ctx = ApplyContext::trusted();
    for env in demo::demo_changes(now_ms()) {
        let kind = env.change.kind();
        store
            .apply_and_index(env, &ctx, &scratch)
            .with_context(|| format!("seeding the demo directory ({kind})"))?;
    }
    tracing::info!("--demo: seeded the demo directory");
    Ok(())
}

async fn run(config: ServeConfig, policy: CompiledPolicy) -> anyhow::Result<()> {
    // Install handlers before anything binds, so an early SIGTERM still cleans up.
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;

    // A broken mapping stops startup like a broken policy: never serve Envoy a guess.
    let ext_authz = match &config.ext_authz {
        Some(path) => {
            let mapping = crate::api::ext_authz::Mapping::load(path)
                .context("loading the ext_authz mapping; not starting")?;
            tracing::info!(mapping = %path.display(), rules = mapping.rules.len(), "serving Envoy ext_authz");
            Some(Arc::new(mapping))
        }
        None => None,
    };
    let directory = open_directory(&config)?;
    let state = Arc::new(PolicyState::new(&config.policies, &policy));
    let engine = Arc::new(Engine::new(Arc::new(policy), directory.index));

    // The watcher (and its SIGHUP handler) starts before the listeners so that no
    // policy change or SIGHUP during startup is lost or kills the process.
    let (trigger, shutdown) = ShutdownTrigger::new();
    let cluster = match &config.cluster {
        Some(c) => {
            crate::cluster::check_store(&directory.store, &c.stream)
                .map_err(|e| anyhow::anyhow!("cluster mode; not starting: {e}"))?;
            let cluster = crate::cluster::Cluster::connect(c.clone(), &directory.store, &config.policies)
                .await
                .context("cluster mode; not starting")?;
            tracing::info!(
                urls = c.urls.len(),
                stream = %c.stream,
                apply_version = crate::cluster::apply_version(),
                "cluster mode: directory writes go through the shared log"
            );
            // The policy is log state: serve the epoch this store recorded (if any) before
            // anything is applied or checked; the files only count once published.
            cluster.note_local_policy(&state.snapshot().hash);
            cluster
                .adopt_stored_epoch(&directory.store, &engine)
                .map_err(|e| anyhow::anyhow!("cluster mode; not starting: {e}"))?;
            cluster.spawn(directory.store.clone(), engine.clone(), shutdown.clone());
            if config.demo {
                cluster.spawn_demo_seed(shutdown.clone());
            }
            Some(cluster)
        }
        None => None,
    };
    let reloader = Arc::new(
        PolicyReloader::new(config.policies.clone(), engine.clone(), state.clone())
            .with_loader(Arc::new(load_fn(&config)))
            .with_cluster(cluster.clone()),
    );
    let runner = reload::spawn_runner(reloader.clone(), shutdown.clone())
        .with_context(|| format!("watching policy directory {}", config.policies.display()))?;
    let listeners = listener::bind_all(&config.listen).await?;

    let stats: Arc<dyn DirectoryStats> = directory.store.clone();
    let metrics = Metrics::new();
    // Bound before the gRPC listeners serve, so a daemon reporting SERVING answers
    // scrapes too; a port already taken stops startup like any other listener.
    let metrics_task = match config.metrics {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the metrics listener tcp:{addr}"))?;
            tracing::info!(listener = %format!("tcp:{}", l.local_addr()?), "serving metrics");
            let scrape = Scrape {
                metrics: metrics.clone(),
                engine: engine.clone(),
                policy: state,
                stats: Some(stats.clone()),
                cluster: cluster.clone(),
            };
            Some(tokio::spawn(metrics::serve(
                l,
                scrape,
                config.connections,
                shutdown.clone(),
            )))
        }
        None => None,
    };
    // Both logs write from their own threads; opening a file that cannot be written
    // stops startup like a port that cannot be bound.
    let (decision_log, decision_writer) = match &config.logs.decisions {
        Some(d) => {
            let (log, writer) = DecisionLog::start(d, engine.clone(), metrics.clone())
                .with_context(|| format!("opening the decision log {}", d.path.display()))?;
            tracing::info!(file = %d.path.display(), sample = d.sample, "writing the decision log");
            (Some(log), Some(writer))
        }
        None => (None, None),
    };
    let audit_log = match &config.logs.audit {
        Some(path) => {
            let log = AuditLog::start(
                path,
                config.logs.rotation,
                directory.opened_at,
                directory.store.clone(),
                engine.clone(),
                cluster.is_some(),
            )
            .with_context(|| format!("opening the audit log {}", path.display()))?;
            tracing::info!(file = %path.display(), "writing the audit log");
            Some(log)
        }
        None => None,
    };
    let http = match config.http {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the HTTP/JSON listener tcp:{addr}"))?,
        ),
        None => None,
    };
    let ui = match config.ui {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the console listener tcp:{addr}"))?,
        ),
        None => None,
    };
    let flusher = usage::spawn_flusher(engine.clone(), directory.store.clone(), shutdown.clone());
    let (usage_engine, usage_store) = (engine.clone(), directory.store.clone());
    let services = Services {
        engine,
        reloader,
        stats: Some(stats),
        store: directory.store,
        metrics,
        ext_authz,
        decision_log,
        http,
        ui,
        transport: transport(&config)?,
        cluster,
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
    // Every call has drained: write the last token uses before the store closes.
    let _ = flusher.await;
    usage::flush(&usage_engine, &usage_store).await;
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
    // After the listeners drained: every decision and change is in, so these write the
    // rest and flush.
    tokio::task::block_in_place(|| {
        if let Some(w) = decision_writer {
            w.stop();
        }
        if let Some(a) = audit_log {
            a.stop();
        }
    });
    result?;
    tracing::info!("stopped");
    Ok(())
}

/// Bearer token and TLS for the TCP listeners, from the configuration. Only the
/// token's hash is ever held; the key file is read here and handed to rustls.
fn transport(config: &ServeConfig) -> anyhow::Result<server::Transport> {
    let tls = match &config.tls {
        Some((cert, key)) => {
            let cert_pem =
                std::fs::read(cert).with_context(|| format!("reading --tls-cert {}", cert.display()))?;
            let key_pem =
                std::fs::read(key).with_context(|| format!("reading --tls-key {}", key.display()))?;
            Some(
                tonic::transport::ServerTlsConfig::new()
                    .identity(tonic::transport::Identity::from_pem(cert_pem, key_pem)),
            )
        }
        None => None,
    };
    tracing::info!(
        tcp_token = config.tcp_token_sha256.is_some(),
        tls = tls.is_some(),
        "TCP caller authentication"
    );
    // `cli::config` refuses these unless --insecure-remote; then say it loudly, every start.
    let exposed = config
        .listen
        .iter()
        .filter_map(|l| match l {
            listener::Listen::Tcp(a) if !a.ip().is_loopback() => Some(*a),
            _ => None,
        })
        .chain(config.http.filter(|a| !a.ip().is_loopback()))
        .chain(config.ui.filter(|a| !a.ip().is_loopback()));
    if config.tcp_token_sha256.is_none() {
        for addr in exposed {
            tracing::error!(
                listener = %addr,
                "INSECURE (--insecure-remote): non-loopback listener without caller authentication; \
                 any host that reaches it may read and write the directory as any actor"
            );
        }
    }
    Ok(server::Transport {
        token_sha256: config.tcp_token_sha256,
        tls,
        max_in_flight: config.max_in_flight,
        max_revision_waiters: config.max_revision_waiters,
        min_revision_wait: config.min_revision_wait,
        connections: config.connections,
    })
}

async fn first_signal(terminate: &mut Signal, interrupt: &mut Signal) -> &'static str {
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    }
}
