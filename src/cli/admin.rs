//! `warden admin …`: status, reload, statistics, index check, directory digest and online
//! snapshot of a running daemon.

use crate::api::pb;
use crate::api::pb::admin_service_client::AdminServiceClient;
use crate::cli::connect::ConnectArg;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
    #[command(flatten)]
    pub connect: ConnectArg,
}

#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Show the serving policy and the latest reload outcome.
    Status,
    /// Reload the policy directory now; exits 1 and prints the errors if it is invalid.
    Reload,
    /// Show directory counts and revision.
    Stats,
    /// Compare the live decision index with one rebuilt from the directory tables;
    /// exits 1 if they differ. Pauses writes while it runs (as long as a startup load).
    CheckIndex,
    /// Print a digest of the directory's state (not its history, not telemetry) and the
    /// revision it was taken at: two daemons that applied the same changes print the same.
    Digest {
        /// Also print each table's entry count and digest.
        #[arg(long)]
        tables: bool,
    },
    /// Write an online snapshot (the directory at one revision, its change log and audit
    /// history, the policy hash; no telemetry) to FILE, for `warden import` into a new store.
    /// Served on the Unix socket only; writes keep going while it is taken.
    ///
    /// With --publish (cluster mode): store it, with the sidecar's log position, in the
    /// directory log's object store instead; the 2 newest are kept and the log is purged
    /// behind the older. Empty sidecars bootstrap from the newest.
    Snapshot {
        /// Where to write it (replaced atomically when complete).
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "publish",
            conflicts_with = "publish"
        )]
        out: Option<std::path::PathBuf>,
        /// Publish it to the directory log's object store (cluster mode).
        #[arg(long)]
        publish: bool,
    },
}

pub async fn run(args: AdminArgs) -> ExitCode {
    match call(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn call(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let mut admin = AdminServiceClient::new(args.connect.channel().await?);
    match args.command {
        AdminCommand::Status => {
            let s = admin.get_policy_status(pb::GetPolicyStatusRequest {}).await?;
            print_status(&s.into_inner());
        }
        AdminCommand::Reload => match admin.reload_policy(pb::ReloadPolicyRequest {}).await {
            Ok(s) => print_status(&s.into_inner()),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => {
                eprintln!("{}", status.message());
                return Ok(ExitCode::FAILURE);
            }
            Err(status) => return Err(status.into()),
        },
        AdminCommand::Stats => {
            let s = admin.get_stats(pb::GetStatsRequest {}).await?.into_inner();
            let count = |c: Option<u64>| c.map_or_else(|| "unknown".to_string(), |n| n.to_string());
            println!("revision:    {}", s.revision);
            println!("users:       {}", count(s.users));
            println!("orgs:        {}", count(s.orgs));
            println!("memberships: {}", count(s.memberships));
            println!("teams:       {}", count(s.teams));
            println!("apps:        {}", count(s.apps));
        }
        AdminCommand::CheckIndex => {
            let c = admin.check_index(pb::CheckIndexRequest {}).await?.into_inner();
            println!("revision:    {}", c.revision);
            println!("live:        {} ({} facts)", c.live_digest, c.live_facts);
            println!("rebuilt:     {} ({} facts)", c.rebuilt_digest, c.rebuilt_facts);
            for d in &c.differences {
                println!("  {d}");
            }
            if !c.consistent {
                eprintln!(
                    "the live index differs from the directory tables; restart the daemon to rebuild it"
                );
                return Ok(ExitCode::FAILURE);
            }
            println!("consistent");
        }
        AdminCommand::Digest { tables } => {
            let d = admin
                .directory_digest(pb::DirectoryDigestRequest {})
                .await?
                .into_inner();
            println!("revision:    {}", d.revision);
            println!("sha256:      {}", d.sha256);
            if tables {
                for t in &d.tables {
                    println!("  {:<20} {:>10} {}", t.name, t.entries, t.sha256);
                }
            }
        }
        AdminCommand::Snapshot { publish: true, .. } => {
            let mut chunks = admin
                .snapshot(pb::SnapshotRequest { publish: true })
                .await?
                .into_inner();
            let p = chunks
                .message()
                .await?
                .ok_or_else(|| anyhow::anyhow!("the daemon answered nothing"))?;
            println!(
                "snapshot at revision {} (log entry {}, {} bytes) published as {}",
                p.revision, p.log_position, p.size, p.published_object
            );
            if p.purged_below > 0 {
                println!("log purged below entry {}", p.purged_below);
            } else {
                println!("log not purged further (entries stored within --cluster-retain stay)");
            }
        }
        AdminCommand::Snapshot { out, .. } => {
            use anyhow::Context;
            let out = out.ok_or_else(|| anyhow::anyhow!("--out FILE or --publish"))?;
            let mut chunks = admin
                .snapshot(pb::SnapshotRequest { publish: false })
                .await?
                .into_inner();
            let (mut bytes, mut revision) = (Vec::new(), 0);
            while let Some(chunk) = chunks.message().await? {
                revision = chunk.revision;
                bytes.extend_from_slice(&chunk.data);
            }
            // Check it whole before it replaces anything.
            let snapshot = crate::store::Snapshot::from_json(&bytes)
                .map_err(|r| anyhow::anyhow!("the daemon sent an unreadable snapshot: {r}"))?;
            let mut tmp = out.clone().into_os_string();
            tmp.push(".partial");
            let tmp = std::path::PathBuf::from(tmp);
            std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &out).with_context(|| format!("renaming to {}", out.display()))?;
            println!(
                "snapshot at revision {revision} ({} changes, {} bytes) written to {}",
                snapshot.changelog.len(),
                bytes.len(),
                out.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(s: &pb::PolicyStatus) {
    use crate::cli::time::rfc3339;
    println!("policy dir:  {}", s.policy_dir);
    println!("sha256:      {}", s.content_hash);
    println!("loaded at:   {}", rfc3339(s.loaded_at_unix_ms));
    println!("files:       {}", s.files.join(", "));
    println!(
        "reloads:     {} ok, {} failed",
        s.reloads_succeeded, s.reloads_failed
    );
    println!(
        "watcher:     {} {} ({} restarts)",
        s.watcher, s.watcher_detail, s.watch_restarts
    );
    if let Some(c) = &s.cluster {
        println!(
            "cluster:     stream {}, applied {}, log last {}, lag {}, log {}",
            c.stream,
            c.applied_seq,
            c.log_last_seq,
            c.lag,
            if c.log_reachable {
                "reachable"
            } else {
                "UNREACHABLE (checks unaffected; writes fail)"
            }
        );
        if c.refused_entries > 0 {
            println!(
                "             {} log entries refused as unreadable",
                c.refused_entries
            );
        }
        if !c.halted.is_empty() {
            println!("             HALTED: {}", c.halted);
        }
        if !c.storage_error.is_empty() {
            println!("             STORAGE: {}", c.storage_error);
        }
    }
    if !s.last_reload_error.is_empty() {
        println!(
            "last reload failed at {}:",
            rfc3339(s.last_reload_error_at_unix_ms)
        );
        for line in s.last_reload_error.lines() {
            println!("  {line}");
        }
    }
    if !s.warnings.is_empty() {
        println!("warnings of the serving policy (run `warden policy validate`):");
        for w in &s.warnings {
            println!("  {w}");
        }
    }
}
