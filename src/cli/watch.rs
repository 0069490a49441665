//! `warden watch`: follow the directory's change log (`AuditService.WatchChanges`), one change
//! a line (`revision  time  actor  type  org  change-json`, secrets redacted) or, with
//! `--json`, one JSON object a line. When the daemon closes the stream because this reader
//! fell behind, it resumes at the revision the daemon names, so the output has no gap.

use crate::api::client;
use crate::api::pb;
use crate::cli::config::DEFAULT_CONNECT;
use crate::cli::directory::{Failure, Outcome, finish};
use std::process::ExitCode;
use tonic::Code;

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// First revision to show; 0: the oldest still in the change log.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Only changes concerning this org (over TCP: required, and --actor needs `audit:read`
    /// there); omit for every change (Unix socket only).
    #[arg(long, default_value = "")]
    pub org: String,
    /// One JSON object a line: revision, at_unix_ms, actor, type, org, operator, change.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many changes (default: follow until interrupted).
    #[arg(long)]
    pub limit: Option<u64>,
    /// The user on whose behalf to watch; required over TCP.
    #[arg(long, env = "WARDEN_ACTOR", default_value = "", hide_default_value = true)]
    pub actor: String,
    /// Daemon address: unix:PATH or tcp:HOST:PORT.
    #[arg(long, env = "WARDEN_CONNECT", default_value = DEFAULT_CONNECT)]
    pub connect: String,
}

pub async fn run(args: WatchArgs) -> ExitCode {
    finish(watch(args).await)
}

/// The revision a closed stream says to resume from, if it says one.
pub fn resume_revision(status: &tonic::Status) -> Option<u64> {
    status
        .metadata()
        .get(crate::api::directory::RESUME_TRAILER)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn print(e: &pb::ChangeEvent, json: bool) {
    if json {
        let change: serde_json::Value =
            serde_json::from_str(&e.change_json).unwrap_or(serde_json::Value::Null);
        println!(
            "{}",
            serde_json::json!({
                "revision": e.revision,
                "at_unix_ms": e.at_unix_ms,
                "actor": e.actor,
                "type": e.change_type,
                "org": e.org_id,
                "operator": e.operator,
                "change": change,
            })
        );
    } else {
        let org = if e.org_id.is_empty() {
            "-"
        } else {
            e.org_id.as_str()
        };
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            e.revision, e.at_unix_ms, e.actor, e.change_type, org, e.change_json
        );
    }
}

async fn watch(args: WatchArgs) -> Outcome {
    let channel = client::connect(&args.connect).await?;
    let mut c = pb::audit_service_client::AuditServiceClient::new(channel);
    let mut next = args.from;
    let mut shown = 0u64;
    if args.limit == Some(0) {
        return Ok(());
    }
    loop {
        let mut stream = c
            .watch_changes(pb::WatchChangesRequest {
                actor: args.actor.clone(),
                org_id: args.org.clone(),
                from_revision: next,
            })
            .await?
            .into_inner();
        loop {
            match stream.message().await {
                Ok(Some(e)) => {
                    print(&e, args.json);
                    shown += 1;
                    if args.limit.is_some_and(|l| shown >= l) {
                        return Ok(());
                    }
                }
                Ok(None) => return Ok(()),
                Err(s) if s.code() == Code::ResourceExhausted => match resume_revision(&s) {
                    Some(at) => {
                        eprintln!("note: {}; resuming", s.message());
                        next = at;
                        break;
                    }
                    None => return Err(Failure::Status(s)),
                },
                Err(s) => return Err(Failure::Status(s)),
            }
        }
    }
}
