//! `warden export` and `warden import`: the whole directory to and from a file, offline.
//!
//! Both open `<data>/warden.redb` directly, so they refuse to run while a daemon holds it
//! (redb allows one process per file) rather than racing it. Export → import → export gives
//! the same bytes: the dump is the directory's state in key order plus its revision, and an
//! import continues numbering at that revision. `import` also takes an online snapshot
//! (`warden admin snapshot`), whose change log it restores, so the next write follows it.

use crate::api::directory::now_ms;
use crate::cli::config::DEFAULT_DATA;
use crate::cli::serve::STORE_FILE;
use crate::store::{ApplyError, Dump, Snapshot, Store, StoreError};
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Yaml,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
    /// Data directory holding warden.redb.
    #[arg(long, env = "WARDEN_DATA", value_name = "DIR", default_value = DEFAULT_DATA)]
    pub data: PathBuf,
    /// Write here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A dump written by `warden export` (JSON, or YAML if the name ends in .yaml/.yml), or a
    /// snapshot written by `warden admin snapshot` (its change log is restored with it).
    pub file: PathBuf,
    /// Data directory holding warden.redb; the store must be new or empty, and not a
    /// cluster sidecar's (use `warden cluster init` for a cluster).
    #[arg(long, env = "WARDEN_DATA", value_name = "DIR", default_value = DEFAULT_DATA)]
    pub data: PathBuf,
    /// Recorded as the import's actor in the change log.
    #[arg(long, default_value = "warden-import")]
    pub actor: String,
}

/// Open the store for an offline command, explaining the one common failure.
fn open(data: &Path) -> anyhow::Result<Store> {
    let path = data.join(STORE_FILE);
    match Store::open(&path) {
        Ok(store) => Ok(store),
        Err(e @ StoreError::AlreadyOpen { .. }) => {
            bail!("{e}; export and import work offline, on a store no daemon is serving")
        }
        Err(e) => Err(e).with_context(|| format!("opening {}", path.display())),
    }
}

pub fn export(args: ExportArgs) -> ExitCode {
    report(run_export(&args))
}

fn run_export(args: &ExportArgs) -> anyhow::Result<()> {
    let path = args.data.join(STORE_FILE);
    if !path.exists() {
        bail!(
            "{} does not exist; nothing to export (check --data)",
            path.display()
        );
    }
    let dump = open(&args.data)?.export()?;
    let text = match args.format {
        Format::Json => dump.to_json()? + "\n",
        Format::Yaml => dump.to_yaml()?,
    };
    match &args.output {
        Some(file) => std::fs::write(file, text).with_context(|| format!("writing {}", file.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

/// A store a cluster sidecar applied the directory log into belongs to that log: an offline
/// import would make it differ from every other sidecar (and from the log it resumes).
fn refuse_cluster_store(store: &Store) -> anyhow::Result<()> {
    let position = store
        .cluster_position()
        .context("reading the store's cluster state")?;
    let epoch = store
        .cluster_epoch()
        .context("reading the store's cluster state")?;
    if position.last_applied_seq > 0 || epoch.is_some() {
        bail!(
            "{} is a cluster sidecar's store (it applied the directory log up to entry {}): \
             an import would make it differ from the other sidecars and the log; import into a \
             new data directory and make it a cluster's first snapshot with `warden cluster init`",
            store.path().display(),
            position.last_applied_seq
        );
    }
    Ok(())
}

pub fn import(args: ImportArgs) -> ExitCode {
    report(run_import(&args))
}

fn refused(file: &Path, e: ApplyError) -> anyhow::Error {
    match e {
        ApplyError::Refused(r) => anyhow::anyhow!("{} refused: {r}", file.display()),
        ApplyError::Storage(s) => anyhow::Error::new(s).context("writing the store"),
        e @ ApplyError::UnsupportedFormat { .. } => anyhow::Error::new(e),
    }
}

/// A snapshot: the tables, the change log and the audit index as the source had them.
fn import_snapshot(args: &ImportArgs, bytes: &[u8]) -> anyhow::Result<()> {
    let snapshot = Snapshot::from_json(bytes).with_context(|| format!("parsing {}", args.file.display()))?;
    let store = open(&args.data)?;
    refuse_cluster_store(&store)?;
    let revision = store
        .import_snapshot(&snapshot)
        .map_err(|e| refused(&args.file, e))?;
    let digest = store.digest().context("digesting the imported store")?;
    if digest.sha256 != snapshot.digest {
        bail!(
            "the imported directory's digest {} differs from the source's {} at revision {}; \
             this store is not a faithful copy: move {} aside",
            digest.sha256,
            snapshot.digest,
            snapshot.revision,
            store.path().display()
        );
    }
    let c = snapshot.directory.counts();
    println!(
        "imported a snapshot: {} users, {} orgs, {} memberships, {} teams, {} apps, {} changes of history",
        c.users,
        c.orgs,
        c.memberships,
        c.teams,
        c.apps,
        snapshot.changelog.len()
    );
    println!("revision: {revision}");
    println!("digest:   {} (the source's at that revision)", digest.sha256);
    Ok(())
}

fn run_import(args: &ImportArgs) -> anyhow::Result<()> {
    let bytes = std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    if Snapshot::sniff(&bytes) {
        return import_snapshot(args, &bytes);
    }
    let text = String::from_utf8(bytes).with_context(|| format!("reading {}", args.file.display()))?;
    let yaml = matches!(
        args.file.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    let dump = if yaml {
        Dump::from_yaml(&text)
    } else {
        Dump::from_json(&text)
    }
    .with_context(|| format!("parsing {}", args.file.display()))?;
    let store = open(&args.data)?;
    refuse_cluster_store(&store)?;
    let revision = store
        .import(&dump, &args.actor, now_ms())
        .map_err(|e| refused(&args.file, e))?;
    let c = dump.counts();
    println!(
        "imported {} users, {} orgs, {} memberships, {} teams, {} team members, {} apps, {} grants",
        c.users, c.orgs, c.memberships, c.teams, c.team_members, c.apps, c.team_grants
    );
    println!("revision: {revision}");
    Ok(())
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
