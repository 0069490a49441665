//! `warden cluster init`: turn a single-node data directory into the first snapshot of a new
//! directory log (offline: no daemon may hold the store).

use crate::cli::config::DEFAULT_DATA;
use crate::cli::serve::STORE_FILE;
use crate::store::{Store, StoreError};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Make an existing single-node data directory the first snapshot of a NEW directory log
    /// stream (created if missing; refused if it has entries or snapshots). Sidecars started
    /// with an empty data directory then bootstrap from it; this directory can serve as one
    /// of them.
    Init(InitArgs),
}

#[derive(Debug, clap::Args)]
#[command(mut_arg("cluster", |a| a.required(true)))]
pub struct InitArgs {
    /// Data directory holding warden.redb (offline: stop its daemon first).
    #[arg(long, env = "WARDEN_DATA", value_name = "DIR", default_value = DEFAULT_DATA)]
    pub data: PathBuf,
    /// The directory log to start (`--cluster` is required here).
    #[command(flatten)]
    pub cluster: ClusterFlags,
}

/// How to reach the directory log: the `--cluster*` connection flags, declared once for
/// `warden serve` and `warden cluster init` (the serve-only ones, write timeout and snapshot
/// interval, stay in `cli::config`). `serve` puts a TOML `[cluster]` table under them.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClusterFlags {
    /// Cluster mode: the NATS JetStream URLs of the directory log that sidecars share,
    /// comma-separated (e.g. nats://user:pass@10.0.0.1:4222,…; give every node). Writes go
    /// through the shared log; checks stay local. `serve` is a single node without it.
    #[arg(
        long = "cluster",
        env = "WARDEN_CLUSTER",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub cluster: Vec<String>,
    /// The JetStream stream holding the directory log. [default: warden]
    #[arg(long = "cluster-stream", env = "WARDEN_CLUSTER_STREAM", value_name = "NAME")]
    pub cluster_stream: Option<String>,
    /// A NATS credentials file (JWT and nkey seed) for --cluster.
    #[arg(long = "cluster-creds", env = "WARDEN_CLUSTER_CREDS", value_name = "FILE")]
    pub cluster_creds: Option<PathBuf>,
    /// A PEM CA bundle: connect to NATS over TLS verified against it.
    #[arg(long = "cluster-tls-ca", env = "WARDEN_CLUSTER_TLS_CA", value_name = "FILE")]
    pub cluster_tls_ca: Option<PathBuf>,
}

pub fn run(command: ClusterCommand) -> ExitCode {
    match command {
        ClusterCommand::Init(args) => match init(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn init(args: InitArgs) -> anyhow::Result<()> {
    let flags = args.cluster;
    if flags.cluster.is_empty() {
        anyhow::bail!("--cluster URL[,URL…] (or WARDEN_CLUSTER) is required: the directory log to start");
    }
    let stream = flags
        .cluster_stream
        .unwrap_or_else(|| crate::cluster::DEFAULT_STREAM.to_string());
    let config = crate::cluster::ClusterConfig {
        urls: flags.cluster.iter().map(|u| u.trim().to_string()).collect(),
        stream,
        creds: flags.cluster_creds,
        tls_ca: flags.cluster_tls_ca,
        write_timeout: crate::cluster::DEFAULT_WRITE_TIMEOUT,
        snapshot_every: 0,
        retain: crate::cluster::DEFAULT_RETAIN,
    };
    let path = args.data.join(STORE_FILE);
    if !path.exists() {
        anyhow::bail!(
            "{} does not exist: nothing to initialize a stream from",
            path.display()
        );
    }
    let store = match Store::open(&path) {
        Ok(store) => store,
        Err(e @ StoreError::AlreadyOpen { .. }) => {
            anyhow::bail!("{e}; `cluster init` works offline, on a store no daemon is serving")
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("opening {}", path.display()))),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let published = runtime
        .block_on(crate::cluster::init(&config, &store))
        .map_err(|e| anyhow::anyhow!("cluster init: {e}"))?;
    println!(
        "stream `{}` initialized from {}: snapshot {} at revision {} ({} bytes); start sidecars \
         with an empty data directory and --cluster to bootstrap from it",
        config.stream,
        args.data.display(),
        published.object,
        published.revision,
        published.bytes
    );
    Ok(())
}
